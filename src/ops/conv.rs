//! 2-D convolution, NCHW, weights `(C_out, C_in / groups, KH, KW)`.

use candle_core::{Result, Tensor};

/// Convolution with symmetric zero padding. `bias` has shape `(C_out,)`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    let y = x.conv2d(weight, padding, stride, 1, groups)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}
