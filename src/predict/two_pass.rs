//! The second pass of face prediction: the first pass's points give the face's own box and its
//! in-plane angle, the convention the model was trained with (a `resize = "box"` model's crop is
//! the square of `box_scale` times the longer side of its points' box), so the second crop is
//! what the model saw in training, turned so that the face is upright; its prediction replaces
//! the first. A detector's box only approximates that box (its spread is 0.85-1.03 of the side,
//! see [`crate::detect::LANDMARK_BOX_SCALE`]) and knows nothing of the head's tilt.

use crate::keypoints::mean_point;
use crate::BBox;

/// A face crop: the box in the face's upright frame (the photo turned by `-roll`
/// about the box's centre), and the face's angle in the photo (radians, clockwise on screen).
/// A roll of 0 is an ordinary axis-aligned box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crop {
    pub bbox: BBox,
    pub roll: f32,
}

impl Crop {
    pub fn upright(bbox: BBox) -> Crop {
        Crop { bbox, roll: 0.0 }
    }

    /// The box's centre in photo pixels (the turn is about it, so it does not move).
    pub fn centre(&self) -> [f32; 2] {
        self.bbox.centre()
    }
}

/// The indices of the two eyes' points (the face's right eye first: the one on the image's left
/// in a frontal view) in the layouts whose eyes are known: iBUG-68 (36-41, 42-47) and WFLW-98
/// (60-67, 68-75).
pub fn eye_points(n: usize) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    match n {
        68 => Some((36..42, 42..48)),
        98 => Some((60..68, 68..76)),
        _ => None,
    }
}

/// The centres (means) of the two eyes' points, in the order of [`eye_points`]; `None` for a
/// layout without known eyes.
pub fn eye_centres(points: &[[f32; 2]]) -> Option<[[f32; 2]; 2]> {
    let (right, left) = eye_points(points.len())?;
    Some([mean_point(&points[right])?, mean_point(&points[left])?])
}

/// The crop of the second pass from the first pass's points (photo pixels): the angle of the
/// line from one eye's centre to the other's, and the box of the points in the frame where that
/// line is level. `None` for a layout without known eyes or points that are not finite.
pub fn crop_from_points(points: &[[f32; 2]]) -> Option<Crop> {
    if points.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    let [a, b] = eye_centres(points)?;
    let roll = (b[1] - a[1]).atan2(b[0] - a[0]);
    // The points turned by -roll about the origin: their box there, its centre turned back.
    let (s, c) = roll.sin_cos();
    let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
    for p in points {
        let q = [c * p[0] + s * p[1], -s * p[0] + c * p[1]];
        for k in 0..2 {
            lo[k] = lo[k].min(q[k]);
            hi[k] = hi[k].max(q[k]);
        }
    }
    let (w, h) = (hi[0] - lo[0], hi[1] - lo[1]);
    let mid = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let centre = [c * mid[0] - s * mid[1], s * mid[0] + c * mid[1]];
    Some(Crop {
        bbox: BBox::from_xywh([centre[0] - w / 2.0, centre[1] - h / 2.0, w, h]),
        roll,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 68-point layout: the eyes level, the other points spread over a 100 x 120 box.
    fn level_face() -> Vec<[f32; 2]> {
        (0..68)
            .map(|i| match i {
                0 => [0.0, 0.0],
                1 => [100.0, 120.0],
                36..=41 => [30.0 + (i - 36) as f32, 40.0],
                42..=47 => [70.0 + (i - 42) as f32, 40.0],
                _ => [(i * 37 % 100) as f32, (i * 53 % 120) as f32],
            })
            .collect()
    }

    #[test]
    fn a_turned_face_gives_the_level_faces_box_turned() {
        let level = level_face();
        let flat = crop_from_points(&level).unwrap();
        assert!(flat.roll.abs() < 1e-6);
        assert_eq!(flat.bbox, BBox::from_corners(0.0, 0.0, 100.0, 120.0));
        let angle = 0.7f32;
        let (s, c) = angle.sin_cos();
        let turned: Vec<[f32; 2]> = level
            .iter()
            .map(|p| [c * p[0] - s * p[1] + 500.0, s * p[0] + c * p[1] + 300.0])
            .collect();
        let t = crop_from_points(&turned).unwrap();
        assert!((t.roll - angle).abs() < 1e-5, "{t:?}");
        assert!((t.bbox.width() - 100.0).abs() < 1e-3 && (t.bbox.height() - 120.0).abs() < 1e-3);
        // The level box's centre (50, 60), turned and moved like the points.
        let want = [c * 50.0 - s * 60.0 + 500.0, s * 50.0 + c * 60.0 + 300.0];
        let got = t.centre();
        assert!((got[0] - want[0]).abs() < 1e-3 && (got[1] - want[1]).abs() < 1e-3);
        assert!(crop_from_points(&level[..10]).is_none());
    }
}
