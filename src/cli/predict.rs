//! `hmreg predict`: landmarks on photos of any size, in the original image's pixels: the faces
//! are found by the built-in detector (face models), given as boxes, or each image is one crop.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{device_parser, DecodeArgs, ModelArgs};
use crate::data::sources::coco::{self, CocoResult};
use crate::data::sources::image_io::is_image_path;
use crate::data::ResizeMode;
use crate::detect::DetectOptions;
use crate::device::DeviceSpec;
use crate::eval::choices;
use crate::predict::{self, FaceSource, PredictOptions, SearchOptions};
use crate::run::{load_model, ModelSource, ResolvedRun};
use crate::stdout;
use crate::{BBox, Error, Result};

/// Predict landmarks on images.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// JPEG or PNG files of any size, folders (every image inside; subfolders with
    /// --recursive), or `-` for a list of paths on standard input, one per line.
    #[arg(required = true, value_name = "IMAGE|DIR|-")]
    pub images: Vec<PathBuf>,
    /// Also the images in subfolders of the folders given.
    #[arg(long)]
    pub recursive: bool,
    /// The model (default: the built-in 68-point face model).
    #[command(flatten)]
    pub model: ModelArgs,
    /// A face box `x,y,w,h` in image pixels (repeatable), used for every image instead of
    /// detection. It may reach past the image's sides (the crop is padded, as in training).
    #[arg(long, value_name = "x,y,w,h", value_parser = predict::parse_bbox, allow_hyphen_values = true)]
    pub bbox: Vec<BBox>,
    /// Treat each image as one face crop (already-cropped datasets): no detection.
    #[arg(long, conflicts_with_all = ["bbox", "detect"])]
    pub no_detect: bool,
    /// Detect faces even when the model's points are not a known face layout (68, 98 or 106).
    #[arg(long, conflicts_with = "bbox")]
    pub detect: bool,
    /// Smallest face side to detect, in pixels (at least 20; below 40 the photo is searched
    /// enlarged, which is slower).
    #[arg(long, value_name = "PIXELS", default_value_t = DetectOptions::default().min_face)]
    pub min_face: u32,
    /// Search a photo longer than this many pixels on a copy reduced to it (landmarks still come
    /// from full-resolution crops); faces smaller than 40 x side / PIXELS are then missed unless
    /// this is raised (0: never reduce).
    #[arg(long, value_name = "PIXELS", default_value_t = SearchOptions::default().max_side)]
    pub detect_side: u32,
    /// Search only the upright photo, not also its copies turned by -40 and +40 degrees for
    /// tilted heads (the copies cost about half again the detection time).
    #[arg(long)]
    pub no_tilt: bool,
    /// Also search the photo turned by 90, 180 and 270 degrees, for photos stored turned
    /// without an orientation tag (three more detection passes).
    #[arg(long)]
    pub try_rotations: bool,
    /// Predict each face once, from the detector's box (or the given one). By default a face
    /// model predicts twice: the second time from the crop of the first points' own box,
    /// turned upright by their eye line, the convention the model was trained with.
    #[arg(long)]
    pub single_pass: bool,
    /// Skip the flip test that face models get by default (it averages each face with its
    /// mirror image: 3.44 -> 3.38 % NME on 300-W HELEN val for the built-in model, for twice the
    /// network's time, which is small beside detection's).
    #[arg(long, conflicts_with = "flip_test")]
    pub no_flip_test: bool,
    /// Keep at most this many faces per image, the most confident first (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_faces: usize,
    /// Write an annotated PNG per image (`<stem>.png`: boxes and points) and predictions.json
    /// here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Number the points in the annotated PNGs.
    #[arg(long)]
    pub labels: bool,
    /// Print the predictions as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Layout of the JSON document (stdout with --json, predictions.json with --out): hmreg's
    /// own, or a COCO keypoint results list (`image_id`, `category_id`, `keypoints` as
    /// x, y, confidence triples, `score`; one entry per face), as COCO evaluation tools and
    /// MMPose read it.
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// With --format coco: a COCO annotation file whose `images` give the image ids (matched by
    /// file name). Without it, images are numbered from 1 in the order given.
    #[arg(long, value_name = "FILE.json")]
    pub image_ids: Option<PathBuf>,
    #[command(flatten)]
    pub decoding: DecodeArgs,
    /// Faces per forward pass.
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
    checkpoint: &'a Path,
    decoder: String,
    flip_test: bool,
    /// Whether each face was predicted twice (see `--single-pass`).
    two_pass: bool,
    /// The model's calibration in input pixels, already in the points (`metrics.point_offset`).
    point_offset: [f32; 2],
    /// How faces were found: "detector (SeetaFace, rustface)", "boxes given", "whole image".
    faces: &'static str,
    predictions: &'a [predict::ImagePrediction],
    failures: &'a [predict::Failure],
}

/// Whether a model's points are a face layout the detector's boxes fit (iBUG-68, WFLW-98,
/// LaPa-106, or a selection from one).
fn is_face_model(cfg: &ResolvedRun) -> bool {
    matches!(
        choices::points_in_files(cfg, &cfg.data.root, None),
        Ok(68 | 98 | 106)
    )
}

/// The files named by the inputs: files as given, the images of folders (sorted), and the
/// paths listed on standard input for `-`. A folder without images is an error.
pub fn expand_inputs(inputs: &[PathBuf], recursive: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|e| Error::Msg(format!("standard input: {e}")))?;
                let line = line.trim();
                if !line.is_empty() {
                    out.push(PathBuf::from(line));
                }
            }
        } else if input.is_dir() {
            let before = out.len();
            images_in(input, recursive, &mut out)?;
            if out.len() == before {
                return Err(Error::file(
                    input,
                    format!(
                        "no images (.jpg, .jpeg, .png) in this folder{}",
                        if recursive {
                            " or below"
                        } else {
                            " (--recursive looks below)"
                        }
                    ),
                ));
            }
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn images_in(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot list folder: {e}")))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            if recursive {
                images_in(&p, true, out)?;
            }
        } else if is_image_path(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Predicts every image; an image that fails is reported on stderr, the others still run, and
/// the result is then [`Error::Problems`].
pub fn run(args: PredictArgs) -> Result<()> {
    if args.image_ids.is_some() && args.format != OutputFormat::Coco {
        return Err(Error::config("--image-ids only applies to --format coco"));
    }
    let source = if args.model.run.is_none() && args.model.checkpoint.is_none() {
        ModelSource::Builtin
    } else {
        args.model.source()?
    };
    let paths = expand_inputs(&args.images, args.recursive)?;
    let device = args.device.open()?;
    let loaded = load_model(&source, &device)?;
    let codec =
        choices::choose_codec(args.decoding.decoder.as_ref(), args.decoding.k, &loaded.cfg)?;
    let face_model = is_face_model(&loaded.cfg);
    let flip = if args.decoding.flip_test || (face_model && !args.no_flip_test) {
        Some(choices::flip_permutation(&loaded.cfg, None)?)
    } else {
        None
    };
    let search = SearchOptions {
        detect: DetectOptions {
            min_face: args.min_face,
            max_faces: args.max_faces,
            ..Default::default()
        },
        max_side: args.detect_side,
        tilts: if args.no_tilt {
            Vec::new()
        } else {
            SearchOptions::default().tilts
        },
        turns: args.try_rotations,
    };
    let (faces, how) = if !args.bbox.is_empty() {
        (FaceSource::Boxes(args.bbox.clone()), "boxes given")
    } else if args.no_detect || !(args.detect || face_model) {
        (FaceSource::WholeImage, "whole image")
    } else {
        search.detect.validate()?;
        (FaceSource::Detect(search), "detector (SeetaFace, rustface)")
    };
    let opts = PredictOptions {
        codec: codec.clone(),
        flip: flip.clone(),
        batch_size: args.batch_size.max(1),
        faces,
        out_dir: args.out.clone(),
        labels: args.labels,
        // The second crop is the box convention of face models trained on `box` crops.
        two_pass: !args.single_pass && face_model && loaded.cfg.pipeline.resize == ResizeMode::Box,
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::file(dir, format!("cannot create folder: {e}")))?;
    }
    let prepare = predict::validation_preparation(&loaded.cfg.pipeline);
    let bar = crate::progress::bar(paths.len() as u64, "predict", !args.json);
    let (preds, failures) = predict::predict_files(
        loaded.model.as_ref(),
        &paths,
        &prepare,
        &opts,
        &device,
        &mut || bar.inc(1),
    )?;
    bar.finish_and_clear();
    for f in &failures {
        eprintln!("hmreg predict: {}", f.error);
    }
    let doc = PredictDoc {
        checkpoint: &loaded.checkpoint,
        decoder: codec.decoder().to_string(),
        flip_test: flip.is_some(),
        two_pass: opts.two_pass,
        point_offset: codec.point_offset(),
        faces: how,
        predictions: &preds,
        failures: &failures,
    };
    let json = match args.format {
        OutputFormat::Json => serde_json::to_string_pretty(&doc),
        OutputFormat::Coco => {
            serde_json::to_string_pretty(&coco_results(&preds, args.image_ids.as_deref())?)
        }
    }?;
    if let Some(dir) = &args.out {
        crate::atomic::write_atomic(&dir.join("predictions.json"), json.as_bytes())?;
    }
    if args.json || args.format == OutputFormat::Coco {
        stdout::line(json)?;
    } else {
        print_text(&preds)?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Problems(format!(
            "{} of {} images failed",
            failures.len(),
            paths.len()
        )))
    }
}

fn print_text(preds: &[predict::ImagePrediction]) -> Result<()> {
    for p in preds {
        let n = p.faces.len();
        stdout::line(format_args!(
            "{} ({}x{}): {n} face{}",
            p.path.display(),
            p.width,
            p.height,
            if n == 1 { "" } else { "s" }
        ))?;
        for (k, f) in p.faces.iter().enumerate() {
            if let Some([x, y, w, h]) = f.bbox.map(|b| b.xywh()) {
                let score = f.score.map_or(String::new(), |s| format!(", score {s:.1}"));
                stdout::line(format_args!(
                    "  face {k}: box {x:.0},{y:.0},{w:.0},{h:.0}{score}"
                ))?;
            }
            for (i, q) in f.points.iter().enumerate() {
                stdout::line(format_args!(
                    "  {i:>3}  x {:>9.2}  y {:>9.2}  confidence {:.3}",
                    q.x, q.y, q.confidence
                ))?;
            }
        }
        if let Some(a) = &p.annotated {
            stdout::line(format_args!("  wrote {}", a.display()))?;
        }
    }
    Ok(())
}

/// The predictions as COCO results, one per face, image ids from `ids_file` (by file name) or
/// numbered from 1 in input order.
fn coco_results(
    preds: &[predict::ImagePrediction],
    ids_file: Option<&Path>,
) -> Result<Vec<CocoResult>> {
    let ids = ids_file.map(coco::image_ids).transpose()?;
    let mut out = Vec::new();
    for (i, p) in preds.iter().enumerate() {
        let name = p
            .path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let image_id = match (&ids, ids_file) {
            (Some(ids), Some(file)) => *ids
                .get(&name)
                .ok_or_else(|| Error::file(file, format!("no image named {name:?} in `images`")))?,
            _ => i as u64 + 1,
        };
        for f in &p.faces {
            let xy: Vec<[f32; 2]> = f.points.iter().map(|q| [q.x, q.y]).collect();
            let conf: Vec<f32> = f.points.iter().map(|q| q.confidence).collect();
            let mut r = CocoResult::new(image_id, &xy, &conf);
            r.file_name = Some(p.path.display().to_string());
            out.push(r);
        }
    }
    Ok(out)
}
