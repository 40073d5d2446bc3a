//! The learning-rate sweep of fastai's `lr_find`, as pure arithmetic: the exponentially growing
//! rates, the smoothed loss, the divergence stop and the suggestions read off the curve.
//! [`crate::train::lr_find`] runs it on a model.
//!
//! fastai facts (`fastai/callback/schedule.py`, `fastai/learner.py`, 2.x):
//! - `lr_find(start_lr=1e-7, end_lr=10, num_it=100, stop_div=True)`; iteration `i` (0-based) uses
//!   `start_lr * (end_lr / start_lr) ** (i / num_it)`; at most `num_it` iterations (at least 6).
//! - The recorded loss is the smoothed loss `AvgSmoothLoss(beta=0.98)`: `val = 0.98 val + 0.02 loss`
//!   from `val = 0`, reported debiased as `val / (1 - 0.98^count)`.
//! - Stop when the smoothed loss exceeds 4x the best smoothed loss so far (that point is recorded).
//! - Suggestions look at `lrs[num_it // 10 : -5]` (first 10% and last 5 points dropped, and
//!   everything from the first NaN on): `valley` (the longest decreasing run of the loss, a point
//!   at 1/3 + 1/6 of it; fastai's default), `steep` (steepest descent of loss against log lr) and
//!   `minimum` (rate at the lowest loss, divided by 10).
//! - Here a non-finite loss also stops the sweep (fastai would keep going on NaN).

use crate::{Error, Result};

/// `hmreg lr-find` settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LrFindConfig {
    pub start_lr: f64,
    pub end_lr: f64,
    pub num_it: usize,
    pub stop_div: bool,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        LrFindConfig {
            start_lr: 1e-7,
            end_lr: 10.0,
            num_it: 100,
            stop_div: true,
        }
    }
}

impl LrFindConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.start_lr > 0.0 && self.end_lr > self.start_lr && self.end_lr.is_finite()) {
            return Err(Error::config(format!(
                "lr-find: need 0 < start_lr < end_lr, got {} and {}",
                self.start_lr, self.end_lr
            )));
        }
        Ok(())
    }

    /// fastai raises `num_it` to 6.
    pub fn iterations(&self) -> usize {
        self.num_it.max(6)
    }

    /// The rate of iteration `i`.
    pub fn lr_at(&self, i: usize) -> f64 {
        self.start_lr * (self.end_lr / self.start_lr).powf(i as f64 / self.iterations() as f64)
    }
}

/// fastai's smoothed loss: exponential moving average with beta 0.98, debiased.
#[derive(Clone, Debug)]
pub struct SmoothLoss {
    beta: f64,
    val: f64,
    count: i32,
}

impl Default for SmoothLoss {
    fn default() -> Self {
        SmoothLoss {
            beta: 0.98,
            val: 0.0,
            count: 0,
        }
    }
}

impl SmoothLoss {
    /// Adds a loss and returns the current smoothed value.
    pub fn add(&mut self, loss: f64) -> f64 {
        self.count += 1;
        self.val = loss + self.beta * (self.val - loss);
        self.val / (1.0 - self.beta.powi(self.count))
    }
}

/// Suggested rates; `None` when the curve was too short to say.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Suggestions {
    pub valley: Option<f64>,
    pub steep: Option<f64>,
    /// The rate at the minimum divided by 10.
    pub minimum: Option<f64>,
}

/// A finished sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LrFindResult {
    pub lrs: Vec<f64>,
    /// Smoothed losses (what fastai plots).
    pub losses: Vec<f64>,
    pub raw_losses: Vec<f64>,
    /// Why the sweep ended.
    pub stopped: String,
    pub suggestions: Suggestions,
}

/// Runs the sweep: `step(i, lr)` trains one batch at rate `lr` and returns its loss.
pub fn sweep(
    cfg: &LrFindConfig,
    mut step: impl FnMut(usize, f64) -> Result<f64>,
) -> Result<LrFindResult> {
    cfg.validate()?;
    let n = cfg.iterations();
    let mut smooth = SmoothLoss::default();
    let (mut lrs, mut losses, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let mut best = f64::INFINITY;
    let mut stopped = format!("{n} iterations done");
    for i in 0..n {
        let lr = cfg.lr_at(i);
        let loss = step(i, lr)?;
        let s = smooth.add(loss);
        lrs.push(lr);
        raw.push(loss);
        losses.push(s);
        if !s.is_finite() {
            stopped = format!("loss not finite at lr {lr:.3e}");
            break;
        }
        best = best.min(s);
        if cfg.stop_div && s > 4.0 * best {
            stopped = format!("loss above 4x its minimum at lr {lr:.3e}");
            break;
        }
    }
    let suggestions = suggest(&lrs, &losses, n);
    Ok(LrFindResult {
        lrs,
        losses,
        raw_losses: raw,
        stopped,
        suggestions,
    })
}

/// fastai's suggestions from the recorded curve of a sweep planned for `num_it` iterations.
pub fn suggest(lrs: &[f64], losses: &[f64], num_it: usize) -> Suggestions {
    let lo = num_it / 10;
    let hi = losses.len().saturating_sub(5);
    if hi <= lo {
        return Suggestions::default();
    }
    let mut lrs = &lrs[lo..hi];
    let mut losses = &losses[lo..hi];
    if let Some(k) = losses.iter().position(|l| l.is_nan()) {
        lrs = &lrs[..k];
        losses = &losses[..k];
    }
    if losses.is_empty() {
        return Suggestions::default();
    }
    let argmin = |v: &[f64]| {
        v.iter()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |(bi, bv), (i, &x)| {
                    if x < bv {
                        (i, x)
                    } else {
                        (bi, bv)
                    }
                },
            )
            .0
    };
    let minimum = Some(lrs[argmin(losses)] / 10.0);
    let steep = (losses.len() >= 2).then(|| {
        let grads: Vec<f64> = (1..losses.len())
            .map(|i| (losses[i] - losses[i - 1]) / (lrs[i].ln() - lrs[i - 1].ln()))
            .collect();
        lrs[argmin(&grads)]
    });
    Suggestions {
        valley: Some(lrs[valley_index(losses)]),
        steep,
        minimum,
    }
}

/// fastai's `valley`: the longest strictly decreasing subsequence ending at each point; take the
/// longest one and go a third plus a sixth of the way into it.
fn valley_index(losses: &[f64]) -> usize {
    let n = losses.len();
    let mut lds = vec![1isize; n];
    // Signed as in fastai: a run starting at index 0 gives max_start = -1.
    let (mut max_start, mut max_end) = (0isize, 0usize);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as isize - lds[max_end];
            }
        }
    }
    let sections = (max_end as isize - max_start) as f64 / 3.0;
    let idx = max_start + sections as isize + (sections / 2.0) as isize;
    idx.clamp(0, n as isize - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_exponential_from_start() {
        let cfg = LrFindConfig::default();
        assert_eq!(cfg.lr_at(0), 1e-7);
        assert!((cfg.lr_at(50) / 1e-7 - 1e4).abs() < 1e-6);
        assert!((cfg.lr_at(100) - 10.0).abs() < 1e-9);
        let small = LrFindConfig {
            num_it: 2,
            ..Default::default()
        };
        assert_eq!(small.iterations(), 6);
    }

    #[test]
    fn smooth_loss_is_debiased() {
        let mut s = SmoothLoss::default();
        assert!((s.add(3.0) - 3.0).abs() < 1e-12);
        assert!((s.add(3.0) - 3.0).abs() < 1e-12);
        let v = s.add(6.0);
        // val = 0.02*6 + 0.98*(0.02*3 + 0.98*0.06), debias 1 - 0.98^3.
        let val = 0.02 * 6.0 + 0.98 * (0.02 * 3.0 + 0.98 * 0.06);
        assert!((v - val / (1.0 - 0.98f64.powi(3))).abs() < 1e-12);
    }

    /// A synthetic loss curve: flat, then falling fastest around 1e-3, bottoming at 1e-2 and
    /// exploding after 1.
    fn fake_loss(lr: f64) -> f64 {
        let x = lr.log10();
        if x > 0.0 {
            return 1.0 * 10f64.powf(3.0 * x);
        }
        1.0 - 0.9 / (1.0 + (-(x + 3.0) * 3.0).exp())
    }

    #[test]
    fn sweep_stops_on_divergence_and_suggests_sensible_rates() {
        let cfg = LrFindConfig::default();
        let r = sweep(&cfg, |_, lr| Ok(fake_loss(lr))).unwrap();
        assert!(r.stopped.contains("4x"), "{}", r.stopped);
        assert!(r.lrs.len() < 100);
        let s = &r.suggestions;
        // The smoothed curve lags, so allow a factor of ~3 around the designed points.
        let steep = s.steep.unwrap();
        assert!((1e-4..3e-2).contains(&steep), "steep {steep}");
        let valley = s.valley.unwrap();
        assert!((1e-4..1.0).contains(&valley), "valley {valley}");
        let minimum = s.minimum.unwrap();
        assert!((1e-3..1.0).contains(&minimum), "minimum {minimum}");
    }

    #[test]
    fn valley_matches_hand_example() {
        // Longest decreasing run: indices 1..=7 (length 7), max_start = 7 - 7 = 0,
        // sections = 7/3 = 2.33, idx = 0 + 2 + 1 = 3.
        let losses = [5.0, 6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 1.0, 9.0];
        assert_eq!(valley_index(&losses), 3);
    }

    #[test]
    fn short_or_nan_curves_give_no_suggestion() {
        assert_eq!(suggest(&[1.0; 4], &[1.0; 4], 100), Suggestions::default());
        let r = sweep(&LrFindConfig::default(), |i, _| {
            Ok(if i == 3 { f64::NAN } else { 1.0 })
        })
        .unwrap();
        assert_eq!(r.lrs.len(), 4);
        assert!(r.stopped.contains("not finite"));
    }
}
