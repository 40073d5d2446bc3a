//! The photo with faces shared by the speed bench and the detection tests: the group photo the
//! rustface package ships (the 1927 Solvay conference, 1666x1136, in the public domain), which
//! build.rs copies next to the detector model; nothing embeds it.

use image::RgbImage;

pub fn group_photo() -> image::ImageResult<RgbImage> {
    Ok(image::open(concat!(env!("OUT_DIR"), "/group_photo.png"))?.to_rgb8())
}

/// Three faces of the group photo (two of the back row, one of the middle row) in a 16:9 cut
/// scaled up to 1280x720: faces of about 290 pixels.
pub fn three_faces(group: &RgbImage) -> RgbImage {
    let cut = image::imageops::crop_imm(group, 1240, 200, 246, 138).to_image();
    image::imageops::resize(&cut, 1280, 720, image::imageops::FilterType::Triangle)
}
