//! `hmreg predict` on photos, the way a user runs it, in one command:
//!
//! ```text
//! cargo bench --bench photos
//! ```
//!
//! Rows: the 1280x720 photo with 3 faces (cut from the group photo the rustface package ships)
//! with one pass and with two passes per face, upright search only; the same with the search
//! over the copies turned for tilted heads and the flip test (the defaults), without the flip
//! test, and with `--try-rotations`; then an
//! 8000x8000 JPEG (the group photo scaled up above scenery: 64 megapixels, faces of 200-300
//! pixels) and one with a single face of about 1,800 pixels (a phone portrait), each with the
//! defaults and without the tilted search, in a child process of its own (the bench re-runs itself with
//! `--child-big FILE`) so that its peak resident memory is its own: JPEG decode alone, then the
//! whole prediction (decode, reduced search, full-resolution crops, two passes).
//!
//! Last, `hmreg track`'s speed: frames per second on a 640x480 sequence with one face (a face of
//! the group photo moving along a circle over a plain background), the tracker (detection on the
//! first frame and every `--redetect` frames, crops from the previous points otherwise) next to
//! detection and landmarks on every frame (what `predict` does frame by frame), both on frames in
//! memory with the defaults of `hmreg track` (no flip test).
//!
//! Options: `--reps R` (5, medians), `--skip small|big|track`.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use hmreg::predict::{self, FaceSource, SearchOptions};
use hmreg::run::{load_model, LoadedModel, ModelSource};

// Shared with the speed and codec benches; this one times with `median_ms` only.
#[allow(dead_code)]
#[path = "shared/measure.rs"]
mod measure;
use measure::median_ms;

#[path = "shared/photos.rs"]
mod photos;

#[path = "../tests/common/exif.rs"]
mod exif;

/// Peak resident set size of this process (VmHWM), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One prediction of `path`: (faces found, milliseconds).
fn predict_once(
    loaded: &LoadedModel,
    path: &Path,
    search: &SearchOptions,
    two_pass: bool,
    flip: bool,
) -> (usize, f64) {
    let flip = flip
        .then(|| hmreg::eval::choices::flip_permutation(&loaded.cfg, None).expect("a face layout"));
    let opts = predict::PredictOptions {
        codec: loaded.cfg.codec().clone(),
        flip,
        batch_size: 8,
        faces: FaceSource::Detect(search.clone()),
        out_dir: None,
        labels: false,
        two_pass,
    };
    let prepare = predict::validation_preparation(&loaded.cfg.pipeline);
    let start = Instant::now();
    let (preds, failures) = predict::predict_files(
        loaded.model.as_ref(),
        &[path.to_path_buf()],
        &prepare,
        &opts,
        &Device::Cpu,
        &mut || {},
    )
    .expect("the detector starts");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if let Some(f) = failures.first() {
        panic!("{}", f.error);
    }
    (preds[0].faces.len(), ms)
}

fn main() {
    // The allocator settings `hmreg` starts with (src/main.rs), so that the rows time what the
    // command does.
    hmreg::ops::alloc::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let reps: usize = value("--reps").and_then(|v| v.parse().ok()).unwrap_or(5);
    let skip = value("--skip").cloned().unwrap_or_default();
    let loaded = load_model(&ModelSource::Builtin, &Device::Cpu).expect("the built-in model");
    if let Some(file) = value("--child-big") {
        big_child(&loaded, Path::new(file));
        return;
    }
    let group = photos::group_photo().expect("the rustface package's group photo");
    if let Some(dir) = value("--save-photos") {
        // The pictures for a look by eye: the 3-face photo turned by 40 degrees, the same photo
        // stored as a phone does (turned, EXIF orientation 6) and the 8000x8000 photo.
        let dir = Path::new(dir);
        std::fs::create_dir_all(dir).expect("the folder");
        let three = photos::three_faces(&group);
        photos::turned(&three, 40.0)
            .0
            .save(dir.join("tilted.png"))
            .expect("write");
        let phone = exif::jpeg_with_orientation(&exif::stored_for(&three, 6), 6);
        std::fs::write(dir.join("phone.jpg"), phone).expect("write");
        photos::big_photo(&group)
            .save(dir.join("big8000.jpg"))
            .expect("write");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("hmreg-bench-photos-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp folder");
    println!("| photo | search | passes | flip test | faces | ms per photo | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|");
    if !skip.contains("small") {
        let path = tmp.join("three.png");
        photos::three_faces(&group)
            .save(&path)
            .expect("write the photo");
        let upright = SearchOptions {
            tilts: Vec::new(),
            ..Default::default()
        };
        let turns = SearchOptions {
            turns: true,
            ..Default::default()
        };
        let default = SearchOptions::default();
        for (what, search, two, flip) in [
            ("upright", &upright, false, false),
            ("upright", &upright, true, false),
            ("+ tilts -40, 40 (default)", &default, true, false),
            ("+ tilts -40, 40 (default)", &default, true, true),
            ("+ tilts, --try-rotations", &turns, true, true),
        ] {
            let mut faces = 0;
            let ms = median_ms(1, reps, || {
                faces = predict_once(&loaded, &path, search, two, flip).0
            });
            println!(
                "| 1280x720 PNG, 3 faces | {what} | {} | {} | {faces} | {ms:.0} | |",
                if two { 2 } else { 1 },
                if flip { "yes" } else { "no" }
            );
        }
    }
    if !skip.contains("big") {
        for (name, big) in [
            ("group", photos::big_photo(&group)),
            ("portrait", photos::big_portrait(&face_square(&group))),
        ] {
            let path = tmp.join(format!("{name}.jpg"));
            let file = std::fs::File::create(&path).expect("write the photo");
            image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90)
                .encode_image(&big)
                .expect("encode the photo");
            drop(big);
            let out = std::process::Command::new(std::env::current_exe().expect("this bench"))
                .arg("--child-big")
                .arg(&path)
                .output()
                .expect("run the child");
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    if !skip.contains("track") {
        track_rows(&loaded, &group);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The first face of the 3-face photo: a square of twice its detector box (about 580 px).
fn face_square(group: &image::RgbImage) -> image::RgbImage {
    let three = photos::three_faces(group);
    let mut det = hmreg::detect::FaceDetector::new(&Default::default()).expect("the detector");
    let face = det.detect(&three)[0].bbox;
    let [cx, cy] = face.centre();
    let side = 2.0 * face.longer_side();
    let (x0, y0) = (
        (cx - side / 2.0).max(0.0) as u32,
        (cy - side / 2.0).max(0.0) as u32,
    );
    image::imageops::crop_imm(&three, x0, y0, side as u32, side as u32).to_image()
}

/// A 640x480 sequence of `n` frames: the first face of the group photo (`face_square`, scaled to
/// 200 px) moving along a circle of radius 60 px over a plain background.
fn moving_face(group: &image::RgbImage, n: usize) -> Vec<image::RgbImage> {
    let cut = face_square(group);
    let patch = image::imageops::resize(&cut, 200, 200, image::imageops::FilterType::Triangle);
    (0..n)
        .map(|i| {
            let mut frame = image::RgbImage::from_pixel(640, 480, image::Rgb([90, 110, 130]));
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            let (x, y) = (220.0 + 60.0 * a.cos(), 140.0 + 60.0 * a.sin());
            image::imageops::overlay(&mut frame, &patch, x as i64, y as i64);
            frame
        })
        .collect()
}

fn face_model(loaded: &LoadedModel) -> hmreg::sequence::faces::FaceModel<'_> {
    hmreg::sequence::faces::FaceModel::new(
        loaded.model.as_ref(),
        &loaded.cfg.pipeline,
        loaded.cfg.codec().clone(),
        None,
        &Default::default(),
        &Device::Cpu,
    )
    .expect("the face model")
}

/// Frames per second of the tracker and of detection plus landmarks on every frame.
fn track_rows(loaded: &LoadedModel, group: &image::RgbImage) {
    use hmreg::sequence::tracker::{TrackOptions, Tracker};
    let frames = moving_face(group, 90);
    println!();
    println!("| 640x480 frames, 1 face | frames | faces per frame | frames/s |");
    println!("|---|---|---|---|");
    let mut model = face_model(loaded);
    let start = Instant::now();
    let mut faces = 0;
    for f in &frames {
        faces += model.detect_and_predict(f).expect("predict").len();
    }
    let fps = frames.len() as f64 / start.elapsed().as_secs_f64();
    let per = faces as f64 / frames.len() as f64;
    println!(
        "| detection + landmarks every frame (predict) | {} | {per:.2} | {fps:.1} |",
        frames.len()
    );
    let opts = TrackOptions::default();
    let every = opts.redetect_every;
    let mut tracker = Tracker::new(opts);
    let start = Instant::now();
    let mut faces = 0;
    for f in &frames {
        faces += tracker.step(&mut model, f).expect("track").faces.len();
    }
    let fps = frames.len() as f64 / start.elapsed().as_secs_f64();
    let per = faces as f64 / frames.len() as f64;
    println!(
        "| track (re-detection every {every} frames) | {} | {per:.2} | {fps:.1} |",
        frames.len()
    );
}

/// The 8000x8000 rows, in a process of their own: decode alone, then the whole prediction.
fn big_child(loaded: &LoadedModel, path: &Path) {
    let photo = if path.file_stem().is_some_and(|s| s == "portrait") {
        "8000x8000 JPEG, 1 face"
    } else {
        "8000x8000 JPEG, 29 faces"
    };
    let start = Instant::now();
    let (img, _) = hmreg::data::sources::image_io::read_rgb_upright(path).expect("decode");
    let decode_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(img);
    let decode_rss = peak_rss_mb();
    println!("| {photo} | decode only | | | | {decode_ms:.0} | {decode_rss:.0} |");
    let (faces, ms) = predict_once(loaded, path, &SearchOptions::default(), true, true);
    println!(
        "| {photo} | defaults (reduced to 1600, tilts) | 2 | yes | {faces} | {ms:.0} | {:.0} |",
        peak_rss_mb()
    );
    let upright = SearchOptions {
        tilts: Vec::new(),
        ..Default::default()
    };
    let (faces, ms) = predict_once(loaded, path, &upright, true, true);
    println!(
        "| {photo} | --no-tilt | 2 | yes | {faces} | {ms:.0} | {:.0} |",
        peak_rss_mb()
    );
}
