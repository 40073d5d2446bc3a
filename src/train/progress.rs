//! What a run shows while it works: indicatif bars (epochs, and batches with loss, images/s and
//! ETA) plus one line per epoch on stderr; or nothing (`--quiet`); or one JSON object per epoch
//! on stdout and nothing else there (`--json`, for scripts).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};

use crate::progress::style;

use crate::run::history::{EpochFigure, EpochRecord};

/// How a run reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputMode {
    #[default]
    Bars,
    Quiet,
    Json,
}

/// Progress display for a run or an lr sweep.
pub struct Reporter {
    mode: OutputMode,
    /// indicatif draws nothing (its `println` included) when stderr is not a terminal; epoch lines
    /// and notes then go to stderr directly so logs still get them.
    tty: bool,
    multi: MultiProgress,
    epochs: ProgressBar,
    batches: ProgressBar,
}

impl Reporter {
    /// `done` of `total` epochs are already finished (a resumed run).
    pub fn new(mode: OutputMode, total: usize, done: usize) -> Self {
        let multi = if mode == OutputMode::Bars {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        let epochs = multi.add(ProgressBar::new(total as u64));
        epochs.set_style(style(
            "epoch {pos}/{len} [{elapsed_precise}] {wide_bar} {msg}",
        ));
        epochs.set_position(done as u64);
        let batches = multi.add(ProgressBar::new(0));
        batches.set_style(style(
            "batch {pos}/{len} {bar:30} loss {msg} | {per_sec} | ETA {eta}",
        ));
        Reporter {
            mode,
            tty: std::io::stderr().is_terminal(),
            multi,
            epochs,
            batches,
        }
    }

    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// A new epoch of `len` batches, `skip` of them already done (mid-epoch resume).
    pub fn start_epoch(&self, len: usize, skip: usize) {
        self.batches.reset();
        self.batches.set_length(len as u64);
        self.batches.set_position(skip as u64);
        self.batches.set_message("-");
    }

    /// One batch done; `images` in it. The rate shown is batches/s; images/s goes in the message.
    pub fn batch(&self, smooth_loss: f64, images_per_second: f64) {
        self.batches
            .set_message(format!("{smooth_loss:.5} | {images_per_second:.1} img/s"));
        self.batches.inc(1);
    }

    /// An epoch finished: a line on stderr (bars), a JSON line on stdout (json), or nothing.
    /// Fails with [`crate::Error::StdoutClosed`] when the JSON line's reader has gone: the run
    /// stops there, as a piped command does (its run directory already holds the epoch).
    pub fn end_epoch(&self, r: &EpochRecord, best_metric: EpochFigure) -> crate::Result<()> {
        self.epochs.inc(1);
        match self.mode {
            OutputMode::Bars => {
                let metric = r
                    .value(best_metric)
                    .map(|v| format!(" {best_metric} {v:.5}"))
                    .unwrap_or_default();
                self.epochs
                    .set_message(format!("valid loss {:.5}{metric}", r.valid_loss));
                self.line(&format!(
                    "epoch {:>3}{} train {:.6} valid {:.6}{metric} lr {:.3e} {:.1}s ({:.1} img/s)",
                    r.epoch,
                    if r.frozen { " (frozen)" } else { "" },
                    r.train_loss,
                    r.valid_loss,
                    r.lr,
                    r.seconds,
                    r.images_per_second
                ));
            }
            OutputMode::Json => {
                if let Ok(line) = serde_json::to_string(r) {
                    crate::stdout::line(line)?;
                }
            }
            OutputMode::Quiet => {}
        }
        Ok(())
    }

    /// A note for the user (stderr, not in quiet or json modes).
    pub fn note(&self, msg: &str) {
        if self.mode == OutputMode::Bars {
            self.line(msg);
        }
    }

    fn line(&self, msg: &str) {
        if self.tty {
            let _ = self.multi.println(msg);
        } else {
            eprintln!("{msg}");
        }
    }

    pub fn finish(&self) {
        self.batches.finish_and_clear();
        self.epochs.finish_and_clear();
    }
}
