//! 3x3 geometric matrices and the one-pass image warp (inverse mapping, bilinear, padding).
//!
//! Coordinates follow the crate convention: pixel `i` has its centre at coordinate `i`. The warp
//! samples the source at `inverse * (u, v)` for every output pixel `(u, v)`, so a point mapped with
//! the forward matrix lands exactly where its pixel went.

use image::RgbImage;
use serde::{Deserialize, Serialize};

/// A 3x3 matrix acting on homogeneous 2D points `[x, y, 1]` (affine or projective).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mat3(pub [[f64; 3]; 3]);

impl Default for Mat3 {
    fn default() -> Self {
        Mat3::IDENTITY
    }
}

impl Mat3 {
    pub const IDENTITY: Mat3 = Mat3([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);

    pub fn translate(tx: f64, ty: f64) -> Mat3 {
        Mat3([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
    }

    pub fn scale(sx: f64, sy: f64) -> Mat3 {
        Mat3([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])
    }

    /// The affine matrix with rows `[a, b, c]` and `[d, e, f]`.
    pub fn affine(a: f64, b: f64, c: f64, d: f64, e: f64, f: f64) -> Mat3 {
        Mat3([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]])
    }

    /// Matrix product `self * rhs` (apply `rhs` first).
    pub fn mul(&self, rhs: &Mat3) -> Mat3 {
        let (a, b) = (&self.0, &rhs.0);
        let mut r = [[0.0; 3]; 3];
        for (i, row) in r.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
            }
        }
        Mat3(r)
    }

    pub fn determinant(&self) -> f64 {
        let m = &self.0;
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    }

    /// The inverse, or `None` for a (numerically) singular matrix.
    pub fn inverse(&self) -> Option<Mat3> {
        let m = &self.0;
        let det = self.determinant();
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let c = |r0: usize, c0: usize, r1: usize, c1: usize| {
            m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]
        };
        let inv = [
            [c(1, 1, 2, 2), -c(0, 1, 2, 2), c(0, 1, 1, 2)],
            [-c(1, 0, 2, 2), c(0, 0, 2, 2), -c(0, 0, 1, 2)],
            [c(1, 0, 2, 1), -c(0, 0, 2, 1), c(0, 0, 1, 1)],
        ];
        let mut r = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                r[i][j] = inv[i][j] / det;
            }
        }
        Some(Mat3(r))
    }

    /// Maps a point; `None` when it goes to or behind the projective horizon (w <= 0).
    pub fn apply(&self, p: [f32; 2]) -> Option<[f32; 2]> {
        let m = &self.0;
        let (x, y) = (p[0] as f64, p[1] as f64);
        let w = m[2][0] * x + m[2][1] * y + m[2][2];
        if w <= 1e-12 || !w.is_finite() {
            return None;
        }
        let u = (m[0][0] * x + m[0][1] * y + m[0][2]) / w;
        let v = (m[1][0] * x + m[1][1] * y + m[1][2]) / w;
        Some([u as f32, v as f32])
    }

    pub fn is_affine(&self) -> bool {
        let m = &self.0;
        m[2][0] == 0.0 && m[2][1] == 0.0 && m[2][2] == 1.0
    }

    /// The projective matrix mapping each `from[i]` to `to[i]` (4 points, no 3 collinear):
    /// the standard 8-unknown linear system with `m[2][2] = 1`.
    pub fn homography(from: [[f64; 2]; 4], to: [[f64; 2]; 4]) -> Option<Mat3> {
        let mut a = [[0.0f64; 9]; 8];
        for i in 0..4 {
            let ([x, y], [u, v]) = (from[i], to[i]);
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        // Gauss-Jordan elimination with partial pivoting on the augmented 8x9 system.
        for col in 0..8 {
            let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
            if a[pivot][col].abs() < 1e-12 {
                return None;
            }
            a.swap(col, pivot);
            let p = a[col][col];
            for v in a[col].iter_mut() {
                *v /= p;
            }
            let pivot_row = a[col];
            for (r, row) in a.iter_mut().enumerate() {
                let f = row[col];
                if r != col && f != 0.0 {
                    for (v, &p) in row.iter_mut().zip(pivot_row.iter()) {
                        *v -= f * p;
                    }
                }
            }
        }
        let h: Vec<f64> = (0..8).map(|i| a[i][8]).collect();
        Some(Mat3([
            [h[0], h[1], h[2]],
            [h[3], h[4], h[5]],
            [h[6], h[7], 1.0],
        ]))
    }
}

/// What the warp reads outside the source image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMode {
    /// Mirror about the border pixel centres without repeating them (PyTorch `grid_sample`
    /// `padding_mode="reflection"` with `align_corners=True`, fastai's default).
    #[default]
    Reflection,
    /// Repeat the border pixel.
    Border,
    /// Black.
    Zeros,
}

/// Folds a coordinate into `[0, max]` by mirroring about 0 and `max` (period `2 max`).
#[inline]
fn reflect(x: f32, max: f32) -> f32 {
    if max <= 0.0 {
        return 0.0;
    }
    let period = 2.0 * max;
    let mut r = x.abs() % period;
    if r > max {
        r = period - r;
    }
    r
}

/// Warps `src` into an `out_w x out_h` planar (CHW) buffer of values in [0, 1]:
/// output pixel `(u, v)` takes the bilinear sample of `src` at `out_to_src * (u, v)`.
/// `out` must hold `3 * out_w * out_h` values.
pub fn warp_rgb_chw(
    src: &RgbImage,
    out_to_src: &Mat3,
    out_w: usize,
    out_h: usize,
    pad: PadMode,
    out: &mut [f32],
) {
    assert_eq!(out.len(), 3 * out_w * out_h, "warp output buffer size");
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let plane = out_w * out_h;
    if sw == 0 || sh == 0 {
        out.fill(0.0);
        return;
    }
    let data = src.as_raw().as_slice();
    let stride = 3 * sw;
    let (maxx, maxy) = ((sw - 1) as f32, (sh - 1) as f32);
    let m = out_to_src.0.map(|r| r.map(|v| v as f32));
    let affine = out_to_src.is_affine();
    let scale = 1.0 / 255.0;
    let (r_plane, rest) = out.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    for v in 0..out_h {
        let vf = v as f32;
        // Row start and per-column increments of the homogeneous source coordinates.
        let (x0, y0, w0) = (
            m[0][1] * vf + m[0][2],
            m[1][1] * vf + m[1][2],
            m[2][1] * vf + m[2][2],
        );
        for u in 0..out_w {
            let uf = u as f32;
            let mut x = m[0][0] * uf + x0;
            let mut y = m[1][0] * uf + y0;
            if !affine {
                let w = m[2][0] * uf + w0;
                if w <= 1e-9 {
                    x = f32::NAN;
                    y = f32::NAN;
                } else {
                    x /= w;
                    y /= w;
                }
            }
            let o = v * out_w + u;
            if !(x.is_finite() && y.is_finite()) {
                r_plane[o] = 0.0;
                g_plane[o] = 0.0;
                b_plane[o] = 0.0;
                continue;
            }
            let rgb = match pad {
                PadMode::Reflection => {
                    sample_inside(data, stride, reflect(x, maxx), reflect(y, maxy), sw, sh)
                }
                PadMode::Border => {
                    sample_inside(data, stride, x.clamp(0.0, maxx), y.clamp(0.0, maxy), sw, sh)
                }
                PadMode::Zeros => sample_zeros(data, stride, x, y, sw, sh),
            };
            r_plane[o] = rgb[0] * scale;
            g_plane[o] = rgb[1] * scale;
            b_plane[o] = rgb[2] * scale;
        }
    }
}

/// Bilinear sample at a point already inside `[0, w-1] x [0, h-1]`.
#[inline]
fn sample_inside(data: &[u8], stride: usize, x: f32, y: f32, w: usize, h: usize) -> [f32; 3] {
    let (xf, yf) = (x.floor(), y.floor());
    let (fx, fy) = (x - xf, y - yf);
    let (x0, y0) = ((xf as usize).min(w - 1), (yf as usize).min(h - 1));
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (r0, r1) = (y0 * stride, y1 * stride);
    let (c0, c1) = (3 * x0, 3 * x1);
    let w00 = (1.0 - fx) * (1.0 - fy);
    let w01 = fx * (1.0 - fy);
    let w10 = (1.0 - fx) * fy;
    let w11 = fx * fy;
    let mut out = [0.0f32; 3];
    for (c, o) in out.iter_mut().enumerate() {
        *o = w00 * data[r0 + c0 + c] as f32
            + w01 * data[r0 + c1 + c] as f32
            + w10 * data[r1 + c0 + c] as f32
            + w11 * data[r1 + c1 + c] as f32;
    }
    out
}

/// Bilinear sample where taps outside the image read black.
#[inline]
fn sample_zeros(data: &[u8], stride: usize, x: f32, y: f32, w: usize, h: usize) -> [f32; 3] {
    let (xf, yf) = (x.floor(), y.floor());
    let (fx, fy) = (x - xf, y - yf);
    let (xi, yi) = (xf as i64, yf as i64);
    let mut out = [0.0f32; 3];
    for (dy, wy) in [(0i64, 1.0 - fy), (1, fy)] {
        for (dx, wx) in [(0i64, 1.0 - fx), (1, fx)] {
            let (px, py) = (xi + dx, yi + dy);
            if px < 0 || py < 0 || px >= w as i64 || py >= h as i64 {
                continue;
            }
            let base = py as usize * stride + 3 * px as usize;
            let wt = wx * wy;
            for (c, o) in out.iter_mut().enumerate() {
                *o += wt * data[base + c] as f32;
            }
        }
    }
    out
}

/// The matrix from pixel coordinates of a `w x h` image to those of its resampled `nw x nh` copy
/// made by a centre-aligned resizer (fast_image_resize, PIL, OpenCV `INTER_AREA`): output pixel
/// `j` covers source `(j + 0.5) * w / nw - 0.5`.
pub fn resample_matrix(w: u32, h: u32, nw: u32, nh: u32) -> Mat3 {
    let (sx, sy) = (nw as f64 / w as f64, nh as f64 / h as f64);
    Mat3::affine(sx, 0.0, 0.5 * sx - 0.5, 0.0, sy, 0.5 * sy - 0.5)
}

/// Antialiased downscale (fast_image_resize, bilinear convolution, whose support widens with the
/// scale factor) used before a large reduction, which plain bilinear sampling would alias.
pub fn downscale(img: &RgbImage, nw: u32, nh: u32) -> RgbImage {
    use fast_image_resize::{
        images::{Image, ImageRef},
        FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
    };
    let (w, h) = img.dimensions();
    if (w, h) == (nw, nh) {
        return img.clone();
    }
    // Borrowed, not copied: a 50-megapixel photo is 150 MB.
    let src = ImageRef::new(w, h, img.as_raw(), PixelType::U8x3)
        .expect("an RgbImage buffer always has 3 bytes per pixel");
    let mut dst = Image::new(nw, nh, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&src, &mut dst, &opts)
        .expect("same pixel type on both sides");
    RgbImage::from_raw(nw, nh, dst.into_vec()).expect("destination buffer has nw*nh*3 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_homography_round_trip() {
        let from = [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]];
        let to = [[-1.1, -0.95], [-0.9, 1.05], [1.1, -1.05], [0.9, 0.95]];
        let h = Mat3::homography(from, to).unwrap();
        for (f, t) in from.iter().zip(to.iter()) {
            let p = h.apply([f[0] as f32, f[1] as f32]).unwrap();
            assert!((p[0] as f64 - t[0]).abs() < 1e-6 && (p[1] as f64 - t[1]).abs() < 1e-6);
        }
        let id = h.mul(&h.inverse().unwrap());
        for i in 0..3 {
            for j in 0..3 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((id.0[i][j] - e).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn reflect_folds_about_border_centres() {
        assert_eq!(reflect(-1.0, 9.0), 1.0);
        assert_eq!(reflect(10.0, 9.0), 8.0);
        assert_eq!(reflect(19.0, 9.0), 1.0);
        assert_eq!(reflect(4.5, 9.0), 4.5);
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let img = RgbImage::from_fn(5, 4, |x, y| image::Rgb([(x * 40) as u8, (y * 50) as u8, 7]));
        let mut out = vec![0.0; 3 * 20];
        warp_rgb_chw(&img, &Mat3::IDENTITY, 5, 4, PadMode::Zeros, &mut out);
        for y in 0..4 {
            for x in 0..5 {
                let p = img.get_pixel(x, y);
                let o = (y * 5 + x) as usize;
                assert!((out[o] * 255.0 - p[0] as f32).abs() < 1e-3);
                assert!((out[20 + o] * 255.0 - p[1] as f32).abs() < 1e-3);
            }
        }
    }
}
