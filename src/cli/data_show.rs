//! `hmreg data show`: a grid of augmented training images with their points and target heatmaps.

use std::path::PathBuf;

use candle_core::Device;
use clap::Args;

use super::args::parse_points;
use crate::data::loading::show::show_grid;
use crate::data::sources::coco::{is_coco_split, load_coco};
use crate::data::{
    load_split, FilePoints, Loader, LoaderMode, LoaderSpec, PipelineConfig, PointSelection,
    TargetConfig,
};
use crate::stdout;
use crate::{Error, Result};

/// Arguments of `hmreg data show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Dataset roots holding the split folder (LaPa layout), or COCO keypoint files (`.json`):
    /// one, or every source of a mixed run (one block of rows per source).
    #[arg(required = true, value_name = "DIR|FILE.json")]
    pub dirs: Vec<PathBuf>,
    /// Split to draw from (of each root; a COCO file is its own split); `train` gets random
    /// crops and augmentation, others the validation transform.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// TOML file with `[pipeline]` and `[target]` tables and optionally `[data] points`
    /// (a training config works); recipe defaults otherwise.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Points to use ("all" or 0-based indices); default: the config's, else all.
    #[arg(long, value_parser = parse_points)]
    pub points: Option<PointSelection>,
    /// Number of samples per source.
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
    let train = args.split == "train";
    let mut blocks = Vec::with_capacity(args.dirs.len());
    for dir in &args.dirs {
        let (samples, name) = if is_coco_split(&dir.to_string_lossy()) && dir.is_file() {
            (load_coco(dir, &points)?, dir.display().to_string())
        } else {
            (
                load_split(dir, &args.split, &points)?,
                format!("{}/{}", dir.display(), args.split),
            )
        };
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
                count: samples[0].file_points,
                selection: points.clone(),
            }),
        };
        let loader = Loader::new(samples, &spec, &Device::Cpu)?;
        // The first batch of the epoch (or, for a split smaller than --n, every sample).
        let indices: Vec<usize> = match loader.epoch_batches(args.epoch).into_iter().next() {
            Some(b) => b,
            None => (0..loader.samples().len()).collect(),
        };
        blocks.push(show_grid(
            &loader,
            &indices,
            args.epoch,
            &cfg.pipeline.normalize,
        )?);
        stdout::line(format_args!(
            "{} samples of {name} ({} points, {} targets on {}x{} maps)",
            indices.len(),
            loader.n_points(),
            cfg.target.encoder,
            loader.map_size(),
            loader.map_size()
        ))?;
    }
    crate::viz::save_png(&stack_vertically(&blocks), &args.out)?;
    stdout::line(format_args!("wrote {}", args.out.display()))?;
    Ok(())
}

/// The pictures one under the other, left-aligned on white.
fn stack_vertically(parts: &[image::RgbImage]) -> image::RgbImage {
    let w = parts.iter().map(|p| p.width()).max().unwrap_or(1);
    let h = parts.iter().map(|p| p.height()).sum::<u32>().max(1);
    let mut out = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let mut y = 0;
    for p in parts {
        image::imageops::replace(&mut out, p, 0, y as i64);
        y += p.height();
    }
    out
}
