//! CPU kernels for batch normalisation (f32, NCHW), optionally fused with a ReLU.
//!
//! One pass for the statistics, one for the normalisation; the backward pass needs one
//! reduction pass and one pass writing the input gradient. Work is spread over channels for the
//! reductions and over `(n, c)` planes for the element-wise passes. The sums run in 16 f32 lanes
//! at every vector width ([`super::lane_sums`]) and the element-wise loops are compiled for the
//! machine's ([`simd::vectorized`]), so results are the same on every machine.

use rayon::prelude::*;

use super::buffer::OutBuf;
use super::lane_sums::{self, relu_grad};
use super::simd::{self, Kernel};

/// Planes of fewer elements than this are grouped so rayon tasks stay worth their overhead.
const MIN_TASK_ELEMS: usize = 16 * 1024;

fn min_planes(hw: usize) -> usize {
    MIN_TASK_ELEMS.div_ceil(hw.max(1))
}

/// Per-channel mean and biased variance of `x` `(N, C, HW)`, accumulated in f64 around a pivot
/// (the channel's first value) so that large means do not cancel the variance.
pub fn channel_stats(x: &[f32], n: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let width = simd::current();
    let stats: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let pivot = x[ch * hw];
            let (mut s, mut ss) = (0f64, 0f64);
            for b in 0..n {
                let plane = &x[(b * c + ch) * hw..(b * c + ch + 1) * hw];
                let (a, q) = lane_sums::shifted_sums(width, plane, pivot);
                s += a;
                ss += q;
            }
            let m = (n * hw) as f64;
            let mean_d = s / m;
            let var = (ss / m - mean_d * mean_d).max(0.0);
            ((pivot as f64 + mean_d) as f32, var as f32)
        })
        .collect();
    stats.into_iter().unzip()
}

/// `y = max?(0, x · scale[c] + shift[c])` over `(N, C, HW)`.
pub fn affine(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    c: usize,
    hw: usize,
    relu: bool,
) -> Vec<f32> {
    let width = simd::current();
    let mut y = OutBuf::new(x.len());
    y.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .with_min_len(min_planes(hw))
        .for_each(|(i, (yp, xp))| {
            let (a, b) = (scale[i % c], shift[i % c]);
            simd::vectorized(
                width,
                Affine {
                    x: xp,
                    y: yp,
                    a,
                    b,
                    relu,
                },
            );
        });
    // SAFETY: `y` has the length of `x` and both are cut into the same `hw`-long planes; the
    // zipped loop above wrote every element of every plane of `y`.
    unsafe { y.assume_init() }
}

/// One plane of [`affine`].
struct Affine<'a> {
    x: &'a [f32],
    y: &'a mut [std::mem::MaybeUninit<f32>],
    a: f32,
    b: f32,
    relu: bool,
}

impl Kernel for Affine<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let (a, b) = (self.a, self.b);
        if self.relu {
            for (y, &x) in self.y.iter_mut().zip(self.x) {
                y.write((x * a + b).max(0.0));
            }
        } else {
            for (y, &x) in self.y.iter_mut().zip(self.x) {
                y.write(x * a + b);
            }
        }
    }
}

/// The inputs of [`backward`]: tensors `(N, C, HW)` and per-channel values of one batch norm.
#[derive(Clone, Copy, Debug)]
pub struct BackwardArgs<'a> {
    /// The forward input.
    pub x: &'a [f32],
    /// The forward output (its sign is the ReLU mask).
    pub y: &'a [f32],
    /// The gradient at the output.
    pub dy: &'a [f32],
    /// The mean the forward pass used, per channel.
    pub mean: &'a [f32],
    /// `1 / sqrt(var + eps)` of the forward pass, per channel.
    pub invstd: &'a [f32],
    /// The scale `γ`, per channel.
    pub gamma: &'a [f32],
    /// Samples.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Values per `(sample, channel)` plane.
    pub hw: usize,
    /// The forward pass ended with a ReLU.
    pub relu: bool,
    /// Batch statistics: mean and variance are functions of `x` (otherwise running statistics,
    /// constants).
    pub train: bool,
    /// Compute the input gradient.
    pub need_dx: bool,
}

/// Gradients of batch norm (+ ReLU) given the output `y` (for the ReLU mask), the saved `mean`
/// and `invstd`, and `gamma`. With `train`, mean and variance are functions of `x` (batch
/// statistics); otherwise they are constants (running statistics).
/// Returns `(dx if need_dx, dgamma, dbeta)`.
pub fn backward(args: &BackwardArgs) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let BackwardArgs {
        x,
        y,
        dy,
        mean,
        invstd,
        gamma,
        n,
        c,
        hw,
        relu,
        train,
        need_dx,
    } = *args;
    let width = simd::current();
    // Σ dy and Σ dy·(x − mean) per channel (dy masked by the ReLU).
    let sums: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut s, mut sx) = (0f64, 0f64);
            for b in 0..n {
                let r = (b * c + ch) * hw..(b * c + ch + 1) * hw;
                let (xp, yp, dp) = (&x[r.clone()], &y[r.clone()], &dy[r]);
                let (a, q) = lane_sums::gradient_sums(width, xp, yp, dp, mean[ch], relu);
                s += a;
                sx += q;
            }
            (s as f32, (sx * invstd[ch] as f64) as f32)
        })
        .collect();
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
    let dx = need_dx.then(|| {
        let m = (n * hw) as f32;
        let mut dx = OutBuf::new(x.len());
        dx.par_chunks_mut(hw)
            .enumerate()
            .with_min_len(min_planes(hw))
            .for_each(|(p, dxp)| {
                let ch = p % c;
                let r = p * hw..(p + 1) * hw;
                let (xp, yp, dp) = (&x[r.clone()], &y[r.clone()], &dy[r]);
                let k = gamma[ch] * invstd[ch];
                // dx = k·(g − mean(g) − x̂·mean(g·x̂)) = a·g + b·x + c, with x̂ = (x − μ)·invstd;
                // in inference mode the statistics are constants and dx = k·g.
                let (a, b, cst) = if train {
                    let (mb, mg) = (dbeta[ch] / m, dgamma[ch] / m);
                    let kk = k * mg * invstd[ch];
                    (k, -kk, -k * mb + kk * mean[ch])
                } else {
                    (k, 0.0, 0.0)
                };
                let plane = InputGrad {
                    x: xp,
                    y: yp,
                    dy: dp,
                    dx: dxp,
                    coef: [a, b, cst],
                    relu,
                };
                simd::vectorized(width, plane);
            });
        // SAFETY: `dx` has the length of `x`, `y` and `dy`, all cut into the same `hw`-long
        // planes; the zipped loop above wrote every element of every plane of `dx`.
        unsafe { dx.assume_init() }
    });
    (dx, dgamma, dbeta)
}

/// One plane of the input gradient: `dx = a·g + b·x + c` with `[a, b, c] = coef`.
struct InputGrad<'a> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [std::mem::MaybeUninit<f32>],
    coef: [f32; 3],
    relu: bool,
}

impl Kernel for InputGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let [a, b, c] = self.coef;
        let points = self.x.iter().zip(self.y).zip(self.dy);
        for (d, ((&xv, &yv), &dv)) in self.dx.iter_mut().zip(points) {
            d.write(a * relu_grad(self.relu, yv, dv) + b * xv + c);
        }
    }
}
