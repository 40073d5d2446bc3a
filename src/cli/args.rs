//! Argument groups shared by several subcommands (flattened with `#[command(flatten)]`), and the
//! value parsers that let clap reject bad names with its usage error (exit 2) and list the
//! choices in `--help`. Each parser is the type's own `FromStr`, so the command line and the
//! config files read names the same way (case-insensitive).

use std::path::{Path, PathBuf};

use clap::builder::{PossibleValue, TypedValueParser};
use clap::Args;

use crate::codec::Decoder;
use crate::data::PointSelection;
use crate::device::DeviceSpec;
use crate::experiment::trained::Method;
use crate::hub::WeightsSource;
use crate::learn::precision::Precision;
use crate::models::Arch;
use crate::run::config::TrainConfig;
use crate::run::history::EpochFigure;
use crate::run::ModelSource;
use crate::train::progress::OutputMode;
use crate::{Error, Result};

/// A value parser from a parsing function, with the choices `--help` lists. The function alone
/// decides what is accepted: any case, and parameters such as `topk:9` or `cuda:1`.
#[derive(Clone)]
pub struct Choices<T> {
    parse: fn(&str) -> Result<T>,
    choices: &'static [&'static str],
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Choices<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<T, clap::Error> {
        self.parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.choices.iter().map(|&c| PossibleValue::new(c)),
        ))
    }
}

fn from_str<T: std::str::FromStr<Err = Error>>(s: &str) -> Result<T> {
    s.parse()
}

/// `--arch`: [`Arch`]'s names.
pub fn arch_parser() -> Choices<Arch> {
    Choices {
        parse: from_str::<Arch>,
        choices: &["unet-resnet18", "hrnet18", "hrnet32"],
    }
}

/// `--device`: `cpu`, `cuda` or `cuda:N`.
pub fn device_parser() -> Choices<DeviceSpec> {
    Choices {
        parse: from_str::<DeviceSpec>,
        choices: &["cpu", "cuda", "cuda:N"],
    }
}

/// `--precision`: `f32`, `bf16`, `f16`.
pub fn precision_parser() -> Choices<Precision> {
    Choices {
        parse: from_str::<Precision>,
        choices: &Precision::NAMES,
    }
}

/// `--decoder NAME[:param]`, parsed once into its [`Decoder`] (a bare `dark` is given the
/// target's sigma by the run's codec, see [`crate::eval::choices::choose_codec`]).
pub fn decoder_parser() -> Choices<Decoder> {
    Choices {
        parse: from_str::<Decoder>,
        choices: &["argmax", "topk", "softargmax", "dark", "quarter"],
    }
}

/// `--methods` of the trained rounding grid: [`Method`]'s names.
pub fn method_parser() -> Choices<Method> {
    Choices {
        parse: from_str::<Method>,
        choices: &[
            "vanilla",
            "binary-round",
            "writeup-rr",
            "paper-rr",
            "subpixel-dark",
        ],
    }
}

/// A figure of an epoch record (`hmreg runs --sort`): the `metrics.csv` names, in any case.
pub fn figure_parser() -> Choices<EpochFigure> {
    Choices {
        parse: |s| s.trim().to_ascii_lowercase().parse(),
        choices: &[
            "train_loss",
            "valid_loss",
            "nmae",
            "nmae_vs_target",
            "nme",
            "fr",
            "auc",
        ],
    }
}

/// `--pretrained`: a local file or a hub name, told apart as `init.pretrained` is.
pub fn parse_weights(s: &str) -> Result<WeightsSource> {
    s.parse()
}

/// `--points`: `all` or 0-based indices such as `30,40,50`.
pub fn parse_points(s: &str) -> Result<PointSelection> {
    s.parse()
}

/// Where a trained model comes from: `--run`, or `--checkpoint` with `--config`
/// (`eval`, `predict`). `eval` needs one of them (an error otherwise); `predict` falls back on
/// the built-in face model.
#[derive(Args, Debug, Clone, Default)]
#[group(id = "model", multiple = true)]
pub struct ModelArgs {
    /// Run directory written by `hmreg train` (its best checkpoint, else the latest).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["checkpoint", "config"])]
    pub run: Option<PathBuf>,
    /// A checkpoint (directory, or a file inside it); needs --config.
    #[arg(long, value_name = "FILE", requires = "config")]
    pub checkpoint: Option<PathBuf>,
    /// The resolved training config of the checkpoint; needs --checkpoint.
    #[arg(long, value_name = "FILE", requires = "checkpoint")]
    pub config: Option<PathBuf>,
}

impl ModelArgs {
    pub fn run(path: &Path) -> Self {
        ModelArgs {
            run: Some(path.to_path_buf()),
            ..Default::default()
        }
    }

    pub fn source(&self) -> Result<ModelSource> {
        ModelSource::from_args(
            self.run.as_deref(),
            self.checkpoint.as_deref(),
            self.config.as_deref(),
        )
    }
}

/// How heatmaps become points at inference time (`eval`, `predict`).
#[derive(Args, Debug, Clone, Default)]
pub struct DecodeArgs {
    /// Decoder (default: the run's validation decoder). A parameter may follow a colon:
    /// topk[:k], softargmax[:temperature], dark[:sigma] (default sigma: the Gaussian target's).
    #[arg(long, value_name = "NAME[:PARAM]", value_parser = decoder_parser())]
    pub decoder: Option<Decoder>,
    /// k of the top-k decoder (alone: the top-k decoder).
    #[arg(long)]
    pub k: Option<usize>,
    /// Average with the prediction on the mirrored image (flip test-time augmentation).
    #[arg(long)]
    pub flip_test: bool,
}

/// Command-line values that replace the training config's (`train`, `lr-find`).
#[derive(Args, Debug, Clone, Default)]
pub struct TrainOverrides {
    /// Network architecture.
    #[arg(long, value_parser = arch_parser())]
    pub arch: Option<Arch>,
    /// Input pixels per heatmap pixel: a power of two from the architecture's own stride (1 for
    /// the UNet, 4 for HRNet) to 32.
    #[arg(long, value_name = "S")]
    pub heatmap_stride: Option<usize>,
    /// Dataset root (LaPa layout). It must exist: a root named here is never generated, even
    /// when the config sets data.generate_if_missing.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Landmarks to learn: `all` or 0-based indices such as 30,40,50,60,70.
    #[arg(long, value_parser = parse_points)]
    pub points: Option<PointSelection>,
    /// Images per training step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seeds the weights, the data order and every augmentation draw.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: cuda:N is the N-th GPU (builds with the `cuda` feature).
    #[arg(long, value_parser = device_parser())]
    pub device: Option<DeviceSpec>,
    /// Compute precision: f32, or bf16/f16 mixed precision (CUDA only; f32 master weights).
    #[arg(long, value_parser = precision_parser())]
    pub precision: Option<Precision>,
    /// Pretrained encoder weights: a local .pth/.safetensors file, or a Hugging Face hub name
    /// such as timm/resnet18.tv_in1k or timm/hrnet_w18.ms_aug_in1k (OWNER/NAME[:FILE][@REVISION];
    /// an existing path wins), downloaded into the Hugging Face cache on first use. "" starts
    /// from random weights.
    #[arg(long, value_parser = parse_weights, value_name = "FILE|OWNER/NAME")]
    pub pretrained: Option<WeightsSource>,
}

impl TrainOverrides {
    /// Writes the given values into `cfg`. A `--data` root must exist already (an error naming
    /// it otherwise): generation is switched off for it, so that a mistyped path is never
    /// filled with a synthetic dataset.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        // The command line asks for a new derivation: a stride or point count recorded in the
        // file (a run directory's config.toml) no longer binds.
        if let Some(s) = self.heatmap_stride {
            cfg.model.heatmap_stride = s;
            cfg.written.stride = None;
        }
        if let Some(a) = self.arch {
            cfg.model.arch = a;
            cfg.written.stride = None;
        }
        if let Some(d) = &self.data {
            if !d.exists() {
                return Err(Error::file(
                    d,
                    "dataset root (--data) does not exist; a root given on the command line is \
                     never generated (write one with `hmreg data synth --out DIR`)",
                ));
            }
            cfg.data.root = d.clone();
            cfg.data.generate_if_missing = false;
        }
        if let Some(p) = &self.points {
            cfg.data.points = p.clone();
            cfg.written.points = None;
        }
        if let Some(b) = self.batch_size {
            cfg.batch_size = b;
        }
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        if let Some(d) = self.device {
            cfg.device = d;
        }
        if let Some(p) = self.precision {
            cfg.precision = p;
        }
        if let Some(w) = &self.pretrained {
            cfg.init.pretrained = w.clone();
        }
        Ok(())
    }
}

/// Progress output: bars on stderr by default (`train`, `lr-find`).
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// No progress output.
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
    /// JSON on stdout and nothing else there (train: one object per epoch, then the summary).
    #[arg(long)]
    pub json: bool,
}

impl OutputArgs {
    pub fn mode(&self) -> OutputMode {
        if self.json {
            OutputMode::Json
        } else if self.quiet {
            OutputMode::Quiet
        } else {
            OutputMode::Bars
        }
    }
}
