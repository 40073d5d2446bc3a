//! The `hmreg` command line: one file per subcommand, argument groups shared between them in
//! [`args`]. Each subcommand's `run` returns a [`crate::Result`]; [`main`] alone prints the error
//! (`hmreg <command>: <error>`) and maps it to the exit code ([`crate::Error::exit_code`]).

use clap::{Parser, Subcommand};

pub use crate::error::{EXIT_PROBLEMS, EXIT_USAGE};

pub mod align;
pub mod args;
pub mod data;
pub mod data_show;
pub mod eval;
pub mod experiment;
pub mod experiment_trained;
pub mod export;
pub mod lr_find;
pub mod predict;
pub mod runs;
pub mod summary;
pub mod track;
pub mod train;

#[derive(Parser, Debug)]
#[command(
    name = "hmreg",
    version,
    about = "Heatmap-based keypoint regression: datasets, training, evaluation, prediction"
)]
pub struct Cli {
    /// CPU threads for all tensor work (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check, generate and show LaPa-style datasets.
    Data(data::DataArgs),
    /// Print a model's layers, output shapes and parameter counts.
    Summary(summary::SummaryArgs),
    /// Train a model from a TOML config with command-line overrides.
    Train(train::TrainArgs),
    /// Sweep the learning rate exponentially and suggest one.
    LrFind(lr_find::LrFindArgs),
    /// Evaluate a trained model on a dataset split.
    Eval(eval::EvalArgs),
    /// Predict landmarks on images.
    Predict(predict::PredictArgs),
    /// Follow faces through a sequence of frames (a folder, an animated GIF, a list).
    Track(track::TrackArgs),
    /// Align a photo series onto one face; aligned frames, contact sheet, animated GIF.
    Align(align::AlignArgs),
    /// Reproduce experiments (randomized rounding).
    Experiment(experiment::ExperimentArgs),
    /// Compare runs: one table of their figures and of the settings in which they differ.
    Runs(runs::RunsArgs),
    /// Write a trained model as an ONNX file (heatmaps, optionally decoded points).
    Export(export::ExportArgs),
}

impl Command {
    /// The command as typed, subcommand included (`data check`), for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Data(a) => match a.command {
                data::DataCommand::Check(_) => "data check",
                data::DataCommand::Synth(_) => "data synth",
                data::DataCommand::Show(_) => "data show",
            },
            Command::Summary(_) => "summary",
            Command::Train(_) => "train",
            Command::LrFind(_) => "lr-find",
            Command::Eval(_) => "eval",
            Command::Predict(_) => "predict",
            Command::Track(_) => "track",
            Command::Align(_) => "align",
            Command::Experiment(a) => match &a.experiment {
                experiment::Experiment::Rounding(r) => match r.part {
                    experiment::RoundingPart::Montecarlo(_) => "experiment rounding montecarlo",
                    experiment::RoundingPart::Quantization(_) => "experiment rounding quantization",
                    experiment::RoundingPart::Trained(_) => "experiment rounding trained",
                },
            },
            Command::Runs(_) => "runs",
            Command::Export(_) => "export",
        }
    }

    /// Runs the command.
    pub fn run(self) -> crate::Result<()> {
        match self {
            Command::Data(a) => data::run(a),
            Command::Summary(a) => summary::run(a),
            Command::Train(a) => train::run(a),
            Command::LrFind(a) => lr_find::run(a),
            Command::Eval(a) => eval::run(a),
            Command::Predict(a) => predict::run(a),
            Command::Track(a) => track::run(a),
            Command::Align(a) => align::run(a),
            Command::Experiment(a) => experiment::run(a),
            Command::Runs(a) => runs::run(a),
            Command::Export(a) => export::run(a),
        }
    }
}

/// Parses the command line, runs the command and returns the process exit code: 0 on success,
/// clap's 2 for a malformed command line, else the error's [`crate::Error::exit_code`] after
/// printing `hmreg <command>: <error>` on stderr.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let threads = cli
        .threads
        .unwrap_or_else(crate::ops::threads::default_threads);
    if let Err(e) = crate::ops::threads::set_threads(threads) {
        eprintln!("hmreg: --threads: {e}");
        return EXIT_USAGE;
    }
    let name = cli.command.name();
    match cli.command.run() {
        Ok(()) | Err(crate::Error::StdoutClosed) => 0,
        Err(e) => {
            eprintln!("hmreg {name}: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // Duplicate ids, bad `requires`/`conflicts_with` targets, groups naming missing args.
        Cli::command().debug_assert();
    }

    #[test]
    fn shared_groups_parse_the_same_everywhere() {
        let cli = Cli::try_parse_from([
            "hmreg",
            "eval",
            "--run",
            "r",
            "--decoder",
            "TopK:5",
            "--device",
            "CUDA:1",
        ])
        .unwrap();
        let Command::Eval(a) = cli.command else {
            panic!("eval")
        };
        assert_eq!(
            a.decoding.decoder,
            Some(crate::codec::Decoder::TopK { k: 5 })
        );
        assert_eq!(a.device, crate::device::DeviceSpec::Cuda(1));
        let cli = Cli::try_parse_from([
            "hmreg",
            "lr-find",
            "--config",
            "c.toml",
            "--arch",
            "UNET-resnet18",
            "--points",
            "All",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.command.name(), "lr-find");
        let Command::LrFind(a) = cli.command else {
            panic!("lr-find")
        };
        assert_eq!(a.overrides.arch, Some(crate::models::Arch::UnetResnet18));
        assert_eq!(a.output.mode(), crate::train::progress::OutputMode::Json);
        // --quiet and --json exclude each other; --bbox and --no-detect too.
        for bad in [
            vec!["hmreg", "train", "--quiet", "--json"],
            vec![
                "hmreg",
                "predict",
                "--no-detect",
                "--bbox",
                "1,2,3,4",
                "a.png",
            ],
            vec!["hmreg", "eval", "--run", "r", "--config", "c.toml"],
            vec!["hmreg", "summary", "--arch", "resnet50"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert!(e.use_stderr(), "{bad:?}");
        }
        // predict falls back on the built-in model; eval needs a model source (a usage error).
        let cli = Cli::try_parse_from(["hmreg", "predict", "a.png"]).unwrap();
        let Command::Predict(a) = cli.command else {
            panic!("predict")
        };
        assert!(a.model.run.is_none() && a.model.checkpoint.is_none());
        let cli = Cli::try_parse_from(["hmreg", "eval"]).unwrap();
        let Command::Eval(a) = cli.command else {
            panic!("eval")
        };
        assert!(matches!(a.model.source(), Err(crate::Error::Config(_))));
    }

    #[test]
    fn exit_codes_by_error_kind() {
        use crate::Error;
        assert_eq!(Error::config("x").exit_code(), EXIT_USAGE);
        assert_eq!(Error::parse("f", 2, "x").exit_code(), EXIT_PROBLEMS);
        assert_eq!(Error::file("f", "x").exit_code(), EXIT_PROBLEMS);
        assert_eq!(Error::Problems("x".into()).exit_code(), EXIT_PROBLEMS);
    }
}
