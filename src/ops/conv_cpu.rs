//! CPU kernels for 2-D convolution (f32, NCHW, groups = 1) as im2col + one gemm per tile.
//!
//! Candle's own CPU conv spends most of its time outside the matrix product (its im2col copies
//! and, for the input gradient, a plain-loop transposed convolution). Here every pass is a large
//! gemm through the `gemm` crate (the same one Candle uses for matmul):
//! - forward:      `Y[n] = W · col(X[n])`, then the [`Epilogue`] (bias, folded BatchNorm, ReLU)
//!   on each output tile while it is in cache;
//! - weight grad:  `dW  = Σ_n dY[n] · col(X[n])ᵀ`, accumulated as `dWᵀ` so that the gemm reads
//!   the column matrix in its stored order;
//! - input grad:   for stride 1, a forward convolution of `dY` with the kernels flipped and the
//!   channel axes swapped; otherwise `dX[n] = col⁻¹(Wᵀ · dY[n])` (col2im scatters the columns).
//!
//! The forward pass runs (sample, output rows) tiles in parallel, each gemm single-threaded; with
//! fewer samples than threads, samples are cut into several tiles so im2col runs in parallel too.
//! The backward pass splits the batch into one chunk per thread (with fewer samples than threads,
//! samples run one after another and the gemm itself uses all threads). An im2col tile covers
//! whole output rows, bounded in size, so full-resolution layers never need the column matrix of
//! a whole image. A 1x1 convolution with stride 1 and no padding uses the input directly.

use gemm::Parallelism;
use rayon::prelude::*;

use super::buffer::uninit_f32;

/// Upper bound on the floats of one im2col tile (per thread): 16 MiB.
const TILE_FLOATS: usize = 4 << 20;

/// Shapes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeom {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.padding - self.kh) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.padding - self.kw) / self.stride + 1
    }
    /// Rows of the column matrix: `C_in · KH · KW`.
    pub fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }
    /// Output rows per im2col tile.
    fn tile_rows(&self) -> usize {
        let per_row = self.k() * self.out_w();
        (TILE_FLOATS / per_row.max(1)).clamp(1, self.out_h())
    }
    pub fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.c_out * self.out_h() * self.out_w()
    }
    /// Multiply-adds of the forward pass (the backward passes cost the same each).
    pub fn macs(&self) -> usize {
        self.n * self.out_len() * self.k()
    }
}

/// The output columns `[lo, hi)` of valid input for kernel offset `k` along one axis.
fn valid_range(
    k: usize,
    pad: usize,
    stride: usize,
    size_in: usize,
    size_out: usize,
) -> (usize, usize) {
    // input index = o·stride + k − pad must lie in [0, size_in)
    let lo = if k >= pad {
        0
    } else {
        (pad - k).div_ceil(stride)
    };
    let hi = if size_in + pad > k {
        (size_in + pad - k).div_ceil(stride).min(size_out)
    } else {
        0
    };
    (lo.min(size_out), hi.max(lo.min(size_out)))
}

/// Fills `col` (K x T row-major, T = rows · OW) with the input patches of output rows `[oh0, oh1)`.
fn im2col(x: &[f32], g: &ConvGeom, oh0: usize, oh1: usize, col: &mut [f32]) {
    let (ow_n, t) = (g.out_w(), (oh1 - oh0) * g.out_w());
    let plane = g.h * g.w;
    for c in 0..g.c_in {
        let xc = &x[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let k = (c * g.kh + ki) * g.kw + kj;
                let row = &mut col[k * t..(k + 1) * t];
                let (lo, hi) = valid_range(kj, g.padding, g.stride, g.w, ow_n);
                for (r, oh) in (oh0..oh1).enumerate() {
                    let dst = &mut row[r * ow_n..(r + 1) * ow_n];
                    let ih = (oh * g.stride + ki) as isize - g.padding as isize;
                    if ih < 0 || ih >= g.h as isize || lo >= hi {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &xc[ih as usize * g.w..(ih as usize + 1) * g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    let first = lo * g.stride + kj - g.padding;
                    if g.stride == 1 {
                        dst[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                    } else {
                        for (d, s) in dst[lo..hi]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(g.stride))
                        {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// Adds the columns `col` (K x T of output rows `[oh0, oh1)`) back into the input gradient `dx`.
fn col2im(col: &[f32], g: &ConvGeom, oh0: usize, oh1: usize, dx: &mut [f32]) {
    let (ow_n, t) = (g.out_w(), (oh1 - oh0) * g.out_w());
    let plane = g.h * g.w;
    for c in 0..g.c_in {
        let dxc = &mut dx[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let k = (c * g.kh + ki) * g.kw + kj;
                let row = &col[k * t..(k + 1) * t];
                let (lo, hi) = valid_range(kj, g.padding, g.stride, g.w, ow_n);
                if lo >= hi {
                    continue;
                }
                for (r, oh) in (oh0..oh1).enumerate() {
                    let ih = (oh * g.stride + ki) as isize - g.padding as isize;
                    if ih < 0 || ih >= g.h as isize {
                        continue;
                    }
                    let src = &row[r * ow_n + lo..r * ow_n + hi];
                    let dst = &mut dxc[ih as usize * g.w..(ih as usize + 1) * g.w];
                    let first = lo * g.stride + kj - g.padding;
                    if g.stride == 1 {
                        for (d, s) in dst[first..first + (hi - lo)].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in dst[first..].iter_mut().step_by(g.stride).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)`, all strides in elements.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
    par: Parallelism,
) {
    gemm::gemm(
        m, n, k, dst, dst_cs, dst_rs, accumulate, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, 1.0,
        1.0, false, false, false, par,
    );
}

/// How the backward pass spreads the batch over threads: (chunk size in samples, gemm
/// parallelism inside a chunk).
fn plan(n: usize) -> (usize, Parallelism) {
    let threads = rayon::current_num_threads().max(1);
    if n >= threads {
        (n.div_ceil(threads), Parallelism::None)
    } else {
        (1, Parallelism::Rayon(threads))
    }
}

/// Runs `f(first_sample, samples)` over the batch, in parallel chunks when the batch allows it.
fn for_chunks<F: Fn(usize, usize) + Sync>(n: usize, chunk: usize, parallel: bool, f: F) {
    let starts: Vec<usize> = (0..n).step_by(chunk.max(1)).collect();
    if parallel {
        starts.par_iter().for_each(|&s| f(s, chunk.min(n - s)));
    } else {
        starts.iter().for_each(|&s| f(s, chunk.min(n - s)));
    }
}

/// Raw pointer that may cross threads: every chunk writes a disjoint part of the buffer.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    // A method (not field access) so closures capture the whole Send wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// What the forward pass applies to the convolution's output, per output channel:
/// `max?(0, y · scale[c] + bias[c])`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Multiplies each output channel (`C_out` values): a BatchNorm folded in for inference.
    pub scale: Option<&'a [f32]>,
    /// Added to each output channel (`C_out` values).
    pub bias: Option<&'a [f32]>,
    /// `max(0, ·)` last.
    pub relu: bool,
}

impl Epilogue<'_> {
    fn is_identity(&self) -> bool {
        self.scale.is_none() && self.bias.is_none() && !self.relu
    }

    /// Applies the epilogue to `rows` output channels of `len` values each, `stride` apart,
    /// while the tile the gemm just wrote is still in cache.
    ///
    /// # Safety
    /// `dst` must point to `rows` runs of `len` initialised floats `stride` apart.
    unsafe fn apply(&self, dst: *mut f32, rows: usize, stride: usize, len: usize) {
        if self.is_identity() {
            return;
        }
        for r in 0..rows {
            // SAFETY: guaranteed by the caller.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.add(r * stride), len) };
            let a = self.scale.map_or(1.0, |s| s[r]);
            let b = self.bias.map_or(0.0, |b| b[r]);
            match (self.scale.is_some(), self.relu) {
                (true, true) => row.iter_mut().for_each(|v| *v = (*v * a + b).max(0.0)),
                (true, false) => row.iter_mut().for_each(|v| *v = *v * a + b),
                (false, true) => row.iter_mut().for_each(|v| *v = (*v + b).max(0.0)),
                (false, false) => row.iter_mut().for_each(|v| *v += b),
            }
        }
    }
}

/// Forward pass: `x` is `(N, C_in, H, W)`, `w` is `(C_out, C_in, KH, KW)`, returns
/// `(N, C_out, OH, OW)` with the epilogue (bias, ReLU) applied.
pub fn conv2d_forward(x: &[f32], w: &[f32], g: &ConvGeom, epi: Epilogue) -> Vec<f32> {
    assert_eq!(x.len(), g.n * g.in_len());
    assert_eq!(w.len(), g.c_out * g.k());
    for v in [epi.scale, epi.bias].into_iter().flatten() {
        assert_eq!(v.len(), g.c_out);
    }
    let (oh_n, ow_n, k) = (g.out_h(), g.out_w(), g.k());
    let ohw = oh_n * ow_n;
    // SAFETY: the tiles below cover every output column of every sample, and the gemm writes
    // its destination without reading it.
    let mut y = unsafe { uninit_f32(g.n * g.out_len()) };
    let yp = SendPtr(y.as_mut_ptr());
    // Work items are (sample, output rows) tiles. With fewer samples than threads, samples are
    // cut into at least as many tiles as threads, so that im2col and the epilogue run in
    // parallel too (at batch 1 a serial im2col left one core idle for a third of the time).
    let threads = rayon::current_num_threads().max(1);
    let per_sample = if g.n >= threads {
        1
    } else {
        threads.div_ceil(g.n)
    };
    let rows = g.tile_rows().min(oh_n.div_ceil(per_sample)).max(1);
    let tiles: Vec<(usize, usize, usize)> = (0..g.n)
        .flat_map(|s| {
            (0..oh_n)
                .step_by(rows)
                .map(move |o| (s, o, (o + rows).min(oh_n)))
        })
        .collect();
    let run = |col: &mut Vec<f32>, (s, oh0, oh1): (usize, usize, usize), par: Parallelism| {
        let xs = &x[s * g.in_len()..(s + 1) * g.in_len()];
        let t = (oh1 - oh0) * ow_n;
        let (rhs, rhs_rs) = if g.is_pointwise() {
            (xs[oh0 * ow_n..].as_ptr(), ohw as isize)
        } else {
            if col.is_empty() {
                // SAFETY: im2col writes every element of a tile before the gemm reads it.
                *col = unsafe { uninit_f32(k * rows * ow_n) };
            }
            im2col(xs, g, oh0, oh1, col);
            (col.as_ptr(), t as isize)
        };
        // SAFETY: the destination is sample `s`'s columns [oh0·OW, oh1·OW) of `y`, which no
        // other tile writes; all pointers stay inside their buffers.
        unsafe {
            let dst = yp.get().add(s * g.out_len() + oh0 * ow_n);
            gemm_f32(
                g.c_out,
                t,
                k,
                dst,
                ohw as isize,
                1,
                false,
                w.as_ptr(),
                k as isize,
                1,
                rhs,
                rhs_rs,
                1,
                par,
            );
            epi.apply(dst, g.c_out, ohw, t);
        }
    };
    if tiles.len() >= threads && threads > 1 {
        tiles
            .par_iter()
            .for_each_init(Vec::new, |col, &tile| run(col, tile, Parallelism::None));
    } else {
        let par = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        let mut col = Vec::new();
        for &tile in &tiles {
            run(&mut col, tile, par);
        }
    }
    y
}

/// The input gradient of a stride-1 convolution as a forward convolution of `dy` with the
/// kernels flipped and the channel axes swapped (padding `KH − 1 − P`): one gemm per tile with
/// the long `C_out · KH · KW` reduction, instead of a gemm with the short `C_out` reduction whose
/// nine-times-larger column matrix col2im then scatters back.
fn input_grad_by_flipped_conv(w: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (kk, k) = (g.kh * g.kw, g.k());
    let mut wt = vec![0f32; w.len()];
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            let src = &w[co * k + ci * kk..][..kk];
            let dst = &mut wt[(ci * g.c_out + co) * kk..][..kk];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    let gt = ConvGeom {
        n: g.n,
        c_in: g.c_out,
        h: g.out_h(),
        w: g.out_w(),
        c_out: g.c_in,
        kh: g.kh,
        kw: g.kw,
        stride: 1,
        padding: g.kh - 1 - g.padding,
    };
    conv2d_forward(dy, &wt, &gt, Epilogue::default())
}

/// Whether [`input_grad_by_flipped_conv`] applies: stride 1, square kernel, padding inside it.
fn flipped_conv_applies(g: &ConvGeom) -> bool {
    g.stride == 1 && g.kh == g.kw && g.padding < g.kh && !g.is_pointwise()
}

/// Backward pass: returns `(dx, dw)`, each only when asked for.
pub fn conv2d_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    g: &ConvGeom,
    need_dx: bool,
    need_dw: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    assert_eq!(x.len(), g.n * g.in_len());
    assert_eq!(dy.len(), g.n * g.out_len());
    let (oh_n, ow_n, k) = (g.out_h(), g.out_w(), g.k());
    let ohw = oh_n * ow_n;
    let pw = g.is_pointwise();
    // Stride-1 kernels get their input gradient from one flipped forward convolution; the
    // others (1x1, strided) build it tile by tile below.
    let flipped = need_dx && flipped_conv_applies(g);
    let tiled_dx = need_dx && !flipped;
    let mut dx = if flipped {
        Some(input_grad_by_flipped_conv(w, dy, g))
    } else if tiled_dx && pw {
        // SAFETY: the 1x1 gemms below write every column of every sample's gradient.
        Some(unsafe { uninit_f32(g.n * g.in_len()) })
    } else {
        // col2im accumulates into it.
        tiled_dx.then(|| vec![0f32; g.n * g.in_len()])
    };
    let dxp = SendPtr(dx.as_mut().map_or(std::ptr::null_mut(), |v| v.as_mut_ptr()));
    let (chunk, par) = plan(g.n);
    let rows = g.tile_rows();
    let chunks = g.n.div_ceil(chunk);
    // One weight-gradient accumulator per chunk (dWᵀ, K x C_out), summed at the end.
    let mut dw_parts = if need_dw {
        vec![0f32; chunks * g.c_out * k]
    } else {
        Vec::new()
    };
    let dwp = SendPtr(dw_parts.as_mut_ptr());
    if !(need_dw || tiled_dx) {
        return (dx, None);
    }
    for_chunks(g.n, chunk, matches!(par, Parallelism::None), |s0, ns| {
        // SAFETY (both): im2col and the gemm write every element of a tile before it is read.
        let mut col = if pw || !need_dw {
            Vec::new()
        } else {
            unsafe { uninit_f32(k * rows * ow_n) }
        };
        let mut dcol = if pw || !tiled_dx {
            Vec::new()
        } else {
            unsafe { uninit_f32(k * rows * ow_n) }
        };
        // SAFETY: chunk `s0 / chunk` owns its accumulator slice.
        let dw_acc = unsafe { dwp.get().add((s0 / chunk) * g.c_out * k) };
        for s in s0..s0 + ns {
            let xs = &x[s * g.in_len()..(s + 1) * g.in_len()];
            let mut oh0 = 0;
            while oh0 < oh_n {
                let oh1 = (oh0 + rows).min(oh_n);
                let t = (oh1 - oh0) * ow_n;
                let dy_t = dy[s * g.out_len() + oh0 * ow_n..].as_ptr();
                if need_dw {
                    let (col_p, col_rs) = if pw {
                        (xs[oh0 * ow_n..].as_ptr(), ohw as isize)
                    } else {
                        im2col(xs, g, oh0, oh1, &mut col);
                        (col.as_ptr(), t as isize)
                    };
                    // dW (C_out x K) += dY_tile (C_out x T) · colᵀ (T x K), accumulated
                    // column-major (as dWᵀ): stored row-major, gemm would transpose the problem
                    // and pack the whole column matrix across its rows, which cost more than
                    // the multiplication itself in HRNet's narrow layers.
                    unsafe {
                        gemm_f32(
                            g.c_out,
                            k,
                            t,
                            dw_acc,
                            1,
                            g.c_out as isize,
                            true,
                            dy_t,
                            ohw as isize,
                            1,
                            col_p,
                            1,
                            col_rs,
                            par,
                        );
                    }
                }
                if tiled_dx {
                    // dcol (K x T) = Wᵀ (K x C_out) · dY_tile (C_out x T)
                    unsafe {
                        let (dst, dst_rs) = if pw {
                            (dxp.get().add(s * g.in_len() + oh0 * ow_n), ohw as isize)
                        } else {
                            (dcol.as_mut_ptr(), t as isize)
                        };
                        gemm_f32(
                            k,
                            t,
                            g.c_out,
                            dst,
                            dst_rs,
                            1,
                            false,
                            w.as_ptr(),
                            1,
                            k as isize,
                            dy_t,
                            ohw as isize,
                            1,
                            par,
                        );
                        if !pw {
                            let dxs = std::slice::from_raw_parts_mut(
                                dxp.get().add(s * g.in_len()),
                                g.in_len(),
                            );
                            col2im(&dcol, g, oh0, oh1, dxs);
                        }
                    }
                }
                oh0 = oh1;
            }
        }
    });
    let dw = need_dw.then(|| {
        // Sum the chunks' dWᵀ and transpose to (C_out, K).
        let len = g.c_out * k;
        let mut dw = vec![0f32; len];
        for part in dw_parts.chunks(len) {
            for (kk, row) in part.chunks(g.c_out).enumerate() {
                for (co, &v) in row.iter().enumerate() {
                    dw[co * k + kk] += v;
                }
            }
        }
        dw
    });
    (dx, dw)
}

/// Undoes the epilogue in the backward pass: returns the gradient at the gemm's output (`dy`
/// masked where the ReLU output `y` is 0; `None` without a ReLU, when it is `dy` itself) and, if
/// asked, the bias gradient (per-channel sums of that gradient). One parallel pass over `dy`.
pub fn epilogue_backward(
    dy: &[f32],
    y: &[f32],
    g: &ConvGeom,
    relu: bool,
    need_db: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let plane = g.out_h() * g.out_w();
    assert_eq!(dy.len(), g.n * g.out_len());
    assert_eq!(y.len(), dy.len());
    let sum = |v: &[f32]| -> f64 {
        // 8 f32 lanes (vectorisable), then f64 across planes.
        let mut acc = [0f32; 8];
        let mut it = v.chunks_exact(8);
        for c in &mut it {
            for i in 0..8 {
                acc[i] += c[i];
            }
        }
        acc.iter().chain(it.remainder()).map(|&a| a as f64).sum()
    };
    let (masked, plane_sums): (Option<Vec<f32>>, Vec<f64>) = if relu {
        // SAFETY: every plane of the buffer is written below.
        let mut m = unsafe { uninit_f32(dy.len()) };
        let sums = m
            .par_chunks_mut(plane)
            .zip(dy.par_chunks(plane).zip(y.par_chunks(plane)))
            .map(|(m, (d, y))| {
                for i in 0..m.len() {
                    m[i] = if y[i] > 0.0 { d[i] } else { 0.0 };
                }
                if need_db {
                    sum(m)
                } else {
                    0.0
                }
            })
            .collect();
        (Some(m), sums)
    } else if need_db {
        (None, dy.par_chunks(plane).map(sum).collect())
    } else {
        (None, Vec::new())
    };
    let db = need_db.then(|| {
        (0..g.c_out)
            .map(|c| (0..g.n).map(|s| plane_sums[s * g.c_out + c]).sum::<f64>() as f32)
            .collect()
    });
    (masked, db)
}
