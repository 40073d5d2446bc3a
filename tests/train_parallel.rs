//! Data-parallel training through the in-process communicator (worker threads on the CPU), the
//! same training code path a GPU group runs: 2 and 3 workers take the steps of one worker on the
//! same global batch; with BatchNorm's batch statistics they still learn; checkpoints resume on
//! any number of workers; a dying worker stops the group with its rank named.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use hmreg::device::DeviceSpec;
use hmreg::models::BatchNormMode;
use hmreg::run::history::{read_jsonl, METRICS_JSONL};
use hmreg::run::TrainConfig;
use hmreg::train::{train, RunOptions};

/// The tiny run with 12 training faces in global batches of 6 (2 steps per epoch), dividing
/// into 1, 2 and 3 workers.
fn config(data: &Path, batch_norm: BatchNormMode, epochs: usize) -> TrainConfig {
    let mut c = common::tiny_config(data, 5, 3);
    c.data.synth.train = 12;
    c.batch_size = 6;
    c.epochs = epochs;
    c.model.batch_norm = batch_norm;
    c.checkpoint.every_steps = 1;
    c.checkpoint.keep_last = 100;
    c
}

fn workers(n: usize) -> Vec<DeviceSpec> {
    vec![hmreg::device::test_device_spec(); n]
}

fn weights(run: &Path, tag: &str) -> HashMap<String, Tensor> {
    let file = run.join("checkpoints").join(tag).join("model.safetensors");
    candle_core::safetensors::load(file, &Device::Cpu).unwrap()
}

/// `‖a − b‖ / ‖a‖` over every tensor of two weight sets.
fn distance(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f64 {
    let (mut diff, mut norm) = (0f64, 0f64);
    assert_eq!(a.len(), b.len());
    for (name, x) in a {
        let x: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b[name].flatten_all().unwrap().to_vec1().unwrap();
        for (p, q) in x.iter().zip(&y) {
            diff += (*p as f64 - *q as f64).powi(2);
            norm += (*p as f64).powi(2);
        }
    }
    (diff / norm).sqrt()
}

/// Trains the tiny run on 1, 2 and 3 workers and checks that every step's parameters and every
/// epoch's loss agree: returns the largest parameter distance seen.
fn same_steps_on_1_2_3_workers(batch_norm: BatchNormMode, tolerance: f64) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = config(&data, batch_norm, 2);
    let run = |n: usize| {
        let dir = tmp.path().join(format!("w{n}"));
        let opts = RunOptions {
            devices: workers(n),
            ..common::quiet(&dir)
        };
        train(cfg.clone(), &opts).unwrap();
        dir
    };
    let one = run(1);
    let tags = [
        "epoch-0000-batch-000001",
        "epoch-0001",
        "epoch-0001-batch-000001",
        "epoch-0002",
    ];
    let mut worst = 0f64;
    for n in [2, 3] {
        let many = run(n);
        for tag in tags {
            let d = distance(&weights(&one, tag), &weights(&many, tag));
            assert!(
                d < tolerance,
                "{batch_norm:?}, {n} workers, {tag}: parameters differ by {d:e}"
            );
            worst = worst.max(d);
        }
        let (a, b) = (
            read_jsonl(&one.join(METRICS_JSONL)).unwrap(),
            read_jsonl(&many.join(METRICS_JSONL)).unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            let e = (x.train_loss - y.train_loss).abs() / x.train_loss;
            assert!(
                e < tolerance,
                "{n} workers: train loss {} vs {}",
                x.train_loss,
                y.train_loss
            );
            assert_eq!(x.lr, y.lr, "the schedule follows the global batch");
        }
    }
    worst
}

/// BatchNorm on its running statistics makes every worker's gradient independent of how the
/// batch is cut: each worker averages its shard's loss over 2 or 3 images instead of 6, the same
/// sums in another order, so the steps agree to float rounding (measured: 1e-7 after 4 steps).
#[test]
fn two_and_three_workers_take_the_steps_of_one() {
    let worst = same_steps_on_1_2_3_workers(BatchNormMode::Running, 1e-5);
    eprintln!("running statistics: worst distance {worst:e}");
}

/// Synchronised BatchNorm normalises every shard with the global batch's statistics: W workers
/// compute what one worker with the whole batch does (through other kernels: the portable
/// BatchNorm against the CPU kernel, hence a looser bound than float rounding alone).
#[test]
fn synchronised_batch_norm_on_two_and_three_workers_takes_the_steps_of_one() {
    let worst = same_steps_on_1_2_3_workers(BatchNormMode::Sync, 1e-4);
    eprintln!("synchronised statistics: worst distance {worst:e}");
}

#[test]
fn with_batch_statistics_two_workers_still_learn() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp.path().join("data"), BatchNormMode::Batch, 4);
    let dir = tmp.path().join("run");
    let opts = RunOptions {
        devices: workers(2),
        ..common::quiet(&dir)
    };
    let summary = train(cfg, &opts).unwrap();
    assert!(summary.finished);
    let records = read_jsonl(&dir.join(METRICS_JSONL)).unwrap();
    let (first, last) = (&records[0], records.last().unwrap());
    assert!(
        last.train_loss < 0.8 * first.train_loss,
        "train loss {} -> {}",
        first.train_loss,
        last.train_loss
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn a_checkpoint_of_two_workers_resumes_on_one_or_three() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp.path().join("data"), BatchNormMode::Running, 2);
    let cut = tmp.path().join("cut");
    let stopped = train(
        cfg.clone(),
        &RunOptions {
            devices: workers(2),
            stop_after_steps: Some(3),
            ..common::quiet(&cut)
        },
    )
    .unwrap();
    assert!(!stopped.finished);
    // The same checkpoint resumed twice on one worker: bit-identical continuations.
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    for d in [&a, &b, &c] {
        copy_dir(&cut, d);
    }
    let resume = |dir: &Path, n: usize| {
        let opts = RunOptions {
            resume: true,
            devices: workers(n),
            ..common::quiet(dir)
        };
        assert!(train(cfg.clone(), &opts).unwrap().finished);
    };
    resume(&a, 1);
    resume(&b, 1);
    let bytes =
        |d: &Path| std::fs::read(d.join("checkpoints/epoch-0002/model.safetensors")).unwrap();
    assert_eq!(bytes(&a), bytes(&b));
    // On three workers: the same steps, to float rounding.
    resume(&c, 3);
    let d = distance(&weights(&a, "epoch-0002"), &weights(&c, "epoch-0002"));
    assert!(d < 1e-5, "resumed on 3 workers: {d:e} from 1 worker");
}

#[test]
fn a_dying_worker_stops_every_worker_and_names_its_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp.path().join("data"), BatchNormMode::Batch, 2);
    let dir = tmp.path().join("run");
    let err = train(
        cfg.clone(),
        &RunOptions {
            devices: workers(3),
            fail_worker: Some((2, 3)),
            ..common::quiet(&dir)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("worker 2 failed") && err.contains("injected failure"),
        "{err}"
    );
    // Steps 1 and 2 were checkpointed; the last good one loads and the run resumes from it.
    let last = hmreg::run::checkpoint::latest(&dir.join("checkpoints"))
        .unwrap()
        .unwrap();
    assert!(last.ends_with("epoch-0001"), "{}", last.display());
    let resumed = train(
        cfg,
        &RunOptions {
            resume: true,
            devices: workers(3),
            ..common::quiet(&dir)
        },
    )
    .unwrap();
    assert!(resumed.finished);
}

#[test]
fn a_global_batch_that_does_not_divide_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("data"), BatchNormMode::Batch, 1);
    cfg.batch_size = 4;
    let err = train(
        cfg,
        &RunOptions {
            devices: workers(3),
            ..common::quiet(&tmp.path().join("run"))
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("batch_size 4") && err.contains("3"), "{err}");
    assert!(!tmp.path().join("run").exists(), "nothing written");
}

fn hmreg(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let out = common::hmreg()
        .args(args)
        .current_dir(dir)
        .env_remove("NNODES")
        .env_remove("NODE_RANK")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_command_line_trains_on_devices_and_refuses_what_cannot_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("data"), BatchNormMode::Batch, 1);
    cfg.device = hmreg::device::DeviceSpec::Cpu;
    std::fs::write(tmp.path().join("tiny.toml"), cfg.to_toml().unwrap()).unwrap();
    let base = ["train", "--config", "tiny.toml", "--quiet"];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }

    let (code, err) = hmreg(
        &with(&base, &["--devices", "cpu,cpu", "--out", "ok"]),
        tmp.path(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(tmp.path().join("ok/checkpoints/epoch-0001").is_dir());

    let (code, err) = hmreg(
        &with(
            &base,
            &[
                "--devices",
                "cpu,cpu,cpu",
                "--batch-size",
                "4",
                "--out",
                "r1",
            ],
        ),
        tmp.path(),
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("batch_size 4") && err.contains("3 (choose"),
        "{err}"
    );

    let (code, err) = hmreg(&with(&base, &["--nodes", "2", "--out", "r2"]), tmp.path());
    assert_ne!(code, Some(0));
    assert!(err.contains("--node-rank"), "{err}");

    let (code, err) = hmreg(
        &with(
            &base,
            &[
                "--nodes",
                "2",
                "--node-rank",
                "1",
                "--master",
                "127.0.0.1:9",
                "--out",
                "r3",
            ],
        ),
        tmp.path(),
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("nccl"), "{err}");
    assert!(
        !tmp.path().join("r3").exists(),
        "nothing written for a group that cannot form"
    );
}
