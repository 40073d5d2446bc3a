//! `hmreg data`.

use clap::Args;

/// Check, generate and show datasets.
#[derive(Args, Debug)]
pub struct DataArgs {}

pub fn run(_args: DataArgs) -> i32 {
    super::not_yet("data", 2)
}
