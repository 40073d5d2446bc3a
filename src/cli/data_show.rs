//! `hmreg data show`: a grid of augmented training images with their points and target heatmaps.

use clap::Args;

/// Arguments of `hmreg data show`.
#[derive(Args, Debug)]
pub struct ShowArgs {}

pub fn run(_args: ShowArgs) -> i32 {
    super::not_yet("data show", 5)
}
