//! Landmarks for arbitrary images: each image is read, its faces are found (the built-in
//! detector), given (boxes) or the whole image is one crop; each face is prepared like
//! validation data (the caller supplies that step, see [`Prepare`]: the crop convention of the
//! model's training), run through the model in batches of faces, and its points are mapped back
//! to the original image's pixels with a confidence each.
//!
//! A file that cannot be read or prepared is reported by name and the other images still run.

mod search;
mod two_pass;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;

use crate::codec::Codec;
use crate::data::sources::image_io::read_rgb_upright;
use crate::data::PipelineConfig;
use crate::detect::{landmark_box, FaceDetector};
use crate::eval::show;
use crate::eval::tta;
use crate::models::KeypointNet;
use crate::{BBox, Error, Keypoints, Result};

pub use search::{find_faces, FoundFace, SearchOptions, NMS_IOU, TILT_SCALE};
pub use two_pass::{crop_from_points, eye_centres, eye_points, Crop};

/// An image prepared for the network.
pub struct PreparedImage {
    /// Normalised CHW input, `3 x size x size`.
    pub input: Vec<f32>,
    /// Maps a point from input pixels back to original-image pixels.
    pub to_original: Box<dyn Fn([f32; 2]) -> [f32; 2] + Send + Sync>,
}

/// Turns an original image (and an optional face crop: a box `[x, y, w, h]` in its pixels,
/// possibly turned with the face) into a network input. Must be the validation preparation of
/// the model's pipeline.
pub type Prepare<'a> = dyn Fn(&RgbImage, Option<Crop>) -> Result<PreparedImage> + Sync + 'a;

/// One predicted point in original-image pixels.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PointPrediction {
    pub x: f32,
    pub y: f32,
    pub confidence: f32,
}

/// The landmarks of one face.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FacePrediction {
    /// The face's box (`[x, y, w, h]` in JSON): the detector's, or the one given; `None` for a
    /// whole image taken as one crop.
    #[serde(
        rename = "box",
        serialize_with = "crate::bbox::serialize_optional_xywh"
    )]
    pub bbox: Option<BBox>,
    /// The detector's score (`None` when the box was given or there was none).
    pub score: Option<f32>,
    /// The face's in-plane angle in degrees, clockwise on screen: from its points' eye line
    /// after two passes, else the angle of the turned copy of the photo it was found in (`None`
    /// for a given box or whole image in one pass). A box found in a turned copy is centred on
    /// the face and turned by this angle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roll: Option<f32>,
    pub points: Vec<PointPrediction>,
}

impl FacePrediction {
    pub fn keypoints(&self) -> Keypoints {
        Keypoints::new(self.points.iter().map(|p| [p.x, p.y]).collect())
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ImagePrediction {
    pub path: PathBuf,
    /// The size of the upright image (after `orientation`), the frame of every point and box.
    pub width: u32,
    pub height: u32,
    /// The EXIF orientation tag applied before prediction: 1 (none) to 8, e.g. 6 for a phone
    /// portrait stored turned 90 degrees anticlockwise.
    pub orientation: u8,
    /// Every face found (or given), the detector's highest score first.
    pub faces: Vec<FacePrediction>,
    /// The annotated picture written for this image, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotated: Option<PathBuf>,
}

/// An image that could not be processed, with the reason (which names the file).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Failure {
    pub path: PathBuf,
    pub error: String,
}

/// Where the faces of an image are.
#[derive(Clone, Debug, PartialEq)]
pub enum FaceSource {
    /// The whole image is one crop (already-cropped faces, keypoints that are not faces).
    WholeImage,
    /// These face boxes, in every image.
    Boxes(Vec<BBox>),
    /// Faces found by the built-in detector ([`crate::detect`]), on reduced and turned copies
    /// of the photo ([`SearchOptions`]).
    Detect(SearchOptions),
}

pub struct PredictOptions {
    /// The run's codec: input size, map size and decoder.
    pub codec: Codec,
    pub flip: Option<Vec<usize>>,
    /// Faces per forward pass.
    pub batch_size: usize,
    pub faces: FaceSource,
    /// Write `<stem>.png` annotated pictures here.
    pub out_dir: Option<PathBuf>,
    /// Number the points in the annotated pictures.
    pub labels: bool,
    /// Predict each face twice, the second time from the crop its first points give
    /// ([`crop_from_points`]): for `resize = "box"` face models (68 or 98 points).
    pub two_pass: bool,
}

/// Where one face is: the box reported to the user (the detector's or the given one), the
/// detector's score, and the face box its crop is made around.
#[derive(Default)]
struct FaceBox {
    shown: Option<BBox>,
    score: Option<f32>,
    crop: Option<Crop>,
}

/// A face waiting for the network: its reported box, score and angle, and its prepared input.
struct FaceJob {
    bbox: Option<BBox>,
    score: Option<f32>,
    roll: Option<f32>,
    prep: PreparedImage,
}

/// An image read and its faces prepared.
struct ImageJob<'a> {
    path: &'a PathBuf,
    /// Upright: the EXIF orientation tag applied.
    image: RgbImage,
    orientation: u8,
    faces: Vec<FaceJob>,
}

/// Predicts every image of `paths`: a batch of images at a time, their faces through the model
/// `batch_size` at a time. Returns the predictions (input order, failed files left out) and the
/// failures; `on_image` is called once per file. Only a detector that cannot start is an error.
pub fn predict_files(
    model: &dyn KeypointNet,
    paths: &[PathBuf],
    prepare: &Prepare,
    opts: &PredictOptions,
    device: &Device,
    on_image: &mut dyn FnMut(),
) -> Result<(Vec<ImagePrediction>, Vec<Failure>)> {
    if let FaceSource::Detect(d) = &opts.faces {
        // A detector that cannot start fails the call, not each image.
        FaceDetector::new(&d.detect)?;
    }
    let mut preds = Vec::new();
    let mut failures = Vec::new();
    let fail = |path: &Path, e: &dyn std::fmt::Display| Failure {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    for chunk in paths.chunks(opts.batch_size.max(1)) {
        // Decoding, detection (a detector per thread) and cropping run on all cores.
        let loaded: Vec<Result<ImageJob>> = chunk
            .par_iter()
            .map(|path| load_and_prepare(path, prepare, &opts.faces))
            .collect();
        let mut ready: Vec<ImageJob> = Vec::new();
        for (path, job) in chunk.iter().zip(loaded) {
            match job {
                Ok(job) => ready.push(job),
                Err(e) => failures.push(fail(path, &e)),
            }
        }
        let jobs: Vec<&PreparedImage> = ready
            .iter()
            .flat_map(|j| j.faces.iter().map(|f| &f.prep))
            .collect();
        let mut result = run_all(model, &jobs, opts, device);
        if opts.two_pass {
            if let Ok(first) = &result {
                result = second_pass(model, &ready, first, prepare, opts, device);
            }
        }
        match result {
            Err(e) => {
                // A model failure hits the whole batch; every file in it is reported.
                for j in &ready {
                    failures.push(fail(j.path, &format!("{}: {e}", j.path.display())));
                }
            }
            Ok(points) => {
                let mut points = points.into_iter();
                for job in ready {
                    let faces = job
                        .faces
                        .iter()
                        .zip(points.by_ref())
                        .map(|(f, (pts, roll))| FacePrediction {
                            bbox: f.bbox,
                            score: f.score,
                            roll: roll.or(f.roll).map(f32::to_degrees),
                            points: pts,
                        })
                        .collect();
                    let mut p = ImagePrediction {
                        path: job.path.clone(),
                        width: job.image.width(),
                        height: job.image.height(),
                        orientation: job.orientation,
                        faces,
                        annotated: None,
                    };
                    if let Some(dir) = &opts.out_dir {
                        match write_annotated(dir, &job.image, &p, opts.labels) {
                            Ok(file) => p.annotated = Some(file),
                            Err(e) => failures.push(fail(job.path, &e)),
                        }
                    }
                    preds.push(p);
                }
            }
        }
        for _ in chunk {
            on_image();
        }
    }
    Ok((preds, failures))
}

/// Reads an image and prepares each of its faces. A box that misses the image entirely fails
/// the image; one partly outside is padded like a training crop.
fn load_and_prepare<'a>(
    path: &'a PathBuf,
    prepare: &Prepare,
    faces: &FaceSource,
) -> Result<ImageJob<'a>> {
    // Phones store portraits sideways with an orientation tag: the detector needs the face
    // upright, and users expect points in the frame their viewer shows.
    let (image, orientation) = read_rgb_upright(path)?;
    let (w, h) = (image.width() as f32, image.height() as f32);
    let boxes: Vec<FaceBox> = match faces {
        FaceSource::WholeImage => vec![FaceBox::default()],
        FaceSource::Boxes(b) => b
            .iter()
            .map(|&b| FaceBox {
                shown: Some(b),
                score: None,
                crop: Some(Crop::upright(b)),
            })
            .collect(),
        FaceSource::Detect(search) => find_faces(&image, search)?
            .into_iter()
            .map(|f| FaceBox {
                shown: Some(f.bbox),
                score: Some(f.score),
                crop: Some(landmark_crop(&f)),
            })
            .collect(),
    };
    let mut jobs = Vec::with_capacity(boxes.len());
    for FaceBox { shown, score, crop } in boxes {
        if let Some(b) = shown {
            if !(b.x_min < w && b.y_min < h && b.x_max > 0.0 && b.y_max > 0.0) {
                let [x, y, bw, bh] = b.xywh();
                return Err(Error::file(
                    path,
                    format!(
                        "box {x},{y},{bw},{bh} lies entirely outside the {}x{} image",
                        image.width(),
                        image.height()
                    ),
                ));
            }
        }
        let prep = prepare(&image, crop).map_err(|e| Error::file(path, e.to_string()))?;
        jobs.push(FaceJob {
            bbox: shown,
            score,
            roll: crop.map(|c| c.roll).filter(|&r| r != 0.0),
            prep,
        });
    }
    Ok(ImageJob {
        path,
        image,
        orientation,
        faces: jobs,
    })
}

/// The crop a detection gives the landmark model: [`landmark_box`]'s convention in the frame of
/// the copy the face was found in (its shift towards the chin turns with the face).
fn landmark_crop(f: &FoundFace) -> Crop {
    let [x, y] = f.bbox.centre();
    let landmarks = landmark_box(f.bbox);
    let [lx, ly] = landmarks.centre();
    let (dx, dy) = (lx - x, ly - y);
    let (s, c) = f.roll.sin_cos();
    Crop {
        bbox: BBox::square(
            x + c * dx - s * dy,
            y + s * dx + c * dy,
            landmarks.longer_side(),
        ),
        roll: f.roll,
    }
}

/// Points (and no angle yet) of every prepared input, `batch_size` at a time.
type Passed = Vec<(Vec<PointPrediction>, Option<f32>)>;

fn run_all(
    model: &dyn KeypointNet,
    jobs: &[&PreparedImage],
    opts: &PredictOptions,
    device: &Device,
) -> Result<Passed> {
    let mut out = Vec::with_capacity(jobs.len());
    for batch in jobs.chunks(opts.batch_size.max(1)) {
        out.extend(
            run_batch(model, batch, opts, device)?
                .into_iter()
                .map(|p| (p, None)),
        );
    }
    Ok(out)
}

/// Every face again from the crop its first points give ([`crop_from_points`]); a face whose
/// layout has no known eyes keeps its first points. The angle comes with the new points.
fn second_pass(
    model: &dyn KeypointNet,
    ready: &[ImageJob],
    first: &Passed,
    prepare: &Prepare,
    opts: &PredictOptions,
    device: &Device,
) -> Result<Passed> {
    let images = ready
        .iter()
        .flat_map(|j| j.faces.iter().map(move |_| &j.image));
    let crops: Vec<Option<(Crop, PreparedImage)>> = images
        .zip(first)
        .collect::<Vec<_>>()
        .par_iter()
        .map(|(img, (pts, _))| {
            let xy: Vec<[f32; 2]> = pts.iter().map(|p| [p.x, p.y]).collect();
            let crop = crop_from_points(&xy)?;
            prepare(img, Some(crop)).ok().map(|prep| (crop, prep))
        })
        .collect();
    let jobs: Vec<&PreparedImage> = crops.iter().flatten().map(|(_, p)| p).collect();
    let mut again = run_all(model, &jobs, opts, device)?.into_iter();
    Ok(first
        .iter()
        .zip(&crops)
        .map(|(f, c)| match c {
            Some((crop, _)) => {
                let (pts, _) = again.next().expect("one result per prepared crop");
                (pts, Some(crop.roll))
            }
            None => f.clone(),
        })
        .collect())
}

fn run_batch(
    model: &dyn KeypointNet,
    faces: &[&PreparedImage],
    opts: &PredictOptions,
    device: &Device,
) -> Result<Vec<Vec<PointPrediction>>> {
    let s = opts.codec.input_size();
    let mut data = Vec::with_capacity(faces.len() * 3 * s * s);
    for f in faces {
        if f.input.len() != 3 * s * s {
            return Err(Error::Msg(format!(
                "prepared input has {} values, not 3x{s}x{s}",
                f.input.len()
            )));
        }
        data.extend_from_slice(&f.input);
    }
    let x = Tensor::from_vec(data, (faces.len(), 3, s, s), device)?;
    let inf = tta::infer(model, &x, &opts.codec, opts.flip.as_deref())?;
    Ok(faces
        .iter()
        .zip(inf.points.iter().zip(&inf.confidence))
        .map(|(f, (kp, conf))| {
            kp.xy
                .iter()
                .zip(conf)
                .map(|(&p, &c)| {
                    let [x, y] = (f.to_original)(p);
                    PointPrediction {
                        x,
                        y,
                        confidence: c,
                    }
                })
                .collect()
        })
        .collect())
}

/// Writes `dir/<stem>.png`: the photo with every face's box and points, markers (and, with
/// `labels`, point numbers) sized by the face so that small and large faces stay readable.
fn write_annotated(
    dir: &Path,
    img: &RgbImage,
    p: &ImagePrediction,
    labels: bool,
) -> Result<PathBuf> {
    let stem = p
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_string());
    let mut pic = img.clone();
    for face in &p.faces {
        let side = match face.bbox {
            Some(b) => b.longer_side(),
            None => img.width().min(img.height()) as f32,
        };
        if let Some(b) = face.bbox {
            let [x, y, w, h] = b.xywh();
            let thick = (side / 150.0).round().max(1.0) as i32;
            for t in 0..thick {
                crate::viz::draw::draw_rect(
                    &mut pic,
                    x.round() as i32 - t,
                    y.round() as i32 - t,
                    (w.round().max(1.0) as u32) + 2 * t as u32,
                    (h.round().max(1.0) as u32) + 2 * t as u32,
                    image::Rgb([255, 200, 0]),
                );
            }
        }
        show::draw_face_points(&mut pic, &face.keypoints(), side, labels);
    }
    let file = dir.join(format!("{stem}.png"));
    crate::viz::save_png(&pic, &file)?;
    Ok(file)
}

/// Parses `x,y,w,h` (image pixels, positive size).
pub fn parse_bbox(s: &str) -> Result<BBox> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let bad = || Error::config("expected four numbers x,y,w,h with w and h > 0");
    if parts.len() != 4 {
        return Err(bad());
    }
    let mut v = [0f32; 4];
    for (o, p) in v.iter_mut().zip(&parts) {
        *o = p.parse::<f32>().map_err(|_| bad())?;
        if !o.is_finite() {
            return Err(bad());
        }
    }
    if v[2] <= 0.0 || v[3] <= 0.0 {
        return Err(bad());
    }
    Ok(BBox::from_xywh(v))
}

/// The validation preparation of `pipeline`
/// ([`crate::data::transforms::geometry::prepare_rotated_for_inference`]): the centred item of
/// the whole image, or the square around the crop's box turned with the face;
/// points map back through the inverse of its original-to-input matrix.
pub fn validation_preparation(
    pipeline: &PipelineConfig,
) -> impl Fn(&RgbImage, Option<Crop>) -> Result<PreparedImage> + '_ {
    move |img, crop| {
        let roll = crop.map_or(0.0, |c| c.roll as f64);
        let (input, m) = crate::data::transforms::geometry::prepare_rotated_for_inference(
            img,
            crop.map(|c| c.bbox),
            roll,
            pipeline,
        );
        let inv = m
            .inverse()
            .ok_or_else(|| Error::Msg("the input transform is not invertible".into()))?;
        Ok(PreparedImage {
            input,
            to_original: Box::new(move |p| inv.apply(p).unwrap_or([f32::NAN; 2])),
        })
    }
}
