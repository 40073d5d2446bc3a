//! Loading a trained model for inference, and the evaluation data, from a run directory or a
//! checkpoint plus its config. Inference needs no training-only parts: no optimiser state is
//! read, and BatchNorm runs on its running statistics (`forward_t(x, false)`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

use super::evaluate::EvalBatch;
use crate::codec::{decode, Decoder, TargetEncoder};
use crate::data::dataset::{load_split, Sample};
use crate::data::loader::{Batch, Loader};
use crate::models::{build, KeypointNet, ParamStore};
use crate::train::checkpoint;
use crate::train::config::TrainConfig;
use crate::train::run_dir;
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

pub fn open_device(name: &str) -> Result<Device> {
    crate::train::device::parse_device(name)
}

pub fn load_model(source: &ModelSource, device: &Device) -> Result<LoadedModel> {
    match source {
        ModelSource::Run(path) => {
            let (_, ckpt) = run_dir::resolve_checkpoint(path)?;
            let (cfg, store, model) = run_dir::load_for_inference(path, device)?;
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

/// The decoder for `--decoder NAME[:param]` and `--k` (alone: top-k), defaulting to the run's
/// validation decoder.
/// `dark` without a parameter takes the Gaussian target's sigma (in map pixels), which is what
/// DARK's smoothing should match.
pub fn choose_decoder(name: Option<&str>, k: Option<usize>, cfg: &TrainConfig) -> Result<Decoder> {
    let mut dec = match name {
        // `--k` alone asks for the top-k decoder.
        None if k.is_some() => Decoder::TopK { k: k.unwrap_or(9) },
        None => cfg.metrics.decoder.clone(),
        Some(n) => {
            let d: Decoder = n.parse()?;
            match (&d, &cfg.target.encoder) {
                (Decoder::Dark { .. }, TargetEncoder::Gaussian { sigma, .. })
                    if !n.contains(':') =>
                {
                    Decoder::Dark { sigma: *sigma }
                }
                _ => d,
            }
        }
    };
    if let Some(k) = k {
        match &mut dec {
            Decoder::TopK { k: kk } => *kk = k,
            other => {
                return Err(Error::config(format!(
                    "--k applies to the top-k decoder, not to `{other}`"
                )))
            }
        }
    }
    dec.validate()?;
    Ok(dec)
}

/// The number of points in the run's landmark files: from a file of the run's data when there is
/// one, else from the model when the selection is `all`.
fn points_in_files(
    cfg: &TrainConfig,
    data_root: &Path,
    samples: Option<&[Sample]>,
) -> Result<usize> {
    if let Some(s) = samples.and_then(|s| s.first()) {
        return Ok(crate::data::read_landmarks(&s.landmarks_path)?.len());
    }
    if cfg.data.points == crate::data::PointSelection::All {
        return Ok(cfg.model.points);
    }
    for split in [&cfg.data.val_split, &cfg.data.train_split] {
        if let Ok(listing) = crate::data::dataset::list_split(data_root, split) {
            if let Some(f) = listing.landmarks.values().flatten().next() {
                return Ok(crate::data::read_landmarks(f)?.len());
            }
        }
    }
    if let Some(p) = &cfg.pipeline.flip.permutation {
        return Ok(p.len());
    }
    Err(Error::config(format!(
        "flip test: cannot tell how many points the landmark files have (no data under {}); \
         set pipeline.flip.permutation in the config",
        data_root.display()
    )))
}

/// The mirror permutation of the model's points: the point set's flip permutation restricted to
/// the selected points (`samples`: the data being evaluated, to count the points in its files).
pub fn flip_permutation(cfg: &TrainConfig, samples: Option<&[Sample]>) -> Result<Vec<usize>> {
    let n = points_in_files(cfg, &cfg.data.root, samples)?;
    crate::data::flip::flip_permutation(
        n,
        &cfg.data.points,
        cfg.pipeline.flip.permutation.as_deref(),
    )
}

/// A progress bar on stderr (hidden with `quiet`, e.g. when printing JSON to a pipe is all
/// that should happen; indicatif hides it by itself when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A dataset split prepared exactly like training's validation data.
pub struct EvalSet {
    samples: Vec<Sample>,
    loader: Loader,
    stride: usize,
    file_indices: Option<Vec<usize>>,
}

impl EvalSet {
    pub fn open(
        cfg: &TrainConfig,
        root: &Path,
        split: &str,
        limit: usize,
        batch_size: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let mut samples = load_split(root, split, &cfg.data.points)?;
        if limit > 0 {
            samples.truncate(limit);
        }
        if samples.is_empty() {
            return Err(Error::file(
                root.join(split),
                "no annotated images in this split",
            ));
        }
        let got = samples[0].points.len();
        if got != cfg.model.points {
            return Err(Error::file(
                &samples[0].landmarks_path,
                format!(
                    "{got} selected points, but the model predicts {}",
                    cfg.model.points
                ),
            ));
        }
        let n_file = crate::data::read_landmarks(&samples[0].landmarks_path)?.len();
        let file_indices = Some(cfg.data.points.indices(n_file));
        let loader = Loader::new(
            samples.clone(),
            &cfg.pipeline,
            &cfg.target,
            batch_size.unwrap_or(cfg.batch_size).max(1),
            false,
            cfg.seed,
            device,
        )?;
        Ok(EvalSet {
            samples,
            loader,
            stride: cfg.model.arch.stride(),
            file_indices,
        })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn file_indices(&self) -> Option<Vec<usize>> {
        self.file_indices.clone()
    }

    /// Batches in file order. With `vs_target`, the target maps are decoded with argmax (exact
    /// for a binary map's single 1 and a Gaussian's integer centre), as training does.
    pub fn batches(&self, vs_target: bool) -> impl Iterator<Item = Result<EvalBatch>> + '_ {
        let stride = self.stride as f32;
        self.loader.epoch(0).map(move |b| {
            let b: Batch = b?;
            let ids = b
                .indices
                .iter()
                .map(|&i| {
                    self.samples
                        .get(i)
                        .map_or_else(|| i.to_string(), |s| s.stem.clone())
                })
                .collect();
            let targets = if vs_target {
                let mut t = decode(&b.targets, &Decoder::Argmax)?.to_keypoints(stride, stride);
                let mask: Vec<Vec<f32>> = b.mask.to_dtype(candle_core::DType::F32)?.to_vec2()?;
                for (kp, row) in t.iter_mut().zip(mask) {
                    kp.visible = row.into_iter().map(|v| v > 0.5).collect();
                }
                Some(t)
            } else {
                None
            };
            Ok(EvalBatch {
                images: b.images,
                points: b.points,
                targets,
                ids,
            })
        })
    }
}
