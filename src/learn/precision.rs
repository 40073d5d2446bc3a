//! Mixed precision: the dtype the forward and backward passes compute in, and loss scaling for
//! f16. Master weights, gradients as the optimiser sees them, optimiser state, BatchNorm
//! statistics and the loss stay f32 whatever the precision (PyTorch's autocast recipe).

use candle_core::DType;

use crate::{Error, Result};

/// `--precision`: the compute dtype of training on CUDA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// bfloat16: f32's exponent range, so no loss scaling is needed.
    Bf16,
    /// float16: small gradients underflow without loss scaling ([`LossScaler`]).
    F16,
}

impl Precision {
    pub const NAMES: [&'static str; 3] = ["f32", "bf16", "f16"];

    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" | "fp16" => Ok(Precision::F16),
            _ => Err(Error::config(format!(
                "unknown precision `{s}`: expected one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// The dtype activations are computed in.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }

    /// Half precision needs a CUDA device: the CPU kernels are f32 only, and Candle's generic
    /// CPU paths in half precision would be both slower and less accurate than f32.
    pub fn check_device(self, device: &str) -> Result<()> {
        let cpu = device.trim().eq_ignore_ascii_case("cpu");
        if self != Precision::F32 && cpu {
            return Err(Error::config(format!(
                "precision `{self}` is only supported on CUDA devices; on the CPU hmreg trains \
                 in f32 (use --precision f32, or --device cuda with a CUDA build)"
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = *self as usize;
        f.write_str(Self::NAMES[i])
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Precision::parse(s)
    }
}

/// Dynamic loss scaling with PyTorch `GradScaler`'s defaults: start at 2^16, halve the scale and
/// skip the step when a gradient overflows, double it after 2000 steps in a row without one.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    /// Steps since the last overflow or growth.
    pub good_steps: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
        }
    }
}

impl LossScaler {
    const GROWTH_INTERVAL: u32 = 2000;

    /// Records one step: `overflowed` when its gradients were not finite (the step was skipped).
    pub fn update(&mut self, overflowed: bool) {
        if overflowed {
            self.scale = (self.scale * 0.5).max(1.0);
            self.good_steps = 0;
        } else {
            self.good_steps += 1;
            if self.good_steps >= Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_cpu_is_refused() {
        for name in Precision::NAMES {
            assert_eq!(Precision::parse(name).unwrap().to_string(), name);
        }
        assert!(Precision::parse("f8").is_err());
        assert!(Precision::F32.check_device("cpu").is_ok());
        let err = Precision::Bf16.check_device("CPU").unwrap_err().to_string();
        assert!(err.contains("bf16") && err.contains("CUDA"), "{err}");
        assert!(Precision::F16.check_device("cuda:1").is_ok());
    }

    #[test]
    fn scaler_backs_off_on_overflow_and_grows_after_the_interval() {
        let mut s = LossScaler::default();
        s.update(true);
        assert_eq!(s.scale, 32768.0);
        for _ in 0..LossScaler::GROWTH_INTERVAL - 1 {
            s.update(false);
        }
        assert_eq!(s.scale, 32768.0);
        s.update(false);
        assert_eq!((s.scale, s.good_steps), (65536.0, 0));
        for _ in 0..40 {
            s.update(true);
        }
        assert_eq!(s.scale, 1.0, "never below 1");
    }
}
