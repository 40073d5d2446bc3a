//! One annotated image as every reader (LaPa layout, COCO) delivers it to the pipeline.
//!
//! Landmark files differ in where they put the first pixel's centre: 300-W counts from 1, most
//! tools from 0. A constant offset does not matter to a model trained without flips (it learns
//! the offset), but a horizontal flip mirrors a point about the image's centre in the crate's
//! convention, so the flipped copy of a point labelled `c` pixels right of where it is lands `c`
//! pixels left of where it is: a flip-trained model splits the difference and predicts the true
//! place, `c` pixels left of every label. Measured on the built-in face68 (trained with flips on
//! 300-W HELEN and ytf68 read as if from 0): -1.9 px in x and 0.0 in y on HELEN val, -1.2 px on
//! ytf68 test. [`move_origin`] puts points into the crate's convention on reading.

use std::path::PathBuf;

use crate::{BBox, Keypoints};

/// One annotated image.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub stem: String,
    pub image_path: PathBuf,
    pub landmarks_path: PathBuf,
    /// The selected points, in pixels of the image as written in the file (until
    /// [`move_origin`] moves them); visible unless the file marks them unlabelled (COCO
    /// `v = 0`).
    pub points: Keypoints,
    /// In image pixels: the annotated face or person box where the format has one (COCO), else
    /// the box around all the file's points (empty for none). The `resize = "box"` crops are
    /// made around it.
    pub face_box: BBox,
    /// Points per annotation in the file (before the selection).
    pub file_points: usize,
}

/// Moves the points and boxes of samples whose files put the first pixel's centre at `origin`
/// into the crate's convention (the first pixel's centre at 0).
pub fn move_origin(samples: &mut [Sample], origin: f32) {
    if origin == 0.0 {
        return;
    }
    for s in samples {
        for p in &mut s.points.xy {
            p[0] -= origin;
            p[1] -= origin;
        }
        s.face_box = s.face_box.shifted(-origin, -origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_the_origin_moves_points_and_box_alike() {
        let xy = vec![[1.0, 1.0], [11.0, 21.0]];
        let mut samples = vec![Sample {
            stem: "a".into(),
            image_path: "a.jpg".into(),
            landmarks_path: "a.txt".into(),
            face_box: BBox::around(&xy).unwrap(),
            points: Keypoints::new(xy),
            file_points: 2,
        }];
        move_origin(&mut samples, 1.0);
        assert_eq!(samples[0].points.xy, vec![[0.0, 0.0], [10.0, 20.0]]);
        assert_eq!(
            samples[0].face_box,
            BBox::from_corners(0.0, 0.0, 10.0, 20.0)
        );
        move_origin(&mut samples, 0.0);
        assert_eq!(samples[0].points.xy[1], [10.0, 20.0]);
    }
}
