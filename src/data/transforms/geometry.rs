//! Item geometry: from a source image to the network input in ONE warp.
//!
//! fastai resizes each item to 400 (crop to a square, random position in training), then warps the
//! batch to 256 with rotation, zoom and perspective. Here those steps are one matrix
//! `source -> input`, composed in normalised frame coordinates (`n = 2 x / side - 1`, as fastai
//! scales points): `input = Out * (P R Z)^-1 * Frame * source`, then an optional mirror. The image
//! is warped once with its inverse (bilinear, reflection padding), points with the matrix itself,
//! so both agree exactly. A source much larger than `item_size` is first antialiased down (the
//! recipe's resize to 400), which the matrix accounts for.

use image::RgbImage;
use rand::Rng;

use crate::data::loading::pipeline_config::{PipelineConfig, ResizeMode};
use crate::data::transforms::augment::{AugmentDraw, ColourLut};
use crate::data::transforms::flip;
use crate::data::transforms::warp::{self, Mat3, PadMode};
use crate::{BBox, Keypoints};

/// Source pixels of the region `[x0, x0 + w) x [y0, y0 + h)` to normalised frame coordinates.
pub fn region_to_frame(x0: f64, y0: f64, w: f64, h: f64) -> Mat3 {
    Mat3::affine(
        2.0 / w,
        0.0,
        -2.0 * x0 / w - 1.0,
        0.0,
        2.0 / h,
        -2.0 * y0 / h - 1.0,
    )
}

/// Normalised frame coordinates to pixels of a `size x size` output.
pub fn frame_to_pixels(size: usize) -> Mat3 {
    let s = size as f64 / 2.0;
    Mat3::affine(s, 0.0, s, 0.0, s, s)
}

/// The region of a `w x h` source that becomes the square item: fastai `Resize` for crop, pad
/// and squish, where `pct` places a crop (or the image inside a pad) along each axis (0.5 =
/// centred); for `box`, the square of `cfg.box_scale` times the longer side of `face_box`
/// centred on it. Returns (x0, y0, w, h).
pub fn item_region(
    w: u32,
    h: u32,
    cfg: &PipelineConfig,
    face_box: BBox,
    pct: [f64; 2],
) -> [f64; 4] {
    let (w, h) = (w as f64, h as f64);
    match cfg.resize {
        ResizeMode::Crop | ResizeMode::Pad => {
            let side = if cfg.resize == ResizeMode::Crop {
                w.min(h)
            } else {
                w.max(h)
            };
            [pct[0] * (w - side), pct[1] * (h - side), side, side]
        }
        ResizeMode::Squish => [0.0, 0.0, w, h],
        ResizeMode::Box => box_square(face_box, cfg.box_scale),
    }
}

/// The square of `scale` times the longer side of `b`, centred on it, as (x0, y0, side, side). A
/// degenerate box still gives a square of at least one pixel.
pub fn box_square(b: BBox, scale: f64) -> [f64; 4] {
    let [x0, y0, x1, y1] = b.corners().map(f64::from);
    let side = ((x1 - x0).abs().max((y1 - y0).abs()) * scale).max(1.0);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    [cx - side / 2.0, cy - side / 2.0, side, side]
}

/// Size to antialias a `w x h` source down to before warping, so that the item region is at
/// most `item_size` pixels along each axis (no change when it already is, or item_size is 0).
pub fn working_size(w: u32, h: u32, region_w: f64, region_h: f64, item_size: usize) -> (u32, u32) {
    if item_size == 0 {
        return (w, h);
    }
    let sx = (item_size as f64 / region_w).min(1.0);
    let sy = (item_size as f64 / region_h).min(1.0);
    let nw = ((w as f64 * sx).round() as u32).clamp(1, w.max(1));
    let nh = ((h as f64 * sy).round() as u32).clamp(1, h.max(1));
    (nw, nh)
}

/// Working size of a source for the item transform of `cfg` (independent of the crop position,
/// so a downscaled image can be cached across epochs).
pub fn item_working_size(w: u32, h: u32, cfg: &PipelineConfig, face_box: BBox) -> (u32, u32) {
    let [_, _, rw, rh] = item_region(w, h, cfg, face_box, [0.5, 0.5]);
    working_size(w, h, rw, rh, cfg.item_size)
}

/// A source image ready for warping: possibly downscaled, with its original size.
pub struct Source<'a> {
    /// The image actually sampled (the original or its antialiased reduction).
    pub image: &'a RgbImage,
    /// Size of the original image, the frame the landmark coordinates live in.
    pub original: (u32, u32),
}

impl Source<'_> {
    /// Original pixel coordinates to working-image pixel coordinates.
    pub fn original_to_working(&self) -> Mat3 {
        let (w, h) = self.original;
        if (w, h) == self.image.dimensions() {
            Mat3::IDENTITY
        } else {
            warp::resample_matrix(w, h, self.image.width(), self.image.height())
        }
    }
}

/// The random (or, in validation, fixed) decisions for one sample.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Original source pixels to input pixels.
    pub src_to_input: Mat3,
    pub draw: AugmentDraw,
    pub flipped: bool,
}

/// Decides the geometry for one sample. In training, the draws are: crop position (2, unused by
/// `box` crops), the augmentation ([`AugmentDraw::draw`]), the flip (1), always in this order and
/// number.
pub fn plan(
    original: (u32, u32),
    face_box: BBox,
    cfg: &PipelineConfig,
    train: bool,
    can_flip: bool,
    rng: &mut impl Rng,
) -> Plan {
    let (pct, draw, flipped) = if train {
        let pct = [rng.random::<f64>(), rng.random::<f64>()];
        let draw = AugmentDraw::draw(&cfg.augment, rng);
        let u: f32 = rng.random();
        (pct, draw, can_flip && u < cfg.flip.p)
    } else {
        ([0.5, 0.5], AugmentDraw::NEUTRAL, false)
    };
    let [x0, y0, rw, rh] = item_region(original.0, original.1, cfg, face_box, pct);
    let frame = region_to_frame(x0, y0, rw, rh);
    let aug = draw.output_to_input();
    let aug_inv = aug.inverse().expect("augmentation matrices are invertible");
    let mut m = frame_to_pixels(cfg.input_size).mul(&aug_inv).mul(&frame);
    if flipped {
        m = flip::mirror_matrix(cfg.input_size).mul(&m);
    }
    Plan {
        src_to_input: m,
        draw,
        flipped,
    }
}

/// Maps points with `m` into a `size x size` frame; points leaving it become invisible (their
/// coordinates are kept, not clamped).
pub fn transform_points(kp: &Keypoints, m: &Mat3, size: usize) -> Keypoints {
    let mut visible = kp.visible.clone();
    let xy = kp
        .xy
        .iter()
        .zip(visible.iter_mut())
        .map(|(&p, v)| match m.apply(p) {
            Some(q) => q,
            None => {
                *v = false;
                [f32::NAN, f32::NAN]
            }
        })
        .collect();
    let mut out = Keypoints { xy, visible };
    out.mark_outside(size as f32, size as f32);
    out
}

/// Renders the input image of a plan into `out` (3 x size x size, CHW, normalised).
pub fn render(src: &Source, plan: &Plan, cfg: &PipelineConfig, out: &mut [f32]) {
    let input_to_working = src.original_to_working().mul(
        &plan
            .src_to_input
            .inverse()
            .expect("geometric plans are invertible"),
    );
    // One padding rule for the pad-resize and the augmentation (fastai uses reflection for both).
    let s = cfg.input_size;
    warp::warp_rgb_chw(src.image, &input_to_working, s, s, cfg.augment.pad, out);
    ColourLut::new(&plan.draw, cfg.normalize.mean, cfg.normalize.std).apply_chw(out);
    plan.draw.pixels.apply_chw(out, s);
}

/// One prepared sample: the image is written by the caller-provided buffer.
pub struct Prepared {
    /// Points in input pixels (mirrored and re-identified when flipped).
    pub points: Keypoints,
    pub plan: Plan,
}

/// Plans, renders and maps points for one sample (`face_box` as in [`item_region`]).
/// `flip_perm` (the mirror permutation of these points) enables flips; `out` receives the
/// normalised CHW input.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    src: &Source,
    points: &Keypoints,
    face_box: BBox,
    cfg: &PipelineConfig,
    train: bool,
    flip_perm: Option<&[usize]>,
    rng: &mut impl Rng,
    out: &mut [f32],
) -> Prepared {
    let plan = plan(src.original, face_box, cfg, train, flip_perm.is_some(), rng);
    render(src, &plan, cfg, out);
    let mut pts = transform_points(points, &plan.src_to_input, cfg.input_size);
    if plan.flipped {
        // The matrix already mirrored the coordinates; only the identities change.
        pts = flip::permute(
            &pts,
            flip_perm.expect("flips only happen with a permutation"),
        );
    }
    Prepared { points: pts, plan }
}

/// Validation-style preparation for prediction: a centred item, or the square around `bbox` (in
/// image pixels; enlarged by `box_scale` when the model was
/// trained on `box` crops, as its training crops were), no augmentation. Returns the normalised
/// CHW input (3 x S x S) and the matrix from original pixels to input pixels; map predictions
/// back with its inverse.
pub fn prepare_for_inference(
    img: &RgbImage,
    bbox: Option<BBox>,
    cfg: &PipelineConfig,
) -> (Vec<f32>, Mat3) {
    prepare_rotated_for_inference(img, bbox, 0.0, cfg)
}

/// [`prepare_for_inference`] for a face turned in the image plane: `bbox` is the face's box in
/// its own upright frame (the image turned by `-roll` radians about the box's centre), so the
/// input shows the face upright, as the training crops did; `roll` is the angle of the face's
/// eye line in image pixels (y down, so positive is clockwise on screen). The returned matrix
/// includes the rotation: its inverse maps points straight back to the image.
///
/// With a box, only the part of the image under the input (and a margin) is sampled, so a crop
/// of a large photo costs its own size, not the photo's.
pub fn prepare_rotated_for_inference(
    img: &RgbImage,
    bbox: Option<BBox>,
    roll: f64,
    cfg: &PipelineConfig,
) -> (Vec<f32>, Mat3) {
    let (w, h) = img.dimensions();
    let region = match bbox {
        Some(b) => {
            let scale = if cfg.resize == ResizeMode::Box {
                cfg.box_scale
            } else {
                1.0
            };
            box_square(b, scale)
        }
        // Without a box, a box-trained model sees the image's largest centred square.
        None if cfg.resize == ResizeMode::Box => item_region(
            w,
            h,
            &PipelineConfig {
                resize: ResizeMode::Crop,
                ..cfg.clone()
            },
            BBox::default(),
            [0.5, 0.5],
        ),
        None => item_region(w, h, cfg, BBox::default(), [0.5, 0.5]),
    };
    let [x0, y0, rw, rh] = region;
    let (cx, cy) = (x0 + rw / 2.0, y0 + rh / 2.0);
    let (s, c) = (-roll).sin_cos();
    // Image pixels to the face's upright frame: a turn by -roll about the region's centre.
    let upright = Mat3::translate(cx, cy)
        .mul(&Mat3::affine(c, -s, 0.0, s, c, 0.0))
        .mul(&Mat3::translate(-cx, -cy));
    let m = frame_to_pixels(cfg.input_size)
        .mul(&region_to_frame(x0, y0, rw, rh))
        .mul(&upright);
    // The pixels the input can reach: its corners in the image, plus the antialiasing filter's
    // reach and a bilinear tap; reflection padding needs the image beyond that as well, which a
    // crop would change, so only zero and border padding crop.
    let cut = match (bbox, cfg.augment.pad) {
        (Some(_), PadMode::Zeros | PadMode::Border) => {
            let reach = 2.0 + 2.0 * (rw.max(rh) / cfg.item_size.max(1) as f64).ceil();
            reachable_rect(&m, cfg.input_size, reach, w, h)
        }
        _ => None,
    };
    let cropped;
    let (source, offset) = match cut {
        Some([cx0, cy0, cw, ch]) if (cw, ch) != (w, h) => {
            cropped = image::imageops::crop_imm(img, cx0, cy0, cw, ch).to_image();
            (&cropped, Mat3::translate(cx0 as f64, cy0 as f64))
        }
        _ => (img, Mat3::IDENTITY),
    };
    let (sw, sh) = source.dimensions();
    // The scale is the region's (a turn keeps sizes), so the item gets the same detail.
    let (nw, nh) = working_size(sw, sh, rw, rh, cfg.item_size);
    let small;
    let image = if (nw, nh) != (sw, sh) {
        small = warp::downscale(source, nw, nh);
        &small
    } else {
        source
    };
    let src = Source {
        image,
        original: (sw, sh),
    };
    let plan = Plan {
        src_to_input: m.mul(&offset),
        draw: AugmentDraw::NEUTRAL,
        flipped: false,
    };
    let size = cfg.input_size;
    let mut out = vec![0.0; 3 * size * size];
    render(&src, &plan, cfg, &mut out);
    (out, m)
}

/// The whole-pixel rectangle `[x, y, w, h]` of a `w x h` image that an `size x size` input made
/// with `m` (image to input) samples, grown by `margin` pixels; `None` when the input misses the
/// image or `m` is singular (the caller then samples the whole image, which pads everything).
fn reachable_rect(m: &Mat3, size: usize, margin: f64, w: u32, h: u32) -> Option<[u32; 4]> {
    let inv = m.inverse()?;
    let s = size as f32;
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for corner in [[0.0, 0.0], [s, 0.0], [0.0, s], [s, s]] {
        let p = inv.apply(corner)?;
        for k in 0..2 {
            lo[k] = lo[k].min(p[k] as f64);
            hi[k] = hi[k].max(p[k] as f64);
        }
    }
    let x0 = (lo[0] - margin).floor().clamp(0.0, w as f64) as u32;
    let y0 = (lo[1] - margin).floor().clamp(0.0, h as f64) as u32;
    let x1 = (hi[0] + margin).ceil().clamp(0.0, w as f64) as u32;
    let y1 = (hi[1] + margin).ceil().clamp(0.0, h as f64) as u32;
    (x1 > x0 && y1 > y0).then_some([x0, y0, x1 - x0, y1 - y0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_crop_maps_the_square_onto_the_input() {
        let cfg = PipelineConfig::default();
        let mut rng = rand::rng();
        let p = plan((600, 400), BBox::default(), &cfg, false, false, &mut rng);
        // Centre crop of a 600x400 image: x in [100, 500) -> [0, 256).
        let a = p.src_to_input.apply([100.0, 0.0]).unwrap();
        let b = p.src_to_input.apply([500.0, 400.0]).unwrap();
        assert!((a[0] - 0.0).abs() < 1e-4 && (a[1] - 0.0).abs() < 1e-4);
        assert!((b[0] - 256.0).abs() < 1e-3 && (b[1] - 256.0).abs() < 1e-3);
    }

    #[test]
    fn working_size_only_shrinks() {
        let cfg = PipelineConfig::default();
        let b = BBox::default();
        assert_eq!(item_working_size(300, 200, &cfg, b), (300, 200));
        assert_eq!(item_working_size(1600, 800, &cfg, b), (800, 400));
        let squish = PipelineConfig {
            resize: ResizeMode::Squish,
            ..cfg.clone()
        };
        assert_eq!(item_working_size(1600, 300, &squish, b), (400, 300));
    }

    #[test]
    fn box_crops_centre_the_enlarged_box_and_keep_points_near_borders() {
        let cfg = PipelineConfig {
            resize: ResizeMode::Box,
            box_scale: 1.25,
            input_size: 100,
            ..PipelineConfig::default()
        };
        // A face box 80 wide and 40 high touching the left border of a 600x400 image.
        let face = BBox::from_corners(0.0, 100.0, 80.0, 140.0);
        let p = plan((600, 400), face, &cfg, false, false, &mut rand::rng());
        // Side 100 centred on (40, 120): x in [-10, 90) maps onto [0, 100).
        let a = p.src_to_input.apply([-10.0, 70.0]).unwrap();
        let b = p.src_to_input.apply([90.0, 170.0]).unwrap();
        assert!(a[0].abs() < 1e-3 && a[1].abs() < 1e-3, "{a:?}");
        assert!(
            (b[0] - 100.0).abs() < 1e-3 && (b[1] - 100.0).abs() < 1e-3,
            "{b:?}"
        );
        // A point on the image border stays inside the input (the crop pads beyond it).
        let kp = Keypoints::new(vec![[0.0, 120.0], [80.0, 100.0]]);
        let moved = transform_points(&kp, &p.src_to_input, 100);
        assert!(moved.visible.iter().all(|&v| v), "{moved:?}");
        // Only shrinking pre-downscales: a 1000x1000 source with a 500-pixel box crop of side
        // 625 becomes 400/625 of its size for item_size 400.
        let big = BBox::from_corners(250.0, 250.0, 750.0, 750.0);
        assert_eq!(item_working_size(1000, 1000, &cfg, big), (640, 640));
    }
}
