//! `hmreg eval` and `hmreg predict` on a tiny run trained here: repeatable figures equal to the
//! ones training logged for the same checkpoint and decoder, flip test, decoders chosen at eval
//! time, predictions in the original frame, and a broken image among good ones.

mod common;

use std::path::{Path, PathBuf};

use hmreg::cli::eval::{execute, EvalArgs};
use hmreg::metrics::Figure;
use hmreg::run::checkpoint;
use hmreg::run::history::{read_jsonl, METRICS_JSONL};
use hmreg::run::TrainConfig;
use hmreg::train::progress::OutputMode;
use hmreg::train::{train, RunOptions};

/// The shared tiny run with 6 validation and 3 test images.
fn tiny(root: &Path) -> TrainConfig {
    let mut c = common::tiny_config(root, 11, 5);
    c.data.synth.val = 6;
    c.data.synth.test = 3;
    c
}

fn args(run: &Path) -> EvalArgs {
    EvalArgs::for_run(run)
}

fn trained() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let opts = RunOptions {
        run_dir: run.clone(),
        output: OutputMode::Quiet,
        ..Default::default()
    };
    train(tiny(&tmp.path().join("data")), &opts).unwrap();
    (tmp, run)
}

#[test]
fn eval_repeats_and_matches_the_metrics_logged_by_training() {
    let (tmp, run) = trained();
    let a = execute(&args(&run)).unwrap();
    let b = execute(&args(&run)).unwrap();
    assert_eq!(a.metrics, b.metrics, "two evaluations differ");
    assert_eq!(a.images, 6);

    // The checkpoint evaluated is the run's best; training logged its figures for that epoch.
    let best = checkpoint::read_best(&run.join("checkpoints"))
        .unwrap()
        .expect("best recorded");
    assert!(
        a.checkpoint.ends_with(&best.tag),
        "{} vs {}",
        a.checkpoint.display(),
        best.tag
    );
    let recs = read_jsonl(&run.join(METRICS_JSONL)).unwrap();
    let rec = recs
        .iter()
        .find(|r| r.epoch == best.epoch)
        .expect("record of the best epoch");
    let m = &a.metrics;
    assert!(m.nmae_vs_target.is_some());
    for f in Figure::ALL {
        assert_eq!(rec.metrics.get(f), m.get(f), "{f}");
    }

    // The same through --checkpoint + --config.
    let mut by_ckpt = args(&run);
    by_ckpt.model.run = None;
    by_ckpt.model.checkpoint = Some(a.checkpoint.clone());
    by_ckpt.model.config = Some(run.join("config.toml"));
    assert_eq!(execute(&by_ckpt).unwrap().metrics, a.metrics);

    // Any decoder at eval time; flip test runs and stays in a sane range; pictures are written.
    let mut other = args(&run);
    other.decoding.decoder = Some(hmreg::codec::Decoder::TopK { k: 9 });
    other.decoding.k = Some(4);
    other.decoding.flip_test = true;
    other.out = Some(tmp.path().join("eval"));
    let c = execute(&other).unwrap();
    assert_eq!(c.decoder, "topk:4");
    assert!(c.flip_test);
    assert!(c.metrics.nmae.is_finite() && c.metrics.nmae < 0.5);
    for f in ["results.png", "worst.png", "metrics.json", "samples.csv"] {
        assert!(tmp.path().join("eval").join(f).is_file(), "{f}");
    }
    // The test split.
    let mut test = args(&run);
    test.split = "test".into();
    let on_test = execute(&test).unwrap();
    assert_eq!(on_test.images, 3);
    // The test split written as a COCO file evaluates to the same figures.
    let data = tmp.path().join("data");
    let samples =
        hmreg::data::load_split(&data, "test", &hmreg::data::PointSelection::All).unwrap();
    let images: Vec<serde_json::Value> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let name = s.image_path.file_name().unwrap().to_string_lossy();
            serde_json::json!({"id": i + 7, "file_name": format!("test/images/{name}")})
        })
        .collect();
    let anns: Vec<serde_json::Value> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let kp: Vec<f32> = s.points.xy.iter().flat_map(|p| [p[0], p[1], 2.0]).collect();
            serde_json::json!({"id": i + 1, "image_id": i + 7, "keypoints": kp})
        })
        .collect();
    let coco = data.join("test.json");
    let doc = serde_json::json!({"images": images, "annotations": anns, "categories": []});
    std::fs::write(&coco, doc.to_string()).unwrap();
    test.split = "test.json".into();
    assert_eq!(execute(&test).unwrap().metrics, on_test.metrics);
    // A decoder parameter that does not fit is a usage error.
    let mut bad = args(&run);
    bad.decoding.decoder = Some(hmreg::codec::Decoder::Argmax);
    bad.decoding.k = Some(3);
    assert!(matches!(execute(&bad), Err(hmreg::Error::Config(_))));

    // predict through the binary: a broken file is named, the good ones still come back, exit 1.
    let good = tmp.path().join("face.png");
    image::RgbImage::from_fn(90, 70, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, 90])
    })
    .save(&good)
    .unwrap();
    let broken = tmp.path().join("broken.jpg");
    std::fs::write(&broken, b"\xFF\xD8\xFF not a jpeg").unwrap();
    let out = common::hmreg()
        .args(["predict", "--no-detect", "--json", "--run"])
        .arg(&run)
        .arg(&good)
        .arg(&broken)
        .arg("--out")
        .arg(tmp.path().join("pred"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let preds = doc["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 1);
    assert_eq!(preds[0]["width"], 90);
    assert_eq!(preds[0]["faces"][0]["points"].as_array().unwrap().len(), 5);
    assert_eq!(doc["failures"].as_array().unwrap().len(), 1);
    assert!(tmp.path().join("pred/face.png").is_file());
    assert!(tmp.path().join("pred/predictions.json").is_file());
    // All good: exit 0.
    let ok = common::hmreg()
        .args(["predict", "--no-detect", "--run"])
        .arg(&run)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // COCO results, image ids from the annotation file the images come from.
    let first = &samples[0].image_path;
    let coco_out = common::hmreg()
        .args(["predict", "--no-detect", "--format", "coco", "--image-ids"])
        .arg(&coco)
        .arg("--run")
        .arg(&run)
        .arg(first)
        .output()
        .unwrap();
    assert!(
        coco_out.status.success(),
        "{}",
        String::from_utf8_lossy(&coco_out.stderr)
    );
    let results: Vec<hmreg::data::sources::coco::CocoResult> =
        serde_json::from_slice(&coco_out.stdout).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].image_id, 7);
    assert_eq!(results[0].keypoints.len(), 5 * 3);
    let mean_conf = (0..5).map(|i| results[0].keypoints[3 * i + 2]).sum::<f32>() / 5.0;
    assert!((results[0].score - mean_conf).abs() < 1e-6);
    // An image the annotation file does not list is an error naming that file.
    let unknown = common::hmreg()
        .args(["predict", "--no-detect", "--format", "coco", "--image-ids"])
        .arg(&coco)
        .arg("--run")
        .arg(&run)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("test.json"));
}
