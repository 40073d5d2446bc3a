//! Checkpoints that a crash can never leave half-written.
//!
//! A checkpoint is a directory `<run>/checkpoints/<tag>/` holding
//! - `model.safetensors`: every parameter and buffer of the model (BatchNorm running statistics too),
//! - `optimizer.safetensors`: Adam's moments (absent in weights-only checkpoints),
//! - `state.json`: [`TrainState`]: where the run is, optimiser step counts, history, best so far,
//! - `manifest.json`, written last: size and FNV-1a 64 hash of each file above.
//!
//! Each file is written to a temporary name, flushed and renamed, and the manifest comes last, so a
//! directory without a manifest is an interrupted write (ignored: the previous checkpoint is
//! intact), and a file that does not match its manifest entry (truncated, altered) is refused with
//! an error naming it. The loader derives every sample's randomness from (seed, epoch, index), so
//! the position (epoch, batch) is all the data state a resumed run needs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::atomic::{write_atomic, write_atomic_with};
use crate::learn::optim::{Adam, OptimMeta};
use crate::models::ParamStore;
use crate::{Error, Result};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const BEST_FILE: &str = "best.json";
const MANIFEST_FORMAT: &str = "hmreg-checkpoint";
const MANIFEST_VERSION: u32 = 1;

/// `[checkpoint]` section of a training config.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Also checkpoint every this many optimiser steps inside an epoch (0: only at epoch ends).
    pub every_steps: usize,
    /// Number of most recent checkpoints kept (the best one is kept in addition).
    pub keep_last: usize,
    /// Validation figure that selects the best checkpoint: `valid_loss` or a metric name.
    pub best_metric: String,
    /// Whether a larger value of `best_metric` is better (false for losses and errors).
    pub higher_is_better: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            every_steps: 0,
            keep_last: 2,
            best_metric: "nmae".into(),
            higher_is_better: false,
        }
    }
}

impl CheckpointConfig {
    pub fn validate(&self) -> Result<()> {
        if self.keep_last == 0 {
            return Err(Error::config(
                "checkpoint.keep_last must be at least 1 (the last checkpoint is what --resume uses)",
            ));
        }
        if self.best_metric.trim().is_empty() {
            return Err(Error::config("checkpoint.best_metric must name a metric"));
        }
        Ok(())
    }
}

/// Where a run stands: `epoch` is the epoch in progress (0-based) and `batch` the number of its
/// batches already done; at an epoch boundary `batch` is 0 and `epoch` counts finished epochs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub epoch: usize,
    pub batch: usize,
    pub global_step: u64,
}

impl Progress {
    /// The directory name of a checkpoint taken at this point.
    pub fn tag(&self) -> String {
        if self.batch == 0 {
            format!("epoch-{:04}", self.epoch)
        } else {
            format!("epoch-{:04}-batch-{:06}", self.epoch, self.batch)
        }
    }
}

/// Best validation figure seen so far.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Best {
    /// Checkpoint directory name.
    pub tag: String,
    /// 1-based epoch number, as in the metrics files.
    pub epoch: usize,
    pub metric: String,
    pub value: f64,
}

/// Running sums of the epoch in progress, so that a mid-epoch resume reports the same train loss.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochSums {
    pub loss_sum: f64,
    pub batches: usize,
    pub images: usize,
    pub seconds: f64,
}

/// Everything but tensors that a resumed run needs (`state.json`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    pub progress: Progress,
    pub seed: u64,
    pub optim: OptimMeta,
    pub best: Option<Best>,
    /// One JSON object per finished epoch (the rows of `metrics.jsonl`).
    pub history: Vec<serde_json::Value>,
    /// Sums of the epoch in progress (all zero at an epoch boundary).
    pub epoch_sums: EpochSums,
    /// Anything else the training loop wants back (baseline figures, ...).
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    /// FNV-1a 64 of the content, 16 hex digits.
    pub fnv1a64: String,
}

/// `manifest.json`: the proof that a checkpoint was written completely.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub progress: Progress,
    pub files: Vec<FileEntry>,
}

/// FNV-1a, 64 bits: a cheap content check that catches truncation and most corruption.
pub fn fnv1a64_file(path: &Path) -> Result<(u64, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::file(path, e.to_string()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut bytes = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::file(path, e.to_string()))?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        bytes += n as u64;
    }
    Ok((bytes, hash))
}

fn json_pretty<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut s = serde_json::to_vec_pretty(v).map_err(|e| Error::Msg(e.to_string()))?;
    s.push(b'\n');
    Ok(s)
}

/// Writes a checkpoint for `state.progress` under `root` and returns its directory. Without an
/// optimiser the checkpoint holds weights and state only (enough for inference, not for resuming).
pub fn write(
    root: &Path,
    store: &ParamStore,
    optim: Option<&Adam>,
    state: &TrainState,
) -> Result<PathBuf> {
    let dir = root.join(state.progress.tag());
    if dir.exists() {
        // A checkpoint at the same position from an earlier attempt: replace it, manifest first so
        // that it is never mistaken for a complete one while being rewritten.
        let _ = std::fs::remove_file(dir.join(MANIFEST_FILE));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::file(&dir, e.to_string()))?;
    let mut names = vec![MODEL_FILE];
    store.save_safetensors(&dir.join(MODEL_FILE))?;
    let mut state = state.clone();
    match optim {
        Some(opt) => {
            let (tensors, meta) = opt.export();
            state.optim = meta;
            write_atomic_with(&dir.join(OPTIMIZER_FILE), |tmp| {
                candle_core::safetensors::save(&tensors, tmp)
                    .map_err(|e| Error::file(tmp, e.to_string()))
            })?;
            names.push(OPTIMIZER_FILE);
        }
        None => {
            let _ = std::fs::remove_file(dir.join(OPTIMIZER_FILE));
        }
    }
    write_atomic(&dir.join(STATE_FILE), &json_pretty(&state)?)?;
    names.push(STATE_FILE);
    let mut files = Vec::new();
    for name in names {
        let (bytes, hash) = fnv1a64_file(&dir.join(name))?;
        files.push(FileEntry {
            name: name.to_string(),
            bytes,
            fnv1a64: format!("{hash:016x}"),
        });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: MANIFEST_VERSION,
        progress: state.progress,
        files,
    };
    write_atomic(&dir.join(MANIFEST_FILE), &json_pretty(&manifest)?)?;
    Ok(dir)
}

/// Reads a checkpoint's manifest (no file checks).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::file(
            &path,
            format!("cannot read the checkpoint manifest ({e}): incomplete or not a checkpoint"),
        )
    })?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::parse(&path, e.line(), format!("not a checkpoint manifest: {e}")))?;
    if m.format != MANIFEST_FORMAT || m.version != MANIFEST_VERSION {
        return Err(Error::file(
            &path,
            format!(
                "unsupported checkpoint format `{}` version {} (expected `{MANIFEST_FORMAT}` {MANIFEST_VERSION})",
                m.format, m.version
            ),
        ));
    }
    Ok(m)
}

/// Checks every file listed in the manifest: present, of the recorded size and hash.
pub fn verify(dir: &Path, manifest: &Manifest) -> Result<()> {
    for f in &manifest.files {
        let path = dir.join(&f.name);
        let meta = std::fs::metadata(&path).map_err(|e| {
            Error::file(&path, format!("checkpoint file missing or unreadable: {e}"))
        })?;
        if meta.len() != f.bytes {
            return Err(Error::file(
                &path,
                format!(
                    "checkpoint file is {} bytes but the manifest says {}: truncated or overwritten, refusing to load it",
                    meta.len(),
                    f.bytes
                ),
            ));
        }
        let (_, hash) = fnv1a64_file(&path)?;
        if format!("{hash:016x}") != f.fnv1a64 {
            return Err(Error::file(
                &path,
                format!(
                    "checkpoint file content does not match its manifest hash ({hash:016x} vs {}): corrupted, refusing to load it",
                    f.fnv1a64
                ),
            ));
        }
    }
    Ok(())
}

/// Complete checkpoints under `root` (directories with a manifest), oldest first.
pub fn list(root: &Path) -> Result<Vec<(PathBuf, Manifest)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::file(root, e.to_string())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::file(root, e.to_string()))?;
        let dir = entry.path();
        if dir.is_dir() && dir.join(MANIFEST_FILE).exists() {
            let m = read_manifest(&dir)?;
            out.push((dir, m));
        }
    }
    out.sort_by_key(|(_, m)| (m.progress.global_step, m.progress.epoch, m.progress.batch));
    Ok(out)
}

/// The most recent complete checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    Ok(list(root)?.pop().map(|(d, _)| d))
}

/// Verifies and reads `state.json` of a checkpoint.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let manifest = read_manifest(dir)?;
    verify(dir, &manifest)?;
    parse_state(dir)
}

fn parse_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::file(&path, e.to_string()))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::parse(&path, e.line(), format!("bad checkpoint state: {e}")))
}

/// Verifies a checkpoint, loads its weights into `store` (every model tensor must be present)
/// and, if given, its moments into `optim`; returns its state.
pub fn load(dir: &Path, store: &ParamStore, optim: Option<&mut Adam>) -> Result<TrainState> {
    let manifest = read_manifest(dir)?;
    verify(dir, &manifest)?;
    let state = parse_state(dir)?;
    let model_path = dir.join(MODEL_FILE);
    let report = store.load_safetensors(&model_path)?;
    if !report.missing.is_empty() {
        return Err(Error::file(
            &model_path,
            format!(
                "checkpoint lacks {} tensors of this model (first: `{}`): a different architecture or config?",
                report.missing.len(),
                report.missing[0]
            ),
        ));
    }
    if let Some(opt) = optim {
        let path = dir.join(OPTIMIZER_FILE);
        if !manifest.files.iter().any(|f| f.name == OPTIMIZER_FILE) {
            return Err(Error::file(
                dir,
                "weights-only checkpoint: it has no optimiser state to resume from",
            ));
        }
        let tensors = candle_core::safetensors::load(&path, store.device())
            .map_err(|e| Error::file(&path, format!("not a readable safetensors file: {e}")))?;
        opt.import(&tensors, &state.optim, &path)?;
    }
    Ok(state)
}

/// Removes all but the `keep_last` most recent checkpoints, never touching those in `keep`.
pub fn prune(root: &Path, keep_last: usize, keep: &[&str]) -> Result<()> {
    let all = list(root)?;
    let n = all.len();
    for (i, (dir, _)) in all.into_iter().enumerate() {
        let name = dir.file_name().and_then(|s| s.to_str()).unwrap_or("");
        if i + keep_last < n && !keep.contains(&name) {
            // Manifest first: a half-deleted checkpoint must look incomplete, not corrupt.
            let _ = std::fs::remove_file(dir.join(MANIFEST_FILE));
            std::fs::remove_dir_all(&dir).map_err(|e| Error::file(&dir, e.to_string()))?;
        }
    }
    Ok(())
}

/// Records the best checkpoint (`<root>/best.json`).
pub fn write_best(root: &Path, best: &Best) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::file(root, e.to_string()))?;
    write_atomic(&root.join(BEST_FILE), &json_pretty(best)?)
}

/// Reads `<root>/best.json` if there is one.
pub fn read_best(root: &Path) -> Result<Option<Best>> {
    let path = root.join(BEST_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::parse(&path, e.line(), format!("bad best-checkpoint record: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::file(&path, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::optim::OptimConfig;
    use crate::learn::schedule::Hypers;
    use crate::models::{ParamGroup, ParamKind};
    use candle_core::Tensor;

    fn store(v: f32) -> ParamStore {
        let dev = crate::device::test_device();
        let mut s = ParamStore::new(&dev, 0);
        let t = Tensor::from_slice(&[v, 2.0 * v, 3.0], 3, &dev).unwrap();
        s.add(
            "conv.weight",
            t.clone(),
            ParamGroup::Head,
            ParamKind::Weight,
        )
        .unwrap();
        s.add("bn.running_mean", t, ParamGroup::Head, ParamKind::Buffer)
            .unwrap();
        s
    }

    fn stepped(s: &ParamStore) -> Adam {
        let mut opt = Adam::new(s, &OptimConfig::default()).unwrap();
        let loss = s
            .get("conv.weight")
            .unwrap()
            .var
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let h = Hypers {
            lrs: vec![0.1; 3],
            mom: 0.9,
            frozen: false,
        };
        opt.step(&loss.backward().unwrap(), &h).unwrap();
        opt
    }

    fn state(epoch: usize, batch: usize, step: u64) -> TrainState {
        TrainState {
            progress: Progress {
                epoch,
                batch,
                global_step: step,
            },
            seed: 7,
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_restores_weights_moments_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(1.0);
        let opt = stepped(&a);
        let path = write(dir.path(), &a, Some(&opt), &state(1, 0, 4)).unwrap();
        assert_eq!(path.file_name().unwrap(), "epoch-0001");
        let b = store(5.0);
        let mut ob = Adam::new(&b, &OptimConfig::default()).unwrap();
        let st = load(&path, &b, Some(&mut ob)).unwrap();
        assert_eq!(st.progress.global_step, 4);
        assert_eq!(st.optim.steps["conv.weight"], 1);
        let weights = |s: &ParamStore| -> Vec<f32> {
            s.get("conv.weight")
                .unwrap()
                .var
                .as_tensor()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(weights(&a), weights(&b));
        assert_eq!(ob.export().0.len(), 2);
    }

    #[test]
    fn truncated_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(1.0);
        let opt = stepped(&a);
        let path = write(dir.path(), &a, Some(&opt), &state(1, 0, 4)).unwrap();
        for name in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
            let p = path.join(name);
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
            let err = load(&path, &store(0.0), None).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("truncated"), "{err}");
            std::fs::write(&p, &bytes).unwrap();
        }
        // Same size, different content.
        let p = path.join(STATE_FILE);
        let mut bytes = std::fs::read(&p).unwrap();
        let i = bytes.iter().position(|&b| b == b'7').unwrap();
        bytes[i] = b'8';
        std::fs::write(&p, &bytes).unwrap();
        let err = load(&path, &store(0.0), None).unwrap_err().to_string();
        assert!(err.contains(STATE_FILE) && err.contains("hash"), "{err}");
    }

    #[test]
    fn latest_skips_incomplete_and_prune_keeps_best() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(1.0);
        for (e, b, s) in [(1, 0, 4), (1, 2, 6), (2, 0, 8), (3, 0, 12)] {
            write(dir.path(), &a, None, &state(e, b, s)).unwrap();
        }
        // An interrupted write: no manifest.
        std::fs::create_dir_all(dir.path().join("epoch-0004")).unwrap();
        let last = latest(dir.path()).unwrap().unwrap();
        assert_eq!(last.file_name().unwrap(), "epoch-0003");
        prune(dir.path(), 2, &["epoch-0001"]).unwrap();
        let left: Vec<String> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(d, _)| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["epoch-0001", "epoch-0002", "epoch-0003"]);
        // Weights-only checkpoints cannot resume an optimiser.
        let mut opt = Adam::new(&a, &OptimConfig::default()).unwrap();
        assert!(load(&last, &a, Some(&mut opt)).is_err());
    }

    #[test]
    fn best_record_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_best(dir.path()).unwrap().is_none());
        let b = Best {
            tag: "epoch-0002".into(),
            epoch: 2,
            metric: "nmae".into(),
            value: 0.01,
        };
        write_best(dir.path(), &b).unwrap();
        assert_eq!(read_best(dir.path()).unwrap(), Some(b));
    }
}
