//! A tiny anti-aliased rasteriser for the synthetic faces: floating-point RGB canvas, coverage
//! masks for polygons, strokes and ellipses, and painting through a mask.
//!
//! Pixel `(i, j)` is the sample at coordinate `(i, j)` (the crate's convention: no half-pixel
//! shift), so a landmark at `(x, y)` sits exactly where the shape through it is drawn.

/// RGB in [0, 1].
pub type Rgb = [f32; 3];

/// Coverage in [0, 1] over a rectangle of the canvas.
#[derive(Clone, Debug)]
pub struct Mask {
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
    cov: Vec<f32>,
}

impl Mask {
    fn empty() -> Self {
        Mask {
            x0: 0,
            y0: 0,
            w: 0,
            h: 0,
            cov: Vec::new(),
        }
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        if x < self.x0 || y < self.y0 || x >= self.x0 + self.w || y >= self.y0 + self.h {
            return 0.0;
        }
        self.cov[(y - self.y0) * self.w + (x - self.x0)]
    }

    /// Coverage of both masks (product), over this mask's rectangle: clips a shape to another.
    pub fn intersect(&self, other: &Mask) -> Mask {
        let mut out = self.clone();
        for j in 0..self.h {
            for i in 0..self.w {
                out.cov[j * self.w + i] *= other.at(self.x0 + i, self.y0 + j);
            }
        }
        out
    }
}

pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub px: Vec<Rgb>,
}

impl Canvas {
    pub fn new(w: usize, h: usize, fill: Rgb) -> Self {
        Canvas {
            w,
            h,
            px: vec![fill; w * h],
        }
    }

    /// A mask over the canvas pixels within `[x0, x1] x [y0, y1]` (clamped), all zero.
    fn mask_for(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> Mask {
        if !(x0.is_finite() && y0.is_finite() && x1.is_finite() && y1.is_finite()) {
            return Mask::empty();
        }
        let lo_x = x0.floor().max(0.0) as usize;
        let lo_y = y0.floor().max(0.0) as usize;
        let hi_x = (x1.ceil() + 1.0).clamp(0.0, self.w as f32) as usize;
        let hi_y = (y1.ceil() + 1.0).clamp(0.0, self.h as f32) as usize;
        if hi_x <= lo_x || hi_y <= lo_y {
            return Mask::empty();
        }
        let (w, h) = (hi_x - lo_x, hi_y - lo_y);
        Mask {
            x0: lo_x,
            y0: lo_y,
            w,
            h,
            cov: vec![0.0; w * h],
        }
    }

    /// Filled polygon (even-odd rule). Anti-aliased with 4 sub-scanlines per row and exact
    /// horizontal coverage of each span.
    pub fn polygon(&self, pts: &[[f32; 2]]) -> Mask {
        if pts.len() < 3 {
            return Mask::empty();
        }
        let (bx0, by0, bx1, by1) = bbox(pts, 0.0);
        let mut m = self.mask_for(bx0, by0, bx1, by1);
        if m.w == 0 {
            return m;
        }
        const SUB: [f32; 4] = [-0.375, -0.125, 0.125, 0.375];
        let mut xs: Vec<f32> = Vec::with_capacity(16);
        for j in 0..m.h {
            let row = &mut m.cov[j * m.w..(j + 1) * m.w];
            for dy in SUB {
                let sy = (m.y0 + j) as f32 + dy;
                xs.clear();
                for k in 0..pts.len() {
                    let a = pts[k];
                    let b = pts[(k + 1) % pts.len()];
                    // Half-open rule so a vertex on the scanline counts once.
                    if (a[1] <= sy) != (b[1] <= sy) {
                        let t = (sy - a[1]) / (b[1] - a[1]);
                        xs.push(a[0] + t * (b[0] - a[0]));
                    }
                }
                xs.sort_by(|a, b| a.total_cmp(b));
                for span in xs.chunks_exact(2) {
                    add_span(row, m.x0, span[0], span[1], 0.25);
                }
            }
        }
        for c in &mut m.cov {
            *c = c.min(1.0);
        }
        m
    }

    /// A stroke along a polyline with a width per vertex (interpolated along each segment) and
    /// round ends; overlapping segments take the maximum coverage, so joints are not darker.
    pub fn stroke(&self, pts: &[[f32; 2]], widths: &[f32], closed: bool) -> Mask {
        if pts.is_empty() || widths.len() != pts.len() {
            return Mask::empty();
        }
        let wmax = widths.iter().cloned().fold(0.0f32, f32::max);
        let (bx0, by0, bx1, by1) = bbox(pts, wmax / 2.0 + 1.0);
        let mut m = self.mask_for(bx0, by0, bx1, by1);
        if m.w == 0 {
            return m;
        }
        let n = pts.len();
        let segs = if closed {
            n
        } else {
            n.saturating_sub(1).max(1)
        };
        for k in 0..segs {
            let (ia, ib) = (k, (k + 1) % n);
            let (a, b) = (pts[ia], pts[ib]);
            let (wa, wb) = (widths[ia], widths[ib]);
            let r = wa.max(wb) / 2.0 + 1.0;
            let sx0 = (a[0].min(b[0]) - r).floor().max(m.x0 as f32) as usize;
            let sy0 = (a[1].min(b[1]) - r).floor().max(m.y0 as f32) as usize;
            let sx1 = ((a[0].max(b[0]) + r).ceil() as usize).min(m.x0 + m.w - 1);
            let sy1 = ((a[1].max(b[1]) + r).ceil() as usize).min(m.y0 + m.h - 1);
            let d = [b[0] - a[0], b[1] - a[1]];
            let len2 = d[0] * d[0] + d[1] * d[1];
            for y in sy0..=sy1 {
                for x in sx0..=sx1 {
                    let p = [x as f32 - a[0], y as f32 - a[1]];
                    let t = if len2 > 0.0 {
                        ((p[0] * d[0] + p[1] * d[1]) / len2).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let q = [p[0] - t * d[0], p[1] - t * d[1]];
                    let dist = (q[0] * q[0] + q[1] * q[1]).sqrt();
                    let half = (wa + t * (wb - wa)) / 2.0;
                    let c = (half + 0.5 - dist).clamp(0.0, 1.0);
                    let slot = &mut m.cov[(y - m.y0) * m.w + (x - m.x0)];
                    *slot = slot.max(c);
                }
            }
        }
        m
    }

    /// A filled ellipse with radii `(rx, ry)` rotated by `angle` radians.
    pub fn ellipse(&self, c: [f32; 2], rx: f32, ry: f32, angle: f32) -> Mask {
        let rx = rx.max(0.3);
        let ry = ry.max(0.3);
        let r = rx.max(ry) + 1.0;
        let mut m = self.mask_for(c[0] - r, c[1] - r, c[0] + r, c[1] + r);
        let (sn, cs) = angle.sin_cos();
        let rmin = rx.min(ry);
        for j in 0..m.h {
            for i in 0..m.w {
                let dx = (m.x0 + i) as f32 - c[0];
                let dy = (m.y0 + j) as f32 - c[1];
                let u = (dx * cs + dy * sn) / rx;
                let v = (-dx * sn + dy * cs) / ry;
                let rho = (u * u + v * v).sqrt();
                // Signed distance to the edge, approximately, in pixels.
                m.cov[j * m.w + i] = (0.5 - (rho - 1.0) * rmin).clamp(0.0, 1.0);
            }
        }
        m
    }

    /// Blends `color` through the mask with opacity `alpha`.
    pub fn paint(&mut self, m: &Mask, color: Rgb, alpha: f32) {
        self.paint_with(m, |_, _| color, alpha);
    }

    /// Blends a per-pixel colour through the mask.
    pub fn paint_with(&mut self, m: &Mask, color: impl Fn(f32, f32) -> Rgb, alpha: f32) {
        for j in 0..m.h {
            for i in 0..m.w {
                let a = m.cov[j * m.w + i] * alpha;
                if a <= 0.0 {
                    continue;
                }
                let (x, y) = (m.x0 + i, m.y0 + j);
                let c = color(x as f32, y as f32);
                let p = &mut self.px[y * self.w + x];
                for k in 0..3 {
                    p[k] += a * (c[k] - p[k]);
                }
            }
        }
    }

    /// Applies `f(x, y, pixel)` to every pixel.
    pub fn map(&mut self, mut f: impl FnMut(f32, f32, Rgb) -> Rgb) {
        for y in 0..self.h {
            for x in 0..self.w {
                let p = &mut self.px[y * self.w + x];
                *p = f(x as f32, y as f32, *p);
            }
        }
    }

    /// Separable 3-tap [1 2 1]/4 blur (edge pixels repeat): the softness of a real lens.
    pub fn soften(&mut self) {
        let (w, h) = (self.w, self.h);
        let mut tmp = self.px.clone();
        for y in 0..h {
            for x in 0..w {
                let l = self.px[y * w + x.saturating_sub(1)];
                let c = self.px[y * w + x];
                let r = self.px[y * w + (x + 1).min(w - 1)];
                tmp[y * w + x] = std::array::from_fn(|k| 0.25 * l[k] + 0.5 * c[k] + 0.25 * r[k]);
            }
        }
        for y in 0..h {
            for x in 0..w {
                let u = tmp[y.saturating_sub(1) * w + x];
                let c = tmp[y * w + x];
                let d = tmp[(y + 1).min(h - 1) * w + x];
                self.px[y * w + x] =
                    std::array::from_fn(|k| 0.25 * u[k] + 0.5 * c[k] + 0.25 * d[k]);
            }
        }
    }

    /// Rounds to 8-bit RGB.
    pub fn to_rgb8(&self) -> image::RgbImage {
        let mut buf = Vec::with_capacity(self.w * self.h * 3);
        for p in &self.px {
            for &v in p {
                buf.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        image::RgbImage::from_raw(self.w as u32, self.h as u32, buf)
            .expect("buffer length matches the canvas size")
    }
}

fn bbox(pts: &[[f32; 2]], pad: f32) -> (f32, f32, f32, f32) {
    let mut b = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in pts {
        b.0 = b.0.min(p[0]);
        b.1 = b.1.min(p[1]);
        b.2 = b.2.max(p[0]);
        b.3 = b.3.max(p[1]);
    }
    (b.0 - pad, b.1 - pad, b.2 + pad, b.3 + pad)
}

/// Adds `weight` times the overlap of `[xa, xb]` with each pixel's extent `[i - 0.5, i + 0.5]`.
fn add_span(row: &mut [f32], x0: usize, xa: f32, xb: f32, weight: f32) {
    let (xa, xb) = (xa.min(xb), xa.max(xb));
    let first = (xa + 0.5).floor().max(x0 as f32);
    let last = (xb + 0.5).floor().min((x0 + row.len()) as f32 - 1.0);
    if first.is_nan() || last.is_nan() || first > last {
        return;
    }
    for i in first as usize..=last as usize {
        let lo = (i as f32 - 0.5).max(xa);
        let hi = (i as f32 + 0.5).min(xb);
        if hi > lo {
            row[i - x0] += weight * (hi - lo);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_area_matches_geometry() {
        let c = Canvas::new(40, 40, [0.0; 3]);
        // A 10x20 rectangle: coverage sums to its area.
        let m = c.polygon(&[[5.0, 5.0], [15.0, 5.0], [15.0, 25.0], [5.0, 25.0]]);
        let area: f32 = m.cov.iter().sum();
        assert!((area - 200.0).abs() < 1.0, "{area}");
        let e = c.ellipse([20.0, 20.0], 8.0, 4.0, 0.3);
        let area: f32 = e.cov.iter().sum();
        let exact = std::f32::consts::PI * 32.0;
        assert!((area - exact).abs() / exact < 0.08, "{area} vs {exact}");
    }

    #[test]
    fn shapes_off_canvas_are_empty() {
        let c = Canvas::new(10, 10, [0.0; 3]);
        assert_eq!(
            c.polygon(&[[-9.0, -9.0], [-5.0, -9.0], [-5.0, -5.0]])
                .cov
                .len(),
            0
        );
        assert_eq!(c.ellipse([50.0, 50.0], 3.0, 3.0, 0.0).cov.len(), 0);
        assert_eq!(c.stroke(&[[f32::NAN, 0.0]], &[1.0], false).cov.len(), 0);
    }
}
