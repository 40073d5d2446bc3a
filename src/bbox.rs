//! [`BBox`]: an axis-aligned box in image pixels, held by its corners. Files and tools write
//! boxes two ways (corners in samples and crops; `[x, y, w, h]` in COCO, the detector and
//! `--bbox`); this type is the one value they convert to and from, so a box's convention is in
//! its field names rather than in a comment beside a bare `[f32; 4]`.

/// A box `x_min..x_max` by `y_min..y_max` in pixels (the crate's coordinate convention).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BBox {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

impl BBox {
    pub const fn from_corners(x_min: f32, y_min: f32, x_max: f32, y_max: f32) -> BBox {
        BBox {
            x_min,
            y_min,
            x_max,
            y_max,
        }
    }

    /// From `[x, y, w, h]`: the top left corner and the size.
    pub fn from_xywh([x, y, w, h]: [f32; 4]) -> BBox {
        BBox::from_corners(x, y, x + w, y + h)
    }

    /// The square of side `side` centred on `(cx, cy)`.
    pub fn square(cx: f32, cy: f32, side: f32) -> BBox {
        let half = side / 2.0;
        BBox::from_corners(cx - half, cy - half, cx + half, cy + half)
    }

    /// The box around the finite points, or `None` when there is none.
    pub fn around(points: &[[f32; 2]]) -> Option<BBox> {
        let mut finite = points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite());
        let &[x, y] = finite.next()?;
        Some(
            finite.fold(BBox::from_corners(x, y, x, y), |b, &[x, y]| BBox {
                x_min: b.x_min.min(x),
                y_min: b.y_min.min(y),
                x_max: b.x_max.max(x),
                y_max: b.y_max.max(y),
            }),
        )
    }

    /// `[x, y, w, h]`, as COCO, the detector and `--bbox` write it.
    pub fn xywh(&self) -> [f32; 4] {
        [self.x_min, self.y_min, self.width(), self.height()]
    }

    /// `[x_min, y_min, x_max, y_max]`.
    pub fn corners(&self) -> [f32; 4] {
        [self.x_min, self.y_min, self.x_max, self.y_max]
    }

    pub fn width(&self) -> f32 {
        self.x_max - self.x_min
    }

    pub fn height(&self) -> f32 {
        self.y_max - self.y_min
    }

    pub fn longer_side(&self) -> f32 {
        self.width().max(self.height())
    }

    pub fn centre(&self) -> [f32; 2] {
        [
            (self.x_min + self.x_max) / 2.0,
            (self.y_min + self.y_max) / 2.0,
        ]
    }

    /// The same box moved by `(dx, dy)`.
    pub fn shifted(&self, dx: f32, dy: f32) -> BBox {
        BBox::from_corners(
            self.x_min + dx,
            self.y_min + dy,
            self.x_max + dx,
            self.y_max + dy,
        )
    }

    /// Area, zero for an empty or inverted box.
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// Intersection over union; 0 when both are empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = BBox::from_corners(
            self.x_min.max(other.x_min),
            self.y_min.max(other.y_min),
            self.x_max.min(other.x_max),
            self.y_max.min(other.y_max),
        )
        .area();
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// Whether every coordinate is finite and the box has a positive width and height.
    pub fn is_proper(&self) -> bool {
        self.corners().iter().all(|v| v.is_finite()) && self.width() > 0.0 && self.height() > 0.0
    }
}

/// Serialises a box as `[x, y, w, h]` (the JSON outputs' form): `#[serde(serialize_with)]`.
pub fn serialize_xywh<S: serde::Serializer>(b: &BBox, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&b.xywh(), s)
}

/// [`serialize_xywh`] for an optional box (`null` for none).
pub fn serialize_optional_xywh<S: serde::Serializer>(
    b: &Option<BBox>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&b.map(|b| b.xywh()), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_name_the_corners() {
        let b = BBox::from_xywh([10.0, 20.0, 30.0, 40.0]);
        assert_eq!(b, BBox::from_corners(10.0, 20.0, 40.0, 60.0));
        assert_eq!(b.xywh(), [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(b.corners(), [10.0, 20.0, 40.0, 60.0]);
        assert_eq!(b.centre(), [25.0, 40.0]);
        assert_eq!(b.longer_side(), 40.0);
        assert_eq!(
            BBox::square(25.0, 40.0, 40.0).corners(),
            [5.0, 20.0, 45.0, 60.0]
        );
        assert_eq!(b.shifted(1.0, -2.0).corners(), [11.0, 18.0, 41.0, 58.0]);
    }

    #[test]
    fn around_skips_non_finite_points() {
        assert_eq!(BBox::around(&[]), None);
        assert_eq!(BBox::around(&[[f32::NAN, 1.0]]), None);
        let b = BBox::around(&[[3.0, 9.0], [f32::NAN, 0.0], [-1.0, 4.0], [2.0, 5.0]]).unwrap();
        assert_eq!(b.corners(), [-1.0, 4.0, 3.0, 9.0]);
    }

    #[test]
    fn iou_of_overlapping_disjoint_and_empty_boxes() {
        let a = BBox::from_xywh([0.0, 0.0, 10.0, 10.0]);
        assert_eq!(a.iou(&a), 1.0);
        let half = BBox::from_xywh([5.0, 0.0, 10.0, 10.0]);
        assert!((a.iou(&half) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::from_xywh([20.0, 20.0, 5.0, 5.0])), 0.0);
        assert_eq!(BBox::default().iou(&BBox::default()), 0.0);
        assert!(!BBox::default().is_proper());
        assert!(a.is_proper());
    }
}
