//! `hmreg train`.

use clap::Args;

/// Training.
#[derive(Args, Debug)]
pub struct TrainArgs {}

pub fn run(_args: TrainArgs) -> i32 {
    super::not_yet("train", 6)
}
