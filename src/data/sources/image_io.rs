//! Reading images: RGB pixels, or just the size from the header. Every error names the file.
//!
//! Phones store portrait photos sideways with an EXIF orientation tag (JPEG APP1 Exif, PNG
//! eXIf) that viewers apply. [`read_rgb`] keeps the stored pixels (dataset annotations are in
//! that frame); [`read_rgb_upright`] applies the tag, for photos a user predicts on.
//!
//! JPEG decoders are lenient with truncated files (they fill the missing part with grey and carry
//! on), so a JPEG must also end with its end-of-image marker: a cut-off download is reported, not
//! trained on.

use std::io::Cursor;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::{Error, Result};

/// Image file extensions a dataset may use (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// True if the path has one of [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// Decodes an image file to 8-bit RGB (grey, alpha and 16-bit images are converted), in the
/// stored pixels' frame: an EXIF orientation tag is not applied.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    decode_rgb(&bytes, path)
}

/// Decodes an image file to 8-bit RGB as a viewer shows it: the EXIF orientation tag (if any)
/// is applied. Returns the image and the tag's EXIF value (1 = stored upright, 6 = stored
/// turned 90 degrees anticlockwise, as phones save portraits; 1-8 as in the EXIF standard).
pub fn read_rgb_upright(path: &Path) -> Result<(RgbImage, u8)> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let (img, orientation) = decode_oriented(&bytes, path)?;
    let mut img = DynamicImage::ImageRgb8(img);
    img.apply_orientation(orientation);
    Ok((img.into_rgb8(), orientation.to_exif()))
}

/// Decodes image bytes that came from `path` (used only in messages), stored pixels' frame.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    decode_oriented(bytes, path).map(|(img, _)| img)
}

/// The stored pixels and the orientation tag (identity when there is none or it is invalid:
/// a broken tag is no reason to refuse the pixels).
fn decode_oriented(bytes: &[u8], path: &Path) -> Result<(RgbImage, Orientation)> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let format = reader.format();
    if format.is_none() {
        return Err(Error::file(path, "not a JPEG or PNG image"));
    }
    if format == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(Error::file(
            path,
            "truncated JPEG: no end-of-image marker at the end of the file",
        ));
    }
    let decode_err = |e: image::ImageError| Error::file(path, format!("cannot decode image: {e}"));
    // The header's size is checked first, for a message that says it; the decoder's limits
    // then bound what it allocates (ancillary chunks and metadata too).
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    check_size(path, decoder.dimensions())?;
    decoder.set_limits(decode_limits()).map_err(decode_err)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::file(path, "image has zero width or height"));
    }
    Ok((img.into_rgb8(), orientation))
}

/// The longest side a photo may have. Phones write 12-50 megapixels (about 8000 pixels on the
/// long side); a header that claims more is refused before any pixel buffer is allocated.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most a single decode may allocate: a 16384 x 16384 RGB image (768 MiB) fits, a 16-bit
/// RGBA one of that size (2 GiB) does not.
const MAX_DECODE_BYTES: u64 = 1 << 30;

/// The decoders' own limits, so that what a header claims is checked against them too.
fn decode_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// Refuses a header's size before decoding: zero sides and sides over [`MAX_IMAGE_SIDE`].
fn check_size(path: &Path, (w, h): (u32, u32)) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::file(
            path,
            format!("image header claims {w}x{h} pixels"),
        ));
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE {
        return Err(Error::file(
            path,
            format!(
                "image header claims {w}x{h} pixels; sides over {MAX_IMAGE_SIDE} are refused \
                 (downscale the photo first)"
            ),
        ));
    }
    Ok(())
}

/// What an image's header says: its stored size and its EXIF orientation (1 = none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
}

/// The header of an image file, without decoding the pixels (a dataset check reads thousands).
pub fn image_header(path: &Path) -> Result<ImageHeader> {
    let reader = ImageReader::open(path)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?
        .with_guessed_format()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::file(path, "not a JPEG or PNG image"));
    }
    let header_err =
        |e: image::ImageError| Error::file(path, format!("cannot read image header: {e}"));
    let mut decoder = reader.into_decoder().map_err(header_err)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (width, height) = decoder.dimensions();
    Ok(ImageHeader {
        width,
        height,
        orientation: orientation.to_exif(),
    })
}

/// Width and height from the image header, without decoding the pixels.
pub fn image_size(path: &Path) -> Result<(u32, u32)> {
    image_header(path).map(|h| (h.width, h.height))
}

/// Decodes the whole file (catching truncation and corrupt data) and returns its header.
pub fn verify_image(path: &Path) -> Result<ImageHeader> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let (img, orientation) = decode_oriented(&bytes, path)?;
    Ok(ImageHeader {
        width: img.width(),
        height: img.height(),
        orientation: orientation.to_exif(),
    })
}

/// A complete JPEG ends with the EOI marker FF D9, possibly followed by padding or trailing data
/// some cameras append. Entropy-coded data never contains FF D9 (0xFF bytes are stuffed), so
/// finding it in the tail means the scan data was not cut off.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_jpeg_is_refused() {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let mut buf = Vec::new();
        img.write_to(&mut Cursor::new(&mut buf), ImageFormat::Jpeg)
            .unwrap();
        let p = Path::new("t.jpg");
        assert_eq!(decode_rgb(&buf, p).unwrap().dimensions(), (64, 48));
        let cut = &buf[..buf.len() * 2 / 3];
        let e = decode_rgb(cut, p).unwrap_err().to_string();
        assert!(e.starts_with("t.jpg: truncated"), "{e}");
        assert!(decode_rgb(b"hello", p).is_err());
    }

    #[test]
    fn extensions() {
        assert!(is_image_path(Path::new("a/B.JPG")));
        assert!(is_image_path(Path::new("a.png")));
        assert!(!is_image_path(Path::new("a.txt")));
    }
}
