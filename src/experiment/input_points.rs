//! The quantization part's input: a dataset's ground-truth points in input pixels. Only the
//! image sizes and the landmark files are read; no pixels are decoded, since a perfect model's
//! quantization error depends on the points alone.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::sources::dataset::{load_split, present_splits};
use crate::data::sources::image_io::image_size;
use crate::data::sources::points::PointSelection;
use crate::{Error, Keypoints, Result};

/// Every image's selected points, each image squished to `input x input`. `data` is a dataset
/// root (every split present, or only `split`) or one split folder (the one holding
/// `landmarks/`). All images must end up with the same point count, since the report averages
/// per point.
pub fn load_input_points(
    data: &Path,
    split: Option<&str>,
    selection: &PointSelection,
    input: usize,
) -> Result<Vec<Keypoints>> {
    let (root, splits) = root_and_splits(data, split)?;
    let mut out = Vec::new();
    for s in &splits {
        let samples = load_split(&root, s, selection)?;
        let sized: Vec<Result<Keypoints>> = samples
            .par_iter()
            .map(|sm| {
                let (w, h) = image_size(&sm.image_path)?;
                let (sx, sy) = (input as f32 / w as f32, input as f32 / h as f32);
                Ok(sm.points.scaled(sx, sy))
            })
            .collect();
        for k in sized {
            out.push(k?);
        }
    }
    if let Some(first) = out.first() {
        let l = first.len();
        if out.iter().any(|k| k.len() != l) {
            return Err(Error::file(
                data,
                "splits have different point counts; choose one with --split or --points",
            ));
        }
    }
    Ok(out)
}

/// The dataset root and the splits to read under it. A split folder is told from a root by its
/// `landmarks/` folder; naming another split beside a split folder is refused rather than
/// silently ignored.
fn root_and_splits(data: &Path, split: Option<&str>) -> Result<(PathBuf, Vec<String>)> {
    if data.join("landmarks").is_dir() {
        let name = data
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::file(data, "cannot name this split folder"))?;
        if let Some(s) = split {
            if s != name {
                return Err(Error::config(format!(
                    "--split {s} given, but --data {} is the split folder {name:?}",
                    data.display()
                )));
            }
        }
        let parent = data.parent().unwrap_or_else(|| Path::new("."));
        return Ok((parent.to_path_buf(), vec![name.to_string()]));
    }
    let splits = match split {
        Some(s) => vec![s.to_string()],
        None => present_splits(data),
    };
    if splits.is_empty() {
        return Err(Error::file(
            data,
            "no split folders (train, val, test) and no landmarks/ folder here",
        ));
    }
    Ok((data.to_path_buf(), splits))
}
