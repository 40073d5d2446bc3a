//! A trained model loaded back for inference, from a run directory or from a checkpoint plus its
//! config. Inference needs no training-only parts: no optimiser state is read.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::checkpoint;
use super::config::TrainConfig;
use super::dir::{read_config, resolve_checkpoint};
use super::resolved::ResolvedRun;
use crate::models::{build, KeypointNet, LoadReport, ParamStore};
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
    /// The 68-point face model built into the binary (`models/face68/`).
    Builtin,
}

/// The built-in face model: the resolved config of the run that trained it and its weights
/// (provenance in `models/face68/README.md`).
const BUILTIN_CONFIG: &str = include_str!("../../models/face68/config.toml");
static BUILTIN_WEIGHTS: &[u8] = include_bytes!("../../models/face68/model.safetensors");
/// How errors and outputs name the built-in model.
pub const BUILTIN_NAME: &str = "<built-in face68>";

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
    /// The run's config and what it derives (the network, the codec).
    pub cfg: ResolvedRun,
    pub store: ParamStore,
    pub model: Box<dyn KeypointNet>,
    /// The checkpoint (directory or weights file) the weights came from.
    pub checkpoint: PathBuf,
}

/// Loads a model for inference: the run's config, the parameter store with the checkpoint's
/// weights (verified against its manifest), and the network. No optimiser state is read.
pub fn load_model(source: &ModelSource, device: &Device) -> Result<LoadedModel> {
    let (cfg, checkpoint) = match source {
        ModelSource::Builtin => {
            let name = PathBuf::from(BUILTIN_NAME);
            (
                TrainConfig::parse(BUILTIN_CONFIG, &name.join("config.toml"))?.resolve(None)?,
                name,
            )
        }
        ModelSource::Run(path) => {
            let (run, ckpt) = resolve_checkpoint(path)?;
            (read_config(&run)?.resolve(None)?, ckpt)
        }
        ModelSource::Checkpoint { checkpoint, config } => {
            let cfg = TrainConfig::load(config)?.resolve(None)?;
            // A file inside a checkpoint directory stands for the directory.
            let dir = if checkpoint.is_dir() {
                checkpoint.clone()
            } else {
                checkpoint
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            };
            if dir.join(checkpoint::MANIFEST_FILE).is_file() {
                (cfg, dir)
            } else if checkpoint.is_file() {
                (cfg, checkpoint.clone())
            } else {
                return Err(Error::file(
                    checkpoint,
                    "neither a checkpoint directory (with manifest.json) nor a weights file",
                ));
            }
        }
    };
    let mut store = ParamStore::new(device, cfg.seed);
    let model = build(&cfg.model, &mut store)?;
    if let ModelSource::Builtin = source {
        let tensors = candle_core::safetensors::load_buffer(BUILTIN_WEIGHTS, device)?;
        require_all(&store.load_tensors(&tensors, &checkpoint)?, &checkpoint)?;
    } else if checkpoint.is_dir() {
        checkpoint::load(&checkpoint, &store, None)?;
    } else {
        require_all(&store.load_safetensors(&checkpoint)?, &checkpoint)?;
    }
    Ok(LoadedModel {
        cfg,
        store,
        model,
        checkpoint,
    })
}

/// A bare weights file (or the built-in weights) must hold every model tensor.
fn require_all(report: &LoadReport, source: &Path) -> Result<()> {
    if let Some(first) = report.missing.first() {
        return Err(Error::file(
            source,
            format!(
                "{} model tensors are not in this file (first: {first}); is --config the \
                 run's config?",
                report.missing.len()
            ),
        ));
    }
    Ok(())
}
