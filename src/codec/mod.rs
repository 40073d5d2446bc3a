//! Points to target heatmaps (encoders) and heatmaps back to points (decoders).
//!
//! Coordinates follow the crate convention (src/lib.rs): integer heatmap pixel `i` stands for
//! coordinate `i`, no half-pixel shift. Encoders take points already scaled to heatmap pixels;
//! decoders return heatmap pixels and [`to_frame`] scales them to input or original-image pixels.
//!
//! Points outside the map: every encoder leaves the map of a point that is invisible or does not
//! land in `[0, w) x [0, h)` all zeros, and reports it in the returned mask so that losses and
//! metrics skip it instead of treating it as a point at (0, 0). (The write-up's Gaussian encoder
//! would still draw the visible part of a window whose centre is just off the map; a clipped
//! Gaussian would teach the model a peak on the border, so hmreg masks such points instead.)

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rayon::prelude::*;

use crate::{Error, Keypoints, Result};

pub mod decode;
pub mod gaussian;
pub mod heatmap;
pub mod rounding;

pub use decode::{decode, decode_maps, decode_one, Decoded};
pub use heatmap::{Codec, Encoded, Predictions};

/// How a point becomes its target heatmap.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetEncoder {
    /// Variant 1: unnormalised Gaussian, peak 1, standard deviation `sigma` heatmap pixels,
    /// square window of radius `3 sigma`. With `subpixel = false` the centre is the truncated
    /// integer pixel (the write-up's `int(...)`), so argmax decoding lands exactly on it; with
    /// `subpixel = true` the centre is the float point itself (unquantised target).
    Gaussian {
        #[serde(default = "default_sigma")]
        sigma: f32,
        #[serde(default)]
        subpixel: bool,
    },
    /// The same Gaussian centred at the nearest pixel (`round`, not the write-up's truncation):
    /// quantised like `subpixel = false` but unbiased, the fair "vanilla" heatmap of the
    /// rounding experiment.
    GaussianRound {
        #[serde(default = "default_sigma")]
        sigma: f32,
    },
    /// Variant 2: binary map with one 1, randomized rounding of each coordinate (unbiased).
    RandomizedRounding,
    /// Binary map with one 1 at `floor(p)`: biased by half a heatmap pixel on average.
    Floor,
    /// Binary map with one 1 at `round(p)`: unbiased on average but quantised to whole pixels.
    Round,
}

fn default_sigma() -> f32 {
    10.0
}

impl Default for TargetEncoder {
    /// The recipe's variant 1: sigma 10 on 256x256 maps, integer centre.
    fn default() -> Self {
        TargetEncoder::Gaussian {
            sigma: default_sigma(),
            subpixel: false,
        }
    }
}

impl TargetEncoder {
    /// Rejects parameters [`encode`] cannot honour (it panics on them: call this when loading
    /// a configuration).
    pub fn validate(&self) -> Result<()> {
        if let Some(sigma) = self.sigma() {
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(Error::config(format!(
                    "{self} encoder: sigma must be a positive number of heatmap pixels, got {sigma}"
                )));
            }
        }
        Ok(())
    }

    /// Binary targets (one positive pixel) are trained with BCE, Gaussians with MSE.
    pub fn is_binary(&self) -> bool {
        self.sigma().is_none()
    }

    /// The Gaussian's standard deviation in heatmap pixels; `None` for the binary encoders.
    pub fn sigma(&self) -> Option<f32> {
        match self {
            TargetEncoder::Gaussian { sigma, .. } | TargetEncoder::GaussianRound { sigma } => {
                Some(*sigma)
            }
            _ => None,
        }
    }
}

impl fmt::Display for TargetEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetEncoder::Gaussian {
                sigma,
                subpixel: false,
            } => write!(f, "gaussian:{sigma}"),
            TargetEncoder::Gaussian {
                sigma,
                subpixel: true,
            } => write!(f, "gaussian-subpixel:{sigma}"),
            TargetEncoder::GaussianRound { sigma } => write!(f, "gaussian-round:{sigma}"),
            TargetEncoder::RandomizedRounding => write!(f, "randomized-rounding"),
            TargetEncoder::Floor => write!(f, "floor"),
            TargetEncoder::Round => write!(f, "round"),
        }
    }
}

impl FromStr for TargetEncoder {
    type Err = Error;

    /// `gaussian`, `gaussian:2.5`, `gaussian-subpixel[:sigma]`, `gaussian-round[:sigma]`,
    /// `randomized-rounding` (or `rr`),
    /// `floor`, `round`.
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s.trim(), None),
        };
        let sigma = |arg: Option<&str>| -> Result<f32> {
            match arg {
                None => Ok(default_sigma()),
                Some(a) => a.parse::<f32>().map_err(|_| {
                    Error::config(format!("encoder `{s}`: sigma `{a}` is not a number"))
                }),
            }
        };
        let no_arg = |enc: TargetEncoder| -> Result<TargetEncoder> {
            match arg {
                None => Ok(enc),
                Some(_) => Err(Error::config(format!("encoder `{s}` takes no parameter"))),
            }
        };
        let enc = match name.to_ascii_lowercase().as_str() {
            "gaussian" => TargetEncoder::Gaussian {
                sigma: sigma(arg)?,
                subpixel: false,
            },
            "gaussian-subpixel" | "subpixel-gaussian" => TargetEncoder::Gaussian {
                sigma: sigma(arg)?,
                subpixel: true,
            },
            "gaussian-round" => TargetEncoder::GaussianRound { sigma: sigma(arg)? },
            "randomized-rounding" | "randomized" | "rr" => {
                no_arg(TargetEncoder::RandomizedRounding)?
            }
            "floor" => no_arg(TargetEncoder::Floor)?,
            "round" => no_arg(TargetEncoder::Round)?,
            _ => {
                return Err(Error::config(format!(
                    "unknown encoder `{s}` (expected gaussian[:sigma], gaussian-subpixel[:sigma], \
                     gaussian-round[:sigma], randomized-rounding, floor or round)"
                )))
            }
        };
        enc.validate()?;
        Ok(enc)
    }
}

/// Where a point's map is drawn: `None` for an empty map (invisible or off the map).
/// Gaussian centres may be fractional (subpixel); binary encoders give integer pixels.
pub type Centre = Option<[f32; 2]>;

/// Does a point in heatmap pixels land on a `w x h` map? (`[0, w) x [0, h)`, finite.)
pub fn on_map(p: [f32; 2], w: usize, h: usize) -> bool {
    p[0].is_finite()
        && p[1].is_finite()
        && p[0] >= 0.0
        && p[1] >= 0.0
        && p[0] < w as f32
        && p[1] < h as f32
}

/// The centres of one sample's maps. Randomized rounding draws two numbers from `rng` for every
/// point, visible or not, so that the random stream does not depend on visibility.
pub fn centres(
    enc: &TargetEncoder,
    kp: &Keypoints,
    w: usize,
    h: usize,
    rng: &mut impl Rng,
) -> Vec<Centre> {
    kp.xy
        .iter()
        .zip(kp.visible.iter())
        .map(|(&p, &vis)| {
            let draw = match enc {
                TargetEncoder::RandomizedRounding => {
                    Some((rng.random::<f32>(), rng.random::<f32>()))
                }
                _ => None,
            };
            if !(vis && on_map(p, w, h)) {
                return None;
            }
            Some(match enc {
                TargetEncoder::Gaussian { subpixel: true, .. } => p,
                TargetEncoder::Gaussian {
                    subpixel: false, ..
                } => gaussian::integer_centre(p),
                TargetEncoder::RandomizedRounding => {
                    let (ux, uy) = draw.expect("drawn above");
                    rounding::randomized(p, ux, uy, w, h)
                }
                TargetEncoder::Floor => rounding::floor(p, w, h),
                TargetEncoder::Round | TargetEncoder::GaussianRound { .. } => {
                    rounding::round(p, w, h)
                }
            })
        })
        .collect()
}

/// Writes one `w x h` map (row-major) for one centre; the whole map is overwritten.
pub fn fill_map(enc: &TargetEncoder, centre: Centre, w: usize, h: usize, map: &mut [f32]) {
    debug_assert_eq!(map.len(), w * h);
    map.fill(0.0);
    let Some(c) = centre else { return };
    match enc.sigma() {
        Some(sigma) => gaussian::draw(map, w, h, c, sigma),
        None => map[c[1] as usize * w + c[0] as usize] = 1.0,
    }
}

/// `kp` is already in heatmap pixels. Writes L maps of w*h (row-major) into `out` (len L*w*h,
/// overwritten fully). Returns the mask: true where the point is visible AND lands on the map
/// (its map is non-empty).
///
/// Panics if `out` has the wrong length or the encoder fails [`TargetEncoder::validate`].
pub fn encode(
    enc: &TargetEncoder,
    kp: &Keypoints,
    w: usize,
    h: usize,
    rng: &mut impl Rng,
    out: &mut [f32],
) -> Vec<bool> {
    encode_centres(enc, kp, w, h, rng, out)
        .iter()
        .map(Option::is_some)
        .collect()
}

/// [`encode`], returning each map's centre instead of the mask (`None`: masked).
pub fn encode_centres(
    enc: &TargetEncoder,
    kp: &Keypoints,
    w: usize,
    h: usize,
    rng: &mut impl Rng,
    out: &mut [f32],
) -> Vec<Centre> {
    assert_eq!(out.len(), kp.len() * w * h, "encode: output buffer length");
    assert!(enc.validate().is_ok(), "encode: invalid encoder {enc:?}");
    let cs = centres(enc, kp, w, h, rng);
    if w * h > 0 {
        for (c, map) in cs.iter().zip(out.chunks_exact_mut(w * h)) {
            fill_map(enc, *c, w, h, map);
        }
    }
    cs
}

/// A whole batch at once: `out` has len `N*L*w*h` (N = `kps.len()`, all with the same L), the
/// returned mask is `N*L` row-major. Draws come from `rng` sample by sample, in order (the same
/// stream as calling [`encode`] per sample), then the maps are filled in parallel.
pub fn encode_batch(
    enc: &TargetEncoder,
    kps: &[Keypoints],
    w: usize,
    h: usize,
    rng: &mut impl Rng,
    out: &mut [f32],
) -> Vec<bool> {
    let l = kps.first().map_or(0, Keypoints::len);
    assert!(
        kps.iter().all(|k| k.len() == l),
        "encode_batch: samples with different point counts"
    );
    assert_eq!(
        out.len(),
        kps.len() * l * w * h,
        "encode_batch: output buffer length"
    );
    assert!(
        enc.validate().is_ok(),
        "encode_batch: invalid encoder {enc:?}"
    );
    let cs: Vec<Centre> = kps
        .iter()
        .flat_map(|kp| centres(enc, kp, w, h, rng))
        .collect();
    if w * h > 0 {
        // Chunks of several maps keep rayon's per-task overhead small next to a 64x64 map.
        let per_task = 16;
        out.par_chunks_mut(w * h * per_task)
            .zip(cs.par_chunks(per_task))
            .for_each(|(block, cb)| {
                for (c, map) in cb.iter().zip(block.chunks_exact_mut(w * h)) {
                    fill_map(enc, *c, w, h, map);
                }
            });
    }
    cs.iter().map(Option::is_some).collect()
}

/// [`encode_batch`] into tensors on `device`: targets `(N, L, h, w)` f32 and the mask `(N, L)`
/// f32 (1 = the point counts, 0 = masked), ready for a masked loss.
pub fn encode_batch_tensors(
    enc: &TargetEncoder,
    kps: &[Keypoints],
    w: usize,
    h: usize,
    rng: &mut impl Rng,
    device: &candle_core::Device,
) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
    enc.validate()?;
    let n = kps.len();
    let l = kps.first().map_or(0, Keypoints::len);
    if kps.iter().any(|k| k.len() != l) {
        return Err(Error::Msg(
            "encode_batch_tensors: samples with different point counts".into(),
        ));
    }
    let mut out = vec![0f32; n * l * w * h];
    let mask = encode_batch(enc, kps, w, h, rng, &mut out);
    let maps = candle_core::Tensor::from_vec(out, (n, l, h, w), device)?;
    let mask: Vec<f32> = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
    let mask = candle_core::Tensor::from_vec(mask, (n, l), device)?;
    Ok((maps, mask))
}

/// How heatmaps become points.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Decoder {
    /// Integer position of the maximum (first one on ties).
    Argmax,
    /// The paper's decoder: softmax over the `k` largest raw values, weighted mean of their
    /// integer positions. Meant for logits: on probabilities in [0, 1] the softmax is nearly
    /// flat (see the rounding experiment).
    TopK {
        #[serde(default = "default_k")]
        k: usize,
    },
    /// Softmax of `map / temperature` over the whole map, expected position. Temperature 1 suits
    /// logits; Gaussian maps in [0, 1] need one matched to sigma (0.05 for sigma 3 is within
    /// 0.002 px; too warm and the zeros outside the window pull towards the map centre).
    SoftArgmax {
        #[serde(default = "default_temperature")]
        temperature: f32,
    },
    /// DARK (Zhang et al. 2020): argmax, then a Newton step on the log of the map smoothed with a
    /// Gaussian of `sigma` (the target's sigma). Assumes non-negative Gaussian-like maps.
    /// Without a sigma, the [`Codec`] gives it the Gaussian encoder's.
    Dark {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sigma: Option<f32>,
    },
    /// Argmax plus a quarter pixel towards the larger neighbour on each axis (SimpleBaselines).
    QuarterOffset,
}

fn default_k() -> usize {
    9
}

fn default_temperature() -> f32 {
    1.0
}

impl Default for Decoder {
    /// Argmax: validation's decoder and the one every run uses unless its config names another.
    fn default() -> Self {
        Decoder::Argmax
    }
}

impl Decoder {
    pub fn validate(&self) -> Result<()> {
        match self {
            Decoder::TopK { k } if *k == 0 => Err(Error::config("top-k decoder: k must be >= 1")),
            Decoder::SoftArgmax { temperature }
                if !(temperature.is_finite() && *temperature > 0.0) =>
            {
                Err(Error::config(format!(
                    "soft-argmax decoder: temperature must be positive, got {temperature}"
                )))
            }
            Decoder::Dark { sigma: Some(sigma) } if !(sigma.is_finite() && *sigma > 0.0) => Err(
                Error::config(format!("dark decoder: sigma must be positive, got {sigma}")),
            ),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decoder::Argmax => write!(f, "argmax"),
            Decoder::TopK { k } => write!(f, "topk:{k}"),
            Decoder::SoftArgmax { temperature } => write!(f, "softargmax:{temperature}"),
            Decoder::Dark { sigma: Some(sigma) } => write!(f, "dark:{sigma}"),
            Decoder::Dark { sigma: None } => write!(f, "dark"),
            Decoder::QuarterOffset => write!(f, "quarter"),
        }
    }
}

impl FromStr for Decoder {
    type Err = Error;

    /// `argmax`, `topk` / `topk:9`, `softargmax` / `softargmax:0.05`, `dark` / `dark:2`,
    /// `quarter` (kebab-case serde names such as `top-k` are accepted too).
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s.trim(), None),
        };
        let num = |a: &str| -> Result<f32> {
            a.parse::<f32>()
                .map_err(|_| Error::config(format!("decoder `{s}`: `{a}` is not a number")))
        };
        let no_arg = |d: Decoder| -> Result<Decoder> {
            match arg {
                None => Ok(d),
                Some(_) => Err(Error::config(format!("decoder `{s}` takes no parameter"))),
            }
        };
        let dec = match name.to_ascii_lowercase().as_str() {
            "argmax" => no_arg(Decoder::Argmax)?,
            "topk" | "top-k" => Decoder::TopK {
                k: match arg {
                    None => default_k(),
                    Some(a) => a.parse::<usize>().map_err(|_| {
                        Error::config(format!("decoder `{s}`: k `{a}` is not a whole number"))
                    })?,
                },
            },
            "softargmax" | "soft-argmax" => Decoder::SoftArgmax {
                temperature: arg
                    .map(num)
                    .transpose()?
                    .unwrap_or_else(default_temperature),
            },
            "dark" => Decoder::Dark {
                sigma: arg.map(num).transpose()?,
            },
            "quarter" | "quarter-offset" => no_arg(Decoder::QuarterOffset)?,
            _ => {
                return Err(Error::config(format!(
                    "unknown decoder `{s}` (expected argmax, topk[:k], softargmax[:temperature], \
                     dark[:sigma] or quarter)"
                )))
            }
        };
        dec.validate()?;
        Ok(dec)
    }
}

/// Heatmap pixels -> pixels of a frame `scale` times larger per axis (input pixels:
/// scale = input/map; original-image pixels: scale = original/map). No half-pixel shift: pixel
/// `i` is coordinate `i` in every frame (crate convention).
pub fn to_frame(xy: [f32; 2], scale_x: f32, scale_y: f32) -> [f32; 2] {
    [xy[0] * scale_x, xy[1] * scale_y]
}
