//! Points of one image with their visibility.

/// The mean of `points` (`None` for none).
pub fn mean_point(points: &[[f32; 2]]) -> Option<[f32; 2]> {
    let n = points.len() as f32;
    (n > 0.0).then(|| {
        let s = points
            .iter()
            .fold([0.0, 0.0], |a, p| [a[0] + p[0], a[1] + p[1]]);
        [s[0] / n, s[1] / n]
    })
}

/// Landmarks of one image, `[x, y]` in pixels of that image. An invisible point (pushed out of the
/// frame by augmentation, or missing) keeps its coordinates but must be ignored by losses and metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Keypoints {
    pub xy: Vec<[f32; 2]>,
    pub visible: Vec<bool>,
}

impl Keypoints {
    /// All points visible.
    pub fn new(xy: Vec<[f32; 2]>) -> Self {
        let visible = vec![true; xy.len()];
        Keypoints { xy, visible }
    }

    pub fn len(&self) -> usize {
        self.xy.len()
    }

    pub fn is_empty(&self) -> bool {
        self.xy.is_empty()
    }

    /// Scales every point by `(sx, sy)`: the change of frame between two image sizes.
    pub fn scaled(&self, sx: f32, sy: f32) -> Self {
        Keypoints {
            xy: self.xy.iter().map(|&[x, y]| [x * sx, y * sy]).collect(),
            visible: self.visible.clone(),
        }
    }

    /// Marks points outside `[0, w) x [0, h)` invisible.
    pub fn mark_outside(&mut self, w: f32, h: f32) {
        for (p, v) in self.xy.iter().zip(self.visible.iter_mut()) {
            let inside = p[0].is_finite()
                && p[1].is_finite()
                && p[0] >= 0.0
                && p[1] >= 0.0
                && p[0] < w
                && p[1] < h;
            *v = *v && inside;
        }
    }
}
