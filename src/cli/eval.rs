//! `hmreg eval`: metrics of a trained model on a dataset split, with pictures of the results.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{device_parser, DecodeArgs, ModelArgs};
use crate::device::DeviceSpec;
use crate::eval::report::{self, EvalSummary, SummaryContext};
use crate::eval::EvalOptions;
use crate::eval::{choices, dataset};
use crate::run::config::check_origin;
use crate::run::load_model;
use crate::stdout;
use crate::Result;

/// Samples shown in each picture of `--out` (the first ones, and the worst ones).
const SHOWN: usize = 8;

/// Evaluate a trained model on a dataset split.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Dataset root (default: the run's data.root).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which split: val (the run's validation split), test, or any split of the data root: a
    /// folder name, or a COCO keypoint file relative to it (`annotations/face_test.json`).
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Where the split's landmark files put the first pixel's centre: 0, or 1 for files that
    /// count pixels from 1 (300-W). Default: the run's data.origin with its data root, else 0.
    #[arg(long, value_name = "0..1")]
    pub origin: Option<f32>,
    #[command(flatten)]
    pub decoding: DecodeArgs,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write result pictures (results.png, worst.png), samples.csv and metrics.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Evaluate only the first N images of the split (0: all). Default: the run's
    /// data.val_limit for the val split (what training validated on), all images of test.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Batch size (default: the run's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Device (cuda:N: the N-th GPU).
    #[arg(long, default_value = "cpu", value_parser = device_parser())]
    pub device: DeviceSpec,
}

impl EvalArgs {
    /// The defaults for the model of `run`: the val split, the run's decoder, JSON output.
    pub fn for_run(run: &Path) -> Self {
        EvalArgs {
            model: ModelArgs::run(run),
            data: None,
            split: "val".into(),
            origin: None,
            decoding: DecodeArgs::default(),
            json: true,
            out: None,
            limit: None,
            batch_size: None,
            device: DeviceSpec::Cpu,
        }
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let summary = execute(&args)?;
    if args.json {
        let doc = serde_json::to_string_pretty(&summary)?;
        stdout::line(doc)?;
    } else {
        stdout::text(report::to_text(&summary))?;
    }
    Ok(())
}

/// Evaluates as the arguments say and returns the summary (what `--json` prints); writes the
/// `--out` folder. Errors: [`Error::Config`] for usage problems, others for bad input.
pub fn execute(args: &EvalArgs) -> Result<EvalSummary> {
    let source = args.model.source()?;
    let device = args.device.open()?;
    // Decoder arguments are checked against the run's config before any data is read.
    let loaded = load_model(&source, &device)?;
    let cfg = &loaded.cfg;
    let codec = choices::choose_codec(args.decoding.decoder.as_ref(), args.decoding.k, cfg)?;
    let data_root = args.data.clone().unwrap_or_else(|| cfg.data.root.clone());
    let (split, default_limit) = match args.split.as_str() {
        "val" => (cfg.data.val_split.clone(), cfg.data.val_limit),
        other => (other.to_string(), 0),
    };
    let limit = args.limit.unwrap_or(default_limit);
    let origin = match args.origin {
        Some(o) => {
            check_origin(o, "--origin")?;
            o
        }
        // The run's config holds its root absolute; `--data` may name it another way.
        None if same_path(&data_root, &cfg.data.root) => cfg.data.origin,
        None => 0.0,
    };
    let set = dataset::EvalSet::open(
        cfg,
        &data_root,
        &split,
        origin,
        limit,
        args.batch_size,
        &device,
    )?;
    let flip = if args.decoding.flip_test {
        Some(choices::flip_permutation(cfg, Some(set.samples()))?)
    } else {
        None
    };
    let keep = if args.out.is_some() { SHOWN } else { 0 };
    let opts = EvalOptions {
        flip: flip.clone(),
        keep_first: keep,
        keep_worst: keep,
        ..EvalOptions::for_run(cfg, codec.clone())
    };
    let bar = crate::progress::bar(set.len() as u64, "eval", !args.json);
    let outcome = crate::eval::evaluate(
        loaded.model.as_ref(),
        set.batches(cfg.metrics.vs_target),
        &opts,
        &mut |b, _| {
            bar.inc(b.points.len() as u64);
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    let ctx = SummaryContext {
        checkpoint: &loaded.checkpoint,
        data: &data_root,
        split: &split,
        decoder: codec.decoder().to_string(),
        flip_test: flip.is_some(),
        file_indices: set.file_indices(),
        whole_layout: set.whole_layout(),
    };
    let mut summary = report::summarize(&outcome, &ctx);
    if let Some(dir) = &args.out {
        report::write_outputs(dir, &outcome, &mut summary)?;
    }
    Ok(summary)
}

/// Whether two paths name the same file or folder (as written, when either cannot be resolved).
fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
