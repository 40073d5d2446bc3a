//! One annotated image as every reader (LaPa layout, COCO) delivers it to the pipeline.

use std::path::PathBuf;

use crate::{BBox, Keypoints};

/// One annotated image.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub stem: String,
    pub image_path: PathBuf,
    pub landmarks_path: PathBuf,
    /// The selected points, in pixels of the image as written in the file; visible unless the
    /// file marks them unlabelled (COCO `v = 0`).
    pub points: Keypoints,
    /// In image pixels: the annotated face or person box where the format has one (COCO), else
    /// the box around all the file's points (empty for none). The `resize = "box"` crops are
    /// made around it.
    pub face_box: BBox,
    /// Points per annotation in the file (before the selection).
    pub file_points: usize,
}
