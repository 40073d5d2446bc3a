//! Drawing primitives on RGB images: points, crosses, lines, rectangles.
//!
//! Coordinates follow the crate convention: pixel `i` stands for coordinate `i`, so a point at
//! `(x, y)` lands on pixel `(round(x), round(y))`. Everything clips silently at the image border
//! (drawing partly outside is normal for augmented points) and ignores non-finite coordinates.
//!
//! The rasterising is `imageproc`'s (Bresenham segments, midpoint circles, filled rectangles and
//! polygons). What stays here is what imageproc leaves to the caller:
//! - rounding to the crate convention: imageproc truncates `f32` end points towards zero;
//! - a guard against far-away coordinates: imageproc walks every pixel of a segment, clipping
//!   each one, and its `i32` arithmetic (and [`Rect`]'s) can overflow; a rectangle may not be
//!   empty either ([`Rect`] panics);
//! - thick lines, which imageproc does not have: a square brush of one-pixel segments;
//! - the `x`-shaped cross ([`imageproc::drawing::draw_cross_mut`] is a fixed 3x3 `+`).
//!
//! Text is not drawn with imageproc (that needs `ab_glyph` and a TrueType font we do not ship):
//! see [`super::font`].

use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_circle_mut, draw_filled_rect_mut, draw_hollow_circle_mut, draw_hollow_rect_mut,
    draw_line_segment_mut,
};
use imageproc::rect::Rect;

use crate::Keypoints;

/// Grey used for invisible points.
pub const INVISIBLE_GREY: Rgb<u8> = Rgb([150, 150, 150]);

/// The pixel of a point, `None` when it is not finite or too far away to matter.
pub(super) fn to_pixel(x: f32, y: f32) -> Option<(i32, i32)> {
    // Far-away coordinates would overflow imageproc's integer arithmetic (and make it walk long
    // lines pixel by pixel); nothing there is visible anyway.
    const LIMIT: f32 = 1.0e6;
    if x.is_finite() && y.is_finite() && x.abs() < LIMIT && y.abs() < LIMIT {
        Some((x.round() as i32, y.round() as i32))
    } else {
        None
    }
}

/// Draws the points of `kp`: visible points as filled discs of `radius` in `color` with a
/// one-pixel black ring (readable on any background); invisible points as hollow grey circles
/// ([`INVISIBLE_GREY`]) so that they stay distinguishable. `radius` 0 draws single pixels.
pub fn draw_points(img: &mut RgbImage, kp: &Keypoints, color: Rgb<u8>, radius: i32) {
    let radius = radius.max(0);
    for (p, &vis) in kp.xy.iter().zip(kp.visible.iter()) {
        let Some(c) = to_pixel(p[0], p[1]) else {
            continue;
        };
        if vis {
            if radius >= 2 {
                draw_hollow_circle_mut(img, c, radius + 1, Rgb([0, 0, 0]));
            }
            draw_filled_circle_mut(img, c, radius, color);
        } else {
            draw_hollow_circle_mut(img, c, radius.max(1), INVISIBLE_GREY);
        }
    }
}

/// An `x`-shaped cross centred on `(x, y)` reaching `size` pixels along each diagonal.
pub fn draw_cross(img: &mut RgbImage, x: f32, y: f32, size: i32, color: Rgb<u8>) {
    let Some((cx, cy)) = to_pixel(x, y) else {
        return;
    };
    let d = size.abs();
    segment(img, (cx - d, cy - d), (cx + d, cy + d), color);
    segment(img, (cx - d, cy + d), (cx + d, cy - d), color);
}

/// A one-pixel line between two points (Bresenham on the rounded end points).
pub fn draw_line(img: &mut RgbImage, from: (f32, f32), to: (f32, f32), color: Rgb<u8>) {
    if let (Some(a), Some(b)) = (to_pixel(from.0, from.1), to_pixel(to.0, to.1)) {
        segment(img, a, b, color);
    }
}

/// imageproc's segment between two pixels (already rounded and guarded).
fn segment(img: &mut RgbImage, a: (i32, i32), b: (i32, i32), color: Rgb<u8>) {
    let f = |p: (i32, i32)| (p.0 as f32, p.1 as f32);
    draw_line_segment_mut(img, f(a), f(b), color);
}

/// A line `width` pixels thick: the one-pixel line stamped with a square brush (imageproc has
/// no thick lines; a filled polygon around the segment looks uneven at widths 2 and 3).
pub fn draw_thick_line(
    img: &mut RgbImage,
    from: (f32, f32),
    to: (f32, f32),
    width: i32,
    color: Rgb<u8>,
) {
    let (Some(a), Some(b)) = (to_pixel(from.0, from.1), to_pixel(to.0, to.1)) else {
        return;
    };
    let width = width.max(1);
    let lo = -(width - 1) / 2;
    let hi = width / 2;
    for oy in lo..=hi {
        for ox in lo..=hi {
            segment(img, (a.0 + ox, a.1 + oy), (b.0 + ox, b.1 + oy), color);
        }
    }
}

/// The part of the rectangle with top-left `(x, y)` and size `w x h` that lies within `margin`
/// pixels of the image, `None` when it is empty.
fn clip_rect(img: &RgbImage, x: i32, y: i32, w: u32, h: u32, margin: i64) -> Option<Rect> {
    let x0 = (x as i64).max(-margin);
    let y0 = (y as i64).max(-margin);
    let x1 = (x as i64 + w as i64).min(img.width() as i64 + margin);
    let y1 = (y as i64 + h as i64).min(img.height() as i64 + margin);
    (x1 > x0 && y1 > y0)
        .then(|| Rect::at(x0 as i32, y0 as i32).of_size((x1 - x0) as u32, (y1 - y0) as u32))
}

/// A filled axis-aligned rectangle with top-left `(x, y)`.
pub fn fill_rect(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    if let Some(r) = clip_rect(img, x, y, w, h, 0) {
        draw_filled_rect_mut(img, r, color);
    }
}

/// A one-pixel rectangle outline with top-left `(x, y)`.
pub fn draw_rect(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    // Clipped to one pixel beyond the image: the sides outside stay outside (and are skipped),
    // the sides inside keep their place, and imageproc never walks far-away pixels.
    if let Some(r) = clip_rect(img, x, y, w, h, 1) {
        draw_hollow_rect_mut(img, r, color);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_hits_both_ends_and_is_connected() {
        let mut img = RgbImage::new(20, 20);
        let c = Rgb([255, 0, 0]);
        draw_line(&mut img, (2.0, 3.0), (17.0, 11.0), c);
        assert_eq!(*img.get_pixel(2, 3), c);
        assert_eq!(*img.get_pixel(17, 11), c);
        // One pixel per column for a shallow line.
        for x in 2..=17 {
            assert_eq!((0..20).filter(|&y| *img.get_pixel(x, y) == c).count(), 1);
        }
    }

    #[test]
    fn end_points_round_to_the_nearest_pixel() {
        // imageproc alone would truncate 2.6 to 2 and -0.6 to 0.
        let mut img = RgbImage::new(10, 10);
        let c = Rgb([255, 0, 0]);
        draw_line(&mut img, (2.6, 4.4), (2.6, 7.5), c);
        let ink: Vec<_> = (0..10u32)
            .flat_map(|y| (0..10u32).map(move |x| (x, y)))
            .filter(|&(x, y)| *img.get_pixel(x, y) == c)
            .collect();
        assert_eq!(ink, [(3, 4), (3, 5), (3, 6), (3, 7), (3, 8)]);
    }

    #[test]
    fn rectangles_clip_at_the_border() {
        let c = Rgb([0, 0, 255]);
        let mut img = RgbImage::new(10, 10);
        draw_rect(&mut img, -3, 2, 8, 4, c);
        // Top and bottom sides from 0 to 4, right side at 4; the left side is outside.
        for x in 0..=4 {
            assert_eq!(*img.get_pixel(x, 2), c);
            assert_eq!(*img.get_pixel(x, 5), c);
        }
        assert_eq!(*img.get_pixel(4, 3), c);
        assert_ne!(*img.get_pixel(0, 3), c);
        assert_ne!(*img.get_pixel(5, 2), c);
        let mut img = RgbImage::new(10, 10);
        fill_rect(&mut img, 7, -2, 100, 4, c);
        let n = img.pixels().filter(|p| **p == c).count();
        assert_eq!(n, 3 * 2);
    }

    #[test]
    fn clipping_never_panics() {
        let mut img = RgbImage::new(5, 5);
        let c = Rgb([1, 2, 3]);
        draw_line(&mut img, (-100.0, -3.0), (100.0, 7.0), c);
        draw_thick_line(&mut img, (-1e7, 1.0), (3.0, 1e9), 3, c);
        let kp = Keypoints::new(vec![[-2.0, 6.0], [2.0, 2.0], [1e7, 0.0]]);
        draw_points(&mut img, &kp, c, 10);
        fill_rect(&mut img, -3, -3, 100, 2, c);
        fill_rect(&mut img, i32::MAX, i32::MIN, u32::MAX, u32::MAX, c);
        draw_rect(&mut img, i32::MIN, -1, u32::MAX, u32::MAX, c);
        draw_rect(&mut img, 1, 1, 0, 3, c);
        draw_cross(&mut img, f32::NAN, 1.0, 3, c);
        draw_line(&mut img, (0.0, 0.0), (f32::INFINITY, 1.0), c);
        let mut empty = RgbImage::new(0, 0);
        draw_line(&mut empty, (0.0, 0.0), (3.0, 3.0), c);
        draw_rect(&mut empty, 0, 0, 3, 3, c);
        fill_rect(&mut empty, 0, 0, 3, 3, c);
        draw_points(&mut empty, &kp, c, 2);
    }
}
