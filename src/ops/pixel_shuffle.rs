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

/// `cat([pixel_shuffle(x, r), rest], 1)` as one op: the UNet's upsampling joins its skip
/// connection without the shuffled tensor as an intermediate. Candle's graph keeps every op's
/// inputs until the backward pass, so the separate shuffle cost one activation-sized tensor per
/// UNet block (200 MB at the last block of a batch of 8 at 256x256). `rest` must have the
/// shuffled size `(N, C2, H r, W r)`.
pub fn shuffle_cat(x: &Tensor, r: usize, rest: &Tensor) -> Result<Tensor> {
    let (n, cr2, h, w) = x.dims4()?;
    let (n2, _, h2, w2) = rest.dims4()?;
    if r == 0 || cr2 % (r * r) != 0 {
        candle_core::bail!("shuffle_cat: {cr2} channels not divisible by {r}^2");
    }
    if (n2, h2, w2) != (n, h * r, w * r) {
        candle_core::bail!(
            "shuffle_cat: the shuffled input is ({n}, _, {}, {}), the other ({n2}, _, {h2}, {w2})",
            h * r,
            w * r
        );
    }
    if super::portable::cpu_kernels(&[x, rest]) {
        return x
            .contiguous()?
            .apply_op2(&rest.contiguous()?, ShuffleCat { r });
    }
    Tensor::cat(&[pixel_shuffle(x, r)?, rest.clone()], 1)
}

struct ShuffleCat {
    r: usize,
}

impl candle_core::CustomOp2 for ShuffleCat {
    fn name(&self) -> &'static str {
        "hmreg-shuffle-cat"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, rest) = (
            storage_f32(self.name(), s1, l1)?,
            storage_f32(self.name(), s2, l2)?,
        );
        let (&[n, cr2, h, w], &[_, c2, hr, wr]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!("shuffle_cat: expected 4-D inputs");
        };
        let (r, c) = (self.r, cr2 / (self.r * self.r));
        let plane = hr * wr;
        // Output plane q is channel q % (C + C2) of sample q / (C + C2): the shuffle of `x`'s
        // group (sample, channel) for the first C channels, `rest`'s plane after them.
        let mut y = OutBuf::new(n * (c + c2) * plane);
        y.par_chunks_mut(plane).enumerate().for_each(|(q, o)| {
            let (s, ch) = (q / (c + c2), q % (c + c2));
            if ch < c {
                let i = &x[(s * c + ch) * plane..][..plane];
                for_each_pair(r, h, w, |s, u| {
                    o[s].write(i[u]);
                });
            } else {
                o.write_copy_of_slice(&rest[(s * c2 + ch - c) * plane..][..plane]);
            }
        });
        // SAFETY: the output has N·(C + C2) planes of H r·W r values; each plane is either a
        // whole channel group shuffled (`for_each_pair` visits every one of its indices once)
        // or a whole plane of `rest` copied: every element is written.
        let y = unsafe { y.assume_init() };
        Ok((CpuStorage::F32(y), Shape::from((n, c + c2, hr, wr))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        rest: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (_, cr2, h, w) = x.dims4()?;
        let c2 = rest.dim(1)?;
        let (r, c) = (self.r, cr2 / (self.r * self.r));
        let plane = h * r * w * r;
        let (dx, drest) = with_f32(self.name(), grad, |g| {
            let mut dx = OutBuf::new(x.elem_count());
            let mut drest = OutBuf::new(rest.elem_count());
            dx.par_chunks_mut(plane).enumerate().for_each(|(src, o)| {
                let q = (src / c) * (c + c2) + src % c;
                let i = &g[q * plane..][..plane];
                for_each_pair(r, h, w, |s, u| {
                    o[u].write(i[s]);
                });
            });
            drest
                .par_chunks_mut(plane)
                .enumerate()
                .for_each(|(src, o)| {
                    let q = (src / c2) * (c + c2) + c + src % c2;
                    o.write_copy_of_slice(&g[q * plane..][..plane]);
                });
            // SAFETY: every plane of both buffers was written above: a group's unshuffle visits
            // each of its indices once, a copied plane is whole.
            Ok(unsafe { (dx.assume_init(), drest.assume_init()) })
        })?;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(drest, rest.shape(), rest.device())?),
        ))
    }
}
