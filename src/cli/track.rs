//! `hmreg track`: faces followed through a frame sequence (a folder of frames, an animated GIF,
//! or paths on standard input), with track ids, raw and One Euro-smoothed points, and whether
//! each face was detected or tracked from the previous frame.

use std::path::{Path, PathBuf};

use clap::Args;

use super::args::{device_parser, DecodeArgs, ModelArgs};
use crate::detect::DetectOptions;
use crate::device::DeviceSpec;
use crate::eval::choices;
use crate::run::{load_model, LoadedModel, ModelSource};
use crate::sequence::faces::FaceModel;
use crate::sequence::frames::{check_fps, is_gif, write_gif, Frames};
use crate::sequence::one_euro::OneEuroSettings;
use crate::sequence::tracker::{FrameFaces, TrackOptions, Tracker};
use crate::stdout;
use crate::{Error, Result};

/// Follow faces through a sequence of frames.
#[derive(Args, Debug)]
pub struct TrackArgs {
    /// A folder of frames (JPEG or PNG, in file-name order), an animated GIF, or `-` for a list
    /// of frame paths on standard input, one per line.
    #[arg(value_name = "DIR|FILE.gif|-")]
    pub input: PathBuf,
    /// The model (default: the built-in 68-point face model).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Write annotated frames (frames/NNNNNN.png), track.gif and track.json here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print every frame's faces as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Smooth each point with the One Euro filter.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub smooth: OnOff,
    /// The filter's cutoff at rest, in Hz (lower: less jitter, more lag on slow moves).
    #[arg(long, value_name = "HZ", default_value_t = OneEuroSettings::default().min_cutoff)]
    pub min_cutoff: f64,
    /// How fast the cutoff rises with speed, in Hz per pixel/s (higher: less lag on fast moves).
    #[arg(long, value_name = "F", default_value_t = OneEuroSettings::default().beta)]
    pub beta: f64,
    /// Run the detector at least every N frames, to find new faces (0: only when a face is lost
    /// or none is followed).
    #[arg(long, value_name = "N", default_value_t = TrackOptions::default().redetect_every)]
    pub redetect: usize,
    /// Re-detect a face whose mean landmark confidence falls below this.
    #[arg(long, value_name = "C", default_value_t = TrackOptions::default().min_confidence)]
    pub min_confidence: f32,
    /// Frame rate of the sequence: the filter's clock and the GIF's speed.
    #[arg(long, default_value_t = 30.0)]
    pub fps: f64,
    /// Smallest face side to detect, in pixels (at least 20).
    #[arg(long, value_name = "PIXELS", default_value_t = DetectOptions::default().min_face)]
    pub min_face: u32,
    /// Follow at most this many faces, the detector's most confident first (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_faces: usize,
    #[command(flatten)]
    pub decoding: DecodeArgs,
    /// Device (cuda:N: the N-th GPU).
    #[arg(long, default_value = "cpu", value_parser = device_parser())]
    pub device: DeviceSpec,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

/// The model of `--run`/`--checkpoint`, else the built-in face68 (as `hmreg predict`).
pub fn load(model: &ModelArgs, device: &candle_core::Device) -> Result<LoadedModel> {
    let source = if model.run.is_none() && model.checkpoint.is_none() {
        ModelSource::Builtin
    } else {
        model.source()?
    };
    load_model(&source, device)
}

/// The loaded model with its decoder (and flip permutation with --flip-test) and the detector.
pub fn face_model<'a>(
    loaded: &'a LoadedModel,
    decoding: &DecodeArgs,
    detect: &DetectOptions,
    device: &candle_core::Device,
) -> Result<FaceModel<'a>> {
    let codec = choices::choose_codec(decoding.decoder.as_ref(), decoding.k, &loaded.cfg)?;
    let flip = if decoding.flip_test {
        Some(choices::flip_permutation(&loaded.cfg, None)?)
    } else {
        None
    };
    FaceModel::new(
        loaded.model.as_ref(),
        &loaded.cfg.pipeline,
        codec,
        flip,
        detect,
        device,
    )
}

#[derive(serde::Serialize)]
struct FrameDoc {
    #[serde(flatten)]
    faces: FrameFaces,
    name: PathBuf,
    width: u32,
    height: u32,
}

#[derive(serde::Serialize)]
struct Failure {
    frame: usize,
    error: String,
}

#[derive(serde::Serialize)]
struct TrackDoc<'a> {
    checkpoint: &'a Path,
    fps: f64,
    /// The One Euro settings, `null` with --smooth off.
    smoothing: Option<OneEuroSettings>,
    redetect: usize,
    min_confidence: f32,
    frames: &'a [FrameDoc],
    failures: &'a [Failure],
}

fn frames_of(input: &Path) -> Result<Frames> {
    if input.as_os_str() != "-" && !input.is_dir() && is_gif(input) {
        return Frames::from_gif(input);
    }
    let files = super::predict::expand_inputs(&[input.to_path_buf()], false)?;
    if files.is_empty() {
        return Err(Error::config("no frames given on standard input"));
    }
    Ok(Frames::Files(files))
}

pub fn run(args: TrackArgs) -> Result<()> {
    let fps = check_fps(args.fps)?;
    let smooth = match args.smooth {
        OnOff::On => {
            let s = OneEuroSettings {
                min_cutoff: args.min_cutoff,
                beta: args.beta,
                ..Default::default()
            };
            s.validate()?;
            Some(s)
        }
        OnOff::Off => None,
    };
    if !(args.min_confidence.is_finite() && (0.0..=1.0).contains(&args.min_confidence)) {
        return Err(Error::config(format!(
            "--min-confidence must lie in [0, 1], got {}",
            args.min_confidence
        )));
    }
    let detect = DetectOptions {
        min_face: args.min_face,
        max_faces: args.max_faces,
        ..Default::default()
    };
    let frames = frames_of(&args.input)?;
    let device = args.device.open()?;
    let loaded = load(&args.model, &device)?;
    let mut model = face_model(&loaded, &args.decoding, &detect, &device)?;
    let mut tracker = Tracker::new(TrackOptions {
        redetect_every: args.redetect,
        min_confidence: args.min_confidence,
        smooth,
        fps,
        ..Default::default()
    });
    let frames_dir = args.out.as_ref().map(|d| d.join("frames"));
    if let Some(dir) = &frames_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::file(dir, format!("cannot create folder: {e}")))?;
    }
    let bar = crate::progress::bar(frames.len() as u64, "track", !args.json);
    let mut docs = Vec::new();
    let mut failures = Vec::new();
    let mut written = Vec::new();
    let start = std::time::Instant::now();
    for i in 0..frames.len() {
        bar.inc(1);
        let img = match frames.get(i) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("hmreg track: {e}");
                failures.push(Failure {
                    frame: i,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let faces = tracker.step(&mut model, &img)?;
        if let Some(dir) = &frames_dir {
            let file = dir.join(format!("{i:06}.png"));
            crate::viz::save_png(&crate::sequence::draw::annotate(&img, &faces.faces), &file)?;
            written.push(file);
        }
        docs.push(FrameDoc {
            faces,
            name: frames.name(i),
            width: img.width(),
            height: img.height(),
        });
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let doc = TrackDoc {
        checkpoint: &loaded.checkpoint,
        fps,
        smoothing: smooth,
        redetect: args.redetect,
        min_confidence: args.min_confidence,
        frames: &docs,
        failures: &failures,
    };
    let json = serde_json::to_string_pretty(&doc)?;
    if let Some(dir) = &args.out {
        crate::atomic::write_atomic(&dir.join("track.json"), json.as_bytes())?;
        if !written.is_empty() {
            write_gif(&dir.join("track.gif"), written.len(), fps, |k| {
                crate::data::sources::image_io::read_rgb(&written[k])
            })?;
        }
    }
    if args.json {
        stdout::line(json)?;
    } else {
        print_text(&docs, seconds)?;
        if let Some(dir) = &args.out {
            stdout::line(format_args!(
                "wrote {} annotated frames, {} and {}",
                written.len(),
                dir.join("track.gif").display(),
                dir.join("track.json").display()
            ))?;
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Problems(format!(
            "{} of {} frames could not be read",
            failures.len(),
            frames.len()
        )))
    }
}

fn print_text(docs: &[FrameDoc], seconds: f64) -> Result<()> {
    let mut ids = std::collections::BTreeSet::new();
    let mut detections = 0;
    for d in docs {
        detections += d.faces.detector_ran as usize;
        let list: Vec<String> = d
            .faces
            .faces
            .iter()
            .map(|f| {
                ids.insert(f.id);
                format!(
                    "#{} {} (confidence {:.2})",
                    f.id,
                    match f.found {
                        crate::sequence::tracker::Found::Detected => "detected",
                        crate::sequence::tracker::Found::Tracked => "tracked",
                    },
                    f.confidence
                )
            })
            .collect();
        stdout::line(format_args!(
            "frame {} ({}): {}",
            d.faces.frame,
            d.name.display(),
            if list.is_empty() {
                "no face".to_string()
            } else {
                list.join(", ")
            }
        ))?;
    }
    stdout::line(format_args!(
        "{} frames, {} track{}, detector on {} frames, {:.1} frames/s (with reading and writing)",
        docs.len(),
        ids.len(),
        if ids.len() == 1 { "" } else { "s" },
        detections,
        docs.len() as f64 / seconds.max(1e-9)
    ))
}
