//! EXIF orientation tags written by hand, as a phone would: a JPEG APP1 "Exif" segment or a PNG
//! eXIf chunk holding a minimal TIFF header with one IFD entry, 0x0112 (Orientation).
// Each test file that includes this module uses only some of it.
#![allow(dead_code)]

use std::io::Cursor;

use image::{ImageEncoder, RgbImage};

/// The TIFF structure (big-endian) with a single Orientation entry of `value` (1-8).
fn tiff_orientation(value: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\0\x2A"); // byte order, TIFF magic 42
    t.extend_from_slice(&8u32.to_be_bytes()); // the first IFD follows the header
    t.extend_from_slice(&1u16.to_be_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    t.extend_from_slice(&3u16.to_be_bytes()); // type SHORT
    t.extend_from_slice(&1u32.to_be_bytes()); // one value, stored in the entry itself
    t.extend_from_slice(&[0, value, 0, 0]);
    t.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    t
}

/// `img` as a JPEG (quality 95) with an APP1 Exif segment right after the start-of-image marker.
pub fn jpeg_with_orientation(img: &RgbImage, value: u8) -> Vec<u8> {
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 95)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    assert_eq!(&plain[..2], [0xFF, 0xD8]);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff_orientation(value));
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    // The segment length counts its own two bytes.
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&plain[2..]);
    out
}

/// `img` as a PNG with an eXIf chunk.
pub fn png_with_orientation(img: &RgbImage, value: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(Cursor::new(&mut out));
    enc.set_exif_metadata(tiff_orientation(value)).unwrap();
    enc.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// The stored pixels that orientation `value` turns into `upright`: the tag's inverse applied
/// (6 and 8 undo each other; every other orientation is its own inverse).
pub fn stored_for(upright: &RgbImage, value: u8) -> RgbImage {
    let inverse = match value {
        6 => 8,
        8 => 6,
        v => v,
    };
    let mut img = image::DynamicImage::ImageRgb8(upright.clone());
    img.apply_orientation(image::metadata::Orientation::from_exif(inverse).unwrap());
    img.into_rgb8()
}
