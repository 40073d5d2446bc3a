//! The built-in face detector and `hmreg predict` on photos with the built-in model: no panic on
//! tiny or faceless images, bounded options refused clearly, the detector-to-crop convention,
//! boxes past the photo's sides, and inputs from folders and standard input.

mod common;
use common::hmreg;

use std::io::Write;
use std::process::Stdio;

use hmreg::detect::{landmark_box, DetectOptions, FaceDetector, LANDMARK_BOX_SCALE};
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
        assert!((200.0..400.0).contains(&f.bbox[2]), "{f:?}");
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
    let [x, y, w, h] = landmark_box([100.0, 50.0, 200.0, 200.0]);
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
