//! Winograd convolution F(2x2, 3x3) for wide 3x3 stride-1 layers.
//!
//! Each 2x2 block of outputs is computed from a 4x4 block of inputs with 16 multiplications per
//! input channel instead of 36: the input blocks are transformed (`Bᵀ d B`), multiplied
//! element-wise by the transformed kernels (`G g Gᵀ`) and summed over input channels (16 gemms,
//! one per position of the 4x4 transform, `C_out x C_in` times `C_in x tiles`), then transformed
//! back (`Aᵀ m A`) with the [`Epilogue`] applied. The multiply-adds fall 2.25-fold; the
//! transforms cost O(C · H · W), small next to the gemms' O(C² · H · W) once layers have a few
//! dozen channels. F(2x2, 3x3) is the variant whose transforms only add, subtract and halve,
//! so its results agree with the direct product to a few units in the last place (larger tiles
//! such as F(4x4, 3x3) save more and lose digits).
//!
//! The gemms run through the `gemm` crate on one thread: the caller parallelises over
//! (sample, output rows) tiles as for the other convolution paths. Rows are processed in strips
//! whose transformed inputs and products stay within a bounded scratch.

use gemm::Parallelism;

use super::conv_geom::{ConvGeom, Epilogue};

/// Upper bound on the floats of one strip's transformed inputs and products.
const STRIP_FLOATS: usize = 1 << 20;

/// Whether this path handles the geometry: 3x3 kernels, stride 1, padding at most 2.
pub fn supports(g: &ConvGeom) -> bool {
    g.kh == 3 && g.kw == 3 && g.stride == 1 && g.padding <= 2 && g.out_h() >= 1 && g.out_w() >= 1
}

/// The kernels transformed as `U = G g Gᵀ`, laid out `[16][C_out][C_in]` (one `C_out x C_in`
/// matrix per position of the 4x4 transform).
pub fn transform_weights(w: &[f32], g: &ConvGeom) -> Vec<f32> {
    assert!(supports(g));
    let (co_n, ci_n) = (g.c_out, g.c_in);
    let mut u = vec![0f32; 16 * co_n * ci_n];
    for co in 0..co_n {
        for ci in 0..ci_n {
            let k = &w[(co * ci_n + ci) * 9..][..9];
            // G g: 4x3, G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1] applied to the kernel's columns.
            let mut gg = [[0f32; 3]; 4];
            for j in 0..3 {
                let (a, b, c) = (k[j], k[3 + j], k[6 + j]);
                gg[0][j] = a;
                gg[1][j] = 0.5 * (a + b + c);
                gg[2][j] = 0.5 * (a - b + c);
                gg[3][j] = c;
            }
            // (G g) Gᵀ: 4x4.
            for (i, r) in gg.iter().enumerate() {
                let row = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (j, v) in row.into_iter().enumerate() {
                    u[((i * 4 + j) * co_n + co) * ci_n + ci] = v;
                }
            }
        }
    }
    u
}

/// Scratch reused between strips and calls of one worker.
#[derive(Default)]
pub struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    rows: Vec<f32>,
}

/// Output rows `[oh0, oh1)` of one sample into `y` (the sample's `C_out · OH · OW` outputs),
/// epilogue applied; `u` from [`transform_weights`].
///
/// # Safety
/// `y` must be valid for writes of the sample's `C_out · OH · OW` floats, and rows
/// `[oh0, oh1)` of every channel must be this call's alone while it runs.
#[allow(clippy::too_many_arguments)]
pub unsafe fn forward_rows(
    xs: &[f32],
    u: &[f32],
    g: &ConvGeom,
    oh0: usize,
    oh1: usize,
    epi: &Epilogue,
    y: *mut f32,
    scratch: &mut Scratch,
) {
    assert!(supports(g));
    assert_eq!(xs.len(), g.in_len());
    assert_eq!(u.len(), 16 * g.c_out * g.c_in);
    let tw = g.out_w().div_ceil(2);
    let per_tile_row = 16 * (g.c_in + g.c_out) * tw;
    let strip = (STRIP_FLOATS / per_tile_row).max(1) * 2;
    let mut r0 = oh0;
    while r0 < oh1 {
        let r1 = (r0 + strip).min(oh1);
        // SAFETY: rows [r0, r1) ⊂ [oh0, oh1), the caller's.
        unsafe { strip_rows(xs, u, g, r0, r1, epi, y, scratch) };
        r0 = r1;
    }
}

/// [`forward_rows`] for one strip of rows.
///
/// # Safety
/// As [`forward_rows`].
#[allow(clippy::too_many_arguments)]
unsafe fn strip_rows(
    xs: &[f32],
    u: &[f32],
    g: &ConvGeom,
    oh0: usize,
    oh1: usize,
    epi: &Epilogue,
    y: *mut f32,
    scratch: &mut Scratch,
) {
    let (ci_n, co_n) = (g.c_in, g.c_out);
    let (oh_n, ow_n) = (g.out_h(), g.out_w());
    let (th, tw) = ((oh1 - oh0).div_ceil(2), ow_n.div_ceil(2));
    let t_n = th * tw;
    scratch.v.resize(16 * ci_n * t_n, 0.0);
    scratch.m.resize(16 * co_n * t_n, 0.0);
    input_transform(xs, g, oh0, th, tw, &mut scratch.v, &mut scratch.rows);
    for xi in 0..16 {
        let ux = &u[xi * co_n * ci_n..][..co_n * ci_n];
        let vx = &scratch.v[xi * ci_n * t_n..][..ci_n * t_n];
        let mx = &mut scratch.m[xi * co_n * t_n..][..co_n * t_n];
        // SAFETY: M_ξ (C_out x T, row-major, in `mx`) = U_ξ (C_out x C_in, row-major) ·
        // V_ξ (C_in x T, row-major): every element in its slice; gemm writes `mx` without
        // reading it (no accumulation).
        unsafe {
            gemm::gemm(
                co_n,
                t_n,
                ci_n,
                mx.as_mut_ptr(),
                1,
                t_n as isize,
                false,
                ux.as_ptr(),
                1,
                ci_n as isize,
                vx.as_ptr(),
                1,
                t_n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    }
    let ohw = oh_n * ow_n;
    let plane = co_n * t_n;
    let m = &scratch.m;
    for co in 0..co_n {
        let a = epi.scale.map_or(1.0, |s| s[co]);
        let b = epi.bias.map_or(0.0, |b| b[co]);
        for ty in 0..th {
            let base = co * t_n + ty * tw;
            for r in 0..2 {
                let oh = oh0 + 2 * ty + r;
                if oh >= oh1 {
                    break;
                }
                // SAFETY: row oh ∈ [oh0, oh1) of channel co: OW floats inside the sample's
                // outputs, this call's alone (the caller's contract).
                let row =
                    unsafe { std::slice::from_raw_parts_mut(y.add(co * ohw + oh * ow_n), ow_n) };
                // Aᵀ m A with Aᵀ = [1 1 1 0; 0 1 −1 −1]: row r of Aᵀ m, then its two columns.
                for (tx, pair) in row.chunks_mut(2).enumerate() {
                    let at = |i: usize, j: usize| m[(i * 4 + j) * plane + base + tx];
                    let s = |j: usize| {
                        if r == 0 {
                            at(0, j) + at(1, j) + at(2, j)
                        } else {
                            at(1, j) - at(2, j) - at(3, j)
                        }
                    };
                    let (s0, s1, s2, s3) = (s(0), s(1), s(2), s(3));
                    for (v, out) in [s0 + s1 + s2, s1 - s2 - s3].into_iter().zip(pair) {
                        let v = v * a + b;
                        *out = if epi.relu { v.max(0.0) } else { v };
                    }
                }
            }
        }
    }
}

/// `V = Bᵀ d B` of every 4x4 input block of the strip's `th x tw` tiles, laid out
/// `[16][C_in][T]`. Tile (ty, tx) covers output rows `oh0 + 2ty ..+2` and columns `2tx ..+2`
/// and reads input rows `oh0 + 2ty − P ..+4`, columns `2tx − P ..+4` (zero outside the image).
fn input_transform(
    xs: &[f32],
    g: &ConvGeom,
    oh0: usize,
    th: usize,
    tw: usize,
    v: &mut [f32],
    rows: &mut Vec<f32>,
) {
    let (p, t_n) = (g.padding, th * tw);
    // Zero-padded input rows (column c of the image at c + P; 2·tw + 2 columns cover every
    // tile's reads), then the same rows after Bᵀ.
    let width = 2 * tw + 2;
    rows.resize(8 * width, 0.0);
    let (d, tr) = rows.split_at_mut(4 * width);
    for ci in 0..g.c_in {
        let plane = &xs[ci * g.h * g.w..][..g.h * g.w];
        for ty in 0..th {
            let ih0 = (oh0 + 2 * ty) as isize - p as isize;
            for (k, dst) in d.chunks_exact_mut(width).enumerate() {
                let ih = ih0 + k as isize;
                dst.fill(0.0);
                if ih >= 0 && (ih as usize) < g.h {
                    let n = g.w.min(width - p);
                    dst[p..p + n].copy_from_slice(&plane[ih as usize * g.w..][..n]);
                }
            }
            // Bᵀ along the rows: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3.
            let (d0, rest) = d.split_at(width);
            let (d1, rest) = rest.split_at(width);
            let (d2, d3) = rest.split_at(width);
            for (i, t) in tr.chunks_exact_mut(width).enumerate() {
                for c in 0..width {
                    t[c] = match i {
                        0 => d0[c] - d2[c],
                        1 => d1[c] + d2[c],
                        2 => d2[c] - d1[c],
                        _ => d1[c] - d3[c],
                    };
                }
            }
            // B along the columns, then the 16 values of each tile to their planes.
            for (i, r) in tr.chunks_exact(width).enumerate() {
                for tx in 0..tw {
                    let c = &r[2 * tx..2 * tx + 4];
                    let t = ty * tw + tx;
                    let vals = [c[0] - c[2], c[1] + c[2], c[2] - c[1], c[1] - c[3]];
                    for (j, val) in vals.into_iter().enumerate() {
                        v[((i * 4 + j) * g.c_in + ci) * t_n + t] = val;
                    }
                }
            }
        }
    }
}
