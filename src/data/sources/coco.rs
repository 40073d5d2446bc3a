//! COCO keypoint annotation files, the format of MMPose's face and pose datasets: `images`
//! (`id`, `file_name`), `annotations` (`id`, `image_id`, `keypoints` as `x, y, v` triples,
//! optional `bbox` as `x, y, w, h`) and `categories` (keypoint `names`, `skeleton`).
//!
//! A split given as a path ending in `.json` (relative to the dataset root) is read from such a
//! file. Each annotation becomes one [`Sample`]: its `v = 0` points are not labelled (invisible,
//! never scored or trained on), its `bbox` is the face box that `resize = "box"` crops around.
//! Images are looked up beside the file as MMPose lays them out: `images/<file_name>` or
//! `<file_name>` next to the annotation file, then the same one folder up.
//!
//! [`validate`] collects every problem, each naming the file and the annotation (or image) id;
//! [`load_coco`] turns the first one into an error. Annotations with no labelled point (COCO's
//! crowd and unannotated people) are not samples; the check reports how many there were.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::sources::points::PointSelection;
use crate::data::sources::sample::Sample;
use crate::{BBox, Error, Keypoints, Result};

/// A file's three lists, each entry still untyped so that one malformed entry is a problem
/// naming its id rather than an error about the whole file.
#[derive(Debug, Deserialize)]
struct CocoFile {
    images: Vec<serde_json::Value>,
    annotations: Vec<serde_json::Value>,
    #[serde(default)]
    categories: Vec<serde_json::Value>,
}

/// The entries of one list that have their shape; each that does not is a problem naming it
/// (`annotation 17: missing field image_id`, or its position when it has no id).
fn typed<T: serde::de::DeserializeOwned>(
    what: &str,
    values: Vec<serde_json::Value>,
    problems: &mut Vec<CocoProblem>,
) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        let name = match v.get("id") {
            Some(id) => format!("{what} {id}"),
            None => format!("{what} number {} (no id)", i + 1),
        };
        match serde_json::from_value(v) {
            Ok(t) => out.push(t),
            Err(e) => problems.push(CocoProblem::entry(format!("{name}: {e}"))),
        }
    }
    out
}

#[derive(Debug, Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Debug, Deserialize)]
struct CocoAnnotation {
    id: u64,
    image_id: u64,
    #[serde(default)]
    category_id: Option<u64>,
    #[serde(default)]
    keypoints: Option<Vec<f64>>,
    #[serde(default)]
    bbox: Option<Vec<f64>>,
}

/// A category with its keypoint names and skeleton (the names fix the point count).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct CocoCategory {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub keypoints: Vec<String>,
    #[serde(default)]
    pub skeleton: Vec<[usize; 2]>,
}

/// One usable annotation of a COCO file.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoEntry {
    pub annotation_id: u64,
    pub image_id: u64,
    pub image_path: PathBuf,
    /// Every point of the annotation; `v = 0` points are invisible.
    pub points: Keypoints,
    /// The annotation's `bbox`, if it has one.
    pub bbox: Option<BBox>,
}

/// Everything [`validate`] learned about a file.
#[derive(Clone, Debug, Default)]
pub struct CocoReport {
    pub entries: Vec<CocoEntry>,
    /// Problems, each message naming the annotation or image id.
    pub problems: Vec<CocoProblem>,
    /// Annotations without any labelled point (not samples).
    pub unlabelled: usize,
    pub images: usize,
    /// The keypoint count of the annotations (the category's names when it declares them).
    pub points: Option<usize>,
    pub categories: Vec<CocoCategory>,
}

/// One problem of a COCO file; the message names the annotation, image or category id.
#[derive(Clone, Debug, PartialEq)]
pub struct CocoProblem {
    /// An image file that could not be found (the others are malformed entries).
    pub missing_image: bool,
    pub message: String,
}

impl CocoProblem {
    /// A malformed entry.
    fn entry(message: String) -> CocoProblem {
        CocoProblem {
            missing_image: false,
            message,
        }
    }
}

/// Reads and parses a COCO file; a syntax or shape error names its line and column.
fn parse(path: &Path) -> Result<CocoFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::parse(
            path,
            e.line().max(1),
            format!(
                "column {}: not a COCO keypoint file ({e}); expected `images`, `annotations` \
                 and `categories`",
                e.column()
            ),
        )
    })
}

/// The image file for a `file_name`: `images/<name>` or `<name>` beside the annotation file or
/// one folder up, the first that exists.
pub fn resolve_image(json: &Path, file_name: &str) -> Option<PathBuf> {
    let dir = json.parent().unwrap_or(Path::new("."));
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(up) = dir.parent() {
        dirs.push(up.to_path_buf());
    }
    dirs.iter()
        .flat_map(|d| [d.join("images").join(file_name), d.join(file_name)])
        .find(|p| p.is_file())
}

/// Validates a COCO keypoint file, collecting every problem (the file must parse at all).
pub fn validate(path: &Path) -> Result<CocoReport> {
    let file = parse(path)?;
    let mut problems = Vec::new();
    let categories: Vec<CocoCategory> = typed("category", file.categories, &mut problems);
    let images_list: Vec<CocoImage> = typed("image", file.images, &mut problems);
    let annotations: Vec<CocoAnnotation> = typed("annotation", file.annotations, &mut problems);
    let mut report = CocoReport {
        images: images_list.len(),
        categories: categories.clone(),
        problems,
        ..Default::default()
    };
    let declared: HashMap<u64, usize> = categories
        .iter()
        .filter(|c| !c.keypoints.is_empty())
        .map(|c| (c.id, c.keypoints.len()))
        .collect();
    for c in &categories {
        let n = c.keypoints.len();
        if let Some(bad) = c
            .skeleton
            .iter()
            .find(|e| e[0] == 0 || e[0] > n || e[1] > n)
        {
            report.problems.push(CocoProblem::entry(format!(
                "category {}: skeleton edge {bad:?} is not between two of its {n} keypoints \
                 (COCO numbers them from 1)",
                c.id
            )));
        }
    }
    let mut images: HashMap<u64, Option<PathBuf>> = HashMap::new();
    for im in &images_list {
        if images.contains_key(&im.id) {
            report.problems.push(CocoProblem::entry(format!(
                "image {}: the id appears twice in `images`",
                im.id
            )));
            continue;
        }
        let found = resolve_image(path, &im.file_name);
        if found.is_none() {
            report.problems.push(CocoProblem {
                missing_image: true,
                message: format!(
                    "image {}: file {:?} not found (looked in images/ and beside the annotation \
                     file, and one folder up)",
                    im.id, im.file_name
                ),
            });
        }
        images.insert(im.id, found);
    }
    let mut seen = HashSet::new();
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for a in &annotations {
        let id = a.id;
        if !seen.insert(id) {
            report.problems.push(CocoProblem::entry(format!(
                "annotation {id}: the id appears twice"
            )));
            continue;
        }
        match check_annotation(a, &declared) {
            Err(msg) => report
                .problems
                .push(CocoProblem::entry(format!("annotation {id}: {msg}"))),
            Ok(None) => report.unlabelled += 1,
            Ok(Some((points, bbox))) => {
                let Some(image) = images.get(&a.image_id) else {
                    report.problems.push(CocoProblem::entry(format!(
                        "annotation {id}: image_id {} is not in `images`",
                        a.image_id
                    )));
                    continue;
                };
                *counts.entry(points.len()).or_default() += 1;
                if let Some(image_path) = image.clone() {
                    report.entries.push(CocoEntry {
                        annotation_id: id,
                        image_id: a.image_id,
                        image_path,
                        points,
                        bbox,
                    });
                }
            }
        }
    }
    // Without declared names, the majority count is the file's (ties: the larger count).
    let majority = counts.iter().max_by_key(|(_, f)| **f).map(|(n, _)| *n);
    report.points = declared.values().next().copied().or(majority);
    if let Some(n) = report.points {
        for e in report.entries.iter().filter(|e| e.points.len() != n) {
            report.problems.push(CocoProblem::entry(format!(
                "annotation {}: {} keypoints, but the file's annotations have {n}",
                e.annotation_id,
                e.points.len()
            )));
        }
        report.entries.retain(|e| e.points.len() == n);
    }
    report
        .entries
        .sort_by_key(|e| (e.image_id, e.annotation_id));
    Ok(report)
}

/// The points and box of one annotation; `None` when no point is labelled.
type Checked = Option<(Keypoints, Option<BBox>)>;

fn check_annotation(
    a: &CocoAnnotation,
    declared: &HashMap<u64, usize>,
) -> std::result::Result<Checked, String> {
    let Some(kp) = &a.keypoints else {
        return Err("no `keypoints`".to_string());
    };
    if kp.len() % 3 != 0 {
        return Err(format!(
            "`keypoints` has {} values, not a multiple of 3 (x, y, v per point)",
            kp.len()
        ));
    }
    let n = kp.len() / 3;
    if let Some(&want) = a.category_id.and_then(|c| declared.get(&c)) {
        if want != n {
            return Err(format!(
                "{n} keypoints, but category {} names {want}",
                a.category_id.unwrap_or_default()
            ));
        }
    }
    let mut xy = Vec::with_capacity(n);
    let mut visible = Vec::with_capacity(n);
    for (i, t) in kp.chunks_exact(3).enumerate() {
        let v = t[2];
        if !(v == 0.0 || v == 1.0 || v == 2.0) {
            return Err(format!(
                "point {i}: visibility {v} (COCO uses 0 unlabelled, 1 occluded, 2 visible)"
            ));
        }
        if v > 0.0 && !(t[0].is_finite() && t[1].is_finite()) {
            return Err(format!(
                "point {i}: coordinates {}, {} are not finite",
                t[0], t[1]
            ));
        }
        xy.push([t[0] as f32, t[1] as f32]);
        visible.push(v > 0.0);
    }
    let bbox = match &a.bbox {
        None => None,
        Some(b) if b.is_empty() => None,
        Some(b) => {
            let &[x, y, w, h] = b.as_slice() else {
                return Err(format!(
                    "`bbox` has {} values, expected x, y, w, h",
                    b.len()
                ));
            };
            if !(b.iter().all(|v| v.is_finite()) && w > 0.0 && h > 0.0) {
                return Err(format!(
                    "`bbox` [{x}, {y}, {w}, {h}] needs finite values and a positive size"
                ));
            }
            Some(BBox::from_xywh([x as f32, y as f32, w as f32, h as f32]))
        }
    };
    if !visible.iter().any(|&v| v) {
        return Ok(None);
    }
    Ok(Some((Keypoints { xy, visible }, bbox)))
}

/// Loads a COCO file strictly as samples of `selection` (the first problem is an error naming
/// the file and the annotation). Sample names are `<image stem>#<annotation id>`.
pub fn load_coco(path: &Path, selection: &PointSelection) -> Result<Vec<Sample>> {
    let report = validate(path)?;
    if let Some(p) = report.problems.first() {
        let more = match report.problems.len() {
            1 => String::new(),
            n => format!(" (and {} more problems: run `hmreg data check`)", n - 1),
        };
        return Err(Error::file(path, format!("{}{more}", p.message)));
    }
    let mut samples = Vec::with_capacity(report.entries.len());
    for e in report.entries {
        let n = e.points.len();
        selection.check_range(n, path)?;
        let idx = selection.indices(n);
        let labelled: Vec<[f32; 2]> = e
            .points
            .xy
            .iter()
            .zip(&e.points.visible)
            .filter(|(_, &v)| v)
            .map(|(p, _)| *p)
            .collect();
        let stem = e
            .image_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        samples.push(Sample {
            stem: format!("{stem}#{}", e.annotation_id),
            image_path: e.image_path,
            landmarks_path: path.to_path_buf(),
            points: Keypoints {
                xy: idx.iter().map(|&i| e.points.xy[i]).collect(),
                visible: idx.iter().map(|&i| e.points.visible[i]).collect(),
            },
            face_box: e
                .bbox
                .unwrap_or_else(|| BBox::around(&labelled).unwrap_or_default()),
            file_points: n,
        });
    }
    Ok(samples)
}

/// Whether a split names a COCO annotation file rather than a LaPa-layout folder.
pub fn is_coco_split(split: &str) -> bool {
    split.to_ascii_lowercase().ends_with(".json")
}

/// One prediction in the COCO results convention (`keypoints` as `x, y, score` triples).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CocoResult {
    pub image_id: u64,
    pub category_id: u64,
    pub keypoints: Vec<f32>,
    /// The mean point confidence.
    pub score: f32,
    /// Not in the convention (tools ignore extra fields): the image it was predicted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

impl CocoResult {
    pub fn new(image_id: u64, xy: &[[f32; 2]], confidence: &[f32]) -> CocoResult {
        let keypoints = xy
            .iter()
            .zip(confidence)
            .flat_map(|(p, &c)| [p[0], p[1], c])
            .collect();
        let score = if confidence.is_empty() {
            0.0
        } else {
            confidence.iter().sum::<f32>() / confidence.len() as f32
        };
        CocoResult {
            image_id,
            category_id: 1,
            keypoints,
            score,
            file_name: None,
        }
    }
}

/// The image ids of a COCO file by file name (and by the name's last path component), for
/// predictions that must refer to a ground-truth file's images.
pub fn image_ids(path: &Path) -> Result<HashMap<String, u64>> {
    let file = parse(path)?;
    let mut problems = Vec::new();
    let images: Vec<CocoImage> = typed("image", file.images, &mut problems);
    if let Some(p) = problems.first() {
        return Err(Error::file(path, p.message.clone()));
    }
    let mut ids = HashMap::new();
    for im in &images {
        ids.insert(im.file_name.clone(), im.id);
        if let Some(base) = Path::new(&im.file_name).file_name() {
            ids.entry(base.to_string_lossy().into_owned())
                .or_insert(im.id);
        }
    }
    Ok(ids)
}
