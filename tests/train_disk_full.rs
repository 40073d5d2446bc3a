//! A disk that fills up during training: the checkpoint write fails, `hmreg train` stops with an
//! error naming the file and a non-zero exit, and the last complete checkpoint still loads and
//! resumes.
//!
//! The full disk is a file-size limit (`ulimit -f`, with SIGXFSZ ignored so that writes fail with
//! EFBIG instead of killing the process): unlike a read-only directory it also stops root, which
//! the suite may run as, and unlike a symlink to `/dev/full` it needs no knowledge of the
//! temporary names the atomic writer uses. The limit sits between the small files a run writes
//! (JSON, CSV) and a checkpoint's tensors, so the first write to fail is the checkpoint's.

mod common;

use std::path::Path;

use hmreg::run::checkpoint;
use hmreg::run::history::{read_jsonl, METRICS_JSONL};
use hmreg::train::{train, RunOptions};

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_full_disk_stops_training_and_the_last_checkpoint_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = common::tiny_config(&tmp.path().join("data"), 3, 1);
    cfg.epochs = 3;
    // Event files grow all run long; without them the checkpoint is the only large write.
    cfg.logging.tensorboard = false;
    let run = tmp.path().join("run");
    let s = train(
        cfg.clone(),
        &RunOptions {
            stop_after_epochs: Some(1),
            ..common::quiet(&run)
        },
    )
    .unwrap();
    assert!(!s.finished);
    let root = run.join("checkpoints");
    let good = root.join("epoch-0001");
    assert_eq!(checkpoint::latest(&root).unwrap().as_deref(), Some(&*good));
    let model = file_len(&good.join(checkpoint::MODEL_FILE));
    let small = files(&run)
        .iter()
        .filter(|p| {
            !p.extension()
                .is_some_and(|e| e == "safetensors" || e == "png")
        })
        .map(|p| file_len(p))
        .max()
        .unwrap();
    // In KiB (bash) or 512-byte blocks (dash): either way below the model file and, with the
    // margin checked here, above every small file.
    let blocks = model / 4 / 1024;
    assert!(
        blocks * 512 > 4 * small,
        "model file {model} B is too small against {small} B for this test"
    );

    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_hmreg"))
        .args(["train", "--resume", "--quiet", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status on a full disk: {stderr}"
    );
    assert!(
        stderr.contains(checkpoint::MODEL_FILE) || stderr.contains(checkpoint::OPTIMIZER_FILE),
        "the error does not name the checkpoint file: {stderr}"
    );
    assert!(stderr.contains("epoch-0002"), "{stderr}");
    assert!(
        !stderr.contains("panicked"),
        "a failed write must be an error, not a panic: {stderr}"
    );

    // The interrupted write left no temporary files and no manifest: epoch 1 is still the
    // latest checkpoint, it verifies and loads, and resuming from it finishes the run.
    let leftovers: Vec<_> = files(&run)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!root
        .join("epoch-0002")
        .join(checkpoint::MANIFEST_FILE)
        .exists());
    assert_eq!(checkpoint::latest(&root).unwrap().as_deref(), Some(&*good));
    let state = checkpoint::read_state(&good).unwrap();
    assert_eq!(state.progress.epoch, 1);
    let s = train(
        cfg,
        &RunOptions {
            resume: true,
            ..common::quiet(&run)
        },
    )
    .unwrap();
    assert!(s.finished);
    let epochs: Vec<usize> = read_jsonl(&run.join(METRICS_JSONL))
        .unwrap()
        .iter()
        .map(|r| r.epoch)
        .collect();
    assert_eq!(epochs, vec![1, 2, 3]);
}
