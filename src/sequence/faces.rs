//! The model and the detector on images in memory: what [`crate::predict::predict_files`] does
//! for one file, for frames a tracker already holds. Crops are made by the model's own
//! validation preparation ([`crate::predict::validation_preparation`]), so a given box means
//! what `hmreg predict --bbox` means: for the built-in face68 (`resize = "box"`) the box of the
//! 68 points, enlarged by the model's `box_scale` into the square crop.

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::codec::Codec;
use crate::data::PipelineConfig;
use crate::detect::{landmark_box, DetectOptions, Detection, FaceDetector};
use crate::eval::tta;
use crate::models::KeypointNet;
use crate::predict::{validation_preparation, Crop, PointPrediction};
use crate::{BBox, Error, Result};

/// A loaded model with its crop convention and decoder, plus the face detector.
pub struct FaceModel<'a> {
    pub model: &'a dyn KeypointNet,
    pub pipeline: &'a PipelineConfig,
    pub codec: Codec,
    pub flip: Option<Vec<usize>>,
    pub device: Device,
    detector: FaceDetector,
}

/// One face's points (in the image's pixels) with a confidence each.
#[derive(Clone, Debug)]
pub struct FacePoints {
    pub points: Vec<PointPrediction>,
}

impl FacePoints {
    pub fn xy(&self) -> Vec<[f32; 2]> {
        self.points.iter().map(|p| [p.x, p.y]).collect()
    }

    /// Mean confidence over the points (0 for none).
    pub fn mean_confidence(&self) -> f32 {
        if self.points.is_empty() {
            return 0.0;
        }
        self.points.iter().map(|p| p.confidence).sum::<f32>() / self.points.len() as f32
    }
}

impl<'a> FaceModel<'a> {
    pub fn new(
        model: &'a dyn KeypointNet,
        pipeline: &'a PipelineConfig,
        codec: Codec,
        flip: Option<Vec<usize>>,
        detect: &DetectOptions,
        device: &Device,
    ) -> Result<Self> {
        Ok(FaceModel {
            model,
            pipeline,
            codec,
            flip,
            device: device.clone(),
            detector: FaceDetector::new(detect)?,
        })
    }

    /// The detector's faces in `img`, highest score first.
    pub fn detect(&mut self, img: &RgbImage) -> Vec<Detection> {
        self.detector.detect(img)
    }

    /// The points of the faces in the landmark boxes `boxes` (the crop convention of `hmreg
    /// predict --bbox`), all in one forward pass.
    pub fn points_in_boxes(&self, img: &RgbImage, boxes: &[BBox]) -> Result<Vec<FacePoints>> {
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let prepare = validation_preparation(self.pipeline);
        let s = self.codec.input_size();
        let mut data = Vec::with_capacity(boxes.len() * 3 * s * s);
        let mut back = Vec::with_capacity(boxes.len());
        for &b in boxes {
            let prep = prepare(img, Some(Crop::upright(b)))?;
            if prep.input.len() != 3 * s * s {
                return Err(Error::Msg(format!(
                    "prepared input has {} values, not 3x{s}x{s}",
                    prep.input.len()
                )));
            }
            data.extend_from_slice(&prep.input);
            back.push(prep.to_original);
        }
        let x = Tensor::from_vec(data, (boxes.len(), 3, s, s), &self.device)?;
        let inf = tta::infer(self.model, &x, &self.codec, self.flip.as_deref())?;
        Ok(back
            .iter()
            .zip(inf.points.iter().zip(&inf.confidence))
            .map(|(to_original, (kp, conf))| FacePoints {
                points: kp
                    .xy
                    .iter()
                    .zip(conf)
                    .map(|(&p, &c)| {
                        let [x, y] = to_original(p);
                        PointPrediction {
                            x,
                            y,
                            confidence: c,
                        }
                    })
                    .collect(),
            })
            .collect())
    }

    /// Detects the faces of `img` and predicts each: (detection, points) pairs.
    pub fn detect_and_predict(&mut self, img: &RgbImage) -> Result<Vec<(Detection, FacePoints)>> {
        let dets = self.detect(img);
        let boxes: Vec<BBox> = dets.iter().map(|d| landmark_box(d.bbox)).collect();
        let pts = self.points_in_boxes(img, &boxes)?;
        Ok(dets.into_iter().zip(pts).collect())
    }
}

/// The box around the finite points (`None` when there are none, or they do not span an
/// area): the landmark box a tracker crops the next frame by.
pub fn points_box(points: &[[f32; 2]]) -> Option<BBox> {
    BBox::around(points).filter(BBox::is_proper)
}
