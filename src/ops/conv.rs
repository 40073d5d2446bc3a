//! 2-D convolution, NCHW, weights `(C_out, C_in / groups, KH, KW)`.
//!
//! On the CPU with f32 and `groups == 1`, the convolution is our own custom op (im2col + gemm,
//! direct kernels or Winograd per layer, see [`super::conv_cpu`]), with the bias and an optional
//! ReLU fused into it. It computes no gradient for an input that does not track gradients (the
//! image under the first conv), which Candle's own backward always does. Other devices, dtypes
//! and grouped convolutions use Candle's conv2d.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

use super::conv_cpu::{conv2d_backward, conv2d_forward, epilogue_backward, ConvGeom, Epilogue};
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
    conv2d_act(x, weight, bias, stride, padding, groups, false)
}

/// [`conv2d`] followed by a ReLU. On the CPU the bias and the ReLU are applied to each output
/// tile right after its gemm, and the layer stores one tensor (its output) for the backward pass
/// instead of three (convolution, sum, ReLU).
pub fn conv2d_relu(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    conv2d_act(x, weight, bias, stride, padding, 1, true)
}

/// Whether the CPU kernels take this convolution (f32 on the CPU, 4-D, ungrouped).
pub fn runs_on_cpu_kernels(x: &Tensor, weight: &Tensor, stride: usize, groups: usize) -> bool {
    super::portable::cpu_kernels(&[x, weight])
        && groups == 1
        && x.rank() == 4
        && weight.rank() == 4
        && stride > 0
}

fn conv2d_act(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
    relu: bool,
) -> Result<Tensor> {
    let fast = runs_on_cpu_kernels(x, weight, stride, groups)
        && bias.is_none_or(|b| b.dtype() == DType::F32 && b.rank() == 1);
    if !fast {
        // Mixed precision: f32 master weights are cast to the activations' dtype here, and the
        // cast's backward brings their gradients back to f32.
        let dt = x.dtype();
        let y = x.conv2d(&weight.to_dtype(dt)?, padding, stride, 1, groups)?;
        let y = match bias {
            Some(b) => y.broadcast_add(&b.to_dtype(dt)?.reshape((1, b.elem_count(), 1, 1))?)?,
            None => y,
        };
        return if relu { super::relu(&y) } else { Ok(y) };
    }
    let op = Conv2dOp {
        stride,
        padding,
        relu,
    };
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op),
        None => x.apply_op2(&weight, op),
    }
}

/// Inference convolution followed by a per-channel affine map and an optional ReLU:
/// `max?(0, conv(x, weight) · scale[c] + shift[c])`, a BatchNorm (and any conv bias) folded into
/// the convolution. On the CPU the affine map and the ReLU run in the gemm's epilogue, so the
/// layer is one pass with no normalisation pass and no intermediate tensor. No gradient flows
/// through it (the weight is used detached); `x` must not require one.
pub fn conv2d_affine(
    x: &Tensor,
    weight: &Tensor,
    scale: Vec<f32>,
    shift: Vec<f32>,
    stride: usize,
    padding: usize,
    relu: bool,
) -> Result<Tensor> {
    if x.track_op() {
        candle_core::bail!("conv2d_affine is for inference: its input must not require gradients");
    }
    let c_out = weight.dim(0)?;
    if scale.len() != c_out || shift.len() != c_out {
        candle_core::bail!(
            "conv2d_affine: {} scales and {} shifts for {c_out} channels",
            scale.len(),
            shift.len()
        );
    }
    let weight = weight.detach();
    if !runs_on_cpu_kernels(x, &weight, stride, 1) {
        let dev = x.device();
        let per_channel =
            |v: Vec<f32>| Tensor::from_vec(v, (1, c_out, 1, 1), dev)?.to_dtype(x.dtype());
        let y = x
            .conv2d(&weight, padding, stride, 1, 1)?
            .broadcast_mul(&per_channel(scale)?)?
            .broadcast_add(&per_channel(shift)?)?;
        return if relu { super::relu(&y) } else { Ok(y) };
    }
    x.contiguous()?.apply_op1(Conv2dAffineOp {
        conv: Conv2dOp {
            stride,
            padding,
            relu,
        },
        weight: weight.contiguous()?,
        scale,
        shift,
    })
}

/// The forward kernel as a custom op's output, counted in [`forward_macs`].
fn run_forward(x: &[f32], w: &[f32], g: &ConvGeom, epi: Epilogue) -> (CpuStorage, Shape) {
    let y = conv2d_forward(x, w, g, epi);
    FORWARD_MACS.fetch_add(g.macs() as u64, Ordering::Relaxed);
    (
        CpuStorage::F32(y),
        Shape::from((g.n, g.c_out, g.out_h(), g.out_w())),
    )
}

/// [`conv2d_affine`]'s CPU op over `x`, holding the (detached) weight and the affine map.
struct Conv2dAffineOp {
    conv: Conv2dOp,
    weight: Tensor,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl CustomOp1 for Conv2dAffineOp {
    fn name(&self) -> &'static str {
        "hmreg-conv2d-affine"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.conv.geom(l.dims(), self.weight.dims())?;
        let x = storage_f32(self.name(), s, l)?;
        with_f32(self.name(), &self.weight, |w| {
            let epi = Epilogue {
                scale: Some(&self.scale),
                bias: Some(&self.shift),
                relu: self.conv.relu,
            };
            Ok(run_forward(x, w, &g, epi))
        })
    }
}

/// The CPU convolution (+ bias, + ReLU) as a Candle custom op over `(x, weight[, bias])`.
#[derive(Clone, Copy, Debug)]
struct Conv2dOp {
    stride: usize,
    padding: usize,
    relu: bool,
}

impl Conv2dOp {
    const NAME: &'static str = "hmreg-conv2d";

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

    fn forward(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = self.geom(l1.dims(), l2.dims())?;
        let x = storage_f32(Self::NAME, s1, l1)?;
        let w = storage_f32(Self::NAME, s2, l2)?;
        let bias = bias
            .map(|(s, l)| storage_f32(Self::NAME, s, l))
            .transpose()?;
        if let Some(b) = bias {
            if b.len() != g.c_out {
                candle_core::bail!(
                    "conv2d: bias has {} values for {} channels",
                    b.len(),
                    g.c_out
                );
            }
        }
        let epi = Epilogue {
            scale: None,
            bias,
            relu: self.relu,
        };
        Ok(run_forward(x, w, &g, epi))
    }

    /// Gradients for `(x, weight, bias)`, each only where it is tracked.
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geom(x.dims(), w.dims())?;
        // An input that tracks nothing (the image) needs no gradient: skip the largest gemm.
        let need_dx = x.track_op();
        let need_dw = w.track_op();
        let need_db = bias.is_some_and(|b| b.track_op());
        let name = Self::NAME;
        let (dx, dw, db) = with_f32(name, grad, |dy| {
            let (masked, db) = if self.relu || need_db {
                with_f32(name, res, |y| {
                    Ok(epilogue_backward(dy, y, &g, self.relu, need_db))
                })?
            } else {
                (None, None)
            };
            let dy = masked.as_deref().unwrap_or(dy);
            let (dx, dw) = with_f32(name, x, |xs| {
                with_f32(name, w, |ws| {
                    Ok(conv2d_backward(xs, ws, dy, &g, need_dx, need_dw))
                })
            })?;
            Ok((dx, dw, db))
        })?;
        let dev = x.device();
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), dev))
            .transpose()?;
        let dw = dw
            .map(|v| Tensor::from_vec(v, w.shape(), dev))
            .transpose()?;
        let db = match (db, bias) {
            (Some(v), Some(b)) => Some(Tensor::from_vec(v, b.shape(), dev)?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(x, w, Some(b), res, grad)
    }
}
