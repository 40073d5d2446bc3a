//! Landmarks for arbitrary images: each image is read, prepared like validation data (the caller
//! supplies that step, see [`Prepare`]), run through the model in batches, and its points are
//! mapped back to the original image's pixels with a confidence each.
//!
//! A file that cannot be read or prepared is reported by name and the other images still run.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::show;
use super::tta;
use crate::codec::Decoder;
use crate::data::image_io::read_rgb;
use crate::data::PipelineConfig;
use crate::models::KeypointNet;
use crate::{Error, Keypoints, Result};

/// An image prepared for the network.
pub struct PreparedImage {
    /// Normalised CHW input, `3 x size x size`.
    pub input: Vec<f32>,
    /// Maps a point from input pixels back to original-image pixels.
    pub to_original: Box<dyn Fn([f32; 2]) -> [f32; 2] + Send + Sync>,
}

/// Turns an original image (and an optional face box `[x, y, w, h]` in its pixels) into a
/// network input. Must be the validation preparation of the model's pipeline.
pub type Prepare<'a> = dyn Fn(&RgbImage, Option<[f32; 4]>) -> Result<PreparedImage> + 'a;

/// One predicted point in original-image pixels.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PointPrediction {
    pub x: f32,
    pub y: f32,
    pub confidence: f32,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ImagePrediction {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// The face box used, `[x, y, w, h]`, when one was given.
    pub bbox: Option<[f32; 4]>,
    pub points: Vec<PointPrediction>,
    /// The annotated picture written for this image, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotated: Option<PathBuf>,
}

impl ImagePrediction {
    pub fn keypoints(&self) -> Keypoints {
        Keypoints::new(self.points.iter().map(|p| [p.x, p.y]).collect())
    }
}

/// An image that could not be processed, with the reason (which names the file).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Failure {
    pub path: PathBuf,
    pub error: String,
}

pub struct PredictOptions {
    pub decoder: Decoder,
    pub flip: Option<Vec<usize>>,
    pub input_size: usize,
    pub batch_size: usize,
    pub bbox: Option<[f32; 4]>,
    /// Write `<stem>.png` annotated pictures here.
    pub out_dir: Option<PathBuf>,
}

/// Predicts every image of `paths`, `batch_size` at a time. Returns the predictions (input order,
/// failed files left out) and the failures. `on_image` is called once per file.
pub fn predict_files(
    model: &dyn KeypointNet,
    paths: &[PathBuf],
    prepare: &Prepare,
    opts: &PredictOptions,
    device: &Device,
    on_image: &mut dyn FnMut(),
) -> (Vec<ImagePrediction>, Vec<Failure>) {
    let mut preds = Vec::new();
    let mut failures = Vec::new();
    for chunk in paths.chunks(opts.batch_size.max(1)) {
        let mut ready: Vec<(&PathBuf, RgbImage, PreparedImage)> = Vec::new();
        for path in chunk {
            match load_and_prepare(path, prepare, opts.bbox) {
                Ok((img, prep)) => ready.push((path, img, prep)),
                Err(e) => failures.push(Failure {
                    path: path.clone(),
                    error: e.to_string(),
                }),
            }
        }
        if !ready.is_empty() {
            match run_batch(model, &ready, opts, device) {
                Ok(batch) => {
                    for ((path, img, _), mut p) in ready.iter().zip(batch) {
                        if let Some(dir) = &opts.out_dir {
                            match write_annotated(dir, path, img, &p) {
                                Ok(file) => p.annotated = Some(file),
                                Err(e) => failures.push(Failure {
                                    path: (*path).clone(),
                                    error: e.to_string(),
                                }),
                            }
                        }
                        preds.push(p);
                    }
                }
                // A model failure hits the whole batch; every file in it is reported.
                Err(e) => {
                    for (path, _, _) in &ready {
                        failures.push(Failure {
                            path: (*path).clone(),
                            error: format!("{}: {e}", path.display()),
                        });
                    }
                }
            }
        }
        for _ in chunk {
            on_image();
        }
    }
    (preds, failures)
}

fn load_and_prepare(
    path: &Path,
    prepare: &Prepare,
    bbox: Option<[f32; 4]>,
) -> Result<(RgbImage, PreparedImage)> {
    let img = read_rgb(path)?;
    if let Some([x, y, w, h]) = bbox {
        let inside =
            x < img.width() as f32 && y < img.height() as f32 && x + w > 0.0 && y + h > 0.0;
        if !inside {
            return Err(Error::file(
                path,
                format!(
                    "box {x},{y},{w},{h} lies outside the {}x{} image",
                    img.width(),
                    img.height()
                ),
            ));
        }
    }
    let prep = prepare(&img, bbox).map_err(|e| Error::file(path, e.to_string()))?;
    Ok((img, prep))
}

fn run_batch(
    model: &dyn KeypointNet,
    ready: &[(&PathBuf, RgbImage, PreparedImage)],
    opts: &PredictOptions,
    device: &Device,
) -> Result<Vec<ImagePrediction>> {
    let s = opts.input_size;
    let mut data = Vec::with_capacity(ready.len() * 3 * s * s);
    for (path, _, prep) in ready {
        if prep.input.len() != 3 * s * s {
            return Err(Error::file(
                path,
                format!(
                    "prepared input has {} values, not 3x{s}x{s}",
                    prep.input.len()
                ),
            ));
        }
        data.extend_from_slice(&prep.input);
    }
    let x = Tensor::from_vec(data, (ready.len(), 3, s, s), device)?;
    let inf = tta::infer(model, &x, &opts.decoder, opts.flip.as_deref())?;
    Ok(ready
        .iter()
        .zip(inf.points.iter().zip(&inf.confidence))
        .map(|((path, img, prep), (kp, conf))| ImagePrediction {
            path: (*path).clone(),
            width: img.width(),
            height: img.height(),
            bbox: opts.bbox,
            points: kp
                .xy
                .iter()
                .zip(conf)
                .map(|(&p, &c)| {
                    let [x, y] = (prep.to_original)(p);
                    PointPrediction {
                        x,
                        y,
                        confidence: c,
                    }
                })
                .collect(),
            annotated: None,
        })
        .collect())
}

/// Writes `dir/<stem>.png`: the original image with numbered predicted points (and the box).
fn write_annotated(
    dir: &Path,
    path: &Path,
    img: &RgbImage,
    p: &ImagePrediction,
) -> Result<PathBuf> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_string());
    let mut pic = show::annotate_indexed(img, &p.keypoints());
    if let Some([x, y, w, h]) = p.bbox {
        crate::viz::draw::draw_rect(
            &mut pic,
            x.round() as i32,
            y.round() as i32,
            w.round().max(1.0) as u32,
            h.round().max(1.0) as u32,
            image::Rgb([255, 200, 0]),
        );
    }
    let file = dir.join(format!("{stem}.png"));
    crate::viz::save_png(&pic, &file)?;
    Ok(file)
}

/// Parses `x,y,w,h` (image pixels, positive size).
pub fn parse_bbox(s: &str) -> Result<[f32; 4]> {
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
    Ok(v)
}

/// The validation preparation of `pipeline` ([`crate::data::transform::prepare_for_inference`]):
/// the centred item of the whole image, or the square around the `[x, y, w, h]` box; points map
/// back through the inverse of its original-to-input matrix.
pub fn validation_preparation(
    pipeline: &PipelineConfig,
) -> impl Fn(&RgbImage, Option<[f32; 4]>) -> Result<PreparedImage> + '_ {
    move |img, bbox| {
        let corners = bbox.map(|[x, y, w, h]| [x, y, x + w, y + h]);
        let (input, m) = crate::data::transform::prepare_for_inference(img, corners, pipeline);
        let inv = m
            .inverse()
            .ok_or_else(|| Error::Msg("the input transform is not invertible".into()))?;
        Ok(PreparedImage {
            input,
            to_original: Box::new(move |p| inv.apply(p).unwrap_or([f32::NAN; 2])),
        })
    }
}
