//! PixelShuffle (sub-pixel convolution output): `(N, C r², H, W) -> (N, C, H r, W r)`.
//!
//! On the CPU with f32 it is a custom op that copies whole output planes in parallel (Candle's
//! strided copy of the permuted view runs on one thread, which showed at batch 1 where the
//! UNet's last shuffle moves 25 MB); its backward is the inverse shuffle. Elsewhere it is a
//! reshape and permutation with gradients from Candle's autodiff.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::buffer::OutBuf;
use super::cpu_data::{storage_f32, with_f32};

/// PyTorch's `nn.PixelShuffle(r)`: input channel `c r² + i r + j` becomes sub-pixel `(i, j)` of
/// output channel `c`.
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (n, cr2, h, w) = x.dims4()?;
    if r == 0 || cr2 % (r * r) != 0 {
        candle_core::bail!("pixel_shuffle: {cr2} channels not divisible by {r}^2");
    }
    let c = cr2 / (r * r);
    if super::portable::cpu_kernels(&[x]) {
        return x.contiguous()?.apply_op1(PixelShuffle { r });
    }
    x.reshape((n * c, r, r, h, w))?
        .permute((0, 3, 1, 4, 2))?
        .contiguous()?
        .reshape((n, c, h * r, w * r))
}

/// Calls `f(shuffled, unshuffled)` for every value of one channel group: its index in the
/// shuffled plane `(H r, W r)` and in the `r²` planes `(H, W)` it comes from.
fn for_each_pair(r: usize, h: usize, w: usize, mut f: impl FnMut(usize, usize)) {
    let (ow, hw) = (w * r, h * w);
    for i in 0..r {
        for j in 0..r {
            let plane = (i * r + j) * hw;
            for y in 0..h {
                let row = (y * r + i) * ow + j;
                for x in 0..w {
                    f(row + x * r, plane + y * w + x);
                }
            }
        }
    }
}

/// Shuffles (or, with `inverse`, unshuffles) `x` of `n · c` groups of `r² · H · W` values.
fn shuffle(x: &[f32], r: usize, h: usize, w: usize, inverse: bool) -> Vec<f32> {
    let group = r * r * h * w;
    let mut y = OutBuf::new(x.len());
    y.par_chunks_mut(group)
        .zip(x.par_chunks(group))
        .for_each(|(o, i)| {
            if inverse {
                for_each_pair(r, h, w, |s, u| {
                    o[u].write(i[s]);
                });
            } else {
                for_each_pair(r, h, w, |s, u| {
                    o[s].write(i[u]);
                });
            }
        });
    // SAFETY: `y` and `x` have the same length, so the same groups of r²·H·W values, and
    // `for_each_pair` visits every index of a group (on either side) exactly once: every element
    // of `y` is written.
    unsafe { y.assume_init() }
}

struct PixelShuffle {
    r: usize,
}

impl CustomOp1 for PixelShuffle {
    fn name(&self) -> &'static str {
        "hmreg-pixel-shuffle"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = storage_f32(self.name(), s, l)?;
        let &[n, cr2, h, w] = l.dims() else {
            candle_core::bail!("pixel_shuffle: expected a 4-D input, got {:?}", l.dims());
        };
        let r = self.r;
        let y = shuffle(x, r, h, w, false);
        Ok((
            CpuStorage::F32(y),
            Shape::from((n, cr2 / (r * r), h * r, w * r)),
        ))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        let dx = with_f32(self.name(), grad, |g| Ok(shuffle(g, self.r, h, w, true)))?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}
