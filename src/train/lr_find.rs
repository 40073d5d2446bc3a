//! `lr_find` on a model: the sweep of [`crate::learn::lr_sweep`] driven by real training steps,
//! and its plot.

use super::progress::Reporter;
use super::setup::Setup;
use super::step::train_step;
use crate::learn::lr_sweep::{sweep, LrFindResult, SmoothLoss};
use crate::learn::optim::N_LR_GROUPS;
use crate::learn::schedule::{Hypers, ScheduleKind};
use crate::tensorboard::EventWriter;
use crate::{Error, Result};

/// Runs the sweep on a freshly built model (`s`): Adam with the config's settings and beta1,
/// the same rate for every group, the encoder frozen when the schedule is `fine_tune` (as a
/// fastai learner is before `fine_tune`). Batches come from consecutive training epochs. With
/// `tb`, every iteration's rate, loss and smoothed loss go to TensorBoard (step = iteration).
pub fn find_lr(
    s: &Setup,
    progress: &Reporter,
    mut tb: Option<&mut EventWriter>,
) -> Result<LrFindResult> {
    let cfg = &s.cfg;
    let mut opt = s.optimiser()?;
    let frozen = cfg.schedule.kind == ScheduleKind::FineTune;
    let mut epoch = 0usize;
    let mut batches = s.train.epoch(epoch);
    progress.start_epoch(cfg.lr_find.iterations(), 0);
    let mut smooth = SmoothLoss::default();
    let result = sweep(&cfg.lr_find, |i, lr| {
        let t0 = std::time::Instant::now();
        let batch = match batches.next() {
            Some(b) => b?,
            None => {
                epoch += 1;
                batches = s.train.epoch(epoch);
                batches
                    .next()
                    .ok_or_else(|| Error::Msg("the training loader yields no batch".into()))??
            }
        };
        let h = Hypers {
            lrs: vec![lr; N_LR_GROUPS],
            mom: cfg.optim.beta1,
            frozen,
        };
        let lv = train_step(
            s.model.as_ref(),
            &cfg.loss,
            &mut opt,
            &batch,
            &h,
            cfg.precision,
        )?;
        let n = batch.images.dim(0)? as f64;
        let smoothed = smooth.add(lv);
        progress.batch(smoothed, n / t0.elapsed().as_secs_f64().max(1e-9));
        if let Some(w) = tb.as_deref_mut() {
            let step = i as i64 + 1;
            w.scalar("lr_find/lr", step, lr)?;
            w.scalar("lr_find/loss", step, lv)?;
            w.scalar("lr_find/smoothed_loss", step, smoothed)?;
        }
        Ok(lv)
    })?;
    if let Some(w) = tb {
        w.flush()?;
    }
    Ok(result)
}

/// The loss-versus-rate plot (log x), fastai style: the last 5 points left out, the suggestions
/// marked.
pub fn save_plot(path: &std::path::Path, r: &LrFindResult) -> Result<()> {
    use crate::viz::plot::{LinePlot, Series};
    let keep = r.lrs.len().saturating_sub(5).max(r.lrs.len().min(1));
    let curve: Vec<(f64, f64)> = r.lrs[..keep]
        .iter()
        .zip(&r.losses[..keep])
        .map(|(&a, &b)| (a, b))
        .collect();
    let mut series = vec![Series::new("smoothed loss", curve)];
    let loss_at = |lr: f64| {
        let i = r
            .lrs
            .iter()
            .enumerate()
            .min_by(|a, b| {
                (a.1.ln() - lr.ln())
                    .abs()
                    .partial_cmp(&(b.1.ln() - lr.ln()).abs())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        r.losses.get(i).copied().unwrap_or(f64::NAN)
    };
    for (name, v) in [
        ("valley", r.suggestions.valley),
        ("steep", r.suggestions.steep),
        ("minimum/10", r.suggestions.minimum),
    ] {
        if let Some(lr) = v {
            series.push(Series::new(
                format!("{name} {lr:.2e}"),
                vec![(lr, loss_at(lr))],
            ));
        }
    }
    LinePlot {
        title: "Learning-rate finder".into(),
        x_label: "learning rate".into(),
        y_label: "smoothed loss".into(),
        log_x: true,
        log_y: false,
        series,
        ..LinePlot::default()
    }
    .save_png(path)
}
