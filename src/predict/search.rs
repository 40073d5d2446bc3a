//! Where the faces of a photo are, beyond what one pass of the upright frontal cascade sees:
//! a large photo is searched on a reduced copy (the smallest face to find sets how far it can
//! be reduced), tilted heads on turned copies of it, and a photo turned by a quarter or half
//! turn without an orientation tag on its turned copies; the boxes of all copies are mapped
//! back to the photo and merged by non-maximum suppression. Each face keeps the angle of the
//! copy it was found in: its crop is made turned by that angle, so the landmark model sees the
//! face about upright.

use std::cell::Cell;

use image::{GrayImage, Luma, RgbImage};
use imageproc::geometric_transformations::{warp_into, Border, Interpolation, Projection};
use rayon::prelude::*;

use crate::data::transforms::warp::{self, Mat3};
use crate::detect::{DetectOptions, FaceDetector, WINDOW};
use crate::{BBox, Result};

/// How hard to look for faces.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchOptions {
    pub detect: DetectOptions,
    /// The longest side, in pixels, the detector scans: a larger photo is searched on a copy
    /// reduced to it, so faces smaller than `WINDOW * side / max_side` (100 px in an 8000 px
    /// photo at the default) are only found with a smaller `max_side` (0: no limit).
    pub max_side: u32,
    /// Angles (degrees, clockwise on screen) of the extra turned copies searched for tilted
    /// heads; SeetaFace's cascade finds faces up to about 20 degrees from upright.
    pub tilts: Vec<f32>,
    /// Also search the photo turned by 90, 180 and 270 degrees (photos stored turned without an
    /// orientation tag).
    pub turns: bool,
}

/// Tilted copies are searched at this fraction of the detection scale: a tilted head is most
/// often a close-up (portraits, film stills), and the turned copy of a photo holds about twice
/// its pixels, so the copies cost about half of the upright search together instead of four
/// times it.
pub const TILT_SCALE: f32 = 0.5;

/// Detections overlapping more than this (intersection over union of their squares) are one
/// face; the one with the higher score stays.
pub const NMS_IOU: f32 = 0.3;

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            detect: DetectOptions::default(),
            max_side: 1600,
            tilts: vec![-40.0, 40.0],
            turns: false,
        }
    }
}

/// A face found in a photo.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoundFace {
    /// The detector's box in photo pixels, in the frame of the copy the face was found in:
    /// centred on the face, turned by `roll` about its centre.
    pub bbox: BBox,
    pub score: f32,
    /// The angle of the face in the photo (radians, clockwise on screen): 0 for a face found in
    /// the upright photo.
    pub roll: f32,
}

impl FoundFace {
    /// The box's square, ignoring the roll: what non-maximum suppression compares.
    fn square(&self) -> BBox {
        let [cx, cy] = self.bbox.centre();
        BBox::square(cx, cy, self.bbox.longer_side())
    }
}

/// The faces of `img`, highest score first, at most `max_faces` of them. The copies are
/// searched on the thread pool, each thread with a detector of its own ([`with_detector`]).
pub fn find_faces(img: &RgbImage, opts: &SearchOptions) -> Result<Vec<FoundFace>> {
    let (w, h) = img.dimensions();
    let longer = w.max(h) as f32;
    // The scale at which a face of the smallest wanted size fills the cascade's window; a
    // larger photo is reduced further, to `max_side`.
    let mut k = WINDOW as f32 / opts.detect.min_face as f32;
    if opts.max_side > 0 {
        k = k.min(opts.max_side as f32 / longer);
    }
    let upright = scaled_gray(img, k);
    // Reduced from the upright copy: no second pass over a 64-megapixel photo.
    let small = (!opts.tilts.is_empty()).then(|| {
        let (sw, sh) = scaled_size(w, h, k * TILT_SCALE);
        image::imageops::resize(&upright, sw, sh, image::imageops::FilterType::Triangle)
    });
    let mut copies: Vec<(&GrayImage, f32)> = vec![(&upright, 0.0)];
    if let Some(small) = &small {
        copies.extend(opts.tilts.iter().map(|&deg| (small, deg)));
    }
    if opts.turns {
        copies.extend([90.0, 180.0, 270.0].map(|deg| (&upright, deg)));
    }
    // The cascade runs on one thread; the copies are independent, so they share the cores,
    // and are merged in a fixed order for the suppression.
    let search = |&(gray, deg): &(&GrayImage, f32)| {
        with_detector(&opts.detect, |d| collect(d, gray, w, h, deg))
    };
    let found: Vec<Vec<FoundFace>> = copies.par_iter().map(search).collect::<Result<_>>()?;
    let found = found.concat();
    let mut kept = suppress(found);
    if opts.detect.max_faces > 0 {
        kept.truncate(opts.detect.max_faces);
    }
    Ok(kept)
}

/// The photo in gray at scale `k` (antialiased when reduced). A gray image is a third of the
/// colour one: a 64-megapixel photo is reduced in colour first, never turned gray whole.
fn scaled_gray(img: &RgbImage, k: f32) -> GrayImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = scaled_size(w, h, k);
    if (nw, nh) == (w, h) {
        image::imageops::grayscale(img)
    } else if nw < w {
        image::imageops::grayscale(&warp::downscale(img, nw, nh))
    } else {
        let gray = image::imageops::grayscale(img);
        image::imageops::resize(&gray, nw, nh, image::imageops::FilterType::Triangle)
    }
}

/// The size of a `w x h` photo at scale `k`.
fn scaled_size(w: u32, h: u32, k: f32) -> (u32, u32) {
    (
        ((w as f32 * k).round() as u32).max(1),
        ((h as f32 * k).round() as u32).max(1),
    )
}

thread_local! {
    /// This thread's detector (rustface's is neither `Send` nor shareable), kept from call to
    /// call: a fresh one pays for growing its buffers on its first photos.
    static DETECTOR: Cell<Option<FaceDetector>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's detector for `opts`, made on first use. The detector is taken out
/// while `f` runs, so a nested call on the same thread makes its own instead of sharing it.
fn with_detector<R>(opts: &DetectOptions, f: impl FnOnce(&mut FaceDetector) -> R) -> Result<R> {
    let mut det = match DETECTOR.take().filter(|d| d.options() == opts) {
        Some(d) => d,
        None => FaceDetector::new(opts)?,
    };
    let out = f(&mut det);
    DETECTOR.set(Some(det));
    Ok(out)
}

/// Searches `gray` (the `w x h` photo at some scale) turned by `deg` degrees clockwise: what it
/// finds, in photo pixels.
fn collect(det: &mut FaceDetector, gray: &GrayImage, w: u32, h: u32, deg: f32) -> Vec<FoundFace> {
    let (gw, gh) = gray.dimensions();
    // Photo pixels to the scaled copy's (the centre-aligned resampling of the resizers).
    let to_scaled = warp::resample_matrix(w, h, gw, gh);
    let (turned, to_turned) = turn(gray, deg);
    let Some(back) = to_turned.mul(&to_scaled).inverse() else {
        return Vec::new();
    };
    let scale = w as f32 / gw as f32;
    det.detect_gray(&turned)
        .into_iter()
        .filter_map(|d| {
            let [cx, cy] = back.apply(d.bbox.centre())?;
            let (bw, bh) = (d.bbox.width() * scale, d.bbox.height() * scale);
            Some(FoundFace {
                bbox: BBox::from_xywh([cx - bw / 2.0, cy - bh / 2.0, bw, bh]),
                score: d.score,
                // Upright in a copy turned by `deg` clockwise: turned by `deg` anticlockwise here.
                roll: -deg.to_radians(),
            })
        })
        .collect()
}

/// `gray` turned by `deg` degrees clockwise on a canvas that holds all of it, and the matrix
/// from its pixels to the turned copy's.
fn turn(gray: &GrayImage, deg: f32) -> (GrayImage, Mat3) {
    if deg == 0.0 {
        return (gray.clone(), Mat3::IDENTITY);
    }
    let (w, h) = (gray.width() as f64, gray.height() as f64);
    let (s, c) = (deg as f64).to_radians().sin_cos();
    let nw = (w * c.abs() + h * s.abs()).round().max(1.0);
    let nh = (w * s.abs() + h * c.abs()).round().max(1.0);
    // Centre to centre (pixel i's centre is at i, so a side of n pixels has its middle at
    // (n - 1) / 2); with y down, [c -s; s c] turns clockwise on screen.
    let m = Mat3::translate((nw - 1.0) / 2.0, (nh - 1.0) / 2.0)
        .mul(&Mat3::affine(c, -s, 0.0, s, c, 0.0))
        .mul(&Mat3::translate(-(w - 1.0) / 2.0, -(h - 1.0) / 2.0));
    let mut out = GrayImage::new(nw as u32, nh as u32);
    let flat: Vec<f32> = m.0.iter().flatten().map(|&v| v as f32).collect();
    let proj =
        Projection::from_matrix(flat.try_into().expect("3x3")).expect("a turn is invertible");
    // Mid-gray outside the photo: no strong edge along the canvas's corners.
    warp_into(
        gray,
        proj,
        Interpolation::Bilinear,
        Border::Constant(Luma([128])),
        &mut out,
    );
    (out, m)
}

/// Non-maximum suppression: the highest-scoring detection of each group of overlapping ones.
fn suppress(mut found: Vec<FoundFace>) -> Vec<FoundFace> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<FoundFace> = Vec::new();
    for f in found {
        if kept.iter().all(|k| k.square().iou(&f.square()) <= NMS_IOU) {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, score: f32) -> FoundFace {
        FoundFace {
            bbox: BBox::from_xywh([x, 0.0, 100.0, 100.0]),
            score,
            roll: 0.0,
        }
    }

    #[test]
    fn suppression_keeps_the_best_of_overlapping_boxes() {
        let kept = suppress(vec![face(0.0, 3.0), face(20.0, 5.0), face(300.0, 1.0)]);
        assert_eq!(kept, vec![face(20.0, 5.0), face(300.0, 1.0)]);
    }

    #[test]
    fn a_turned_copy_maps_pixels_back_through_its_matrix() {
        let mut gray = GrayImage::new(60, 30);
        gray.put_pixel(50, 5, Luma([255]));
        for deg in [90.0f32, 40.0, -40.0, 180.0] {
            let (t, m) = turn(&gray, deg);
            let p = m.apply([50.0, 5.0]).unwrap();
            let v = t.get_pixel(p[0].round() as u32, p[1].round() as u32)[0];
            assert!(v > 100, "{deg}: {p:?} reads {v}");
        }
    }
}
