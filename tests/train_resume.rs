//! Killing a run after a checkpoint and resuming it gives exactly the losses of the uninterrupted
//! run (CPU), at an epoch boundary and mid-epoch; damaged checkpoints are refused.

mod common;

use std::path::Path;

use hmreg::learn::schedule::ScheduleKind;
use hmreg::run::history::{read_jsonl, EpochRecord, METRICS_JSONL};
use hmreg::run::TrainConfig;
use hmreg::train::{train, RunOptions};

fn tiny(root: &Path) -> TrainConfig {
    common::tiny_config(root, 11, 2)
}

/// Epoch, train loss, valid loss, metrics, learning rate.
type Figures = (usize, f64, f64, Vec<(String, f64)>, f64);

/// Everything of a record that must reproduce (not the timings).
fn figures(r: &[EpochRecord]) -> Vec<Figures> {
    r.iter()
        .map(|r| {
            (
                r.epoch,
                r.train_loss,
                r.valid_loss,
                r.metrics.iter().map(|(f, v)| (f.to_string(), v)).collect(),
                r.lr,
            )
        })
        .collect()
}

fn weights(run: &Path, tag: &str) -> Vec<u8> {
    std::fs::read(run.join("checkpoints").join(tag).join("model.safetensors")).unwrap()
}

#[test]
fn resume_reproduces_the_uninterrupted_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tiny(&data);

    let full = tmp.path().join("full");
    train(cfg.clone(), &common::quiet(&full)).unwrap();
    let want = read_jsonl(&full.join(METRICS_JSONL)).unwrap();
    assert_eq!(want.len(), 2);

    // Killed after epoch 1, resumed.
    let cut = tmp.path().join("cut");
    let s = train(
        cfg.clone(),
        &RunOptions {
            stop_after_epochs: Some(1),
            ..common::quiet(&cut)
        },
    )
    .unwrap();
    assert!(!s.finished);
    assert_eq!(read_jsonl(&cut.join(METRICS_JSONL)).unwrap().len(), 1);
    let s = train(
        cfg.clone(),
        &RunOptions {
            resume: true,
            ..common::quiet(&cut)
        },
    )
    .unwrap();
    assert!(s.finished);
    let got = read_jsonl(&cut.join(METRICS_JSONL)).unwrap();
    assert_eq!(figures(&got), figures(&want));
    assert_eq!(weights(&cut, "epoch-0002"), weights(&full, "epoch-0002"));

    // Killed mid-epoch (after step 3 of 4: epoch 2, batch 1), resumed.
    let mid = tmp.path().join("mid");
    let s = train(
        cfg.clone(),
        &RunOptions {
            stop_after_steps: Some(3),
            ..common::quiet(&mid)
        },
    )
    .unwrap();
    assert!(!s.finished);
    assert!(mid
        .join("checkpoints/epoch-0001-batch-000001/manifest.json")
        .exists());
    train(
        cfg,
        &RunOptions {
            resume: true,
            ..common::quiet(&mid)
        },
    )
    .unwrap();
    let got = read_jsonl(&mid.join(METRICS_JSONL)).unwrap();
    assert_eq!(figures(&got), figures(&want));
    assert_eq!(weights(&mid, "epoch-0002"), weights(&full, "epoch-0002"));
}

#[test]
fn damaged_checkpoints_and_mismatched_configs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(&tmp.path().join("data"));
    let run = tmp.path().join("run");
    train(
        cfg.clone(),
        &RunOptions {
            stop_after_epochs: Some(1),
            ..common::quiet(&run)
        },
    )
    .unwrap();

    // A fresh run into a directory that holds one.
    let err = train(cfg.clone(), &common::quiet(&run))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--resume"), "{err}");

    // Another config.
    let mut other = cfg.clone();
    other.schedule.lr = 5e-3;
    let err = train(
        other,
        &RunOptions {
            resume: true,
            ..common::quiet(&run)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("config.toml"), "{err}");

    // A truncated weights file.
    let model = run.join("checkpoints/epoch-0001/model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = train(
        cfg.clone(),
        &RunOptions {
            resume: true,
            ..common::quiet(&run)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("epoch-0001/model.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn fine_tune_resumed_at_the_unfreeze_boundary_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(&tmp.path().join("data"));
    cfg.schedule.kind = ScheduleKind::FineTune;
    cfg.schedule.freeze_epochs = 1;
    cfg.epochs = 1;
    let full = tmp.path().join("full");
    train(cfg.clone(), &common::quiet(&full)).unwrap();
    let cut = tmp.path().join("cut");
    train(
        cfg.clone(),
        &RunOptions {
            stop_after_epochs: Some(1),
            ..common::quiet(&cut)
        },
    )
    .unwrap();
    train(
        cfg,
        &RunOptions {
            resume: true,
            ..common::quiet(&cut)
        },
    )
    .unwrap();
    let want = read_jsonl(&full.join(METRICS_JSONL)).unwrap();
    let got = read_jsonl(&cut.join(METRICS_JSONL)).unwrap();
    assert_eq!(want.len(), 2);
    assert!(want[0].frozen && !want[1].frozen);
    assert_eq!(figures(&got), figures(&want));
    assert_eq!(weights(&cut, "epoch-0002"), weights(&full, "epoch-0002"));
}
