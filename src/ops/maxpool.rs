//! Max pooling with padding and a backward pass (Candle's `max_pool2d_with_stride` has neither a
//! padding argument nor a backward when kernel != stride, which ResNet's 3x3/s2 pool needs).
//!
//! Padding behaves as `-inf` (PyTorch): a padded position never wins. Ties go to the first
//! maximum in row-major window order, as in PyTorch's CPU kernel.
//!
//! Two paths: on the CPU (f32, f64) a custom op whose backward recomputes the argmax from the
//! saved input and scatters the incoming gradient there; on every other device (and on the CPU
//! when the portable path is forced) the same arithmetic from Candle tensor ops, which stays on
//! the tensor's device in both passes: the k² shifted strided views of the padded input are
//! stacked, `argmax` picks each window's winner, `gather` reads it, and autodiff turns the gather
//! into a scatter-add of the gradient onto the winners.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape,
    Tensor, WithDType,
};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PoolGeom {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl PoolGeom {
    fn out(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Flat index (within one H x W plane) of the window maximum for output `(oy, ox)`.
    fn argmax<T: WithDType>(&self, plane: &[T], h: usize, w: usize, oy: usize, ox: usize) -> usize {
        let y0 = (oy * self.stride) as isize - self.padding as isize;
        let x0 = (ox * self.stride) as isize - self.padding as isize;
        let mut best = usize::MAX;
        let mut best_v = f64::NEG_INFINITY;
        for ky in 0..self.kernel as isize {
            let y = y0 + ky;
            if y < 0 || y >= h as isize {
                continue;
            }
            for kx in 0..self.kernel as isize {
                let x = x0 + kx;
                if x < 0 || x >= w as isize {
                    continue;
                }
                let i = y as usize * w + x as usize;
                let v = plane[i].to_f64();
                // NaN propagates like in PyTorch: it wins and stays.
                if best == usize::MAX || v > best_v || v.is_nan() && !best_v.is_nan() {
                    best = i;
                    best_v = v;
                }
            }
        }
        best
    }
}

fn dims4(layout: &Layout) -> Result<(usize, usize, usize, usize)> {
    layout.shape().dims4()
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout, what: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("max_pool2d: {what} must be contiguous"),
    }
}

struct MaxPool2d(PoolGeom);

impl MaxPool2d {
    fn fwd<T: WithDType + Send + Sync>(
        &self,
        data: &[T],
        layout: &Layout,
    ) -> Result<(Vec<T>, Shape)> {
        let (n, c, h, w) = dims4(layout)?;
        let x = contiguous(data, layout, "input")?;
        let g = self.0;
        let (oh, ow) = (g.out(h), g.out(w));
        let mut out = vec![T::zero(); n * c * oh * ow];
        out.par_chunks_mut(oh * ow)
            .zip(x.par_chunks(h * w))
            .for_each(|(o, plane)| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        o[oy * ow + ox] = plane[g.argmax(plane, h, w, oy, ox)];
                    }
                }
            });
        Ok((out, Shape::from((n, c, oh, ow))))
    }
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "max-pool2d-padded"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        match storage {
            CpuStorage::F32(d) => {
                let (o, s) = self.fwd(d, layout)?;
                Ok((CpuStorage::F32(o), s))
            }
            CpuStorage::F64(d) => {
                let (o, s) = self.fwd(d, layout)?;
                Ok((CpuStorage::F64(o), s))
            }
            s => candle_core::bail!("max_pool2d: unsupported dtype {:?}", s.dtype()),
        }
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &MaxPool2dBackward(self.0))?;
        Ok(Some(g))
    }
}

/// `(input, grad_out) -> grad_in`: scatters each output gradient onto its window's argmax.
struct MaxPool2dBackward(PoolGeom);

impl MaxPool2dBackward {
    fn bwd<T: WithDType + Send + Sync>(
        &self,
        x: &[T],
        lx: &Layout,
        gy: &[T],
        ly: &Layout,
    ) -> Result<(Vec<T>, Shape)> {
        let (n, c, h, w) = dims4(lx)?;
        let (_, _, oh, ow) = dims4(ly)?;
        let x = contiguous(x, lx, "input")?;
        let gy = contiguous(gy, ly, "gradient")?;
        let g = self.0;
        let mut gx = vec![T::zero(); n * c * h * w];
        gx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(gy.par_chunks(oh * ow)))
            .for_each(|(gxp, (plane, gyp))| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let i = g.argmax(plane, h, w, oy, ox);
                        gxp[i] += gyp[oy * ow + ox];
                    }
                }
            });
        Ok((gx, lx.shape().clone()))
    }
}

impl CustomOp2 for MaxPool2dBackward {
    fn name(&self) -> &'static str {
        "max-pool2d-padded-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let (o, s) = self.bwd(x, l1, g, l2)?;
                Ok((CpuStorage::F32(o), s))
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let (o, s) = self.bwd(x, l1, g, l2)?;
                Ok((CpuStorage::F64(o), s))
            }
            _ => candle_core::bail!(
                "max_pool2d backward: unsupported dtypes {:?}/{:?}",
                s1.dtype(),
                s2.dtype()
            ),
        }
    }
}

/// The portable path: stacks the k² strided window views of the `-inf`-padded input and keeps
/// each window's first maximum (argmax, then gather), all differentiable Candle ops.
fn max_pool2d_portable(x: &Tensor, g: PoolGeom) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let PoolGeom {
        kernel: k,
        stride: s,
        padding: p,
    } = g;
    let (oh, ow) = (g.out(h), g.out(w));
    // Every window offset reads `s · out` rows from its start, so the padded extent is
    // `k − 1 + s · out` (at least `size + 2p`); the extra rows past the last window are never read.
    let (hp, wp) = (k - 1 + s * oh, k - 1 + s * ow);
    let neg_inf = |shape: (usize, usize, usize, usize)| {
        Tensor::full(f32::NEG_INFINITY, shape, x.device())?.to_dtype(x.dtype())
    };
    let mut xp = x.clone();
    if p > 0 || hp > h + p {
        xp = Tensor::cat(
            &[neg_inf((n, c, p, w))?, xp, neg_inf((n, c, hp - h - p, w))?],
            2,
        )?;
    }
    if p > 0 || wp > w + p {
        xp = Tensor::cat(
            &[
                neg_inf((n, c, hp, p))?,
                xp,
                neg_inf((n, c, hp, wp - w - p))?,
            ],
            3,
        )?;
    }
    let mut windows = Vec::with_capacity(k * k);
    for ky in 0..k {
        for kx in 0..k {
            let v = xp.narrow(2, ky, s * oh)?.narrow(3, kx, s * ow)?;
            let v = if s == 1 {
                v
            } else {
                // Every s-th row and column: split each axis into (out, s) and keep phase 0.
                v.contiguous()?
                    .reshape((n, c, oh, s, ow, s))?
                    .narrow(3, 0, 1)?
                    .narrow(5, 0, 1)?
                    .reshape((n, c, oh, ow))?
            };
            windows.push(v);
        }
    }
    // Row-major window order, so argmax's first maximum is PyTorch's tie rule.
    let stacked = Tensor::stack(&windows, 4)?.contiguous()?;
    let winner = stacked.argmax_keepdim(4)?;
    stacked.gather(&winner, 4)?.squeeze(4)
}

/// Max pooling over `(N, C, H, W)` with a square `kernel`, `stride` and `-inf` padding
/// (PyTorch's `MaxPool2d(kernel, stride, padding)`), differentiable, on any device and float
/// dtype (the CPU kernel takes f32 and f64; half precision takes the portable path).
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if kernel == 0 || stride == 0 {
        candle_core::bail!("max_pool2d: kernel and stride must be positive");
    }
    if 2 * padding > kernel {
        candle_core::bail!("max_pool2d: padding {padding} exceeds half the kernel {kernel}");
    }
    if h + 2 * padding < kernel || w + 2 * padding < kernel {
        candle_core::bail!("max_pool2d: input {h}x{w} smaller than the kernel {kernel}");
    }
    if !x.dtype().is_float() {
        candle_core::bail!("max_pool2d: unsupported dtype {:?}", x.dtype());
    }
    let op = MaxPool2d(PoolGeom {
        kernel,
        stride,
        padding,
    });
    let kernel_dtype = matches!(x.dtype(), DType::F32 | DType::F64);
    if x.device().is_cpu() && kernel_dtype && !super::portable::forced() {
        x.contiguous()?.apply_op1(op)
    } else {
        max_pool2d_portable(x, op.0)
    }
}
