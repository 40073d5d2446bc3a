//! Max pooling with padding and a backward pass (Candle's `max_pool2d_with_stride` has neither a
//! padding argument nor a backward when kernel != stride, which ResNet's 3x3/s2 pool needs).
//!
//! Padding behaves as `-inf` (PyTorch): a padded position never wins. Ties go to the first
//! maximum in row-major window order, as in PyTorch's CPU kernel. The backward recomputes the
//! argmax from the saved input and scatters the incoming gradient there.

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
        let arg = arg.contiguous()?;
        let grad = grad_res.contiguous()?;
        let g = on_cpu(&arg, |a| {
            let gr = grad.to_device(&candle_core::Device::Cpu)?;
            a.apply_op2_no_bwd(&gr, &MaxPool2dBackward(self.0))
        })?;
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

/// Runs a CPU-only op on a tensor from any device and moves the result back.
fn on_cpu(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if x.device().is_cpu() {
        f(x)
    } else {
        f(&x.to_device(&candle_core::Device::Cpu)?)?.to_device(x.device())
    }
}

/// Max pooling over `(N, C, H, W)` with a square `kernel`, `stride` and `-inf` padding
/// (PyTorch's `MaxPool2d(kernel, stride, padding)`), differentiable. F32 and F64.
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
    if !matches!(x.dtype(), DType::F32 | DType::F64) {
        candle_core::bail!("max_pool2d: unsupported dtype {:?}", x.dtype());
    }
    let op = MaxPool2d(PoolGeom {
        kernel,
        stride,
        padding,
    });
    let x = x.contiguous()?;
    if x.device().is_cpu() {
        x.apply_op1(op)
    } else {
        // Moving through the CPU keeps gradients flowing (to_device is differentiable).
        x.to_device(&candle_core::Device::Cpu)?
            .apply_op1(op)?
            .to_device(x.device())
    }
}

/// ResNet's stem pool: 3x3, stride 2, padding 1.
pub fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    max_pool2d(x, 3, 2, 1)
}
