//! Which path an op takes: the CPU kernels (f32 tensors on the CPU) or the portable path, built
//! from Candle tensor ops, that runs on every device and is the path CUDA takes.
//!
//! The portable path can be forced on the CPU for the current thread. The parity tests do that to
//! run the GPU's arithmetic here and compare it with the CPU kernels, so a machine without a GPU
//! still checks what a GPU will compute.

use std::cell::Cell;

use candle_core::{DType, Tensor};

thread_local! {
    static FORCED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the CPU kernels take an op over `tensors`: all f32 on the CPU, and the portable path
/// not forced on this thread.
pub fn cpu_kernels(tensors: &[&Tensor]) -> bool {
    !forced()
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// Whether this thread has the portable path forced (for ops whose CPU kernels take more dtypes
/// than f32).
pub fn forced() -> bool {
    FORCED.get()
}

/// Runs `f` with the portable path forced for every op this thread runs (forward and backward),
/// whatever the device. Ops handed to other threads (a rayon pool's `install`) are not affected.
pub fn with_portable_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.set(self.0);
        }
    }
    let _restore = Restore(FORCED.replace(true));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn forcing_is_scoped_and_per_thread() {
        let x = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        assert!(cpu_kernels(&[&x]));
        with_portable_ops(|| {
            assert!(!cpu_kernels(&[&x]));
            let other = std::thread::spawn({
                let x = x.clone();
                move || cpu_kernels(&[&x])
            });
            assert!(other.join().unwrap(), "another thread is not forced");
        });
        assert!(cpu_kernels(&[&x]));
        let half = x.to_dtype(DType::BF16).unwrap();
        assert!(!cpu_kernels(&[&x, &half]), "every tensor must be f32");
    }
}
