//! Evaluation of a model over prepared batches: metrics, per-sample errors, and the samples kept
//! for pictures (the first few and the worst few).
//!
//! The metric computation is the training validation's, step for step: inference-mode forward,
//! the run's [`Codec`] with the chosen decoder (points in input pixels), a
//! [`MetricAccumulator`] fed with the input frame (`input_size x input_size`), and the write-up's
//! variant against where the target maps peak. The same checkpoint and decoder therefore give
//! the same figures as the metrics logged by training.

use candle_core::Tensor;

use super::show::{self, Shown};
use super::tta::{self, Inference};
use crate::codec::Codec;
use crate::metrics::{MetricAccumulator, MetricConfig, MetricReport};
use crate::models::KeypointNet;
use crate::run::ResolvedRun;
use crate::{Keypoints, Result};

/// One batch as the data pipeline prepares it for validation.
pub struct EvalBatch {
    /// Normalised images `(N, 3, S, S)`.
    pub images: Tensor,
    /// Ground truth in input pixels; only visible points count.
    pub points: Vec<Keypoints>,
    /// Where the target maps peak (input pixels, visibility = target mask: see
    /// [`crate::codec::Encoded`]), for the write-up's NMAE variant. `None` leaves that figure out.
    pub targets: Option<Vec<Keypoints>>,
    /// A name per sample (file stem) for tables and captions.
    pub ids: Vec<String>,
    /// The target maps `(N, L, h, w)` and the visibility mask `(N, L)` the data pipeline encoded,
    /// for a loss on the model output (training's validation loss). `None` for data without them.
    pub target_maps: Option<(Tensor, Tensor)>,
}

#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Decodes the model's maps into input pixels.
    pub codec: Codec,
    /// Flip test-time augmentation with this point permutation.
    pub flip: Option<Vec<usize>>,
    pub metrics: MetricConfig,
    /// Side of the (square) network input in pixels: the frame of the points and of NMAE.
    pub input_size: usize,
    /// ImageNet-style normalisation of the inputs, to turn them back into pictures.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// How many of the first samples, and of the worst samples (highest NME), to keep for
    /// pictures.
    pub keep_first: usize,
    pub keep_worst: usize,
}

impl EvalOptions {
    /// Evaluation as a run's config sets it up (its metrics, input size and normalisation) with
    /// `codec`, no flip test and no pictures.
    pub fn for_run(cfg: &ResolvedRun, codec: Codec) -> EvalOptions {
        EvalOptions {
            codec,
            flip: None,
            metrics: cfg.metrics.accuracy.clone(),
            input_size: cfg.pipeline.input_size,
            mean: cfg.pipeline.normalize.mean,
            std: cfg.pipeline.normalize.std,
            keep_first: 0,
            keep_worst: 0,
        }
    }
}

/// Errors of one sample.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SampleRecord {
    pub id: String,
    /// The sample's NME (fraction); `None` when its normaliser cannot be computed.
    pub nme: Option<f32>,
    /// Predicted points in input pixels.
    pub pred: Vec<[f32; 2]>,
    pub confidence: Vec<f32>,
}

pub struct EvalOutcome {
    pub report: MetricReport,
    /// Mean of prediction minus label over the labelled points, in input pixels (x, y): a
    /// model's constant offset from its labels' convention (zero for an unbiased model; see
    /// `metrics.point_offset`). NaN without labelled points.
    pub mean_error: [f64; 2],
    pub samples: Vec<SampleRecord>,
    pub first: Vec<Shown>,
    /// Worst first.
    pub worst: Vec<Shown>,
}

/// Evaluates `model` over `batches`. `on_batch` sees every finished batch with the model's
/// output for it (progress bars count its samples; training computes its validation loss there).
pub fn evaluate(
    model: &dyn KeypointNet,
    batches: impl IntoIterator<Item = Result<EvalBatch>>,
    opts: &EvalOptions,
    on_batch: &mut dyn FnMut(&EvalBatch, &Tensor) -> Result<()>,
) -> Result<EvalOutcome> {
    let mut acc: Option<MetricAccumulator> = None;
    let size = opts.input_size as f32;
    let mut samples = Vec::new();
    let mut first: Vec<Shown> = Vec::new();
    let mut worst: Vec<Shown> = Vec::new();
    let mut error = MeanError::default();
    for batch in batches {
        let batch = batch?;
        let inf: Inference = tta::infer(model, &batch.images, &opts.codec, opts.flip.as_deref())?;
        let points = batch.points.first().map_or(0, Keypoints::len);
        let acc = acc.get_or_insert_with(|| MetricAccumulator::new(opts.metrics.clone(), points));
        acc.add(&inf.points, &batch.points, size, size);
        if let Some(t) = &batch.targets {
            acc.add_target_decoded(&inf.points, t, size, size);
        }
        let (map_h, map_w) = inf.map_size()?;
        for (i, (pred, gt)) in inf.points.iter().zip(&batch.points).enumerate() {
            error.add(pred, gt);
            let nme = sample_nme(&opts.metrics, pred, gt, size);
            let id = batch
                .ids
                .get(i)
                .cloned()
                .unwrap_or_else(|| samples.len().to_string());
            samples.push(SampleRecord {
                id: id.clone(),
                nme,
                pred: pred.xy.clone(),
                confidence: inf.confidence[i].clone(),
            });
            let wants_first = first.len() < opts.keep_first;
            let wants_worst = opts.keep_worst > 0
                && (worst.len() < opts.keep_worst
                    || nme.unwrap_or(f32::INFINITY) > worst_floor(&worst));
            if !(wants_first || wants_worst) {
                continue;
            }
            let shown = Shown {
                id,
                nme,
                image: show::input_to_rgb(&batch.images, i, &opts.mean, &opts.std)?,
                maps: inf.sample_maps(i)?,
                map_w,
                map_h,
                gt: gt.clone(),
                pred: pred.clone(),
            };
            if wants_worst {
                worst.push(shown.clone());
                // Unknown NME sorts as the worst: such a sample deserves a look.
                worst.sort_by(|a, b| {
                    let key = |s: &Shown| s.nme.unwrap_or(f32::INFINITY);
                    key(b).total_cmp(&key(a))
                });
                worst.truncate(opts.keep_worst);
            }
            if wants_first {
                first.push(shown);
            }
        }
        on_batch(&batch, &inf.output)?;
    }
    let report = match acc {
        Some(acc) => acc.finish(),
        None => MetricAccumulator::new(opts.metrics.clone(), 0).finish(),
    };
    Ok(EvalOutcome {
        report,
        mean_error: error.mean(),
        samples,
        first,
        worst,
    })
}

/// Running sums of prediction minus label over labelled points.
#[derive(Default)]
struct MeanError {
    sum: [f64; 2],
    count: usize,
}

impl MeanError {
    fn add(&mut self, pred: &Keypoints, gt: &Keypoints) {
        for ((p, g), &seen) in pred.xy.iter().zip(&gt.xy).zip(&gt.visible) {
            if seen {
                self.sum[0] += f64::from(p[0] - g[0]);
                self.sum[1] += f64::from(p[1] - g[1]);
                self.count += 1;
            }
        }
    }

    fn mean(&self) -> [f64; 2] {
        let n = self.count as f64;
        // 0 / 0 is NaN: no labelled point, no figure.
        [self.sum[0] / n, self.sum[1] / n]
    }
}

/// The NME of the least bad sample among the kept worst ones.
fn worst_floor(worst: &[Shown]) -> f32 {
    worst
        .iter()
        .map(|s| s.nme.unwrap_or(f32::INFINITY))
        .fold(f32::INFINITY, f32::min)
}

/// The NME of one sample exactly as the accumulator computes it for a whole set.
fn sample_nme(cfg: &MetricConfig, pred: &Keypoints, gt: &Keypoints, size: f32) -> Option<f32> {
    let mut one = MetricAccumulator::new(cfg.clone(), gt.len());
    one.add(
        std::slice::from_ref(pred),
        std::slice::from_ref(gt),
        size,
        size,
    );
    let r = one.finish();
    (r.nme_skipped == 0 && r.nme.is_finite()).then_some(r.nme)
}
