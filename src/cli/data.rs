//! `hmreg data`: `check` a dataset, `synth`esise one, `show` augmented training samples.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_PROBLEMS, EXIT_USAGE};
use crate::data::check::{check_dataset_with, CheckOptions};
use crate::data::synth::{generate, SynthConfig};
use crate::data::{PointSelection, SPLITS};

/// Check, generate and show datasets.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Validate a LaPa-layout dataset and print statistics and every problem found.
    Check(CheckArgs),
    /// Write a synthetic LaPa-layout dataset of faces with 68 iBUG-ordered landmarks.
    Synth(SynthArgs),
    /// Draw a grid of augmented training samples with their points and target heatmaps.
    Show(super::data_show::ShowArgs),
}

/// Arguments of `hmreg data check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Dataset root holding train/, val/ and/or test/ (each with images/ and landmarks/).
    pub dir: PathBuf,
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

fn parse_points(s: &str) -> Result<PointSelection, String> {
    s.parse().map_err(|e: crate::Error| e.to_string())
}

pub fn run(args: DataArgs) -> i32 {
    match args.command {
        DataCommand::Check(a) => run_check(a),
        DataCommand::Synth(a) => run_synth(a),
        DataCommand::Show(a) => super::data_show::run(a),
    }
}

fn run_check(args: CheckArgs) -> i32 {
    if !args.dir.is_dir() {
        eprintln!(
            "hmreg data check: {}: not a directory (expected a dataset root with train/, val/ or test/)",
            args.dir.display()
        );
        return EXIT_USAGE;
    }
    let opts = CheckOptions {
        selection: args.points,
        decode_images: !args.headers_only,
    };
    let report = check_dataset_with(&args.dir, &opts);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("hmreg data check: cannot write JSON: {e}");
                return EXIT_PROBLEMS;
            }
        }
    } else {
        print!("{}", report.to_text());
    }
    if report.is_clean() {
        0
    } else {
        EXIT_PROBLEMS
    }
}

fn run_synth(args: SynthArgs) -> i32 {
    let cfg = SynthConfig {
        train: args.train,
        val: args.val,
        test: args.test,
        size: args.size,
        seed: args.seed,
    };
    if let Err(e) = cfg.validate() {
        eprintln!("hmreg data synth: {e}");
        return EXIT_USAGE;
    }
    // Old files with other names would silently join the new dataset: refuse unless --force.
    let existing: Vec<PathBuf> = SPLITS
        .iter()
        .map(|s| args.out.join(s))
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() {
        if !args.force {
            eprintln!(
                "hmreg data synth: {} already exists; use another --out or --force to replace it",
                existing[0].display()
            );
            return EXIT_USAGE;
        }
        for p in &existing {
            if let Err(e) = std::fs::remove_dir_all(p) {
                eprintln!("hmreg data synth: {}: cannot remove: {e}", p.display());
                return EXIT_PROBLEMS;
            }
        }
    }
    let start = std::time::Instant::now();
    match generate(&args.out, &cfg) {
        Ok(()) => {
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
            0
        }
        Err(e) => {
            eprintln!("hmreg data synth: {e}");
            EXIT_PROBLEMS
        }
    }
}
