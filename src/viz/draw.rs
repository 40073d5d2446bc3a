//! Drawing primitives on RGB images: points, crosses, lines, circles, rectangles.
//!
//! Coordinates follow the crate convention: pixel `i` stands for coordinate `i`, so a point at
//! `(x, y)` lands on pixel `(round(x), round(y))`. Everything clips silently at the image border
//! (drawing partly outside is normal for augmented points) and ignores non-finite coordinates.

use image::{Rgb, RgbImage};

use crate::Keypoints;

/// Grey used for invisible points.
pub const INVISIBLE_GREY: Rgb<u8> = Rgb([150, 150, 150]);

/// Sets one pixel if it lies inside the image.
#[inline]
pub fn put(img: &mut RgbImage, x: i32, y: i32, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, color);
    }
}

fn to_pixel(x: f32, y: f32) -> Option<(i32, i32)> {
    // Far-away coordinates would overflow the integer loops below; nothing there is visible anyway.
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
        let Some((cx, cy)) = to_pixel(p[0], p[1]) else {
            continue;
        };
        if vis {
            if radius >= 2 {
                draw_circle(img, cx, cy, radius + 1, Rgb([0, 0, 0]));
            }
            fill_circle(img, cx, cy, radius, color);
        } else {
            draw_circle(img, cx, cy, radius.max(1), INVISIBLE_GREY);
        }
    }
}

/// An `x`-shaped cross centred on `(x, y)` reaching `size` pixels along each diagonal.
pub fn draw_cross(img: &mut RgbImage, x: f32, y: f32, size: i32, color: Rgb<u8>) {
    let Some((cx, cy)) = to_pixel(x, y) else {
        return;
    };
    for d in -size.abs()..=size.abs() {
        put(img, cx + d, cy + d, color);
        put(img, cx + d, cy - d, color);
    }
}

/// A `+`-shaped cross centred on `(x, y)` reaching `size` pixels along each axis.
pub fn draw_plus(img: &mut RgbImage, x: f32, y: f32, size: i32, color: Rgb<u8>) {
    let Some((cx, cy)) = to_pixel(x, y) else {
        return;
    };
    for d in -size.abs()..=size.abs() {
        put(img, cx + d, cy, color);
        put(img, cx, cy + d, color);
    }
}

/// A one-pixel line between two points (Bresenham on the rounded end points).
pub fn draw_line(img: &mut RgbImage, from: (f32, f32), to: (f32, f32), color: Rgb<u8>) {
    let (Some((mut x0, mut y0)), Some((x1, y1))) = (to_pixel(from.0, from.1), to_pixel(to.0, to.1))
    else {
        return;
    };
    let dx = (x1 - x0).abs();
    let dy = -(y1 - y0).abs();
    let sx = if x0 < x1 { 1 } else { -1 };
    let sy = if y0 < y1 { 1 } else { -1 };
    let mut err = dx + dy;
    loop {
        put(img, x0, y0, color);
        if x0 == x1 && y0 == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x0 += sx;
        }
        if e2 <= dx {
            err += dx;
            y0 += sy;
        }
    }
}

/// A line `width` pixels thick: the one-pixel line stamped with a square brush.
pub fn draw_thick_line(
    img: &mut RgbImage,
    from: (f32, f32),
    to: (f32, f32),
    width: i32,
    color: Rgb<u8>,
) {
    let width = width.max(1);
    let lo = -(width - 1) / 2;
    let hi = width / 2;
    for oy in lo..=hi {
        for ox in lo..=hi {
            let (ox, oy) = (ox as f32, oy as f32);
            draw_line(
                img,
                (from.0 + ox, from.1 + oy),
                (to.0 + ox, to.1 + oy),
                color,
            );
        }
    }
}

/// A filled disc: every pixel within `radius` (Euclidean) of the centre.
pub fn fill_circle(img: &mut RgbImage, cx: i32, cy: i32, radius: i32, color: Rgb<u8>) {
    let r = radius.max(0);
    let r2 = r * r + r; // the +r rounds the rim outwards, which looks rounder at small radii
    for dy in -r..=r {
        for dx in -r..=r {
            if dx * dx + dy * dy <= r2 {
                put(img, cx + dx, cy + dy, color);
            }
        }
    }
}

/// A one-pixel circle outline (midpoint algorithm).
pub fn draw_circle(img: &mut RgbImage, cx: i32, cy: i32, radius: i32, color: Rgb<u8>) {
    let r = radius.max(0);
    if r == 0 {
        put(img, cx, cy, color);
        return;
    }
    let (mut x, mut y, mut err) = (r, 0, 1 - r);
    while x >= y {
        for (px, py) in [
            (x, y),
            (y, x),
            (-y, x),
            (-x, y),
            (-x, -y),
            (-y, -x),
            (y, -x),
            (x, -y),
        ] {
            put(img, cx + px, cy + py, color);
        }
        y += 1;
        if err < 0 {
            err += 2 * y + 1;
        } else {
            x -= 1;
            err += 2 * (y - x) + 1;
        }
    }
}

/// A filled axis-aligned rectangle with top-left `(x, y)`.
pub fn fill_rect(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    let x0 = x.max(0);
    let y0 = y.max(0);
    let x1 = (x as i64 + w as i64).min(img.width() as i64) as i32;
    let y1 = (y as i64 + h as i64).min(img.height() as i64) as i32;
    for yy in y0..y1 {
        for xx in x0..x1 {
            img.put_pixel(xx as u32, yy as u32, color);
        }
    }
}

/// A one-pixel rectangle outline with top-left `(x, y)`.
pub fn draw_rect(img: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, color: Rgb<u8>) {
    if w == 0 || h == 0 {
        return;
    }
    let (x1, y1) = (x + w as i32 - 1, y + h as i32 - 1);
    for xx in x..=x1 {
        put(img, xx, y, color);
        put(img, xx, y1, color);
    }
    for yy in y..=y1 {
        put(img, x, yy, color);
        put(img, x1, yy, color);
    }
}

/// A filled diamond (square rotated 45 degrees) of half-diagonal `r`.
pub fn fill_diamond(img: &mut RgbImage, cx: i32, cy: i32, r: i32, color: Rgb<u8>) {
    for dy in -r..=r {
        let span = r - dy.abs();
        for dx in -span..=span {
            put(img, cx + dx, cy + dy, color);
        }
    }
}

/// A filled upward triangle inscribed in the square of half-side `r`.
pub fn fill_triangle(img: &mut RgbImage, cx: i32, cy: i32, r: i32, color: Rgb<u8>) {
    let r = r.max(1);
    for dy in -r..=r {
        // Half-width grows linearly from 0 at the apex to r at the base.
        let half = ((dy + r) as f32 / 2.0).round() as i32;
        for dx in -half..=half {
            put(img, cx + dx, cy + dy, color);
        }
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
    fn clipping_never_panics() {
        let mut img = RgbImage::new(5, 5);
        let c = Rgb([1, 2, 3]);
        draw_line(&mut img, (-100.0, -3.0), (100.0, 7.0), c);
        fill_circle(&mut img, -2, 6, 4, c);
        draw_circle(&mut img, 2, 2, 10, c);
        fill_rect(&mut img, -3, -3, 100, 2, c);
        draw_cross(&mut img, f32::NAN, 1.0, 3, c);
        draw_line(&mut img, (0.0, 0.0), (f32::INFINITY, 1.0), c);
    }
}
