//! Per-plane sums of batch normalisation in 16 independent f32 lanes: lane `i` adds elements
//! `i, i + 16, …`, a plane's last `len mod 16` elements go to lane 0 in order, and the lanes are
//! added in f64. AVX-512 holds the lanes in one register, AVX2 in two, the portable path in an
//! array: the same additions in the same order, so every width gives the same bits. (The
//! compiler's own vectorisation of the portable loop stayed at four lanes, and a ReLU mask in
//! it made it scalar.)

use super::simd::{self, VectorWidth};

/// Lanes of the partial sums.
pub const LANES: usize = 16;

/// `Σ (v − pivot)` and `Σ (v − pivot)²` over `plane`.
pub fn shifted_sums(width: Option<VectorWidth>, plane: &[f32], pivot: f32) -> (f64, f64) {
    let full = plane.len() / LANES * LANES;
    let (mut a, mut q) = ([0f32; LANES], [0f32; LANES]);
    match simd::runnable(width) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the machine runs the width (`simd::runnable`); the loads stay below `full`.
        Some(VectorWidth::Avx512) => unsafe {
            x86::shifted_avx512(plane, full, pivot, &mut a, &mut q)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Some(VectorWidth::Avx2) => unsafe { x86::shifted_avx2(plane, full, pivot, &mut a, &mut q) },
        _ => {
            for ck in plane[..full].chunks_exact(LANES) {
                for i in 0..LANES {
                    let d = ck[i] - pivot;
                    a[i] += d;
                    q[i] += d * d;
                }
            }
        }
    }
    for &v in &plane[full..] {
        let d = v - pivot;
        a[0] += d;
        q[0] += d * d;
    }
    (lane_sum(&a), lane_sum(&q))
}

/// `Σ g` and `Σ g·(x − mean)` over a plane, `g` being `dy` masked by the ReLU (zero where
/// `y ≤ 0`) when `relu`, otherwise `dy`.
pub fn gradient_sums(
    width: Option<VectorWidth>,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: f32,
    relu: bool,
) -> (f64, f64) {
    assert!(x.len() == y.len() && x.len() == dy.len());
    let full = x.len() / LANES * LANES;
    let (mut a, mut q) = ([0f32; LANES], [0f32; LANES]);
    let p = Planes {
        x,
        y,
        dy,
        full,
        mean,
        relu,
    };
    match simd::runnable(width) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the machine runs the width (`simd::runnable`); the loads stay below `full`.
        Some(VectorWidth::Avx512) => unsafe { x86::gradient_avx512(&p, &mut a, &mut q) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Some(VectorWidth::Avx2) => unsafe { x86::gradient_avx2(&p, &mut a, &mut q) },
        _ => {
            for i in 0..full {
                let g = relu_grad(relu, y[i], dy[i]);
                a[i % LANES] += g;
                q[i % LANES] += g * (x[i] - mean);
            }
        }
    }
    for i in full..x.len() {
        let g = relu_grad(relu, y[i], dy[i]);
        a[0] += g;
        q[0] += g * (x[i] - mean);
    }
    (lane_sum(&a), lane_sum(&q))
}

/// The gradient through the ReLU (`dy` where the output is positive), or `dy` without one.
#[inline(always)]
pub fn relu_grad(relu: bool, y: f32, dy: f32) -> f32 {
    if relu && y <= 0.0 {
        0.0
    } else {
        dy
    }
}

/// What [`gradient_sums`] reads.
struct Planes<'a> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    /// Elements summed in whole vectors of [`LANES`].
    full: usize,
    mean: f32,
    relu: bool,
}

fn lane_sum(lanes: &[f32; LANES]) -> f64 {
    lanes.iter().map(|&v| v as f64).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Planes, LANES};

    /// # Safety
    /// AVX-512F; `full ≤ plane.len()`, a multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn shifted_avx512(
        plane: &[f32],
        full: usize,
        pivot: f32,
        a: &mut [f32; LANES],
        q: &mut [f32; LANES],
    ) {
        let (mut s, mut ss, p) = (
            _mm512_setzero_ps(),
            _mm512_setzero_ps(),
            _mm512_set1_ps(pivot),
        );
        for at in (0..full).step_by(16) {
            // SAFETY: at + 16 ≤ full ≤ len.
            let d = _mm512_sub_ps(unsafe { _mm512_loadu_ps(plane.as_ptr().add(at)) }, p);
            s = _mm512_add_ps(s, d);
            ss = _mm512_add_ps(ss, _mm512_mul_ps(d, d));
        }
        // SAFETY: 16 floats each.
        unsafe {
            _mm512_storeu_ps(a.as_mut_ptr(), s);
            _mm512_storeu_ps(q.as_mut_ptr(), ss);
        }
    }

    /// # Safety
    /// AVX2; `full ≤ plane.len()`, a multiple of 16.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn shifted_avx2(
        plane: &[f32],
        full: usize,
        pivot: f32,
        a: &mut [f32; LANES],
        q: &mut [f32; LANES],
    ) {
        let z = _mm256_setzero_ps();
        let (mut s, mut ss, p) = ([z; 2], [z; 2], _mm256_set1_ps(pivot));
        for at in (0..full).step_by(16) {
            for h in 0..2 {
                // SAFETY: at + 16 ≤ full ≤ len.
                let v = unsafe { _mm256_loadu_ps(plane.as_ptr().add(at + 8 * h)) };
                let d = _mm256_sub_ps(v, p);
                s[h] = _mm256_add_ps(s[h], d);
                ss[h] = _mm256_add_ps(ss[h], _mm256_mul_ps(d, d));
            }
        }
        for h in 0..2 {
            // SAFETY: lanes 8h..8h + 8 of 16.
            unsafe {
                _mm256_storeu_ps(a.as_mut_ptr().add(8 * h), s[h]);
                _mm256_storeu_ps(q.as_mut_ptr().add(8 * h), ss[h]);
            }
        }
    }

    /// # Safety
    /// AVX-512F; `p.full` at most the planes' length, a multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gradient_avx512(p: &Planes, a: &mut [f32; LANES], q: &mut [f32; LANES]) {
        let (mut s, mut sx) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (mean, zero) = (_mm512_set1_ps(p.mean), _mm512_setzero_ps());
        for at in (0..p.full).step_by(16) {
            // SAFETY: at + 16 ≤ full ≤ every plane's length.
            let (x, y, dy) = unsafe {
                (
                    _mm512_loadu_ps(p.x.as_ptr().add(at)),
                    _mm512_loadu_ps(p.y.as_ptr().add(at)),
                    _mm512_loadu_ps(p.dy.as_ptr().add(at)),
                )
            };
            // Lanes where y > 0 or y is NaN keep dy (as `relu_grad`: not y ≤ 0).
            let keep = if p.relu {
                _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(y, zero)
            } else {
                !0
            };
            let g = _mm512_maskz_mov_ps(keep, dy);
            s = _mm512_add_ps(s, g);
            sx = _mm512_add_ps(sx, _mm512_mul_ps(g, _mm512_sub_ps(x, mean)));
        }
        // SAFETY: 16 floats each.
        unsafe {
            _mm512_storeu_ps(a.as_mut_ptr(), s);
            _mm512_storeu_ps(q.as_mut_ptr(), sx);
        }
    }

    /// # Safety
    /// AVX2; `p.full` at most the planes' length, a multiple of 16.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gradient_avx2(p: &Planes, a: &mut [f32; LANES], q: &mut [f32; LANES]) {
        let z = _mm256_setzero_ps();
        let (mut s, mut sx) = ([z; 2], [z; 2]);
        let mean = _mm256_set1_ps(p.mean);
        let all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for at in (0..p.full).step_by(16) {
            for h in 0..2 {
                let i = at + 8 * h;
                // SAFETY: i + 8 ≤ full ≤ every plane's length.
                let (x, y, dy) = unsafe {
                    (
                        _mm256_loadu_ps(p.x.as_ptr().add(i)),
                        _mm256_loadu_ps(p.y.as_ptr().add(i)),
                        _mm256_loadu_ps(p.dy.as_ptr().add(i)),
                    )
                };
                let keep = if p.relu {
                    _mm256_cmp_ps::<_CMP_NLE_UQ>(y, z)
                } else {
                    all
                };
                let g = _mm256_and_ps(dy, keep);
                s[h] = _mm256_add_ps(s[h], g);
                sx[h] = _mm256_add_ps(sx[h], _mm256_mul_ps(g, _mm256_sub_ps(x, mean)));
            }
        }
        for h in 0..2 {
            // SAFETY: lanes 8h..8h + 8 of 16.
            unsafe {
                _mm256_storeu_ps(a.as_mut_ptr().add(8 * h), s[h]);
                _mm256_storeu_ps(q.as_mut_ptr().add(8 * h), sx[h]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_gives_the_same_bits_as_the_portable_sums() {
        let values = |n: usize, k: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * k).sin() * 3.0 + 0.5).collect()
        };
        for n in [1, 15, 16, 17, 64, 100, 1031] {
            let (x, y, dy) = (values(n, 0.37), values(n, 1.3), values(n, 0.11));
            let mut y = y;
            y[0] = 0.0;
            if n > 3 {
                y[3] = f32::NAN;
            }
            let reference = (
                shifted_sums(None, &x, 0.25),
                gradient_sums(None, &x, &y, &dy, 0.1, true),
                gradient_sums(None, &x, &y, &dy, 0.1, false),
            );
            for width in simd::available() {
                let got = (
                    shifted_sums(Some(width), &x, 0.25),
                    gradient_sums(Some(width), &x, &y, &dy, 0.1, true),
                    gradient_sums(Some(width), &x, &y, &dy, 0.1, false),
                );
                assert_eq!(got, reference, "n {n}, {width:?}");
            }
            // The portable sums are the definition's, up to f32 rounding.
            let masked: f64 = (0..n).map(|i| relu_grad(true, y[i], dy[i]) as f64).sum();
            assert!((reference.1 .0 - masked).abs() < 1e-4 * n as f64, "n {n}");
            assert_ne!(
                reference.1 .0, reference.2 .0,
                "n {n}: the mask changed nothing"
            );
        }
    }
}
