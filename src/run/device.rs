//! `cpu` / `cuda` / `cuda:N` device names.

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
    pub fn open(&self) -> Result<Device> {
        match *self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(i) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::config(format!(
                        "device cuda:{i} requested, but this hmreg was built without the `cuda` feature"
                    )));
                }
                Device::new_cuda(i).map_err(|e| Error::config(format!("cannot open cuda:{i}: {e}")))
            }
        }
    }
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;

    /// [`DeviceSpec::parse`]: `cpu`, `cuda`, `cuda:N`, in any case.
    fn from_str(s: &str) -> Result<Self> {
        DeviceSpec::parse(s)
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

#[cfg(test)]
mod tests {
    use super::*;

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
