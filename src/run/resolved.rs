//! A run as it runs: the config as the user wrote it, and what is derived from it, once.
//!
//! [`TrainConfig`] is what the file (and the command line) said; nothing patches it. The values
//! a run derives live here, built by [`TrainConfig::resolve`]: the network as built (the
//! `[model]` table with the pipeline's input size and the data's point count), the training
//! targets as encoded (`[target]` with the architecture's stride), the device, and the codec.
//! The same split as ripgrep's low-level and high-level arguments: readers of a run take a
//! [`ResolvedRun`] and find the derived values under the names they had in the config
//! (`run.model.points`, `run.target.stride`); everything else reads through to the config.

use std::ops::Deref;

use crate::codec::{Codec, Decoder};
use crate::data::TargetConfig;
use crate::device::DeviceSpec;
use crate::learn::loss::LossKind;
use crate::models::HeadKind;
use crate::models::ModelConfig;
use crate::run::config::TrainConfig;
use crate::{Error, Result};

/// A config and its derived values (see the module's documentation).
#[derive(Clone, Debug)]
pub struct ResolvedRun {
    config: TrainConfig,
    /// The network: `[model]` with `input_size` = `pipeline.input_size` and `points` from
    /// `data.points` (an index list), the data (`all`), or a run directory's record of it.
    pub model: ModelConfig,
    /// The targets: `[target]` with `stride` = the architecture's or `model.heatmap_stride`.
    pub target: TargetConfig,
    /// Where the run computes: the config's device, or the first of `--devices`.
    pub device: DeviceSpec,
    codec: Codec,
}

impl Deref for ResolvedRun {
    type Target = TrainConfig;

    fn deref(&self) -> &TrainConfig {
        &self.config
    }
}

impl ResolvedRun {
    /// Derives and checks everything; `points` is the point count the run's data gives
    /// (`None` when no data is read, as for inference from a run directory).
    pub(crate) fn new(config: TrainConfig, points: Option<usize>) -> Result<ResolvedRun> {
        config.check_written_derived()?;
        let mut model = config.model.clone();
        model.input_size = config.pipeline.input_size;
        model.points = derived_points(&config, points)?;
        model.validate()?;
        let mut target = config.target.clone();
        target.stride = model.stride();
        let run = ResolvedRun {
            device: config.device,
            codec: Codec::new(
                model.input_size,
                target.validate(model.input_size)?,
                target.encoder.clone(),
                config.metrics.decoder.clone(),
            )?
            .with_point_offset(config.metrics.point_offset)?,
            model,
            target,
            config,
        };
        check_codec(&run)?;
        Ok(run)
    }

    /// The config as written (for reading; a changed config is resolved again).
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The config, to change and resolve again.
    pub fn into_config(self) -> TrainConfig {
        self.config
    }

    /// The same run on another device (`--device` at evaluation, `--devices` in training).
    pub fn on_device(mut self, device: DeviceSpec) -> Result<ResolvedRun> {
        self.config.precision.check_device(&device.to_string())?;
        self.device = device;
        Ok(self)
    }

    /// The codec decoding with `decoder` instead of the validation decoder (an evaluation's
    /// choice).
    pub fn codec_with(&self, decoder: Decoder) -> Result<Codec> {
        Codec::new(
            self.codec.input_size(),
            self.codec.map_size(),
            self.target.encoder.clone(),
            decoder,
        )?
        .with_point_offset(self.codec.point_offset())
    }

    /// Input and map sizes, the target encoder and the validation decoder.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The config as a run directory's `config.toml` records it: every value written out,
    /// the derived ones as this run derived them.
    pub fn to_toml(&self) -> Result<String> {
        let mut out = self.config.clone();
        out.model = self.model.clone();
        out.target = self.target.clone();
        out.device = self.device;
        Ok(toml::to_string_pretty(&out)?)
    }
}

/// The point count: the data's, else an index selection's length, else what the file recorded.
fn derived_points(config: &TrainConfig, from_data: Option<usize>) -> Result<usize> {
    let written = config.written.points;
    let derived = match (from_data, &config.data.points) {
        (Some(n), _) => Some(n),
        (None, crate::data::PointSelection::Indices(idx)) => Some(idx.len()),
        (None, _) => None,
    };
    match (derived, written) {
        (Some(d), Some(w)) if d != w => Err(Error::config(format!(
            "model.points = {w} cannot be set: data.points selects {d} points of the data \
             (remove model.points)"
        ))),
        (Some(d), _) => Ok(d),
        (None, Some(w)) => Ok(w),
        (None, None) => Err(Error::config(
            "data.points = \"all\" takes the point count from the data, and no data was read \
             (a run directory's config.toml records it as model.points)",
        )),
    }
}

impl TrainConfig {
    /// Resolves the run (see [`ResolvedRun`]): derives the model's input size (the pipeline's),
    /// the target stride (the architecture's, or `model.heatmap_stride`) and the point count
    /// (`points_from_data`, the data's, when the data has been read), builds the codec and checks
    /// every value. A file that wrote a derived key with another value is refused
    /// ([`crate::run::config::WrittenDerived`]).
    pub fn resolve(self, points_from_data: Option<usize>) -> Result<ResolvedRun> {
        self.validate()?;
        ResolvedRun::new(self, points_from_data)
    }

    /// Everything [`TrainConfig::resolve`] checks that does not need the data, so that a bad
    /// config fails before the data is read (or generated). The point count is taken from the
    /// selection or the file until the data gives it.
    pub fn check(&self) -> Result<()> {
        let provisional = match &self.data.points {
            crate::data::PointSelection::Indices(idx) => idx.len(),
            _ => self.written.points.unwrap_or(1),
        };
        self.clone().resolve(Some(provisional)).map(drop)
    }
}

/// The encoder, loss, head and decoder choices that cannot work together, refused in this one
/// place with the keys to change.
fn check_codec(cfg: &ResolvedRun) -> Result<()> {
    let bce = cfg.loss.kind == LossKind::Bce;
    if cfg.model.head == HeadKind::TwoChannel && !bce {
        return Err(Error::config(
            "model.head = \"two-channel\" is trained with the per-pixel two-class softmax \
             cross-entropy, which is loss.kind = \"bce\" on its foreground log-odds \
             (pos_weight = 1 for the plain cross-entropy)",
        ));
    }
    if cfg.target.encoder.is_binary() && !bce {
        return Err(Error::config(format!(
            "target.encoder `{}` draws binary targets (one positive pixel), which are trained \
             with loss.kind = \"bce\", not \"{}\"",
            cfg.target.encoder,
            loss_name(cfg.loss.kind)
        )));
    }
    Ok(())
}

fn loss_name(kind: LossKind) -> &'static str {
    match kind {
        LossKind::Mse => "mse",
        LossKind::Bce => "bce",
    }
}
