//! `hmreg experiment rounding trained`: the trained grid, its progress and its files.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{method_parser, TrainOverrides};
use crate::atomic::write_atomic;
use crate::experiment::trained::{self, Cell, GridConfig, Method};
use crate::experiment::trained_report::{self, TrainedReport};
use crate::run::TrainConfig;
use crate::stdout;
use crate::train::progress::OutputMode;
use crate::{Error, Result};

/// `hmreg experiment rounding trained`: the experiment config and the command-line values
/// that replace its own (each given flag replaces the config's value, so none has a default
/// here: the config's is the default).
#[derive(Args, Debug, Clone)]
pub struct TrainedArgs {
    /// The experiment config: a training config plus a [rounding] table (see
    /// configs/rounding-300w.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Dataset root (LaPa layout) instead of the config's; it must exist.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Folder of the results (trained.md, .json, .csv, .png); the cells are run directories
    /// under it (default: runs/rounding-<config name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Square heatmap sizes (default: the config's [rounding] sizes).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Methods (default: the config's [rounding] methods).
    #[arg(long, value_delimiter = ',', value_parser = method_parser())]
    pub methods: Option<Vec<Method>>,
    /// Training seeds, one cell per seed.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Epochs of every cell.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Gaussian sigma in heatmap pixels, DARK smooths with it too.
    #[arg(long)]
    pub sigma: Option<f32>,
    /// k of the top-k softmax decoder.
    #[arg(long)]
    pub k: Option<usize>,
    /// BCE pos_weight of the one-channel binary methods.
    #[arg(long)]
    pub pos_weight: Option<f64>,
    /// No progress bars, only one line per cell.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: &TrainedArgs) -> Result<()> {
    let path = &a.config;
    let (mut base, mut grid) = trained::load_config(path)?;
    apply_overrides(a, &mut base, &mut grid)?;
    grid.validate(&base)?;
    let out = a.out.clone().unwrap_or_else(|| default_out(path));
    std::fs::create_dir_all(&out).map_err(|e| Error::file(&out, format!("cannot create: {e}")))?;
    write_atomic(
        &out.join(trained::EXPERIMENT_TOML),
        trained::config_toml(&base, &grid)?.as_bytes(),
    )?;

    let progress = |i: usize, n: usize, cell: &Cell, what: &str, eta: Option<f64>| {
        let eta = eta.map_or_else(
            || "grid ETA after the first trained cell".to_string(),
            |s| format!("grid ETA {}", hms(s)),
        );
        eprintln!("[cell {}/{n}] {cell}: {what} ({eta})", i + 1);
    };
    let output = if a.quiet {
        OutputMode::Quiet
    } else {
        OutputMode::Bars
    };
    let cells = trained::run_grid(&base, &grid, &out, output, &progress)?;
    eprintln!("quantization floors on the validation points");
    let floors = trained::floors(&base, &grid, &out)?;
    let report = TrainedReport::new(&base, grid, cells, floors);
    trained_report::write_all(&report, &out)?;
    stdout::text(trained_report::markdown(&report))?;
    eprintln!(
        "wrote {}/{{{}, {}, {}, {}}}",
        out.display(),
        trained_report::MD_FILE,
        trained_report::JSON_FILE,
        trained_report::CSV_FILE,
        trained_report::PNG_FILE
    );
    Ok(())
}

fn apply_overrides(a: &TrainedArgs, base: &mut TrainConfig, grid: &mut GridConfig) -> Result<()> {
    TrainOverrides {
        data: a.data.clone(),
        ..Default::default()
    }
    .apply(base)?;
    if let Some(e) = a.epochs {
        base.epochs = e;
    }
    if let Some(s) = &a.sizes {
        grid.sizes = s.clone();
    }
    if let Some(m) = &a.methods {
        grid.methods = m.clone();
    }
    if let Some(s) = &a.seeds {
        grid.seeds = s.clone();
    }
    if let Some(s) = a.sigma {
        grid.params.sigma = s;
    }
    if let Some(k) = a.k {
        grid.params.k = k;
    }
    if let Some(p) = a.pos_weight {
        grid.params.pos_weight = p;
    }
    Ok(())
}

/// `runs/rounding-<config stem>`.
fn default_out(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("grid");
    PathBuf::from("runs").join(format!("rounding-{}", stem.trim_start_matches("rounding-")))
}

fn hms(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
}
