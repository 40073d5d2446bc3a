//! What a training run shows in TensorBoard (`RUN/tb/`): per epoch the losses, every validation
//! figure, the learning rate and images/s (step = the epoch's number); the training loss every
//! `logging.every_steps` optimiser steps (step = the global step); every
//! `logging.image_every_epochs` epochs the first validation faces with true and predicted points
//! and the predicted heatmaps; the resolved config as text. A resumed run opens a new event file
//! that continues after the steps already logged.

use std::path::{Path, PathBuf};

use crate::eval::show::{results_grid, Shown};
use crate::run::config::LoggingConfig;
use crate::run::history::EpochRecord;
use crate::run::ResolvedRun;
use crate::tensorboard::EventWriter;
use crate::Result;

/// The event directory of a run.
pub const TB_DIR: &str = "tb";
/// Tag of the per-step training loss.
pub const STEP_LOSS: &str = "step/train_loss";
/// Tag of the validation faces picture.
pub const FACES: &str = "valid/faces";
/// Tag of the resolved config.
pub const CONFIG: &str = "config";
/// Side of one picture cell of the faces image, in pixels.
pub const FACE_CELL: u32 = 160;

pub fn tb_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(TB_DIR)
}

/// The scalars of one epoch, by tag: what the event files hold for `metrics.jsonl`'s record.
pub fn epoch_scalars(r: &EpochRecord) -> Vec<(String, f64)> {
    let mut out = vec![
        ("loss/train".to_string(), r.train_loss),
        ("loss/valid".to_string(), r.valid_loss),
    ];
    out.extend(r.metrics.iter().map(|(k, v)| (format!("valid/{k}"), v)));
    out.push(("train/lr".into(), r.lr));
    out.push(("train/images_per_second".into(), r.images_per_second));
    out
}

/// The resolved config as markdown (a code block keeps TOML's layout).
fn config_markdown(cfg: &ResolvedRun) -> Result<String> {
    Ok(cfg
        .to_toml()?
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect())
}

/// A run's TensorBoard log; does nothing when `logging.tensorboard` is off.
pub struct TrainLog {
    writer: Option<EventWriter>,
    cfg: LoggingConfig,
}

impl TrainLog {
    /// A log that writes nothing (processes that do not write the run's files).
    pub fn off() -> Self {
        TrainLog {
            writer: None,
            cfg: LoggingConfig::default(),
        }
    }

    /// Opens the run's event directory and logs the config (once per run).
    pub fn open(run_dir: &Path, cfg: &ResolvedRun) -> Result<Self> {
        if !cfg.logging.tensorboard {
            return Ok(Self::off());
        }
        let mut w = EventWriter::open(&tb_dir(run_dir))?;
        w.text(CONFIG, 0, &config_markdown(cfg)?)?;
        w.flush()?;
        Ok(TrainLog {
            writer: Some(w),
            cfg: cfg.logging.clone(),
        })
    }

    /// The training loss of optimiser step `global_step` (1-based), when it is due.
    pub fn step(&mut self, global_step: u64, loss: f64) -> Result<()> {
        let every = self.cfg.every_steps as u64;
        match &mut self.writer {
            Some(w) if every > 0 && global_step.is_multiple_of(every) => {
                w.scalar(STEP_LOSS, global_step as i64, loss)
            }
            _ => Ok(()),
        }
    }

    /// How many validation faces epoch `epoch` (1-based) pictures: 0 when none is due.
    pub fn faces_due(&self, epoch: usize) -> usize {
        let every = self.cfg.image_every_epochs;
        match &self.writer {
            Some(w)
                if every > 0 && epoch.is_multiple_of(every) && w.is_new(FACES, epoch as i64) =>
            {
                self.cfg.image_faces
            }
            _ => 0,
        }
    }

    /// One finished epoch: its scalars and (when given) the faces picture; then everything
    /// logged so far goes to disk.
    pub fn epoch(&mut self, r: &EpochRecord, faces: &[Shown]) -> Result<()> {
        let Some(w) = &mut self.writer else {
            return Ok(());
        };
        let step = r.epoch as i64;
        for (tag, v) in epoch_scalars(r) {
            w.scalar(&tag, step, v)?;
        }
        if !faces.is_empty() {
            w.image(FACES, step, &results_grid(faces, FACE_CELL))?;
        }
        w.flush()
    }
}
