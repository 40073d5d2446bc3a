//! Writing PNG files safely: parent directories are created, and the picture is written to a
//! temporary file in the same directory and renamed into place, so a crash never leaves a
//! truncated PNG under the final name.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};

use crate::{Error, Result};

pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::file(
            path,
            "cannot write an empty (0-pixel) image as PNG",
        ));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| {
            Error::file(
                path,
                format!("cannot create directory {}: {e}", parent.display()),
            )
        })?;
    }
    let tmp = tmp_path(path);
    let written = write_png(img, &tmp);
    if let Err(msg) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::file(path, msg));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::file(path, format!("cannot move the written PNG into place: {e}"))
    })
}

/// `dir/.name.tmp-PID` next to the target: same file system, so the rename is atomic.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image.png".to_string());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
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
    w.flush().map_err(|e| format!("cannot write file: {e}"))?;
    let file = w
        .into_inner()
        .map_err(|e| format!("cannot write file: {e}"))?;
    file.sync_all()
        .map_err(|e| format!("cannot sync file: {e}"))?;
    Ok(())
}
