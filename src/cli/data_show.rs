//! `hmreg data show`: a grid of augmented training images with their points and target heatmaps.

use std::path::PathBuf;

use candle_core::Device;
use clap::Args;

use super::args::parse_points;
use crate::data::show::show_grid;
use crate::data::{
    load_split, FilePoints, Loader, LoaderMode, LoaderSpec, PipelineConfig, PointSelection,
    TargetConfig,
};
use crate::{Error, Result};

/// Arguments of `hmreg data show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Dataset root holding the split folder (LaPa layout).
    pub dir: PathBuf,
    /// Split to draw from; `train` gets random crops and augmentation, others the validation
    /// transform.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// TOML file with `[pipeline]` and `[target]` tables and optionally `[data] points`
    /// (a training config works); recipe defaults otherwise.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Points to use ("all" or 0-based indices); default: the config's, else all.
    #[arg(long, value_parser = parse_points)]
    pub points: Option<PointSelection>,
    /// Number of samples.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Seed for the sample choice and the augmentation draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epoch whose draws to show.
    #[arg(long, default_value_t = 0)]
    pub epoch: usize,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
}

/// What the config file contributes.
struct ShowConfig {
    pipeline: PipelineConfig,
    target: TargetConfig,
    points: Option<PointSelection>,
}

fn read_config(path: Option<&PathBuf>) -> Result<ShowConfig> {
    let mut cfg = ShowConfig {
        pipeline: PipelineConfig::default(),
        target: TargetConfig::default(),
        points: None,
    };
    let Some(path) = path else { return Ok(cfg) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| toml_error(path, &text, e))?;
    if let Some(t) = table.get("pipeline") {
        cfg.pipeline = t.clone().try_into().map_err(|e: toml::de::Error| {
            Error::file(path, format!("[pipeline]: {}", e.message()))
        })?;
    }
    if let Some(t) = table.get("target") {
        cfg.target = t.clone().try_into().map_err(|e: toml::de::Error| {
            Error::file(path, format!("[target]: {}", e.message()))
        })?;
    }
    // The maps are as large as the model's output: input size / the model's heatmap stride.
    if let Some(m) = table.get("model") {
        let model: crate::models::ModelConfig = m
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| Error::file(path, format!("[model]: {}", e.message())))?;
        cfg.target.stride = model.stride();
    }
    if let Some(p) = table.get("data").and_then(|d| d.get("points")) {
        let sel: PointSelection = p.clone().try_into().map_err(|e: toml::de::Error| {
            Error::file(path, format!("[data] points: {}", e.message()))
        })?;
        cfg.points = Some(sel);
    }
    Ok(cfg)
}

/// A TOML error with the 1-based line it points at.
fn toml_error(path: &std::path::Path, text: &str, e: toml::de::Error) -> Error {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            Error::parse(path, line, e.message())
        }
        None => Error::file(path, e.message()),
    }
}

pub fn run(args: ShowArgs) -> Result<()> {
    if args.n == 0 {
        return Err(Error::config("--n must be at least 1"));
    }
    let cfg = read_config(args.config.as_ref())?;
    let points = match &args.points {
        Some(p) => p.clone(),
        None => cfg.points.clone().unwrap_or_default(),
    };
    let samples = load_split(&args.dir, &args.split, &points)?;
    let train = args.split == "train";
    let n_in_file = crate::data::read_landmarks(&samples[0].landmarks_path)?.len();
    let spec = LoaderSpec {
        pipeline: cfg.pipeline.clone(),
        target: cfg.target.clone(),
        batch_size: args.n,
        mode: if train {
            LoaderMode::Train
        } else {
            LoaderMode::Eval
        },
        seed: args.seed,
        file_points: Some(FilePoints {
            count: n_in_file,
            selection: points,
        }),
    };
    let loader = Loader::new(samples, &spec, &Device::Cpu)?;
    // The first batch of the epoch (or, for a split smaller than --n, every sample).
    let indices: Vec<usize> = match loader.epoch_batches(args.epoch).into_iter().next() {
        Some(b) => b,
        None => (0..loader.samples().len()).collect(),
    };
    let picture = show_grid(&loader, &indices, args.epoch, &cfg.pipeline.normalize)?;
    crate::viz::save_png(&picture, &args.out)?;
    println!(
        "{}: {} samples of {}/{} ({} points, {} targets on {}x{} maps)",
        args.out.display(),
        indices.len(),
        args.dir.display(),
        args.split,
        loader.n_points(),
        cfg.target.encoder,
        loader.map_size(),
        loader.map_size()
    );
    Ok(())
}
