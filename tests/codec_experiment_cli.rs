//! `hmreg experiment rounding` end to end on a tiny dataset written here (real data stays out of
//! the repository), plus its exit codes.

mod common;
use common::hmreg;

use std::path::Path;

/// A LaPa-layout split with `n` images of 40x20 pixels and 3 points each.
fn write_split(root: &Path, split: &str, n: usize) {
    let dir = root.join(split);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("landmarks")).unwrap();
    for i in 0..n {
        let img = image::RgbImage::new(40, 20);
        img.save(dir.join("images").join(format!("f{i}.png")))
            .unwrap();
        let pts = format!("3\n{} 5.5\n20.25 {}\n30 15\n", 3 + i, 7 + i);
        std::fs::write(dir.join("landmarks").join(format!("f{i}.txt")), pts).unwrap();
    }
}

#[test]
fn quantization_runs_on_a_root_or_a_split_folder_and_writes_results() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", 2);
    write_split(tmp.path(), "val", 3);
    let out_dir = tmp.path().join("out");
    let o = hmreg()
        .args(["experiment", "rounding", "quantization", "--json"])
        .args(["--input", "32", "--sizes", "16,8", "--draws", "2", "--data"])
        .arg(tmp.path())
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"], 5); // both splits
    assert_eq!(v["points_per_image"], 3);
    assert_eq!(v["rows"].as_array().unwrap().len(), 2 * 8);
    assert!(out_dir.join("quantization.json").is_file());
    assert!(out_dir.join("quantization.md").is_file());
    let png = image::open(out_dir.join("quantization.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);

    // One split folder directly, markdown output.
    let o = hmreg()
        .args(["experiment", "rounding", "quantization", "--sizes", "8"])
        .args(["--points", "0,2", "--data"])
        .arg(tmp.path().join("val"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("3 images x 2 points"), "{text}");
    assert!(text.contains("| floor + argmax |"));

    // --split restricts a root to one split.
    let o = hmreg()
        .args([
            "experiment",
            "rounding",
            "quantization",
            "--json",
            "--split",
            "train",
        ])
        .args(["--sizes", "8", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"], 2);
}

#[test]
fn problems_in_input_exit_1_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "val", 1);
    // A broken landmark file: exit 1 and the message names the file.
    std::fs::write(tmp.path().join("val/landmarks/f0.txt"), "3\n1 2\nx y\n").unwrap();
    let o = hmreg()
        .args(["experiment", "rounding", "quantization", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("f0.txt"));
    // No --data, a zero size, an unknown part, another part's flag, the old `--part`
    // spelling: usage errors.
    for args in [
        vec!["quantization"],
        vec!["quantization", "--data", ".", "--sizes", "0"],
        vec!["nope"],
        vec!["montecarlo", "--draws", "0"],
        vec!["montecarlo", "--data", "."],
        vec!["--part", "montecarlo"],
    ] {
        let o = hmreg()
            .args(["experiment", "rounding"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn montecarlo_json_has_the_writeup_comparison() {
    let o = hmreg()
        .args(["experiment", "rounding", "montecarlo", "--json"])
        .args([
            "--draws", "200", "--spread", "10,100", "--trials", "20", "--seed", "3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["means"].as_array().unwrap().len(), 3);
    assert_eq!(v["spread"].as_array().unwrap().len(), 2);
    assert_eq!(v["writeup_mean"][0].as_f64().unwrap() as f32, 16.673);
}
