//! `hmreg predict`: landmarks for images of any size, in the original image's pixels.

use std::path::PathBuf;

use clap::Args;

use super::args::{device_parser, DecodeArgs, ModelArgs};
use crate::data::coco::{self, CocoResult};
use crate::eval::predict::{self, PredictOptions};
use crate::eval::{choices, progress};
use crate::run::device::DeviceSpec;
use crate::run::load_model;
use crate::{Error, Result};

/// Predict landmarks on images.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// JPEG or PNG files of any size. The whole image is the face region unless --bbox is given.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Face box `x,y,w,h` in image pixels, used for every image.
    #[arg(long, value_name = "x,y,w,h", value_parser = predict::parse_bbox)]
    pub bbox: Option<[f32; 4]>,
    /// Write an annotated PNG per image (`<stem>.png`) and predictions.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the predictions as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Layout of the JSON document (stdout with --json, predictions.json with --out): hmreg's
    /// own, or a COCO keypoint results list (`image_id`, `category_id`, `keypoints` as
    /// x, y, confidence triples, `score`), as COCO evaluation tools and MMPose read it.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// With --format coco: a COCO annotation file whose `images` give the image ids (matched by
    /// file name). Without it, images are numbered from 1 in the order given.
    #[arg(long, value_name = "FILE.json")]
    pub image_ids: Option<PathBuf>,
    #[command(flatten)]
    pub decoding: DecodeArgs,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Device (cuda:N: the N-th GPU).
    #[arg(long, default_value = "cpu", value_parser = device_parser())]
    pub device: DeviceSpec,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Coco,
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

/// The predictions as COCO results, image ids from `ids_file` (by file name) or numbered from 1
/// in input order.
fn coco_results(
    preds: &[predict::ImagePrediction],
    ids_file: Option<&std::path::Path>,
) -> Result<Vec<CocoResult>> {
    let ids = ids_file.map(coco::image_ids).transpose()?;
    preds
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = p
                .path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let image_id = match (&ids, ids_file) {
                (Some(ids), Some(file)) => *ids.get(&name).ok_or_else(|| {
                    Error::file(file, format!("no image named {name:?} in `images`"))
                })?,
                _ => i as u64 + 1,
            };
            let xy: Vec<[f32; 2]> = p.points.iter().map(|q| [q.x, q.y]).collect();
            let conf: Vec<f32> = p.points.iter().map(|q| q.confidence).collect();
            let mut r = CocoResult::new(image_id, &xy, &conf);
            r.file_name = Some(p.path.display().to_string());
            Ok(r)
        })
        .collect()
}

/// Predicts every image; an image that fails is reported on stderr, the others still run, and
/// the result is then [`Error::Problems`].
pub fn run(args: PredictArgs) -> Result<()> {
    let bbox = args.bbox;
    if args.image_ids.is_some() && args.format != OutputFormat::Coco {
        return Err(Error::config("--image-ids only applies to --format coco"));
    }
    let source = args.model.source()?;
    let device = args.device.open()?;
    let loaded = load_model(&source, &device)?;
    let decoder = choices::choose_decoder(
        args.decoding.decoder.as_deref(),
        args.decoding.k,
        &loaded.cfg,
    )?;
    let flip = if args.decoding.flip_test {
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
    let json = match args.format {
        OutputFormat::Json => serde_json::to_string_pretty(&doc),
        OutputFormat::Coco => {
            serde_json::to_string_pretty(&coco_results(&preds, args.image_ids.as_deref())?)
        }
    }
    .map_err(|e| Error::Msg(format!("JSON: {e}")))?;
    if let Some(dir) = &args.out {
        let file = dir.join("predictions.json");
        crate::atomic::write_atomic(&file, json.as_bytes())?;
    }
    if args.json || args.format == OutputFormat::Coco {
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
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Problems(format!(
            "{} of {} images failed",
            failures.len(),
            args.images.len()
        )))
    }
}
