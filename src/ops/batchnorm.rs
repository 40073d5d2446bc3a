//! Batch normalisation over NCHW with PyTorch semantics.

use candle_core::{DType, Result, Tensor, Var, D};

/// Batch norm. In training mode, normalises with the batch statistics (biased variance) and
/// updates the running statistics in place with PyTorch's rule
/// `running = (1 - momentum) * running + momentum * batch` (unbiased variance for `running_var`).
/// In inference mode, uses the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Var,
    running_var: &Var,
    train: bool,
    momentum: f64,
    eps: f64,
) -> Result<Tensor> {
    let c = x.dim(1)?;
    let shape = (1, c, 1, 1);
    let (mean, var) = if train {
        let n = (x.elem_count() / c) as f64;
        let mean = x
            .mean_keepdim(0)?
            .mean_keepdim(D::Minus1)?
            .mean_keepdim(D::Minus2)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred
            .sqr()?
            .mean_keepdim(0)?
            .mean_keepdim(D::Minus1)?
            .mean_keepdim(D::Minus2)?;
        let unbiased = (var.detach().flatten_all()? * (n / (n - 1.0).max(1.0)))?;
        let new_mean = ((running_mean.as_tensor() * (1.0 - momentum))?
            + (mean.detach().flatten_all()? * momentum)?)?;
        let new_var = ((running_var.as_tensor() * (1.0 - momentum))? + (unbiased * momentum)?)?;
        running_mean.set(&new_mean.to_dtype(DType::F32)?)?;
        running_var.set(&new_var.to_dtype(DType::F32)?)?;
        (mean, var)
    } else {
        (
            running_mean.as_tensor().reshape(shape)?,
            running_var.as_tensor().reshape(shape)?,
        )
    };
    let inv = (var + eps)?.sqrt()?.recip()?;
    let scale = weight.reshape(shape)?.broadcast_mul(&inv)?;
    x.broadcast_sub(&mean)?
        .broadcast_mul(&scale)?
        .broadcast_add(&bias.reshape(shape)?)
}
