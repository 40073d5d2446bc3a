//! Random augmentation equal in effect to fastai's `aug_transforms` defaults (without flip):
//! perspective warp, rotation and zoom composed into one projective matrix, then brightness and
//! contrast in logit space.
//!
//! The geometry is written, as in fastai, in normalised coordinates of a square frame
//! (`n = 2 x / size - 1`) and maps OUTPUT coordinates to INPUT sampling coordinates:
//! `input = P * R * Z * output` (fastai merges Warp, Rotate and Zoom into one `AffineCoordTfm`
//! whose affine part is `rotate @ zoom` and whose coordinate part, the perspective warp, is
//! applied to the affine grid).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::transforms::pixel_augment::{BlurConfig, OcclusionConfig, PixelDraw};
use crate::data::transforms::warp::{Mat3, PadMode};
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Master switch (augmentation only ever applies to training batches).
    pub enabled: bool,
    pub rotate: RotateConfig,
    pub zoom: ZoomConfig,
    pub warp: WarpConfig,
    pub brightness: LightingConfig,
    pub contrast: LightingConfig,
    /// Shift of the frame (off by default: fastai's recipe has none besides the zoom centre).
    pub translate: TranslateConfig,
    pub blur: BlurConfig,
    pub occlusion: OcclusionConfig,
    /// What the warp reads outside the source: fastai's default is reflection.
    pub pad: PadMode,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            enabled: true,
            rotate: RotateConfig::default(),
            zoom: ZoomConfig::default(),
            warp: WarpConfig::default(),
            brightness: LightingConfig::default(),
            contrast: LightingConfig::default(),
            translate: TranslateConfig::default(),
            blur: BlurConfig::default(),
            occlusion: OcclusionConfig::default(),
            pad: PadMode::Reflection,
        }
    }
}

/// Shift of the frame by up to `max` of its side along each axis (uniform), with probability
/// `p`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TranslateConfig {
    pub enabled: bool,
    pub p: f32,
    pub max: f32,
}

impl Default for TranslateConfig {
    fn default() -> Self {
        TranslateConfig {
            enabled: false,
            p: 0.5,
            max: 0.1,
        }
    }
}

/// Rotation by an angle uniform in `[-max_deg, max_deg]`, applied with probability `p`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RotateConfig {
    pub enabled: bool,
    pub p: f32,
    pub max_deg: f32,
}

impl Default for RotateConfig {
    fn default() -> Self {
        RotateConfig {
            enabled: true,
            p: 0.75,
            max_deg: 10.0,
        }
    }
}

/// Zoom in by a factor uniform in `[min, max]` about a random centre, with probability `p`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ZoomConfig {
    pub enabled: bool,
    pub p: f32,
    pub min: f32,
    pub max: f32,
}

impl Default for ZoomConfig {
    fn default() -> Self {
        ZoomConfig {
            enabled: true,
            p: 0.75,
            min: 1.0,
            max: 1.1,
        }
    }
}

/// Perspective warp: the corners move by up to `magnitude` (normalised units) along each axis;
/// each axis' displacement is drawn (and switched on with probability `p`) independently.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WarpConfig {
    pub enabled: bool,
    pub p: f32,
    pub magnitude: f32,
}

impl Default for WarpConfig {
    fn default() -> Self {
        WarpConfig {
            enabled: true,
            p: 0.75,
            magnitude: 0.2,
        }
    }
}

/// Brightness or contrast change of strength up to `max`, with probability `p`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LightingConfig {
    pub enabled: bool,
    pub p: f32,
    pub max: f32,
}

impl Default for LightingConfig {
    fn default() -> Self {
        LightingConfig {
            enabled: true,
            p: 0.75,
            max: 0.2,
        }
    }
}

fn check_p(name: &str, p: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::config(format!(
            "pipeline.augment.{name}.p must be in [0, 1], got {p}"
        )));
    }
    Ok(())
}

impl AugmentConfig {
    pub fn validate(&self) -> Result<()> {
        check_p("rotate", self.rotate.p)?;
        check_p("zoom", self.zoom.p)?;
        check_p("warp", self.warp.p)?;
        check_p("brightness", self.brightness.p)?;
        check_p("contrast", self.contrast.p)?;
        check_p("translate", self.translate.p)?;
        if !(0.0..=0.5).contains(&self.translate.max) {
            return Err(Error::config(format!(
                "pipeline.augment.translate.max must be in [0, 0.5], got {}",
                self.translate.max
            )));
        }
        self.blur.validate()?;
        self.occlusion.validate()?;
        if !(self.rotate.max_deg.is_finite() && (0.0..=180.0).contains(&self.rotate.max_deg)) {
            return Err(Error::config(format!(
                "pipeline.augment.rotate.max_deg must be in [0, 180], got {}",
                self.rotate.max_deg
            )));
        }
        let z = &self.zoom;
        if !(z.min.is_finite() && z.max.is_finite() && z.min > 0.0 && z.min <= z.max) {
            return Err(Error::config(format!(
                "pipeline.augment.zoom needs 0 < min <= max, got min {} max {}",
                z.min, z.max
            )));
        }
        if !(0.0..0.5).contains(&self.warp.magnitude) {
            return Err(Error::config(format!(
                "pipeline.augment.warp.magnitude must be in [0, 0.5), got {}",
                self.warp.magnitude
            )));
        }
        for (name, l) in [
            ("brightness", &self.brightness),
            ("contrast", &self.contrast),
        ] {
            if !(0.0..1.0).contains(&l.max) {
                return Err(Error::config(format!(
                    "pipeline.augment.{name}.max must be in [0, 1), got {}",
                    l.max
                )));
            }
        }
        Ok(())
    }
}

/// One sample's random draw: every parameter at its neutral value when not applied.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentDraw {
    pub rotate_deg: f64,
    pub zoom: f64,
    /// Zoom centre as fractions of the frame (fastai `col_pct`, `row_pct`).
    pub zoom_centre: [f64; 2],
    /// Perspective corner displacements (fastai `x_t`, `y_t`).
    pub warp: [f64; 2],
    /// Brightness in fastai's parametrisation: 0.5 is neutral.
    pub brightness: f32,
    /// Contrast factor in logit space: 1 is neutral.
    pub contrast: f32,
    /// Frame shift in normalised units (2 = the whole frame).
    pub translate: [f64; 2],
    /// Blur and occlusion, applied to the rendered input.
    pub pixels: PixelDraw,
}

impl AugmentDraw {
    pub const NEUTRAL: AugmentDraw = AugmentDraw {
        rotate_deg: 0.0,
        zoom: 1.0,
        zoom_centre: [0.5, 0.5],
        warp: [0.0, 0.0],
        brightness: 0.5,
        contrast: 1.0,
        translate: [0.0, 0.0],
        pixels: PixelDraw {
            blur_sigma: 0.0,
            occlusion: None,
        },
    };

    /// Draws every parameter (always the same number of draws, so switching one component off
    /// leaves the others' values unchanged for a given generator).
    pub fn draw(cfg: &AugmentConfig, rng: &mut impl Rng) -> AugmentDraw {
        // A parameter applies when the component is on and a Bernoulli(p) draw succeeds.
        let gate = |on: bool, p: f32, rng: &mut dyn rand::RngCore| {
            let u: f32 = rng.random();
            cfg.enabled && on && u < p
        };
        let r_on = gate(cfg.rotate.enabled, cfg.rotate.p, rng);
        let r_val = uniform(rng, -cfg.rotate.max_deg as f64, cfg.rotate.max_deg as f64);
        let z_on = gate(cfg.zoom.enabled, cfg.zoom.p, rng);
        let z_val = uniform(rng, cfg.zoom.min as f64, cfg.zoom.max as f64);
        let centre = [rng.random::<f64>(), rng.random::<f64>()];
        let m = cfg.warp.magnitude as f64;
        let wx_on = gate(cfg.warp.enabled, cfg.warp.p, rng);
        let wx = uniform(rng, -m, m);
        let wy_on = gate(cfg.warp.enabled, cfg.warp.p, rng);
        let wy = uniform(rng, -m, m);
        let b = cfg.brightness.max as f64;
        let b_on = gate(cfg.brightness.enabled, cfg.brightness.p, rng);
        let b_val = uniform(rng, 0.5 * (1.0 - b), 0.5 * (1.0 + b));
        let c = cfg.contrast.max as f64;
        let c_on = gate(cfg.contrast.enabled, cfg.contrast.p, rng);
        // fastai draws the log of the contrast factor uniformly in [log(1-max), -log(1-max)].
        let c_val = uniform(rng, (1.0 - c).ln(), -(1.0 - c).ln()).exp();
        // Drawn only when switched on, so that configs without them keep their random streams.
        let mut translate = [0.0; 2];
        if cfg.enabled && cfg.translate.enabled {
            let on = rng.random::<f32>() < cfg.translate.p;
            let m = 2.0 * cfg.translate.max as f64;
            let t = [uniform(rng, -m, m), uniform(rng, -m, m)];
            if on {
                translate = t;
            }
        }
        let pixels = if cfg.enabled {
            PixelDraw::draw(&cfg.blur, &cfg.occlusion, rng)
        } else {
            PixelDraw::default()
        };
        AugmentDraw {
            rotate_deg: if r_on { r_val } else { 0.0 },
            zoom: if z_on { z_val } else { 1.0 },
            zoom_centre: centre,
            warp: [if wx_on { wx } else { 0.0 }, if wy_on { wy } else { 0.0 }],
            brightness: if b_on { b_val as f32 } else { 0.5 },
            contrast: if c_on { c_val as f32 } else { 1.0 },
            translate,
            pixels,
        }
    }

    /// The map from normalised OUTPUT coordinates to normalised INPUT coordinates.
    pub fn output_to_input(&self) -> Mat3 {
        let t = self.rotate_deg.to_radians();
        let (c, s) = (t.cos(), t.sin());
        let rot = Mat3::affine(c, s, 0.0, -s, c, 0.0);
        let sc = 1.0 / self.zoom;
        let zoom = Mat3::affine(
            sc,
            0.0,
            (1.0 - sc) * (2.0 * self.zoom_centre[0] - 1.0),
            0.0,
            sc,
            (1.0 - sc) * (2.0 * self.zoom_centre[1] - 1.0),
        );
        let shift = Mat3::translate(self.translate[0], self.translate[1]);
        shift.mul(&rot.mul(&zoom)).then_perspective(self.warp)
    }

    pub fn has_lighting(&self) -> bool {
        self.brightness != 0.5 || self.contrast != 1.0
    }

    /// fastai's lighting on a value in [0, 1]: `sigmoid((logit(v) + logit(brightness)) * contrast)`.
    pub fn light(&self, v: f32) -> f32 {
        let add = logit(self.brightness);
        sigmoid((logit(v) + add) * self.contrast)
    }
}

trait ThenPerspective {
    fn then_perspective(&self, warp: [f64; 2]) -> Mat3;
}

impl ThenPerspective for Mat3 {
    /// `P * self`, with P fastai's perspective warp taking the frame corners
    /// (-1,-1), (-1,1), (1,-1), (1,1) to the displaced ones below.
    fn then_perspective(&self, warp: [f64; 2]) -> Mat3 {
        let [xt, yt] = warp;
        if xt == 0.0 && yt == 0.0 {
            return *self;
        }
        let from = [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]];
        let to = [
            [-1.0 - yt, -1.0 - xt],
            [-1.0 + yt, 1.0 + xt],
            [1.0 + yt, -1.0 + xt],
            [1.0 - yt, 1.0 - xt],
        ];
        // Corners displaced by less than 0.5 never make the quadrilateral degenerate.
        let p = Mat3::homography(from, to).expect("a non-degenerate quadrilateral");
        p.mul(self)
    }
}

fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    let u: f64 = rng.random();
    lo + (hi - lo) * u
}

/// fastai's logit, clamped like its `x.clamp(1e-7, 1-1e-7)`.
fn logit(v: f32) -> f32 {
    let v = v.clamp(1e-7, 1.0 - 1e-7);
    (v / (1.0 - v)).ln()
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Points of the lighting lookup table: values between them are linearly interpolated
/// (max error well under 1/255 even where the curve is steepest).
const LUT_STEPS: usize = 4096;

/// A per-channel lookup table applying lighting and then normalisation to values in [0, 1],
/// so the whole colour pass costs one table lookup per value.
pub struct ColourLut {
    tables: [Vec<f32>; 3],
}

impl ColourLut {
    pub fn new(draw: &AugmentDraw, mean: [f32; 3], std: [f32; 3]) -> ColourLut {
        let lit = draw.has_lighting();
        let tables = std::array::from_fn(|c| {
            (0..=LUT_STEPS)
                .map(|i| {
                    let v = i as f32 / LUT_STEPS as f32;
                    let v = if lit { draw.light(v) } else { v };
                    (v - mean[c]) / std[c]
                })
                .collect()
        });
        ColourLut { tables }
    }

    /// Applies the table in place to a planar CHW buffer of values in [0, 1].
    pub fn apply_chw(&self, buf: &mut [f32]) {
        let plane = buf.len() / 3;
        for (c, chunk) in buf.chunks_mut(plane).enumerate().take(3) {
            let t = &self.tables[c];
            for v in chunk.iter_mut() {
                let x = v.clamp(0.0, 1.0) * LUT_STEPS as f32;
                let i = (x as usize).min(LUT_STEPS - 1);
                let f = x - i as f32;
                *v = t[i] + f * (t[i + 1] - t[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn neutral_draw_is_identity() {
        let m = AugmentDraw::NEUTRAL.output_to_input();
        assert_eq!(m, Mat3::IDENTITY);
        assert!(!AugmentDraw::NEUTRAL.has_lighting());
        assert!((AugmentDraw::NEUTRAL.light(0.3) - 0.3).abs() < 1e-6);
    }

    #[test]
    fn draws_respect_ranges_and_probabilities() {
        let cfg = AugmentConfig::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let n = 4000;
        let mut rotated = 0;
        for _ in 0..n {
            let d = AugmentDraw::draw(&cfg, &mut rng);
            assert!(d.rotate_deg.abs() <= 10.0);
            assert!((1.0..=1.1).contains(&d.zoom));
            assert!(d.warp[0].abs() <= 0.2 && d.warp[1].abs() <= 0.2);
            assert!((0.4..=0.6).contains(&d.brightness));
            assert!((0.8..=1.25).contains(&d.contrast));
            rotated += (d.rotate_deg != 0.0) as usize;
        }
        let frac = rotated as f64 / n as f64;
        assert!(
            (frac - 0.75).abs() < 0.03,
            "rotation applied in {frac} of draws"
        );
        let off = AugmentConfig {
            enabled: false,
            ..AugmentConfig::default()
        };
        assert_eq!(
            AugmentDraw::draw(&off, &mut rng).output_to_input(),
            Mat3::IDENTITY
        );
    }

    #[test]
    fn lut_matches_direct_lighting() {
        let d = AugmentDraw {
            brightness: 0.58,
            contrast: 0.81,
            ..AugmentDraw::NEUTRAL
        };
        let lut = ColourLut::new(&d, [0.0; 3], [1.0; 3]);
        let mut buf: Vec<f32> = (0..300).map(|i| (i % 100) as f32 / 99.0).collect();
        let orig = buf.clone();
        lut.apply_chw(&mut buf);
        for (a, b) in buf.iter().zip(orig.iter()) {
            assert!(
                (a - d.light(*b)).abs() < 1.0 / 512.0,
                "{a} vs {}",
                d.light(*b)
            );
        }
    }
}
