//! The built-in face detector and `hmreg predict` on photos with the built-in model: no panic on
//! tiny or faceless images, bounded options refused clearly, the detector-to-crop convention,
//! boxes past the photo's sides, and inputs from folders and standard input.

mod common;
use common::hmreg;

use std::io::Write;
use std::process::Stdio;

use hmreg::detect::{landmark_box, DetectOptions, FaceDetector, LANDMARK_BOX_SCALE};
use hmreg::BBox;
use image::{Rgb, RgbImage};

#[path = "../benches/shared/photos.rs"]
mod photos;

fn group_photo() -> RgbImage {
    photos::group_photo().unwrap()
}

fn three_faces() -> RgbImage {
    photos::three_faces(&group_photo())
}

/// `hmreg predict ARGS`, which must succeed, and its JSON document.
fn predict_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = hmreg().arg("predict").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A photo-sized picture with smooth texture and no face.
fn scenery(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = ((x as f32 / 37.0).sin() * 60.0 + (y as f32 / 23.0).cos() * 60.0 + 128.0) as u8;
        Rgb([v, v / 2 + 40, 255 - v])
    })
}

#[test]
fn the_detector_finds_nothing_in_scenery_and_survives_tiny_images() {
    let mut det = FaceDetector::new(&DetectOptions::default()).unwrap();
    assert!(det.detect(&scenery(320, 240)).is_empty());
    // Smaller than the window: no faces, no panic.
    assert!(det.detect(&scenery(12, 300)).is_empty());
    assert!(det.detect(&RgbImage::new(1, 1)).is_empty());
    // The cascade's limits are refused as errors, not panics.
    for bad in [
        DetectOptions {
            min_face: 8,
            ..Default::default()
        },
        DetectOptions {
            threshold: 0.0,
            ..Default::default()
        },
    ] {
        assert!(FaceDetector::new(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_detector_finds_the_faces_of_a_group_photo() {
    let mut det = FaceDetector::new(&DetectOptions::default()).unwrap();
    // 29 people face the camera in the photo; a few sit half-hidden behind others.
    let all = det.detect(&group_photo());
    assert!((25..=32).contains(&all.len()), "{} faces", all.len());
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    let three = det.detect(&three_faces());
    assert_eq!(three.len(), 3, "{three:?}");
    for f in &three {
        assert!((200.0..400.0).contains(&f.bbox.width()), "{f:?}");
    }
    let two = FaceDetector::new(&DetectOptions {
        max_faces: 2,
        ..Default::default()
    })
    .unwrap()
    .detect(&three_faces());
    assert_eq!(two, three[..2].to_vec());
}

#[test]
fn the_built_in_model_puts_68_points_on_each_face_of_a_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = tmp.path().join("three.png");
    three_faces().save(&photo).unwrap();
    let doc = predict_json(&["--json".as_ref(), photo.as_os_str()]);
    let faces = doc["predictions"][0]["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 3);
    for f in faces {
        let b: Vec<f32> = f["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let pts = f["points"].as_array().unwrap();
        assert_eq!(pts.len(), 68);
        // The jaw line reaches below a SeetaFace box (see detect::LANDMARK_BOX_SHIFT): the
        // points must lie in the box widened by a quarter of its side below and to the sides.
        let m = 0.25 * b[2];
        for p in pts {
            let (x, y) = (
                p["x"].as_f64().unwrap() as f32,
                p["y"].as_f64().unwrap() as f32,
            );
            assert!(
                x > b[0] - m && x < b[0] + b[2] + m && y > b[1] - m && y < b[1] + b[3] + m,
                "point ({x}, {y}) outside box {b:?}"
            );
        }
    }
}

#[test]
fn detector_boxes_become_landmark_crops_below_their_centre() {
    let [x, y, w, h] = landmark_box(BBox::from_xywh([100.0, 50.0, 200.0, 200.0])).xywh();
    assert!((w - LANDMARK_BOX_SCALE * 200.0).abs() < 1e-3);
    assert!((h - LANDMARK_BOX_SCALE * 200.0).abs() < 1e-3);
    // Same horizontal centre, lower vertical centre (the jaw line reaches below the box).
    assert!((x + w / 2.0 - 200.0).abs() < 1e-3);
    assert!(y + h / 2.0 > 150.0);
}

#[test]
fn predict_runs_the_built_in_model_on_files_folders_and_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    scenery(160, 120).save(photos.join("a.png")).unwrap();
    scenery(90, 90).save(photos.join("sub/b.png")).unwrap();
    std::fs::write(photos.join("broken.jpg"), b"\xFF\xD8\xFF not a jpeg").unwrap();

    // No face in scenery: the image is reported with zero faces (exit 0), detection being the
    // built-in face model's default.
    // A folder with a broken image: the others are predicted, the broken one is named, exit 1.
    let out = hmreg()
        .args(["predict", "--json"])
        .arg(&photos)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.jpg"));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["predictions"].as_array().unwrap().len(), 1);
    assert_eq!(doc["failures"].as_array().unwrap().len(), 1);
    std::fs::remove_file(photos.join("broken.jpg")).unwrap();

    let a = photos.join("a.png");
    let doc = predict_json(&["--json".as_ref(), a.as_os_str()]);
    assert_eq!(doc["faces"], "detector (SeetaFace, rustface)");
    assert_eq!(doc["predictions"][0]["faces"].as_array().unwrap().len(), 0);

    // A box reaching past the top-left corner (a leading minus is a value, not a flag) and the
    // whole-image mode both give the model's 68 points; folders expand, --recursive goes below.
    let doc = predict_json(&[
        "--json".as_ref(),
        "--recursive".as_ref(),
        "--bbox".as_ref(),
        "-15,-1,100,100".as_ref(),
        photos.as_os_str(),
    ]);
    let preds = doc["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    for p in preds {
        let faces = p["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0]["box"][0], -15.0);
        assert_eq!(faces[0]["points"].as_array().unwrap().len(), 68);
    }
    // Paths on standard input.
    let mut child = hmreg()
        .args(["predict", "--json", "--no-detect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let list = format!(
        "{}\n\n{}\n",
        photos.join("a.png").display(),
        photos.join("sub/b.png").display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["faces"], "whole image");
    assert_eq!(doc["predictions"].as_array().unwrap().len(), 2);
    // A folder without images is an error naming it; so is a too small --min-face.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = hmreg().arg("predict").arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    let out = hmreg()
        .args(["predict", "--min-face", "5"])
        .arg(photos.join("a.png"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--min-face"));
}

/// The built-in model and `hmreg predict`'s options around it.
struct Builtin {
    loaded: hmreg::run::LoadedModel,
    device: candle_core::Device,
}

impl Builtin {
    fn new() -> Builtin {
        let device = hmreg::device::test_device();
        let loaded = hmreg::run::load_model(&hmreg::run::ModelSource::Builtin, &device).unwrap();
        Builtin { loaded, device }
    }

    /// The faces `hmreg predict` reports on `img` (saved as PNG first), with these options.
    fn faces(
        &self,
        img: &RgbImage,
        search: predict::SearchOptions,
        two_pass: bool,
    ) -> Vec<predict::FacePrediction> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("photo.png");
        img.save(&path).unwrap();
        let opts = predict::PredictOptions {
            codec: self.loaded.cfg.codec().clone(),
            flip: None,
            batch_size: 8,
            faces: predict::FaceSource::Detect(search),
            out_dir: None,
            labels: false,
            two_pass,
        };
        let prepare = predict::validation_preparation(&self.loaded.cfg.pipeline);
        let (mut preds, failures) = predict::predict_files(
            self.loaded.model.as_ref(),
            &[path],
            &prepare,
            &opts,
            &self.device,
            &mut || {},
        )
        .unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        preds.remove(0).faces
    }
}

use hmreg::predict;

/// Mean distance between two faces' points.
fn mean_distance(a: &[[f32; 2]], b: &[[f32; 2]]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1]))
        .sum::<f32>()
        / a.len() as f32
}

fn centre(p: &[[f32; 2]]) -> [f32; 2] {
    let n = p.len() as f32;
    let s = p.iter().fold([0.0, 0.0], |a, q| [a[0] + q[0], a[1] + q[1]]);
    [s[0] / n, s[1] / n]
}

/// The face of `faces` whose points' centre is nearest `at`.
fn nearest(faces: &[Vec<[f32; 2]>], at: [f32; 2]) -> &Vec<[f32; 2]> {
    faces
        .iter()
        .min_by(|a, b| {
            let d = |f: &Vec<[f32; 2]>| {
                let c = centre(f);
                (c[0] - at[0]).hypot(c[1] - at[1])
            };
            d(a).total_cmp(&d(b))
        })
        .unwrap()
}

fn points(f: &predict::FacePrediction) -> Vec<[f32; 2]> {
    f.points.iter().map(|p| [p.x, p.y]).collect()
}

/// The outer eye corners' distance (points 36 and 45), the normaliser of 300-W's NME.
fn interocular(p: &[[f32; 2]]) -> f32 {
    (p[36][0] - p[45][0]).hypot(p[36][1] - p[45][1])
}

/// The three-face photo turned by 40 degrees: all three faces are found and their points are the
/// upright photo's points turned (the turned copies' boxes, merged with the upright search's,
/// give the face's angle to its first crop). The bound, 8 % of the inter-ocular distance as mean point distance: the built-in
/// model's error on 300-W faces is about 4 %, and predictions from two differently sampled crops
/// of one face can each be off by that much in opposite directions.
#[test]
fn a_face_turned_40_degrees_is_found_and_its_points_follow() {
    let m = Builtin::new();
    let photo = three_faces();
    let upright: Vec<Vec<[f32; 2]>> = m
        .faces(&photo, predict::SearchOptions::default(), true)
        .iter()
        .map(points)
        .collect();
    assert_eq!(upright.len(), 3);
    let (turned, turn) = photos::turned(&photo, 40.0);
    let found = m.faces(&turned, predict::SearchOptions::default(), true);
    // Each face once (an extra false box could only make matching harder).
    assert!(found.len() >= 3, "{found:?}");
    let found: Vec<Vec<[f32; 2]>> = found.iter().map(points).collect();
    for face in &upright {
        let want: Vec<[f32; 2]> = face.iter().map(|&p| turn.forward(p)).collect();
        let got = nearest(&found, centre(&want));
        let err = mean_distance(got, &want) / interocular(&want);
        eprintln!(
            "turned 40 degrees: mean error {:.2} % of the inter-ocular distance",
            100.0 * err
        );
        assert!(err < 0.08, "mean error {err}");
    }
}

/// Without labels, the measure is agreement: the same faces turned by 0, 20 and 40 degrees
/// should give the same points (turned back). On every face of the composed photos, two passes
/// spread no more than one pass does (mean distance to the face's mean over the turns, as a
/// fraction of the inter-ocular distance; 0.5 % slack for the decoder's sub-pixel jitter).
#[test]
fn two_passes_are_never_worse_than_one_on_composed_photos() {
    let m = Builtin::new();
    let photo = three_faces();
    let angles = [0.0f32, 20.0, 40.0];
    let spread = |two_pass: bool| -> Vec<f32> {
        // Each face's points on every turned photo, turned back to the upright frame.
        let mut runs: Vec<Vec<Vec<[f32; 2]>>> = Vec::new();
        for &deg in &angles {
            let (turned, turn) = photos::turned(&photo, deg);
            let faces: Vec<Vec<[f32; 2]>> = m
                .faces(&turned, predict::SearchOptions::default(), two_pass)
                .iter()
                .map(|f| points(f).into_iter().map(|p| turn.back(p)).collect())
                .collect();
            assert!(
                faces.len() >= 3,
                "{deg} degrees, two passes {two_pass}: {} faces",
                faces.len()
            );
            runs.push(faces);
        }
        runs[0]
            .iter()
            .map(|face| {
                let same: Vec<&Vec<[f32; 2]>> =
                    runs.iter().map(|r| nearest(r, centre(face))).collect();
                let mean: Vec<[f32; 2]> = (0..face.len())
                    .map(|i| {
                        let n = same.len() as f32;
                        let s = same
                            .iter()
                            .fold([0.0, 0.0], |a, f| [a[0] + f[i][0], a[1] + f[i][1]]);
                        [s[0] / n, s[1] / n]
                    })
                    .collect();
                same.iter().map(|f| mean_distance(f, &mean)).sum::<f32>()
                    / same.len() as f32
                    / interocular(&mean)
            })
            .collect()
    };
    let one = spread(false);
    let two = spread(true);
    eprintln!("spread over turns, one pass {one:?}, two passes {two:?}");
    for (a, b) in one.iter().zip(&two) {
        assert!(*b <= a + 0.005, "two passes spread {b}, one pass {a}");
    }
}

/// A photo larger than the detector's side limit is searched on a reduced copy; its landmarks
/// come from full-resolution crops, so they match the full-resolution search's within 2 % of the
/// inter-ocular distance (the two searches' boxes differ; the second pass's crop comes from the
/// points, which depend little on the box).
#[test]
fn a_big_photo_searched_reduced_gives_the_full_resolution_points() {
    let m = Builtin::new();
    let photo = three_faces();
    let big = image::imageops::resize(&photo, 3200, 1800, image::imageops::FilterType::Triangle);
    let full = predict::SearchOptions {
        max_side: 0,
        tilts: Vec::new(),
        ..Default::default()
    };
    let reduced = predict::SearchOptions {
        max_side: 1600,
        ..full.clone()
    };
    let a: Vec<Vec<[f32; 2]>> = m.faces(&big, full, true).iter().map(points).collect();
    let b: Vec<Vec<[f32; 2]>> = m.faces(&big, reduced, true).iter().map(points).collect();
    assert_eq!((a.len(), b.len()), (3, 3));
    for face in &a {
        let other = nearest(&b, centre(face));
        let err = mean_distance(face, other) / interocular(face);
        eprintln!(
            "reduced search: points differ by {:.2} % of the inter-ocular distance",
            100.0 * err
        );
        assert!(err < 0.02, "{err}");
    }
}

/// The search's copies (upright, the two tilts, the quarter turns) run on the thread pool, each
/// thread with a detector of its own: on one thread or more, the same faces in the same order.
#[test]
fn the_parallel_search_finds_what_the_sequential_one_does() {
    let (photo, _) = photos::turned(&three_faces(), 40.0);
    let opts = predict::SearchOptions {
        turns: true,
        ..Default::default()
    };
    let search = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| predict::find_faces(&photo, &opts).unwrap())
    };
    let one = search(1);
    assert!(one.len() >= 3, "{one:?}");
    assert_eq!(search(2), one);
    assert_eq!(search(3), one);
}
