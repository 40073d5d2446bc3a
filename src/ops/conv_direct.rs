//! Direct convolution for stride-1 and stride-2 layers (AVX2 + FMA or AVX-512), without a
//! column matrix.
//!
//! im2col writes every input value `KH · KW` times into a column matrix that gemm then packs
//! again; in narrow layers (HRNet's 18 and 36 channels) that copying cost as much as the
//! multiplication. Here each output tile of 6 channels x up to 2 vectors (AVX2: 16 pixels, 12
//! registers) or 4 vectors (AVX-512: 64 pixels, 24 registers) is accumulated in registers,
//! straight from a zero-padded copy of the input rows (one copy instead of nine): for every input
//! channel and kernel offset, one unaligned load per vector of the shifted row, six weight
//! broadcasts and a fused multiply-add per channel and vector. The [`Epilogue`] (folded
//! BatchNorm, bias, ReLU) is applied to the registers before the store.
//!
//! Stride 2 (HRNet's stem and fuse downsampling) reads the same way from padded rows stored as
//! their even columns followed by their odd columns: output column `c` under kernel column `j`
//! reads padded column `2c + j`, which is entry `c + j/2` of the even or odd half, so a vector
//! of outputs is again one contiguous load.
//!
//! Parallel work items are (sample, output rows) tiles as in the im2col path; inside a tile the
//! rows are walked a few at a time for every block of output channels, so the padded rows and a
//! block's weights stay in cache while they are reused. The vector width is chosen on the calling
//! thread ([`super::simd::current`]), so tests can run the AVX2 tiles on an AVX-512 machine.

use rayon::prelude::*;

use super::conv_geom::{ConvGeom, Epilogue};
use super::simd::{self, VectorWidth};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Output channels per register tile.
const BLOCK: usize = 6;

/// Output rows walked for one block of channels before the next block (cache reuse).
const ROW_GROUP: usize = 4;

/// The most vectors of pixels one tile holds (AVX-512's; AVX2 tiles hold two).
const MAX_VECTORS: usize = 4;

/// Whether this machine runs the direct kernels (AVX2 + FMA at least; false off x86-64).
pub fn available() -> bool {
    simd::widest().is_some()
}

/// Whether the direct kernel handles this geometry: stride 1 or 2, padding inside the kernel
/// and output rows of at least one AVX2 vector (8 floats).
pub fn supports(g: &ConvGeom) -> bool {
    (g.stride == 1 || g.stride == 2)
        && g.padding < g.kh
        && g.padding < g.kw
        && g.out_w() >= 8
        && g.out_h() >= 1
}

/// The vector width a layer's tiles use at the calling thread's width: AVX-512 tiles need rows
/// of a whole 16-float vector (narrower rows take the AVX2 tiles, which AVX-512 machines have).
pub fn tile_width(g: &ConvGeom) -> VectorWidth {
    match simd::current() {
        Some(VectorWidth::Avx512) if g.out_w() >= 16 => VectorWidth::Avx512,
        _ => VectorWidth::Avx2,
    }
}

/// A layer's weights laid out for [`forward_rows`], with the vector width its tiles use.
pub struct Packed {
    weights: Vec<f32>,
    width: VectorWidth,
}

/// The weights `(C_out, C_in, KH, KW)` repacked in blocks of output channels,
/// `[block][c_in][kh][kw][BLOCK]` (the channels past `C_out` in the last block are zero,
/// computed and not stored), for the calling thread's vector width.
pub fn pack_weights(w: &[f32], g: &ConvGeom) -> Packed {
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
    Packed {
        weights: packed,
        width: tile_width(g),
    }
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

/// Input rows read by output rows `[oh0, oh1)`.
fn padded_row_count(g: &ConvGeom, oh0: usize, oh1: usize) -> usize {
    (oh1 - oh0 - 1) * g.stride + g.kh
}

/// Where kernel column `j`'s input starts in a padded row: column `j` at stride 1, entry `j/2`
/// of the even or odd half at stride 2.
fn kernel_columns(g: &ConvGeom) -> Vec<usize> {
    let half = (g.w + 2 * g.padding).div_ceil(2);
    (0..g.kw)
        .map(|j| match g.stride {
            1 => j,
            _ => j % 2 * half + j / 2,
        })
        .collect()
}

/// Fills `out` with the input rows a tile of output rows `[oh0, oh1)` reads, zero-padded on
/// every side: `C_in` planes of [`padded_row_count`] rows of `W + 2P` floats, each row at
/// stride 2 stored as its even columns, then its odd ones.
fn pad_rows(xs: &[f32], g: &ConvGeom, oh0: usize, oh1: usize, out: &mut Vec<f32>) {
    let (p, wp) = (g.padding, g.w + 2 * g.padding);
    let rows = padded_row_count(g, oh0, oh1);
    out.clear();
    out.reserve(g.c_in * rows * wp);
    for c in 0..g.c_in {
        let plane = &xs[c * g.h * g.w..(c + 1) * g.h * g.w];
        for r in 0..rows {
            let ih = (oh0 * g.stride + r) as isize - p as isize;
            if ih < 0 || ih >= g.h as isize {
                out.resize(out.len() + wp, 0.0);
                continue;
            }
            let row = &plane[ih as usize * g.w..(ih as usize + 1) * g.w];
            if g.stride == 1 {
                out.resize(out.len() + p, 0.0);
                out.extend_from_slice(row);
                out.resize(out.len() + p, 0.0);
            } else {
                // Padded column q holds row[q − P] (zero outside the row).
                let at = |q: usize| q.checked_sub(p).and_then(|i| row.get(i)).copied();
                for phase in 0..2 {
                    out.extend((phase..wp).step_by(2).map(|q| at(q).unwrap_or(0.0)));
                }
            }
        }
    }
}

/// One register tile: `vectors` vectors of output pixels, vector `v` at output offset `out[v]`
/// (from the tile's first output) reading the padded input at offset `inp[v]`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tile {
    /// First output row and column.
    oh: usize,
    ow: usize,
    vectors: usize,
    out: [usize; MAX_VECTORS],
    inp: [usize; MAX_VECTORS],
}

/// The register tiles of output rows `[oh0, oh1)` (`ow ≥ lanes` columns; consecutive output
/// rows' inputs `row_step` floats apart in the padded rows), in row order. Every row is cut into
/// vectors of `lanes` pixels, the last one ending at the row's end (overlapping the previous one
/// when `lanes` does not divide `ow`: it recomputes and rewrites the same values); the vectors
/// of all the rows, in order, are then taken `per_tile` at a time, so that narrow rows still fill
/// a tile's registers.
fn tiles(
    oh0: usize,
    oh1: usize,
    ow: usize,
    row_step: usize,
    lanes: usize,
    per_tile: usize,
) -> Vec<Tile> {
    debug_assert!(ow >= lanes && per_tile <= MAX_VECTORS);
    let mut cols: Vec<usize> = (0..ow / lanes).map(|i| i * lanes).collect();
    if !ow.is_multiple_of(lanes) {
        cols.push(ow - lanes);
    }
    let vectors: Vec<(usize, usize)> = (oh0..oh1)
        .flat_map(|r| cols.iter().map(move |&c| (r, c)))
        .collect();
    vectors
        .chunks(per_tile)
        .map(|chunk| {
            let (oh, ow0) = chunk[0];
            let mut t = Tile {
                oh,
                ow: ow0,
                vectors: chunk.len(),
                out: [0; MAX_VECTORS],
                inp: [0; MAX_VECTORS],
            };
            for (v, &(r, c)) in chunk.iter().enumerate() {
                // Later vectors come later in the row-major order: neither offset is negative.
                t.out[v] = (r - oh) * ow + c - ow0;
                t.inp[v] = (r - oh) * row_step + c - ow0;
            }
            t
        })
        .collect()
}

/// Forward convolution of one sample's output rows `[oh0, oh1)` into `y` (the sample's
/// `C_out · OH · OW` outputs), epilogue applied. Needs [`available`] and [`supports`].
///
/// # Safety
/// `y` must be valid for writes of the sample's `C_out · OH · OW` floats, and rows
/// `[oh0, oh1)` of every channel must be this call's alone while it runs.
pub unsafe fn forward_rows(
    xs: &[f32],
    packed: &Packed,
    g: &ConvGeom,
    oh0: usize,
    oh1: usize,
    epi: &Epilogue,
    y: *mut f32,
) {
    assert!(supports(g) && simd::widest() >= Some(packed.width));
    let wp = g.w + 2 * g.padding;
    let lanes = packed.width.lanes();
    let per_tile = match packed.width {
        VectorWidth::Avx2 => 2,
        VectorWidth::Avx512 => MAX_VECTORS,
    };
    let cols = kernel_columns(g);
    with_padded_rows(xs, g, oh0, oh1, |rows| {
        let plane = padded_row_count(g, oh0, oh1) * wp;
        let (ohw, ow_n, k) = (g.out_h() * g.out_w(), g.out_w(), g.k());
        let row_step = g.stride * wp;
        for group in (oh0..oh1).step_by(ROW_GROUP) {
            let group_tiles = tiles(
                group,
                (group + ROW_GROUP).min(oh1),
                ow_n,
                row_step,
                lanes,
                per_tile,
            );
            for (b, wb) in packed.weights.chunks_exact(k * BLOCK).enumerate() {
                let co0 = b * BLOCK;
                let valid = BLOCK.min(g.c_out - co0);
                let (scale, bias) = epilogue_lanes(epi, co0, valid);
                for t in &group_tiles {
                    let args = TileArgs {
                        // In bounds: the tile's first row and column.
                        x: rows[(t.oh - oh0) * row_step + t.ow..].as_ptr(),
                        plane,
                        row: wp,
                        c_in: g.c_in,
                        kh: g.kh,
                        cols: &cols,
                        w: wb.as_ptr(),
                        inp: t.inp,
                        out: t.out,
                    };
                    let out = Out {
                        // Inside the sample's outputs: channel co0, the tile's first pixel.
                        dst: y.wrapping_add(co0 * ohw + t.oh * ow_n + t.ow),
                        stride: ohw,
                        valid,
                        scale: &scale,
                        bias: &bias,
                        relu: epi.relu,
                    };
                    // SAFETY: `packed.width` is at most what the machine runs. For every input
                    // channel c, kernel row i and column j, vector v reads `lanes` floats at
                    // rows[c·plane + (oh − oh0)·row_step + i·wp + ow + inp[v] + cols[j]]: its
                    // outputs lie in one output row (r) of the tile's rows, whose kernel row i
                    // is padded row (r − oh0)·stride + i < padded_row_count, and its columns
                    // (at stride 2 its half's entries) stay inside that padded row. `wb` holds
                    // C_in·KH·KW·BLOCK weights. The stores go to channels co0..co0+valid at the
                    // vectors' outputs, inside rows [oh0, oh1) of `y`, the caller's to this call.
                    unsafe { run_tile(packed.width, t.vectors, &args, &out) };
                }
            }
        }
    })
}

/// Where a tile's results go: channel `c < valid`'s outputs from `dst + c·stride`, after
/// `max?(0, acc·scale[c] + bias[c])`.
struct Out<'a> {
    dst: *mut f32,
    stride: usize,
    valid: usize,
    scale: &'a [f32; BLOCK],
    bias: &'a [f32; BLOCK],
    relu: bool,
}

/// Runs the tile kernel of `width` with `vectors` vectors.
///
/// # Safety
/// What [`forward_rows`] states for `t` and `o`, and `width` supported by the machine.
unsafe fn run_tile(width: VectorWidth, vectors: usize, t: &TileArgs, o: &Out) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's.
    unsafe {
        let (d, s, v, a, b, r) = (o.dst, o.stride, o.valid, o.scale, o.bias, o.relu);
        match (width, vectors) {
            (VectorWidth::Avx2, 1) => avx2::tile::<1>(t, d, s, v, a, b, r),
            (VectorWidth::Avx2, _) => avx2::tile::<2>(t, d, s, v, a, b, r),
            (VectorWidth::Avx512, 1) => avx512::tile::<1>(t, d, s, v, a, b, r),
            (VectorWidth::Avx512, 2) => avx512::tile::<2>(t, d, s, v, a, b, r),
            (VectorWidth::Avx512, 3) => avx512::tile::<3>(t, d, s, v, a, b, r),
            (VectorWidth::Avx512, _) => avx512::tile::<4>(t, d, s, v, a, b, r),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (width, vectors, t, o);
        unreachable!("direct convolution kernels need x86-64 with AVX2")
    }
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

/// Whether [`weight_grad`] handles this geometry: what [`supports`] needs, and three kernel
/// columns.
pub fn supports_weight_grad(g: &ConvGeom) -> bool {
    supports(g) && g.kw == 3
}

/// Output channels of one weight-gradient tile at `width`.
fn weight_grad_block_size(width: VectorWidth) -> usize {
    match width {
        #[cfg(target_arch = "x86_64")]
        VectorWidth::Avx512 => avx512::DW_BLOCK,
        #[cfg(target_arch = "x86_64")]
        _ => avx2::DW_BLOCK,
        #[cfg(not(target_arch = "x86_64"))]
        _ => 1,
    }
}

/// The weight gradient `dW = Σ_n Σ_pixels dY · X(shifted)`, `(C_out, C_in, KH, KW)` row-major.
///
/// Each tile keeps a block of output channels (AVX2: 4, AVX-512: 8) x 3 kernel columns of one
/// input channel and kernel row in vector accumulators over a vector of output columns at a
/// time: per vector of pixels, one load of `dY` per channel, three shifted loads of the padded
/// input and a multiply-add per channel and column. Output rows are walked in groups of about
/// 512 pixels so that a group's `dY` and input rows stay in cache while every input channel and
/// kernel row reuses them. With at least as many samples as threads each thread sums its own
/// samples (the parts are added in a fixed order, so results do not depend on timing);
/// otherwise the blocks of output channels run in parallel.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeom) -> Vec<f32> {
    assert!(available() && supports_weight_grad(g));
    assert_eq!(x.len(), g.n * g.in_len());
    assert_eq!(dy.len(), g.n * g.out_len());
    let width = simd::current().expect("available() checked a vector width");
    let block = weight_grad_block_size(width);
    let len = g.c_out * g.k();
    let blocks = g.c_out.div_ceil(block);
    let threads = rayon::current_num_threads().max(1);
    let sample = |s: usize| {
        (
            &x[s * g.in_len()..(s + 1) * g.in_len()],
            &dy[s * g.out_len()..(s + 1) * g.out_len()],
        )
    };
    let tile = |padded: &[f32], dys: &[f32], b: usize, out: &mut [f32]| {
        weight_grad_block(padded, dys, g, width, b * block, block, out)
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
                            tile(padded, dys, b, &mut part[b * block * g.k()..]);
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
            dw.par_chunks_mut(block * g.k())
                .enumerate()
                .for_each(|(b, out)| tile(&padded, dys, b, out));
        }
        dw
    }
}

/// Adds one sample's weight gradient for output channels `co0 .. co0 + block` (those that
/// exist) to `out`: those channels' rows of dW, `C_in · KH · 3` floats each, from `co0`'s.
fn weight_grad_block(
    padded: &[f32],
    dys: &[f32],
    g: &ConvGeom,
    width: VectorWidth,
    co0: usize,
    block: usize,
    out: &mut [f32],
) {
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (wp, ohw, k) = (g.w + 2 * g.padding, oh_n * ow_n, g.k());
    let plane = padded_row_count(g, 0, oh_n) * wp;
    let cols = kernel_columns(g);
    let cols = [cols[0], cols[1], cols[2]];
    let valid = block.min(g.c_out - co0);
    let group = (512 / ow_n).clamp(1, oh_n);
    for r0 in (0..oh_n).step_by(group) {
        let rows = group.min(oh_n - r0);
        // Channels past C_out repeat the last valid one; their sums are dropped.
        let dy_row = |c: usize| dys[(co0 + c.min(valid - 1)) * ohw + r0 * ow_n..].as_ptr();
        for ci in 0..g.c_in {
            for ki in 0..g.kh {
                let x = padded[ci * plane + (r0 * g.stride + ki) * wp..].as_ptr();
                let mut add = |c: usize, sums: &[f32; 3]| {
                    let row = &mut out[c * k + (ci * g.kh + ki) * 3..][..3];
                    row.iter_mut().zip(sums).for_each(|(d, s)| *d += s);
                };
                // SAFETY: the width is one the machine runs. Row r < rows of the tile reads
                // dY[co][r0 + r][0..OW] of valid channels (inside `dys`) and, for each kernel
                // column j, OW floats from cols[j] of padded row (r0 + r)·stride + ki of channel
                // ci: the inputs of output columns [0, OW) under that kernel column, inside the
                // padded row (OH·stride + KH − stride ≤ the padded rows of the channel).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    let x_row = g.stride * wp;
                    let mut sums = [[0f32; 3]; avx512::DW_BLOCK];
                    match width {
                        VectorWidth::Avx2 => {
                            let dy = std::array::from_fn(dy_row);
                            let tile = avx2::weight_tile(&dy, x, cols, rows, ow_n, x_row);
                            sums[..avx2::DW_BLOCK].copy_from_slice(&tile);
                        }
                        VectorWidth::Avx512 => {
                            let dy = std::array::from_fn(dy_row);
                            sums = avx512::weight_tile(&dy, x, cols, rows, ow_n, x_row);
                        }
                    }
                    for (c, s) in sums.iter().take(valid).enumerate() {
                        add(c, s);
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (width, x, rows, &mut add, dy_row, cols);
                    unreachable!("direct convolution kernels need x86-64 with AVX2")
                }
            }
        }
    }
}

/// What one register tile reads.
struct TileArgs<'a> {
    /// First input float of the tile (channel 0, kernel row 0, the tile's first column).
    x: *const f32,
    /// Floats between input channels in the padded rows.
    plane: usize,
    /// Floats between padded rows (kernel rows).
    row: usize,
    c_in: usize,
    kh: usize,
    /// Where each kernel column's input starts in a padded row ([`kernel_columns`]).
    cols: &'a [usize],
    /// The block's packed weights.
    w: *const f32,
    /// Offsets of each vector's input from `x` and of its output from the tile's destination.
    inp: [usize; MAX_VECTORS],
    out: [usize; MAX_VECTORS],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_each_output_once_up_to_recomputation() {
        for (lanes, per_tile) in [(8, 2), (16, MAX_VECTORS)] {
            for ow in lanes..70 {
                for rows in 1..6 {
                    for stride in [1, 2] {
                        let wp = ow * stride + 2;
                        let mut seen = vec![0u32; rows * ow];
                        let all = tiles(0, rows, ow, stride * wp, lanes, per_tile);
                        for t in &all {
                            assert!((1..=per_tile).contains(&t.vectors));
                            for v in 0..t.vectors {
                                let first = t.oh * ow + t.ow + t.out[v];
                                // A vector's outputs lie in one row and read that row's input.
                                let (row, col) = (first / ow, first % ow);
                                assert!(col + lanes <= ow, "ow {ow} rows {rows}: {t:?}");
                                let inp = t.oh * stride * wp + t.ow + t.inp[v];
                                assert_eq!(inp, row * stride * wp + col, "{t:?}");
                                seen[first..first + lanes].iter_mut().for_each(|s| *s += 1);
                            }
                        }
                        // Every output written; only the overlapping last vector of a row
                        // twice.
                        assert!(
                            seen.iter().all(|&c| c == 1 || c == 2),
                            "ow {ow} rows {rows}"
                        );
                        let twice = seen.iter().filter(|&&c| c == 2).count();
                        let overlap = (lanes - ow % lanes) % lanes;
                        assert_eq!(twice, rows * overlap);
                        // Tiles are full but for the last one.
                        let short = all.iter().filter(|t| t.vectors < per_tile).count();
                        assert!(short <= 1 && all.last().is_some());
                    }
                }
            }
        }
    }

    #[test]
    fn stride_two_rows_hold_the_even_then_the_odd_padded_columns() {
        let g = ConvGeom {
            n: 1,
            c_in: 2,
            h: 5,
            w: 5,
            c_out: 1,
            kh: 3,
            kw: 3,
            stride: 2,
            padding: 1,
        };
        let xs: Vec<f32> = (1..=50).map(|v| v as f32).collect();
        let mut out = Vec::new();
        // Output rows 1..3 read input rows 1..=5 (padded rows 2..=6: the last is padding).
        pad_rows(&xs, &g, 1, 3, &mut out);
        let wp = 7;
        assert_eq!(out.len(), 2 * 5 * wp);
        // Input row 1 of channel 0 is 6..=10; padded: 0 6 7 8 9 10 0.
        assert_eq!(&out[..wp], &[0.0, 7.0, 9.0, 0.0, 6.0, 8.0, 10.0]);
        assert!(out[4 * wp..5 * wp].iter().all(|&v| v == 0.0));
        // Channel 1's first row is its input row 1 (31..=35).
        assert_eq!(
            &out[5 * wp..6 * wp],
            &[0.0, 32.0, 34.0, 0.0, 31.0, 33.0, 35.0]
        );
        // Kernel column j of output column c reads padded column 2c + j.
        let cols = kernel_columns(&g);
        let padded = [0.0, 6.0, 7.0, 8.0, 9.0, 10.0, 0.0];
        for c in 0..g.out_w() {
            for (j, &at) in cols.iter().enumerate() {
                assert_eq!(out[at + c], padded[2 * c + j]);
            }
        }
    }
}
