//! Face detection, so that landmark models (which are top-down: they expect one face per crop)
//! work on ordinary photos. The detector is SeetaFace's funnel-structured cascade through the
//! `rustface` crate, on the CPU, with the frontal-face model that crate ships embedded at build
//! time (`build.rs`): nothing is downloaded at run time.
//!
//! A SeetaFace box covers the face from the brows to about the chin; landmark crops are made
//! around the box of the 68 points (jaw line, brows). [`landmark_box`] turns one into the other
//! with factors measured on 300-W HELEN ([`LANDMARK_BOX_SCALE`]), so a detected face is cropped
//! as the training crops of a `resize = "box"` model were.

use image::{GrayImage, RgbImage};

use crate::{BBox, Error, Result};

/// The detector model from the rustface package (1.2 MB).
static SEETA_MODEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seeta_fd_frontal_v1.0.bin"));

/// The smallest `--min-face` accepted, in pixels (SeetaFace's own lower limit).
pub const MIN_FACE: u32 = 20;

/// The side of the window rustface 0.1.7 slides over the image, in pixels: it scans from full
/// resolution down and ignores its `set_min_face_size` (the line that would use it is commented
/// out upstream), so the smallest face it finds is this many pixels. [`FaceDetector::detect`]
/// scales the image by `WINDOW / min_face` itself to honour the minimum face size.
pub const WINDOW: u32 = 40;

#[derive(Clone, Debug, PartialEq)]
pub struct DetectOptions {
    /// Smallest face side to look for, in pixels (at least [`MIN_FACE`]; below [`WINDOW`] the
    /// image is searched enlarged, which is slower).
    pub min_face: u32,
    /// Keep at most this many faces, the highest scores first (0: all).
    pub max_faces: usize,
    /// Detector score threshold (SeetaFace's typical values: 0.95, 2.8, 4.5).
    pub threshold: f64,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            min_face: WINDOW,
            max_faces: 0,
            threshold: 2.8,
        }
    }
}

impl DetectOptions {
    pub fn validate(&self) -> Result<()> {
        if self.min_face < MIN_FACE {
            return Err(Error::config(format!(
                "--min-face must be at least {MIN_FACE} pixels (the detector's window), got {}",
                self.min_face
            )));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(Error::config(format!(
                "the detection threshold must be positive, got {}",
                self.threshold
            )));
        }
        Ok(())
    }
}

/// One detected face.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Detection {
    /// The detector's box in image pixels (`[x, y, w, h]` in JSON).
    #[serde(serialize_with = "crate::bbox::serialize_xywh")]
    pub bbox: BBox,
    pub score: f32,
}

pub struct FaceDetector {
    inner: Box<dyn rustface::Detector>,
    opts: DetectOptions,
}

impl FaceDetector {
    pub fn new(opts: &DetectOptions) -> Result<FaceDetector> {
        opts.validate()?;
        let model = rustface::read_model(SEETA_MODEL)
            .map_err(|e| Error::Msg(format!("the embedded face detector model: {e}")))?;
        let mut inner = rustface::create_detector_with_model(model);
        // Ignored by rustface 0.1.7 (see [`WINDOW`]); `detect` scales the image instead.
        inner.set_min_face_size(WINDOW);
        inner.set_score_thresh(opts.threshold);
        inner.set_pyramid_scale_factor(0.8);
        inner.set_slide_window_step(4, 4);
        Ok(FaceDetector {
            inner,
            opts: opts.clone(),
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &DetectOptions {
        &self.opts
    }

    /// The faces of `img`, highest score first (at most `max_faces`), searched at the scale that
    /// makes a `min_face` face as large as the cascade's window.
    pub fn detect(&mut self, img: &RgbImage) -> Vec<Detection> {
        let gray = image::imageops::grayscale(img);
        let (w, h) = gray.dimensions();
        let k = WINDOW as f32 / self.opts.min_face as f32;
        let (nw, nh) = (
            ((w as f32 * k).round() as u32).max(1),
            ((h as f32 * k).round() as u32).max(1),
        );
        let mut faces = if (nw, nh) == (w, h) {
            self.detect_gray(&gray)
        } else {
            let scaled =
                image::imageops::resize(&gray, nw, nh, image::imageops::FilterType::Triangle);
            let (sx, sy) = (w as f32 / nw as f32, h as f32 / nh as f32);
            let mut faces = self.detect_gray(&scaled);
            for f in &mut faces {
                let b = f.bbox;
                f.bbox = BBox::from_corners(b.x_min * sx, b.y_min * sy, b.x_max * sx, b.y_max * sy);
            }
            faces
        };
        if self.opts.max_faces > 0 {
            faces.truncate(self.opts.max_faces);
        }
        faces
    }

    /// Every face of a grayscale image at its own scale (faces of at least [`WINDOW`] pixels),
    /// highest score first; `max_faces` is the caller's to apply.
    pub fn detect_gray(&mut self, gray: &GrayImage) -> Vec<Detection> {
        let (w, h) = gray.dimensions();
        // The cascade cannot run on an image smaller than its window (it would panic).
        if w < WINDOW || h < WINDOW {
            return Vec::new();
        }
        let data = rustface::ImageData::new(gray.as_raw(), w, h);
        let mut faces: Vec<Detection> = self
            .inner
            .detect(&data)
            .iter()
            .map(|f| {
                let b = f.bbox();
                Detection {
                    bbox: BBox::from_xywh([
                        b.x() as f32,
                        b.y() as f32,
                        b.width() as f32,
                        b.height() as f32,
                    ]),
                    score: f.score() as f32,
                }
            })
            .collect();
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        faces
    }
}

/// Longer side of the 68 points' bounding box per detector box side, and the offset of its
/// centre from the detector box's centre in detector box sides (x, y). Measured on 250 faces of
/// 300-W HELEN (val and the first 150 of train, 2026-12-01), matching each to the detection
/// nearest its points' centre: side ratio median 0.935 (10-90 %: 0.85-1.03), x offset 0.00
/// (-0.05-0.05), y offset 0.138 (0.06-0.20): the points sit lower than the box (the jaw line
/// reaches below it); 245 of the 250 faces were found at `min_face` 40.
pub const LANDMARK_BOX_SCALE: f32 = 0.935;
pub const LANDMARK_BOX_SHIFT: [f32; 2] = [0.0, 0.138];

/// The landmark-style face box (a square around where the 68 points are expected) for a
/// detector box.
pub fn landmark_box(det: BBox) -> BBox {
    let side = det.longer_side();
    let [cx, cy] = det.centre();
    BBox::square(
        cx + LANDMARK_BOX_SHIFT[0] * side,
        cy + LANDMARK_BOX_SHIFT[1] * side,
        LANDMARK_BOX_SCALE * side,
    )
}
