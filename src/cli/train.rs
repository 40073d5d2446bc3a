//! `hmreg train`: train a model from a TOML config; command-line values override the config.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{device_parser, OutputArgs, TrainOverrides};
use crate::device::DeviceSpec;
use crate::metrics::Figure;
use crate::run::config::TrainConfig;
use crate::run::dir;
use crate::stdout;
use crate::train::data_parallel::Nodes;
use crate::train::progress::OutputMode;
use crate::train::trainer::{train, RunOptions};
use crate::{Error, Result};

/// Training.
#[derive(Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// TOML config (see configs/). Without it: the run's own config.toml with --resume, else the
    /// built-in quick start (configs/quickstart.toml: synthetic faces generated on first use).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: TrainOverrides,
    /// The n of fit_one_cycle(n) / fine_tune(n).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Maximum (one-cycle) or base (fine_tune) learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Run directory (default: runs/<config name>-<unix time>).
    #[arg(long, value_name = "RUN_DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Stop after this many epochs as if killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after_epochs: Option<usize>,
    /// Stop after this many optimiser steps as if killed, with a mid-epoch checkpoint.
    #[arg(long, hide = true)]
    pub stop_after_steps: Option<u64>,
    /// Data-parallel training, one worker per device: `cuda:0,cuda:1` (or `cpu,cpu` for worker
    /// threads on the CPU). --batch-size is the global batch and must divide by the workers.
    #[arg(long, value_delimiter = ',', value_parser = device_parser(), value_name = "DEVICES")]
    pub devices: Vec<DeviceSpec>,
    /// Machines in the run (NCCL; one process per machine, each with the same --devices).
    /// Default: $NNODES, else 1.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// This machine's rank, 0 to nodes - 1 (0 writes the run directory). Default: $NODE_RANK.
    #[arg(long)]
    pub node_rank: Option<usize>,
    /// Node 0's HOST:PORT for the rendezvous. Default: $MASTER_ADDR:$MASTER_PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub master: Option<String>,
    /// Make data-parallel worker RANK fail at its STEP-th step (tests of the failure path).
    #[arg(long, hide = true, value_name = "RANK:STEP")]
    pub fail_worker: Option<String>,
}

/// `--nodes/--node-rank/--master`, or torchrun's environment variables (`NNODES`, `NODE_RANK`,
/// `MASTER_ADDR`, `MASTER_PORT`); `None` for one machine.
fn nodes(args: &TrainArgs) -> Result<Option<Nodes>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let num = |k: &str| -> Result<Option<usize>> {
        env(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::config(format!("${k}={v} is not a number")))
            })
            .transpose()
    };
    let count = match args.nodes {
        Some(n) => n,
        None => num("NNODES")?.unwrap_or(1),
    };
    if count <= 1 {
        return Ok(None);
    }
    let rank = match args.node_rank {
        Some(r) => r,
        None => num("NODE_RANK")?.ok_or_else(|| {
            Error::config("--nodes needs --node-rank (or $NODE_RANK): this machine's rank")
        })?,
    };
    if rank >= count {
        return Err(Error::config(format!(
            "--node-rank {rank} is not below --nodes {count}"
        )));
    }
    let master = match (&args.master, env("MASTER_ADDR"), env("MASTER_PORT")) {
        (Some(m), _, _) => m.clone(),
        (None, Some(a), Some(p)) => format!("{a}:{p}"),
        _ => {
            return Err(Error::config(
                "--nodes needs --master HOST:PORT (or $MASTER_ADDR and $MASTER_PORT): where \
                 node 0 hands out the group's id",
            ))
        }
    };
    Ok(Some(Nodes {
        count,
        rank,
        master,
    }))
}

/// `--fail-worker RANK:STEP`.
fn fail_worker(s: &Option<String>) -> Result<Option<(usize, u64)>> {
    let Some(s) = s else { return Ok(None) };
    let parsed = s
        .split_once(':')
        .and_then(|(r, k)| Some((r.trim().parse().ok()?, k.trim().parse().ok()?)));
    parsed
        .map(Some)
        .ok_or_else(|| Error::config(format!("--fail-worker {s}: expected RANK:STEP")))
}

/// The embedded default, so that `hmreg train` alone works on a fresh machine.
pub const QUICKSTART_TOML: &str = include_str!("../../configs/quickstart.toml");
const QUICKSTART_NAME: &str = "configs/quickstart.toml";

/// The config a command line asks for: the file (or the run's saved config with --resume and no
/// --config), then the overrides.
pub fn resolve_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg = match (&args.config, args.resume, &args.out) {
        (Some(path), _, _) => TrainConfig::load(path)?,
        (None, true, Some(out)) => dir::read_config(out)?,
        (None, true, None) => {
            return Err(Error::config(
                "--resume needs --out RUN_DIR (the run to continue)",
            ))
        }
        (None, false, _) => TrainConfig::parse(QUICKSTART_TOML, Path::new(QUICKSTART_NAME))?,
    };
    args.overrides.apply(&mut cfg)?;
    if let Some(e) = args.epochs {
        cfg.epochs = e;
    }
    if let Some(lr) = args.lr {
        cfg.schedule.lr = lr;
    }
    Ok(cfg)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let cfg = resolve_config(&args)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let name = match (&args.config, args.resume) {
            (None, false) => Some(Path::new(QUICKSTART_NAME)),
            (c, _) => c.as_deref(),
        };
        dir::default_run_dir(name)
    });
    let output = args.output.mode();
    let opts = RunOptions {
        run_dir: out,
        resume: args.resume,
        output,
        stop_after_epochs: args.stop_after_epochs,
        stop_after_steps: args.stop_after_steps,
        devices: args.devices.clone(),
        nodes: nodes(&args)?,
        fail_worker: fail_worker(&args.fail_worker)?,
    };
    let summary = train(cfg, &opts)?;
    match output {
        OutputMode::Json => {
            let line = serde_json::json!({ "summary": summary });
            stdout::line(line)?;
        }
        OutputMode::Bars => {
            let nmae = |v: Option<f64>| v.map(|v| format!("{v:.5}")).unwrap_or("-".into());
            eprintln!(
                "done: {} of {} epochs in {:.0}s; run directory {}",
                summary.epochs_done,
                summary.total_epochs,
                summary.seconds,
                summary.run_dir.display()
            );
            eprintln!(
                "validation NMAE {} (mean-shape baseline {}); best {}",
                nmae(
                    summary
                        .last
                        .as_ref()
                        .and_then(|r| r.value(Figure::Nmae.into()))
                ),
                nmae(summary.baseline.get(Figure::Nmae)),
                summary
                    .best
                    .as_ref()
                    .map(|b| format!("{} {:.5} at epoch {}", b.metric, b.value, b.epoch))
                    .unwrap_or("-".into())
            );
        }
        OutputMode::Quiet => {}
    }
    Ok(())
}
