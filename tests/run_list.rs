//! `hmreg runs` on two tiny runs that differ in seed and learning rate: the table and the JSON name
//! exactly those two settings, `--sort` orders by a figure in its direction, an unknown figure is
//! refused with the valid names, a broken run is reported by its file without hiding the others,
//! and a closed stdout ends the command quietly.

mod common;
use common::hmreg;

use std::path::Path;
use std::process::{Output, Stdio};

use hmreg::run::history::METRICS_JSONL;
use hmreg::train::train;

/// Two one-epoch runs on the same synthetic faces under `dir/runs`: `a` (seed 1, lr 1e-2) and
/// `b` (seed 2, lr 3e-3).
fn two_runs(dir: &Path) -> std::path::PathBuf {
    let runs = dir.join("runs");
    let data = dir.join("data");
    for (name, seed, lr) in [("a", 1, 1e-2), ("b", 2, 3e-3)] {
        let mut cfg = common::tiny_config(&data, seed, 4);
        cfg.epochs = 1;
        cfg.schedule.lr = lr;
        train(cfg, &common::quiet(&runs.join(name))).unwrap();
    }
    runs
}

fn runs_cmd(args: &[&str], dir: &Path) -> Output {
    hmreg().arg("runs").arg(dir).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn two_runs_differ_in_exactly_seed_and_learning_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = two_runs(tmp.path());

    // JSON: the differing keys, each run's values of them, figures, epochs.
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&runs_cmd(&["--json"], &runs))).unwrap();
    assert_eq!(v["differing"], serde_json::json!(["schedule.lr", "seed"]));
    let list = v["runs"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0]["name"].as_str(), list[1]["name"].as_str()),
        (Some("a"), Some("b"))
    );
    assert_eq!(
        list[0]["settings"],
        serde_json::json!({"schedule.lr": 0.01, "seed": 1})
    );
    assert_eq!(
        list[1]["settings"],
        serde_json::json!({"schedule.lr": 0.003, "seed": 2})
    );
    for r in list {
        assert_eq!(
            (r["epochs_done"].as_u64(), r["total_epochs"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(r["arch"], "unet-resnet18");
        // One epoch: its best is its last, for every figure.
        for f in ["nmae", "nme", "fr", "auc", "valid_loss"] {
            assert_eq!(r["best"][f]["value"], r["last"][f], "{f}");
            assert_eq!(r["best"][f]["epoch"], 1, "{f}");
        }
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
    }

    // The table: the same two settings as its last columns, one row per run.
    let text = stdout(&runs_cmd(&[], &runs));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header[..4], ["name", "arch", "data", "epochs"], "{text}");
    assert!(header.ends_with(&["wall", "schedule.lr", "seed"]), "{text}");
    assert!(
        lines[0].contains("nmae best/last") && lines[0].contains("auc best/last"),
        "{text}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        (row[0], row[row.len() - 2], row[row.len() - 1]),
        ("a", "0.01", "1"),
        "{text}"
    );
    assert!(lines[1].contains(" 1/1 "), "{text}");

    // --sort follows the figure's direction: lowest NME first, highest AUC first.
    let value = |name: &str, f: &str| -> f64 {
        let r = list.iter().find(|r| r["name"] == name).unwrap();
        r["best"][f]["value"].as_f64().unwrap()
    };
    for (figure, higher) in [("nme", false), ("auc", true), ("valid_loss", false)] {
        let v: serde_json::Value =
            serde_json::from_str(&stdout(&runs_cmd(&["--json", "--sort", figure], &runs))).unwrap();
        let order: Vec<&str> = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        let (first, second) = (value(order[0], figure), value(order[1], figure));
        assert!(
            if higher {
                first >= second
            } else {
                first <= second
            },
            "{figure}: {order:?} {first} {second}"
        );
    }
    // A loss given to --sort gets its own columns in the table.
    let text = stdout(&runs_cmd(&["--sort", "VALID_LOSS"], &runs));
    assert!(
        text.starts_with("name") && text.contains("valid_loss best/last"),
        "{text}"
    );

    // An unknown figure: a usage error naming the valid ones.
    let out = runs_cmd(&["--sort", "nmea"], &runs);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nmea") && err.contains("nmae, nmae_vs_target, nme, fr, auc"),
        "{err}"
    );

    // A closed stdout (`hmreg runs | head -0`): no panic, success.
    let mut child = hmreg()
        .arg("runs")
        .arg(&runs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");

    // A broken run among them and a folder that holds none: both reported on stderr, the two
    // good runs still listed, and the broken one makes the exit status 1.
    let broken = runs.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::copy(runs.join("a/config.toml"), broken.join("config.toml")).unwrap();
    std::fs::write(broken.join(METRICS_JSONL), "{\"epoch\": 1\n").unwrap();
    std::fs::create_dir_all(runs.join("notes")).unwrap();
    let out = runs_cmd(&[], &runs);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics.jsonl:1:") && err.contains("broken"),
        "{err}"
    );
    assert!(err.contains("notes") && err.contains("not a run"), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    // Named by itself, the broken run is the command's error.
    let out = runs_cmd(&[], &broken);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics.jsonl:1:"));
}
