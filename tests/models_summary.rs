//! `hmreg summary`: totals, exit codes, JSON.

use std::process::Command;

fn summary(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hmreg"))
        .arg("summary")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn unet_totals_as_fastai_prints_them() {
    let (code, out, _) = summary(&["--arch", "unet-resnet18"]);
    assert_eq!(code, 0);
    let tail: Vec<&str> = out.lines().rev().take(3).collect();
    assert_eq!(
        tail,
        [
            "Non-trainable params: 0",
            "Trainable params: 31,113,308",
            "Total params: 31,113,308"
        ]
    );
    assert!(out.contains("19,946,396 trainable, 11,166,912 non-trainable"));
    assert!(out.contains("layers.12.0") && out.contains("5 x 256 x 256"));
    let (code, out, _) = summary(&["--arch", "unet-resnet18", "--frozen"]);
    assert_eq!(code, 0);
    assert!(out.ends_with(
        "Total params: 31,113,308\nTrainable params: 19,946,396\nNon-trainable params: 11,166,912\n"
    ));
}

#[test]
fn hrnet_json_and_options() {
    // Architecture names are case-insensitive, as in `train` and in config files.
    let (code, out, err) = summary(&["--arch", "HRNet18", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_params"], 9_637_050);
    assert_eq!(v["trainable_params"], 9_637_050);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(
        layers.last().unwrap()["output"],
        serde_json::json!([5, 64, 64])
    );
    let cat = layers
        .iter()
        .find(|l| l["kind"] == "Concat(bilinear)")
        .unwrap();
    assert_eq!(cat["output"], serde_json::json!([270, 64, 64]));

    let (code, out, _) = summary(&[
        "--arch", "hrnet32", "--points", "3", "--input", "128", "--width", "0.25",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("3 x 32 x 32"), "{out}");
    assert!(out.contains("Total params: "));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let (code, _, err) = summary(&["--arch", "resnet50"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown architecture"), "{err}");
    let (code, _, err) = summary(&["--input", "100"]);
    assert_eq!(code, 2);
    assert!(err.contains("multiple of 32"), "{err}");
    let (code, _, _) = summary(&["--width", "0"]);
    assert_eq!(code, 2);
}
