//! `hmreg predict`.

use clap::Args;

/// Prediction.
#[derive(Args, Debug)]
pub struct PredictArgs {}

pub fn run(_args: PredictArgs) -> i32 {
    super::not_yet("predict", 7)
}
