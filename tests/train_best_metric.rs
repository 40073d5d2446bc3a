//! `checkpoint.best_metric` is a typed figure: a wrong name is refused when the config is read,
//! before anything trains or is written; the best checkpoint follows the figure's own direction.

mod common;
use common::hmreg;

use std::path::Path;

use hmreg::metrics::Figure;
use hmreg::run::checkpoint;
use hmreg::run::history::{read_jsonl, EpochFigure, METRICS_JSONL};
use hmreg::run::TrainConfig;
use hmreg::train::train;

/// Asserts that an error names the key, the wrong value and every valid figure.
fn names_key_and_figures(err: &str, wrong: &str) {
    assert!(err.contains("checkpoint.best_metric"), "{err}");
    assert!(err.contains(&format!("`{wrong}`")), "{err}");
    for name in EpochFigure::names() {
        assert!(err.contains(name), "{name} missing: {err}");
    }
}

#[test]
fn a_wrong_best_metric_is_refused_when_the_config_is_read() {
    let text = "epochs = 1\n\n[checkpoint]\nkeep_last = 2\nbest_metric = \"nmea\"\n";
    let err = TrainConfig::parse(text, Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("c.toml:5:"), "{err}");
    names_key_and_figures(&err, "nmea");
    // Names are the files' own: no case folding.
    let err = TrainConfig::parse("[checkpoint]\nbest_metric = \"AUC\"\n", Path::new("c.toml"))
        .unwrap_err()
        .to_string();
    names_key_and_figures(&err, "AUC");
}

#[test]
fn hmreg_train_stops_on_a_wrong_best_metric_before_the_first_step() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = common::tiny_config(&tmp.path().join("data"), 1, 1)
        .to_toml()
        .unwrap();
    assert!(text.contains("best_metric = \"nmae\""), "{text}");
    text = text.replace("best_metric = \"nmae\"", "best_metric = \"val_loss\"");
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, &text).unwrap();
    let run = tmp.path().join("run");
    let out = hmreg()
        .args(["train", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:"), "{err}");
    names_key_and_figures(&err, "val_loss");
    // Nothing ran: no run directory, no generated data.
    assert!(!run.exists());
    assert!(!tmp.path().join("data").exists());
}

#[test]
fn a_contradicting_higher_is_better_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::tiny_config(&tmp.path().join("data"), 1, 1);
    cfg.checkpoint.best_metric = Figure::Auc.into();
    cfg.checkpoint.higher_is_better = Some(false);
    let run = tmp.path().join("run");
    let err = train(cfg, &common::quiet(&run)).unwrap_err().to_string();
    assert!(err.contains("checkpoint.higher_is_better"), "{err}");
    assert!(!run.join("config.toml").exists());
    assert!(!run.join("checkpoints").exists());
}

#[test]
fn an_old_config_with_a_consistent_higher_is_better_still_loads() {
    let text = "[checkpoint]\nbest_metric = \"auc\"\nhigher_is_better = true\n";
    let cfg = TrainConfig::parse(text, Path::new("old.toml")).unwrap();
    cfg.check().unwrap();
    assert_eq!(cfg.checkpoint.best_metric, Figure::Auc.into());
    // The built-in model's config (written before the change) spells `higher_is_better = false`.
    let face = TrainConfig::load(Path::new("models/face68/config.toml")).unwrap();
    face.check().unwrap();
    assert_eq!(face.checkpoint.best_metric, Figure::Nmae.into());
    assert!(!face.to_toml().unwrap().contains("higher_is_better"));
}

/// The first epoch with the best value of `f` in its direction (ties keep the earlier epoch).
fn best_epoch(run: &Path, f: EpochFigure) -> usize {
    let recs = read_jsonl(&run.join(METRICS_JSONL)).unwrap();
    let mut best = (0, f64::NAN);
    for r in &recs {
        let v = r.value(f).unwrap();
        if best.0 == 0 || f.direction().improves(v, best.1) {
            best = (r.epoch, v);
        }
    }
    best.0
}

#[test]
fn the_best_checkpoint_follows_the_figures_direction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::tiny_config(&tmp.path().join("data"), 3, 5);
    cfg.epochs = 3;
    // NME normalised by the box diagonal is large on this tiny run: a threshold of 1 keeps the
    // AUC away from 0 so that its epochs differ.
    cfg.metrics.accuracy.failure_threshold = 1.0;
    cfg.checkpoint.best_metric = Figure::Auc.into();
    cfg.checkpoint.keep_last = 1;
    let run = tmp.path().join("run");
    train(cfg, &common::quiet(&run)).unwrap();
    let recs = read_jsonl(&run.join(METRICS_JSONL)).unwrap();
    let aucs: Vec<f64> = recs
        .iter()
        .map(|r| r.metrics.get(Figure::Auc).unwrap())
        .collect();
    let nmaes: Vec<f64> = recs
        .iter()
        .map(|r| r.metrics.get(Figure::Nmae).unwrap())
        .collect();
    let best = checkpoint::read_best(&run.join("checkpoints"))
        .unwrap()
        .unwrap();
    assert_eq!(best.metric, Figure::Auc.into());
    assert_eq!(best.epoch, best_epoch(&run, Figure::Auc.into()), "{aucs:?}");
    assert_eq!(best.value, aucs[best.epoch - 1]);
    assert!(aucs.iter().all(|&a| a <= best.value), "{aucs:?}");
    // The best checkpoint is kept beside the last one.
    assert!(run
        .join("checkpoints")
        .join(&best.tag)
        .join("manifest.json")
        .exists());
    eprintln!("auc {aucs:?} nmae {nmaes:?}: best epoch {}", best.epoch);
}
