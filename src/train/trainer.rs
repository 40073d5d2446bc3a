//! The training loop: data, model, optimiser and schedule from a [`TrainConfig`], one checkpoint
//! per epoch (and every N steps if asked), validation metrics, metrics files and curves, resume.
//!
//! Reproducibility: weights come from the seeded [`ParamStore`], and the loader derives every
//! sample's randomness from (seed, epoch, index), so a run resumed from a checkpoint takes the
//! same batches with the same augmentations as the uninterrupted run; on the CPU its losses are
//! bit-identical. The schedule is a pure function of (epoch, batch), so nothing else is needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::codec::{decode, Decoder};
use crate::data::dataset::{load_split, Sample};
use crate::data::loader::{Batch, Loader};
use crate::metrics::{MetricAccumulator, MetricReport};
use crate::models::{build, KeypointNet, ParamGroup, ParamStore};
use crate::train::checkpoint::{self, Best, EpochSums, Progress, TrainState};
use crate::train::config::TrainConfig;
use crate::train::curves::{save_curves, CURVES_PNG};
use crate::train::device::DeviceSpec;
use crate::train::history::{self, EpochRecord};
use crate::train::optim::{Adam, N_LR_GROUPS};
use crate::train::progress::{OutputMode, Reporter};
use crate::train::run_dir::{self, checkpoints_dir, SUMMARY_FILE};
use crate::train::schedule::Plan;
use crate::{Error, Keypoints, Result};

/// How `train` runs, beyond the config.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub run_dir: PathBuf,
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    pub output: OutputMode,
    /// Stop (as if killed) after this many epochs of the run have finished.
    pub stop_after_epochs: Option<usize>,
    /// Stop (as if killed) after this many optimiser steps, writing a mid-epoch checkpoint.
    pub stop_after_steps: Option<u64>,
}

/// What a run did (`summary.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub epochs_done: usize,
    pub total_epochs: usize,
    /// All planned epochs done (false when stopped early on request).
    pub finished: bool,
    /// Figures of predicting the training set's mean shape for every validation image.
    pub baseline: BTreeMap<String, f64>,
    pub best: Option<Best>,
    pub last: Option<EpochRecord>,
    pub parameters: usize,
    pub train_items: usize,
    pub val_items: usize,
    pub seconds: f64,
}

/// Largest number of training items averaged for the mean-shape baseline (the mean converges
/// long before; this bounds the extra pass over a large set).
const BASELINE_MAX_ITEMS: usize = 2000;

/// Loads the train and validation splits (generating the synthetic set first if configured),
/// applying `train_limit` (seeded random sample) and `val_limit` (first items).
pub fn prepare_data(cfg: &TrainConfig) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let root = &cfg.data.root;
    if !root.exists() {
        if cfg.data.generate_if_missing {
            crate::data::synth::generate(root, &cfg.data.synth)?;
        } else {
            return Err(Error::file(
                root,
                "dataset root does not exist (set data.generate_if_missing = true to create the \
                 synthetic set there)",
            ));
        }
    }
    let mut train = load_split(root, &cfg.data.train_split, &cfg.data.points)?;
    let mut val = load_split(root, &cfg.data.val_split, &cfg.data.points)?;
    if cfg.data.train_limit > 0 && train.len() > cfg.data.train_limit {
        let mut idx: Vec<usize> = (0..train.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_da7a));
        let mut keep = idx[..cfg.data.train_limit].to_vec();
        keep.sort_unstable();
        train = keep.into_iter().map(|i| train[i].clone()).collect();
    }
    if cfg.data.val_limit > 0 {
        val.truncate(cfg.data.val_limit);
    }
    if train.is_empty() || val.is_empty() {
        return Err(Error::file(
            root,
            format!(
                "need training and validation items: `{}` has {}, `{}` has {}",
                cfg.data.train_split,
                train.len(),
                cfg.data.val_split,
                val.len()
            ),
        ));
    }
    Ok((train, val))
}

/// Everything built from a config: device, data, model and loaders.
pub struct Setup {
    pub cfg: TrainConfig,
    /// Points per landmark file (before the selection).
    pub n_in_file: usize,
    pub device: Device,
    pub store: ParamStore,
    pub model: Box<dyn KeypointNet>,
    pub train_samples: Vec<Sample>,
    pub train: Loader,
    pub val: Loader,
    pub val_items: usize,
}

/// Resolves `cfg` (point count from the data, sizes and strides made consistent), loads the
/// data, builds the model (with pretrained encoder weights if configured) and the loaders.
pub fn setup(mut cfg: TrainConfig, note: &dyn Fn(&str)) -> Result<Setup> {
    cfg.resolve()?;
    let device = DeviceSpec::parse(&cfg.device)?.open()?;
    let (train_samples, val_samples) = prepare_data(&cfg)?;
    cfg.absolutize_paths();
    cfg.model.points = train_samples[0].points.len();
    cfg.validate()?;
    let mut store = ParamStore::new(&device, cfg.seed);
    let model = build(&cfg.model, &mut store)?;
    if !cfg.init.pretrained.as_os_str().is_empty() {
        let opts = crate::models::LoadOptions {
            groups: Some(vec![ParamGroup::Encoder]),
        };
        let report = crate::models::load_pretrained_with(&store, &cfg.init.pretrained, &opts)?;
        if report.loaded.is_empty() {
            return Err(Error::file(
                &cfg.init.pretrained,
                "no tensor of this file matches the model's encoder",
            ));
        }
        note(&format!(
            "pretrained: {} tensors loaded from {}, {} model tensors kept their initial values",
            report.loaded.len(),
            cfg.init.pretrained.display(),
            report.missing.len()
        ));
    }
    let val_items = val_samples.len();
    // Flips need the point count of the files to mirror a selection of points.
    let n_in_file = crate::data::read_landmarks(&train_samples[0].landmarks_path)?.len();
    let train = Loader::with_selection(
        train_samples.clone(),
        n_in_file,
        &cfg.data.points,
        &cfg.pipeline,
        &cfg.target,
        cfg.batch_size,
        true,
        cfg.seed,
        &device,
    )?;
    let val = Loader::with_selection(
        val_samples,
        n_in_file,
        &cfg.data.points,
        &cfg.pipeline,
        &cfg.target,
        cfg.batch_size,
        false,
        cfg.seed,
        &device,
    )?;
    Ok(Setup {
        cfg,
        n_in_file,
        device,
        store,
        model,
        train_samples,
        train,
        val,
        val_items,
    })
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Visibility of every point of a batch from its `(N, L)` mask.
fn mask_rows(mask: &Tensor) -> Result<Vec<Vec<bool>>> {
    let m: Vec<Vec<f32>> = mask.to_dtype(DType::F32)?.to_vec2()?;
    Ok(m.into_iter()
        .map(|r| r.into_iter().map(|v| v > 0.5).collect())
        .collect())
}

/// Validation loss and metrics of `model` over `loader`.
pub fn validate(
    model: &dyn KeypointNet,
    loader: &Loader,
    cfg: &TrainConfig,
) -> Result<(f64, MetricReport)> {
    let points = cfg.model.points;
    let size = cfg.pipeline.input_size as f32;
    let stride = model.stride() as f32;
    let mut acc = MetricAccumulator::new(cfg.metrics.accuracy.clone(), points);
    let (mut loss_sum, mut n) = (0f64, 0usize);
    for batch in loader.epoch(0) {
        let batch: Batch = batch?;
        let out = model.forward_t(&batch.images, false)?;
        let bs = out.dim(0)?;
        let loss = scalar(&cfg.loss.compute(&out, &batch.targets, &batch.mask)?)?;
        loss_sum += loss * bs as f64;
        n += bs;
        let pred = decode(&out, &cfg.metrics.decoder)?.to_keypoints(stride, stride);
        acc.add(&pred, &batch.points, size, size);
        if cfg.metrics.vs_target {
            // Targets decode exactly with argmax (a binary map's single 1, a Gaussian's centre).
            let mut tgt = decode(&batch.targets, &Decoder::Argmax)?.to_keypoints(stride, stride);
            for (t, vis) in tgt.iter_mut().zip(mask_rows(&batch.mask)?) {
                t.visible = vis;
            }
            acc.add_target_decoded(&pred, &tgt, size, size);
        }
    }
    Ok((loss_sum / n.max(1) as f64, acc.finish()))
}

/// Scalar figures of a report by name.
pub fn report_figures(r: &MetricReport) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    m.insert("nmae".to_string(), r.nmae as f64);
    m.insert("nme".to_string(), r.nme as f64);
    m.insert("fr".to_string(), r.fr as f64);
    m.insert("auc".to_string(), r.auc as f64);
    if let Some(v) = r.nmae_vs_target {
        m.insert("nmae_vs_target".to_string(), v as f64);
    }
    m
}

/// The mean-shape baseline: the mean position of every point over (up to 2000) training items
/// in the validation frame (no augmentation), predicted for every validation image.
pub fn mean_shape_baseline(s: &Setup) -> Result<BTreeMap<String, f64>> {
    let cfg = &s.cfg;
    let mut items = s.train_samples.clone();
    if items.len() > BASELINE_MAX_ITEMS {
        items.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xba5e));
        items.truncate(BASELINE_MAX_ITEMS);
    }
    let loader = Loader::with_selection(
        items,
        s.n_in_file,
        &cfg.data.points,
        &cfg.pipeline,
        &cfg.target,
        cfg.batch_size,
        false,
        cfg.seed,
        &s.device,
    )?;
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
    Ok(report_figures(&acc.finish()))
}

/// Runs (or resumes) a training run. A non-finite loss stops it with an error; the checkpoints
/// written before stay as they are.
pub fn train(cfg: TrainConfig, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let run_dir = opts.run_dir.clone();
    let ckpt_root = checkpoints_dir(&run_dir);
    let note = |msg: &str| {
        if opts.output == OutputMode::Bars {
            eprintln!("{msg}");
        }
    };
    if !opts.resume && checkpoint::latest(&ckpt_root)?.is_some() {
        return Err(Error::file(
            &run_dir,
            "run directory already holds checkpoints: pass --resume to continue it, or choose \
             another --out",
        ));
    }
    let s = setup(cfg, &note)?;
    let Setup {
        cfg,
        store,
        model,
        train: train_loader,
        val: val_loader,
        ..
    } = &s;
    if opts.resume {
        let saved = run_dir::read_config(&run_dir)?;
        // Runs saved before paths were made absolute compare equal too.
        let mut a = saved.clone();
        a.absolutize_paths();
        let mut b = cfg.clone();
        a.device = String::new();
        b.device = String::new();
        if a.to_toml()? != b.to_toml()? {
            return Err(Error::file(
                run_dir.join(run_dir::CONFIG_FILE),
                "the config differs from the one this run was started with; resume with the run's \
                 own config.toml",
            ));
        }
    }
    let spe = train_loader.batches_per_epoch();
    let plan: Plan = cfg.schedule.plan(cfg.epochs, spe, cfg.optim.beta1)?;
    let total_epochs = plan.total_epochs();
    let mut opt = Adam::new(store, &cfg.optim)?;

    let mut state = if opts.resume {
        let last = checkpoint::latest(&ckpt_root)?
            .ok_or_else(|| Error::file(&ckpt_root, "no complete checkpoint to resume from"))?;
        let st = checkpoint::load(&last, store, Some(&mut opt))?;
        if st.seed != cfg.seed {
            return Err(Error::file(
                last.join(checkpoint::STATE_FILE),
                format!(
                    "checkpoint seed {} differs from the config's {}",
                    st.seed, cfg.seed
                ),
            ));
        }
        note(&format!(
            "resuming {} at epoch {} batch {}",
            last.display(),
            st.progress.epoch + 1,
            st.progress.batch
        ));
        st
    } else {
        run_dir::write_config(&run_dir, cfg)?;
        let baseline = mean_shape_baseline(&s)?;
        note(&format!(
            "mean-shape baseline on `{}`: NMAE {:.5}",
            cfg.data.val_split,
            baseline.get("nmae").copied().unwrap_or(f64::NAN)
        ));
        let mut st = TrainState {
            seed: cfg.seed,
            ..Default::default()
        };
        st.extra.insert(
            "baseline".into(),
            serde_json::to_value(&baseline).map_err(|e| Error::Msg(e.to_string()))?,
        );
        st
    };
    let baseline: BTreeMap<String, f64> = state
        .extra
        .get("baseline")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut records: Vec<EpochRecord> = state
        .history
        .iter()
        .map(EpochRecord::from_json)
        .collect::<Result<_>>()?;
    let metric = cfg.checkpoint.best_metric.clone();

    let reporter = Reporter::new(opts.output, total_epochs, state.progress.epoch);
    let mut finished = true;
    'epochs: for epoch in state.progress.epoch..total_epochs {
        let skip = if epoch == state.progress.epoch {
            state.progress.batch
        } else {
            0
        };
        if skip == 0 {
            state.epoch_sums = EpochSums::default();
            // fastai's freeze/unfreeze clear Adam's state; doing it before the first batch of the
            // phase (not at the end of the last one) keeps resumed runs identical.
            if epoch > 0 {
                let before = plan.hypers(epoch - 1, 0, N_LR_GROUPS).frozen;
                if before != plan.hypers(epoch, 0, N_LR_GROUPS).frozen {
                    opt.clear_state();
                }
            }
        }
        let epoch_start = Instant::now();
        // Wall time of this epoch spent in earlier sessions (mid-epoch resume).
        let earlier = state.epoch_sums.seconds;
        let mut tick = Instant::now();
        let mut last_lr = f64::NAN;
        let frozen = plan.hypers(epoch, 0, N_LR_GROUPS).frozen;
        reporter.start_epoch(spe, skip);
        let mut smooth = crate::train::lr_find::SmoothLoss::default();
        for (b, batch) in train_loader.epoch(epoch).enumerate().skip(skip) {
            let batch = batch?;
            let h = plan.hypers(epoch, b, N_LR_GROUPS);
            let out = model.forward_t(&batch.images, true)?;
            let loss = cfg.loss.compute(&out, &batch.targets, &batch.mask)?;
            let lv = scalar(&loss)?;
            if !lv.is_finite() {
                reporter.finish();
                let kept = checkpoint::latest(&ckpt_root)?
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none yet".into());
                return Err(Error::Msg(format!(
                    "training loss is {lv} at epoch {} batch {} (learning rate {:.3e}): stopping. \
                     Lower the learning rate or enable optim.clip_grad_norm. Last good \
                     checkpoint: {kept}",
                    epoch + 1,
                    b + 1,
                    h.lrs.last().copied().unwrap_or(f64::NAN)
                )));
            }
            let grads = loss.backward()?;
            opt.step(&grads, &h)?;
            let n_img = batch.images.dim(0)?;
            state.progress = Progress {
                epoch,
                batch: b + 1,
                global_step: state.progress.global_step + 1,
            };
            state.epoch_sums.loss_sum += lv;
            state.epoch_sums.batches += 1;
            state.epoch_sums.images += n_img;
            let dt = tick.elapsed().as_secs_f64();
            tick = Instant::now();
            state.epoch_sums.seconds = earlier + epoch_start.elapsed().as_secs_f64();
            last_lr = h.lrs.last().copied().unwrap_or(f64::NAN);
            reporter.batch(smooth.add(lv), n_img as f64 / dt.max(1e-9));
            let at_end = b + 1 == spe;
            let stop_now = opts.stop_after_steps == Some(state.progress.global_step);
            let every = cfg.checkpoint.every_steps;
            if !at_end
                && (stop_now || (every > 0 && state.progress.global_step % every as u64 == 0))
            {
                save(&ckpt_root, store, &opt, &mut state, &records, cfg)?;
            }
            if stop_now && !at_end {
                finished = false;
                break 'epochs;
            }
        }
        let (valid_loss, report) = validate(model.as_ref(), val_loader, cfg)?;
        let sums = &state.epoch_sums;
        let record = EpochRecord {
            epoch: epoch + 1,
            frozen,
            train_loss: sums.loss_sum / sums.batches.max(1) as f64,
            valid_loss,
            metrics: report_figures(&report),
            lr: last_lr,
            seconds: earlier + epoch_start.elapsed().as_secs_f64(),
            images_per_second: sums.images as f64 / sums.seconds.max(1e-9),
        };
        let value = record.value(&metric).ok_or_else(|| {
            Error::config(format!(
                "checkpoint.best_metric `{metric}` is not a validation figure (choose valid_loss \
                 or one of {:?})",
                record.metrics.keys().collect::<Vec<_>>()
            ))
        })?;
        records.push(record.clone());
        state.progress = Progress {
            epoch: epoch + 1,
            batch: 0,
            global_step: state.progress.global_step,
        };
        state.epoch_sums = EpochSums::default();
        let tag = state.progress.tag();
        let better = match &state.best {
            None => value.is_finite(),
            Some(b) => {
                if cfg.checkpoint.higher_is_better {
                    value > b.value
                } else {
                    value < b.value
                }
            }
        };
        if better {
            state.best = Some(Best {
                tag: tag.clone(),
                epoch: epoch + 1,
                metric: metric.clone(),
                value,
            });
        }
        save(&ckpt_root, store, &opt, &mut state, &records, cfg)?;
        if let Some(b) = &state.best {
            checkpoint::write_best(&ckpt_root, b)?;
        }
        history::write_files(&run_dir, &records)?;
        save_curves(
            &run_dir.join(CURVES_PNG),
            &records,
            &metric,
            baseline.get(&metric).copied(),
        )?;
        reporter.end_epoch(&record, &metric);
        if opts.stop_after_epochs == Some(epoch + 1)
            || opts.stop_after_steps == Some(state.progress.global_step)
        {
            finished = epoch + 1 == total_epochs;
            break;
        }
    }
    reporter.finish();
    let summary = RunSummary {
        run_dir: run_dir.clone(),
        epochs_done: state.progress.epoch,
        total_epochs,
        finished,
        baseline,
        best: state.best.clone(),
        last: records.last().cloned(),
        parameters: store.num_parameters(),
        train_items: s.train_samples.len(),
        val_items: s.val_items,
        seconds: started.elapsed().as_secs_f64(),
    };
    let text = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Msg(e.to_string()))?;
    checkpoint::write_atomic(&run_dir.join(SUMMARY_FILE), &text)?;
    Ok(summary)
}

/// Writes a checkpoint of the current state and prunes old ones (the best is always kept).
fn save(
    root: &Path,
    store: &ParamStore,
    opt: &Adam,
    state: &mut TrainState,
    records: &[EpochRecord],
    cfg: &TrainConfig,
) -> Result<()> {
    state.history = records
        .iter()
        .map(EpochRecord::to_json)
        .collect::<Result<_>>()?;
    checkpoint::write(root, store, Some(opt), state)?;
    let best = state.best.as_ref().map(|b| b.tag.clone());
    let keep: Vec<&str> = best.iter().map(String::as_str).collect();
    checkpoint::prune(root, cfg.checkpoint.keep_last, &keep)
}
