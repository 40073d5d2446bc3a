//! `hmreg lr-find`: fastai's learning-rate finder on a config's model and data.

use std::path::PathBuf;

use clap::Args;

use crate::cli::train::{resolve_config, TrainArgs};
use crate::train::lr_find::{find_lr, save_plot};
use crate::train::progress::{OutputMode, Reporter};
use crate::train::Setup;
use crate::{Error, Result};

/// Learning-rate finder.
#[derive(Args, Debug)]
pub struct LrFindArgs {
    /// TOML training config (its [lr_find] section sets the sweep).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long)]
    pub arch: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[arg(long)]
    pub points: Option<String>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub device: Option<String>,
    /// Sweep start and end rates and iterations (fastai: 1e-7, 10, 100).
    #[arg(long)]
    pub start_lr: Option<f64>,
    #[arg(long)]
    pub end_lr: Option<f64>,
    #[arg(long)]
    pub num_it: Option<usize>,
    /// The plot (PNG); a JSON file with the curve is written next to it.
    #[arg(long, value_name = "PNG", default_value = "lr_find.png")]
    pub out: PathBuf,
    #[arg(long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn run_inner(args: &LrFindArgs) -> Result<()> {
    let targs = TrainArgs {
        config: Some(args.config.clone()),
        arch: args.arch.clone(),
        data: args.data.clone(),
        points: args.points.clone(),
        batch_size: args.batch_size,
        seed: args.seed,
        device: args.device.clone(),
        ..Default::default()
    };
    let mut cfg = resolve_config(&targs)?;
    if let Some(v) = args.start_lr {
        cfg.lr_find.start_lr = v;
    }
    if let Some(v) = args.end_lr {
        cfg.lr_find.end_lr = v;
    }
    if let Some(v) = args.num_it {
        cfg.lr_find.num_it = v;
    }
    let mode = if args.json {
        OutputMode::Json
    } else if args.quiet {
        OutputMode::Quiet
    } else {
        OutputMode::Bars
    };
    let s = Setup::new(cfg, &|m| {
        if mode == OutputMode::Bars {
            eprintln!("{m}")
        }
    })?;
    let reporter = Reporter::new(mode, 1, 0);
    let result = find_lr(&s, &reporter)?;
    reporter.finish();
    save_plot(&args.out, &result)?;
    let json_path = args.out.with_extension("json");
    let text = serde_json::to_vec_pretty(&result).map_err(|e| Error::Msg(e.to_string()))?;
    crate::atomic::write_atomic(&json_path, &text)?;
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.3e}")).unwrap_or("-".into());
    match mode {
        OutputMode::Json => println!(
            "{}",
            serde_json::json!({
                "suggestions": result.suggestions,
                "stopped": result.stopped,
                "iterations": result.lrs.len(),
                "plot": args.out,
            })
        ),
        _ => {
            if mode == OutputMode::Bars {
                eprintln!("{} ({} iterations)", result.stopped, result.lrs.len());
            }
            println!(
                "valley {}  steep {}  minimum/10 {}",
                fmt(result.suggestions.valley),
                fmt(result.suggestions.steep),
                fmt(result.suggestions.minimum)
            );
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

pub fn run(args: LrFindArgs) -> i32 {
    match run_inner(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hmreg lr-find: {e}");
            match e {
                crate::Error::Config(_) => super::EXIT_USAGE,
                _ => super::EXIT_PROBLEMS,
            }
        }
    }
}
