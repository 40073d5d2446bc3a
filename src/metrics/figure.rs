//! The scalar figures of a [`MetricReport`](super::MetricReport) as a typed set: each figure knows
//! its name (the one metrics files, summaries and configs spell) and whether a higher or a lower
//! value is better, so code that picks a best value or reads a figure back never goes through a
//! free string.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Error, Result};

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

impl Direction {
    /// Whether `new` is strictly better than `old` (a NaN is never better).
    pub fn improves(self, new: f64, old: f64) -> bool {
        match self {
            Direction::LowerIsBetter => new < old,
            Direction::HigherIsBetter => new > old,
        }
    }

    pub fn higher_is_better(self) -> bool {
        self == Direction::HigherIsBetter
    }
}

/// One scalar figure of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Figure {
    /// NMAE against the float ground truth.
    Nmae,
    /// NMAE against the decoded target heatmaps (only when validation feeds them).
    NmaeVsTarget,
    /// Mean per-image NME.
    Nme,
    /// Failure rate.
    Fr,
    /// Area under the cumulative error distribution.
    Auc,
}

impl Figure {
    /// Every figure, in the order reports describe them.
    pub const ALL: [Figure; 5] = [
        Figure::Nmae,
        Figure::NmaeVsTarget,
        Figure::Nme,
        Figure::Fr,
        Figure::Auc,
    ];

    /// The name files and configs use.
    pub fn name(self) -> &'static str {
        match self {
            Figure::Nmae => "nmae",
            Figure::NmaeVsTarget => "nmae_vs_target",
            Figure::Nme => "nme",
            Figure::Fr => "fr",
            Figure::Auc => "auc",
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            Figure::Auc => Direction::HigherIsBetter,
            Figure::Nmae | Figure::NmaeVsTarget | Figure::Nme | Figure::Fr => {
                Direction::LowerIsBetter
            }
        }
    }

    /// The figure named `name` exactly (names are what files hold, so no case folding).
    pub fn from_name(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The valid names, for error messages.
    pub fn names() -> Vec<&'static str> {
        Figure::ALL.iter().map(|f| f.name()).collect()
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Figure {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Figure::from_name(s).ok_or_else(|| {
            Error::config(format!(
                "unknown figure `{s}`: choose one of {}",
                Figure::names().join(", ")
            ))
        })
    }
}

// Metrics files have always listed figures in name order (they were keyed by name): ordering by
// name keeps their columns and keys where they were, whatever the variants' order above.
impl Ord for Figure {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Figure {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl serde::Serialize for Figure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Figure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Values of some figures (those an evaluation produced), serialised as a map from name to value
/// in name order.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Figures(BTreeMap<Figure, f64>);

impl<'de> serde::Deserialize<'de> for Figures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let map = BTreeMap::<Figure, Option<f64>>::deserialize(d)?;
        Ok(Figures(
            map.into_iter()
                .map(|(f, v)| (f, v.unwrap_or(f64::NAN)))
                .collect(),
        ))
    }
}

/// Reads a number written by serde_json, which writes a non-finite `f64` as `null`, back as NaN:
/// a run whose loss or figure diverged stays readable and resumable instead of having its
/// `metrics.jsonl` and checkpoint state refused. (`deserialize_with` for `f64` fields.)
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Figures {
    pub fn get(&self, f: Figure) -> Option<f64> {
        self.0.get(&f).copied()
    }

    pub fn insert(&mut self, f: Figure, value: f64) {
        self.0.insert(f, value);
    }

    pub fn contains(&self, f: Figure) -> bool {
        self.0.contains_key(&f)
    }

    /// The figures held, in name order.
    pub fn keys(&self) -> impl Iterator<Item = Figure> + '_ {
        self.0.keys().copied()
    }

    /// (figure, value) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (Figure, f64)> + '_ {
        self.0.iter().map(|(&f, &v)| (f, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(Figure, f64)> for Figures {
    fn from_iter<I: IntoIterator<Item = (Figure, f64)>>(iter: I) -> Self {
        Figures(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_by_name() {
        for f in Figure::ALL {
            assert_eq!(f.name().parse::<Figure>().unwrap(), f);
        }
        let mut sorted = Figure::ALL.to_vec();
        sorted.sort();
        let names: Vec<&str> = sorted.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["auc", "fr", "nmae", "nmae_vs_target", "nme"]);
        let err = "NMAE".parse::<Figure>().unwrap_err().to_string();
        assert!(
            err.contains("`NMAE`") && err.contains("nmae_vs_target"),
            "{err}"
        );
    }

    #[test]
    fn only_auc_is_higher_is_better() {
        for f in Figure::ALL {
            assert_eq!(f.direction().higher_is_better(), f == Figure::Auc, "{f}");
        }
        assert!(Direction::HigherIsBetter.improves(0.6, 0.5));
        assert!(!Direction::LowerIsBetter.improves(0.6, 0.5));
        assert!(!Direction::LowerIsBetter.improves(f64::NAN, 0.5));
    }

    #[test]
    fn figures_serialise_as_a_name_map_in_name_order() {
        let f: Figures = [
            (Figure::Nme, 0.25),
            (Figure::Auc, 0.5),
            (Figure::Nmae, 0.125),
        ]
        .into_iter()
        .collect();
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"auc":0.5,"nmae":0.125,"nme":0.25}"#);
        let back: Figures = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
        let err = serde_json::from_str::<Figures>(r#"{"nmea":1.0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nmea"), "{err}");
    }
}
