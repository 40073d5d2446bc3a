//! AVX2 + FMA tiles of the direct convolution: 8 floats per register, 16 registers.

use std::arch::x86_64::*;

use super::{TileArgs, BLOCK};

/// Output channels of a weight-gradient tile: with the three kernel columns, twelve of the
/// sixteen registers hold sums.
pub(super) const DW_BLOCK: usize = 4;

/// `BLOCK` output channels x `V` vectors of 8 pixels, written to `dst + c·stride + out[v]` for
/// the first `valid` channels after `max?(0, acc·scale + bias)`.
///
/// # Safety
/// AVX2 and FMA must be available; `t` must describe readable input and weights (see the
/// caller), and `dst + c·stride + out[v] .. + 8` writable by this thread alone for `c < valid`.
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
    for ci in 0..t.c_in {
        for ki in 0..t.kh {
            // SAFETY: inside the padded rows (the caller's bound).
            let x_row = unsafe { t.x.add(ci * t.plane + ki * t.row) };
            for &col in t.cols {
                let mut xv = [_mm256_setzero_ps(); V];
                for (v, xv) in xv.iter_mut().enumerate() {
                    // SAFETY: 8 floats inside the padded rows (the caller's bound).
                    *xv = unsafe { _mm256_loadu_ps(x_row.add(col + t.inp[v])) };
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
            // SAFETY: channel c < valid, 8 floats of this tile's outputs (caller's bound).
            unsafe { _mm256_storeu_ps(dst.add(c * stride + t.out[v]), out) };
        }
    }
}

/// Sums over `rows` rows of `OW` pixels of `dY[c] · X(kernel column j)` for the four channels
/// `dy[c]` and the three kernel columns, where `x` is the padded input row matching dY's first
/// row, kernel column j starting `cols[j]` floats into it (rows `x_row` floats apart, `dy` rows
/// `ow` floats apart).
///
/// # Safety
/// AVX2 and FMA must be available; every `dy[c]` must be readable for `rows · ow` floats, `x +
/// r·x_row + cols[j]` for `ow` floats (r < rows), and `ow ≥ 8`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn weight_tile(
    dy: &[*const f32; DW_BLOCK],
    x: *const f32,
    cols: [usize; 3],
    rows: usize,
    ow: usize,
    x_row: usize,
) -> [[f32; 3]; DW_BLOCK] {
    let mut acc = [[_mm256_setzero_ps(); 3]; DW_BLOCK];
    let full = ow / 8 * 8;
    for r in 0..rows {
        // SAFETY: row r of the padded input and of each dY channel (the caller's bounds).
        let (xr, dyr) = unsafe { (x.add(r * x_row), dy.map(|d| d.add(r * ow))) };
        for at in (0..full).step_by(8) {
            // SAFETY: columns [at, at + 8) of each kernel column's input and of the dY rows,
            // at + 8 ≤ OW (the caller's bounds).
            unsafe { accumulate(&mut acc, xr.add(at), cols, dyr, at, None) };
        }
        if full < ow {
            // The last vector of the row overlaps the previous one: it keeps only the lanes not
            // summed yet.
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let keep = _mm256_cmpgt_epi32(lanes, _mm256_set1_epi32((7 - ow % 8) as i32));
            let at = ow - 8;
            // SAFETY: as above, at = OW − 8.
            unsafe {
                accumulate(
                    &mut acc,
                    xr.add(at),
                    cols,
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

/// One step of [`weight_tile`]: 8 pixels of four dY rows (from column `at`, lanes outside `keep`
/// zeroed) times the input of each kernel column, `x + cols[j]`.
///
/// # Safety
/// AVX2 and FMA; `x + cols[j]` readable for 8 floats, each `dy[c] + at` for 8.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn accumulate(
    acc: &mut [[__m256; 3]; DW_BLOCK],
    x: *const f32,
    cols: [usize; 3],
    dy: [*const f32; DW_BLOCK],
    at: usize,
    keep: Option<__m256>,
) {
    // SAFETY: the caller's bounds.
    let (x0, x1, x2) = unsafe {
        (
            _mm256_loadu_ps(x.add(cols[0])),
            _mm256_loadu_ps(x.add(cols[1])),
            _mm256_loadu_ps(x.add(cols[2])),
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
