//! CPU kernels for 2-D convolution (f32, NCHW, groups = 1): the forward and backward passes,
//! each layer's work going to the algorithm [`super::conv_algo`] picks: the direct kernels
//! ([`super::conv_direct`]), Winograd ([`super::conv_winograd`]) or, for every geometry, im2col +
//! one gemm per tile, described here.
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

use std::mem::MaybeUninit;

use gemm::Parallelism;
use rayon::prelude::*;

use super::buffer::OutBuf;
use super::conv_algo::{self, ConvAlgo};
pub use super::conv_geom::{ConvGeom, Epilogue};
use super::simd;
use super::{conv_direct, conv_winograd};

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

/// Fills `col` (K x T row-major, T = rows · OW) with the input patches of output rows `[oh0, oh1)`:
/// writes every element of `col[..K·T]`.
fn im2col(x: &[f32], g: &ConvGeom, oh0: usize, oh1: usize, col: &mut [MaybeUninit<f32>]) {
    const ZERO: MaybeUninit<f32> = MaybeUninit::new(0.0);
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
                        dst.fill(ZERO);
                        continue;
                    }
                    let src = &xc[ih as usize * g.w..(ih as usize + 1) * g.w];
                    dst[..lo].fill(ZERO);
                    dst[hi..].fill(ZERO);
                    let first = lo * g.stride + kj - g.padding;
                    if g.stride == 1 {
                        dst[lo..hi].write_copy_of_slice(&src[first..first + (hi - lo)]);
                    } else {
                        // `valid_range` keeps every strided index below W: the zip writes all
                        // of `dst[lo..hi]`.
                        for (d, s) in dst[lo..hi]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(g.stride))
                        {
                            d.write(*s);
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

/// A strided matrix in memory: element `(i, j)` at `ptr + i · row_stride + j · col_stride`
/// (strides in elements).
#[derive(Clone, Copy, Debug)]
struct Mat<P> {
    ptr: P,
    row_stride: isize,
    col_stride: isize,
}

impl<P> Mat<P> {
    /// Rows `row_stride` apart, each contiguous.
    fn rows(ptr: P, row_stride: isize) -> Self {
        Mat {
            ptr,
            row_stride,
            col_stride: 1,
        }
    }

    /// Columns `col_stride` apart, each contiguous (a row-major matrix seen transposed).
    fn cols(ptr: P, col_stride: isize) -> Self {
        Mat {
            ptr,
            row_stride: 1,
            col_stride,
        }
    }
}

/// One matrix product `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)`.
#[derive(Clone, Copy, Debug)]
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    /// Add the product to `dst` (which is then read) instead of overwriting it (never read).
    accumulate: bool,
    par: Parallelism,
}

impl Gemm {
    /// Runs the product.
    ///
    /// # Safety
    /// `dst` must be valid for reads and writes of its `m x n` elements, and no other thread
    /// may access them during the call; they must be initialised when `accumulate`, and are all
    /// written (never read) otherwise. `lhs` and `rhs` must be valid for reads of their
    /// `m x k` and `k x n` elements, all initialised. Strides must keep every element inside
    /// its buffer.
    unsafe fn run(self, dst: Mat<*mut f32>, lhs: Mat<*const f32>, rhs: Mat<*const f32>) {
        // SAFETY: the caller guarantees the pointers and strides (gemm's documented contract:
        // `dst := alpha·dst + beta·lhs·rhs`, dst not read when `read_dst` is false). gemm takes
        // its strides as (column, row).
        unsafe {
            gemm::gemm(
                self.m,
                self.n,
                self.k,
                dst.ptr,
                dst.col_stride,
                dst.row_stride,
                self.accumulate,
                lhs.ptr,
                lhs.col_stride,
                lhs.row_stride,
                rhs.ptr,
                rhs.col_stride,
                rhs.row_stride,
                1.0,
                1.0,
                false,
                false,
                false,
                self.par,
            );
        }
    }
}

/// How the backward pass spreads a batch of `n` over `threads` threads: (chunk size in samples,
/// gemm parallelism inside a chunk, whether chunks run in parallel).
fn backward_plan(n: usize, threads: usize) -> (usize, Parallelism, bool) {
    let threads = threads.max(1);
    if n >= threads {
        (n.div_ceil(threads), Parallelism::None, true)
    } else {
        (1, Parallelism::Rayon(threads), false)
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
// SAFETY: a SendPtr is only an address; every use dereferences it in an `unsafe` block whose
// own SAFETY comment shows that the parallel tasks touch disjoint elements of a buffer that
// outlives them (the kernels below wait for all tasks before returning the buffer).
unsafe impl Send for SendPtr {}
// SAFETY: as for Send: sharing the address between tasks is sound because each task writes
// only its own disjoint part.
unsafe impl Sync for SendPtr {}
impl SendPtr {
    // A method (not field access) so closures capture the whole Send wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// How the forward pass splits its work over `threads` threads.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ForwardPlan {
    /// Output rows per tile (the last tile of a sample may have fewer).
    rows: usize,
    /// `(sample, first output row, end output row)` of each tile: together they cover every
    /// output row of every sample exactly once.
    tiles: Vec<(usize, usize, usize)>,
    /// Tiles run in parallel, each gemm on one thread; otherwise they run one after another,
    /// each gemm on all threads.
    parallel: bool,
}

fn forward_plan(g: &ConvGeom, threads: usize) -> ForwardPlan {
    let threads = threads.max(1);
    let oh_n = g.out_h();
    // Work items are (sample, output rows) tiles. With fewer samples than threads, samples are
    // cut into at least as many tiles as threads, so that im2col and the epilogue run in
    // parallel too (at batch 1 a serial im2col left one core idle for a third of the time).
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
    let parallel = tiles.len() >= threads && threads > 1;
    ForwardPlan {
        rows,
        tiles,
        parallel,
    }
}

/// A forward pass's algorithm with the weights laid out for it.
enum Kernels {
    Gemm,
    /// [`conv_direct::pack_weights`].
    Direct(conv_direct::Packed),
    /// [`conv_winograd::transform_weights`].
    Winograd(Vec<f32>),
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
    let threads = rayon::current_num_threads().max(1);
    let plan = forward_plan(g, threads);
    let rows = plan.rows;
    let mut y = OutBuf::new(g.n * g.out_len());
    let yp = SendPtr(y.as_mut_ptr());
    let kernels = match conv_algo::forward(g) {
        ConvAlgo::Gemm => Kernels::Gemm,
        ConvAlgo::Direct => Kernels::Direct(conv_direct::pack_weights(w, g)),
        ConvAlgo::Winograd => Kernels::Winograd(conv_winograd::transform_weights(w, g)),
    };
    // Read here: the tiles run on rayon's workers.
    let width = simd::current();
    let run = |col: &mut Option<OutBuf>, (s, oh0, oh1): (usize, usize, usize), par: Parallelism| {
        let xs = &x[s * g.in_len()..(s + 1) * g.in_len()];
        // Sample `s`'s C_out·OH·OW outputs, inside `y` (N·C_out·OH·OW floats).
        let ys = yp.get().wrapping_add(s * g.out_len());
        match &kernels {
            Kernels::Winograd(u) => {
                let layer = conv_winograd::Layer {
                    u,
                    g,
                    epi: &epi,
                    width,
                };
                // SAFETY: `ys` is sample `s`'s outputs, and the plan's tiles partition every
                // sample's rows: rows [oh0, oh1) are this tile's alone.
                unsafe { layer.forward_rows(xs, oh0, oh1, ys) };
                return;
            }
            Kernels::Direct(packed) => {
                // SAFETY: `ys` is sample `s`'s outputs, and the plan's tiles partition every
                // sample's rows: rows [oh0, oh1) are this tile's alone.
                unsafe { conv_direct::forward_rows(xs, packed, g, oh0, oh1, &epi, ys) };
                return;
            }
            Kernels::Gemm => {}
        }
        let t = (oh1 - oh0) * ow_n;
        let rhs = if g.is_pointwise() {
            Mat::rows(xs[oh0 * ow_n..].as_ptr(), ohw as isize)
        } else {
            let col = col.get_or_insert_with(|| OutBuf::new(k * rows * ow_n));
            im2col(xs, g, oh0, oh1, col);
            Mat::rows(col.as_ptr(), t as isize)
        };
        let gemm = Gemm {
            m: g.c_out,
            n: t,
            k,
            accumulate: false,
            par,
        };
        // SAFETY: `dst` is the tile's part of `y`: columns [oh0·OW, oh1·OW) of the C_out planes
        // (OH·OW apart) of sample `s`, inside `y` (N·C_out·OH·OW floats), and no other tile
        // touches it (the plan's tiles partition every sample's rows). The gemm writes all of it
        // without reading (no accumulation); the epilogue then reads and rewrites the same
        // elements. `w` is C_out x K row-major. `rhs` is K x T inside the sample's input (1x1:
        // K = C_in planes of OH·OW = H·W floats, from column oh0·OW) or the K x T tile that
        // im2col has just written into this worker's own `col` (K·rows·OW ≥ K·T floats).
        unsafe {
            let dst = yp.get().add(s * g.out_len() + oh0 * ow_n);
            gemm.run(
                Mat::rows(dst, ohw as isize),
                Mat::rows(w.as_ptr(), k as isize),
                rhs,
            );
            epi.apply(dst, g.c_out, ohw, t);
        }
    };
    // The direct and Winograd tiles are single-threaded: with fewer tiles than threads they
    // still run side by side (only im2col's gemm can use the idle threads inside a tile).
    if plan.parallel || !matches!(kernels, Kernels::Gemm) {
        plan.tiles
            .par_iter()
            .for_each_init(|| None, |col, &tile| run(col, tile, Parallelism::None));
    } else {
        let par = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        let mut col = None;
        for &tile in &plan.tiles {
            run(&mut col, tile, par);
        }
    }
    // SAFETY: the tiles cover every output row of every sample, and each tile's gemm wrote all
    // C_out channels of its rows (see `run`): every element of `y` is written.
    unsafe { y.assume_init() }
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
    assert_eq!(w.len(), g.c_out * g.k());
    assert_eq!(dy.len(), g.n * g.out_len());
    let (oh_n, ow_n, k) = (g.out_h(), g.out_w(), g.k());
    let pw = g.is_pointwise();
    // Stride-1 kernels get their input gradient from one flipped forward convolution; the
    // others (1x1, strided) build it tile by tile below.
    let flipped = need_dx && flipped_conv_applies(g);
    let tiled_dx = need_dx && !flipped;
    let dx_flipped = flipped.then(|| input_grad_by_flipped_conv(w, dy, g));
    // Narrow 3x3 stride-1 layers: the direct weight-gradient kernel.
    let dw_direct =
        (need_dw && conv_algo::direct_weight_grad(g)).then(|| conv_direct::weight_grad(x, dy, g));
    let need_dw = need_dw && dw_direct.is_none();
    // 1x1: the gemms below write every element of the input gradient. Otherwise col2im adds
    // into it, so it starts at zero.
    let mut dx_written = (tiled_dx && pw).then(|| OutBuf::new(g.n * g.in_len()));
    let mut dx_summed = (tiled_dx && !pw).then(|| vec![0f32; g.n * g.in_len()]);
    let dxp = SendPtr(match (&mut dx_written, &mut dx_summed) {
        (Some(b), _) => b.as_mut_ptr(),
        (_, Some(v)) => v.as_mut_ptr(),
        _ => std::ptr::null_mut(),
    });
    let (chunk, par, parallel) = backward_plan(g.n, rayon::current_num_threads());
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
        return (dx_flipped, dw_direct);
    }
    let tiles = BackwardTiles {
        x,
        w,
        dy,
        g,
        par,
        dw_acc: need_dw.then_some(&dwp),
        dx: tiled_dx.then_some(&dxp),
    };
    for_chunks(g.n, chunk, parallel, |s0, ns| {
        // This chunk's scratch tiles: im2col writes `col`, the input-gradient gemm `dcol`.
        let mut col = (need_dw && !pw).then(|| OutBuf::new(k * rows * ow_n));
        let mut dcol = (tiled_dx && !pw).then(|| OutBuf::new(k * rows * ow_n));
        for s in s0..s0 + ns {
            let mut oh0 = 0;
            while oh0 < oh_n {
                let oh1 = (oh0 + rows).min(oh_n);
                // SAFETY: chunk `s0 / chunk` owns accumulator `s0 / chunk` of `dw_parts` and
                // sample `s` of the input gradient (see `BackwardTiles`).
                unsafe {
                    tiles.weight_grad(s, oh0, oh1, s0 / chunk, &mut col);
                    tiles.input_grad(s, oh0, oh1, &mut dcol);
                }
                oh0 = oh1;
            }
        }
    });
    let dx = match (dx_flipped, dx_written) {
        (Some(v), _) => Some(v),
        (None, Some(b)) => {
            // SAFETY: the chunks cover every sample and their row tiles every output row; for
            // each, the 1x1 gemm wrote that tile of all C_in planes: every element is written.
            Some(unsafe { b.assume_init() })
        }
        (None, None) => dx_summed,
    };
    let dw = dw_direct.or_else(|| need_dw.then(|| sum_weight_grad_parts(&dw_parts, g)));
    (dx, dw)
}

/// Sums the chunks' weight-gradient accumulators (each dWᵀ, K x C_out) into dW (C_out, K).
fn sum_weight_grad_parts(parts: &[f32], g: &ConvGeom) -> Vec<f32> {
    let k = g.k();
    let len = g.c_out * k;
    let mut dw = vec![0f32; len];
    for part in parts.chunks(len) {
        for (kk, row) in part.chunks(g.c_out).enumerate() {
            for (co, &v) in row.iter().enumerate() {
                dw[co * k + kk] += v;
            }
        }
    }
    dw
}

/// What every row tile of one [`conv2d_backward`] call shares: the operands and where the
/// gradients go. `dw_acc` is the chunks' weight-gradient accumulators (chunks · C_out · K floats,
/// zero-initialised; `None`: no weight gradient by this path); `dx` the input gradient
/// (N · C_in · H · W floats: for 1x1 kernels uninitialised and written by the gemm, otherwise
/// zero-initialised and added into by col2im; `None`: no tiled input gradient).
struct BackwardTiles<'a> {
    x: &'a [f32],
    w: &'a [f32],
    dy: &'a [f32],
    g: &'a ConvGeom,
    par: Parallelism,
    dw_acc: Option<&'a SendPtr>,
    dx: Option<&'a SendPtr>,
}

impl BackwardTiles<'_> {
    /// dY tile (C_out x T) of sample `s`, output rows `oh0..oh1`: its C_out planes (OH·OW
    /// apart) from column oh0·OW.
    fn dy_tile(&self, s: usize, oh0: usize) -> Mat<*const f32> {
        let g = self.g;
        let ohw = g.out_h() * g.out_w();
        Mat::rows(
            self.dy[s * g.out_len() + oh0 * g.out_w()..].as_ptr(),
            ohw as isize,
        )
    }

    /// Adds sample `s`'s rows `oh0..oh1` to accumulator `part` of the weight gradient.
    ///
    /// # Safety
    /// The caller's chunk owns accumulator `part` (no other thread touches it), and `col` is
    /// that chunk's own scratch tile of K·rows·OW floats (`None` for 1x1 kernels).
    unsafe fn weight_grad(
        &self,
        s: usize,
        oh0: usize,
        oh1: usize,
        part: usize,
        col: &mut Option<OutBuf>,
    ) {
        let Some(dwp) = self.dw_acc else { return };
        let g = self.g;
        let (ow_n, k) = (g.out_w(), g.k());
        let ohw = g.out_h() * ow_n;
        let t = (oh1 - oh0) * ow_n;
        let xs = &self.x[s * g.in_len()..(s + 1) * g.in_len()];
        // colᵀ (T x K): the sample's input itself (1x1) or the im2col tile.
        let col_t = match col {
            None => Mat::cols(xs[oh0 * ow_n..].as_ptr(), ohw as isize),
            Some(col) => {
                im2col(xs, g, oh0, oh1, col);
                Mat::cols(col.as_ptr(), t as isize)
            }
        };
        // dW (C_out x K) += dY_tile (C_out x T) · colᵀ (T x K), accumulated column-major (as
        // dWᵀ): stored row-major, gemm would transpose the problem and pack the whole column
        // matrix across its rows, which cost more than the multiplication itself in HRNet's
        // narrow layers.
        let gemm = Gemm {
            m: g.c_out,
            n: k,
            k: t,
            accumulate: true,
            par: self.par,
        };
        // SAFETY: accumulator `part` is C_out · K floats of `dw_acc` that only the caller's
        // chunk touches, here C_out x K column-major. The dY tile lies in `dy` (length asserted
        // by `conv2d_backward`); `col_t` is T x K inside the sample's input (1x1: K = C_in planes
        // of H·W = OH·OW floats) or the K x T tile im2col has just written into `col`
        // (K·rows·OW ≥ K·T floats).
        unsafe {
            let dw_acc = dwp.get().add(part * g.c_out * k);
            gemm.run(
                Mat::cols(dw_acc, g.c_out as isize),
                self.dy_tile(s, oh0),
                col_t,
            );
        }
    }

    /// Writes (1x1) or adds (others) sample `s`'s rows `oh0..oh1` into the input gradient.
    ///
    /// # Safety
    /// Sample `s` belongs to the caller's chunk alone, its row tiles are disjoint, and `dcol` is
    /// that chunk's own scratch tile of K·rows·OW floats (`None` for 1x1 kernels).
    unsafe fn input_grad(&self, s: usize, oh0: usize, oh1: usize, dcol: &mut Option<OutBuf>) {
        let Some(dxp) = self.dx else { return };
        let g = self.g;
        let (ow_n, k) = (g.out_w(), g.k());
        let ohw = g.out_h() * ow_n;
        let t = (oh1 - oh0) * ow_n;
        let dy_t = self.dy_tile(s, oh0);
        // dcol (K x T) = Wᵀ (K x C_out) · dY_tile (C_out x T)
        let gemm = Gemm {
            m: k,
            n: t,
            k: g.c_out,
            accumulate: false,
            par: self.par,
        };
        let wt = Mat::cols(self.w.as_ptr(), k as isize);
        match dcol {
            None => {
                // SAFETY: 1x1: the destination is sample `s`'s K = C_in planes (H·W = OH·OW
                // apart) from column oh0·OW, T columns, inside `dx` (N·C_in·H·W floats); the
                // sample and tile are the caller's alone. The gemm writes it without reading it.
                // `w` is C_out x K row-major, read as Wᵀ; the dY tile lies in `dy`.
                unsafe {
                    let dst = dxp.get().add(s * g.in_len() + oh0 * ow_n);
                    gemm.run(Mat::rows(dst, ohw as isize), wt, dy_t);
                }
            }
            Some(dcol) => {
                // SAFETY: the destination is the first K·T floats of the caller's own `dcol`
                // (K·rows·OW ≥ K·T), as K x T row-major, written without being read; `w` and the
                // dY tile as above.
                unsafe { gemm.run(Mat::rows(dcol.as_mut_ptr(), t as isize), wt, dy_t) };
                // SAFETY: the gemm has just written all K x T = `dcol[..K·T]`.
                let dcol = unsafe { dcol[..k * t].assume_init_ref() };
                // SAFETY: sample `s`'s C_in·H·W floats of `dx` (N·C_in·H·W, zero-initialised),
                // which belong to the caller's chunk alone.
                let dxs = unsafe {
                    std::slice::from_raw_parts_mut(dxp.get().add(s * g.in_len()), g.in_len())
                };
                col2im(dcol, g, oh0, oh1, dxs);
            }
        }
    }
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
        let mut m = OutBuf::new(dy.len());
        let sums = m
            .par_chunks_mut(plane)
            .zip(dy.par_chunks(plane).zip(y.par_chunks(plane)))
            .map(|(m, (d, y))| {
                for i in 0..m.len() {
                    m[i].write(if y[i] > 0.0 { d[i] } else { 0.0 });
                }
                if need_db {
                    // SAFETY: the loop above has written every element of this plane.
                    sum(unsafe { m.assume_init_ref() })
                } else {
                    0.0
                }
            })
            .collect();
        // SAFETY: `m`, `dy` and `y` have the same length and the same planes; the loop above
        // wrote every element of every plane of `m`.
        (Some(unsafe { m.assume_init() }), sums)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a rayon pool of `threads` threads, as the op tests do.
    fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    fn geom(n: usize, h: usize, k: usize, stride: usize, padding: usize) -> ConvGeom {
        ConvGeom {
            n,
            c_in: 3,
            h,
            w: 10,
            c_out: 4,
            kh: k,
            kw: k,
            stride,
            padding,
        }
    }

    #[test]
    fn the_current_pool_sets_the_split() {
        // What the kernels read inside `install` is the installed pool's size.
        let g = geom(2, 13, 3, 1, 1);
        let plan = |threads| in_pool(threads, || forward_plan(&g, rayon::current_num_threads()));
        // One thread: one tile per sample, run serially.
        let p1 = plan(1);
        assert_eq!((p1.tiles.len(), p1.rows, p1.parallel), (2, 13, false));
        // Two threads: one tile per sample, in parallel.
        let p2 = plan(2);
        assert_eq!((p2.tiles.len(), p2.rows, p2.parallel), (2, 13, true));
        // Seven threads: each sample cut into four tiles of 4, 4, 4 and 1 rows, in parallel.
        let p7 = plan(7);
        assert_eq!((p7.tiles.len(), p7.rows, p7.parallel), (8, 4, true));
        // Fewer tiles than threads: serial tiles, each gemm on all threads.
        let small = geom(1, 3, 3, 1, 1);
        let p = in_pool(7, || forward_plan(&small, rayon::current_num_threads()));
        assert_eq!((p.tiles.len(), p.parallel), (3, false));

        let back = |n, threads| {
            let (chunk, par, parallel) =
                in_pool(threads, || backward_plan(n, rayon::current_num_threads()));
            let gemm_threads = match par {
                Parallelism::None => 1,
                Parallelism::Rayon(t) => t,
            };
            (chunk, gemm_threads, parallel)
        };
        assert_eq!(back(9, 1), (9, 1, true));
        assert_eq!(back(9, 2), (5, 1, true));
        assert_eq!(back(9, 7), (2, 1, true));
        assert_eq!(back(2, 7), (1, 7, false));
    }

    #[test]
    fn forward_tiles_cover_every_output_row_once() {
        // The invariant the forward pass's SAFETY comments rely on.
        for g in [
            geom(1, 3, 3, 1, 1),
            geom(2, 13, 3, 1, 1),
            geom(3, 20, 7, 2, 3),
            geom(9, 5, 1, 1, 0),
            ConvGeom {
                c_in: 64,
                w: 140,
                ..geom(1, 140, 3, 1, 1)
            },
        ] {
            for threads in [1, 2, 3, 7, 16] {
                let plan = forward_plan(&g, threads);
                let mut seen = vec![0u32; g.n * g.out_h()];
                for &(s, oh0, oh1) in &plan.tiles {
                    assert!(oh0 < oh1 && oh1 - oh0 <= plan.rows && oh1 <= g.out_h());
                    for oh in oh0..oh1 {
                        seen[s * g.out_h() + oh] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "{g:?} on {threads} threads");
            }
        }
    }
}
