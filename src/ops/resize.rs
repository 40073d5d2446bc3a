//! Bilinear resizing with PyTorch's `align_corners=False` rule, built from two matrix products
//! with per-axis interpolation matrices (`A_h · X · A_wᵀ`). Candle's `upsample_bilinear2d` has no
//! backward; matmuls carry gradients for free and run on any device.

use candle_core::{Device, Result, Tensor};

/// The `(out, in)` matrix that resamples one axis of length `n_in` to `n_out` bilinearly, with
/// PyTorch's half-pixel convention: source `(o + 0.5) * n_in / n_out - 0.5`, clamped at 0.
pub fn interpolation_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0f32; n_out * n_in];
    let scale = n_in as f64 / n_out as f64;
    for o in 0..n_out {
        let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let l1 = src - i0 as f64;
        m[o * n_in + i0] += (1.0 - l1) as f32;
        m[o * n_in + i1] += l1 as f32;
    }
    m
}

fn matrix(n_in: usize, n_out: usize, device: &Device, dtype: candle_core::DType) -> Result<Tensor> {
    Tensor::from_vec(interpolation_matrix(n_in, n_out), (n_out, n_in), device)?.to_dtype(dtype)
}

/// Resizes `(N, C, H, W)` to `(N, C, out_h, out_w)` bilinearly (`align_corners=False`),
/// differentiable with respect to `x`.
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        candle_core::bail!("resize_bilinear: empty size {h}x{w} -> {out_h}x{out_w}");
    }
    if (h, w) == (out_h, out_w) {
        return Ok(x.clone());
    }
    let (dev, dt) = (x.device(), x.dtype());
    // Along W: (N*C*H, W) x (W, W').
    let aw_t = matrix(w, out_w, dev, dt)?.t()?;
    let y = x.reshape((n * c * h, w))?.matmul(&aw_t)?;
    // Along H: bring H last, (N*C*W', H) x (H, H'), then back.
    let ah_t = matrix(h, out_h, dev, dt)?.t()?;
    let y = y
        .reshape((n * c, h, out_w))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n * c * out_w, h))?
        .matmul(&ah_t)?;
    y.reshape((n * c, out_w, out_h))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, c, out_h, out_w))
}
