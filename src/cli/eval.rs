//! `hmreg eval`: metrics of a trained model on a dataset split, with pictures of the results.

use std::path::PathBuf;

use clap::Args;

use crate::eval::report::{self, EvalSummary, SummaryContext};
use crate::eval::EvalOptions;
use crate::eval::{choices, dataset, progress};
use crate::run::{load_model, parse_device, ModelSource};
use crate::{Error, Result};

/// Samples shown in each picture of `--out` (the first ones, and the worst ones).
const SHOWN: usize = 8;

/// Evaluate a trained model on a dataset split.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run directory written by `hmreg train` (its best checkpoint, else the latest).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["checkpoint", "config"])]
    pub run: Option<PathBuf>,
    /// A checkpoint (directory, or a file inside it); needs --config.
    #[arg(long, value_name = "FILE", requires = "config")]
    pub checkpoint: Option<PathBuf>,
    /// The resolved training config of the checkpoint; needs --checkpoint.
    #[arg(long, value_name = "FILE", requires = "checkpoint")]
    pub config: Option<PathBuf>,
    /// Dataset root (default: the run's data.root).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Which split: val (the run's validation split) or test.
    #[arg(long, default_value = "val", value_parser = ["val", "test"])]
    pub split: String,
    /// Decoder: argmax, topk, softargmax, dark or quarter (default: the run's validation
    /// decoder). A parameter may follow a colon, e.g. softargmax:0.05.
    #[arg(long)]
    pub decoder: Option<String>,
    /// k of the top-k decoder.
    #[arg(long)]
    pub k: Option<usize>,
    /// Average with the prediction on the mirrored image (flip test-time augmentation).
    #[arg(long)]
    pub flip_test: bool,
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
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: EvalArgs) -> i32 {
    match execute(&args) {
        Ok(summary) => {
            if args.json {
                match serde_json::to_string_pretty(&summary) {
                    Ok(doc) => println!("{doc}"),
                    Err(e) => {
                        eprintln!("hmreg eval: JSON: {e}");
                        return super::EXIT_PROBLEMS;
                    }
                }
            } else {
                print!("{}", report::to_text(&summary));
            }
            0
        }
        Err(e) => {
            eprintln!("hmreg eval: {e}");
            match e {
                Error::Config(_) => super::EXIT_USAGE,
                _ => super::EXIT_PROBLEMS,
            }
        }
    }
}

/// Evaluates as the arguments say and returns the summary (what `--json` prints); writes the
/// `--out` folder. Errors: [`Error::Config`] for usage problems, others for bad input.
pub fn execute(args: &EvalArgs) -> Result<EvalSummary> {
    let source = ModelSource::from_args(
        args.run.as_deref(),
        args.checkpoint.as_deref(),
        args.config.as_deref(),
    )?;
    let device = parse_device(&args.device)?;
    // Decoder arguments are checked against the run's config before any data is read.
    let loaded = load_model(&source, &device)?;
    let cfg = &loaded.cfg;
    let decoder = choices::choose_decoder(args.decoder.as_deref(), args.k, cfg)?;
    let data_root = args.data.clone().unwrap_or_else(|| cfg.data.root.clone());
    let (split, default_limit) = match args.split.as_str() {
        "val" => (cfg.data.val_split.clone(), cfg.data.val_limit),
        _ => ("test".to_string(), 0),
    };
    let limit = args.limit.unwrap_or(default_limit);
    let set = dataset::EvalSet::open(cfg, &data_root, &split, limit, args.batch_size, &device)?;
    let flip = if args.flip_test {
        Some(choices::flip_permutation(cfg, Some(set.samples()))?)
    } else {
        None
    };
    let keep = if args.out.is_some() { SHOWN } else { 0 };
    let opts = EvalOptions {
        decoder: decoder.clone(),
        flip: flip.clone(),
        metrics: cfg.metrics.accuracy.clone(),
        input_size: cfg.pipeline.input_size,
        mean: cfg.pipeline.normalize.mean,
        std: cfg.pipeline.normalize.std,
        keep_first: keep,
        keep_worst: keep,
    };
    let bar = progress::progress_bar(set.len() as u64, "eval", args.json);
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
        decoder: decoder.to_string(),
        flip_test: flip.is_some(),
        file_indices: set.file_indices(),
    };
    let mut summary = report::summarize(&outcome, &ctx);
    if let Some(dir) = &args.out {
        report::write_outputs(dir, &outcome, &mut summary)?;
    }
    Ok(summary)
}
