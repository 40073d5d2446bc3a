//! `hmreg experiment`.

use clap::Args;

/// Experiments.
#[derive(Args, Debug)]
pub struct ExperimentArgs {}

pub fn run(_args: ExperimentArgs) -> i32 {
    super::not_yet("experiment", 3)
}
