//! Heatmaps as colour pictures, and blending them over the image they belong to.

use image::{imageops, Rgb, RgbImage};

/// Samples of matplotlib's viridis colormap at 0, 1/8, ..., 1 (values from its published table).
/// Linear interpolation between 9 samples stays within a few levels of the full 256-entry table
/// and keeps the property that matters here: lightness rises monotonically from min to max.
const VIRIDIS: [[f32; 3]; 9] = [
    [0.267004, 0.004874, 0.329415],
    [0.282623, 0.140926, 0.457517],
    [0.229739, 0.322361, 0.545706],
    [0.172719, 0.448791, 0.557885],
    [0.127568, 0.566949, 0.550556],
    [0.157851, 0.683765, 0.501686],
    [0.369214, 0.788888, 0.382914],
    [0.678489, 0.863742, 0.189503],
    [0.993248, 0.906157, 0.143936],
];

/// The colormap at `t` in `[0, 1]` (clamped; NaN maps to 0).
pub fn viridis(t: f32) -> Rgb<u8> {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let pos = t * (VIRIDIS.len() - 1) as f32;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let ch = |k: usize| {
        ((a[k] + (b[k] - a[k]) * f) * 255.0)
            .round()
            .clamp(0.0, 255.0) as u8
    };
    Rgb([ch(0), ch(1), ch(2)])
}

/// Colours a row-major `w x h` map with viridis after min-max normalisation over its finite
/// values: the minimum becomes `viridis(0)`, the maximum `viridis(1)`. A constant map is all
/// `viridis(0)`; non-finite values count as the minimum.
///
/// Panics if `map.len() != w * h` (a caller bug, never user input).
pub fn colorize(map: &[f32], w: usize, h: usize) -> RgbImage {
    assert_eq!(
        map.len(),
        w * h,
        "colorize: map of {} values is not {w}x{h}",
        map.len()
    );
    let (lo, hi) = map
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    let scale = if range.is_finite() && range > 0.0 {
        1.0 / range
    } else {
        0.0
    };
    let mut img = RgbImage::new(w as u32, h as u32);
    for (px, &v) in img.pixels_mut().zip(map.iter()) {
        let t = if v.is_finite() { (v - lo) * scale } else { 0.0 };
        *px = viridis(t);
    }
    img
}

/// Blends `heat` over `base`: `(1 - alpha) * base + alpha * heat`, with `heat` resized
/// (bilinear) to the size of `base` first. `alpha` is clamped to `[0, 1]`.
pub fn overlay(base: &RgbImage, heat: &RgbImage, alpha: f32) -> RgbImage {
    let alpha = if alpha.is_nan() {
        0.0
    } else {
        alpha.clamp(0.0, 1.0)
    };
    let (w, h) = base.dimensions();
    if w == 0 || h == 0 || heat.width() == 0 || heat.height() == 0 {
        return base.clone();
    }
    let resized;
    let heat = if heat.dimensions() == (w, h) {
        heat
    } else {
        resized = imageops::resize(heat, w, h, imageops::FilterType::Triangle);
        &resized
    };
    let mut out = base.clone();
    for (o, hp) in out.pixels_mut().zip(heat.pixels()) {
        for k in 0..3 {
            let v = (1.0 - alpha) * o[k] as f32 + alpha * hp[k] as f32;
            o[k] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luma(c: Rgb<u8>) -> f32 {
        0.2126 * c[0] as f32 + 0.7152 * c[1] as f32 + 0.0722 * c[2] as f32
    }

    #[test]
    fn viridis_brightens_monotonically() {
        let mut prev = -1.0;
        for i in 0..=100 {
            let l = luma(viridis(i as f32 / 100.0));
            assert!(l > prev, "lightness not rising at {i}");
            prev = l;
        }
    }

    #[test]
    fn overlay_extremes() {
        let base = RgbImage::from_pixel(4, 4, Rgb([10, 20, 30]));
        let heat = RgbImage::from_pixel(2, 2, Rgb([200, 100, 0]));
        assert_eq!(overlay(&base, &heat, 0.0), base);
        let full = overlay(&base, &heat, 1.0);
        assert_eq!(full.dimensions(), (4, 4));
        assert!(full.pixels().all(|p| *p == Rgb([200, 100, 0])));
        let half = overlay(&base, &heat, 0.5);
        assert_eq!(*half.get_pixel(3, 3), Rgb([105, 60, 15]));
    }
}
