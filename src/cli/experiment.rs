//! `hmreg experiment`: reproductions. `hmreg experiment rounding PART` runs one part of the
//! randomized-rounding experiment; each part is a subcommand with only its own flags and
//! defaults, and the work itself lives in [`crate::experiment`].

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::args::parse_points;
use super::experiment_trained::TrainedArgs;
use crate::data::sources::points::PointSelection;
use crate::experiment::input_points::load_input_points;
use crate::experiment::quantization_files;
use crate::experiment::rounding::{self, MonteCarloConfig, QuantizationConfig};
use crate::metrics::{MetricConfig, NmeNorm};
use crate::stdout;
use crate::Result;

/// Experiments.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    #[command(subcommand)]
    pub experiment: Experiment,
}

#[derive(Subcommand, Debug)]
pub enum Experiment {
    /// Randomized rounding (Yu and Tao 2021): Monte-Carlo check of one point, the quantization
    /// error of every encoder/decoder pair per heatmap size on a dataset, and trained models.
    Rounding(RoundingArgs),
}

#[derive(Args, Debug)]
pub struct RoundingArgs {
    #[command(subcommand)]
    pub part: RoundingPart,
}

#[derive(Subcommand, Debug)]
pub enum RoundingPart {
    /// The write-up's point (163, 1342) encoded many times: mean against the exact position.
    Montecarlo(MonteCarloArgs),
    /// Every landmark of a dataset encoded and decoded per heatmap size.
    Quantization(QuantizationArgs),
    /// One training run per (method, heatmap size, seed) from --config, evaluated on its
    /// validation split; rerunning skips finished cells and resumes interrupted ones.
    Trained(TrainedArgs),
}

#[derive(Args, Debug)]
pub struct MonteCarloArgs {
    /// Draws of the mean.
    #[arg(long, default_value_t = 2000)]
    pub draws: usize,
    /// Trials per draw count for the spread of the mean.
    #[arg(long, default_value_t = 200)]
    pub trials: usize,
    /// Draw counts for the spread of the mean.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    pub spread: Vec<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of markdown.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct QuantizationArgs {
    /// A dataset root (LaPa layout) or one split folder of it.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Only this split (default: every split present).
    #[arg(long)]
    pub split: Option<String>,
    /// Landmark selection, `all` or 0-based indices like `30,40,50`.
    #[arg(long, value_parser = parse_points, default_value = "all")]
    pub points: PointSelection,
    /// Square input size the images are squished to.
    #[arg(long, default_value_t = 256)]
    pub input: usize,
    /// Square heatmap sizes.
    #[arg(long, value_delimiter = ',', default_value = "128,64,32,16,8")]
    pub sizes: Vec<usize>,
    /// Randomized-rounding draws per point and size.
    #[arg(long, default_value_t = 10)]
    pub draws: usize,
    /// Gaussian sigma in heatmap pixels (DARK smooths with it too).
    #[arg(long, default_value_t = 2.0)]
    pub sigma: f32,
    /// k of the top-k softmax decoder.
    #[arg(long, default_value_t = 9)]
    pub k: usize,
    /// NME normaliser, `auto` (36,45 for 68 points, 66,79 for 106, box diagonal otherwise),
    /// `box` or a pair like `36,45`.
    #[arg(long, value_parser = parse_norm, default_value = "auto")]
    pub norm: NmeNorm,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Folder for quantization.json, quantization.md and the plot quantization.png.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `--norm`: [`NmeNorm`]'s names, as the configs' `metric.norm` reads them.
fn parse_norm(s: &str) -> Result<NmeNorm> {
    s.parse()
}

pub fn run(args: ExperimentArgs) -> Result<()> {
    match args.experiment {
        Experiment::Rounding(a) => match a.part {
            RoundingPart::Montecarlo(a) => run_montecarlo(&a),
            RoundingPart::Quantization(a) => run_quantization(&a),
            RoundingPart::Trained(a) => super::experiment_trained::run(&a),
        },
    }
}

fn run_montecarlo(a: &MonteCarloArgs) -> Result<()> {
    let cfg = MonteCarloConfig {
        draws: a.draws,
        seed: a.seed,
        spread_draws: a.spread.clone(),
        trials: a.trials,
    };
    let report = rounding::montecarlo(&cfg)?;
    if a.json {
        stdout::line(serde_json::to_string_pretty(&report)?)?;
    } else {
        stdout::text(rounding::montecarlo_markdown(&report))?;
    }
    Ok(())
}

fn run_quantization(a: &QuantizationArgs) -> Result<()> {
    let cfg = QuantizationConfig {
        input: a.input,
        sizes: a.sizes.clone(),
        draws: a.draws,
        sigma: a.sigma,
        k: a.k,
        seed: a.seed,
        metric: MetricConfig {
            norm: a.norm,
            ..MetricConfig::default()
        },
    };
    // Bad settings are refused before the dataset is read.
    cfg.validate()?;
    let samples = load_input_points(&a.data, a.split.as_deref(), &a.points, a.input)?;
    let bar = crate::progress::bar(samples.len() as u64, "quantization", true);
    let report = rounding::quantization(&samples, &cfg, &|| bar.inc(1))?;
    bar.finish_and_clear();
    if a.json {
        stdout::line(quantization_files::json(&report)?)?;
    } else {
        stdout::text(rounding::quantization_markdown(&report))?;
    }
    if let Some(out) = &a.out {
        quantization_files::write_all(&report, out)?;
        eprintln!("wrote {}", out.join(quantization_files::PNG_FILE).display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn part(args: &[&str]) -> RoundingPart {
        let cli = Cli::try_parse_from(["hmreg", "experiment", "rounding"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let Command::Experiment(ExperimentArgs {
            experiment: Experiment::Rounding(r),
        }) = cli.command
        else {
            panic!("experiment rounding")
        };
        r.part
    }

    #[test]
    fn each_part_has_its_own_defaults() {
        let RoundingPart::Montecarlo(m) = part(&["montecarlo"]) else {
            panic!("montecarlo")
        };
        assert_eq!((m.draws, m.trials, m.seed), (2000, 200, 0));
        assert_eq!(m.spread, [10, 100, 1000, 10000]);
        let RoundingPart::Quantization(q) = part(&["quantization", "--data", "d"]) else {
            panic!("quantization")
        };
        assert_eq!((q.draws, q.input, q.k, q.sigma), (10, 256, 9, 2.0));
        assert_eq!(q.sizes, [128, 64, 32, 16, 8]);
        assert_eq!(q.points, PointSelection::All);
        assert_eq!(q.norm, NmeNorm::Auto);
    }

    #[test]
    fn typed_values_are_parsed_by_clap_and_flags_of_other_parts_are_refused() {
        let RoundingPart::Quantization(q) = part(&[
            "quantization",
            "--data",
            "d",
            "--points",
            "30,36",
            "--norm",
            "36,45",
        ]) else {
            panic!("quantization")
        };
        assert_eq!(q.points, "30,36".parse::<PointSelection>().unwrap());
        assert_eq!(q.norm, "36,45".parse::<NmeNorm>().unwrap());
        for bad in [
            &["quantization"][..],                                 // --data is required
            &["quantization", "--data", "d", "--points", "x"][..], // not an index
            &["quantization", "--data", "d", "--norm", "eyes"][..],
            &["montecarlo", "--data", "d"][..], // a quantization flag
            &["montecarlo", "--config", "c.toml"][..], // a trained flag
            &["trained"][..],                   // --config is required
            &["trained", "--config", "c.toml", "--methods", "nope"][..],
            &["--part", "montecarlo"][..], // the old spelling
        ] {
            let args = ["hmreg", "experiment", "rounding"].iter().chain(bad);
            let e = Cli::try_parse_from(args).unwrap_err();
            assert!(e.use_stderr(), "{bad:?}");
        }
    }
}
