//! Augmentations that change pixels but not geometry, as face-alignment recipes use them: Gaussian
//! blur and random occlusion (erasing a rectangle). They act on the rendered, normalised CHW input
//! after the warp and the lighting, so the points need no change.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Gaussian blur of standard deviation uniform in `[0, max_sigma]` input pixels, with
/// probability `p`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BlurConfig {
    pub enabled: bool,
    pub p: f32,
    pub max_sigma: f32,
}

impl Default for BlurConfig {
    fn default() -> Self {
        BlurConfig {
            enabled: false,
            p: 0.3,
            max_sigma: 1.5,
        }
    }
}

/// One rectangle of the input set to the dataset mean (0 after normalisation), with probability
/// `p`: area a fraction in `[min_area, max_area]` of the input, aspect ratio (w/h) log-uniform in
/// `[1/max_aspect, max_aspect]`, anywhere in the frame (random erasing, Zhong et al. 2020).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OcclusionConfig {
    pub enabled: bool,
    pub p: f32,
    pub min_area: f32,
    pub max_area: f32,
    pub max_aspect: f32,
}

impl Default for OcclusionConfig {
    fn default() -> Self {
        OcclusionConfig {
            enabled: false,
            p: 0.3,
            min_area: 0.02,
            max_area: 0.15,
            max_aspect: 3.0,
        }
    }
}

impl BlurConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.p) || !(0.0..=10.0).contains(&self.max_sigma) {
            return Err(Error::config(format!(
                "pipeline.augment.blur needs p in [0, 1] and max_sigma in [0, 10], got p {} \
                 max_sigma {}",
                self.p, self.max_sigma
            )));
        }
        Ok(())
    }
}

impl OcclusionConfig {
    pub fn validate(&self) -> Result<()> {
        let areas = 0.0 < self.min_area && self.min_area <= self.max_area && self.max_area < 1.0;
        if !(0.0..=1.0).contains(&self.p) || !areas || !(1.0..).contains(&self.max_aspect) {
            return Err(Error::config(format!(
                "pipeline.augment.occlusion needs p in [0, 1], 0 < min_area <= max_area < 1 and \
                 max_aspect >= 1, got p {} areas {}..{} max_aspect {}",
                self.p, self.min_area, self.max_area, self.max_aspect
            )));
        }
        Ok(())
    }
}

/// The pixel augmentations of one sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PixelDraw {
    /// Blur standard deviation in input pixels; 0: none.
    pub blur_sigma: f32,
    /// Erased rectangle `[x, y, w, h]` in fractions of the input frame.
    pub occlusion: Option<[f32; 4]>,
}

impl PixelDraw {
    /// Draws both (a fixed number of draws whenever either is on, none when both are off, so
    /// that configs without them keep their random streams).
    pub fn draw(blur: &BlurConfig, occ: &OcclusionConfig, rng: &mut impl Rng) -> PixelDraw {
        if !(blur.enabled || occ.enabled) {
            return PixelDraw::default();
        }
        let b_on = rng.random::<f32>() < blur.p && blur.enabled;
        let sigma = rng.random::<f32>() * blur.max_sigma;
        let o_on = rng.random::<f32>() < occ.p && occ.enabled;
        let area = occ.min_area + rng.random::<f32>() * (occ.max_area - occ.min_area);
        let log_aspect = (rng.random::<f32>() * 2.0 - 1.0) * occ.max_aspect.ln();
        let (u, v) = (rng.random::<f32>(), rng.random::<f32>());
        let aspect = log_aspect.exp();
        let w = (area * aspect).sqrt().min(1.0);
        let h = (area / aspect).sqrt().min(1.0);
        PixelDraw {
            blur_sigma: if b_on { sigma } else { 0.0 },
            occlusion: o_on.then_some([u * (1.0 - w), v * (1.0 - h), w, h]),
        }
    }

    /// Applies the draw to a normalised CHW image of `s x s` pixels.
    pub fn apply_chw(&self, buf: &mut [f32], s: usize) {
        if self.blur_sigma > 0.0 {
            blur_chw(buf, s, self.blur_sigma);
        }
        if let Some([x, y, w, h]) = self.occlusion {
            let px = |f: f32| ((f * s as f32).round() as usize).min(s);
            let (x0, y0) = (px(x), px(y));
            let (x1, y1) = (px(x + w).max(x0), px(y + h).max(y0));
            for plane in buf.chunks_mut(s * s) {
                for row in plane.chunks_mut(s).take(y1).skip(y0) {
                    row[x0..x1].fill(0.0);
                }
            }
        }
    }
}

/// Separable Gaussian blur of every `s x s` plane, edges clamped (radius `3 sigma`).
fn blur_chw(buf: &mut [f32], s: usize, sigma: f32) {
    let r = (3.0 * sigma).ceil() as isize;
    let mut kern: Vec<f32> = (-r..=r)
        .map(|d| (-((d * d) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = kern.iter().sum();
    kern.iter_mut().for_each(|k| *k /= sum);
    let mut tmp = vec![0f32; s * s];
    for plane in buf.chunks_mut(s * s) {
        blur_pass(plane, &mut tmp, s, &kern, [1, s]);
        blur_pass(&tmp, plane, s, &kern, [s, 1]);
    }
}

/// One 1-D pass of the separable blur along `step[0]` (1: rows, s: columns); `step[1]` moves to
/// the next line. Edges are clamped.
fn blur_pass(src: &[f32], dst: &mut [f32], s: usize, kern: &[f32], step: [usize; 2]) {
    let r = (kern.len() / 2) as isize;
    let last = s as isize - 1;
    for line in 0..s {
        for i in 0..s {
            let mut acc = 0.0;
            for (k, &g) in kern.iter().enumerate() {
                let j = (i as isize + k as isize - r).clamp(0, last) as usize;
                acc += g * src[line * step[1] + j * step[0]];
            }
            dst[line * step[1] + i * step[0]] = acc;
        }
    }
}
