//! A trained model loaded back for inference, from a run directory or from a checkpoint plus its
//! config. Inference needs no training-only parts: no optimiser state is read.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::checkpoint;
use super::config::TrainConfig;
use super::dir::{read_config, resolve_checkpoint};
use crate::models::{build, KeypointNet, ParamStore};
use crate::{Error, Result};

/// Where the model comes from.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A run directory (its best checkpoint, else the latest) or a checkpoint inside one.
    Run(PathBuf),
    /// A checkpoint directory (or a file in it, or a bare weights file) and a config file.
    Checkpoint {
        checkpoint: PathBuf,
        config: PathBuf,
    },
}

impl ModelSource {
    /// From `--run` or `--checkpoint` + `--config` (clap enforces the pairing; this checks
    /// that one of them was given).
    pub fn from_args(
        run: Option<&Path>,
        checkpoint: Option<&Path>,
        config: Option<&Path>,
    ) -> Result<Self> {
        match (run, checkpoint, config) {
            (Some(r), None, None) => Ok(ModelSource::Run(r.to_path_buf())),
            (None, Some(c), Some(f)) => Ok(ModelSource::Checkpoint {
                checkpoint: c.to_path_buf(),
                config: f.to_path_buf(),
            }),
            _ => Err(Error::config(
                "give --run RUN_DIR, or --checkpoint FILE with --config FILE",
            )),
        }
    }
}

/// A model ready for inference with the resolved config of its run.
pub struct LoadedModel {
    pub cfg: TrainConfig,
    pub store: ParamStore,
    pub model: Box<dyn KeypointNet>,
    /// The checkpoint (directory or weights file) the weights came from.
    pub checkpoint: PathBuf,
}

/// Loads a model for inference: the run's config, the parameter store with the checkpoint's
/// weights (verified against its manifest), and the network. No optimiser state is read.
pub fn load_model(source: &ModelSource, device: &Device) -> Result<LoadedModel> {
    match source {
        ModelSource::Run(path) => {
            let (run, ckpt) = resolve_checkpoint(path)?;
            let cfg = read_config(&run)?;
            let mut store = ParamStore::new(device, cfg.seed);
            let model = build(&cfg.model, &mut store)?;
            checkpoint::load(&ckpt, &store, None)?;
            Ok(LoadedModel {
                cfg,
                store,
                model,
                checkpoint: ckpt,
            })
        }
        ModelSource::Checkpoint {
            checkpoint: ckpt,
            config,
        } => {
            let mut cfg = TrainConfig::load(config)?;
            cfg.resolve()?;
            let mut store = ParamStore::new(device, cfg.seed);
            let model = build(&cfg.model, &mut store)?;
            let dir = if ckpt.is_dir() {
                ckpt.clone()
            } else {
                ckpt.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            if dir.join(checkpoint::MANIFEST_FILE).is_file() {
                checkpoint::load(&dir, &store, None)?;
                Ok(LoadedModel {
                    cfg,
                    store,
                    model,
                    checkpoint: dir,
                })
            } else if ckpt.is_file() {
                // A bare weights file: every model tensor must be in it.
                let report = store.load_safetensors(ckpt)?;
                if !report.missing.is_empty() {
                    return Err(Error::file(
                        ckpt,
                        format!(
                            "{} model tensors are not in this file (first: {}); is --config the run's config?",
                            report.missing.len(),
                            report.missing[0]
                        ),
                    ));
                }
                Ok(LoadedModel {
                    cfg,
                    store,
                    model,
                    checkpoint: ckpt.clone(),
                })
            } else {
                Err(Error::file(
                    ckpt,
                    "neither a checkpoint directory (with manifest.json) nor a weights file",
                ))
            }
        }
    }
}
