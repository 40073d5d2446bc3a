//! Which landmarks of a file a model learns: `all`, or 0-based indices in any order
//! (the recipe's `30,40,50,60,70`).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::{Error, Result};

/// A choice of landmark indices. Parsed from `"all"` or `"30,40,50"`; in config files it may also
/// be a list of integers. The output order is the order given, so `"70,30"` puts point 70 first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PointSelection {
    #[default]
    All,
    Indices(Vec<usize>),
}

impl PointSelection {
    /// Builds a selection from indices, refusing an empty list and repeated indices (a repeated
    /// point would train two identical heatmaps and is almost certainly a typo).
    pub fn from_indices(indices: Vec<usize>) -> Result<Self> {
        if indices.is_empty() {
            return Err(Error::config(
                "point selection is empty: give `all` or indices like 30,40,50",
            ));
        }
        let mut seen = indices.clone();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::config(format!(
                "point selection repeats index {}",
                w[0]
            )));
        }
        Ok(PointSelection::Indices(indices))
    }

    /// Picks the selected points from a file's points; an index beyond the file's count is an
    /// error naming the file.
    pub fn apply(&self, pts: &[[f32; 2]], path: &Path) -> Result<Vec<[f32; 2]>> {
        self.check_range(pts.len(), path)?;
        Ok(self
            .indices(pts.len())
            .into_iter()
            .map(|i| pts[i])
            .collect())
    }

    /// Errors (naming `path`) if an index does not exist in a file of `n_in_file` points.
    pub fn check_range(&self, n_in_file: usize, path: &Path) -> Result<()> {
        if let PointSelection::Indices(ix) = self {
            if let Some(&bad) = ix.iter().find(|&&i| i >= n_in_file) {
                return Err(Error::file(
                    path,
                    format!(
                        "point index {bad} does not exist: the file has {n_in_file} points \
                         (indices 0..{})",
                        n_in_file.saturating_sub(1)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Number of points the selection yields from a file of `n_in_file` points.
    pub fn count(&self, n_in_file: usize) -> usize {
        match self {
            PointSelection::All => n_in_file,
            PointSelection::Indices(ix) => ix.len(),
        }
    }

    /// The selected indices for a file of `n` points (`0..n` for `All`).
    pub fn indices(&self, n: usize) -> Vec<usize> {
        match self {
            PointSelection::All => (0..n).collect(),
            PointSelection::Indices(ix) => ix.clone(),
        }
    }
}

impl FromStr for PointSelection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(PointSelection::All);
        }
        let indices = s
            .split(',')
            .map(|f| {
                let f = f.trim();
                f.parse::<usize>().map_err(|_| {
                    Error::config(format!(
                        "bad point selection {s:?}: {f:?} is not a 0-based index \
                         (use `all` or e.g. 30,40,50)"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_indices(indices)
    }
}

impl fmt::Display for PointSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointSelection::All => f.write_str("all"),
            PointSelection::Indices(ix) => {
                for (k, i) in ix.iter().enumerate() {
                    if k > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{i}")?;
                }
                Ok(())
            }
        }
    }
}

// Serialised as its display string ("all" or "30,40,50"); accepts that string or a list of integers.
impl serde::Serialize for PointSelection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for PointSelection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            List(Vec<usize>),
        }
        let r = Repr::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "points must be \"all\", a string like \"30,40,50\" or a list of integers",
            )
        })?;
        match r {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::List(v) => PointSelection::from_indices(v).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        let s: PointSelection = " 70, 30 ,40".parse().unwrap();
        assert_eq!(s, PointSelection::Indices(vec![70, 30, 40]));
        assert_eq!(s.to_string(), "70,30,40");
        assert_eq!(
            "ALL".parse::<PointSelection>().unwrap(),
            PointSelection::All
        );
        for bad in ["", "1,,2", "-1", "1,1", "a"] {
            assert!(bad.parse::<PointSelection>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_string_or_list() {
        let a: PointSelection = serde_json::from_str("[8, 30]").unwrap();
        let b: PointSelection = serde_json::from_str("\"8,30\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"8,30\"");
        assert!(serde_json::from_str::<PointSelection>("[]").is_err());
        assert!(serde_json::from_str::<PointSelection>("3").is_err());
    }
}
