//! `hmreg eval`.

use clap::Args;

/// Evaluation.
#[derive(Args, Debug)]
pub struct EvalArgs {}

pub fn run(_args: EvalArgs) -> i32 {
    super::not_yet("eval", 7)
}
