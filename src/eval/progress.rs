//! The progress bar of evaluation and prediction.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr (hidden with `quiet`, e.g. when printing JSON to a pipe is all
/// that should happen; indicatif hides it by itself when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
