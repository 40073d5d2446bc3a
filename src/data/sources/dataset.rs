//! LaPa-layout datasets on disk: `<root>/<split>/images/<stem>.{jpg,jpeg,png}` paired with
//! `<root>/<split>/landmarks/<stem>.{txt,pts}`. Other folders (`labels/` in LaPa) are ignored.
//! A split named by a `.json` path is a COCO keypoint file instead (`coco.rs`).
//!
//! [`load_split`] is the strict loader used by training and evaluation: the first problem is an
//! error naming the file. `data check` (in `check.rs`) uses the same listing to report everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::sources::image_io::is_image_path;
use crate::data::sources::landmarks::{read_landmarks, LandmarkFormat};
use crate::data::sources::points::PointSelection;
pub use crate::data::sources::sample::{move_origin, Sample};
use crate::{BBox, Error, Keypoints, Result};

/// The splits of a LaPa-layout dataset, in the order they are reported.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

/// The splits among [`SPLITS`] that exist as directories under `root`, in [`SPLITS`] order.
pub fn present_splits(root: &Path) -> Vec<String> {
    SPLITS
        .iter()
        .filter(|s| root.join(s).is_dir())
        .map(|s| s.to_string())
        .collect()
}

/// The files of one split, grouped by stem (sorted, so every use is deterministic).
#[derive(Clone, Debug, Default)]
pub struct SplitListing {
    pub split_dir: PathBuf,
    pub images_dir: PathBuf,
    pub landmarks_dir: PathBuf,
    /// Image files by stem; more than one entry means an ambiguous stem (`a.jpg` and `a.png`).
    pub images: BTreeMap<String, Vec<PathBuf>>,
    /// Landmark files by stem: a `.txt`, a `.pts`, or both.
    pub landmarks: BTreeMap<String, Vec<PathBuf>>,
    /// Files in `images/` or `landmarks/` that are neither images nor landmark files
    /// (hidden files such as `.DS_Store` are not counted).
    pub ignored: Vec<PathBuf>,
}

impl SplitListing {
    /// Every stem that has an image or a landmark file, sorted.
    pub fn stems(&self) -> Vec<String> {
        let mut stems: Vec<String> = self
            .images
            .keys()
            .chain(self.landmarks.keys())
            .cloned()
            .collect();
        stems.sort();
        stems.dedup();
        stems
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.landmarks.is_empty()
    }
}

/// The landmark file to use for a stem when several exist: `.txt` (the LaPa format) first.
pub fn preferred_landmarks(files: &[PathBuf]) -> Option<&PathBuf> {
    files
        .iter()
        .find(|p| LandmarkFormat::from_path(p) == Some(LandmarkFormat::Txt))
        .or_else(|| files.first())
}

/// Lists a split's images and landmark files. A missing `images/` or `landmarks/` folder lists as
/// empty; a folder that exists but cannot be read is an error naming it.
pub fn list_split(root: &Path, split: &str) -> Result<SplitListing> {
    let split_dir = root.join(split);
    let mut out = SplitListing {
        images_dir: split_dir.join("images"),
        landmarks_dir: split_dir.join("landmarks"),
        split_dir,
        ..Default::default()
    };
    for (path, stem) in list_files(&out.images_dir)? {
        if is_image_path(&path) {
            out.images.entry(stem).or_default().push(path);
        } else {
            out.ignored.push(path);
        }
    }
    for (path, stem) in list_files(&out.landmarks_dir)? {
        if LandmarkFormat::from_path(&path).is_some() {
            out.landmarks.entry(stem).or_default().push(path);
        } else {
            out.ignored.push(path);
        }
    }
    for v in out.images.values_mut().chain(out.landmarks.values_mut()) {
        v.sort();
    }
    out.ignored.sort();
    Ok(out)
}

/// Regular, non-hidden files of a directory with their stems; nothing if the directory is absent.
fn list_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot list folder: {e}")))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::file(dir, format!("cannot list folder: {e}")))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((path, stem));
    }
    out.sort();
    Ok(out)
}

/// Loads one split strictly: every image needs a landmark file and vice versa, every file must
/// parse, every file must have the same point count, and the selection must exist in it. The first
/// problem (in stem order) is an error naming the file and, for parse problems, the line.
/// Samples are sorted by stem. A split ending in `.json` is a COCO keypoint file under `root`
/// ([`crate::data::sources::coco`]).
pub fn load_split(root: &Path, split: &str, selection: &PointSelection) -> Result<Vec<Sample>> {
    if crate::data::sources::coco::is_coco_split(split) {
        return crate::data::sources::coco::load_coco(&root.join(split), selection);
    }
    let split_dir = root.join(split);
    if !split_dir.is_dir() {
        return Err(Error::file(
            &split_dir,
            format!("split {split:?} not found (expected a folder with images/ and landmarks/)"),
        ));
    }
    let listing = list_split(root, split)?;
    if listing.images.is_empty() {
        return Err(Error::file(
            &listing.images_dir,
            format!("split {split:?} has no images (.jpg, .jpeg, .png)"),
        ));
    }
    let mut pairs = Vec::new();
    for stem in listing.stems() {
        let images = listing.images.get(&stem).map(Vec::as_slice).unwrap_or(&[]);
        let lms = listing
            .landmarks
            .get(&stem)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let image = match images {
            [] => {
                return Err(Error::file(
                    &lms[0],
                    format!(
                        "landmark file without an image (expected {}/{stem}.jpg, .jpeg or .png)",
                        listing.images_dir.display()
                    ),
                ))
            }
            [one] => one.clone(),
            [first, ..] => {
                return Err(Error::file(
                    first,
                    format!("{} images share the stem {stem:?}", images.len()),
                ))
            }
        };
        let Some(lm) = preferred_landmarks(lms) else {
            return Err(Error::file(
                &image,
                format!(
                    "image without landmarks (expected {}/{stem}.txt or .pts)",
                    listing.landmarks_dir.display()
                ),
            ));
        };
        pairs.push((stem, image, lm.clone()));
    }
    let points: Vec<Result<Vec<[f32; 2]>>> = pairs
        .par_iter()
        .map(|(_, _, lm)| read_landmarks(lm))
        .collect();
    let mut samples = Vec::with_capacity(pairs.len());
    let mut reference: Option<(usize, PathBuf)> = None;
    for ((stem, image_path, landmarks_path), pts) in pairs.into_iter().zip(points) {
        let pts = pts?;
        match &reference {
            None => reference = Some((pts.len(), landmarks_path.clone())),
            Some((n, first)) if *n != pts.len() => {
                return Err(Error::file(
                    &landmarks_path,
                    format!(
                        "has {} points but {} has {n}: all files must have the same count",
                        pts.len(),
                        first.display()
                    ),
                ))
            }
            Some(_) => {}
        }
        let selected = selection.apply(&pts, &landmarks_path)?;
        samples.push(Sample {
            face_box: BBox::around(&pts).unwrap_or_default(),
            file_points: pts.len(),
            stem,
            image_path,
            landmarks_path,
            points: Keypoints::new(selected),
        });
    }
    Ok(samples)
}
