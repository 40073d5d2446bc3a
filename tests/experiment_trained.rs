//! `hmreg experiment rounding trained`: the grid's cells, its config file, its four output
//! files, and skipping finished cells on a second invocation.

mod common;
use common::hmreg;

use std::path::{Path, PathBuf};

use hmreg::codec::{Decoder, TargetEncoder};
use hmreg::experiment::trained::{load_config, Cell, GridConfig, Method, MethodParams};
use hmreg::learn::loss::LossKind;
use hmreg::models::{Arch, HeadKind};
use hmreg::run::TrainConfig;

/// HRNet at width 1/8 on 64x64 synthetic faces, one epoch: a cell takes about a second.
fn tiny_base(dir: &Path) -> TrainConfig {
    let mut c = common::tiny_config(&dir.join("data"), 0, 3);
    c.epochs = 1;
    c.model.arch = Arch::Hrnet18;
    c
}

/// A 2 methods x 2 sizes x 1 seed experiment config in `dir`.
fn write_experiment(dir: &Path) -> PathBuf {
    let mut text = tiny_base(dir).to_toml().unwrap();
    text.push_str(
        "\n[rounding]\nsizes = [16, 8]\nmethods = [\"vanilla\", \"writeup-rr\"]\nseeds = [0]\n",
    );
    let path = dir.join("grid.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run_grid(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    hmreg()
        .args(["experiment", "rounding", "trained", "--quiet", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn a_two_by_two_grid_writes_its_files_and_a_second_invocation_skips_every_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_experiment(tmp.path());
    let out = tmp.path().join("grid");
    let first = run_grid(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert_eq!(stderr.matches(": training").count(), 4, "{stderr}");

    let csv = std::fs::read_to_string(out.join("trained.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 4, "{csv}");
    assert!(rows[0].starts_with("method,size,stride,seed"));
    for (method, size, stride) in [
        ("vanilla", 16, 4),
        ("writeup-rr", 16, 4),
        ("vanilla", 8, 8),
        ("writeup-rr", 8, 8),
    ] {
        let prefix = format!("{method},{size},{stride},0,1,");
        assert_eq!(
            rows.iter().filter(|r| r.starts_with(&prefix)).count(),
            1,
            "{prefix} in {csv}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trained.json")).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        let nme = c["nme"].as_f64().unwrap();
        assert!(nme.is_finite() && nme > 0.0, "{c}");
        assert!(c["nmae_vs_target"].as_f64().is_some(), "{c}");
        // Every cell is also read out by argmax, top-k and DARK; its own decoder's figure is
        // among them when it is one of those.
        let by = c["nme_by_decoder"].as_object().unwrap();
        assert_eq!(by.len(), 3, "{c}");
        let own = if c["method"] == "vanilla" {
            "argmax"
        } else {
            "topk:9"
        };
        assert_eq!(by[own].as_f64().unwrap(), nme, "{c}");
    }
    // One summary row and one floor per (method, size); the floors are the encoders' own
    // quantization errors: randomized rounding + top-k below rounding + argmax at each size.
    assert_eq!(json["summary"].as_array().unwrap().len(), 4);
    let floor = |m: &str, s: u64| {
        json["floors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["method"] == m && f["size"] == s)
            .unwrap()["nme"]
            .as_f64()
            .unwrap()
    };
    for s in [16, 8] {
        assert!(floor("writeup-rr", s) < floor("vanilla", s));
    }
    assert!(floor("vanilla", 8) > floor("vanilla", 16));
    let md = std::fs::read_to_string(out.join("trained.md")).unwrap();
    assert!(
        md.contains("| vanilla |") && md.contains("| writeup-rr |"),
        "{md}"
    );
    let png = image::open(out.join("trained.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);
    let resolved = std::fs::read_to_string(out.join("experiment.toml")).unwrap();
    assert!(resolved.contains("[rounding]"), "{resolved}");

    let metrics = out.join("vanilla/size16-seed0/metrics.jsonl");
    let before = modified(&metrics);
    let second = run_grid(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert_eq!(stderr.matches("skipped").count(), 4, "{stderr}");
    assert_eq!(stderr.matches(": training").count(), 0, "{stderr}");
    assert_eq!(modified(&metrics), before);
    assert_eq!(
        std::fs::read_to_string(out.join("trained.csv")).unwrap(),
        csv,
        "the skipped cells' results are read back unchanged"
    );

    // A finished cell trained with another budget is never reused silently.
    let changed = run_grid(&config, &out, &["--epochs", "2"]);
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert!(!changed.status.success());
    assert!(stderr.contains("size16-seed0"), "{stderr}");
}

#[test]
fn an_interrupted_cell_resumes_and_only_the_missing_cells_train() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_experiment(tmp.path());
    let out = tmp.path().join("grid");
    // One cell killed after its first step: a checkpoint, no summary.
    let (base, grid) = load_config(&config).unwrap();
    let cell = Cell {
        method: Method::WriteupRr,
        size: 8,
        seed: 0,
    };
    let cfg = cell.config(&base, &grid.params).unwrap();
    let opts = hmreg::train::RunOptions {
        stop_after_steps: Some(1),
        ..common::quiet(&cell.dir(&out))
    };
    let partial = hmreg::train::train(cfg, &opts).unwrap();
    assert!(!partial.finished);

    let run = run_grid(&config, &out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(stderr.matches(": training").count(), 3, "{stderr}");
    assert_eq!(stderr.matches(": resuming").count(), 1, "{stderr}");
    assert!(
        stderr.contains("writeup-rr 8x8 seed 0: resuming"),
        "{stderr}"
    );
}

#[test]
fn each_method_sets_its_target_loss_head_and_decoder() {
    let p = MethodParams {
        sigma: 2.0,
        pos_weight: 50.0,
        k: 5,
    };
    let base = TrainConfig::default();
    let apply = |m: Method| {
        let mut c = base.clone();
        m.apply(&mut c, &p);
        (
            c.target.encoder,
            c.loss.kind,
            c.loss.pos_weight,
            c.model.head,
            c.metrics.decoder,
        )
    };
    assert_eq!(
        apply(Method::Vanilla),
        (
            TargetEncoder::GaussianRound { sigma: 2.0 },
            LossKind::Mse,
            base.loss.pos_weight,
            HeadKind::Binary,
            Decoder::Argmax
        )
    );
    assert_eq!(
        apply(Method::BinaryRound),
        (
            TargetEncoder::Round,
            LossKind::Bce,
            50.0,
            HeadKind::Binary,
            Decoder::Argmax
        )
    );
    assert_eq!(
        apply(Method::WriteupRr),
        (
            TargetEncoder::RandomizedRounding,
            LossKind::Bce,
            50.0,
            HeadKind::Binary,
            Decoder::TopK { k: 5 }
        )
    );
    assert_eq!(
        apply(Method::PaperRr),
        (
            TargetEncoder::RandomizedRounding,
            LossKind::Bce,
            1.0,
            HeadKind::TwoChannel,
            Decoder::TopK { k: 5 }
        )
    );
    assert_eq!(
        apply(Method::SubpixelDark),
        (
            TargetEncoder::Gaussian {
                sigma: 2.0,
                subpixel: true
            },
            LossKind::Mse,
            base.loss.pos_weight,
            HeadKind::Binary,
            Decoder::Dark { sigma: Some(2.0) }
        )
    );
    for m in Method::ALL {
        assert_eq!(m.name().parse::<Method>().unwrap(), m);
    }
    assert!("gaussian".parse::<Method>().is_err());
}

#[test]
fn a_cell_sets_the_heatmap_stride_from_its_size_and_rejects_sizes_that_do_not_divide() {
    let tmp = tempfile::tempdir().unwrap();
    let mut base = tiny_base(tmp.path());
    base.pipeline.input_size = 128;
    let p = MethodParams::default();
    let cell = |size| Cell {
        method: Method::Vanilla,
        size,
        seed: 3,
    };
    for (size, stride) in [(32, 4), (16, 8), (8, 16), (4, 32)] {
        let c = cell(size).config(&base, &p).unwrap();
        assert_eq!((c.model.stride(), c.seed), (stride, 3));
    }
    // 128 / 64 = 2 is finer than HRNet's own stride 4; 128 / 48 is not an integer.
    assert!(cell(64).config(&base, &p).is_err());
    assert!(cell(48).config(&base, &p).is_err());
    assert!(cell(16)
        .dir(Path::new("g"))
        .ends_with("vanilla/size16-seed3"));
}

#[test]
fn experiment_config_errors_name_the_file_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("e.toml");
    // The [rounding] table is blanked before the training config is read: line numbers after it
    // still point at the file's own lines.
    std::fs::write(
        &path,
        "seed = 1\n[rounding]\nsizes = [8]\n\n[model]\nbogus = 1\n",
    )
    .unwrap();
    let err = load_config(&path).unwrap_err().to_string();
    assert!(err.contains("e.toml:6:"), "{err}");
    std::fs::write(&path, "seed = 1\n[rounding]\nsize = [8]\n").unwrap();
    let err = load_config(&path).unwrap_err().to_string();
    assert!(err.contains("e.toml") && err.contains("size"), "{err}");
    std::fs::write(
        &path,
        "seed = 1\n[rounding]\nmethods = [\"paper-rr\"]\nk = 4\n",
    )
    .unwrap();
    let (base, grid) = load_config(&path).unwrap();
    assert_eq!(base.seed, 1);
    assert_eq!((grid.methods, grid.params.k), (vec![Method::PaperRr], 4));
    assert_eq!(grid.sizes, GridConfig::default().sizes);
}
