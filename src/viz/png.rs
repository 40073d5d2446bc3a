//! Writing PNG files safely: through [`crate::atomic`], so a crash never leaves a truncated PNG
//! under the final name, and parent directories are created.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use image::{ImageEncoder, RgbImage};

use crate::{Error, Result};

pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::file(
            path,
            "cannot write an empty (0-pixel) image as PNG",
        ));
    }
    crate::atomic::write_atomic_with(path, |tmp| {
        write_png(img, tmp).map_err(|msg| Error::file(path, msg))
    })
}

/// `img` as PNG bytes (for embedding, such as TensorBoard image summaries).
pub fn encode_png(img: &RgbImage) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| format!("cannot encode PNG: {e}"))?;
    Ok(out)
}

fn write_png(img: &RgbImage, tmp: &Path) -> std::result::Result<(), String> {
    let file = fs::File::create(tmp).map_err(|e| format!("cannot create file: {e}"))?;
    let mut w = BufWriter::new(file);
    image::codecs::png::PngEncoder::new(&mut w)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| format!("cannot encode PNG: {e}"))?;
    w.flush().map_err(|e| format!("cannot write file: {e}"))
}
