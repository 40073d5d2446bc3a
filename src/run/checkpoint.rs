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

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::atomic::{write_atomic, write_atomic_with};
use crate::learn::optim::{Adam, OptimMeta};
use crate::metrics::{Figure, Figures};
use crate::models::ParamStore;
use crate::run::history::{EpochFigure, EpochRecord};
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
    /// Figure that selects the best checkpoint: `valid_loss`, `train_loss` or a validation
    /// figure; whether higher or lower is better comes from the figure (only AUC is higher).
    #[serde(deserialize_with = "best_metric_named")]
    pub best_metric: EpochFigure,
    /// Configs written before the direction came from the figure spell it out: accepted when it
    /// agrees with `best_metric`'s direction, refused when it contradicts it, never written back.
    #[serde(skip_serializing)]
    pub higher_is_better: Option<bool>,
}

/// `best_metric`'s parse error names the key: a figure's own error cannot know where it stood.
fn best_metric_named<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<EpochFigure, D::Error> {
    use serde::Deserialize;
    let name = String::deserialize(d)?;
    name.parse()
        .map_err(|e: Error| serde::de::Error::custom(format!("checkpoint.best_metric: {e}")))
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            every_steps: 0,
            keep_last: 2,
            best_metric: Figure::Nmae.into(),
            higher_is_better: None,
        }
    }
}

impl CheckpointConfig {
    /// `vs_target`: whether validation measures `nmae_vs_target` (`metrics.vs_target`).
    pub fn validate(&self, vs_target: bool) -> Result<()> {
        if self.keep_last == 0 {
            return Err(Error::config(
                "checkpoint.keep_last must be at least 1 (the last checkpoint is what --resume uses)",
            ));
        }
        let direction = self.best_metric.direction();
        if let Some(h) = self.higher_is_better {
            if h != direction.higher_is_better() {
                return Err(Error::config(format!(
                    "checkpoint.higher_is_better = {h} contradicts checkpoint.best_metric = \"{}\", \
                     for which {} is better: the direction now comes from the figure, so remove \
                     higher_is_better",
                    self.best_metric,
                    if direction.higher_is_better() { "higher" } else { "lower" }
                )));
            }
        }
        if self.best_metric == Figure::NmaeVsTarget.into() && !vs_target {
            return Err(Error::config(
                "checkpoint.best_metric = \"nmae_vs_target\" needs metrics.vs_target = true \
                 (validation measures it only then)",
            ));
        }
        Ok(())
    }

    /// Whether an epoch's `value` of `best_metric` replaces the best so far.
    pub fn improves(&self, value: f64, best: Option<&Best>) -> bool {
        match best {
            None => value.is_finite(),
            Some(b) => self.best_metric.direction().improves(value, b.value),
        }
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
    pub metric: EpochFigure,
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
#[serde(from = "StoredState")]
pub struct TrainState {
    pub progress: Progress,
    pub seed: u64,
    pub optim: OptimMeta,
    pub best: Option<Best>,
    /// Every finished epoch (the rows of `metrics.jsonl`).
    pub history: Vec<EpochRecord>,
    /// Sums of the epoch in progress (all zero at an epoch boundary).
    pub epoch_sums: EpochSums,
    /// The figures of predicting the training set's mean shape for every validation image.
    pub baseline: Figures,
}

/// `state.json` as read: today's layout, or the earlier one that kept the baseline in a free
/// `extra` map (`{"extra": {"baseline": {...}}}`), so runs checkpointed before still resume.
#[derive(serde::Deserialize)]
struct StoredState {
    progress: Progress,
    seed: u64,
    optim: OptimMeta,
    best: Option<Best>,
    history: Vec<EpochRecord>,
    epoch_sums: EpochSums,
    #[serde(default)]
    baseline: Option<Figures>,
    #[serde(default)]
    extra: Option<EarlierExtra>,
}

/// The earlier `extra` map: only the baseline ever went there.
#[derive(serde::Deserialize)]
struct EarlierExtra {
    #[serde(default)]
    baseline: Option<Figures>,
}

impl From<StoredState> for TrainState {
    fn from(s: StoredState) -> Self {
        TrainState {
            progress: s.progress,
            seed: s.seed,
            optim: s.optim,
            best: s.best,
            history: s.history,
            epoch_sums: s.epoch_sums,
            baseline: s
                .baseline
                .or_else(|| s.extra.and_then(|e| e.baseline))
                .unwrap_or_default(),
        }
    }
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
    let mut s = serde_json::to_vec_pretty(v)?;
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
            Error::file(
                &path,
                format!("checkpoint file listed in {MANIFEST_FILE} is missing or unreadable: {e}"),
            )
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
            metric: Figure::Nmae.into(),
            value: 0.01,
        };
        write_best(dir.path(), &b).unwrap();
        assert_eq!(read_best(dir.path()).unwrap(), Some(b));
    }

    fn record(epoch: usize, nmae: f64, auc: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            frozen: false,
            train_loss: 0.5,
            valid_loss: 0.25,
            metrics: [(Figure::Nmae, nmae), (Figure::Auc, auc)]
                .into_iter()
                .collect(),
            lr: 1e-3,
            seconds: 2.0,
            images_per_second: 8.0,
        }
    }

    #[test]
    fn state_round_trips_with_typed_history_and_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(1.0);
        let mut st = state(2, 0, 8);
        st.history = vec![record(1, 0.2, 0.1), record(2, 0.1, 0.3)];
        st.baseline = [(Figure::Nmae, 0.05), (Figure::Nme, 0.2)]
            .into_iter()
            .collect();
        st.best = Some(Best {
            tag: "epoch-0002".into(),
            epoch: 2,
            metric: Figure::Auc.into(),
            value: 0.3,
        });
        let path = write(dir.path(), &a, None, &st).unwrap();
        let back = read_state(&path).unwrap();
        assert_eq!(back, st);
        assert_eq!(back.history[1].metrics.get(Figure::Auc), Some(0.3));
        assert_eq!(back.baseline.get(Figure::Nme), Some(0.2));
        // Written as plain objects, not JSON in a string.
        let text = std::fs::read_to_string(path.join(STATE_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["baseline"]["nmae"], 0.05);
        assert_eq!(v["history"][0]["metrics"]["auc"], 0.1);
        assert_eq!(v["best"]["metric"], "auc");
        assert!(v.get("extra").is_none(), "{text}");
    }

    /// `state.json` as hmreg wrote it before the history and baseline were typed (the baseline in
    /// `extra`): a run checkpointed then still resumes.
    #[test]
    fn earlier_state_layout_still_loads() {
        let text = r#"{
  "progress": {"epoch": 1, "batch": 0, "global_step": 60},
  "seed": 0,
  "optim": {"steps": {"bn1.bias": 60}},
  "best": {"tag": "epoch-0001", "epoch": 1, "metric": "nmae", "value": 0.056803811341524124},
  "history": [{"epoch": 1, "frozen": false, "images_per_second": 29.14672706758624,
    "lr": 0.0012873865805029393, "metrics": {"auc": 0.006380238104611635, "fr": 0.984375,
    "nmae": 0.056803811341524124, "nmae_vs_target": 0.05810369923710823,
    "nme": 0.23897354304790497}, "seconds": 16.880883798,
    "train_loss": 0.008582343440502882, "valid_loss": 0.007474606856703758}],
  "epoch_sums": {"loss_sum": 0.0, "batches": 0, "images": 0, "seconds": 0.0},
  "extra": {"baseline": {"auc": 0.0016878091264516115, "fr": 0.984375,
    "nmae": 0.05475827306509018, "nme": 0.2284107655286789}}
}"#;
        let st: TrainState = serde_json::from_str(text).unwrap();
        assert_eq!(st.progress.global_step, 60);
        assert_eq!(st.baseline.get(Figure::Nmae), Some(0.05475827306509018));
        assert_eq!(st.baseline.len(), 4);
        assert_eq!(
            st.history[0].metrics.get(Figure::NmaeVsTarget),
            Some(0.05810369923710823)
        );
        assert_eq!(st.best.unwrap().metric, EpochFigure::from(Figure::Nmae));
        // A figure name hmreg never wrote is refused, not dropped.
        let bad = text.replace(
            "\"fr\": 0.984375,\n    \"nmae\"",
            "\"fx\": 0.984375,\n    \"nmae\"",
        );
        assert_ne!(bad, text);
        let err = serde_json::from_str::<TrainState>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`fx`"), "{err}");
    }

    #[test]
    fn the_direction_comes_from_the_figure() {
        let pick = |metric: EpochFigure, values: &[f64]| -> usize {
            let cfg = CheckpointConfig {
                best_metric: metric,
                ..Default::default()
            };
            let mut best: Option<Best> = None;
            for (i, &v) in values.iter().enumerate() {
                if cfg.improves(v, best.as_ref()) {
                    best = Some(Best {
                        tag: format!("epoch-{:04}", i + 1),
                        epoch: i + 1,
                        metric,
                        value: v,
                    });
                }
            }
            best.unwrap().epoch
        };
        let values = [f64::NAN, 0.3, 0.5, 0.2, 0.5];
        assert_eq!(pick(Figure::Auc.into(), &values), 3);
        assert_eq!(pick(Figure::Nmae.into(), &values), 4);
        assert_eq!(pick(EpochFigure::ValidLoss, &values), 4);
    }

    #[test]
    fn higher_is_better_is_accepted_only_when_it_agrees_with_the_figure() {
        let cfg = |metric: Figure, h: Option<bool>| CheckpointConfig {
            best_metric: metric.into(),
            higher_is_better: h,
            ..Default::default()
        };
        cfg(Figure::Nmae, None).validate(true).unwrap();
        cfg(Figure::Nmae, Some(false)).validate(true).unwrap();
        cfg(Figure::Auc, Some(true)).validate(true).unwrap();
        let err = cfg(Figure::Auc, Some(false))
            .validate(true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("higher_is_better = false")
                && err.contains("best_metric = \"auc\"")
                && err.contains("higher is better"),
            "{err}"
        );
        let err = cfg(Figure::Nme, Some(true))
            .validate(true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lower is better"), "{err}");
        // Never written back: a resolved config says only the figure.
        let toml = toml::to_string(&cfg(Figure::Nmae, Some(false))).unwrap();
        assert!(!toml.contains("higher_is_better"), "{toml}");
        assert!(toml.contains("best_metric = \"nmae\""), "{toml}");
    }

    #[test]
    fn nmae_vs_target_needs_validation_to_measure_it() {
        let cfg = CheckpointConfig {
            best_metric: Figure::NmaeVsTarget.into(),
            ..Default::default()
        };
        cfg.validate(true).unwrap();
        let err = cfg.validate(false).unwrap_err().to_string();
        assert!(err.contains("metrics.vs_target"), "{err}");
    }
}
