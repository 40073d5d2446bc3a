//! 2-D convolution, NCHW, weights `(C_out, C_in / groups, KH, KW)`.
//!
//! On the CPU with f32 and `groups == 1`, the convolution is our own custom op (im2col + gemm for
//! the forward and both backward passes, see [`super::conv_cpu`]). It computes no gradient for an
//! input that does not track gradients (the image under the first conv), which Candle's own
//! backward always does. Other devices, dtypes and grouped convolutions use Candle's conv2d.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::conv_cpu::{conv2d_backward, conv2d_forward, ConvGeom};
use super::cpu_data::{storage_f32, with_f32};

/// Multiply-adds of all CPU forward convolutions run so far (for the speed bench's GFLOP/s).
static FORWARD_MACS: AtomicU64 = AtomicU64::new(0);

/// Multiply-adds of the custom CPU convolutions' forward passes since the program started.
pub fn forward_macs() -> u64 {
    FORWARD_MACS.load(Ordering::Relaxed)
}

/// Convolution with symmetric zero padding. `bias` has shape `(C_out,)`.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    let fast = x.device().is_cpu()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && groups == 1
        && x.rank() == 4
        && weight.rank() == 4
        && stride > 0;
    let y = if fast {
        let x = x.contiguous()?;
        let weight = weight.contiguous()?;
        x.apply_op2(&weight, Conv2dOp { stride, padding })?
    } else {
        x.conv2d(weight, padding, stride, 1, groups)?
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// The CPU convolution as a Candle custom op over `(x, weight)`.
#[derive(Clone, Copy, Debug)]
struct Conv2dOp {
    stride: usize,
    padding: usize,
}

impl Conv2dOp {
    fn geom(&self, x: &[usize], w: &[usize]) -> Result<ConvGeom> {
        let (&[n, c_in, h, wd], &[c_out, c_w, kh, kw]) = (x, w) else {
            candle_core::bail!("conv2d: expected 4-D input and weight, got {x:?} and {w:?}");
        };
        if c_in != c_w {
            candle_core::bail!("conv2d: input has {c_in} channels, weight expects {c_w}");
        }
        if h + 2 * self.padding < kh || wd + 2 * self.padding < kw {
            candle_core::bail!("conv2d: kernel {kh}x{kw} larger than padded input {h}x{wd}");
        }
        Ok(ConvGeom {
            n,
            c_in,
            h,
            w: wd,
            c_out,
            kh,
            kw,
            stride: self.stride,
            padding: self.padding,
        })
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "hmreg-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(l1.dims(), l2.dims())?;
        let x = storage_f32(self.name(), s1, l1)?;
        let w = storage_f32(self.name(), s2, l2)?;
        let y = conv2d_forward(x, w, &g);
        FORWARD_MACS.fetch_add(g.macs() as u64, Ordering::Relaxed);
        Ok((
            CpuStorage::F32(y),
            Shape::from((g.n, g.c_out, g.out_h(), g.out_w())),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geom(x.dims(), w.dims())?;
        // An input that tracks nothing (the image) needs no gradient: skip the largest gemm.
        let need_dx = x.track_op();
        let need_dw = w.track_op();
        let (dx, dw) = with_f32(self.name(), x, |xs| {
            with_f32(self.name(), w, |ws| {
                with_f32(self.name(), grad, |dy| {
                    Ok(conv2d_backward(xs, ws, dy, &g, need_dx, need_dw))
                })
            })
        })?;
        let dev = x.device();
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), dev))
            .transpose()?;
        let dw = dw
            .map(|v| Tensor::from_vec(v, w.shape(), dev))
            .transpose()?;
        Ok((dx, dw))
    }
}
