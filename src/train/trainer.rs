//! The training loop: data, model, optimiser and schedule from a [`TrainConfig`], one checkpoint
//! per epoch (and every N steps if asked), validation metrics, metrics files and curves, resume.
//!
//! Reproducibility: weights come from the seeded [`ParamStore`], and the loader derives every
//! sample's randomness from (seed, epoch, index), so a run resumed from a checkpoint takes the
//! same batches with the same augmentations as the uninterrupted run; on the CPU its losses are
//! bit-identical. The schedule is a pure function of (epoch, batch), so nothing else is needed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::curves::{save_curves, CURVES_PNG};
use super::data_parallel::{communicators, DataParallel, Nodes, Worker};
use super::progress::{OutputMode, Reporter};
use super::setup::Setup;
use super::step::train_step;
use super::tb_log::TrainLog;
use super::validate::{mean_shape_baseline, validate_showing};
use crate::data::{Batch, Shards};
use crate::device::DeviceSpec;
use crate::eval::show::Shown;
use crate::learn::lr_sweep::SmoothLoss;
use crate::learn::optim::{Adam, N_LR_GROUPS};
use crate::learn::schedule::{Hypers, Plan};
use crate::metrics::{Figure, Figures};
use crate::run::checkpoint::{self, Best, EpochSums, Progress, TrainState};
use crate::run::dir::{self, checkpoints_dir, SUMMARY_FILE};
use crate::run::history::{self, EpochRecord};
use crate::run::TrainConfig;
use crate::{Error, Result};

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
    /// Data-parallel training: one worker per device (`--devices`); empty or one device: the
    /// config's device alone. The config's `batch_size` is the global batch.
    pub devices: Vec<DeviceSpec>,
    /// Several machines (`--nodes`, `--node-rank`, `--master`): this process is one of them.
    pub nodes: Option<Nodes>,
    /// Tests of the failure path: data-parallel worker `rank` fails at its `n`-th step.
    pub fail_worker: Option<(usize, u64)>,
}

impl RunOptions {
    /// Whether this process writes the run's files and progress (only the first machine does).
    fn writes(&self) -> bool {
        self.nodes.as_ref().is_none_or(|n| n.rank == 0)
    }
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
    pub baseline: Figures,
    pub best: Option<Best>,
    pub last: Option<EpochRecord>,
    pub parameters: usize,
    pub train_items: usize,
    pub val_items: usize,
    pub seconds: f64,
}

/// A run in progress: what was built, the optimiser, the plan and where it stands.
struct Session {
    s: Setup,
    opt: Adam,
    /// The other workers, when training data-parallel.
    dp: Option<DataParallel>,
    plan: Plan,
    state: TrainState,
    run_dir: PathBuf,
}

/// How an epoch ended.
enum EpochEnd {
    /// Validated and checkpointed.
    Done,
    /// Stopped mid-epoch on request (after a mid-epoch checkpoint).
    Interrupted,
}

/// Runs (or resumes) a training run. A non-finite loss stops it with an error; the checkpoints
/// written before stay as they are.
pub fn train(mut cfg: TrainConfig, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    if let Some(first) = opts.devices.first() {
        // Rank 0 trains on the first device: the run's own model, optimiser and loaders.
        cfg.device = *first;
    }
    let mut run = start_or_resume(cfg, opts)?;
    let total_epochs = run.plan.total_epochs();
    let output = if opts.writes() {
        opts.output
    } else {
        OutputMode::Quiet
    };
    let mut tb = if opts.writes() {
        TrainLog::open(&run.run_dir, &run.s.cfg)?
    } else {
        TrainLog::off()
    };
    let reporter = Reporter::new(output, total_epochs, run.state.progress.epoch);
    let mut finished = true;
    for epoch in run.state.progress.epoch..total_epochs {
        if let EpochEnd::Interrupted = run_epoch(&mut run, epoch, opts, &reporter, &mut tb)? {
            finished = false;
            break;
        }
        if opts.stop_after_epochs == Some(epoch + 1)
            || opts.stop_after_steps == Some(run.state.progress.global_step)
        {
            finished = epoch + 1 == total_epochs;
            break;
        }
    }
    reporter.finish();
    finish(&run, finished, started, opts.writes())
}

/// Builds everything from the config and either starts a new run (config written, baseline
/// measured) or restores the latest checkpoint of the run directory.
fn start_or_resume(cfg: TrainConfig, opts: &RunOptions) -> Result<Session> {
    let run_dir = opts.run_dir.clone();
    let ckpt_root = checkpoints_dir(&run_dir);
    let note = |msg: &str| {
        if opts.output == OutputMode::Bars && opts.writes() {
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
    let bars = opts.output == OutputMode::Bars && opts.writes();
    let s = if opts.resume && checkpoint::latest(&ckpt_root)?.is_some() {
        Setup::for_resume(cfg, &note)?
    } else {
        Setup::with_progress(cfg, &note, bars)?
    };
    let cfg = &s.cfg;
    if opts.resume {
        dir::check_same_config(&run_dir, cfg)?;
    }
    // The workers first: a group that cannot form fails before anything is written.
    let mut dp = if opts.devices.len() > 1 || opts.nodes.is_some() {
        let mut devices = vec![s.device.clone()];
        for d in opts.devices.iter().skip(1) {
            devices.push(d.open()?);
        }
        let group = communicators(&devices, opts.nodes.as_ref())?;
        let world = group.world;
        let mut dp = DataParallel::new(&s, devices, group)?;
        if let Some((rank, at)) = opts.fail_worker {
            dp.inject_failure(rank, at);
        }
        note(&format!(
            "data-parallel: {world} workers ({} here), {} images per worker and step",
            opts.devices.len().max(1),
            cfg.batch_size / world
        ));
        Some(dp)
    } else {
        None
    };
    let spe = s.train.batches_per_epoch();
    let plan = cfg.schedule.plan(cfg.epochs, spe, cfg.optim.beta1)?;
    let mut opt = s.optimiser()?;
    let state = if opts.resume {
        let last = checkpoint::latest(&ckpt_root)?
            .ok_or_else(|| Error::file(&ckpt_root, "no complete checkpoint to resume from"))?;
        let st = checkpoint::load(&last, &s.store, Some(&mut opt))?;
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
        if opts.writes() {
            dir::write_config(&run_dir, cfg)?;
        }
        let baseline = mean_shape_baseline(&s)?;
        note(&format!(
            "mean-shape baseline on `{}`: NMAE {:.5}",
            cfg.data.val_split,
            baseline.get(Figure::Nmae).unwrap_or(f64::NAN)
        ));
        TrainState {
            seed: cfg.seed,
            baseline,
            ..Default::default()
        }
    };
    if let Some(dp) = &mut dp {
        // Replicas start from rank 0's state: fresh weights or the checkpoint just loaded.
        dp.copy_lead(&s.store, &opt)?;
    }
    Ok(Session {
        s,
        opt,
        dp,
        plan,
        state,
        run_dir,
    })
}

/// Trains epoch `epoch` (from where the state stands inside it), then validates, records and
/// checkpoints it.
fn run_epoch(
    run: &mut Session,
    epoch: usize,
    opts: &RunOptions,
    reporter: &Reporter,
    tb: &mut TrainLog,
) -> Result<EpochEnd> {
    let skip = run.batches_done(epoch);
    if skip == 0 {
        run.start_epoch(epoch);
    }
    let mut clock = EpochClock::start(run.state.epoch_sums.seconds);
    let frozen = run.plan.hypers(epoch, 0, N_LR_GROUPS).frozen;
    let spe = run.s.train.batches_per_epoch();
    reporter.start_epoch(spe, skip);
    let mut smooth = SmoothLoss::default();
    let mut last_lr = f64::NAN;
    let Session {
        s,
        opt,
        dp,
        plan,
        state,
        run_dir,
    } = run;
    let ckpt_root = checkpoints_dir(run_dir);
    for (b, shards) in s
        .train
        .epoch_shards(epoch, shards_of(s, dp))
        .enumerate()
        .skip(skip)
    {
        let shards = shards?;
        let h = plan.hypers(epoch, b, N_LR_GROUPS);
        let lv = train_batch(s, opt, dp.as_mut(), &shards, &h)?;
        last_lr = h.lrs.last().copied().unwrap_or(f64::NAN);
        if !lv.is_finite() {
            reporter.finish();
            return Err(non_finite_loss(lv, epoch, b, last_lr, &ckpt_root));
        }
        // Images of the global batch (every worker's shard has as many).
        let n_img = shards[0].images.dim(0)? * dp.as_ref().map_or(1, |d| d.world());
        state.progress = Progress {
            epoch,
            batch: b + 1,
            global_step: state.progress.global_step + 1,
        };
        tb.step(state.progress.global_step, lv)?;
        let sums = &mut state.epoch_sums;
        sums.loss_sum += lv;
        sums.batches += 1;
        sums.images += n_img;
        let dt = clock.lap();
        sums.seconds = clock.total();
        reporter.batch(smooth.add(lv), n_img as f64 / dt.max(1e-9));
        let at_end = b + 1 == spe;
        let stop_now = opts.stop_after_steps == Some(state.progress.global_step);
        let every = s.cfg.checkpoint.every_steps;
        let due = stop_now || (every > 0 && state.progress.global_step % every as u64 == 0);
        if opts.writes() && !at_end && due {
            save(&ckpt_root, s, opt, state)?;
        }
        if stop_now && !at_end {
            return Ok(EpochEnd::Interrupted);
        }
    }
    let faces = tb.faces_due(epoch + 1);
    let (record, faces) = validate_epoch(run, epoch, frozen, last_lr, &clock, faces)?;
    run.record_epoch(&record)?;
    if opts.writes() {
        run.write_epoch(&record, &faces, tb)?;
    }
    reporter.end_epoch(&record, run.s.cfg.checkpoint.best_metric)?;
    Ok(EpochEnd::Done)
}

/// Wall time of an epoch, counting the part spent in earlier sessions (mid-epoch resume).
struct EpochClock {
    earlier: f64,
    start: Instant,
    tick: Instant,
}

impl EpochClock {
    fn start(earlier: f64) -> Self {
        let now = Instant::now();
        EpochClock {
            earlier,
            start: now,
            tick: now,
        }
    }

    /// Seconds since the previous lap (the last batch).
    fn lap(&mut self) -> f64 {
        let dt = self.tick.elapsed().as_secs_f64();
        self.tick = Instant::now();
        dt
    }

    fn total(&self) -> f64 {
        self.earlier + self.start.elapsed().as_secs_f64()
    }
}

/// The devices a batch is split over: the data-parallel workers', or the run's one device.
fn shards_of(s: &Setup, dp: &Option<DataParallel>) -> Shards {
    match dp {
        Some(dp) => dp.shards(),
        None => Shards {
            world: 1,
            first: 0,
            devices: vec![s.device.clone()],
        },
    }
}

/// One optimiser step on a global batch (one shard per worker); returns the loss.
fn train_batch(
    s: &Setup,
    opt: &mut Adam,
    dp: Option<&mut DataParallel>,
    shards: &[Batch],
    h: &Hypers,
) -> Result<f64> {
    let cfg = &s.cfg;
    match dp {
        None => train_step(
            s.model.as_ref(),
            &cfg.loss,
            opt,
            &shards[0],
            h,
            cfg.precision,
        ),
        Some(dp) => {
            let lead = Worker {
                model: s.model.as_ref(),
                store: &s.store,
                opt,
            };
            dp.step(lead, shards, &cfg.loss, h, cfg.precision)
        }
    }
}

/// The error that stops a run whose loss is not finite, naming the last good checkpoint.
fn non_finite_loss(lv: f64, epoch: usize, batch: usize, lr: f64, ckpt_root: &Path) -> Error {
    let kept = match checkpoint::latest(ckpt_root) {
        Ok(Some(p)) => p.display().to_string(),
        Ok(None) => "none yet".into(),
        Err(e) => format!("unknown ({e})"),
    };
    Error::Msg(format!(
        "training loss is {lv} at epoch {} batch {} (learning rate {lr:.3e}): stopping. Lower \
         the learning rate or enable optim.clip_grad_norm. Last good checkpoint: {kept}",
        epoch + 1,
        batch + 1,
    ))
}

/// Validates the model after epoch `epoch`'s batches and makes the epoch's record, with the
/// first `faces` validation faces kept for TensorBoard.
fn validate_epoch(
    run: &Session,
    epoch: usize,
    frozen: bool,
    lr: f64,
    clock: &EpochClock,
    faces: usize,
) -> Result<(EpochRecord, Vec<Shown>)> {
    let s = &run.s;
    let (valid_loss, report, shown) = validate_showing(s.model.as_ref(), &s.val, &s.cfg, faces)?;
    let sums = &run.state.epoch_sums;
    let record = EpochRecord {
        epoch: epoch + 1,
        frozen,
        train_loss: sums.loss_sum / sums.batches.max(1) as f64,
        valid_loss,
        metrics: report.figures(),
        lr,
        seconds: clock.total(),
        images_per_second: sums.images as f64 / sums.seconds.max(1e-9),
    };
    Ok((record, shown))
}

impl Session {
    /// Batches of epoch `epoch` already trained (by an earlier session, for a mid-epoch resume).
    fn batches_done(&self, epoch: usize) -> usize {
        if epoch == self.state.progress.epoch {
            self.state.progress.batch
        } else {
            0
        }
    }

    /// Clears the epoch's sums before its first batch.
    fn start_epoch(&mut self, epoch: usize) {
        self.state.epoch_sums = EpochSums::default();
        // fastai's freeze/unfreeze clear Adam's state; doing it before the first batch of the
        // phase (not at the end of the last one) keeps resumed runs identical.
        if epoch > 0 {
            let before = self.plan.hypers(epoch - 1, 0, N_LR_GROUPS).frozen;
            if before != self.plan.hypers(epoch, 0, N_LR_GROUPS).frozen {
                self.opt.clear_state();
            }
        }
    }

    /// Adds a validated epoch to the state: history, position (the next epoch's start) and the
    /// best checkpoint so far.
    fn record_epoch(&mut self, record: &EpochRecord) -> Result<()> {
        let metric = self.s.cfg.checkpoint.best_metric;
        // The config's validation guarantees the figure is measured.
        let value = record.value(metric).ok_or_else(|| {
            Error::Msg(format!(
                "validation did not measure checkpoint.best_metric `{metric}`"
            ))
        })?;
        let state = &mut self.state;
        state.history.push(record.clone());
        state.progress = Progress {
            epoch: record.epoch,
            batch: 0,
            global_step: state.progress.global_step,
        };
        state.epoch_sums = EpochSums::default();
        if self.s.cfg.checkpoint.improves(value, state.best.as_ref()) {
            state.best = Some(Best {
                tag: state.progress.tag(),
                epoch: record.epoch,
                metric,
                value,
            });
        }
        Ok(())
    }

    /// Writes what an epoch's end leaves on disk: the checkpoint, the best marker, the metrics
    /// files, the curves and the TensorBoard events.
    fn write_epoch(&self, record: &EpochRecord, faces: &[Shown], tb: &mut TrainLog) -> Result<()> {
        let (state, run_dir) = (&self.state, &self.run_dir);
        let ckpt_root = checkpoints_dir(run_dir);
        save(&ckpt_root, &self.s, &self.opt, state)?;
        if let Some(b) = &state.best {
            checkpoint::write_best(&ckpt_root, b)?;
        }
        history::write_files(run_dir, &state.history)?;
        let metric = self.s.cfg.checkpoint.best_metric;
        save_curves(
            &run_dir.join(CURVES_PNG),
            &state.history,
            metric,
            metric.validation().and_then(|f| state.baseline.get(f)),
        )?;
        tb.epoch(record, faces)
    }
}

/// Writes `summary.json` and returns the summary.
fn finish(run: &Session, finished: bool, started: Instant, writes: bool) -> Result<RunSummary> {
    let summary = RunSummary {
        run_dir: run.run_dir.clone(),
        epochs_done: run.state.progress.epoch,
        total_epochs: run.plan.total_epochs(),
        finished,
        baseline: run.state.baseline.clone(),
        best: run.state.best.clone(),
        last: run.state.history.last().cloned(),
        parameters: run.s.store.num_parameters(),
        train_items: run.s.train_samples.len(),
        val_items: run.s.val.samples().len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let text = serde_json::to_vec_pretty(&summary)?;
    if writes {
        crate::atomic::write_atomic(&run.run_dir.join(SUMMARY_FILE), &text)?;
    }
    Ok(summary)
}

/// Writes a checkpoint of the current state and prunes old ones (the best is always kept).
fn save(root: &Path, s: &Setup, opt: &Adam, state: &TrainState) -> Result<()> {
    checkpoint::write(root, &s.store, Some(opt), state)?;
    let best = state.best.as_ref().map(|b| b.tag.clone());
    let keep: Vec<&str> = best.iter().map(String::as_str).collect();
    checkpoint::prune(root, s.cfg.checkpoint.keep_last, &keep)
}
