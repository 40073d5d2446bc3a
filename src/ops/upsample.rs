//! Nearest-neighbour upsampling by an integer factor (HRNet's fuse layers).
//!
//! On the CPU with f32 it is a custom op over whole planes in parallel, with the gradient as
//! block sums. Elsewhere it is a broadcast of each value over its block (a reshape, `broadcast_as`
//! and a copy), whose gradient Candle computes as the sum over the broadcast axes: the same block
//! sums, on the tensor's device. Candle's own `upsample_nearest2d` is avoided: its backward is a
//! grouped convolution with a ones kernel, one small convolution per channel.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::buffer::OutBuf;
use super::cpu_data::{storage_f32, with_f32};

/// `(N, C, H, W) -> (N, C, H f, W f)`, each value repeated over an `f x f` block.
pub fn upsample_nearest(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if factor == 0 {
        candle_core::bail!("upsample_nearest: factor must be at least 1");
    }
    if super::portable::cpu_kernels(&[x]) {
        return x.contiguous()?.apply_op1(UpsampleNearest { factor });
    }
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    x.reshape((n, c, h, 1, w, 1))?
        .broadcast_as((n, c, h, factor, w, factor))?
        .contiguous()?
        .reshape((n, c, h * factor, w * factor))
}

struct UpsampleNearest {
    factor: usize,
}

impl CustomOp1 for UpsampleNearest {
    fn name(&self) -> &'static str {
        "hmreg-upsample-nearest"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = storage_f32(self.name(), s, l)?;
        let &[n, c, h, w] = l.dims() else {
            candle_core::bail!("upsample_nearest: expected a 4-D input, got {:?}", l.dims());
        };
        let f = self.factor;
        let ow = w * f;
        let mut y = OutBuf::new(x.len() * f * f);
        y.par_chunks_mut(h * w * f * f)
            .zip(x.par_chunks(h * w))
            .for_each(|(out, plane)| {
                for (r, src) in plane.chunks(w).enumerate() {
                    let first = &mut out[r * f * ow..][..ow];
                    for (d, &v) in first.chunks_mut(f).zip(src) {
                        d.fill(MaybeUninit::new(v));
                    }
                    let (head, tail) = out[r * f * ow..][..f * ow].split_at_mut(ow);
                    for rep in tail.chunks_mut(ow) {
                        rep.copy_from_slice(head);
                    }
                }
            });
        // SAFETY: `y` holds one H f x W f plane per H x W plane of `x` (N·C of each); in every
        // plane, each of the H input rows wrote its first output row (W blocks of f values)
        // and copied it to the f − 1 rows below: all H f rows of W f values are written.
        let y = unsafe { y.assume_init() };
        Ok((CpuStorage::F32(y), Shape::from((n, c, h * f, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        let f = self.factor;
        let ow = w * f;
        let dx = with_f32(self.name(), grad, |g| {
            let mut dx = vec![0f32; x.elem_count()];
            dx.par_chunks_mut(h * w)
                .zip(g.par_chunks(h * w * f * f))
                .for_each(|(d, gp)| {
                    for (r, drow) in d.chunks_mut(w).enumerate() {
                        for grow in gp[r * f * ow..][..f * ow].chunks(ow) {
                            for (dv, block) in drow.iter_mut().zip(grow.chunks(f)) {
                                *dv += block.iter().sum::<f32>();
                            }
                        }
                    }
                });
            Ok(dx)
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}
