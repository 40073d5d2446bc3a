//! Runs side by side (`hmreg runs`): the run directories under some folders, what each one is
//! (architecture, data, epochs done, best and last figures, wall time) and the settings in which
//! their resolved configs differ.
//!
//! A run is a directory with a `config.toml`. A folder given is either a run itself or is searched
//! for runs at any depth (a rounding grid's cells are `<method>/size<N>-seed<S>/` below its
//! folder); the search does not look inside a run. What it finds besides runs is reported, never
//! passed over in silence: a folder that holds no run ([`Listing::not_runs`]), a run whose files
//! cannot be read ([`Listing::unreadable`], with the error naming the file and line).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::metrics::Figure;
use crate::run::config::TrainConfig;
use crate::run::dir::CONFIG_FILE;
use crate::run::history::{self, EpochFigure, EpochRecord, METRICS_JSONL};
use crate::{Error, Result};

/// How deep below a folder given runs are searched for (a grid inside `runs/` is three levels
/// down); a bound also keeps a symlink loop from recursing forever.
const MAX_DEPTH: usize = 8;

/// One run as read from its directory.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The run's path relative to the folder it was found in (the folder's own path when the
    /// folder is the run), prefixed with the folder when several were given.
    pub name: String,
    pub dir: PathBuf,
    /// The resolved config (`config.toml`).
    pub config: TrainConfig,
    /// Every finished epoch (`metrics.jsonl`; empty before the first one ends).
    pub history: Vec<EpochRecord>,
    /// The config flattened to dotted keys (`schedule.lr`), values as TOML writes them.
    pub settings: BTreeMap<String, toml::Value>,
}

/// The best value of a figure over a run's epochs, in the figure's direction.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct BestValue {
    pub value: f64,
    /// 1-based epoch, as in `metrics.jsonl`.
    pub epoch: usize,
}

impl RunInfo {
    /// Reads the run in `dir`: its config and, when it has finished an epoch, its history. Errors
    /// name the file (and the line).
    pub fn read(dir: &Path, name: String) -> Result<RunInfo> {
        let config = TrainConfig::load(&dir.join(CONFIG_FILE))?;
        let jsonl = dir.join(METRICS_JSONL);
        // A run killed (or still running) before its first epoch ended has no metrics file yet.
        let history = if jsonl.exists() {
            history::read_jsonl(&jsonl)?
        } else {
            Vec::new()
        };
        let table: toml::Table = config.to_toml()?.parse().map_err(|e| {
            Error::file(
                dir.join(CONFIG_FILE),
                format!("resolved config is not TOML: {e}"),
            )
        })?;
        let mut settings = BTreeMap::new();
        flatten("", &table, &mut settings);
        Ok(RunInfo {
            name,
            dir: dir.to_path_buf(),
            config,
            history,
            settings,
        })
    }

    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }

    pub fn total_epochs(&self) -> usize {
        self.config.total_epochs()
    }

    /// The sum of the epochs' wall-clock times (validation included). `summary.json`'s seconds
    /// count only the last invocation of a resumed run; the epochs count every attempt once.
    pub fn seconds(&self) -> f64 {
        self.history.iter().map(|r| r.seconds).sum()
    }

    /// The figure's best finite value over the epochs (the first epoch that reached it).
    pub fn best(&self, f: EpochFigure) -> Option<BestValue> {
        let direction = f.direction();
        let mut best: Option<BestValue> = None;
        for r in &self.history {
            let Some(v) = r.value(f).filter(|v| v.is_finite()) else {
                continue;
            };
            if best.is_none_or(|b| direction.improves(v, b.value)) {
                best = Some(BestValue {
                    value: v,
                    epoch: r.epoch,
                });
            }
        }
        best
    }

    /// The figure's value at the last epoch.
    pub fn last(&self, f: EpochFigure) -> Option<f64> {
        self.history.last().and_then(|r| r.value(f))
    }
}

/// `prefix.key` for every scalar of `table`; a table nested in a table continues the dotted
/// path, an array stays one value (`data.points = [8, 30]`).
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

/// What the folders given hold.
#[derive(Debug, Default)]
pub struct Listing {
    pub runs: Vec<RunInfo>,
    /// Folders found while searching that are no run and hold none (an lr-find's `tb/`).
    pub not_runs: Vec<PathBuf>,
    /// Runs found while searching whose files could not be read: the error names the file.
    pub unreadable: Vec<Error>,
}

impl Listing {
    /// Reads the runs in and under `folders`. A folder given that is a run must read (its error
    /// is returned); one that is no run must hold at least one. Runs found by searching that do
    /// not read are collected in [`Listing::unreadable`] so that the others still show.
    pub fn read(folders: &[PathBuf]) -> Result<Listing> {
        let mut listing = Listing::default();
        let prefixed = folders.len() > 1;
        for folder in folders {
            if !folder.is_dir() {
                return Err(Error::file(
                    folder,
                    if folder.exists() {
                        "not a folder: name a run directory or a folder of runs"
                    } else {
                        "no such folder (runs are written to runs/ by hmreg train)"
                    },
                ));
            }
            if is_run(folder) {
                let name = folder.display().to_string();
                listing.runs.push(RunInfo::read(folder, name)?);
                continue;
            }
            let mut dirs = Vec::new();
            search(folder, 0, &mut dirs, &mut listing.not_runs)?;
            if dirs.is_empty() {
                return Err(Error::file(
                    folder,
                    format!(
                        "no run here: neither this folder nor any below it has a {CONFIG_FILE}"
                    ),
                ));
            }
            for dir in dirs {
                let rel = dir.strip_prefix(folder).unwrap_or(&dir);
                let name = if prefixed {
                    folder.join(rel)
                } else {
                    rel.to_path_buf()
                };
                match RunInfo::read(&dir, name.display().to_string()) {
                    Ok(run) => listing.runs.push(run),
                    Err(e) => listing.unreadable.push(e),
                }
            }
        }
        Ok(listing)
    }

    /// The settings in which the runs differ: the dotted keys whose value is not the same in
    /// every run (a key one run lacks counts as differing). Nothing differs within a single run.
    /// No key is left out: a resolved config holds no path of its own run directory, so every
    /// difference is one of substance (the data root differs only when the data does).
    pub fn differing_keys(&self) -> Vec<String> {
        let Some(first) = self.runs.first() else {
            return Vec::new();
        };
        let keys: BTreeSet<&String> = self.runs.iter().flat_map(|r| r.settings.keys()).collect();
        keys.into_iter()
            .filter(|k| {
                let v = first.settings.get(*k);
                self.runs.iter().any(|r| r.settings.get(*k) != v)
            })
            .cloned()
            .collect()
    }

    /// Orders the runs by their best value of `figure`, best first in the figure's direction;
    /// runs that never measured it come last. Equal values keep the name order.
    pub fn sort_by_best(&mut self, figure: EpochFigure) {
        let higher = figure.direction().higher_is_better();
        self.runs.sort_by(|a, b| {
            let (va, vb) = (a.best(figure), b.best(figure));
            match (va, vb) {
                (Some(x), Some(y)) => {
                    let o = x.value.total_cmp(&y.value);
                    if higher {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| a.name.cmp(&b.name))
        });
    }

    pub fn sort_by_name(&mut self) {
        self.runs.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// The validation figures any run measured, in report order (nmae first).
    pub fn figures(&self) -> Vec<Figure> {
        Figure::ALL
            .into_iter()
            .filter(|&f| {
                self.runs
                    .iter()
                    .any(|r| r.history.iter().any(|e| e.metrics.contains(f)))
            })
            .collect()
    }
}

fn is_run(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

/// Collects the runs below `dir` (name order) into `runs`, and into `not_runs` each folder below
/// it that holds no run at all (the topmost such folder only, not every empty one inside it).
fn search(
    dir: &Path,
    depth: usize,
    runs: &mut Vec<PathBuf>,
    not_runs: &mut Vec<PathBuf>,
) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, e.to_string()))?;
    let mut subdirs = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::file(dir, e.to_string()))?.path();
        if path.is_dir() {
            subdirs.push(path);
        }
    }
    subdirs.sort();
    for sub in subdirs {
        if is_run(&sub) {
            runs.push(sub);
            continue;
        }
        let found = runs.len();
        let mut inner = Vec::new();
        if depth + 1 < MAX_DEPTH {
            search(&sub, depth + 1, runs, &mut inner)?;
        }
        if runs.len() == found {
            not_runs.push(sub);
        } else {
            not_runs.extend(inner);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Figures;

    fn record(epoch: usize, nmae: f64, auc: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            frozen: false,
            train_loss: 1.0 / epoch as f64,
            valid_loss: 2.0 / epoch as f64,
            metrics: [(Figure::Nmae, nmae), (Figure::Auc, auc)]
                .into_iter()
                .collect::<Figures>(),
            lr: 1e-3,
            seconds: 1.5,
            images_per_second: 10.0,
        }
    }

    /// A run directory with `cfg` and `records`.
    fn write_run(dir: &Path, cfg: &TrainConfig, records: &[EpochRecord]) {
        let run = cfg.clone().resolve(None).unwrap();
        crate::run::dir::write_config(dir, &run).unwrap();
        if !records.is_empty() {
            history::write_files(dir, records).unwrap();
        }
    }

    #[test]
    fn best_follows_each_figures_direction_and_time_sums_the_epochs() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = TrainConfig::default();
        // Epoch 2 did not measure NMAE (metrics.jsonl cannot hold a NaN: JSON writes it null).
        let mut second = record(2, 0.0, 0.6);
        second.metrics = [(Figure::Auc, 0.6)].into_iter().collect();
        let recs = [
            record(1, 0.3, 0.2),
            second,
            record(3, 0.1, 0.4),
            record(4, 0.2, 0.6),
        ];
        write_run(tmp.path(), &cfg, &recs);
        let run = RunInfo::read(tmp.path(), "r".into()).unwrap();
        assert_eq!(run.epochs_done(), 4);
        assert_eq!(run.total_epochs(), 11);
        assert_eq!(run.seconds(), 6.0);
        let nmae = run.best(Figure::Nmae.into()).unwrap();
        assert_eq!((nmae.value, nmae.epoch), (0.1, 3));
        // Higher is better for AUC; a tie keeps the first epoch that reached it.
        let auc = run.best(Figure::Auc.into()).unwrap();
        assert_eq!((auc.value, auc.epoch), (0.6, 2));
        assert_eq!(run.last(Figure::Nmae.into()), Some(0.2));
        assert_eq!(run.best(Figure::Nme.into()), None);
        assert_eq!(run.settings["schedule.lr"], toml::Value::Float(8e-5));
        assert_eq!(
            run.settings["target.encoder.kind"].as_str(),
            Some("gaussian")
        );
    }

    #[test]
    fn grid_cells_are_found_below_their_folders_and_only_real_differences_count() {
        let tmp = tempfile::tempdir().unwrap();
        let grid = tmp.path().join("grid");
        let a = TrainConfig {
            seed: 1,
            ..Default::default()
        };
        let mut b = a.clone();
        b.seed = 2;
        b.schedule.lr = 1e-3;
        write_run(
            &grid.join("vanilla/size16-seed1"),
            &a,
            &[record(1, 0.2, 0.5)],
        );
        write_run(
            &grid.join("vanilla/size16-seed2"),
            &b,
            &[record(1, 0.1, 0.4)],
        );
        // A run not started yet: no metrics file.
        write_run(&grid.join("writeup-rr/size16-seed1"), &a, &[]);
        std::fs::create_dir_all(grid.join("tb/lr_find-1")).unwrap();
        let mut l = Listing::read(std::slice::from_ref(&grid)).unwrap();
        let names: Vec<&str> = l.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "vanilla/size16-seed1",
                "vanilla/size16-seed2",
                "writeup-rr/size16-seed1"
            ]
        );
        assert_eq!(l.runs[2].epochs_done(), 0);
        // Only the topmost folder without runs is reported.
        assert_eq!(l.not_runs, [grid.join("tb")]);
        assert_eq!(l.differing_keys(), ["schedule.lr", "seed"]);
        l.sort_by_best(Figure::Nmae.into());
        assert_eq!(l.runs[0].name, "vanilla/size16-seed2");
        assert_eq!(l.runs[2].name, "writeup-rr/size16-seed1");
        l.sort_by_best(Figure::Auc.into());
        assert_eq!(l.runs[0].name, "vanilla/size16-seed1");
        assert_eq!(l.figures(), [Figure::Nmae, Figure::Auc]);
        // A run given by its own path is named by it; two folders prefix their names.
        let one = Listing::read(&[grid.join("vanilla/size16-seed1")]).unwrap();
        assert_eq!(one.runs.len(), 1);
        assert!(one.differing_keys().is_empty());
        let two = Listing::read(&[grid.join("vanilla"), grid.join("writeup-rr")]).unwrap();
        assert_eq!(
            two.runs[2].name,
            grid.join("writeup-rr/size16-seed1").display().to_string()
        );
    }

    #[test]
    fn broken_files_and_empty_folders_are_reported_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = TrainConfig::default();
        let good = tmp.path().join("good");
        let bad = tmp.path().join("bad");
        write_run(&good, &cfg, &[record(1, 0.2, 0.5)]);
        write_run(&bad, &cfg, &[record(1, 0.2, 0.5)]);
        let jsonl = bad.join(METRICS_JSONL);
        let line = std::fs::read_to_string(&jsonl).unwrap();
        std::fs::write(&jsonl, format!("{line}{{torn\n")).unwrap();
        // Found by searching: the others still list, the broken one is reported with its line.
        let l = Listing::read(&[tmp.path().to_path_buf()]).unwrap();
        assert_eq!(l.runs.len(), 1);
        let err = l.unreadable[0].to_string();
        assert!(err.contains("metrics.jsonl:2:"), "{err}");
        // Named itself: the error is the command's.
        let err = Listing::read(std::slice::from_ref(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics.jsonl:2:"), "{err}");
        std::fs::write(bad.join(CONFIG_FILE), "epochs = \"many\"\n").unwrap();
        let err = Listing::read(std::slice::from_ref(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.toml:1:"), "{err}");
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(empty.join("inner")).unwrap();
        let err = Listing::read(std::slice::from_ref(&empty))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("empty") && err.contains("no run here"),
            "{err}"
        );
        let err = Listing::read(&[tmp.path().join("missing")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such folder"), "{err}");
    }
}
