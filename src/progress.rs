//! The progress bar of long work (dataset checks and synthesis, evaluation, prediction, the
//! rounding experiment; training's two bars take their style from here too), drawn on stderr so
//! that stdout keeps only results.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items labelled `label` (`"eval"`, `"check valid"`), with the count, elapsed
/// time and ETA. Hidden unless `shown` and stderr is a terminal: scripts that print JSON, and
/// logs, get no bar.
pub fn bar(len: u64, label: &str, shown: bool) -> ProgressBar {
    if !shown || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar =
        ProgressBar::new(len).with_style(style("{msg} [{bar:40}] {pos}/{len} [{elapsed} < {eta}]"));
    bar.set_message(label.to_string());
    bar
}

/// The bars' look for `template` (indicatif's template syntax). Templates are written in the
/// code, so a bad one is a bug: it falls back to indicatif's default bar rather than failing.
pub fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}
