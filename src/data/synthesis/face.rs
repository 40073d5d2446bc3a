//! One synthetic face: random proportions, pose, colours and clutter, drawn so that each of the
//! 68 iBUG landmarks lies on a visible feature (face outline, brow strokes, nose bridge and base,
//! eye contours, lip contours). Points follow the iBUG-68 order and sides: point 0 and the eye
//! 36-41 are on the image's left, so horizontal flips and the 36/45 inter-ocular distance mean
//! what they mean on real faces.
//!
//! The face is built in a face frame (x right, y down, unit = half the face width, origin between
//! the eyes and the mouth), then bent by a mild yaw and placed by a similarity transform.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::data::synthesis::canvas::{Canvas, Rgb};

/// Number of landmarks of a synthetic face (iBUG-68).
pub const N_POINTS: usize = 68;

/// A rendered face: RGB image and its 68 landmarks in image pixels.
pub struct SynthFace {
    pub image: image::RgbImage,
    pub points: Vec<[f32; 2]>,
}

/// Shape of a face in the face frame: the 68 landmarks plus the geometry drawn around them.
struct FaceGeometry {
    pts: [[f32; 2]; N_POINTS],
    /// Forehead arc from point 16 back to point 0 (closes the face polygon).
    forehead: Vec<[f32; 2]>,
    jaw_w: f32,
    /// Iris centre offsets (gaze) as a fraction of the eye half-width.
    gaze: [f32; 2],
}

fn u(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    rng.random_range(lo..hi)
}

fn face_geometry(rng: &mut ChaCha8Rng) -> FaceGeometry {
    let mut p = [[0f32; 2]; N_POINTS];
    let eye_y = u(rng, -0.32, -0.2);
    let eye_sep = u(rng, 0.36, 0.46);
    let eye_hw = u(rng, 0.14, 0.2);
    let eye_up = u(rng, 0.05, 0.1);
    let eye_lo = u(rng, 0.035, 0.075);
    let eye_tilt = u(rng, -0.03, 0.03);
    let jaw_w = u(rng, 0.92, 1.08);
    let jaw_top = eye_y + u(rng, -0.02, 0.12);

    // Eyes: outer corner, two upper-lid points, inner corner, two lower-lid points.
    for side in [-1.0f32, 1.0] {
        let cx = side * (eye_sep + u(rng, -0.015, 0.015));
        let cy = eye_y + u(rng, -0.015, 0.015);
        let outer = [cx + side * eye_hw, cy - eye_tilt];
        let inner = [cx - side * eye_hw, cy + eye_tilt];
        let up_o = [cx + side * eye_hw * 0.35, cy - eye_up];
        let up_i = [cx - side * eye_hw * 0.35, cy - eye_up * 0.95];
        let lo_o = [cx + side * eye_hw * 0.35, cy + eye_lo];
        let lo_i = [cx - side * eye_hw * 0.35, cy + eye_lo];
        if side < 0.0 {
            // Image-left eye 36-41 runs outer -> inner along the top, back along the bottom.
            p[36..42].copy_from_slice(&[outer, up_o, up_i, inner, lo_i, lo_o]);
        } else {
            // Image-right eye 42-47 runs inner -> outer along the top, back along the bottom.
            p[42..48].copy_from_slice(&[inner, up_i, up_o, outer, lo_o, lo_i]);
        }
    }

    // Brows: five points each, outer -> inner on the left (17-21), inner -> outer on the right.
    let brow_gap = u(rng, 0.14, 0.24);
    let arch = u(rng, 0.02, 0.08);
    let brow_in = u(rng, 0.08, 0.15);
    let brow_out = eye_sep + eye_hw + u(rng, 0.0, 0.1);
    for side in [-1.0f32, 1.0] {
        let by = eye_y - eye_up - brow_gap + u(rng, -0.02, 0.02);
        let slope = u(rng, -0.04, 0.04);
        for k in 0..5 {
            let t = k as f32 / 4.0; // 0 = outer, 1 = inner
            let x = side * (brow_out + t * (brow_in - brow_out));
            let y = by - arch * (std::f32::consts::PI * (0.25 + 0.75 * t)).sin() + slope * t;
            let idx = if side < 0.0 { 17 + k } else { 26 - k };
            p[idx] = [x, y];
        }
    }

    // Nose: bridge 27-30 down the midline, base 31-35 left to right.
    let bridge_top = eye_y + u(rng, -0.06, 0.0);
    let tip = u(rng, 0.18, 0.32);
    for k in 0..4 {
        p[27 + k] = [0.0, bridge_top + (tip - bridge_top) * k as f32 / 3.0];
    }
    let base = tip + u(rng, 0.06, 0.1);
    let nw = u(rng, 0.13, 0.21);
    p[31] = [-nw, base - u(rng, 0.02, 0.05)];
    p[32] = [-nw * 0.5, base - 0.005];
    p[33] = [0.0, base + 0.01];
    p[34] = [nw * 0.5, base - 0.005];
    p[35] = [nw, p[31][1]];

    // Mouth: outer contour 48-59, inner contour 60-67 (closed lips put the inner points on
    // the seam between the lips).
    let my = base + u(rng, 0.2, 0.3);
    let mw = u(rng, 0.28, 0.44);
    let ul = u(rng, 0.05, 0.1);
    let ll = u(rng, 0.06, 0.12);
    let open = if rng.random_bool(0.4) {
        u(rng, 0.02, 0.12)
    } else {
        0.0
    };
    let smile = u(rng, -0.05, 0.04);
    let corner_y = my - smile;
    let seam_u = my - open / 2.0;
    let seam_l = my + open / 2.0;
    p[48] = [-mw, corner_y];
    p[54] = [mw, corner_y];
    let upx = [-0.62, -0.28, 0.0, 0.28, 0.62];
    let upy = [0.75, 1.0, 0.82, 1.0, 0.75];
    for k in 0..5 {
        p[49 + k] = [upx[k] * mw, seam_u - ul * upy[k] - smile * 0.3];
    }
    let lox = [0.62, 0.3, 0.0, -0.3, -0.62];
    let loy = [0.75, 0.95, 1.0, 0.95, 0.75];
    for k in 0..5 {
        p[55 + k] = [lox[k] * mw, seam_l + ll * loy[k]];
    }
    let inner_w = mw - u(rng, 0.02, 0.05);
    p[60] = [-inner_w, corner_y];
    p[64] = [inner_w, corner_y];
    let inx = [-0.4, 0.0, 0.4];
    for k in 0..3 {
        p[61 + k] = [inx[k] * inner_w, seam_u];
        p[67 - k] = [inx[k] * inner_w, seam_l];
    }

    // Jaw 0-16: from the left temple down around the chin and up to the right temple.
    let chin = (p[57][1] + u(rng, 0.18, 0.32)).max(1.0);
    let q = u(rng, 0.7, 1.1); // < 1: squarer jaw
    for (k, pk) in p.iter_mut().enumerate().take(17) {
        let th = std::f32::consts::PI * k as f32 / 16.0;
        let c = th.cos();
        let x = -jaw_w * c.signum() * c.abs().powf(q);
        let y = jaw_top + (chin - jaw_top) * th.sin().max(0.0).powf(0.9);
        *pk = [x, y];
    }

    // Forehead arc above the brows, from 16 back to 0.
    let top = p[19][1].min(p[24][1]) - u(rng, 0.4, 0.6);
    let forehead = (1..12)
        .map(|k| {
            let ph = std::f32::consts::PI * k as f32 / 12.0;
            [jaw_w * ph.cos(), jaw_top - (jaw_top - top) * ph.sin()]
        })
        .collect();
    let gaze = [u(rng, -0.3, 0.3), u(rng, -0.15, 0.15)];
    FaceGeometry {
        pts: p,
        forehead,
        jaw_w,
        gaze,
    }
}

/// Face frame -> image pixels: a mild yaw (inner features shift sideways, the nose a bit more),
/// then scale, rotation and translation.
struct Placement {
    yaw: f32,
    jaw_w: f32,
    scale: f32,
    sin: f32,
    cos: f32,
    centre: [f32; 2],
}

impl Placement {
    fn map(&self, q: [f32; 2], depth: f32) -> [f32; 2] {
        let r = (q[0] / (self.jaw_w * 1.05)).clamp(-1.0, 1.0);
        let x = q[0] + self.yaw * (0.25 * (1.0 - r * r) + depth);
        let (x, y) = (x * self.scale, q[1] * self.scale);
        [
            self.centre[0] + x * self.cos - y * self.sin,
            self.centre[1] + x * self.sin + y * self.cos,
        ]
    }

    fn angle(&self) -> f32 {
        self.sin.atan2(self.cos)
    }
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    std::array::from_fn(|k| a[k] + t * (b[k] - a[k]))
}

fn scale(a: Rgb, s: f32) -> Rgb {
    a.map(|v| v * s)
}

fn random_colour(rng: &mut ChaCha8Rng) -> Rgb {
    [u(rng, 0.0, 1.0), u(rng, 0.0, 1.0), u(rng, 0.0, 1.0)]
}

fn skin_colour(rng: &mut ChaCha8Rng) -> Rgb {
    let light = [0.96, 0.8, 0.68];
    let dark = [0.33, 0.2, 0.13];
    let base = mix(light, dark, u(rng, 0.0, 1.0));
    let tint = [u(rng, 0.92, 1.08), u(rng, 0.92, 1.05), u(rng, 0.9, 1.08)];
    std::array::from_fn(|k| (base[k] * tint[k]).min(1.0))
}

fn hair_colour(rng: &mut ChaCha8Rng) -> Rgb {
    const HAIR: [Rgb; 6] = [
        [0.05, 0.04, 0.03],
        [0.22, 0.13, 0.07],
        [0.45, 0.3, 0.15],
        [0.8, 0.65, 0.4],
        [0.6, 0.6, 0.6],
        [0.55, 0.2, 0.08],
    ];
    let c = HAIR[rng.random_range(0..HAIR.len())];
    scale(c, u(rng, 0.8, 1.15))
}

/// Random shapes behind the face so that a model cannot find it by colour alone.
fn clutter(canvas: &mut Canvas, rng: &mut ChaCha8Rng, size: f32) {
    let n = rng.random_range(2..10);
    for _ in 0..n {
        let c = [u(rng, -0.1, 1.1) * size, u(rng, -0.1, 1.1) * size];
        let colour = random_colour(rng);
        let alpha = u(rng, 0.3, 1.0);
        let mask = match rng.random_range(0..3) {
            0 => canvas.ellipse(
                c,
                u(rng, 0.02, 0.25) * size,
                u(rng, 0.02, 0.25) * size,
                u(rng, 0.0, 3.2),
            ),
            1 => {
                let k = rng.random_range(3..7);
                let r = u(rng, 0.05, 0.3) * size;
                let poly: Vec<[f32; 2]> = (0..k)
                    .map(|i| {
                        let a = std::f32::consts::TAU * (i as f32 + u(rng, 0.0, 0.7)) / k as f32;
                        let rr = r * u(rng, 0.5, 1.0);
                        [c[0] + rr * a.cos(), c[1] + rr * a.sin()]
                    })
                    .collect();
                canvas.polygon(&poly)
            }
            _ => {
                let d = [u(rng, -0.5, 0.5) * size, u(rng, -0.5, 0.5) * size];
                let w = u(rng, 0.005, 0.04) * size;
                canvas.stroke(&[c, [c[0] + d[0], c[1] + d[1]]], &[w, w], false)
            }
        };
        canvas.paint(&mask, colour, alpha);
    }
}

/// Draws one random face on a `size` x `size` image.
pub fn render_face(rng: &mut ChaCha8Rng, size: u32) -> SynthFace {
    let s = size as f32;
    let geo = face_geometry(rng);
    let angle = u(rng, -30.0, 30.0).to_radians();
    let place = Placement {
        yaw: u(rng, -0.45, 0.45),
        jaw_w: geo.jaw_w,
        scale: s * u(rng, 0.17, 0.27),
        sin: angle.sin(),
        cos: angle.cos(),
        centre: [s * u(rng, 0.4, 0.6), s * u(rng, 0.4, 0.58)],
    };
    // Depth: the nose sticks out, so yaw moves it further than the eyes.
    let depth = |i: usize| match i {
        28..=35 => 0.06 + 0.03 * (i.min(30) - 27) as f32,
        _ => 0.0,
    };
    let pts: Vec<[f32; 2]> = (0..N_POINTS)
        .map(|i| place.map(geo.pts[i], depth(i)))
        .collect();
    let mut canvas = background(rng, size);
    // The parts are painted back to front; each draws its random choices in this fixed order,
    // so a seed gives the same face.
    let face = FaceParts {
        skin: skin_colour(rng),
        hair: hair_colour(rng),
        pts: &pts,
        geo: &geo,
        place: &place,
    };
    face.hair_and_neck(&mut canvas, rng);
    face.skin_and_jaw(&mut canvas, rng);
    face.brows(&mut canvas, rng);
    face.eyes(&mut canvas, rng);
    face.nose(&mut canvas, rng);
    face.mouth(&mut canvas, rng);
    light_and_noise(&mut canvas, rng, s);
    SynthFace {
        image: canvas.to_rgb8(),
        points: pts,
    }
}

/// A gradient between two random colours, then clutter.
fn background(rng: &mut ChaCha8Rng, size: u32) -> Canvas {
    let s = size as f32;
    let (bg_a, bg_b) = (random_colour(rng), random_colour(rng));
    let bg_dir = u(rng, 0.0, std::f32::consts::TAU);
    let (bs, bc) = bg_dir.sin_cos();
    let mut canvas = Canvas::new(size as usize, size as usize, bg_a);
    canvas.map(|x, y, _| {
        let t = ((x / s - 0.5) * bc + (y / s - 0.5) * bs + 0.5).clamp(0.0, 1.0);
        mix(bg_a, bg_b, t)
    });
    clutter(&mut canvas, rng, s);
    canvas
}

/// One face being painted: its colours, its 68 points in image pixels, its shape and placement.
struct FaceParts<'a> {
    skin: Rgb,
    hair: Rgb,
    pts: &'a [[f32; 2]],
    geo: &'a FaceGeometry,
    place: &'a Placement,
}

impl FaceParts<'_> {
    fn to_img(&self, q: [f32; 2]) -> [f32; 2] {
        self.place.map(q, 0.0)
    }

    /// Pixels per face unit.
    fn fs(&self) -> f32 {
        self.place.scale
    }

    /// Hair behind the head, and a neck in shadow.
    fn hair_and_neck(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let (geo, place, fs, skin, hair) = (self.geo, self.place, self.fs(), self.skin, self.hair);
        if rng.random_bool(0.75) {
            let c = self.to_img([0.0, u(rng, -0.6, -0.35)]);
            let m = canvas.ellipse(
                c,
                geo.jaw_w * u(rng, 1.08, 1.25) * fs,
                u(rng, 1.0, 1.3) * fs,
                place.angle(),
            );
            canvas.paint(&m, hair, 1.0);
        }
        if rng.random_bool(0.85) {
            let nw = u(rng, 0.45, 0.6);
            let neck: Vec<[f32; 2]> = [[-nw, 0.5], [nw, 0.5], [nw * 1.1, 4.0], [-nw * 1.1, 4.0]]
                .into_iter()
                .map(|q| self.to_img(q))
                .collect();
            let m = canvas.polygon(&neck);
            canvas.paint(&m, scale(skin, u(rng, 0.6, 0.85)), 1.0);
        }
    }

    /// Skin with directional shading, and a darker rim along the jaw.
    fn skin_and_jaw(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let (pts, fs, skin) = (self.pts, self.fs(), self.skin);
        let mut outline: Vec<[f32; 2]> = pts[0..17].to_vec();
        outline.extend(self.geo.forehead.iter().map(|&q| self.to_img(q)));
        let light = u(rng, 0.0, std::f32::consts::TAU);
        let (ls, lc) = light.sin_cos();
        let shade = u(rng, 0.0, 0.35);
        let fc = self.to_img([0.0, 0.2]);
        let face = canvas.polygon(&outline);
        canvas.paint_with(
            &face,
            |x, y| {
                let d = ((x - fc[0]) * lc + (y - fc[1]) * ls) / (fs * 1.2);
                scale(skin, (1.0 + shade * d.clamp(-1.0, 1.0)).max(0.2))
            },
            1.0,
        );
        let rim_w = vec![u(rng, 0.03, 0.07) * fs; 17];
        let rim = canvas.stroke(&pts[0..17], &rim_w, false);
        canvas.paint(&rim, scale(skin, 0.55), u(rng, 0.35, 0.7));
    }

    /// Tapered strokes, thickest near the inner end.
    fn brows(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let pts = self.pts;
        let bt = u(rng, 0.035, 0.08) * self.fs();
        let brow_colour = scale(self.hair, u(rng, 0.5, 0.9));
        let widths: Vec<f32> = [0.55, 0.8, 0.95, 1.0, 1.0].iter().map(|w| w * bt).collect();
        let rev: Vec<f32> = widths.iter().rev().cloned().collect();
        let brow_alpha = u(rng, 0.7, 0.95);
        let m = canvas.stroke(&pts[17..22], &widths, false);
        canvas.paint(&m, brow_colour, brow_alpha);
        let m = canvas.stroke(&pts[22..27], &rev, false);
        canvas.paint(&m, brow_colour, brow_alpha);
    }

    /// Sclera, iris and pupil clipped to the lids, then the lid contour.
    fn eyes(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let (pts, fs, geo) = (self.pts, self.fs(), self.geo);
        let sclera = scale([0.95, 0.93, 0.9], u(rng, 0.75, 1.0));
        let iris_colour = mix([0.25, 0.13, 0.05], [0.3, 0.5, 0.65], u(rng, 0.0, 1.0));
        let line_colour = scale(self.hair, 0.4);
        let lid_w = (0.018 * fs).max(1.0);
        for (lo, outer, inner) in [(36usize, 36usize, 39usize), (42, 45, 42)] {
            let eye = &pts[lo..lo + 6];
            let m = canvas.polygon(eye);
            canvas.paint(&m, sclera, 1.0);
            let mid =
                |a: usize, b: usize| [(pts[a][0] + pts[b][0]) / 2.0, (pts[a][1] + pts[b][1]) / 2.0];
            let centre = mid(outer, inner);
            let hw = 0.5 * dist(pts[outer], pts[inner]);
            let dir = [
                (pts[outer][0] - pts[inner][0]) / (2.0 * hw).max(1e-3),
                (pts[outer][1] - pts[inner][1]) / (2.0 * hw).max(1e-3),
            ];
            let side = if lo == 36 { -1.0 } else { 1.0 };
            let gx = geo.gaze[0] * hw * side;
            let ic = [
                centre[0] + gx * dir[0] - geo.gaze[1] * hw * dir[1],
                centre[1] + gx * dir[1] + geo.gaze[1] * hw * dir[0],
            ];
            let opening = dist(mid(lo + 1, lo + 2), mid(lo + 4, lo + 5));
            let ir = (0.55 * opening).max(0.45 * hw.min(opening * 1.4));
            let iris = canvas.ellipse(ic, ir, ir, 0.0).intersect(&m);
            canvas.paint(&iris, iris_colour, 1.0);
            let pupil = canvas.ellipse(ic, ir * 0.45, ir * 0.45, 0.0).intersect(&m);
            canvas.paint(&pupil, [0.02, 0.02, 0.02], 1.0);
            let contour = canvas.stroke(eye, &[lid_w; 6], true);
            canvas.paint(&contour, line_colour, 0.9);
            let upper = &pts[lo..lo + 4];
            let lash = canvas.stroke(upper, &[lid_w * 2.2; 4], false);
            canvas.paint(&lash, line_colour, 0.8);
        }
    }

    /// A shadow line down the bridge, the base curve and two nostrils.
    fn nose(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let (pts, fs, skin, angle) = (self.pts, self.fs(), self.skin, self.place.angle());
        let nose_shadow = scale(skin, 0.6);
        let m = canvas.stroke(&pts[27..31], &[(0.03 * fs).max(1.0); 4], false);
        canvas.paint(&m, nose_shadow, u(rng, 0.35, 0.6));
        let tip = canvas.ellipse(pts[30], 0.07 * fs, 0.05 * fs, angle);
        canvas.paint(&tip, scale(skin, 1.15), 0.4);
        let m = canvas.stroke(&pts[31..36], &[(0.028 * fs).max(1.0); 5], false);
        canvas.paint(&m, scale(skin, 0.45), 0.85);
        for (a, b) in [(31usize, 32usize), (34, 35)] {
            let c = [
                (pts[a][0] + pts[b][0]) / 2.0,
                (pts[a][1] + pts[b][1]) / 2.0 - 0.01 * fs,
            ];
            let m = canvas.ellipse(c, 0.045 * fs, 0.022 * fs, angle);
            canvas.paint(&m, [0.08, 0.04, 0.03], 0.8);
        }
    }

    /// Lips, the opening (with teeth sometimes) or the seam, and the lip contour.
    fn mouth(&self, canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
        let (pts, fs) = (self.pts, self.fs());
        let lip = mix(self.skin, [0.7, 0.25, 0.3], u(rng, 0.3, 0.75));
        let outer_lips = canvas.polygon(&pts[48..60]);
        canvas.paint(&outer_lips, lip, 1.0);
        let open = dist(pts[62], pts[66]) > 0.02 * fs;
        if open {
            let inner = canvas.polygon(&pts[60..68]);
            canvas.paint(&inner, [0.12, 0.04, 0.05], 1.0);
            if rng.random_bool(0.5) {
                let c = pts[62];
                let teeth = canvas
                    .ellipse(c, 0.2 * fs, 0.03 * fs, self.place.angle())
                    .intersect(&inner);
                canvas.paint(&teeth, [0.9, 0.88, 0.8], 1.0);
            }
        }
        let seam = [pts[60], pts[61], pts[62], pts[63], pts[64]];
        let m = canvas.stroke(&seam, &[(0.02 * fs).max(1.0); 5], false);
        canvas.paint(&m, scale(lip, 0.35), 0.9);
        let m = canvas.stroke(&pts[48..60], &[(0.012 * fs).max(0.8); 12], true);
        canvas.paint(&m, scale(lip, 0.6), 0.6);
    }
}

/// Lighting over the whole picture, soft focus, sensor noise.
fn light_and_noise(canvas: &mut Canvas, rng: &mut ChaCha8Rng, s: f32) {
    let gain = u(rng, 0.7, 1.2);
    let grad = u(rng, 0.0, 0.5);
    let gdir = u(rng, 0.0, std::f32::consts::TAU);
    let (gs, gc) = gdir.sin_cos();
    canvas.map(|x, y, p| {
        let t = (x / s - 0.5) * gc + (y / s - 0.5) * gs;
        scale(p, gain * (1.0 + grad * t))
    });
    if rng.random_bool(0.5) {
        canvas.soften();
    }
    let sigma = u(rng, 0.0, 0.05);
    if sigma > 0.005 {
        let normal = Normal::new(0.0f32, sigma).expect("positive sigma");
        for p in canvas.px.iter_mut() {
            for v in p.iter_mut() {
                *v += normal.sample(rng);
            }
        }
    }
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn landmarks_follow_ibug_sides() {
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let g = face_geometry(&mut rng);
            let p = g.pts;
            // In the face frame (before rotation) the left/right pairs sit on opposite sides.
            for (a, b) in [(0, 16), (17, 26), (36, 45), (39, 42), (31, 35), (48, 54)] {
                assert!(p[a][0] < p[b][0], "seed {seed}: {a} {b}");
            }
            // Top to bottom: brows, eyes, nose tip, mouth, chin.
            assert!(p[19][1] < p[37][1]);
            assert!(p[37][1] < p[41][1]);
            assert!(p[41][1] < p[30][1]);
            assert!(p[30][1] < p[33][1]);
            assert!(p[33][1] < p[51][1]);
            assert!(p[51][1] <= p[62][1]);
            assert!(p[62][1] <= p[66][1]);
            assert!(p[66][1] < p[57][1]);
            assert!(p[57][1] < p[8][1]);
        }
    }
}
