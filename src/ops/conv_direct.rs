//! Direct convolution for stride-1 layers (AVX2 + FMA), without a column matrix.
//!
//! im2col writes every input value `KH · KW` times into a column matrix that gemm then packs
//! again; in narrow layers (HRNet's 18 and 36 channels) that copying cost as much as the
//! multiplication. Here each output tile of 6 channels x 16 pixels of one row is accumulated in
//! twelve AVX registers, straight from a zero-padded copy of the input rows (one copy instead of
//! nine): for every input channel and kernel offset, two unaligned loads of the shifted row, six
//! weight broadcasts and twelve fused multiply-adds. The [`Epilogue`] (folded BatchNorm, bias,
//! ReLU) is applied to the registers before the store.
//!
//! Parallel work items are (sample, output rows) tiles as in the im2col path; inside a tile the
//! rows are walked a few at a time for every block of output channels, so the padded rows and a
//! block's weights stay in cache while they are reused.

use rayon::prelude::*;

use super::conv_geom::{ConvGeom, Epilogue};

/// Output channels per register tile.
const BLOCK: usize = 6;

/// Output rows walked for one block of channels before the next block (cache reuse).
const ROW_GROUP: usize = 4;

/// Whether this machine runs the direct kernels (checked once; false off x86-64).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the direct kernel handles this geometry: stride 1, padding inside the kernel and
/// output rows of at least one vector (8 floats).
pub fn supports(g: &ConvGeom) -> bool {
    g.stride == 1 && g.padding < g.kh && g.padding < g.kw && g.out_w() >= 8 && g.out_h() >= 1
}

/// The weights `(C_out, C_in, KH, KW)` repacked for [`forward_rows`] in blocks of output
/// channels, `[block][c_in][kh][kw][BLOCK]` (the channels past `C_out` in the last block are
/// zero, computed and not stored).
pub fn pack_weights(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (k, kk) = (g.k(), g.kh * g.kw);
    let blocks = g.c_out.div_ceil(BLOCK);
    let mut packed = vec![0f32; blocks * k * BLOCK];
    for co in 0..g.c_out {
        let (b, lane) = (co / BLOCK, co % BLOCK);
        for ci in 0..g.c_in {
            for o in 0..kk {
                packed[(b * k + ci * kk + o) * BLOCK + lane] = w[co * k + ci * kk + o];
            }
        }
    }
    packed
}

thread_local! {
    /// Each worker's padded-rows buffer, reused from call to call: a fresh multi-megabyte
    /// buffer per call on a worker thread is mapped and zeroed by the kernel every time (worker
    /// threads' large blocks bypass the main heap, see `super::alloc`).
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on the input rows a tile of output rows `[oh0, oh1)` reads (see [`pad_rows`]), in
/// this thread's reused buffer. `f` must not run parallel work: while it waits, this thread
/// could pick up another task that needs the buffer.
fn with_padded_rows<R>(
    xs: &[f32],
    g: &ConvGeom,
    oh0: usize,
    oh1: usize,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    PADDED.with_borrow_mut(|out| {
        pad_rows(xs, g, oh0, oh1, out);
        f(out)
    })
}

/// Fills `out` with the input rows a tile of output rows `[oh0, oh1)` reads, zero-padded on
/// every side: `C_in` planes of `(oh1 − oh0 + KH − 1)` rows of `W + 2P` floats.
fn pad_rows(xs: &[f32], g: &ConvGeom, oh0: usize, oh1: usize, out: &mut Vec<f32>) {
    let (p, wp) = (g.padding, g.w + 2 * g.padding);
    let rows = oh1 - oh0 + g.kh - 1;
    out.clear();
    out.reserve(g.c_in * rows * wp);
    for c in 0..g.c_in {
        let plane = &xs[c * g.h * g.w..(c + 1) * g.h * g.w];
        for r in 0..rows {
            let ih = (oh0 + r) as isize - p as isize;
            if ih < 0 || ih >= g.h as isize {
                out.resize(out.len() + wp, 0.0);
            } else {
                let ih = ih as usize;
                out.resize(out.len() + p, 0.0);
                out.extend_from_slice(&plane[ih * g.w..(ih + 1) * g.w]);
                out.resize(out.len() + p, 0.0);
            }
        }
    }
}

/// One register tile: `V` vectors of 8 output pixels, vector `v` at output offset `out[v]`
/// (from the tile's first output) reading the padded input at offset `inp[v]`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tile {
    /// First output row and column.
    oh: usize,
    ow: usize,
    vectors: usize,
    out: [usize; 2],
    inp: [usize; 2],
}

/// The register tiles of output rows `[oh0, oh1)` (`ow ≥ 8` columns, padded rows `wp` floats
/// apart), in row order. Rows of 16 columns or more: 16-wide tiles, then one 8-wide tile if 8 or
/// more columns remain, then a last 8-wide tile ending at the row's end (overlapping the previous
/// one: it recomputes and rewrites the same values). Narrower rows (8 to 15 columns) are taken
/// two at a time, one vector per row, so that the kernel still holds twelve accumulators.
fn tiles(oh0: usize, oh1: usize, ow: usize, wp: usize) -> Vec<Tile> {
    debug_assert!(ow >= 8);
    let mut starts = Vec::new();
    let mut x = 0;
    while x + 16 <= ow {
        starts.push((x, 2));
        x += 16;
    }
    if x + 8 <= ow {
        starts.push((x, 1));
        x += 8;
    }
    if x < ow {
        starts.push((ow - 8, 1));
    }
    let mut out = Vec::new();
    let mut oh = oh0;
    while oh < oh1 {
        let pair = ow < 16 && oh + 1 < oh1;
        for &(x, vectors) in &starts {
            out.push(if pair {
                Tile {
                    oh,
                    ow: x,
                    vectors: 2,
                    out: [0, ow],
                    inp: [0, wp],
                }
            } else {
                Tile {
                    oh,
                    ow: x,
                    vectors,
                    out: [0, 8],
                    inp: [0, 8],
                }
            });
        }
        oh += if pair { 2 } else { 1 };
    }
    out
}

/// Forward convolution of one sample's output rows `[oh0, oh1)` into `y` (the sample's
/// `C_out · OH · OW` outputs), epilogue applied. Needs [`available`] and [`supports`].
///
/// # Safety
/// `y` must be valid for writes of the sample's `C_out · OH · OW` floats, and rows
/// `[oh0, oh1)` of every channel must be this call's alone while it runs.
pub unsafe fn forward_rows(
    xs: &[f32],
    packed: &[f32],
    g: &ConvGeom,
    oh0: usize,
    oh1: usize,
    epi: &Epilogue,
    y: *mut f32,
) {
    assert!(available() && supports(g));
    let wp = g.w + 2 * g.padding;
    with_padded_rows(xs, g, oh0, oh1, |rows| {
        let plane = (oh1 - oh0 + g.kh - 1) * wp;
        let (ohw, ow_n, k) = (g.out_h() * g.out_w(), g.out_w(), g.k());
        for group in (oh0..oh1).step_by(ROW_GROUP) {
            let group_tiles = tiles(group, (group + ROW_GROUP).min(oh1), ow_n, wp);
            for (b, wb) in packed.chunks_exact(k * BLOCK).enumerate() {
                let co0 = b * BLOCK;
                let valid = BLOCK.min(g.c_out - co0);
                let (scale, bias) = epilogue_lanes(epi, co0, valid);
                for t in &group_tiles {
                    // SAFETY: `available()` checked AVX2 and FMA. For every input channel c, kernel
                    // row i and column j the tile reads 8 floats at each of its vectors' inputs,
                    // rows[c·plane + (oh − oh0 + i)·wp + ow + inp[v] + j]: a vector's 8 outputs lie
                    // in one output row (of OW ≤ wp − KW + 1 columns) of the tile's rows, so its
                    // reads stay in that channel's padded rows. `wb` holds C_in·KH·KW·BLOCK weights.
                    // The stores go to channels co0..co0+valid at the vectors' outputs, inside rows
                    // [oh0, oh1) of `y`, which the caller gives this call alone.
                    unsafe {
                        let args = TileArgs {
                            x: rows.as_ptr().add((t.oh - oh0) * wp + t.ow),
                            plane,
                            row: wp,
                            g,
                            w: wb.as_ptr(),
                            inp: t.inp,
                            out: t.out,
                        };
                        let dst = y.add(co0 * ohw + t.oh * ow_n + t.ow);
                        if t.vectors == 2 {
                            avx2::tile::<2>(&args, dst, ohw, valid, &scale, &bias, epi.relu);
                        } else {
                            avx2::tile::<1>(&args, dst, ohw, valid, &scale, &bias, epi.relu);
                        }
                    }
                }
            }
        }
    })
}

/// The epilogue's scale and bias for output channels `co0..co0 + valid` (identity elsewhere).
fn epilogue_lanes(epi: &Epilogue, co0: usize, valid: usize) -> ([f32; BLOCK], [f32; BLOCK]) {
    let mut scale = [1f32; BLOCK];
    let mut bias = [0f32; BLOCK];
    for c in 0..valid {
        (scale[c], bias[c]) = epi.channel(co0 + c);
    }
    (scale, bias)
}

/// Output channels per weight-gradient tile: with the three kernel columns, twelve
/// accumulators.
const DW_BLOCK: usize = 4;

/// Whether [`weight_grad`] handles this geometry: what [`supports`] needs, and three kernel
/// columns.
pub fn supports_weight_grad(g: &ConvGeom) -> bool {
    supports(g) && g.kw == 3
}

/// The weight gradient `dW = Σ_n Σ_pixels dY · X(shifted)`, `(C_out, C_in, KH, KW)` row-major.
///
/// Each tile keeps 4 output channels x 3 kernel columns of one input channel and kernel row in
/// twelve vector accumulators over 8 output columns at a time: per 8 pixels, four loads of
/// `dY`, three shifted loads of the padded input and twelve multiply-adds. Output rows are
/// walked in groups of about 512 pixels so that a group's `dY` and input rows stay in cache
/// while every input channel and kernel row reuses them. With at least as many samples as
/// threads each thread sums its own samples (the parts are added in a fixed order, so results
/// do not depend on timing); otherwise the blocks of output channels run in parallel.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    assert!(available() && supports_weight_grad(g));
    assert_eq!(x.len(), g.n * g.in_len());
    assert_eq!(dy.len(), g.n * g.out_len());
    let len = g.c_out * g.k();
    let blocks = g.c_out.div_ceil(DW_BLOCK);
    let threads = rayon::current_num_threads().max(1);
    let sample = |s: usize| {
        (
            &x[s * g.in_len()..(s + 1) * g.in_len()],
            &dy[s * g.out_len()..(s + 1) * g.out_len()],
        )
    };
    if g.n >= threads {
        let chunk = g.n.div_ceil(threads);
        let parts: Vec<Vec<f32>> = (0..g.n)
            .step_by(chunk)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|s0| {
                let mut part = vec![0f32; len];
                for s in s0..(s0 + chunk).min(g.n) {
                    let (xs, dys) = sample(s);
                    with_padded_rows(xs, g, 0, g.out_h(), |padded| {
                        for b in 0..blocks {
                            weight_grad_block(padded, dys, g, b, &mut part[b * DW_BLOCK * g.k()..]);
                        }
                    });
                }
                part
            })
            .collect();
        let mut dw = vec![0f32; len];
        for part in parts {
            dw.iter_mut().zip(part).for_each(|(d, p)| *d += p);
        }
        dw
    } else {
        let (mut dw, mut padded) = (vec![0f32; len], Vec::new());
        for s in 0..g.n {
            let (xs, dys) = sample(s);
            pad_rows(xs, g, 0, g.out_h(), &mut padded);
            dw.par_chunks_mut(DW_BLOCK * g.k())
                .enumerate()
                .for_each(|(b, out)| weight_grad_block(&padded, dys, g, b, out));
        }
        dw
    }
}

/// Adds one sample's weight gradient for output channels `b·4 .. b·4 + 4` to `out` (those
/// channels' rows of dW, `C_in · KH · 3` floats each, starting at the block's first channel).
fn weight_grad_block(padded: &[f32], dys: &[f32], g: &ConvGeom, b: usize, out: &mut [f32]) {
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (wp, ohw, k) = (g.w + 2 * g.padding, oh_n * ow_n, g.k());
    let plane = (oh_n + g.kh - 1) * wp;
    let co0 = b * DW_BLOCK;
    let valid = DW_BLOCK.min(g.c_out - co0);
    let group = (512 / ow_n).clamp(1, oh_n);
    for r0 in (0..oh_n).step_by(group) {
        let rows = group.min(oh_n - r0);
        // Channels past C_out repeat the last valid one; their sums are dropped.
        let dy_rows: [*const f32; DW_BLOCK] =
            std::array::from_fn(|c| dys[(co0 + c.min(valid - 1)) * ohw + r0 * ow_n..].as_ptr());
        for ci in 0..g.c_in {
            for ki in 0..g.kh {
                let x = padded[ci * plane + (r0 + ki) * wp..].as_ptr();
                // SAFETY: `available()` checked AVX2 and FMA. Row r < rows of the tile reads
                // dY[co][r0 + r][0..OW] of valid channels (inside `dys`) and the padded input
                // row r0 + r + ki of channel ci, columns [0, OW + 2] (W + 2P = OW + KW − 1 =
                // OW + 2 floats per padded row, OH + KH − 1 rows per channel).
                let sums = unsafe { avx2::weight_tile(&dy_rows, x, rows, ow_n, wp) };
                for c in 0..valid {
                    let row = &mut out[c * k + (ci * g.kh + ki) * 3..][..3];
                    row.iter_mut().zip(&sums[c]).for_each(|(d, s)| *d += s);
                }
            }
        }
    }
}

/// What one register tile reads.
struct TileArgs<'a> {
    /// First input float of the tile (channel 0, kernel row 0, column `ow`).
    x: *const f32,
    /// Floats between input channels in the padded rows.
    plane: usize,
    /// Floats between padded rows.
    row: usize,
    g: &'a ConvGeom,
    /// The block's packed weights.
    w: *const f32,
    /// Offsets of each vector's input from `x` and of its output from the tile's destination.
    inp: [usize; 2],
    out: [usize; 2],
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{TileArgs, BLOCK, DW_BLOCK};

    /// `BLOCK` output channels x `8·V` pixels, written to `dst + c·stride` for the first `valid`
    /// channels after `max?(0, acc·scale + bias)`.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `t` must describe readable input and weights (see the
    /// caller), and `dst + c·stride .. + 8·V` writable by this thread alone for `c < valid`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const V: usize>(
        t: &TileArgs,
        dst: *mut f32,
        stride: usize,
        valid: usize,
        scale: &[f32; BLOCK],
        bias: &[f32; BLOCK],
        relu: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; BLOCK];
        let mut w = t.w;
        for ci in 0..t.g.c_in {
            for ki in 0..t.g.kh {
                // SAFETY: inside the padded rows (the caller's bound).
                let x_row = unsafe { t.x.add(ci * t.plane + ki * t.row) };
                for kj in 0..t.g.kw {
                    let mut xv = [_mm256_setzero_ps(); V];
                    for (v, xv) in xv.iter_mut().enumerate() {
                        // SAFETY: 8 floats inside the padded rows (the caller's bound).
                        *xv = unsafe { _mm256_loadu_ps(x_row.add(kj + t.inp[v])) };
                    }
                    for (c, acc) in acc.iter_mut().enumerate() {
                        // SAFETY: `w` walks the block's C_in·KH·KW·BLOCK packed weights.
                        let wv = unsafe { _mm256_broadcast_ss(&*w.add(c)) };
                        for v in 0..V {
                            acc[v] = _mm256_fmadd_ps(wv, xv[v], acc[v]);
                        }
                    }
                    // SAFETY: one kernel offset's BLOCK weights further, at most to the end.
                    w = unsafe { w.add(BLOCK) };
                }
            }
        }
        let zero = _mm256_setzero_ps();
        for (c, acc) in acc.iter().enumerate().take(valid) {
            let a = _mm256_set1_ps(scale[c]);
            let b = _mm256_set1_ps(bias[c]);
            for (v, &acc) in acc.iter().enumerate() {
                let mut out = _mm256_fmadd_ps(acc, a, b);
                if relu {
                    out = _mm256_max_ps(out, zero);
                }
                // SAFETY: channel c < valid, 8 floats of this tile's columns (caller's bound).
                unsafe { _mm256_storeu_ps(dst.add(c * stride + t.out[v]), out) };
            }
        }
    }

    /// Sums over `rows` rows of `OW` pixels of `dY[c] · X(shifted by kj)` for the four
    /// channels `dy[c]` and kernel columns kj = 0, 1, 2, where `x` is the padded input row
    /// matching dY's first row (rows `wp` floats apart, `dy` rows `ow` floats apart).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; every `dy[c]` must be readable for `rows · ow` floats,
    /// `x` for `(rows − 1) · wp + ow + 2` floats, and `ow ≥ 8`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_tile(
        dy: &[*const f32; DW_BLOCK],
        x: *const f32,
        rows: usize,
        ow: usize,
        wp: usize,
    ) -> [[f32; 3]; DW_BLOCK] {
        let mut acc = [[_mm256_setzero_ps(); 3]; DW_BLOCK];
        let full = ow / 8 * 8;
        for r in 0..rows {
            // SAFETY: row r of the padded input and of each dY channel (the caller's bounds).
            let (xr, dyr) = unsafe { (x.add(r * wp), dy.map(|d| d.add(r * ow))) };
            for at in (0..full).step_by(8) {
                // SAFETY: columns [at, at + 10) of the padded row and [at, at + 8) of the dY
                // rows, at + 8 ≤ OW (the caller's bounds).
                unsafe { accumulate(&mut acc, xr.add(at), dyr, at, None) };
            }
            if full < ow {
                // The last vector of the row overlaps the previous one: it keeps only the
                // lanes not summed yet.
                let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let keep = _mm256_cmpgt_epi32(lanes, _mm256_set1_epi32((7 - ow % 8) as i32));
                let at = ow - 8;
                // SAFETY: as above, at = OW − 8.
                unsafe {
                    accumulate(
                        &mut acc,
                        xr.add(at),
                        dyr,
                        at,
                        Some(_mm256_castsi256_ps(keep)),
                    )
                };
            }
        }
        let mut out = [[0f32; 3]; DW_BLOCK];
        for (o, a) in out.iter_mut().zip(&acc) {
            for j in 0..3 {
                o[j] = hsum(a[j]);
            }
        }
        out
    }

    /// One step of [`weight_tile`]: 8 pixels of four dY rows (from column `at`, lanes outside
    /// `keep` zeroed) times the padded input at `x`, `x + 1`, `x + 2`.
    ///
    /// # Safety
    /// AVX2 and FMA; `x` readable for 10 floats, each `dy[c] + at` for 8.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn accumulate(
        acc: &mut [[__m256; 3]; DW_BLOCK],
        x: *const f32,
        dy: [*const f32; DW_BLOCK],
        at: usize,
        keep: Option<__m256>,
    ) {
        // SAFETY: the caller's bounds.
        let (x0, x1, x2) = unsafe {
            (
                _mm256_loadu_ps(x),
                _mm256_loadu_ps(x.add(1)),
                _mm256_loadu_ps(x.add(2)),
            )
        };
        for c in 0..DW_BLOCK {
            // SAFETY: the caller's bounds.
            let mut d = unsafe { _mm256_loadu_ps(dy[c].add(at)) };
            if let Some(keep) = keep {
                d = _mm256_and_ps(d, keep);
            }
            acc[c][0] = _mm256_fmadd_ps(d, x0, acc[c][0]);
            acc[c][1] = _mm256_fmadd_ps(d, x1, acc[c][1]);
            acc[c][2] = _mm256_fmadd_ps(d, x2, acc[c][2]);
        }
    }

    /// The sum of a vector's 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    use super::{TileArgs, BLOCK, DW_BLOCK};

    /// Never called: [`super::available`] is false off x86-64.
    pub(super) unsafe fn tile<const V: usize>(
        _: &TileArgs,
        _: *mut f32,
        _: usize,
        _: usize,
        _: &[f32; BLOCK],
        _: &[f32; BLOCK],
        _: bool,
    ) {
        unreachable!("direct convolution kernels need x86-64 with AVX2")
    }

    /// Never called: [`super::available`] is false off x86-64.
    pub(super) unsafe fn weight_tile(
        _: &[*const f32; DW_BLOCK],
        _: *const f32,
        _: usize,
        _: usize,
        _: usize,
    ) -> [[f32; 3]; DW_BLOCK] {
        unreachable!("direct convolution kernels need x86-64 with AVX2")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_each_output_once_up_to_recomputation() {
        for ow in 8..60 {
            for rows in 1..6 {
                let wp = ow + 2;
                let mut seen = vec![0u32; rows * ow];
                let mut last = None;
                for t in tiles(0, rows, ow, wp) {
                    for v in 0..t.vectors {
                        let first = t.oh * ow + t.ow + t.out[v];
                        // A vector's outputs lie in one row and read that row's padded input.
                        let row = first / ow;
                        assert!(first % ow + 8 <= ow, "ow {ow} rows {rows}: {t:?}");
                        assert_eq!(t.oh * wp + t.ow + t.inp[v], row * wp + first % ow);
                        seen[first..first + 8].iter_mut().for_each(|s| *s += 1);
                    }
                    last = Some(t);
                }
                assert!(last.is_some());
                // Every output written; only the overlapping last tile of a row twice.
                assert!(
                    seen.iter().all(|&c| c == 1 || c == 2),
                    "ow {ow} rows {rows}"
                );
                let twice = seen.iter().filter(|&&c| c == 2).count();
                assert_eq!(twice, if ow % 8 == 0 { 0 } else { rows * (8 - ow % 8) });
            }
        }
    }
}
