//! `hmreg data`: `check` a dataset, `synth`esise one, `show` augmented training samples.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::args::parse_points;
use crate::data::checks::coco::check_coco;
use crate::data::checks::lapa::{check_dataset_with, CheckOptions};
use crate::data::sources::coco::is_coco_split;
use crate::data::synthesis::generate::{generate, SynthConfig};
use crate::data::{PointSelection, SPLITS};
use crate::stdout;
use crate::{Error, Result};

/// Check, generate and show datasets.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Validate LaPa-layout datasets or COCO keypoint files and print statistics and every
    /// problem found.
    Check(CheckArgs),
    /// Write a synthetic LaPa-layout dataset of faces with 68 iBUG-ordered landmarks.
    Synth(SynthArgs),
    /// Draw a grid of augmented training samples with their points and target heatmaps.
    Show(super::data_show::ShowArgs),
}

/// Arguments of `hmreg data check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Dataset roots holding train/, val/ and/or test/ (each with images/ and landmarks/), or
    /// COCO keypoint files (`.json`): one, or every source of a mixed run.
    #[arg(required = true, value_name = "DIR|FILE.json")]
    pub dirs: Vec<PathBuf>,
    /// Print the report as one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also check that these 0-based point indices exist in every file ("all" or e.g. 30,40,50).
    #[arg(long, value_parser = parse_points)]
    pub points: Option<PointSelection>,
    /// Read image headers only (fast; does not detect truncated or corrupt pixel data).
    #[arg(long)]
    pub headers_only: bool,
}

/// Arguments of `hmreg data synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Training images.
    #[arg(long, default_value_t = SynthConfig::default().train)]
    pub train: usize,
    /// Validation images.
    #[arg(long, default_value_t = SynthConfig::default().val)]
    pub val: usize,
    /// Test images.
    #[arg(long, default_value_t = SynthConfig::default().test)]
    pub test: usize,
    /// Side of the square images in pixels.
    #[arg(long, default_value_t = SynthConfig::default().size)]
    pub size: u32,
    /// Random seed: the same seed writes byte-identical files.
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    pub seed: u64,
    /// Delete existing train/, val/ and test/ folders under --out first.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Check(a) => run_check(a),
        DataCommand::Synth(a) => run_synth(a),
        DataCommand::Show(a) => super::data_show::run(a),
    }
}

/// Prints the report; a dataset with problems is [`Error::Problems`] (exit 1).
fn run_check(args: CheckArgs) -> Result<()> {
    let is_coco = |d: &PathBuf| is_coco_split(&d.to_string_lossy()) && d.is_file();
    if let Some(d) = args.dirs.iter().find(|d| !d.is_dir() && !is_coco(d)) {
        return Err(Error::config(format!(
            "{}: neither a directory (a dataset root with train/, val/ or test/) nor a COCO \
             keypoint file (.json)",
            d.display()
        )));
    }
    let opts = CheckOptions {
        selection: args.points,
        decode_images: !args.headers_only,
    };
    let reports: Vec<_> = args
        .dirs
        .iter()
        .map(|d| {
            if is_coco(d) {
                check_coco(d, &opts)
            } else {
                check_dataset_with(d, &opts)
            }
        })
        .collect();
    if args.json {
        let s = if let [one] = reports.as_slice() {
            serde_json::to_string_pretty(one)
        } else {
            serde_json::to_string_pretty(&reports)
        }?;
        stdout::line(s)?;
    } else {
        for r in &reports {
            stdout::text(r.to_text())?;
        }
    }
    let dirty: Vec<String> = reports
        .iter()
        .zip(&args.dirs)
        .filter(|(r, _)| !r.is_clean())
        .map(|(r, d)| {
            let n = r.problems.len();
            format!(
                "{n} problem{} in {}",
                if n == 1 { "" } else { "s" },
                d.display()
            )
        })
        .collect();
    if dirty.is_empty() {
        Ok(())
    } else {
        Err(Error::Problems(format!("found {}", dirty.join("; "))))
    }
}

fn run_synth(args: SynthArgs) -> Result<()> {
    let cfg = SynthConfig {
        train: args.train,
        val: args.val,
        test: args.test,
        size: args.size,
        seed: args.seed,
    };
    cfg.validate()?;
    // Old files with other names would silently join the new dataset: refuse unless --force.
    let existing: Vec<PathBuf> = SPLITS
        .iter()
        .map(|s| args.out.join(s))
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() {
        if !args.force {
            return Err(Error::config(format!(
                "{} already exists; use another --out or --force to replace it",
                existing[0].display()
            )));
        }
        for p in &existing {
            std::fs::remove_dir_all(p)
                .map_err(|e| Error::file(p, format!("cannot remove: {e}")))?;
        }
    }
    let start = std::time::Instant::now();
    generate(&args.out, &cfg)?;
    eprintln!(
        "wrote {} train, {} val, {} test images ({}x{} px, seed {}) to {} in {:.1} s",
        cfg.train,
        cfg.val,
        cfg.test,
        cfg.size,
        cfg.size,
        cfg.seed,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
