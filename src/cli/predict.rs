//! `hmreg predict`: landmarks for images of any size, in the original image's pixels.

use std::path::PathBuf;

use clap::Args;

use crate::eval::predict::{self, PredictOptions};
use crate::eval::{choices, progress};
use crate::run::{load_model, parse_device, ModelSource};
use crate::{Error, Result};

/// Predict landmarks on images.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// JPEG or PNG files of any size. The whole image is the face region unless --bbox is given.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Run directory written by `hmreg train` (its best checkpoint, else the latest).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["checkpoint", "config"])]
    pub run: Option<PathBuf>,
    /// A checkpoint (directory, or a file inside it); needs --config.
    #[arg(long, value_name = "FILE", requires = "config")]
    pub checkpoint: Option<PathBuf>,
    /// The resolved training config of the checkpoint; needs --checkpoint.
    #[arg(long, value_name = "FILE", requires = "checkpoint")]
    pub config: Option<PathBuf>,
    /// Face box `x,y,w,h` in image pixels, used for every image.
    #[arg(long, value_name = "x,y,w,h")]
    pub bbox: Option<String>,
    /// Write an annotated PNG per image (`<stem>.png`) and predictions.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the predictions as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Decoder (default: the run's validation decoder), e.g. topk, topk:9, argmax.
    #[arg(long)]
    pub decoder: Option<String>,
    /// k of the top-k decoder.
    #[arg(long)]
    pub k: Option<usize>,
    /// Average with the prediction on the mirrored image.
    #[arg(long)]
    pub flip_test: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The JSON document of `hmreg predict --json` (and `predictions.json`).
#[derive(serde::Serialize)]
struct PredictDoc<'a> {
    checkpoint: &'a std::path::Path,
    decoder: String,
    flip_test: bool,
    predictions: &'a [predict::ImagePrediction],
    failures: &'a [predict::Failure],
}

pub fn run(args: PredictArgs) -> i32 {
    match execute(&args) {
        Ok(true) => 0,
        Ok(false) => super::EXIT_PROBLEMS,
        Err(e) => {
            eprintln!("hmreg predict: {e}");
            match e {
                Error::Config(_) => super::EXIT_USAGE,
                _ => super::EXIT_PROBLEMS,
            }
        }
    }
}

/// `Ok(false)` when some image failed (reported on stderr, the others still predicted).
fn execute(args: &PredictArgs) -> Result<bool> {
    let bbox = args.bbox.as_deref().map(predict::parse_bbox).transpose()?;
    let source = ModelSource::from_args(
        args.run.as_deref(),
        args.checkpoint.as_deref(),
        args.config.as_deref(),
    )?;
    let device = parse_device(&args.device)?;
    let loaded = load_model(&source, &device)?;
    let decoder = choices::choose_decoder(args.decoder.as_deref(), args.k, &loaded.cfg)?;
    let flip = if args.flip_test {
        Some(choices::flip_permutation(&loaded.cfg, None)?)
    } else {
        None
    };
    let opts = PredictOptions {
        decoder: decoder.clone(),
        flip: flip.clone(),
        input_size: loaded.cfg.pipeline.input_size,
        batch_size: args.batch_size.max(1),
        bbox,
        out_dir: args.out.clone(),
    };
    let prepare = predict::validation_preparation(&loaded.cfg.pipeline);
    let bar = progress::progress_bar(args.images.len() as u64, "predict", args.json);
    let (preds, failures) = predict::predict_files(
        loaded.model.as_ref(),
        &args.images,
        &prepare,
        &opts,
        &device,
        &mut || bar.inc(1),
    );
    bar.finish_and_clear();
    for f in &failures {
        eprintln!("hmreg predict: {}", f.error);
    }
    let doc = PredictDoc {
        checkpoint: &loaded.checkpoint,
        decoder: decoder.to_string(),
        flip_test: flip.is_some(),
        predictions: &preds,
        failures: &failures,
    };
    let json = serde_json::to_string_pretty(&doc).map_err(|e| Error::Msg(format!("JSON: {e}")))?;
    if let Some(dir) = &args.out {
        let file = dir.join("predictions.json");
        crate::atomic::write_atomic(&file, json.as_bytes())?;
    }
    if args.json {
        println!("{json}");
    } else {
        for p in &preds {
            println!("{} ({}x{})", p.path.display(), p.width, p.height);
            for (i, q) in p.points.iter().enumerate() {
                println!(
                    "  {i:>3}  x {:>9.2}  y {:>9.2}  confidence {:.3}",
                    q.x, q.y, q.confidence
                );
            }
            if let Some(a) = &p.annotated {
                println!("  wrote {}", a.display());
            }
        }
    }
    Ok(failures.is_empty())
}
