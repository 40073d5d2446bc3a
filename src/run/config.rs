//! `TrainConfig`: everything a training run needs, as one TOML file. Every section has defaults
//! (the write-up's variant 1 recipe), unknown keys are refused, and the run directory receives the
//! fully resolved config (every default written out) as `config.toml`.

use std::path::{Path, PathBuf};

use crate::codec::Decoder;
use crate::data::sources::points::PointSelection;
use crate::data::synthesis::generate::SynthConfig;
use crate::data::{PipelineConfig, TargetConfig};
use crate::device::DeviceSpec;
use crate::hub::WeightsSource;
use crate::learn::loss::LossConfig;
use crate::learn::lr_sweep::LrFindConfig;
use crate::learn::optim::OptimConfig;
use crate::learn::precision::Precision;
use crate::learn::schedule::ScheduleConfig;
use crate::metrics::MetricConfig;
use crate::models::{Arch, ModelConfig};
use crate::run::checkpoint::CheckpointConfig;
use crate::{Error, Result};

/// `path` made absolute when it exists (a missing path stays as written, for its error later).
fn absolutize(path: &mut PathBuf) {
    if let Ok(abs) = std::fs::canonicalize(&*path) {
        *path = abs;
    }
}

/// Refuses a pixel origin outside 0..=1 ([`DataConfig::origin`]); `what` names the setting.
pub fn check_origin(origin: f32, what: &str) -> Result<()> {
    if (0.0..=1.0).contains(&origin) {
        return Ok(());
    }
    Err(Error::config(format!(
        "{what} must be between 0 and 1 (the first pixel's centre in the landmark files), got \
         {origin}"
    )))
}

/// `[data]`: where the images are and which points to learn.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset root in the LaPa layout (`<root>/<split>/{images,landmarks}`); a relative path is
    /// taken from the current directory.
    pub root: PathBuf,
    pub points: PointSelection,
    pub train_split: String,
    pub val_split: String,
    /// Train on a seeded random sample of this many training items (0: all). The recipe samples
    /// 5000 LaPa images for speed.
    pub train_limit: usize,
    /// Validate on the first this many validation items (0: all).
    pub val_limit: usize,
    /// Generate the synthetic set described by `synth` into `root` when `root` does not exist.
    pub generate_if_missing: bool,
    pub synth: SynthConfig,
    /// Sampling weight of `root`'s training split when `extra` sources are mixed in: an epoch
    /// takes `round(weight x items)` of each source.
    pub weight: f64,
    /// More training sources (`[[data.extra]]`), mixed into every epoch by weight; validation
    /// stays on `root`'s `val_split`.
    pub extra: Vec<ExtraSource>,
    /// Where `root`'s landmark files put the first pixel's centre: 0 (the crate's convention),
    /// 1 for files that count pixels from 1 (300-W's MATLAB convention), 0.5 for coordinates on
    /// pixel edges. Points are moved to the crate's convention on reading, so a horizontal flip
    /// mirrors them about the image's true centre (see [`crate::data::sources::sample`]).
    pub origin: f32,
}

/// One more training source of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtraSource {
    /// Dataset root in the LaPa layout.
    pub root: PathBuf,
    pub split: String,
    /// Sampling weight (see [`DataConfig::weight`]).
    pub weight: f64,
    /// This source's point indices in the order of the run's points, where its files number
    /// them differently (for example a 68-point set onto a 5-point selection); default: the
    /// run's own `data.points`.
    pub points: Option<PointSelection>,
    /// This source's pixel origin (see [`DataConfig::origin`]).
    pub origin: f32,
}

impl Default for ExtraSource {
    fn default() -> Self {
        ExtraSource {
            root: PathBuf::new(),
            split: "train".into(),
            weight: 1.0,
            points: None,
            origin: 0.0,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            root: PathBuf::from("data/LaPa"),
            points: PointSelection::Indices(vec![30, 40, 50, 60, 70]),
            train_split: "train".into(),
            val_split: "val".into(),
            train_limit: 5000,
            val_limit: 0,
            generate_if_missing: false,
            synth: SynthConfig::default(),
            weight: 1.0,
            extra: Vec::new(),
            origin: 0.0,
        }
    }
}

/// `[metrics]`: how validation predictions are decoded and scored.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    pub decoder: Decoder,
    /// Also report the write-up's NMAE against decoded target maps (`nmae_vs_target`).
    pub vs_target: bool,
    pub accuracy: MetricConfig,
    /// Input pixels `[x, y]` added to every predicted point after the flip test (evaluation,
    /// `predict`, `track`, the exported graph): a calibration, set after training to the
    /// model's mean signed error on its training faces (`hmreg eval --split train` prints it)
    /// for labels a flip-trained model cannot match, such as 300-W's (see
    /// [`crate::codec::Codec::with_point_offset`]). Zero: the model's points as they are.
    pub point_offset: [f32; 2],
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            decoder: Decoder::default(),
            vs_target: true,
            accuracy: MetricConfig::default(),
            point_offset: [0.0; 2],
        }
    }
}

/// `[init]`: where the weights start from.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// Pretrained encoder weights: a local file (torchvision `.pth` or safetensors) or a
    /// Hugging Face hub name (`timm/resnet18.tv_in1k`, `OWNER/NAME[:FILE][@REVISION]`; see
    /// [`crate::hub::source`] for how the two are told apart); empty: random init. Reading the
    /// config never downloads: training fetches.
    pub pretrained: WeightsSource,
    /// Weights of the whole network to start from (a run's `checkpoints/<tag>/model.safetensors`,
    /// or `models/face68/model.safetensors`): every tensor of the network must be in the file,
    /// with its shape. Fine-tuning a trained model on other data or at another input size
    /// starts here (a convolutional network takes any input size). Applied after `pretrained`.
    pub weights: Option<PathBuf>,
}

/// `[logging]`: TensorBoard event files under the run's `tb/` directory.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Write event files at all.
    pub tensorboard: bool,
    /// Log the training loss of every this many optimiser steps (0: epochs only).
    pub every_steps: usize,
    /// Log the picture of the first validation faces every this many epochs (0: never).
    pub image_every_epochs: usize,
    /// How many validation faces that picture shows.
    pub image_faces: usize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            tensorboard: true,
            every_steps: 10,
            image_every_epochs: 1,
            image_faces: 4,
        }
    }
}

/// A whole training run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Seeds the weights, the data order and every augmentation draw.
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`, parsed when the file is read.
    pub device: DeviceSpec,
    /// Compute dtype of the forward and backward passes: `f32`, or `bf16`/`f16` mixed precision
    /// on CUDA (f32 master weights and optimiser state; loss scaling for f16).
    pub precision: Precision,
    /// The `n` of `fit_one_cycle(n)` / `fine_tune(n)` (fine_tune adds its frozen epochs).
    pub epochs: usize,
    pub batch_size: usize,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub init: InitConfig,
    pub pipeline: PipelineConfig,
    pub target: TargetConfig,
    pub loss: LossConfig,
    pub optim: OptimConfig,
    pub schedule: ScheduleConfig,
    pub checkpoint: CheckpointConfig,
    pub metrics: ValidationConfig,
    pub lr_find: LrFindConfig,
    pub logging: LoggingConfig,
    /// The derived keys the file spelled out (see [`WrittenDerived`]); never serialised.
    #[serde(skip)]
    pub written: WrittenDerived,
}

/// Values a run derives from other keys, as a config file wrote them: `model.input_size` (from
/// `pipeline.input_size`), `target.stride` (from the architecture and `model.heatmap_stride`)
/// and `model.points` (from `data.points` and the data). A run directory's `config.toml`
/// records them for the reader and for inference; a file may repeat them (old run dirs and the
/// built-in model do) but a value that disagrees with the derived one is refused, naming the key,
/// instead of being silently replaced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrittenDerived {
    pub input_size: Option<usize>,
    pub stride: Option<usize>,
    pub points: Option<usize>,
}

impl WrittenDerived {
    /// The derived keys present in TOML `text` (already known to parse).
    fn of(text: &str) -> WrittenDerived {
        let table: toml::Table = text.parse().unwrap_or_default();
        let key = |section: &str, key: &str| {
            table
                .get(section)
                .and_then(|t| t.get(key))
                .and_then(toml::Value::as_integer)
                .map(|v| v.max(0) as usize)
        };
        WrittenDerived {
            input_size: key("model", "input_size"),
            stride: key("target", "stride"),
            points: key("model", "points"),
        }
    }
}

impl Default for TrainConfig {
    /// Variant 1 of the write-up: UNet-ResNet18, points [30, 40, 50, 60, 70], 256 input from
    /// 400 items, Gaussian sigma 10 + MSE, `fine_tune(10, 8e-5)`, batch 24.
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            device: DeviceSpec::Cpu,
            precision: Precision::F32,
            epochs: 10,
            batch_size: 24,
            data: DataConfig::default(),
            model: ModelConfig {
                arch: Arch::UnetResnet18,
                points: 5,
                input_size: 256,
                width: 1.0,
                heatmap_stride: 0,
                head: crate::models::HeadKind::Binary,
                ..Default::default()
            },
            init: InitConfig::default(),
            pipeline: PipelineConfig::default(),
            target: TargetConfig::default(),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            checkpoint: CheckpointConfig::default(),
            metrics: ValidationConfig::default(),
            lr_find: LrFindConfig::default(),
            logging: LoggingConfig::default(),
            written: WrittenDerived::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML config; errors name the file and line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("cannot read config: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses TOML text (`path` only names the source in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut cfg = toml::from_str::<TrainConfig>(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| error_line(text, s, e.message()))
                .unwrap_or(0);
            Error::parse(path, line, e.message().to_string())
        })?;
        cfg.written = WrittenDerived::of(text);
        Ok(cfg)
    }

    /// Makes the data and pretrained-weight paths absolute (when they exist), so that a run's
    /// config.toml works from any directory and compares equal however the paths were written.
    pub fn absolutize_paths(&mut self) {
        absolutize(&mut self.data.root);
        for e in &mut self.data.extra {
            absolutize(&mut e.root);
        }
        self.init.pretrained.absolutize();
        if let Some(w) = &mut self.init.weights {
            absolutize(w);
        }
    }

    /// The config as TOML, every field written out. The derived keys ([`WrittenDerived`]) are
    /// written as this config derives them (the point count from an index selection; with
    /// `all`, the count the data gave), so that the text reads back without a stale value.
    pub fn to_toml(&self) -> Result<String> {
        let mut out = self.clone();
        out.model.input_size = out.pipeline.input_size;
        out.target.stride = out.model.stride();
        if let crate::data::PointSelection::Indices(idx) = &out.data.points {
            out.model.points = idx.len();
        }
        Ok(toml::to_string_pretty(&out)?)
    }

    /// Refuses a derived key written with a value other than the derived one.
    pub(crate) fn check_written_derived(&self) -> Result<()> {
        let derived = [
            (
                "model.input_size",
                self.written.input_size,
                self.pipeline.input_size,
                "it is pipeline.input_size's; set that one",
            ),
            (
                "target.stride",
                self.written.stride,
                self.model.stride(),
                "it is the architecture's own stride or model.heatmap_stride; set that one",
            ),
        ];
        for (key, written, derived, why) in derived {
            if let Some(w) = written.filter(|&w| w != derived) {
                return Err(Error::config(format!(
                    "{key} = {w} cannot be set: {why} (this run derives {derived}; remove the key)"
                )));
            }
        }
        Ok(())
    }

    /// A known hub repository (the README's list) whose backbone is not this architecture's is
    /// refused here, before anything is downloaded.
    fn check_pretrained_fits(&self) -> Result<()> {
        let WeightsSource::Hub(name) = &self.init.pretrained else {
            return Ok(());
        };
        let Some(known) = name.known() else {
            return Ok(());
        };
        let arch = self.model.arch.as_str();
        if known.archs.contains(&arch) {
            return Ok(());
        }
        let fitting: Vec<&str> = crate::hub::KNOWN_REPOS
            .iter()
            .filter(|k| k.archs.contains(&arch))
            .map(|k| k.repo)
            .collect();
        Err(Error::config(format!(
            "init.pretrained = \"{name}\" ({}) does not fit model.arch = \"{arch}\" ({})",
            known.what,
            if fitting.is_empty() {
                format!("no listed hub weights fit {arch}: use a local file")
            } else {
                format!("use one of {}", fitting.join(", "))
            }
        )))
    }

    /// Checks the values that do not depend on what the run derives ([`TrainConfig::resolve`]
    /// checks the rest).
    pub fn validate(&self) -> Result<()> {
        self.precision.check_device(&self.device.to_string())?;
        if self.epochs == 0 {
            return Err(Error::config("epochs must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size must be at least 1"));
        }
        let weights =
            std::iter::once(self.data.weight).chain(self.data.extra.iter().map(|e| e.weight));
        if let Some(w) = weights.into_iter().find(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(Error::config(format!(
                "data.weight and every data.extra weight must be positive numbers, got {w}"
            )));
        }
        check_origin(self.data.origin, "data.origin")?;
        for e in &self.data.extra {
            check_origin(e.origin, "every data.extra origin")?;
        }
        if self.data.train_split.is_empty() || self.data.val_split.is_empty() {
            return Err(Error::config(
                "data.train_split and data.val_split must be named",
            ));
        }
        self.check_pretrained_fits()?;
        self.pipeline.validate()?;
        self.loss.validate()?;
        self.optim.validate()?;
        self.schedule.validate()?;
        self.checkpoint.validate(self.metrics.vs_target)?;
        self.lr_find.validate()
    }

    /// Total epochs of the run (fine_tune adds its frozen epochs).
    pub fn total_epochs(&self) -> usize {
        match self.schedule.kind {
            crate::learn::schedule::ScheduleKind::FineTune => {
                self.epochs + self.schedule.freeze_epochs
            }
            _ => self.epochs,
        }
    }
}

/// 1-based line of a TOML error. For an unknown key the span covers its whole table (the whole
/// file for top-level keys), so the key's own line is searched for inside the span.
fn error_line(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    if let Some(key) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        let mut offset = start;
        for l in text[start..end].split_inclusive('\n') {
            let t = l.trim_start().trim_start_matches('"');
            if let Some(rest) = t.strip_prefix(key) {
                let rest = rest.trim_start_matches('"').trim_start();
                if rest.starts_with('=') || rest.starts_with('.') {
                    return line_of(offset);
                }
            }
            offset += l.len();
        }
    }
    line_of(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_recipe_and_round_trips() {
        let c = TrainConfig::default();
        assert_eq!(c.batch_size, 24);
        assert_eq!(c.schedule.lr, 8e-5);
        assert_eq!(c.total_epochs(), 11);
        let text = c.to_toml().unwrap();
        let back = TrainConfig::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(back.to_toml().unwrap(), text);
    }

    #[test]
    fn unknown_key_is_refused_with_line() {
        let err = TrainConfig::parse("epochs = 3\n\n[optim]\nbeta3 = 0.5\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:4:"), "{err}");
        assert!(err.contains("beta3"), "{err}");
        let err = TrainConfig::parse("epochs = 3\nlearning_rate = 1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:"), "{err}");
        let err = TrainConfig::parse("epochs = \"x\"\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:1:"), "{err}");
    }
}
