//! `hmreg lr-find`.

use clap::Args;

/// Learning-rate finder.
#[derive(Args, Debug)]
pub struct LrFindArgs {}

pub fn run(_args: LrFindArgs) -> i32 {
    super::not_yet("lr-find", 6)
}
