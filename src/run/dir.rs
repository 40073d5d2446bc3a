//! The run directory: `config.toml` (fully resolved), `checkpoints/`, `metrics.jsonl`,
//! `metrics.csv`, `curves.png`, `summary.json`; and finding a checkpoint in it.

use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::run::checkpoint;
use crate::run::config::TrainConfig;
use crate::run::resolved::ResolvedRun;
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "config.toml";
pub const SUMMARY_FILE: &str = "summary.json";
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// `runs/<config stem>-<unix seconds>` under the current directory.
pub fn default_run_dir(config: Option<&Path>) -> PathBuf {
    let stem = config
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("run");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from("runs").join(format!("{stem}-{secs}"))
}

pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINTS_DIR)
}

/// Writes the resolved config as `config.toml`.
pub fn write_config(run_dir: &Path, cfg: &ResolvedRun) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(|e| Error::file(run_dir, e.to_string()))?;
    let text = format!(
        "# Fully resolved training config written by hmreg train: every value spelled out.\n{}",
        cfg.to_toml()?
    );
    write_atomic(&run_dir.join(CONFIG_FILE), text.as_bytes())
}

/// Reads `config.toml` of a run.
pub fn read_config(run_dir: &Path) -> Result<TrainConfig> {
    TrainConfig::load(&run_dir.join(CONFIG_FILE))
}

/// Finds the checkpoint a path stands for: a checkpoint directory, a file inside one, or a run
/// directory (its best checkpoint when recorded, else the latest). Returns (run dir, checkpoint).
pub fn resolve_checkpoint(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = if path.is_file() {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        path.to_path_buf()
    };
    if dir.join(checkpoint::MANIFEST_FILE).exists() {
        let run = dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or_else(|| Error::file(&dir, "checkpoint is not inside a run directory"))?;
        return Ok((run, dir));
    }
    if dir.join(CONFIG_FILE).exists() {
        let root = checkpoints_dir(&dir);
        if let Some(best) = checkpoint::read_best(&root)? {
            let b = root.join(&best.tag);
            if b.join(checkpoint::MANIFEST_FILE).exists() {
                return Ok((dir, b));
            }
        }
        return match checkpoint::latest(&root)? {
            Some(c) => Ok((dir, c)),
            None => Err(Error::file(&root, "run has no complete checkpoint")),
        };
    }
    Err(Error::file(
        path,
        "neither a run directory (with config.toml) nor a checkpoint (with manifest.json)",
    ))
}

/// Whether a run's `saved` config is `cfg` (the device may differ).
pub fn configs_match(mut saved: TrainConfig, cfg: &ResolvedRun) -> Result<bool> {
    // Runs saved before paths were made absolute compare equal too.
    saved.absolutize_paths();
    saved.device = cfg.device;
    Ok(saved.to_toml()? == cfg.to_toml()?)
}

/// A resumed run must continue with the config it started with (the device may differ).
pub fn check_same_config(run_dir: &Path, cfg: &ResolvedRun) -> Result<()> {
    if !configs_match(read_config(run_dir)?, cfg)? {
        return Err(Error::file(
            run_dir.join(CONFIG_FILE),
            "the config differs from the one this run was started with; resume with the run's \
             own config.toml",
        ));
    }
    Ok(())
}
