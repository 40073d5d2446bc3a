//! COCO keypoint files as datasets: the same samples as the LaPa layout they were written from,
//! boxes and unlabelled points carried over, and every malformed annotation named by its id.

use std::path::{Path, PathBuf};
use std::process::Command;

use hmreg::data::checks::coco::check_coco;
use hmreg::data::checks::lapa::CheckOptions;
use hmreg::data::sources::coco::{load_coco, validate};
use hmreg::data::{generate, load_split, PointSelection, SynthConfig};
use serde_json::{json, Value};

/// A synthetic LaPa-layout dataset with 4 training faces of 68 points.
fn synth(root: &Path) {
    let cfg = SynthConfig {
        train: 4,
        val: 0,
        test: 0,
        size: 64,
        seed: 3,
    };
    generate(root, &cfg).unwrap();
}

/// The COCO document of a LaPa split: one image and one annotation (id 100 + i) per file, with
/// a box around the points enlarged by 4 pixels, images referred to as `train/images/<name>`.
fn coco_of_split(root: &Path, split: &str) -> Value {
    let samples = load_split(root, split, &PointSelection::All).unwrap();
    let mut images = Vec::new();
    let mut anns = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let name = s.image_path.file_name().unwrap().to_string_lossy();
        images.push(json!({"id": i + 1, "file_name": format!("{split}/images/{name}")}));
        let kp: Vec<f32> = s.points.xy.iter().flat_map(|p| [p[0], p[1], 2.0]).collect();
        let b = s.face_box.corners();
        anns.push(json!({
            "id": 100 + i, "image_id": i + 1, "category_id": 1, "keypoints": kp,
            "bbox": [b[0] - 4.0, b[1] - 4.0, b[2] - b[0] + 8.0, b[3] - b[1] + 8.0],
        }));
    }
    let names: Vec<String> = (0..68).map(|i| format!("p{i}")).collect();
    json!({"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "face", "keypoints": names, "skeleton": [[1, 2]]}]})
}

fn write(path: &Path, doc: &Value) -> PathBuf {
    std::fs::write(path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    path.to_path_buf()
}

#[test]
fn a_coco_file_gives_the_samples_of_the_split_it_was_written_from() {
    let tmp = tempfile::tempdir().unwrap();
    synth(tmp.path());
    let mut doc = coco_of_split(tmp.path(), "train");
    // One point unlabelled, one annotation without any labelled point.
    doc["annotations"][1]["keypoints"][3 * 5 + 2] = json!(0);
    let mut empty = doc["annotations"][0].clone();
    empty["id"] = json!(999);
    empty["keypoints"] = json!(vec![0.0; 68 * 3]);
    doc["annotations"].as_array_mut().unwrap().push(empty);
    write(&tmp.path().join("train.json"), &doc);

    let lapa = load_split(tmp.path(), "train", &PointSelection::All).unwrap();
    let coco = load_split(tmp.path(), "train.json", &PointSelection::All).unwrap();
    assert_eq!(
        coco.len(),
        lapa.len(),
        "the unlabelled annotation is not a sample"
    );
    for (i, (c, l)) in coco.iter().zip(&lapa).enumerate() {
        assert_eq!(c.image_path, l.image_path);
        assert_eq!(c.points.xy, l.points.xy);
        assert_eq!(c.file_points, 68);
        assert!(c.stem.ends_with(&format!("#{}", 100 + i)), "{}", c.stem);
        let b = l.face_box.corners();
        let want = [b[0] - 4.0, b[1] - 4.0, b[2] + 4.0, b[3] + 4.0];
        // x + w is rounded once more than x_max was.
        assert!(
            c.face_box
                .corners()
                .iter()
                .zip(want)
                .all(|(a, b)| (a - b).abs() < 1e-4),
            "{:?} vs {want:?}",
            c.face_box
        );
        let hidden: Vec<usize> = (0..68).filter(|&k| !c.points.visible[k]).collect();
        assert_eq!(hidden, if i == 1 { vec![5] } else { vec![] });
    }
    // A selection picks points and their visibility.
    let sel: PointSelection = "5,36".parse().unwrap();
    let picked = load_coco(&tmp.path().join("train.json"), &sel).unwrap();
    assert_eq!(picked[1].points.visible, vec![false, true]);
    assert_eq!(picked[0].points.xy[1], lapa[0].points.xy[36]);
    let report = validate(&tmp.path().join("train.json")).unwrap();
    assert_eq!(report.unlabelled, 1);
    assert_eq!(report.points, Some(68));
    let check = check_coco(&tmp.path().join("train.json"), &CheckOptions::default());
    assert!(check.clean, "{}", check.to_text());
    assert!(
        check
            .to_text()
            .contains("1 annotations without labelled points"),
        "{}",
        check.to_text()
    );
}

#[test]
fn malformed_annotations_are_named_by_file_and_id() {
    let tmp = tempfile::tempdir().unwrap();
    synth(tmp.path());
    let good = coco_of_split(tmp.path(), "train");
    let path = tmp.path().join("bad.json");
    let expect_error = |doc: &Value, wants: &[&str]| {
        write(&path, doc);
        let e = load_coco(&path, &PointSelection::All)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.json"), "{e}");
        for w in wants {
            assert!(e.contains(w), "{e:?} lacks {w:?}");
        }
    };
    let mut d = good.clone();
    d["annotations"][2]["keypoints"]
        .as_array_mut()
        .unwrap()
        .pop();
    expect_error(&d, &["annotation 102", "not a multiple of 3"]);
    let mut d = good.clone();
    d["annotations"][0]["bbox"] = json!([1, 2, 0, 5]);
    expect_error(&d, &["annotation 100", "bbox"]);
    let mut d = good.clone();
    d["annotations"][3]["keypoints"][2] = json!(7);
    expect_error(&d, &["annotation 103", "visibility 7"]);
    let mut d = good.clone();
    d["annotations"][1]["image_id"] = json!(77);
    expect_error(&d, &["annotation 101", "image_id 77"]);
    let mut d = good.clone();
    d["images"][0]["file_name"] = json!("train/images/missing.jpg");
    expect_error(&d, &["image 1", "missing.jpg", "not found"]);
    // Missing keys and non-numeric values: the entry is named, not just the file.
    let mut d = good.clone();
    d["annotations"][2]
        .as_object_mut()
        .unwrap()
        .remove("image_id");
    expect_error(&d, &["annotation 102", "image_id"]);
    let mut d = good.clone();
    d["annotations"][1]["keypoints"][4] = json!("twelve");
    expect_error(&d, &["annotation 101", "twelve"]);
    let mut d = good.clone();
    d["images"][3].as_object_mut().unwrap().remove("file_name");
    expect_error(&d, &["image 4", "file_name"]);
    let mut d = good.clone();
    let names = d["categories"][0]["keypoints"].as_array_mut().unwrap();
    names.truncate(5);
    expect_error(&d, &["annotation 100", "category 1 names 5"]);
    // Not JSON at all: the line of the syntax error.
    std::fs::write(&path, "{\n \"images\": [],\n \"annotations\": [ oops ]\n}").unwrap();
    let e = load_coco(&path, &PointSelection::All).unwrap_err();
    assert!(matches!(&e, hmreg::Error::Parse { line: 3, .. }), "{e:?}");

    // The check lists every problem at once, and the command exits 1 naming them.
    let mut d = good.clone();
    d["annotations"][0]["bbox"] = json!([1, 2, -3, 5]);
    d["annotations"][2]["keypoints"] = json!([1, 2]);
    write(&path, &d);
    let report = check_coco(&path, &CheckOptions::default());
    assert_eq!(report.problems.len(), 2, "{}", report.to_text());
    let out = Command::new(env!("CARGO_BIN_EXE_hmreg"))
        .args(["data", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("annotation 100") && text.contains("annotation 102"),
        "{text}"
    );
}

#[test]
fn data_show_draws_every_source_of_a_mixed_run() {
    let tmp = tempfile::tempdir().unwrap();
    synth(tmp.path());
    let coco = write(
        &tmp.path().join("train.json"),
        &coco_of_split(tmp.path(), "train"),
    );
    let png = tmp.path().join("show.png");
    let run = |sources: &[&Path]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hmreg"))
            .args(["data", "show", "--n", "2", "--out"])
            .arg(&png)
            .args(sources)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        image::image_dimensions(&png).unwrap()
    };
    let (w1, h1) = run(&[tmp.path()]);
    let (w2, h2) = run(&[tmp.path(), &coco]);
    assert_eq!(w2, w1);
    assert_eq!(h2, 2 * h1, "one block of rows per source");
}
