//! One annotated image as every reader (LaPa layout, COCO) delivers it to the pipeline.

use std::path::PathBuf;

use crate::Keypoints;

/// One annotated image.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub stem: String,
    pub image_path: PathBuf,
    pub landmarks_path: PathBuf,
    /// The selected points, in pixels of the image as written in the file; visible unless the
    /// file marks them unlabelled (COCO `v = 0`).
    pub points: Keypoints,
    /// `[x_min, y_min, x_max, y_max]` in image pixels: the annotated face or person box where
    /// the format has one (COCO), else the bounding box of all the file's points. The
    /// `resize = "box"` crops are made around it.
    pub face_box: [f32; 4],
    /// Points per annotation in the file (before the selection).
    pub file_points: usize,
}

/// The bounding box `[x_min, y_min, x_max, y_max]` of finite points (all zeros for none).
pub fn bounding_box(points: &[[f32; 2]]) -> [f32; 4] {
    let mut b = [
        f32::INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    ];
    for p in points
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
    {
        b = [
            b[0].min(p[0]),
            b[1].min(p[1]),
            b[2].max(p[0]),
            b[3].max(p[1]),
        ];
    }
    if b[0] > b[2] {
        [0.0; 4]
    } else {
        b
    }
}
