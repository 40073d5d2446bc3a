//! Adam with decoupled weight decay over a [`ParamStore`], written after fastai's `Adam` because
//! candle_nn's `AdamW` hides its moments (no checkpoints), has no parameter groups and no clipping.
//!
//! fastai facts (`fastai/optimizer.py`, `fastai/learner.py`, 2.x), all honoured here:
//! - `Adam(mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01, decouple_wd=True)`; one step per parameter:
//!   `p *= 1 - lr*wd` (decoupled decay), `m = mom*m + (1-mom)*g`, `v = sqr_mom*v + (1-sqr_mom)*g^2`,
//!   `step += 1`, `p -= lr / (1 - mom^step) * m / (sqrt(v / (1 - sqr_mom^step)) + eps)`. The step
//!   counter is per parameter, and the bias corrections use the *current* (scheduled) momentum.
//! - The optimiser itself decays every parameter, but `Learner(wd_bn_bias=False)` (the default)
//!   turns weight decay off for BatchNorm parameters and every bias. So by default fastai does NOT
//!   decay norms and biases; `wd_bn_bias = true` restores decay on them.
//! - `train_bn=True`: BatchNorm parameters of a frozen group are still trained
//!   ([`Param::is_trainable_when_frozen`]); frozen parameters get no gradient in PyTorch and are
//!   skipped entirely (no decay, no moment update, no step count).
//! - ResNet splitter (`_resnet_split`): three groups, `body[:6]` (stem, layer1, layer2),
//!   `body[6:]` (layer3, layer4) and everything after the body (decoder and head). Discriminative
//!   rates (`slice`) are spread over these groups.
//! - `Learner.freeze_to` (hence `freeze` and `unfreeze`) clears the optimiser state: `fine_tune`
//!   starts its unfrozen phase with fresh moments and step counts ([`Adam::clear_state`]).
//! - Gradient clipping (fastai `GradientClip`, PyTorch `clip_grad_norm_`): if the global L2 norm of
//!   the gradients exceeds `max_norm`, every gradient is scaled by `max_norm / (norm + 1e-6)`.

use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use crate::learn::optim_cpu::{self, AdamScalars};
use crate::learn::precision::LossScaler;
use crate::learn::schedule::Hypers;
use crate::models::{Param, ParamGroup, ParamKind, ParamStore};
use crate::ops::cpu_data::with_f32;
use crate::ops::portable::cpu_kernels;
use crate::{Error, Result};

/// How parameters are divided into learning-rate groups for discriminative rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrGrouping {
    /// fastai's ResNet split: early encoder, late encoder (`layer3`, `layer4`; for encoders not
    /// named like ResNet, the second half of the encoder's tensors), decoder + head.
    Fastai,
    /// One group per [`ParamGroup`]: encoder, decoder, head.
    ParamGroup,
}

/// Number of learning-rate groups (both groupings have three).
pub const N_LR_GROUPS: usize = 3;

/// `[optim]` section of a training config.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Adam's beta1 when no schedule overrides it (the one-cycle schedules set it every step).
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (`p *= 1 - lr * wd`).
    pub weight_decay: f64,
    /// Also decay BatchNorm parameters and biases (fastai's `wd_bn_bias`, default false).
    pub wd_bn_bias: bool,
    /// Clip the global gradient norm to this value; 0 disables clipping.
    pub clip_grad_norm: f64,
    pub lr_groups: LrGrouping,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-5,
            weight_decay: 0.01,
            wd_bn_bias: false,
            clip_grad_norm: 0.0,
            lr_groups: LrGrouping::Fastai,
        }
    }
}

impl OptimConfig {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::config(format!(
                    "optim.{name} must be in [0, 1), got {v}"
                )));
            }
        }
        for (name, v) in [
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
            ("clip_grad_norm", self.clip_grad_norm),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(format!(
                    "optim.{name} must be a non-negative number, got {v}"
                )));
            }
        }
        Ok(())
    }
}

/// Learning-rate group of every parameter of `params` (indices into [`Hypers::lrs`]).
pub fn lr_groups(params: &[Param], grouping: LrGrouping) -> Vec<usize> {
    match grouping {
        LrGrouping::ParamGroup => params
            .iter()
            .map(|p| match p.group {
                ParamGroup::Encoder => 0,
                ParamGroup::Decoder => 1,
                ParamGroup::Head => 2,
            })
            .collect(),
        LrGrouping::Fastai => {
            let is_late_resnet = |name: &str| {
                name.split('.')
                    .any(|part| part == "layer3" || part == "layer4")
            };
            let encoder: Vec<usize> = (0..params.len())
                .filter(|&i| params[i].group == ParamGroup::Encoder)
                .collect();
            let resnet_named = encoder.iter().any(|&i| is_late_resnet(&params[i].name));
            let half = encoder.len() / 2;
            let mut late = vec![false; params.len()];
            for (k, &i) in encoder.iter().enumerate() {
                late[i] = if resnet_named {
                    is_late_resnet(&params[i].name)
                } else {
                    k >= half
                };
            }
            (0..params.len())
                .map(|i| match params[i].group {
                    ParamGroup::Encoder if late[i] => 1,
                    ParamGroup::Encoder => 0,
                    _ => 2,
                })
                .collect()
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    lr_group: usize,
    decay: bool,
    trainable: bool,
    trainable_when_frozen: bool,
    /// First and second moments, created at the first step.
    moments: Option<(Tensor, Tensor)>,
    step: u64,
}

/// What one optimiser step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Global L2 norm of the gradients of the updated parameters, before clipping.
    pub grad_norm: f64,
    /// Number of tensors updated.
    pub updated: usize,
}

/// The non-tensor part of the optimiser state (the moments go to safetensors).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimMeta {
    /// Step count of every parameter that has been stepped at least once.
    pub steps: BTreeMap<String, u64>,
    /// The loss scaler's state, for runs with loss scaling (f16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<LossScaler>,
}

/// The global L2 norm of `grads`. Gradients on another device are reduced there and read back
/// as one number (one synchronisation per step, not one per tensor).
fn global_norm<'a>(grads: impl Iterator<Item = &'a Tensor>) -> Result<f64> {
    let mut sum_sq = 0f64;
    let mut on_device = Vec::new();
    for g in grads {
        if cpu_kernels(&[g]) {
            sum_sq += with_f32("adam", g, |v| Ok(optim_cpu::sum_of_squares(v)))?;
        } else {
            on_device.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?);
        }
    }
    if !on_device.is_empty() {
        sum_sq += Tensor::stack(&on_device, 0)?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sum_sq.sqrt())
}

/// Adam with decoupled weight decay (fastai's defaults), parameter groups, freezing and clipping.
pub struct Adam {
    cfg: OptimConfig,
    slots: Vec<Slot>,
    scaler: Option<LossScaler>,
}

impl Adam {
    pub fn new(store: &ParamStore, cfg: &OptimConfig) -> Result<Self> {
        cfg.validate()?;
        let groups = lr_groups(store.params(), cfg.lr_groups);
        let slots = store
            .params()
            .iter()
            .zip(groups)
            .map(|(p, lr_group)| Slot {
                name: p.name.clone(),
                var: p.var.clone(),
                lr_group,
                decay: cfg.wd_bn_bias || p.kind == ParamKind::Weight,
                trainable: p.is_trainable(),
                trainable_when_frozen: p.is_trainable_when_frozen(),
                moments: None,
                step: 0,
            })
            .collect();
        Ok(Adam {
            cfg: cfg.clone(),
            slots,
            scaler: None,
        })
    }

    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// Turns on dynamic loss scaling (f16 training): [`Adam::loss_scale`] then gives the factor
    /// the loss must be multiplied by before its backward pass, and [`Adam::step`] divides the
    /// gradients by it, or skips the step and lowers it when they overflowed.
    pub fn enable_loss_scaling(&mut self) {
        self.scaler.get_or_insert_with(LossScaler::default);
    }

    /// The factor the loss must be multiplied by before `backward` (1 without loss scaling).
    pub fn loss_scale(&self) -> f64 {
        self.scaler.map_or(1.0, |s| s.scale)
    }

    /// One step with the hyper-parameters `h`. Parameters without a gradient in `grads`, buffers,
    /// and (when `h.frozen`) parameters frozen with the encoder are left untouched. With loss
    /// scaling, gradients that overflowed skip the step (`updated` is 0, `grad_norm` not finite).
    pub fn step(&mut self, grads: &GradStore, h: &Hypers) -> Result<StepStats> {
        let active: Vec<(usize, Tensor)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                if h.frozen {
                    s.trainable_when_frozen
                } else {
                    s.trainable
                }
            })
            .filter_map(|(i, s)| grads.get(s.var.as_tensor()).map(|g| (i, g.clone())))
            .collect();
        let loss_scale = self.loss_scale();
        let grad_norm = global_norm(active.iter().map(|(_, g)| g))? / loss_scale;
        if let Some(scaler) = &mut self.scaler {
            scaler.update(!grad_norm.is_finite());
            if !grad_norm.is_finite() {
                return Ok(StepStats {
                    grad_norm,
                    updated: 0,
                });
            }
        }
        let clip = if self.cfg.clip_grad_norm > 0.0 && grad_norm > self.cfg.clip_grad_norm {
            Some(self.cfg.clip_grad_norm / (grad_norm + 1e-6))
        } else {
            None
        };
        // One factor applied to every gradient: the clip and the loss scale's inverse.
        let grad_factor = match (clip, loss_scale) {
            (None, 1.0) => None,
            (c, s) => Some(c.unwrap_or(1.0) / s),
        };
        let (mom, sqr_mom, eps, wd) = (h.mom, self.cfg.beta2, self.cfg.eps, self.cfg.weight_decay);
        for (i, g) in &active {
            let slot = &mut self.slots[*i];
            let lr = *h.lrs.get(slot.lr_group).ok_or_else(|| {
                Error::Msg(format!(
                    "optimiser: {} learning rates given, parameter `{}` is in group {}",
                    h.lrs.len(),
                    slot.name,
                    slot.lr_group
                ))
            })?;
            slot.step += 1;
            let debias1 = 1.0 - mom.powi(slot.step as i32);
            let debias2 = 1.0 - sqr_mom.powi(slot.step as i32);
            let decay = (slot.decay && wd != 0.0).then_some(1.0 - lr * wd);
            let p = slot.var.as_tensor().detach();
            let (m, v) = match slot.moments.take() {
                Some((m, v)) => (m, v),
                None => (g.zeros_like()?, g.zeros_like()?),
            };
            let (m, v) = if cpu_kernels(&[&p, g, &m, &v]) {
                let k = AdamScalars {
                    decay: decay.map(|d| d as f32),
                    grad_scale: grad_factor.map(|c| c as f32),
                    mom: mom as f32,
                    one_minus_mom: (1.0 - mom) as f32,
                    sqr_mom: sqr_mom as f32,
                    one_minus_sqr_mom: (1.0 - sqr_mom) as f32,
                    inv_debias2: (1.0 / debias2) as f32,
                    eps: eps as f32,
                    step_size: (lr / debias1) as f32,
                };
                // `p` shares the variable's storage: the step updates the variable itself.
                optim_cpu::adam_step(&p, g, &m, &v, &k)?;
                (m, v)
            } else {
                let g = match grad_factor {
                    Some(c) => (g * c)?,
                    None => g.clone(),
                };
                let p = match decay {
                    Some(d) => (p * d)?,
                    None => p,
                };
                let m2 = ((m * mom)? + (&g * (1.0 - mom))?)?;
                let v2 = ((v * sqr_mom)? + (g.sqr()? * (1.0 - sqr_mom))?)?;
                let denom = ((&v2 / debias2)?.sqrt()? + eps)?;
                let update = ((&m2 / &denom)? * (lr / debias1))?;
                slot.var.set(&(p - update)?)?;
                (m2, v2)
            };
            slot.moments = Some((m, v));
        }
        Ok(StepStats {
            grad_norm,
            updated: active.len(),
        })
    }

    /// Forgets moments and step counts (fastai's `Learner.freeze_to` calls `opt.clear_state()`, so
    /// `fine_tune` restarts Adam when it unfreezes).
    pub fn clear_state(&mut self) {
        for s in &mut self.slots {
            s.moments = None;
            s.step = 0;
        }
    }

    /// Moments as named tensors (`m.<param>`, `v.<param>`) and the step counts.
    pub fn export(&self) -> (HashMap<String, Tensor>, OptimMeta) {
        let mut tensors = HashMap::new();
        let mut meta = OptimMeta {
            loss_scaler: self.scaler,
            ..Default::default()
        };
        for s in &self.slots {
            if let Some((m, v)) = &s.moments {
                tensors.insert(format!("m.{}", s.name), m.clone());
                tensors.insert(format!("v.{}", s.name), v.clone());
                meta.steps.insert(s.name.clone(), s.step);
            }
        }
        (tensors, meta)
    }

    /// Restores a state made by [`Adam::export`] for the same model. `source` names the file in
    /// errors. Parameters absent from `meta` start fresh, as they were never stepped.
    pub fn import(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        meta: &OptimMeta,
        source: &std::path::Path,
    ) -> Result<()> {
        let known: std::collections::HashSet<&str> =
            self.slots.iter().map(|s| s.name.as_str()).collect();
        if let Some(name) = meta.steps.keys().find(|n| !known.contains(n.as_str())) {
            return Err(Error::file(
                source,
                format!("optimiser state for unknown parameter `{name}`: a different model?"),
            ));
        }
        let mut restored = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            match meta.steps.get(&s.name) {
                Some(&step) => {
                    let get = |prefix: &str| -> Result<Tensor> {
                        let key = format!("{prefix}.{}", s.name);
                        let t = tensors.get(&key).ok_or_else(|| {
                            Error::file(source, format!("missing optimiser tensor `{key}`"))
                        })?;
                        if t.dims() != s.var.dims() {
                            return Err(Error::file(
                                source,
                                format!(
                                    "optimiser tensor `{key}` has shape {:?}, parameter has {:?}",
                                    t.dims(),
                                    s.var.dims()
                                ),
                            ));
                        }
                        // A copy: the CPU step updates moments in place, and the exporter
                        // (a data-parallel lead, say) keeps stepping its own.
                        Ok(t.to_dtype(DType::F32)?.to_device(s.var.device())?.copy()?)
                    };
                    restored.push((Some((get("m")?, get("v")?)), step));
                }
                None => restored.push((None, 0)),
            }
        }
        for (s, (moments, step)) in self.slots.iter_mut().zip(restored) {
            s.moments = moments;
            s.step = step;
        }
        if self.scaler.is_some() {
            // A run that switches to f16 mid-way starts with the default scale.
            self.scaler = Some(meta.loss_scaler.unwrap_or_default());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> ParamStore {
        let dev = crate::device::test_device();
        let mut s = ParamStore::new(&dev, 0);
        let w = Tensor::from_slice(&[1f32, -2.0], 2, &dev).unwrap();
        s.add(
            "layer1.0.conv1.weight",
            w.clone(),
            ParamGroup::Encoder,
            ParamKind::Weight,
        )
        .unwrap();
        s.add(
            "layer3.0.conv1.weight",
            w.clone(),
            ParamGroup::Encoder,
            ParamKind::Weight,
        )
        .unwrap();
        s.add(
            "bn1.weight",
            w.clone(),
            ParamGroup::Encoder,
            ParamKind::Norm,
        )
        .unwrap();
        s.add(
            "bn1.running_mean",
            w.clone(),
            ParamGroup::Encoder,
            ParamKind::Buffer,
        )
        .unwrap();
        s.add(
            "head.weight",
            w.clone(),
            ParamGroup::Head,
            ParamKind::Weight,
        )
        .unwrap();
        s.add("head.bias", w, ParamGroup::Head, ParamKind::Bias)
            .unwrap();
        s
    }

    fn vals(s: &ParamStore, name: &str) -> Vec<f32> {
        s.get(name).unwrap().var.as_tensor().to_vec1().unwrap()
    }

    /// Loss = sum over trainable tensors of sum(p * c): gradient c everywhere.
    fn grads(s: &ParamStore, c: f32) -> GradStore {
        let mut loss = Tensor::new(0f32, &crate::device::test_device()).unwrap();
        for p in s.params() {
            loss = (loss + (p.var.as_tensor() * c as f64).unwrap().sum_all().unwrap()).unwrap();
        }
        loss.backward().unwrap()
    }

    fn hypers(lr: f64, frozen: bool) -> Hypers {
        Hypers {
            lrs: vec![lr; 3],
            mom: 0.9,
            frozen,
        }
    }

    #[test]
    fn groups_follow_the_resnet_split() {
        let s = store();
        assert_eq!(
            lr_groups(s.params(), LrGrouping::Fastai),
            vec![0, 1, 0, 0, 2, 2]
        );
        assert_eq!(
            lr_groups(s.params(), LrGrouping::ParamGroup),
            vec![0, 0, 0, 0, 2, 2]
        );
    }

    #[test]
    fn adam_step_matches_fastai_formula() {
        let s = store();
        let mut opt = Adam::new(&s, &OptimConfig::default()).unwrap();
        // Two steps with gradient 0.5: compute the expected value by hand in f64.
        let (lr, wd, mom, sqr, eps) = (1e-2, 0.01, 0.9, 0.99, 1e-5);
        let mut p = 1.0f64;
        let mut pb = 1.0f64; // the bias: no weight decay
        let (mut m, mut v) = (0.0f64, 0.0f64);
        for step in 1..=2 {
            opt.step(&grads(&s, 0.5), &hypers(lr, false)).unwrap();
            m = mom * m + (1.0 - mom) * 0.5;
            v = sqr * v + (1.0 - sqr) * 0.25;
            let upd = lr / (1.0 - mom.powi(step)) * m / ((v / (1.0 - sqr.powi(step))).sqrt() + eps);
            p = p * (1.0 - lr * wd) - upd;
            pb -= upd;
        }
        assert!((vals(&s, "head.weight")[0] as f64 - p).abs() < 1e-6);
        assert!((vals(&s, "head.bias")[0] as f64 - pb).abs() < 1e-6);
        assert!((vals(&s, "bn1.weight")[0] as f64 - pb).abs() < 1e-6);
        // Buffers never move.
        assert_eq!(vals(&s, "bn1.running_mean"), vec![1.0, -2.0]);
    }

    #[test]
    fn frozen_step_leaves_encoder_weights_alone() {
        let s = store();
        let mut opt = Adam::new(&s, &OptimConfig::default()).unwrap();
        opt.step(&grads(&s, 1.0), &hypers(1e-2, true)).unwrap();
        assert_eq!(vals(&s, "layer1.0.conv1.weight"), vec![1.0, -2.0]);
        assert_eq!(vals(&s, "layer3.0.conv1.weight"), vec![1.0, -2.0]);
        assert_ne!(vals(&s, "bn1.weight"), vec![1.0, -2.0]);
        assert_ne!(vals(&s, "head.weight"), vec![1.0, -2.0]);
        let (_, meta) = opt.export();
        assert!(!meta.steps.contains_key("layer1.0.conv1.weight"));
        assert_eq!(meta.steps["head.weight"], 1);
    }

    #[test]
    fn clipping_bounds_the_gradient_norm() {
        let s = store();
        let cfg = OptimConfig {
            clip_grad_norm: 1.0,
            ..Default::default()
        };
        let mut opt = Adam::new(&s, &cfg).unwrap();
        let stats = opt.step(&grads(&s, 3.0), &hypers(1e-2, false)).unwrap();
        // 5 trainable tensors of 2 values, gradient 3: norm 3 * sqrt(10).
        assert!((stats.grad_norm - 3.0 * 10f64.sqrt()).abs() < 1e-4);
        assert_eq!(stats.updated, 5);
        let (t, _) = opt.export();
        let m: Vec<f32> = t["m.head.weight"].to_vec1().unwrap();
        let want = 0.1 * 3.0 / (3.0 * 10f64.sqrt() + 1e-6);
        assert!((m[0] as f64 - want).abs() < 1e-6);
    }

    #[test]
    fn export_import_round_trip_continues_identically() {
        let a = store();
        let b = store();
        let mut oa = Adam::new(&a, &OptimConfig::default()).unwrap();
        let mut ob = Adam::new(&b, &OptimConfig::default()).unwrap();
        oa.step(&grads(&a, 0.3), &hypers(1e-2, false)).unwrap();
        ob.step(&grads(&b, 0.3), &hypers(1e-2, false)).unwrap();
        let (t, meta) = oa.export();
        let mut oc = Adam::new(&b, &OptimConfig::default()).unwrap();
        oc.import(&t, &meta, std::path::Path::new("x")).unwrap();
        oa.step(&grads(&a, -0.7), &hypers(1e-2, false)).unwrap();
        oc.step(&grads(&b, -0.7), &hypers(1e-2, false)).unwrap();
        for p in a.params() {
            assert_eq!(vals(&a, &p.name), vals(&b, &p.name), "{}", p.name);
        }
        oc.clear_state();
        assert!(oc.export().0.is_empty() && oc.export().1.steps.is_empty());
        // A state naming a parameter the model lacks is refused.
        let mut bad = meta.clone();
        bad.steps.insert("nope".into(), 1);
        assert!(oc.import(&t, &bad, std::path::Path::new("x")).is_err());
    }
}
