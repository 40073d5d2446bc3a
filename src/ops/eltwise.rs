//! Element-wise ReLU and residual `relu(a + b)` as parallel CPU custom ops. Candle's CPU
//! element-wise ops run on one thread, and its autograd builds `relu(a + b)` from three stored
//! tensors (sum, mask, product); here the output alone gives the backward mask.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::buffer::OutBuf;
use super::cpu_data::{storage_f32, with_f32};
use super::portable::cpu_kernels;
use super::simd::{self, Kernel};

/// Elements per rayon task.
const CHUNK: usize = 64 * 1024;

/// `max(x, 0)`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !cpu_kernels(&[x]) {
        return relu_portable(x);
    }
    x.contiguous()?.apply_op1(Relu)
}

/// `max(a + b, 0)` (a residual connection followed by its ReLU).
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !cpu_kernels(&[a, b]) || a.dims() != b.dims() {
        return relu_portable(&(a + b)?);
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// ReLU from tensor ops with PyTorch's derivative at 0, which is 0 (the kernels' too): Candle's
/// own `relu` passes the gradient at exactly 0, so an input of zeros (a sum of two ReLU outputs
/// that are both 0, say) would train differently on a GPU. The mask is a comparison, which
/// carries no gradient, so the product's gradient is the mask.
fn relu_portable(x: &Tensor) -> Result<Tensor> {
    x.mul(&x.gt(0.0)?.to_dtype(x.dtype())?)
}

/// `dy` where `y > 0`, else 0.
fn masked_grad(op: &str, y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let v = with_f32(op, y, |ys| {
        with_f32(op, dy, |ds| {
            if ys.len() != ds.len() {
                candle_core::bail!("{op}: output and gradient lengths differ");
            }
            let width = simd::current();
            let mut g = OutBuf::new(ys.len());
            g.par_chunks_mut(CHUNK)
                .zip(ys.par_chunks(CHUNK).zip(ds.par_chunks(CHUNK)))
                .for_each(|(out, (a, b))| {
                    let f = |y: f32, d: f32| if y > 0.0 { d } else { 0.0 };
                    simd::vectorized(width, Zip2 { out, a, b, f })
                });
            // SAFETY: `g`, `ys` and `ds` have the same length, so the same chunks; the loop
            // above wrote every element of every chunk of `g`.
            Ok(unsafe { g.assume_init() })
        })
    })?;
    Tensor::from_vec(v, y.shape(), y.device())
}

/// `out[i] = f(a[i], b[i])` over one chunk, compiled for the machine's vector width (indexing
/// three slices kept the bounds checks in the loop, and the loop scalar).
struct Zip2<'a, F> {
    out: &'a mut [std::mem::MaybeUninit<f32>],
    a: &'a [f32],
    b: &'a [f32],
    f: F,
}

impl<F: Fn(f32, f32) -> f32> Kernel for Zip2<'_, F> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        for (o, (&a, &b)) in self.out.iter_mut().zip(self.a.iter().zip(self.b)) {
            o.write((self.f)(a, b));
        }
    }
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "hmreg-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = storage_f32(self.name(), s, l)?;
        let width = simd::current();
        let mut y = OutBuf::new(x.len());
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(out, a)| {
                let f = |x: f32, _: f32| x.max(0.0);
                simd::vectorized(width, Zip2 { out, a, b: a, f })
            });
        // SAFETY: `y` and `x` have the same length, so the same chunks; the zipped loop above
        // wrote every element of every chunk of `y`.
        let y = unsafe { y.assume_init() };
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(masked_grad(self.name(), res, grad)?))
    }
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "hmreg-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = storage_f32(self.name(), s1, l1)?;
        let b = storage_f32(self.name(), s2, l2)?;
        if a.len() != b.len() {
            candle_core::bail!(
                "add_relu: shapes {:?} and {:?} differ",
                l1.dims(),
                l2.dims()
            );
        }
        let width = simd::current();
        let mut y = OutBuf::new(a.len());
        y.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(out, (a, b))| {
                let f = |a: f32, b: f32| (a + b).max(0.0);
                simd::vectorized(width, Zip2 { out, a, b, f })
            });
        // SAFETY: `y`, `a` and `b` have the same length (checked above), so the same chunks;
        // the loop above wrote every element of every chunk of `y`.
        let y = unsafe { y.assume_init() };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = masked_grad(self.name(), res, grad)?;
        let ga = a.track_op().then(|| g.clone());
        let gb = b.track_op().then_some(g);
        Ok((ga, gb))
    }
}
