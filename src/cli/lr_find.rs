//! `hmreg lr-find`: fastai's learning-rate finder on a config's model and data.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{OutputArgs, TrainOverrides};
use crate::run::config::TrainConfig;
use crate::stdout;
use crate::tensorboard::EventWriter;
use crate::train::lr_find::{find_lr, save_plot};
use crate::train::progress::{OutputMode, Reporter};
use crate::train::tb_log::TB_DIR;
use crate::train::Setup;
use crate::Result;

/// Learning-rate finder.
#[derive(Args, Debug)]
pub struct LrFindArgs {
    /// TOML training config (its [lr_find] section sets the sweep).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub overrides: TrainOverrides,
    /// Sweep start and end rates and iterations (fastai: 1e-7, 10, 100).
    #[arg(long)]
    pub start_lr: Option<f64>,
    #[arg(long)]
    pub end_lr: Option<f64>,
    #[arg(long)]
    pub num_it: Option<usize>,
    /// The plot (PNG); a JSON file with the curve is written next to it, and TensorBoard event
    /// files (unless `[logging] tensorboard = false`) to `tb/<plot name>-<unix seconds>/` beside
    /// it.
    #[arg(long, value_name = "PNG", default_value = "lr_find.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: LrFindArgs) -> Result<()> {
    let mut cfg = TrainConfig::load(&args.config)?;
    args.overrides.apply(&mut cfg)?;
    if let Some(v) = args.start_lr {
        cfg.lr_find.start_lr = v;
    }
    if let Some(v) = args.end_lr {
        cfg.lr_find.end_lr = v;
    }
    if let Some(v) = args.num_it {
        cfg.lr_find.num_it = v;
    }
    let mode = args.output.mode();
    let bars = mode == OutputMode::Bars;
    let s = Setup::with_progress(
        cfg,
        &|m| {
            if bars {
                eprintln!("{m}")
            }
        },
        bars,
    )?;
    let mut tb = match s.cfg.logging.tensorboard {
        true => {
            // A folder per sweep: each is a run of its own in TensorBoard, never continued.
            let stem = args
                .out
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("lr_find");
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let dir = args.out.parent().unwrap_or(Path::new(""));
            Some(EventWriter::open(
                &dir.join(TB_DIR).join(format!("{stem}-{secs}")),
            )?)
        }
        false => None,
    };
    let reporter = Reporter::new(mode, 1, 0);
    let result = find_lr(&s, &reporter, tb.as_mut())?;
    reporter.finish();
    save_plot(&args.out, &result)?;
    let json_path = args.out.with_extension("json");
    let text = serde_json::to_vec_pretty(&result)?;
    crate::atomic::write_atomic(&json_path, &text)?;
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.3e}")).unwrap_or("-".into());
    match mode {
        OutputMode::Json => stdout::line(serde_json::json!({
            "suggestions": result.suggestions,
            "stopped": result.stopped,
            "iterations": result.lrs.len(),
            "plot": args.out,
        }))?,
        _ => {
            if mode == OutputMode::Bars {
                eprintln!("{} ({} iterations)", result.stopped, result.lrs.len());
            }
            stdout::line(format_args!(
                "valley {}  steep {}  minimum/10 {}",
                fmt(result.suggestions.valley),
                fmt(result.suggestions.steep),
                fmt(result.suggestions.minimum)
            ))?;
            if mode == OutputMode::Bars {
                eprintln!(
                    "plot: {}  curve: {}",
                    args.out.display(),
                    json_path.display()
                );
            }
        }
    }
    Ok(())
}
