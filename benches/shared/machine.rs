//! The machine a bench ran on, for its header: speed claims name the CPU, and only ratios from
//! one run compare across machines.

use std::time::Instant;

use candle_core::{Device, Tensor};

/// `model name` and the widest vector extension from /proc/cpuinfo, the logical cores, and the
/// single-precision matrix-product peak this process reaches (a 2048³ product, best of 3).
pub fn header(threads: usize) -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    // The width hmreg's own kernels run at, as they detect it (AVX-512 needs F and VL).
    let simd = hmreg::ops::simd::widest().map_or("no AVX2 kernels", |w| w.name());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = matmul_gflops().map_or("-".into(), |g| format!("{g:.0}"));
    format!(
        "machine: {model} (kernels: {simd}), {cores} logical cores, {threads} threads used; 2048³ f32 \
         matrix product: {peak} GFLOP/s"
    )
}

fn matmul_gflops() -> candle_core::Result<f64> {
    let n = 2048;
    let a = Tensor::ones((n, n), candle_core::DType::F32, &Device::Cpu)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(a.matmul(&a)?);
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}
