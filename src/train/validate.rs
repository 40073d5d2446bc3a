//! Validation during training: the evaluation that `hmreg eval` runs (same decoding, same
//! metrics), plus the validation loss; and the mean-shape baseline a run is compared with.

use candle_core::DType;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::setup::Setup;
use crate::data::Loader;
use crate::eval::dataset::eval_batches;
use crate::eval::show::Shown;
use crate::eval::{evaluate, EvalOptions};
use crate::metrics::{Figures, MetricAccumulator, MetricReport};
use crate::models::KeypointNet;
use crate::run::ResolvedRun;
use crate::{Error, Keypoints, Result};

/// Largest number of training items averaged for the mean-shape baseline (the mean converges
/// long before; this bounds the extra pass over a large set).
const BASELINE_MAX_ITEMS: usize = 2000;

/// Validation loss (per-batch losses weighted by batch size) and metrics of `model` over
/// `loader`, decoded with the config's validation decoder.
pub fn validate(
    model: &dyn KeypointNet,
    loader: &Loader,
    cfg: &ResolvedRun,
) -> Result<(f64, MetricReport)> {
    let (loss, report, _) = validate_showing(model, loader, cfg, 0)?;
    Ok((loss, report))
}

/// [`validate`], also keeping the first `faces` validation samples for pictures.
pub fn validate_showing(
    model: &dyn KeypointNet,
    loader: &Loader,
    cfg: &ResolvedRun,
    faces: usize,
) -> Result<(f64, MetricReport, Vec<Shown>)> {
    let mut opts = EvalOptions::for_run(cfg, cfg.codec().clone());
    opts.keep_first = faces;
    let (mut loss_sum, mut n) = (0f64, 0usize);
    let batches = eval_batches(loader, cfg.metrics.vs_target);
    let outcome = evaluate(model, batches, &opts, &mut |batch, output| {
        let (targets, mask) = batch
            .target_maps
            .as_ref()
            .ok_or_else(|| Error::Msg("validation batch without target maps".into()))?;
        let loss = cfg.loss.compute(output, targets, mask)?;
        let bs = output.dim(0)?;
        loss_sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * bs as f64;
        n += bs;
        Ok(())
    })?;
    Ok((loss_sum / n.max(1) as f64, outcome.report, outcome.first))
}

/// The mean-shape baseline: the mean position of every point over (up to 2000) training items
/// in the validation frame (no augmentation), predicted for every validation image.
pub fn mean_shape_baseline(s: &Setup) -> Result<Figures> {
    let cfg = &s.cfg;
    let mut items = s.train_samples.clone();
    if items.len() > BASELINE_MAX_ITEMS {
        items.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xba5e));
        items.truncate(BASELINE_MAX_ITEMS);
    }
    let loader = s.eval_loader(items)?;
    let l = cfg.model.points;
    let mut sum = vec![[0f64; 2]; l];
    let mut cnt = vec![0usize; l];
    for batch in loader.epoch(0) {
        for kp in &batch?.points {
            for (i, (p, &v)) in kp.xy.iter().zip(&kp.visible).enumerate() {
                if v {
                    sum[i][0] += p[0] as f64;
                    sum[i][1] += p[1] as f64;
                    cnt[i] += 1;
                }
            }
        }
    }
    let centre = cfg.pipeline.input_size as f32 / 2.0;
    let mean: Vec<[f32; 2]> = (0..l)
        .map(|i| {
            if cnt[i] == 0 {
                [centre, centre]
            } else {
                [
                    (sum[i][0] / cnt[i] as f64) as f32,
                    (sum[i][1] / cnt[i] as f64) as f32,
                ]
            }
        })
        .collect();
    let size = cfg.pipeline.input_size as f32;
    let mut acc = MetricAccumulator::new(cfg.metrics.accuracy.clone(), l);
    for batch in s.val.epoch(0) {
        let batch = batch?;
        let pred: Vec<Keypoints> = batch
            .points
            .iter()
            .map(|_| Keypoints::new(mean.clone()))
            .collect();
        acc.add(&pred, &batch.points, size, size);
    }
    Ok(acc.finish().figures())
}
