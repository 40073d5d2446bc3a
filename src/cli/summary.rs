//! `hmreg summary`.

use clap::Args;

/// Model summary.
#[derive(Args, Debug)]
pub struct SummaryArgs {}

pub fn run(_args: SummaryArgs) -> i32 {
    super::not_yet("summary", 4)
}
