//! Frame sequences in and animations out: a list of image files (read one at a time, so long
//! sequences do not fill memory) or the frames of an animated GIF, and animated GIFs written
//! from pictures on disk (again one at a time).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::{AnimationDecoder, Delay, Frame, RgbImage};

use crate::data::sources::image_io::read_rgb_upright;
use crate::{Error, Result};

/// The frames of a sequence.
pub enum Frames {
    /// Image files in order.
    Files(Vec<PathBuf>),
    /// The decoded frames of an animated GIF (composited, as a viewer shows them).
    Gif {
        path: PathBuf,
        frames: Vec<RgbImage>,
    },
}

/// True for a `.gif` file name.
pub fn is_gif(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("gif"))
}

impl Frames {
    /// The frames of an animated GIF.
    pub fn from_gif(path: &Path) -> Result<Frames> {
        let file = File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let bad = |e: image::ImageError| Error::file(path, format!("not a readable GIF: {e}"));
        let decoder = GifDecoder::new(BufReader::new(file)).map_err(bad)?;
        let frames = decoder
            .into_frames()
            .map(|f| f.map(|f| image::DynamicImage::ImageRgba8(f.into_buffer()).into_rgb8()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        if frames.is_empty() {
            return Err(Error::file(path, "the GIF has no frames"));
        }
        Ok(Frames::Gif {
            path: path.to_path_buf(),
            frames,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Frames::Files(f) => f.len(),
            Frames::Gif { frames, .. } => frames.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What names frame `i` in outputs and messages: its file, or `anim.gif#12`.
    pub fn name(&self, i: usize) -> PathBuf {
        match self {
            Frames::Files(f) => f[i].clone(),
            Frames::Gif { path, .. } => PathBuf::from(format!("{}#{i}", path.display())),
        }
    }

    /// Frame `i` (a file is read now, upright as `hmreg predict` reads photos).
    pub fn get(&self, i: usize) -> Result<RgbImage> {
        match self {
            Frames::Files(f) => read_rgb_upright(&f[i]).map(|(img, _)| img),
            Frames::Gif { frames, .. } => Ok(frames[i].clone()),
        }
    }
}

/// Parses `--fps`: a positive, finite number of frames per second.
pub fn check_fps(fps: f64) -> Result<f64> {
    if fps.is_finite() && fps > 0.0 && fps <= 1000.0 {
        Ok(fps)
    } else {
        Err(Error::config(format!(
            "--fps must be a positive number of frames per second (at most 1000), got {fps}"
        )))
    }
}

/// Writes the animated GIF `path` (looping) from `count` frames that `frame(i)` gives, at `fps`
/// frames per second; every frame is scaled to the first one's size. GIF delays count in
/// hundredths of a second, so the rate is rounded to that.
pub fn write_gif(
    path: &Path,
    count: usize,
    fps: f64,
    mut frame: impl FnMut(usize) -> Result<RgbImage>,
) -> Result<()> {
    if count == 0 {
        return Err(Error::file(path, "no frames to write"));
    }
    let delay = Delay::from_numer_denom_ms(((1000.0 / fps) / 10.0).round().max(1.0) as u32 * 10, 1);
    crate::atomic::write_atomic_with(path, |tmp| {
        let file = File::create(tmp).map_err(|e| Error::file(tmp, e.to_string()))?;
        let fail = |e: image::ImageError| Error::file(path, format!("cannot write GIF: {e}"));
        // Speed 10 of 1-30: NeuQuant's palette quality close to its best at a fraction of the
        // time of speed 1.
        let mut enc = GifEncoder::new_with_speed(BufWriter::new(file), 10);
        enc.set_repeat(Repeat::Infinite).map_err(fail)?;
        let mut size = None;
        for i in 0..count {
            let mut img = frame(i)?;
            let (w, h) = *size.get_or_insert(img.dimensions());
            if img.dimensions() != (w, h) {
                img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            }
            let rgba = image::DynamicImage::ImageRgb8(img).into_rgba8();
            enc.encode_frame(Frame::from_parts(rgba, 0, 0, delay))
                .map_err(fail)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_gif_reads_back_frame_by_frame() {
        let dir = tempfile::tempdir().unwrap();
        let gif = dir.path().join("a.gif");
        let colours = [[250u8, 10, 10], [10, 250, 10], [10, 10, 250]];
        write_gif(&gif, 3, 10.0, |i| {
            Ok(RgbImage::from_pixel(24, 16, image::Rgb(colours[i])))
        })
        .unwrap();
        let frames = Frames::from_gif(&gif).unwrap();
        assert_eq!(frames.len(), 3);
        for (i, c) in colours.iter().enumerate() {
            let f = frames.get(i).unwrap();
            assert_eq!(f.dimensions(), (24, 16));
            let p = f.get_pixel(12, 8).0;
            for k in 0..3 {
                assert!((p[k] as i32 - c[k] as i32).abs() < 12, "{p:?} {c:?}");
            }
        }
        assert!(frames.name(2).to_string_lossy().ends_with("a.gif#2"));
        assert!(Frames::from_gif(&dir.path().join("missing.gif")).is_err());
        assert!(check_fps(0.0).is_err() && check_fps(f64::NAN).is_err());
    }
}
