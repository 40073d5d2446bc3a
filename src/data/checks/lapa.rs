//! `hmreg data check`: statistics of every split and every problem of a LaPa-layout dataset,
//! each naming its file and, for text files, the 1-based line. One bad file never stops the
//! report on the others, and no input makes it panic.
//!
//! Points outside the image are counted, not reported as problems: real annotations (300-W's
//! 1-based coordinates, occluded jaw points of tight crops) legitimately fall a little outside,
//! and the training pipeline marks such points invisible anyway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::sources::dataset::{list_split, preferred_landmarks, SplitListing, SPLITS};
use crate::data::sources::image_io::{image_header, verify_image, ImageHeader};
use crate::data::sources::landmarks::{parse_landmark_file, LineProblemKind, ParsedLandmarks};
use crate::data::sources::points::PointSelection;

/// At most this many line problems are listed per landmark file; the rest are summarised.
const MAX_LINE_PROBLEMS_PER_FILE: usize = 10;

/// What a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The root has none of train/, val/, test/.
    NoSplits,
    /// A split folder with no images and no landmark files.
    EmptySplit,
    /// A folder that exists but cannot be listed.
    UnreadableFolder,
    /// An image without a landmark file.
    MissingLandmarks,
    /// A landmark file without an image.
    MissingImage,
    /// Several images with the same stem (`a.jpg` and `a.png`).
    DuplicateStem,
    /// An image that cannot be read or decoded, or is truncated.
    BadImage,
    /// A landmark file that cannot be read or is not text.
    UnreadableLandmarks,
    /// The declared point count disagrees with the point lines that follow.
    CountMismatch,
    /// A value that is not a number, NaN or infinite, or a line with the wrong number of values.
    BadValue,
    /// A badly structured landmark file (`.pts` header, braces).
    Malformed,
    /// A file whose point count differs from the rest of the dataset.
    InconsistentCount,
    /// A `.txt` and a `.pts` file of the same stem with different points.
    FormatsDisagree,
    /// The requested point selection does not exist in some files.
    PointSelection,
    /// A COCO annotation (or image entry) with a problem, named by its id.
    BadAnnotation,
    /// An image with an EXIF orientation tag other than 1: training keeps its stored pixels,
    /// while viewers (and many annotation tools) show it turned.
    ExifOrientation,
}

impl ProblemKind {
    /// A warning names something to look at that the data can still be used with: it is
    /// reported, but the dataset counts as clean and `hmreg data check` exits 0.
    pub fn is_warning(self) -> bool {
        matches!(self, ProblemKind::ExifOrientation)
    }
}

impl From<LineProblemKind> for ProblemKind {
    fn from(k: LineProblemKind) -> Self {
        match k {
            LineProblemKind::CountMismatch => ProblemKind::CountMismatch,
            LineProblemKind::BadValue => ProblemKind::BadValue,
            LineProblemKind::Malformed => ProblemKind::Malformed,
        }
    }
}

/// One problem, naming its file and (for text files) its 1-based line.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub kind: ProblemKind,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Statistics of one split.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SplitStats {
    pub split: String,
    pub images: usize,
    pub landmark_files: usize,
    /// Images with a landmark file that reads without problems.
    pub annotated: usize,
    /// Point count -> number of clean landmark files with that count.
    pub point_counts: BTreeMap<usize, usize>,
    /// Smallest and largest image width (of the images that could be read).
    pub width: Option<[u32; 2]>,
    pub height: Option<[u32; 2]>,
    /// Points outside `[0, w) x [0, h)` of their image (not a problem: see the module docs).
    pub points_outside: usize,
    pub images_with_points_outside: usize,
    /// Files in images/ or landmarks/ that are neither images nor landmark files.
    pub ignored_files: usize,
    /// COCO annotations without any labelled point (crowds, unannotated people): not samples.
    pub unlabelled_annotations: usize,
}

/// The result of checking a dataset.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckReport {
    pub root: PathBuf,
    pub clean: bool,
    /// The point count most landmark files have.
    pub point_count: Option<usize>,
    pub splits: Vec<SplitStats>,
    pub problems: Vec<Problem>,
    /// What to look at that does not make the dataset unusable ([`ProblemKind::is_warning`]).
    pub warnings: Vec<Problem>,
}

impl CheckReport {
    /// The report of `root` from everything found, warnings split from the problems.
    pub fn new(
        root: &Path,
        point_count: Option<usize>,
        splits: Vec<SplitStats>,
        found: Vec<Problem>,
    ) -> CheckReport {
        let (warnings, problems): (Vec<Problem>, Vec<Problem>) =
            found.into_iter().partition(|p| p.kind.is_warning());
        CheckReport {
            root: root.to_path_buf(),
            clean: problems.is_empty(),
            point_count,
            splits,
            problems,
            warnings,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The human-readable report printed by `hmreg data check`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "dataset {}", self.root.display());
        for st in &self.splits {
            let counts = match st.point_counts.len() {
                0 => "no readable landmarks".to_string(),
                _ => st
                    .point_counts
                    .iter()
                    .map(|(n, files)| {
                        if st.point_counts.len() == 1 {
                            format!("{n} points")
                        } else {
                            format!("{n} points in {files} files")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let size = match (st.width, st.height) {
                (Some(w), Some(h)) => {
                    format!("width {}-{}, height {}-{} px", w[0], w[1], h[0], h[1])
                }
                _ => "no readable images".to_string(),
            };
            let _ = writeln!(
                s,
                "{:<5}  {} images, {} annotated, {counts}, {size}, {} points outside the image (in {} images){}",
                st.split,
                st.images,
                st.annotated,
                st.points_outside,
                st.images_with_points_outside,
                if st.ignored_files > 0 {
                    format!(", {} other files ignored", st.ignored_files)
                } else {
                    String::new()
                } + &if st.unlabelled_annotations > 0 {
                    format!(
                        ", {} annotations without labelled points left out",
                        st.unlabelled_annotations
                    )
                } else {
                    String::new()
                }
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        if self.problems.is_empty() {
            let _ = writeln!(s, "clean: no problems found");
        } else {
            let n = self.problems.len();
            let _ = writeln!(s, "{n} problem{}:", if n == 1 { "" } else { "s" });
            for p in &self.problems {
                let _ = writeln!(s, "  {}", p);
            }
        }
        s
    }
}

/// What to check beyond the defaults.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Also verify that these indices exist in every landmark file.
    pub selection: Option<PointSelection>,
    /// Decode every image fully (detects truncated and corrupt data); otherwise headers only.
    pub decode_images: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            selection: None,
            decode_images: true,
        }
    }
}

/// Checks a dataset with the default options (full image decoding, no point selection).
pub fn check_dataset(root: &Path) -> CheckReport {
    check_dataset_with(root, &CheckOptions::default())
}

/// A clean landmark file and its point count, for the cross-file checks.
struct Counted {
    path: PathBuf,
    n: usize,
}

pub fn check_dataset_with(root: &Path, opts: &CheckOptions) -> CheckReport {
    let mut problems = Vec::new();
    let mut splits = Vec::new();
    let mut counted = Vec::new();
    let mut any_split = false;
    for split in SPLITS {
        if !root.join(split).is_dir() {
            continue;
        }
        any_split = true;
        match list_split(root, split) {
            Ok(listing) => splits.push(check_split(
                split,
                &listing,
                opts,
                &mut problems,
                &mut counted,
            )),
            Err(e) => {
                let (path, message) = match e {
                    crate::Error::File { path, msg } => (path, msg),
                    other => (root.join(split), other.to_string()),
                };
                problems.push(Problem {
                    path,
                    line: None,
                    kind: ProblemKind::UnreadableFolder,
                    message,
                });
                splits.push(SplitStats {
                    split: split.to_string(),
                    ..Default::default()
                });
            }
        }
    }
    if !any_split {
        problems.push(Problem {
            path: root.to_path_buf(),
            line: None,
            kind: ProblemKind::NoSplits,
            message: if root.join("images").is_dir() || root.join("landmarks").is_dir() {
                "no train/, val/ or test/ folder (this looks like a split folder: give its parent)"
                    .to_string()
            } else {
                "no train/, val/ or test/ folder".to_string()
            },
        });
    }
    let point_count = cross_file_checks(&counted, opts, &mut problems);
    problems.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    CheckReport::new(root, point_count, splits, problems)
}

/// Point counts that differ from the majority, and a point selection that does not exist.
fn cross_file_checks(
    counted: &[Counted],
    opts: &CheckOptions,
    problems: &mut Vec<Problem>,
) -> Option<usize> {
    let mut freq: BTreeMap<usize, (usize, &Path)> = BTreeMap::new();
    for c in counted {
        freq.entry(c.n).or_insert((0, &c.path)).0 += 1;
    }
    // Ties go to the larger count (BTreeMap order, last maximum): deterministic.
    let majority = freq.iter().max_by_key(|(_, (f, _))| *f).map(|(n, _)| *n)?;
    let total = counted.len();
    for c in counted.iter().filter(|c| c.n != majority) {
        problems.push(Problem {
            path: c.path.clone(),
            line: Some(1),
            kind: ProblemKind::InconsistentCount,
            message: format!(
                "has {} points, but {} of {total} landmark files have {majority}",
                c.n, freq[&majority].0
            ),
        });
    }
    if let Some(sel) = &opts.selection {
        for (n, (files, first)) in &freq {
            if let Err(e) = sel.check_range(*n, first) {
                let msg = match e {
                    crate::Error::File { msg, .. } => msg,
                    other => other.to_string(),
                };
                problems.push(Problem {
                    path: first.to_path_buf(),
                    line: None,
                    kind: ProblemKind::PointSelection,
                    message: format!("--points {sel}: {msg} ({files} files with {n} points)"),
                });
            }
        }
    }
    Some(majority)
}

fn check_split(
    split: &str,
    listing: &SplitListing,
    opts: &CheckOptions,
    problems: &mut Vec<Problem>,
    counted: &mut Vec<Counted>,
) -> SplitStats {
    let mut st = SplitStats {
        split: split.to_string(),
        images: listing.images.values().map(Vec::len).sum(),
        landmark_files: listing.landmarks.values().map(Vec::len).sum(),
        ignored_files: listing.ignored.len(),
        ..Default::default()
    };
    if listing.is_empty() {
        problems.push(Problem {
            path: listing.split_dir.clone(),
            line: None,
            kind: ProblemKind::EmptySplit,
            message: format!(
                "split {split:?} is empty: no images in {} and no landmark files in {}",
                listing.images_dir.display(),
                listing.landmarks_dir.display()
            ),
        });
        return st;
    }

    // The expensive part (decoding images, parsing files) runs in parallel; results come back in
    // listing order, so the report does not depend on thread timing.
    let image_paths: Vec<&PathBuf> = listing.images.values().flatten().collect();
    let bar = progress(image_paths.len(), split);
    let sizes = image_sizes(&image_paths, opts.decode_images, &bar);
    bar.finish_and_clear();
    let lm_paths: Vec<&PathBuf> = listing.landmarks.values().flatten().collect();
    let parsed: BTreeMap<&PathBuf, Result<ParsedLandmarks, String>> = lm_paths
        .par_iter()
        .map(|p| (*p, parse_landmark_file(p).map_err(error_message)))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();

    record_sizes(&sizes, &mut st, problems);
    for (path, r) in &parsed {
        match r {
            Ok(p) => report_line_problems(path, p, problems),
            Err(msg) => problems.push(Problem {
                path: path.to_path_buf(),
                line: None,
                kind: ProblemKind::UnreadableLandmarks,
                message: msg.clone(),
            }),
        }
    }

    for stem in listing.stems() {
        let images = listing.images.get(&stem).map(Vec::as_slice).unwrap_or(&[]);
        let lms = listing
            .landmarks
            .get(&stem)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if images.len() > 1 {
            let names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
            problems.push(Problem {
                path: images[0].clone(),
                line: None,
                kind: ProblemKind::DuplicateStem,
                message: format!(
                    "{} images share the stem {stem:?}, so the landmarks are ambiguous: {}",
                    images.len(),
                    names.join(", ")
                ),
            });
        }
        let clean = |p: &PathBuf| match parsed.get(p) {
            Some(Ok(parsed)) if parsed.is_ok() => Some(parsed),
            _ => None,
        };
        for lm in lms {
            if let Some(p) = clean(lm) {
                counted.push(Counted {
                    path: lm.clone(),
                    n: p.points.len(),
                });
                *st.point_counts.entry(p.points.len()).or_default() += 1;
            }
        }
        if let (Some(txt), [_, _]) = (preferred_landmarks(lms), lms) {
            // Both a .txt and a .pts: the .txt is used, the .pts must say the same.
            let other = lms.iter().find(|p| *p != txt).unwrap_or(txt);
            if let (Some(pa), Some(pb)) = (clean(txt), clean(other)) {
                if let Some(msg) = disagreement(&pa.points, &pb.points, txt) {
                    problems.push(Problem {
                        path: other.clone(),
                        line: None,
                        kind: ProblemKind::FormatsDisagree,
                        message: msg,
                    });
                }
            }
        }
        let Some(lm) = preferred_landmarks(lms) else {
            for img in images.iter().take(1) {
                problems.push(Problem {
                    path: img.clone(),
                    line: None,
                    kind: ProblemKind::MissingLandmarks,
                    message: format!(
                        "image without landmarks (expected {}/{stem}.txt or .pts)",
                        listing.landmarks_dir.display()
                    ),
                });
            }
            continue;
        };
        let Some(image) = images.first() else {
            problems.push(Problem {
                path: lm.clone(),
                line: None,
                kind: ProblemKind::MissingImage,
                message: format!(
                    "landmark file without an image (expected {}/{stem}.jpg, .jpeg or .png)",
                    listing.images_dir.display()
                ),
            });
            continue;
        };
        let Some(pts) = clean(lm) else { continue };
        st.annotated += 1;
        if let Some(Ok(ImageHeader {
            width: w,
            height: h,
            ..
        })) = sizes.get(image)
        {
            let outside = pts
                .points
                .iter()
                .filter(|p| !(p[0] >= 0.0 && p[1] >= 0.0 && p[0] < *w as f32 && p[1] < *h as f32))
                .count();
            st.points_outside += outside;
            st.images_with_points_outside += usize::from(outside > 0);
        }
    }
    st
}

fn report_line_problems(path: &Path, parsed: &ParsedLandmarks, problems: &mut Vec<Problem>) {
    for lp in parsed.problems.iter().take(MAX_LINE_PROBLEMS_PER_FILE) {
        problems.push(Problem {
            path: path.to_path_buf(),
            line: Some(lp.line),
            kind: lp.kind.into(),
            message: lp.msg.clone(),
        });
    }
    let rest = parsed
        .problems
        .len()
        .saturating_sub(MAX_LINE_PROBLEMS_PER_FILE);
    if rest > 0 {
        let last = &parsed.problems[parsed.problems.len() - 1];
        problems.push(Problem {
            path: path.to_path_buf(),
            line: Some(last.line),
            kind: last.kind.into(),
            message: format!(
                "... and {rest} more problems in this file (last one: {})",
                last.msg
            ),
        });
    }
}

/// Why two point lists of the same stem differ, if they do (beyond rounding in the files).
fn disagreement(a: &[[f32; 2]], b: &[[f32; 2]], a_path: &Path) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!(
            "has {} points but {} has {}",
            b.len(),
            a_path.display(),
            a.len()
        ));
    }
    let k = a
        .iter()
        .zip(b)
        .position(|(p, q)| (p[0] - q[0]).abs() > 1e-3 || (p[1] - q[1]).abs() > 1e-3)?;
    Some(format!(
        "point {k} is ({}, {}) but ({}, {}) in {}",
        b[k][0],
        b[k][1],
        a[k][0],
        a[k][1],
        a_path.display()
    ))
}

/// A progress bar over a split's images, drawn only when stderr is a terminal (decoding a full
/// LaPa split takes minutes).
fn progress(n: usize, split: &str) -> indicatif::ProgressBar {
    crate::progress::bar(n as u64, &format!("check {split}"), true)
}

/// Each image's header (decoding it fully with `decode`, else reading only the header), in
/// parallel; an unreadable image gives its error message. `bar` advances once per image.
pub(crate) fn image_sizes<'a>(
    paths: &[&'a PathBuf],
    decode: bool,
    bar: &indicatif::ProgressBar,
) -> BTreeMap<&'a PathBuf, Result<ImageHeader, String>> {
    paths
        .par_iter()
        .map(|p| {
            let r = if decode {
                verify_image(p)
            } else {
                image_header(p)
            };
            bar.inc(1);
            (*p, r.map_err(error_message))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// The size range of the readable images into `st`; each unreadable one is a problem, and so is
/// each with an EXIF orientation tag: its annotations may be in the stored frame (LaPa, 300-W)
/// or in the turned one a viewer shows, and training uses the stored pixels.
pub(crate) fn record_sizes(
    sizes: &BTreeMap<&PathBuf, Result<ImageHeader, String>>,
    st: &mut SplitStats,
    problems: &mut Vec<Problem>,
) {
    for (path, r) in sizes {
        match r {
            Ok(h) => {
                st.width = Some(range(st.width, h.width));
                st.height = Some(range(st.height, h.height));
                if h.orientation != 1 {
                    problems.push(Problem {
                        path: path.to_path_buf(),
                        line: None,
                        kind: ProblemKind::ExifOrientation,
                        message: format!(
                            "EXIF orientation {} ({}): training and evaluation use the stored \
                             pixels, not the turned image a viewer shows; check that the \
                             landmarks are in the stored frame",
                            h.orientation,
                            orientation_name(h.orientation)
                        ),
                    });
                }
            }
            Err(msg) => problems.push(Problem {
                path: path.to_path_buf(),
                line: None,
                kind: ProblemKind::BadImage,
                message: msg.clone(),
            }),
        }
    }
}

/// What an EXIF orientation value asks a viewer to do with the stored pixels.
fn orientation_name(v: u8) -> &'static str {
    match v {
        2 => "mirror left-right",
        3 => "turn 180 degrees",
        4 => "mirror top-bottom",
        5 => "mirror along the main diagonal",
        6 => "turn 90 degrees clockwise",
        7 => "mirror along the other diagonal",
        8 => "turn 90 degrees anticlockwise",
        _ => "none",
    }
}

fn range(r: Option<[u32; 2]>, v: u32) -> [u32; 2] {
    match r {
        None => [v, v],
        Some([lo, hi]) => [lo.min(v), hi.max(v)],
    }
}

/// The message of a file error without the path (the problem carries the path separately).
pub(crate) fn error_message(e: crate::Error) -> String {
    match e {
        crate::Error::File { msg, .. } => msg,
        crate::Error::Parse { line, msg, .. } => format!("line {line}: {msg}"),
        other => other.to_string(),
    }
}
