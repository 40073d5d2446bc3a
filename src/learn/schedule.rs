//! Learning-rate and momentum schedules with fastai's shapes and defaults.
//!
//! Facts taken from fastai 2.x (`fastai/callback/schedule.py`):
//! - `fit_one_cycle(n, lr_max, div=25, div_final=1e5, pct_start=0.25, moms=(0.95, 0.85, 0.95))`:
//!   the learning rate follows `combined_cos(pct_start, lr_max/div, lr_max, lr_max/div_final)` and
//!   the momentum `combined_cos(pct_start, 0.95, 0.85, 0.95)`, where `combined_cos` is a cosine
//!   from start to middle over the first `pct_start` of the steps and a cosine from middle to end
//!   over the rest. The position of step `i` (0-based) of `T` is `i / T`.
//! - `fine_tune(epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5)`:
//!   freeze; `fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99)`; `base_lr /= 2`;
//!   unfreeze; `fit_one_cycle(epochs, slice(base_lr/lr_mult, base_lr), pct_start, div)`.
//! - A learning rate given as `slice(stop)` sets `stop/10` on every parameter group but the last and
//!   `stop` on the last; `slice(start, stop)` spreads the groups geometrically (`even_mults`).
//!
//! A run is a list of [`Phase`]s (one for `fit_one_cycle` and `constant`, two for `fine_tune`);
//! [`Plan::hypers`] gives the hyper-parameters of any (epoch, batch) so that a resumed run needs
//! nothing but its position.

use crate::{Error, Result};

/// Which schedule drives the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// fastai `fit_one_cycle(epochs, lr)`.
    #[serde(alias = "fit-one-cycle")]
    OneCycle,
    /// fastai `fine_tune(epochs, lr)`: `freeze_epochs` frozen epochs first, so the run has
    /// `freeze_epochs + epochs` epochs in all.
    FineTune,
    /// Constant learning rate and momentum (`optim.beta1`).
    Constant,
}

/// `[schedule]` section of a training config.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// `lr_max` of one-cycle, `base_lr` of fine_tune, the rate of constant.
    pub lr: f64,
    /// One-cycle: the warm-up starts at `lr / div` (also the frozen phase of fine_tune).
    pub div: f64,
    /// One-cycle: the decay ends at `lr / div_final`.
    pub div_final: f64,
    /// One-cycle: fraction of the steps spent warming up.
    pub pct_start: f64,
    /// One-cycle momentum (Adam's beta1): start, middle, end.
    pub moms: [f64; 3],
    /// fine_tune: epochs with the encoder frozen.
    pub freeze_epochs: usize,
    /// fine_tune: the first parameter group gets `lr / 2 / lr_mult` after unfreezing.
    pub lr_mult: f64,
    /// fine_tune: `pct_start` of the unfrozen phase.
    pub fine_tune_pct_start: f64,
    /// fine_tune: `div` of the unfrozen phase.
    pub fine_tune_div: f64,
}

impl Default for ScheduleConfig {
    /// Variant 1 of the recipe: `fine_tune(10, 8e-5)` with fastai's defaults.
    fn default() -> Self {
        ScheduleConfig {
            kind: ScheduleKind::FineTune,
            lr: 8e-5,
            div: 25.0,
            div_final: 1e5,
            pct_start: 0.25,
            moms: [0.95, 0.85, 0.95],
            freeze_epochs: 1,
            lr_mult: 100.0,
            fine_tune_pct_start: 0.3,
            fine_tune_div: 5.0,
        }
    }
}

/// fastai's `pct_start` for the frozen phase of `fine_tune` (fixed in fastai, not an argument).
pub const FINE_TUNE_FROZEN_PCT_START: f64 = 0.99;

impl ScheduleConfig {
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(format!(
                    "schedule.{name} must be a positive number, got {v}"
                )))
            }
        };
        positive("lr", self.lr)?;
        positive("div", self.div)?;
        positive("div_final", self.div_final)?;
        positive("lr_mult", self.lr_mult)?;
        positive("fine_tune_div", self.fine_tune_div)?;
        for (name, v) in [
            ("pct_start", self.pct_start),
            ("fine_tune_pct_start", self.fine_tune_pct_start),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(format!(
                    "schedule.{name} must be in [0, 1], got {v}"
                )));
            }
        }
        if self.moms.iter().any(|m| !(0.0..1.0).contains(m)) {
            return Err(Error::config(format!(
                "schedule.moms must be in [0, 1), got {:?}",
                self.moms
            )));
        }
        Ok(())
    }

    /// The phases of a run of `epochs` (the `n` of `fit_one_cycle(n)` / `fine_tune(n)`).
    /// `beta1` is the momentum of the constant schedule.
    pub fn plan(&self, epochs: usize, steps_per_epoch: usize, beta1: f64) -> Result<Plan> {
        self.validate()?;
        if steps_per_epoch == 0 {
            return Err(Error::config(
                "an epoch has no batches: the training split is empty or smaller than the batch size",
            ));
        }
        let cycle = |div: f64, pct_start: f64| Shape::OneCycle {
            div,
            div_final: self.div_final,
            pct_start,
            moms: self.moms,
        };
        let phases = match self.kind {
            ScheduleKind::OneCycle => vec![Phase {
                epochs,
                frozen: false,
                lr: LrSpec::All(self.lr),
                shape: cycle(self.div, self.pct_start),
            }],
            ScheduleKind::Constant => vec![Phase {
                epochs,
                frozen: false,
                lr: LrSpec::All(self.lr),
                shape: Shape::Constant { mom: beta1 },
            }],
            ScheduleKind::FineTune => {
                let base = self.lr / 2.0;
                vec![
                    Phase {
                        epochs: self.freeze_epochs,
                        frozen: true,
                        lr: LrSpec::Slice {
                            start: None,
                            stop: self.lr,
                        },
                        shape: cycle(self.div, FINE_TUNE_FROZEN_PCT_START),
                    },
                    Phase {
                        epochs,
                        frozen: false,
                        lr: LrSpec::Slice {
                            start: Some(base / self.lr_mult),
                            stop: base,
                        },
                        shape: cycle(self.fine_tune_div, self.fine_tune_pct_start),
                    },
                ]
            }
        };
        Ok(Plan {
            phases: phases.into_iter().filter(|p| p.epochs > 0).collect(),
            steps_per_epoch,
        })
    }
}

/// A learning rate for all parameter groups, fastai style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSpec {
    /// The same rate for every group.
    All(f64),
    /// fastai's `slice(start, stop)` / `slice(stop)`.
    Slice { start: Option<f64>, stop: f64 },
}

impl LrSpec {
    /// The rate of each of `n` groups (first group = earliest layers).
    pub fn per_group(&self, n: usize) -> Vec<f64> {
        match *self {
            LrSpec::All(lr) => vec![lr; n],
            LrSpec::Slice { start: None, stop } => {
                let mut v = vec![stop / 10.0; n];
                if let Some(last) = v.last_mut() {
                    *last = stop;
                }
                v
            }
            LrSpec::Slice {
                start: Some(start),
                stop,
            } => even_mults(start, stop, n),
        }
    }
}

/// fastai's `even_mults`: `n` values from `start` to `stop`, evenly spaced on a log scale.
pub fn even_mults(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![stop; n];
    }
    let step = (stop / start).powf(1.0 / (n - 1) as f64);
    (0..n).map(|i| start * step.powi(i as i32)).collect()
}

/// The shape of the rates over a phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    OneCycle {
        div: f64,
        div_final: f64,
        pct_start: f64,
        moms: [f64; 3],
    },
    Constant {
        mom: f64,
    },
}

/// A stretch of epochs with one shape, one freezing state and one learning-rate spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    pub epochs: usize,
    /// Encoder frozen (only parameters trainable when frozen are updated).
    pub frozen: bool,
    pub lr: LrSpec,
    pub shape: Shape,
}

/// Hyper-parameters of one optimiser step.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypers {
    /// Learning rate of each parameter group.
    pub lrs: Vec<f64>,
    /// Adam's beta1 for this step.
    pub mom: f64,
    pub frozen: bool,
}

/// Every phase of a run, with the number of steps per epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub phases: Vec<Phase>,
    pub steps_per_epoch: usize,
}

impl Plan {
    pub fn total_epochs(&self) -> usize {
        self.phases.iter().map(|p| p.epochs).sum()
    }

    /// The phase that contains run epoch `epoch` (0-based) and the epoch's index inside it.
    pub fn phase_of(&self, epoch: usize) -> Option<(&Phase, usize)> {
        let mut first = 0;
        for p in &self.phases {
            if epoch < first + p.epochs {
                return Some((p, epoch - first));
            }
            first += p.epochs;
        }
        None
    }

    /// Hyper-parameters of batch `batch` of epoch `epoch` (both 0-based) for `n_groups` groups.
    pub fn hypers(&self, epoch: usize, batch: usize, n_groups: usize) -> Hypers {
        let (phase, local_epoch) = match self.phase_of(epoch) {
            Some(x) => x,
            // Past the end: hold the last value (only reached by callers that overrun the plan).
            None => {
                let last = self.phases.last().expect("a plan has at least one phase");
                (last, last.epochs.saturating_sub(1))
            }
        };
        let total = (phase.epochs * self.steps_per_epoch) as f64;
        let pos = ((local_epoch * self.steps_per_epoch + batch) as f64 / total).min(1.0);
        let maxes = phase.lr.per_group(n_groups);
        match phase.shape {
            Shape::OneCycle {
                div,
                div_final,
                pct_start,
                moms,
            } => Hypers {
                lrs: maxes
                    .iter()
                    .map(|&lr| combined_cos(pct_start, lr / div, lr, lr / div_final, pos))
                    .collect(),
                mom: combined_cos(pct_start, moms[0], moms[1], moms[2], pos),
                frozen: phase.frozen,
            },
            Shape::Constant { mom } => Hypers {
                lrs: maxes,
                mom,
                frozen: phase.frozen,
            },
        }
    }
}

/// fastai's `sched_cos`: cosine from `start` (pos 0) to `end` (pos 1).
pub fn sched_cos(start: f64, end: f64, pos: f64) -> f64 {
    start + (1.0 + (std::f64::consts::PI * (1.0 - pos)).cos()) * (end - start) / 2.0
}

/// fastai's `combined_cos(pct, start, middle, end)` evaluated at `pos` in [0, 1].
pub fn combined_cos(pct: f64, start: f64, middle: f64, end: f64, pos: f64) -> f64 {
    if pos < pct {
        sched_cos(start, middle, pos / pct)
    } else if pct >= 1.0 {
        middle
    } else {
        sched_cos(middle, end, (pos - pct) / (1.0 - pct))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
    }

    #[test]
    fn one_cycle_has_fastai_shape() {
        let cfg = ScheduleConfig {
            kind: ScheduleKind::OneCycle,
            lr: 5e-3,
            ..Default::default()
        };
        // 10 epochs of 10 steps: warm-up over steps 0..25.
        let plan = cfg.plan(10, 10, 0.9).unwrap();
        assert_eq!(plan.total_epochs() * plan.steps_per_epoch, 100);
        let h0 = plan.hypers(0, 0, 1);
        assert!(close(h0.lrs[0], 5e-3 / 25.0));
        assert!(close(h0.mom, 0.95));
        let peak = plan.hypers(2, 5, 1);
        assert!(close(peak.lrs[0], 5e-3));
        assert!(close(peak.mom, 0.85));
        // Step 12 of the 25 warm-up steps sits at position 12/25 of the first cosine.
        let mid = plan.hypers(1, 2, 1);
        let want = sched_cos(5e-3 / 25.0, 5e-3, 12.0 / 25.0);
        assert!(close(mid.lrs[0], want));
        // The last step is close to lr / 1e5 (position 99/100, not 1).
        let last = plan.hypers(9, 9, 1);
        let want = sched_cos(5e-3, 5e-3 / 1e5, 74.0 / 75.0);
        assert!(close(last.lrs[0], want));
        assert!(last.lrs[0] < 5e-3 / 1000.0);
        assert!(last.mom > 0.949);
        // Monotone up then down.
        let lrs: Vec<f64> = (0..100)
            .map(|s| plan.hypers(s / 10, s % 10, 1).lrs[0])
            .collect();
        assert!(lrs[..25].windows(2).all(|w| w[1] > w[0]));
        assert!(lrs[25..].windows(2).all(|w| w[1] < w[0]));
    }

    #[test]
    fn fine_tune_matches_fastai() {
        let cfg = ScheduleConfig::default(); // fine_tune(10, 8e-5)
        let plan = cfg.plan(10, 4, 0.9).unwrap();
        assert_eq!(plan.total_epochs(), 11);
        // Frozen phase: slice(8e-5) over 3 groups = [8e-6, 8e-6, 8e-5], pct_start 0.99, div 25.
        let h = plan.hypers(0, 0, 3);
        assert!(h.frozen);
        assert!(close(h.lrs[2], 8e-5 / 25.0));
        assert!(close(h.lrs[0], 8e-6 / 25.0));
        let h = plan.hypers(0, 3, 3); // position 3/4 < 0.99: still warming up
        assert!(close(h.lrs[2], sched_cos(8e-5 / 25.0, 8e-5, 0.75 / 0.99)));
        // Unfrozen phase: slice(4e-7, 4e-5) = [4e-7, 4e-6, 4e-5], div 5, pct_start 0.3.
        let h = plan.hypers(1, 0, 3);
        assert!(!h.frozen);
        assert!(close(h.lrs[0], 4e-7 / 5.0));
        assert!(close(h.lrs[1], 4e-6 / 5.0));
        assert!(close(h.lrs[2], 4e-5 / 5.0));
        // Peak at 30% of 40 steps = step 12 of the phase = epoch 1 + 3, batch 0.
        let h = plan.hypers(4, 0, 3);
        assert!(close(h.lrs[2], 4e-5));
        assert!(close(h.mom, 0.85));
    }

    #[test]
    fn slices_follow_fastai() {
        assert_eq!(
            LrSpec::Slice {
                start: None,
                stop: 1.0
            }
            .per_group(3),
            vec![0.1, 0.1, 1.0]
        );
        let v = LrSpec::Slice {
            start: Some(1e-4),
            stop: 1e-2,
        }
        .per_group(3);
        assert!(close(v[0], 1e-4) && close(v[1], 1e-3) && close(v[2], 1e-2));
        assert_eq!(LrSpec::All(0.5).per_group(2), vec![0.5, 0.5]);
    }

    #[test]
    fn constant_is_constant() {
        let cfg = ScheduleConfig {
            kind: ScheduleKind::Constant,
            lr: 1e-3,
            ..Default::default()
        };
        let plan = cfg.plan(3, 5, 0.9).unwrap();
        for s in 0..15 {
            let h = plan.hypers(s / 5, s % 5, 2);
            assert_eq!(h.lrs, vec![1e-3, 1e-3]);
            assert_eq!(h.mom, 0.9);
            assert!(!h.frozen);
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let cfg = ScheduleConfig {
            lr: -1.0,
            ..Default::default()
        };
        assert!(cfg.plan(1, 1, 0.9).is_err());
        assert!(ScheduleConfig::default().plan(1, 0, 0.9).is_err());
        let cfg = ScheduleConfig {
            pct_start: 1.5,
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
    }
}
