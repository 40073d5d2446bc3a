//! `cpu` / `cuda` / `cuda:N` device names, and the device the test suite runs on.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use candle_core::Device;

use crate::{Error, Result};

/// A device as written in configs and on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if t == "cuda" {
            return Ok(DeviceSpec::Cuda(0));
        }
        if let Some(n) = t.strip_prefix("cuda:") {
            if let Ok(i) = n.parse::<usize>() {
                return Ok(DeviceSpec::Cuda(i));
            }
        }
        Err(Error::config(format!(
            "unknown device `{s}`: expected `cpu`, `cuda` or `cuda:N`"
        )))
    }

    /// Opens the device. CUDA needs a build with the `cuda` feature and a GPU.
    ///
    /// Each CUDA device is opened once per process and shared: Candle gives every
    /// `Device::new_cuda` its own identity, and tensors of two openings of the same GPU could not
    /// meet in one op (a model loaded by one part of the program, its inputs made by another).
    pub fn open(&self) -> Result<Device> {
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::config(format!(
                        "device cuda:{i} requested, but this hmreg was built without the `cuda` feature"
                    )));
                }
                static OPENED: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
                let mut opened = OPENED
                    .get_or_init(Default::default)
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if let Some(d) = opened.get(&i) {
                    return Ok(d.clone());
                }
                let d = Device::new_cuda(i).map_err(|e| Error::config(cuda_open_error(i, &e)))?;
                opened.insert(i, d.clone());
                Ok(d)
            }
        }
    }
}

/// Why `cuda:i` could not be opened, in words a user can act on: the driver's error code alone
/// (`DriverError(CUDA_ERROR_STUB_LIBRARY, ...)`) does not say that the machine has no driver.
/// Candle's backtrace (captured under `RUST_BACKTRACE`) is left out; the message is the error.
fn cuda_open_error(i: usize, e: &candle_core::Error) -> String {
    let inner = match e {
        candle_core::Error::WithBacktrace { inner, .. } => inner.as_ref(),
        other => other,
    };
    let detail = inner.to_string();
    let hint = if detail.contains("CUDA_ERROR_STUB_LIBRARY") {
        "the libcuda.so.1 found is a stub, not an NVIDIA driver's: this machine has no NVIDIA \
         driver (or LD_LIBRARY_PATH puts a toolkit's stubs/ folder before the driver's library)"
    } else if detail.contains("CUDA_ERROR_NO_DEVICE") {
        "the driver sees no GPU (`nvidia-smi` lists them; CUDA_VISIBLE_DEVICES may hide them)"
    } else if detail.contains("CUDA_ERROR_INVALID_DEVICE") {
        "there is no GPU with that number (`nvidia-smi` lists them, numbered from 0)"
    } else if detail.contains("CUDA_ERROR_INSUFFICIENT_DRIVER")
        || detail.contains("CUDA_ERROR_UNSUPPORTED_PTX_VERSION")
    {
        "the NVIDIA driver is older than the CUDA version this hmreg was built for (rebuild with \
         CUDARC_CUDA_VERSION set to the driver's version, which `nvidia-smi` prints)"
    } else {
        ""
    };
    let first_line = detail.lines().next().unwrap_or_default();
    if hint.is_empty() {
        format!("cannot open cuda:{i}: {first_line}")
    } else {
        format!("cannot open cuda:{i}: {hint} ({first_line})")
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;

    /// [`DeviceSpec::parse`]: `cpu`, `cuda`, `cuda:N`, in any case.
    fn from_str(s: &str) -> Result<Self> {
        DeviceSpec::parse(s)
    }
}

/// Written as its name (`cpu`, `cuda:N`) in configs, read back with [`DeviceSpec::parse`].
impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DeviceSpec::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Parses and opens a device name in one go.
pub fn parse_device(s: &str) -> Result<Device> {
    DeviceSpec::parse(s)?.open()
}

/// The environment variable that names the device the test suite runs on (CPU when unset).
pub const TEST_DEVICE_VAR: &str = "HMREG_TEST_DEVICE";

/// The device named by `HMREG_TEST_DEVICE` (`cpu`, `cuda`, `cuda:N`; CPU when unset or empty):
/// the device of every test that runs ops, models, losses, codecs, training or evaluation.
///
/// # Panics
/// When the variable names a device that cannot be opened: a run asked to test a GPU must fail,
/// never fall back to the CPU and pass.
pub fn test_device_spec() -> DeviceSpec {
    match std::env::var(TEST_DEVICE_VAR) {
        Ok(s) if !s.trim().is_empty() => {
            DeviceSpec::parse(&s).unwrap_or_else(|e| panic!("{TEST_DEVICE_VAR}={s}: {e}"))
        }
        _ => DeviceSpec::Cpu,
    }
}

/// [`test_device_spec`], opened (see its panics).
pub fn test_device() -> Device {
    let spec = test_device_spec();
    spec.open()
        .unwrap_or_else(|e| panic!("{TEST_DEVICE_VAR}={spec}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_driver_is_named_and_the_backtrace_left_out() {
        let stub = candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_STUB_LIBRARY, \"<Failure when calling cuGetErrorString()>\")"
                .into(),
        );
        let with_bt = candle_core::Error::WithBacktrace {
            inner: Box::new(stub),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let msg = cuda_open_error(0, &with_bt);
        assert!(
            msg.starts_with("cannot open cuda:0: the libcuda.so.1 found is a stub"),
            "{msg}"
        );
        assert!(msg.contains("no NVIDIA driver"), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
        let other = cuda_open_error(3, &candle_core::Error::Msg("out of luck".into()));
        assert_eq!(other, "cannot open cuda:3: out of luck");
        let bad = candle_core::Error::Msg("DriverError(CUDA_ERROR_INVALID_DEVICE, \"x\")".into());
        assert!(cuda_open_error(7, &bad).contains("no GPU with that number"));
    }

    #[test]
    fn parses_names() {
        assert_eq!(DeviceSpec::parse("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(DeviceSpec::parse(" CUDA ").unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(DeviceSpec::parse("cuda:3").unwrap(), DeviceSpec::Cuda(3));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            assert!(DeviceSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(parse_device("cpu").unwrap(), Device::Cpu));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let err = parse_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("cuda"), "{err}");
    }
}
