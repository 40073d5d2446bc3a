//! Per-epoch records of a run and the files they go to: `metrics.jsonl` (one JSON object per
//! epoch) and `metrics.csv` (one row per epoch, same figures). Both are rewritten in full from the
//! history after every epoch (temporary file + rename), so a resumed run's files hold exactly the
//! epochs it has kept, never a duplicate or a torn line.

use std::fmt;
use std::path::Path;

use crate::atomic::write_atomic;
use crate::metrics::{f64_or_nan, Direction, Figure, Figures};
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
    #[serde(deserialize_with = "f64_or_nan")]
    pub train_loss: f64,
    /// Mean validation loss (per-batch losses weighted by batch size).
    #[serde(deserialize_with = "f64_or_nan")]
    pub valid_loss: f64,
    /// Validation figures (`nmae`, `nme`, `fr`, `auc`, ...), fractions.
    pub metrics: Figures,
    /// Learning rate of the last parameter group at the epoch's last step.
    #[serde(deserialize_with = "f64_or_nan")]
    pub lr: f64,
    /// Wall-clock seconds of the epoch, validation included.
    #[serde(deserialize_with = "f64_or_nan")]
    pub seconds: f64,
    /// Training images per second.
    #[serde(deserialize_with = "f64_or_nan")]
    pub images_per_second: f64,
}

impl EpochRecord {
    /// One of the record's figures (a validation figure the epoch did not measure is `None`).
    pub fn value(&self, f: EpochFigure) -> Option<f64> {
        match f {
            EpochFigure::TrainLoss => Some(self.train_loss),
            EpochFigure::ValidLoss => Some(self.valid_loss),
            EpochFigure::Validation(m) => self.metrics.get(m),
        }
    }
}

/// A figure an epoch record holds: one of the two losses or a validation figure. What
/// `checkpoint.best_metric` names; spelled as in `metrics.csv`'s header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpochFigure {
    TrainLoss,
    ValidLoss,
    Validation(Figure),
}

impl EpochFigure {
    /// Every figure, losses first.
    pub fn all() -> impl Iterator<Item = EpochFigure> {
        [EpochFigure::TrainLoss, EpochFigure::ValidLoss]
            .into_iter()
            .chain(Figure::ALL.into_iter().map(EpochFigure::Validation))
    }

    pub fn name(self) -> &'static str {
        match self {
            EpochFigure::TrainLoss => "train_loss",
            EpochFigure::ValidLoss => "valid_loss",
            EpochFigure::Validation(f) => f.name(),
        }
    }

    /// Losses improve downwards; validation figures as [`Figure::direction`] says.
    pub fn direction(self) -> Direction {
        match self {
            EpochFigure::TrainLoss | EpochFigure::ValidLoss => Direction::LowerIsBetter,
            EpochFigure::Validation(f) => f.direction(),
        }
    }

    /// The validation figure, if it is one (the mean-shape baseline has only those).
    pub fn validation(self) -> Option<Figure> {
        match self {
            EpochFigure::Validation(f) => Some(f),
            _ => None,
        }
    }

    /// The valid names, for error messages.
    pub fn names() -> Vec<&'static str> {
        EpochFigure::all().map(EpochFigure::name).collect()
    }
}

impl From<Figure> for EpochFigure {
    fn from(f: Figure) -> Self {
        EpochFigure::Validation(f)
    }
}

impl fmt::Display for EpochFigure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EpochFigure {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        EpochFigure::all().find(|f| f.name() == s).ok_or_else(|| {
            Error::config(format!(
                "unknown figure `{s}`: choose one of {}",
                EpochFigure::names().join(", ")
            ))
        })
    }
}

impl serde::Serialize for EpochFigure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for EpochFigure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Writes `metrics.jsonl` and `metrics.csv` for `records` into `dir`.
pub fn write_files(dir: &Path, records: &[EpochRecord]) -> Result<()> {
    let mut jsonl = String::new();
    for r in records {
        let line = serde_json::to_string(r)?;
        jsonl.push_str(&line);
        jsonl.push('\n');
    }
    write_atomic(&dir.join(METRICS_JSONL), jsonl.as_bytes())?;
    write_atomic(&dir.join(METRICS_CSV), csv(records)?.as_bytes())
}

/// The CSV text: fixed columns, then every validation figure seen (in name order), then lr and
/// timing. Non-finite values are written as empty fields.
pub fn csv(records: &[EpochRecord]) -> Result<String> {
    let mut figures: Vec<Figure> = records.iter().flat_map(|r| r.metrics.keys()).collect();
    figures.sort();
    figures.dedup();
    let csv_error = |e: csv::Error| Error::Msg(format!("{METRICS_CSV}: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["epoch", "frozen", "train_loss", "valid_loss"];
    header.extend(figures.iter().map(|f| f.name()));
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
            figures
                .iter()
                .map(|&f| r.metrics.get(f).map(num).unwrap_or_default()),
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
            metrics: [(Figure::Nmae, nmae), (Figure::Auc, 0.5)]
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
        assert_eq!(recs[1].value(Figure::Nmae.into()), Some(0.05));
        assert_eq!(recs[1].value(EpochFigure::ValidLoss), Some(0.3));
        assert_eq!(recs[1].value(Figure::Nme.into()), None);
    }

    #[test]
    fn epoch_figures_parse_by_their_csv_names_and_know_their_direction() {
        for f in EpochFigure::all() {
            assert_eq!(f.name().parse::<EpochFigure>().unwrap(), f);
        }
        assert_eq!(EpochFigure::names().len(), 7);
        let err = "val_loss".parse::<EpochFigure>().unwrap_err().to_string();
        assert!(
            err.contains("`val_loss`") && err.contains("valid_loss, nmae"),
            "{err}"
        );
        assert!(EpochFigure::from(Figure::Auc)
            .direction()
            .higher_is_better());
        assert!(!EpochFigure::ValidLoss.direction().higher_is_better());
    }

    #[test]
    fn a_diverged_epoch_reads_back_as_nan() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = rec(1, f64::NAN);
        r.valid_loss = f64::INFINITY;
        write_files(dir.path(), &[r]).unwrap();
        let back = read_jsonl(&dir.path().join(METRICS_JSONL)).unwrap();
        assert!(back[0].valid_loss.is_nan());
        assert!(back[0].metrics.get(Figure::Nmae).unwrap().is_nan());
        assert_eq!(back[0].metrics.get(Figure::Auc), Some(0.5));
        assert_eq!(back[0].train_loss, 0.5);
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
