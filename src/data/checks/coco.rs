//! `hmreg data check FILE.json`: the report of [`crate::data::checks::lapa`] for a COCO keypoint file. Each
//! problem names the file and the annotation or image id; a file that does not parse is one
//! problem naming its line.

use std::path::{Path, PathBuf};

use crate::data::checks::lapa::{
    error_message, image_sizes, record_sizes, CheckOptions, CheckReport, Problem, ProblemKind,
    SplitStats,
};
use crate::data::sources::coco::validate;
use crate::data::sources::image_io::ImageHeader;

pub fn check_coco(path: &Path, opts: &CheckOptions) -> CheckReport {
    let split = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut st = SplitStats {
        split,
        landmark_files: 1,
        ..Default::default()
    };
    let problem = |kind, message: String| Problem {
        path: path.to_path_buf(),
        line: None,
        kind,
        message,
    };
    let report = match validate(path) {
        Ok(r) => r,
        Err(e) => {
            let line = match &e {
                crate::Error::Parse { line, .. } => Some(*line),
                _ => None,
            };
            let message = match e {
                crate::Error::Parse { msg, .. } => msg,
                other => error_message(other),
            };
            return finish(
                path,
                st,
                vec![Problem {
                    line,
                    ..problem(ProblemKind::Malformed, message)
                }],
                None,
            );
        }
    };
    let mut problems: Vec<Problem> = report
        .problems
        .iter()
        .map(|p| {
            let kind = if p.missing_image {
                ProblemKind::MissingImage
            } else {
                ProblemKind::BadAnnotation
            };
            problem(kind, p.message.clone())
        })
        .collect();
    st.images = report.images;
    st.annotated = report.entries.len();
    if let Some(n) = report.points {
        st.point_counts.insert(n, report.entries.len());
    }
    st.unlabelled_annotations = report.unlabelled;
    let images: Vec<&PathBuf> = {
        let mut v: Vec<&PathBuf> = report.entries.iter().map(|e| &e.image_path).collect();
        v.sort();
        v.dedup();
        v
    };
    let sizes = image_sizes(
        &images,
        opts.decode_images,
        &indicatif::ProgressBar::hidden(),
    );
    record_sizes(&sizes, &mut st, &mut problems);
    for e in &report.entries {
        let Some(Ok(ImageHeader {
            width: w,
            height: h,
            ..
        })) = sizes.get(&e.image_path)
        else {
            continue;
        };
        let outside = e
            .points
            .xy
            .iter()
            .zip(&e.points.visible)
            .filter(|(p, &v)| {
                v && !(p[0] >= 0.0 && p[1] >= 0.0 && p[0] < *w as f32 && p[1] < *h as f32)
            })
            .count();
        st.points_outside += outside;
        st.images_with_points_outside += usize::from(outside > 0);
    }
    if let (Some(sel), Some(n)) = (&opts.selection, report.points) {
        if let Err(e) = sel.check_range(n, path) {
            problems.push(problem(
                ProblemKind::PointSelection,
                format!("--points {sel}: {}", error_message(e)),
            ));
        }
    }
    finish(path, st, problems, report.points)
}

fn finish(
    path: &Path,
    st: SplitStats,
    problems: Vec<Problem>,
    point_count: Option<usize>,
) -> CheckReport {
    CheckReport::new(path, point_count, vec![st], problems)
}
