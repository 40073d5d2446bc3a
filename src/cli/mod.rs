//! The `hmreg` command line: one file per subcommand.

use clap::{Parser, Subcommand};

pub mod data;
pub mod data_show;
pub mod eval;
pub mod experiment;
pub mod lr_find;
pub mod predict;
pub mod summary;
pub mod train;

/// Exit code for problems found in the input (bad files, failed images).
pub const EXIT_PROBLEMS: i32 = 1;
/// Exit code for usage errors and commands not available yet.
pub const EXIT_USAGE: i32 = 2;

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
    /// Reproduce experiments (randomized rounding).
    Experiment(experiment::ExperimentArgs),
}

/// Parses the command line, runs the command and returns the process exit code.
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
    match cli.command {
        Command::Data(a) => data::run(a),
        Command::Summary(a) => summary::run(a),
        Command::Train(a) => train::run(a),
        Command::LrFind(a) => lr_find::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Experiment(a) => experiment::run(a),
    }
}

/// Reports a command that a later issue will provide, with the usage exit code.
pub fn not_yet(command: &str, issue: u32) -> i32 {
    eprintln!("hmreg {command}: not implemented yet (tracked in issue {issue})");
    EXIT_USAGE
}
