//! The inverse of the loader's channel normalisation, for pictures of its planar (CHW) buffers.

use image::{Rgb, RgbImage};

use crate::data::loading::pipeline_config::NormalizeConfig;

/// Undoes the loader's `(v - mean[c]) / std[c]` (folded into its colour table,
/// `data::transforms::geometry`) and converts a CHW buffer of `w x h` pixels to an RGB picture.
pub fn denormalize_to_rgb(buf: &[f32], w: usize, h: usize, cfg: &NormalizeConfig) -> RgbImage {
    assert_eq!(buf.len(), 3 * w * h, "CHW buffer size");
    let plane = w * h;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let o = y as usize * w + x as usize;
        Rgb(std::array::from_fn(|c| {
            let v = buf[c * plane + o] * cfg.std[c] + cfg.mean[c];
            (v * 255.0).round().clamp(0.0, 255.0) as u8
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_round_trip() {
        let cfg = NormalizeConfig::default();
        let img = RgbImage::from_fn(3, 2, |x, y| Rgb([(x * 80) as u8, (y * 200) as u8, 128]));
        let cfg_ = &cfg;
        let buf: Vec<f32> = (0..3)
            .flat_map(|c| {
                img.pixels()
                    .map(move |p| (p[c] as f32 / 255.0 - cfg_.mean[c]) / cfg_.std[c])
            })
            .collect();
        // Mid-grey red channel: (128/255 - 0.485) / 0.229.
        assert!((buf[0] - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        assert_eq!(denormalize_to_rgb(&buf, 3, 2, &cfg), img);
    }
}
