//! The photo with faces shared by the speed bench and the detection tests: the group photo the
//! rustface package ships (the 1927 Solvay conference, 1666x1136, in the public domain), which
//! build.rs copies next to the detector model; nothing embeds it.

// Each includer (the speed and photo benches, the detection tests) uses some of these.
#![allow(dead_code)]

use image::{Rgb, RgbImage};

pub fn group_photo() -> image::ImageResult<RgbImage> {
    Ok(image::open(concat!(env!("OUT_DIR"), "/group_photo.png"))?.to_rgb8())
}

/// Three faces of the group photo (two of the back row, one of the middle row) in a 16:9 cut
/// scaled up to 1280x720: faces of about 290 pixels.
pub fn three_faces(group: &RgbImage) -> RgbImage {
    let cut = image::imageops::crop_imm(group, 1240, 200, 246, 138).to_image();
    image::imageops::resize(&cut, 1280, 720, image::imageops::FilterType::Triangle)
}

/// The geometry of a photo turned about its centre onto a larger canvas.
#[derive(Clone, Copy, Debug)]
pub struct Turn {
    from_centre: [f32; 2],
    to_centre: [f32; 2],
    sin: f32,
    cos: f32,
}

impl Turn {
    /// A point of the photo to the turned photo.
    pub fn forward(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let (dx, dy) = (x - self.from_centre[0], y - self.from_centre[1]);
        [
            self.cos * dx - self.sin * dy + self.to_centre[0],
            self.sin * dx + self.cos * dy + self.to_centre[1],
        ]
    }

    /// A point of the turned photo back to the photo.
    pub fn back(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let (dx, dy) = (x - self.to_centre[0], y - self.to_centre[1]);
        [
            self.cos * dx + self.sin * dy + self.from_centre[0],
            -self.sin * dx + self.cos * dy + self.from_centre[1],
        ]
    }
}

/// `img` turned by `deg` degrees clockwise on screen about its centre, on a canvas that holds all
/// of it (mid-gray around), and its geometry.
pub fn turned(img: &RgbImage, deg: f32) -> (RgbImage, Turn) {
    use imageproc::geometric_transformations::{warp_into, Border, Interpolation, Projection};
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (sin, cos) = deg.to_radians().sin_cos();
    let nw = (w * cos.abs() + h * sin.abs()).round();
    let nh = (w * sin.abs() + h * cos.abs()).round();
    let turn = Turn {
        from_centre: [(w - 1.0) / 2.0, (h - 1.0) / 2.0],
        to_centre: [(nw - 1.0) / 2.0, (nh - 1.0) / 2.0],
        sin,
        cos,
    };
    let proj = Projection::translate(turn.to_centre[0], turn.to_centre[1])
        * Projection::rotate(deg.to_radians())
        * Projection::translate(-turn.from_centre[0], -turn.from_centre[1]);
    let mut out = RgbImage::new(nw as u32, nh as u32);
    warp_into(
        img,
        proj,
        Interpolation::Bilinear,
        Border::Constant(Rgb([128, 128, 128])),
        &mut out,
    );
    (out, turn)
}

/// An 8000x8000 photo (64 megapixels, as a 50-megapixel phone writes): the group photo scaled
/// to the full width (faces of about 200-300 pixels) above a band of smooth scenery.
pub fn big_photo(group: &RgbImage) -> RgbImage {
    let side = 8000;
    let gh = (group.height() as f32 * side as f32 / group.width() as f32).round() as u32;
    let top = image::imageops::resize(group, side, gh, image::imageops::FilterType::Triangle);
    let mut out = scenery(side);
    image::imageops::replace(&mut out, &top, 0, 0);
    out
}

/// The photo most phones take: one face of about 1,800 pixels (a 3600x3600 square of `face`, a
/// face with the same amount of margin around it) over 8000x8000 of smooth scenery.
pub fn big_portrait(face: &RgbImage) -> RgbImage {
    let side = 8000;
    let patch = image::imageops::resize(face, 3600, 3600, image::imageops::FilterType::Triangle);
    let mut out = scenery(side);
    image::imageops::replace(&mut out, &patch, 2200, 1800);
    out
}

/// Smooth colour waves: scenery with no face-like texture, cheap to compress.
fn scenery(side: u32) -> RgbImage {
    RgbImage::from_fn(side, side, |x, y| {
        let v = ((x as f32 / 97.0).sin() * 50.0 + (y as f32 / 61.0).cos() * 50.0 + 128.0) as u8;
        Rgb([v, v / 2 + 50, 255 - v])
    })
}
