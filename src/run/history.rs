//! Per-epoch records of a run and the files they go to: `metrics.jsonl` (one JSON object per
//! epoch) and `metrics.csv` (one row per epoch, same figures). Both are rewritten in full from the
//! history after every epoch (temporary file + rename), so a resumed run's files hold exactly the
//! epochs it has kept, never a duplicate or a torn line.

use std::collections::BTreeMap;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::{Error, Result};

pub const METRICS_JSONL: &str = "metrics.jsonl";
pub const METRICS_CSV: &str = "metrics.csv";

/// One finished epoch.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Encoder frozen during this epoch (fine_tune's first phase).
    pub frozen: bool,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Mean validation loss (per-batch losses weighted by batch size).
    pub valid_loss: f64,
    /// Validation figures by name (`nmae`, `nme`, `fr`, `auc`, ...), fractions.
    pub metrics: BTreeMap<String, f64>,
    /// Learning rate of the last parameter group at the epoch's last step.
    pub lr: f64,
    /// Wall-clock seconds of the epoch, validation included.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

impl EpochRecord {
    /// A figure by name: `train_loss`, `valid_loss` or a metric.
    pub fn value(&self, name: &str) -> Option<f64> {
        match name {
            "train_loss" => Some(self.train_loss),
            "valid_loss" => Some(self.valid_loss),
            _ => self.metrics.get(name).copied(),
        }
    }

    pub fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| Error::Msg(format!("epoch record to JSON: {e}")))
    }

    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(v.clone())
            .map_err(|e| Error::Msg(format!("bad epoch record in checkpoint history: {e}")))
    }
}

/// Writes `metrics.jsonl` and `metrics.csv` for `records` into `dir`.
pub fn write_files(dir: &Path, records: &[EpochRecord]) -> Result<()> {
    let mut jsonl = String::new();
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| Error::Msg(e.to_string()))?;
        jsonl.push_str(&line);
        jsonl.push('\n');
    }
    write_atomic(&dir.join(METRICS_JSONL), jsonl.as_bytes())?;
    write_atomic(&dir.join(METRICS_CSV), csv(records)?.as_bytes())
}

/// The CSV text: fixed columns, then every metric name seen (sorted), then lr and timing.
/// Non-finite values are written as empty fields.
pub fn csv(records: &[EpochRecord]) -> Result<String> {
    let mut names: Vec<&String> = records.iter().flat_map(|r| r.metrics.keys()).collect();
    names.sort();
    names.dedup();
    let csv_error = |e: csv::Error| Error::Msg(format!("{METRICS_CSV}: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["epoch", "frozen", "train_loss", "valid_loss"];
    header.extend(names.iter().map(|n| n.as_str()));
    header.extend(["lr", "seconds", "images_per_second"]);
    w.write_record(&header).map_err(csv_error)?;
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v}")
        } else {
            String::new()
        }
    };
    for r in records {
        let mut row = vec![
            r.epoch.to_string(),
            r.frozen.to_string(),
            num(r.train_loss),
            num(r.valid_loss),
        ];
        row.extend(
            names
                .iter()
                .map(|n| r.metrics.get(*n).map(|&v| num(v)).unwrap_or_default()),
        );
        row.extend([
            num(r.lr),
            format!("{:.3}", r.seconds),
            format!("{:.2}", r.images_per_second),
        ]);
        w.write_record(&row).map_err(csv_error)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Msg(format!("{METRICS_CSV}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Msg(format!("{METRICS_CSV}: {e}")))
}

/// Reads `metrics.jsonl` back (for tools and tests); errors name the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::parse(path, i + 1, format!("not an epoch record: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: usize, nmae: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            frozen: epoch == 1,
            train_loss: 0.5 / epoch as f64,
            valid_loss: 0.6 / epoch as f64,
            metrics: [("nmae".to_string(), nmae), ("auc".to_string(), 0.5)]
                .into_iter()
                .collect(),
            lr: 1e-3,
            seconds: 1.25,
            images_per_second: 10.0,
        }
    }

    #[test]
    fn files_round_trip_and_csv_has_one_row_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let recs = vec![rec(1, 0.1), rec(2, 0.05)];
        write_files(dir.path(), &recs).unwrap();
        let back = read_jsonl(&dir.path().join(METRICS_JSONL)).unwrap();
        assert_eq!(back, recs);
        let csv = std::fs::read_to_string(dir.path().join(METRICS_CSV)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,frozen,train_loss,valid_loss,auc,nmae,lr,seconds,images_per_second"
        );
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("2,false,0.25,0.3,0.5,0.05,0.001,"));
        assert_eq!(recs[1].value("nmae"), Some(0.05));
        assert_eq!(recs[1].value("valid_loss"), Some(0.3));
        assert_eq!(recs[1].value("nope"), None);
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(METRICS_JSONL);
        let good = serde_json::to_string(&rec(1, 0.1)).unwrap();
        std::fs::write(&p, format!("{good}\n{{oops\n")).unwrap();
        let err = read_jsonl(&p).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }
}
