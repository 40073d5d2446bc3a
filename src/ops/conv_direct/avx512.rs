//! AVX-512 tiles of the direct convolution: 16 floats per register and 32 registers, so a tile
//! holds twice the pixels of an AVX2 tile in twice the registers (24 sums), and a row's last
//! partial vector is a lane mask instead of an overlapping reload.

use std::arch::x86_64::*;

use super::{TileArgs, BLOCK};

/// Output channels of a weight-gradient tile: with the three kernel columns, 24 of the 32
/// registers hold sums.
pub(super) const DW_BLOCK: usize = 8;

/// `BLOCK` output channels x `V` vectors of 16 pixels, written to `dst + c·stride + out[v]` for
/// the first `valid` channels after `max?(0, acc·scale + bias)`.
///
/// # Safety
/// AVX-512F and VL must be available; `t` must describe readable input and weights (see the caller),
/// and `dst + c·stride + out[v] .. + 16` writable by this thread alone for `c < valid`.
#[target_feature(enable = "avx512f,avx512vl")]
pub(super) unsafe fn tile<const V: usize>(
    t: &TileArgs,
    dst: *mut f32,
    stride: usize,
    valid: usize,
    scale: &[f32; BLOCK],
    bias: &[f32; BLOCK],
    relu: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; BLOCK];
    let mut w = t.w;
    for ci in 0..t.c_in {
        for ki in 0..t.kh {
            // SAFETY: inside the padded rows (the caller's bound).
            let x_row = unsafe { t.x.add(ci * t.plane + ki * t.row) };
            for &col in t.cols {
                let mut xv = [_mm512_setzero_ps(); V];
                for (v, xv) in xv.iter_mut().enumerate() {
                    // SAFETY: 16 floats inside the padded rows (the caller's bound).
                    *xv = unsafe { _mm512_loadu_ps(x_row.add(col + t.inp[v])) };
                }
                for (c, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: `w` walks the block's C_in·KH·KW·BLOCK packed weights.
                    let wv = _mm512_set1_ps(unsafe { *w.add(c) });
                    for v in 0..V {
                        acc[v] = _mm512_fmadd_ps(wv, xv[v], acc[v]);
                    }
                }
                // SAFETY: one kernel offset's BLOCK weights further, at most to the end.
                w = unsafe { w.add(BLOCK) };
            }
        }
    }
    let zero = _mm512_setzero_ps();
    for (c, acc) in acc.iter().enumerate().take(valid) {
        let a = _mm512_set1_ps(scale[c]);
        let b = _mm512_set1_ps(bias[c]);
        for (v, &acc) in acc.iter().enumerate() {
            let mut out = _mm512_fmadd_ps(acc, a, b);
            if relu {
                out = _mm512_max_ps(out, zero);
            }
            // SAFETY: channel c < valid, 16 floats of this tile's outputs (caller's bound).
            unsafe { _mm512_storeu_ps(dst.add(c * stride + t.out[v]), out) };
        }
    }
}

/// Sums over `rows` rows of `OW` pixels of `dY[c] · X(kernel column j)` for the eight channels
/// `dy[c]` and the three kernel columns, where `x` is the padded input row matching dY's first
/// row, kernel column j starting `cols[j]` floats into it (rows `x_row` floats apart, `dy` rows
/// `ow` floats apart).
///
/// # Safety
/// AVX-512F and VL must be available; every `dy[c]` must be readable for `rows · ow` floats, and `x +
/// r·x_row + cols[j]` for `ow` floats (r < rows).
#[target_feature(enable = "avx512f,avx512vl")]
pub(super) unsafe fn weight_tile(
    dy: &[*const f32; DW_BLOCK],
    x: *const f32,
    cols: [usize; 3],
    rows: usize,
    ow: usize,
    x_row: usize,
) -> [[f32; 3]; DW_BLOCK] {
    let mut acc = [[_mm512_setzero_ps(); 3]; DW_BLOCK];
    // One loop body for full and partial vectors (a row's last OW mod 16 pixels are a lane
    // mask): with a separate tail loop the compiler spilled half the sums to the stack.
    let steps = ow.div_ceil(16);
    let tail = ((1u32 << (ow - (steps - 1) * 16)) - 1) as __mmask16;
    for r in 0..rows {
        // SAFETY: row r of the padded input and of each dY channel (the caller's bounds).
        let (xr, dyr) = unsafe { (x.add(r * x_row), dy.map(|d| d.add(r * ow))) };
        for s in 0..steps {
            let at = s * 16;
            let keep = if s + 1 == steps { tail } else { !0 };
            // SAFETY: the kept lanes are columns [at, min(at + 16, OW)) of each kernel
            // column's input and of the dY rows (the caller's bounds; masked lanes are not
            // read).
            unsafe {
                let x0 = _mm512_maskz_loadu_ps(keep, xr.add(at + cols[0]));
                let x1 = _mm512_maskz_loadu_ps(keep, xr.add(at + cols[1]));
                let x2 = _mm512_maskz_loadu_ps(keep, xr.add(at + cols[2]));
                for (c, acc) in acc.iter_mut().enumerate() {
                    let d = _mm512_maskz_loadu_ps(keep, dyr[c].add(at));
                    acc[0] = _mm512_fmadd_ps(d, x0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(d, x1, acc[1]);
                    acc[2] = _mm512_fmadd_ps(d, x2, acc[2]);
                }
            }
        }
    }
    let mut out = [[0f32; 3]; DW_BLOCK];
    for (o, a) in out.iter_mut().zip(&acc) {
        for j in 0..3 {
            o[j] = _mm512_reduce_add_ps(a[j]);
        }
    }
    out
}
