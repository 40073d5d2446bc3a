//! `hmreg experiment`: reproductions (the randomized-rounding experiment).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use rayon::prelude::*;

use super::experiment_trained::GridRequest;
use crate::data::sources::dataset::{load_split, present_splits};
use crate::data::sources::image_io::image_size;
use crate::data::sources::points::PointSelection;
use crate::experiment::rounding::{self, MonteCarloConfig, QuantizationConfig, QuantizationReport};
use crate::metrics::{MetricConfig, NmeNorm};
use crate::stdout;
use crate::viz::plot::{LinePlot, Series};
use crate::{Error, Keypoints, Result};

/// Experiments.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    #[command(subcommand)]
    pub experiment: Experiment,
}

#[derive(Subcommand, Debug)]
pub enum Experiment {
    /// Randomized rounding (Yu and Tao 2021): Monte-Carlo check of one point, and the
    /// quantization error of every encoder/decoder pair per heatmap size on a dataset.
    Rounding(RoundingArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The write-up's point (163, 1342) encoded many times: mean against the exact position.
    Montecarlo,
    /// Every landmark of a dataset encoded and decoded per heatmap size.
    Quantization,
    /// One training run per (method, heatmap size, seed) from --config, evaluated on its
    /// validation split; rerunning skips finished cells and resumes interrupted ones.
    Trained,
}

#[derive(Args, Debug)]
pub struct RoundingArgs {
    #[arg(long, value_enum, ignore_case = true)]
    pub part: Part,
    /// Draws: for montecarlo the draws of the mean (default 2000); for quantization the
    /// randomized-rounding draws per point and size (default 10).
    #[arg(long)]
    pub draws: Option<usize>,
    /// Print JSON instead of markdown.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Montecarlo: trials per draw count for the spread of the mean.
    #[arg(long, default_value_t = 200)]
    pub trials: usize,
    /// Montecarlo: draw counts for the spread of the mean.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    pub spread: Vec<usize>,
    /// Quantization: a dataset root (LaPa layout) or one split folder of it.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Quantization: square input size the images are squished to.
    #[arg(long, default_value_t = 256)]
    pub input: usize,
    /// Square heatmap sizes (quantization default 128,64,32,16,8; trained: the config's
    /// [rounding] sizes, default 32,16,8).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Quantization: only this split (default: every split present).
    #[arg(long)]
    pub split: Option<String>,
    /// Quantization: landmark selection, `all` or indices like `30,40,50`.
    #[arg(long, default_value = "all")]
    pub points: String,
    /// Folder for the PNG plot and the JSON/markdown (and trained: CSV) results; trained cells
    /// are run directories under it (default for trained: runs/rounding-<config name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Gaussian sigma in heatmap pixels, DARK smooths with it too (quantization default 2;
    /// trained: the config's [rounding] sigma, default 1.5).
    #[arg(long)]
    pub sigma: Option<f32>,
    /// k of the top-k softmax decoder (default 9).
    #[arg(long)]
    pub k: Option<usize>,
    /// Trained: the experiment config (a training config plus a [rounding] table, see
    /// configs/rounding-300w.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Trained: methods, any of vanilla, binary-round, writeup-rr, paper-rr, subpixel-dark.
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Trained: training seeds, one cell per seed.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Trained: epochs of every cell.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Trained: BCE pos_weight of the one-channel binary methods.
    #[arg(long)]
    pub pos_weight: Option<f64>,
    /// Trained: no progress bars, only one line per cell.
    #[arg(long)]
    pub quiet: bool,
    /// Quantization: NME normaliser, `auto` (36,45 for 68 points, 66,79 for 106, box
    /// diagonal otherwise), `box` or a pair like `36,45`.
    #[arg(long, default_value = "auto")]
    pub norm: String,
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    match args.experiment {
        Experiment::Rounding(a) => match a.part {
            Part::Montecarlo => run_montecarlo(&a),
            Part::Quantization => run_quantization(&a),
            Part::Trained => super::experiment_trained::run(&GridRequest {
                config: a.config,
                data: a.data,
                out: a.out,
                sizes: a.sizes,
                methods: a.methods,
                seeds: a.seeds,
                epochs: a.epochs,
                sigma: a.sigma,
                k: a.k,
                pos_weight: a.pos_weight,
                quiet: a.quiet,
            }),
        },
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
}

fn run_montecarlo(a: &RoundingArgs) -> Result<()> {
    let cfg = MonteCarloConfig {
        draws: a.draws.unwrap_or(2000),
        seed: a.seed,
        spread_draws: a.spread.clone(),
        trials: a.trials,
    };
    let report = rounding::montecarlo(&cfg)?;
    if a.json {
        stdout::line(to_json(&report)?)?;
    } else {
        stdout::text(rounding::montecarlo_markdown(&report))?;
    }
    Ok(())
}

fn run_quantization(a: &RoundingArgs) -> Result<()> {
    let data = a
        .data
        .as_ref()
        .ok_or_else(|| Error::config("--part quantization needs --data DIR"))?;
    let norm: NmeNorm = a.norm.parse()?;
    let cfg = QuantizationConfig {
        input: a.input,
        sizes: a.sizes.clone().unwrap_or_else(|| vec![128, 64, 32, 16, 8]),
        draws: a.draws.unwrap_or(10),
        sigma: a.sigma.unwrap_or(2.0),
        k: a.k.unwrap_or(9),
        seed: a.seed,
        metric: MetricConfig {
            norm,
            ..MetricConfig::default()
        },
    };
    cfg.validate()?;
    let samples = load_input_points(data, a.split.as_deref(), &a.points, a.input)?;
    let bar = crate::progress::bar(samples.len() as u64, "quantization", true);
    let report = rounding::quantization(&samples, &cfg, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let md = rounding::quantization_markdown(&report);
    if a.json {
        stdout::line(to_json(&report)?)?;
    } else {
        stdout::text(&md)?;
    }
    if let Some(out) = &a.out {
        let write =
            |name: &str, text: &str| crate::atomic::write_atomic(&out.join(name), text.as_bytes());
        write("quantization.json", &to_json(&report)?)?;
        write("quantization.md", &md)?;
        let png = out.join("quantization.png");
        save_plot(&report, &png)?;
        eprintln!("wrote {}", png.display());
    }
    Ok(())
}

/// Ground-truth points of every image in input pixels: each image squished to `input x input`
/// (only the image size and the points matter; no pixels are decoded). `data` is a dataset root
/// (every split present, or `split`) or one split folder (holding `landmarks/`).
fn load_input_points(
    data: &Path,
    split: Option<&str>,
    points: &str,
    input: usize,
) -> Result<Vec<Keypoints>> {
    let selection: PointSelection = points.parse()?;
    let (root, splits) = if data.join("landmarks").is_dir() {
        let name = data
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::file(data, "cannot name this split folder"))?;
        if let Some(s) = split {
            if s != name {
                return Err(Error::config(format!(
                    "--split {s} given, but --data {} is the split folder {name:?}",
                    data.display()
                )));
            }
        }
        let parent = data.parent().unwrap_or_else(|| Path::new("."));
        (parent.to_path_buf(), vec![name.to_string()])
    } else {
        let splits = match split {
            Some(s) => vec![s.to_string()],
            None => present_splits(data),
        };
        if splits.is_empty() {
            return Err(Error::file(
                data,
                "no split folders (train, val, test) and no landmarks/ folder here",
            ));
        }
        (data.to_path_buf(), splits)
    };
    let mut out = Vec::new();
    for s in &splits {
        let samples = load_split(&root, s, &selection)?;
        let sized: Vec<Result<Keypoints>> = samples
            .par_iter()
            .map(|sm| {
                let (w, h) = image_size(&sm.image_path)?;
                let (sx, sy) = (input as f32 / w as f32, input as f32 / h as f32);
                Ok(sm.points.scaled(sx, sy))
            })
            .collect();
        for k in sized {
            out.push(k?);
        }
    }
    if let Some(first) = out.first() {
        let l = first.len();
        if out.iter().any(|k| k.len() != l) {
            return Err(Error::file(
                data,
                "splits have different point counts; choose one with --split or --points",
            ));
        }
    }
    Ok(out)
}

/// NME against heatmap size, one series per pair (log-log: errors scale like 1/size).
fn save_plot(report: &QuantizationReport, path: &Path) -> Result<()> {
    let k = report.config.k;
    let series = rounding::Pair::ALL
        .iter()
        .map(|&pair| {
            let points = report
                .rows
                .iter()
                .filter(|q| q.pair == pair)
                .map(|q| (q.size as f64, q.nme as f64 * 100.0))
                .collect();
            Series::new(pair.label(k), points)
        })
        .collect();
    LinePlot {
        title: format!(
            "Target quantization, {} images, input {}x{}",
            report.images, report.config.input, report.config.input
        ),
        x_label: "heatmap size (px)".into(),
        y_label: "NME vs float ground truth (%)".into(),
        log_x: true,
        log_y: true,
        series,
        x_ticks: report.config.sizes.iter().map(|&s| s as f64).collect(),
    }
    .save_png(path)
}
