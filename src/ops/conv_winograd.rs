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
use super::simd::{self, Kernel, VectorWidth};

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
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    rows: Vec<f32>,
}

thread_local! {
    /// Each worker's buffers (transformed inputs and products of a strip), reused from call to
    /// call like the direct kernel's padded rows.
    static SCRATCH: std::cell::RefCell<Scratch> = Default::default();
}

/// One layer's Winograd forward pass: the transformed kernels, the geometry and the epilogue.
pub struct Layer<'a> {
    /// From [`transform_weights`].
    pub u: &'a [f32],
    pub g: &'a ConvGeom,
    pub epi: &'a Epilogue<'a>,
    /// The vector width the transforms are compiled for (read on the calling thread).
    pub width: Option<VectorWidth>,
}

impl Layer<'_> {
    /// Output rows `[oh0, oh1)` of one sample into `y` (the sample's `C_out · OH · OW`
    /// outputs), epilogue applied.
    ///
    /// # Safety
    /// `y` must be valid for writes of the sample's `C_out · OH · OW` floats, and rows
    /// `[oh0, oh1)` of every channel must be this call's alone while it runs.
    pub unsafe fn forward_rows(&self, xs: &[f32], oh0: usize, oh1: usize, y: *mut f32) {
        let g = self.g;
        assert!(supports(g));
        assert_eq!(xs.len(), g.in_len());
        assert_eq!(self.u.len(), 16 * g.c_out * g.c_in);
        let tw = g.out_w().div_ceil(2);
        let per_tile_row = 16 * (g.c_in + g.c_out) * tw;
        let strip = (STRIP_FLOATS / per_tile_row).max(1) * 2;
        // The strips run no parallel work, so this thread cannot pick up another task that
        // needs the buffers while it holds them.
        SCRATCH.with_borrow_mut(|scratch| {
            let mut r0 = oh0;
            while r0 < oh1 {
                let r1 = (r0 + strip).min(oh1);
                // SAFETY: rows [r0, r1) ⊂ [oh0, oh1), the caller's.
                unsafe { strip_rows(self, xs, r0, r1, y, scratch) };
                r0 = r1;
            }
        });
    }
}

/// [`Layer::forward_rows`] for one strip of rows.
///
/// # Safety
/// As [`Layer::forward_rows`].
unsafe fn strip_rows(
    layer: &Layer,
    xs: &[f32],
    oh0: usize,
    oh1: usize,
    y: *mut f32,
    scratch: &mut Scratch,
) {
    let (u, g, epi) = (layer.u, layer.g, layer.epi);
    let (ci_n, co_n) = (g.c_in, g.c_out);
    let ow_n = g.out_w();
    let (th, tw) = ((oh1 - oh0).div_ceil(2), ow_n.div_ceil(2));
    let t_n = th * tw;
    scratch.v.resize(16 * ci_n * t_n, 0.0);
    scratch.m.resize(16 * co_n * t_n, 0.0);
    let inputs = InputTransform {
        xs,
        g,
        oh0,
        th,
        tw,
        v: &mut scratch.v,
        rows: &mut scratch.rows,
    };
    simd::vectorized(layer.width, inputs);
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
    let outputs = OutputTransform {
        m: &scratch.m,
        g,
        epi,
        oh0,
        oh1,
        th,
        tw,
        y,
        rows: &mut scratch.rows,
    };
    // Writes only rows [oh0, oh1) of `y`, which this function's contract gives it.
    simd::vectorized(layer.width, outputs);
}

/// `Aᵀ m A` of a strip's products into output rows `[oh0, oh1)`, epilogue applied.
struct OutputTransform<'a> {
    m: &'a [f32],
    g: &'a ConvGeom,
    epi: &'a Epilogue<'a>,
    oh0: usize,
    oh1: usize,
    th: usize,
    tw: usize,
    /// The sample's outputs; rows `[oh0, oh1)` of every channel this call's alone.
    y: *mut f32,
    rows: &'a mut Vec<f32>,
}

impl Kernel for OutputTransform<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let OutputTransform {
            m,
            g,
            epi,
            oh0,
            oh1,
            th,
            tw,
            y,
            rows,
        } = self;
        let co_n = g.c_out;
        let (oh_n, ow_n) = (g.out_h(), g.out_w());
        let t_n = th * tw;
        let ohw = oh_n * ow_n;
        let plane = co_n * t_n;
        // Aᵀ m A with Aᵀ = [1 1 1 0; 0 1 −1 −1], a tile row at a time (tiles contiguous in each
        // plane of M): row r of Aᵀ m for the four columns, then its two output columns.
        rows.resize(6 * tw, 0.0);
        let (s, v) = rows.split_at_mut(4 * tw);
        let (v0, v1) = v.split_at_mut(tw);
        for co in 0..co_n {
            let ab = epi.channel(co);
            for ty in 0..th {
                let base = co * t_n + ty * tw;
                let at = |i: usize, j: usize| &m[(i * 4 + j) * plane + base..][..tw];
                for r in 0..2 {
                    let oh = oh0 + 2 * ty + r;
                    if oh >= oh1 {
                        break;
                    }
                    for (j, s) in s.chunks_exact_mut(tw).enumerate() {
                        let (m0, m1, m2, m3) = (at(0, j), at(1, j), at(2, j), at(3, j));
                        if r == 0 {
                            for (((s, x), y), z) in s.iter_mut().zip(m0).zip(m1).zip(m2) {
                                *s = x + y + z;
                            }
                        } else {
                            for (((s, x), y), z) in s.iter_mut().zip(m1).zip(m2).zip(m3) {
                                *s = x - y - z;
                            }
                        }
                    }
                    let (s0, rest) = s.split_at(tw);
                    let (s1, rest) = rest.split_at(tw);
                    let (s2, s3) = rest.split_at(tw);
                    for i in 0..tw {
                        v0[i] = epi.map(s0[i] + s1[i] + s2[i], ab);
                        v1[i] = epi.map(s1[i] - s2[i] - s3[i], ab);
                    }
                    // SAFETY: row oh ∈ [oh0, oh1) of channel co: OW floats inside the sample's
                    // outputs, this call's alone (the caller's contract).
                    let row = unsafe {
                        std::slice::from_raw_parts_mut(y.add(co * ohw + oh * ow_n), ow_n)
                    };
                    for (pair, (&e, &f)) in row.chunks_mut(2).zip(v0.iter().zip(v1.iter())) {
                        pair[0] = e;
                        if let Some(second) = pair.get_mut(1) {
                            *second = f;
                        }
                    }
                }
            }
        }
    }
}

/// `V = Bᵀ d B` of every 4x4 input block of the strip's `th x tw` tiles, laid out
/// `[16][C_in][T]`. Tile (ty, tx) covers output rows `oh0 + 2ty ..+2` and columns `2tx ..+2`
/// and reads input rows `oh0 + 2ty − P ..+4`, columns `2tx − P ..+4` (zero outside the image).
struct InputTransform<'a> {
    xs: &'a [f32],
    g: &'a ConvGeom,
    oh0: usize,
    th: usize,
    tw: usize,
    v: &'a mut [f32],
    rows: &'a mut Vec<f32>,
}

impl Kernel for InputTransform<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let InputTransform {
            xs,
            g,
            oh0,
            th,
            tw,
            v,
            rows,
        } = self;
        let (p, t_n) = (g.padding, th * tw);
        // Each input row zero-padded (image column c at c + P) and split into its even and odd
        // columns, tw + 1 of each: tile tx reads even columns tx, tx + 1 and odd columns tx, tx + 1,
        // so every step below is a contiguous loop over the tile row's tiles.
        let half = tw + 1;
        let width = 2 * half;
        rows.resize(6 * width, 0.0);
        let (d, rest) = rows.split_at_mut(4 * width);
        let (padded, tr) = rest.split_at_mut(width);
        for ci in 0..g.c_in {
            let plane = &xs[ci * g.h * g.w..][..g.h * g.w];
            for ty in 0..th {
                let ih0 = (oh0 + 2 * ty) as isize - p as isize;
                for (k, dst) in d.chunks_exact_mut(width).enumerate() {
                    let ih = ih0 + k as isize;
                    padded.fill(0.0);
                    if ih >= 0 && (ih as usize) < g.h {
                        let n = g.w.min(width - p);
                        padded[p..p + n].copy_from_slice(&plane[ih as usize * g.w..][..n]);
                    }
                    let (even, odd) = dst.split_at_mut(half);
                    for ((e, o), pair) in even.iter_mut().zip(odd).zip(padded.chunks_exact(2)) {
                        (*e, *o) = (pair[0], pair[1]);
                    }
                }
                // Bᵀ along the rows: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3
                // (even and odd halves alike).
                let row = |k: usize| &d[k * width..][..width];
                for i in 0..4 {
                    let (x, y, sign) = match i {
                        0 => (row(0), row(2), -1.0),
                        1 => (row(1), row(2), 1.0),
                        2 => (row(2), row(1), -1.0),
                        _ => (row(1), row(3), -1.0),
                    };
                    for ((o, &x), &y) in tr.iter_mut().zip(x).zip(y) {
                        *o = x + sign * y;
                    }
                    // B along the columns: with E, O the even and odd halves,
                    // v0 = E[tx] − E[tx+1], v1 = O[tx] + E[tx+1], v2 = E[tx+1] − O[tx],
                    // v3 = O[tx] − O[tx+1].
                    let (e, o) = tr.split_at(half);
                    let t0 = ty * tw;
                    for (j, (x, y, sign)) in [
                        (&e[..tw], &e[1..], -1.0f32),
                        (&o[..tw], &e[1..], 1.0),
                        (&e[1..], &o[..tw], -1.0),
                        (&o[..tw], &o[1..], -1.0),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        let out = &mut v[((i * 4 + j) * g.c_in + ci) * t_n + t0..][..tw];
                        for ((o, &x), &y) in out.iter_mut().zip(x).zip(y) {
                            *o = x + sign * y;
                        }
                    }
                }
            }
        }
    }
}
