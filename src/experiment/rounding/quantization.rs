//! The quantization part: every landmark of a dataset encoded and decoded by each
//! encoder/decoder pair at several heatmap sizes; the error a perfect model would still make.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::codec::{self, rounding, Codec, Decoder, TargetEncoder};
use crate::metrics::{MetricAccumulator, MetricConfig};
use crate::{Error, Keypoints, Result};

/// One encoder/decoder pair of the quantization part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pair {
    GaussianArgmax,
    GaussianDark,
    SubpixelGaussianDark,
    RoundArgmax,
    FloorArgmax,
    /// One randomized-rounding draw decoded by argmax, averaged over draws.
    RrArgmax,
    /// Top-k softmax on the expected randomized-rounding map used as probabilities.
    RrTopkProbabilities,
    /// Top-k softmax on the log-odds of the expected map (a calibrated BCE model's logits).
    RrTopkLogOdds,
}

impl Pair {
    pub const ALL: [Pair; 8] = [
        Pair::GaussianArgmax,
        Pair::GaussianDark,
        Pair::SubpixelGaussianDark,
        Pair::RoundArgmax,
        Pair::FloorArgmax,
        Pair::RrArgmax,
        Pair::RrTopkProbabilities,
        Pair::RrTopkLogOdds,
    ];

    pub fn label(self, k: usize) -> String {
        match self {
            Pair::GaussianArgmax => "Gaussian + argmax".into(),
            Pair::GaussianDark => "Gaussian + DARK".into(),
            Pair::SubpixelGaussianDark => "sub-pixel Gaussian + DARK".into(),
            Pair::RoundArgmax => "round + argmax".into(),
            Pair::FloorArgmax => "floor + argmax".into(),
            Pair::RrArgmax => "rand. rounding + argmax (per draw)".into(),
            Pair::RrTopkProbabilities => format!("rand. rounding + top-{k} on probabilities"),
            Pair::RrTopkLogOdds => format!("rand. rounding + top-{k} on log-odds"),
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Pair::GaussianArgmax => {
                "Gaussian target centred at the truncated pixel (write-up variant 1), argmax"
            }
            Pair::GaussianDark => {
                "same integer-centred Gaussian, DARK refinement: recovers the truncated centre, \
                 not the float point"
            }
            Pair::SubpixelGaussianDark => {
                "Gaussian centred at the float point (not quantised), DARK refinement"
            }
            Pair::RoundArgmax => "one-hot at the nearest pixel, argmax",
            Pair::FloorArgmax => "one-hot at floor(p), argmax: half a pixel of bias",
            Pair::RrArgmax => {
                "one-hot randomized-rounding draw, argmax; error averaged over the draws \
                 (what one target says, not what a model learns from many)"
            }
            Pair::RrTopkProbabilities => {
                "ideal model output = the expected randomized-rounding map (bilinear weights of \
                 the 4 pixels around p) taken as probabilities, then top-k softmax over those \
                 raw values: softmax of values in [0, 1] is nearly flat, and the zeros among the \
                 k (ties taken in scan order: top-left pixels) pull the result away"
            }
            Pair::RrTopkLogOdds => {
                "the same expected map as the log-odds a perfectly calibrated BCE-trained model \
                 emits (logit of p clamped to [1e-6, 1 - 1e-6]), then top-k softmax"
            }
        }
    }
}

/// Settings of the quantization part.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuantizationConfig {
    /// Square input size the images are squished to.
    pub input: usize,
    /// Square heatmap sizes.
    pub sizes: Vec<usize>,
    /// Randomized-rounding draws per point and size.
    pub draws: usize,
    /// Gaussian sigma in heatmap pixels (the same at every size; DARK smooths with it too).
    pub sigma: f32,
    /// k of the top-k decoder.
    pub k: usize,
    pub seed: u64,
    pub metric: MetricConfig,
}

impl Default for QuantizationConfig {
    fn default() -> Self {
        QuantizationConfig {
            input: 256,
            sizes: vec![128, 64, 32, 16, 8],
            draws: 10,
            sigma: 2.0,
            k: 9,
            seed: 0,
            metric: MetricConfig::default(),
        }
    }
}

impl QuantizationConfig {
    pub fn validate(&self) -> Result<()> {
        if self.input == 0 || self.sizes.is_empty() || self.sizes.contains(&0) {
            return Err(Error::config(
                "quantization: input and heatmap sizes must be positive",
            ));
        }
        if self.draws == 0 {
            return Err(Error::config("quantization: --draws must be at least 1"));
        }
        TargetEncoder::Gaussian {
            sigma: self.sigma,
            subpixel: false,
        }
        .validate()?;
        Decoder::TopK { k: self.k }.validate()
    }
}

/// Errors of one pair at one heatmap size, against the float ground truth.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuantRow {
    pub pair: Pair,
    pub label: String,
    pub size: usize,
    /// NMAE (coordinates / input size).
    pub nmae: f32,
    /// NME (fraction) with the configured normaliser.
    pub nme: f32,
    /// Mean point-to-point error in input pixels.
    pub mean_error_px: f32,
    /// Points counted and points masked (off the map).
    pub points: usize,
    pub masked: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct QuantizationReport {
    pub config: QuantizationConfig,
    pub images: usize,
    pub points_per_image: usize,
    pub pairs: Vec<(Pair, String, String)>,
    pub rows: Vec<QuantRow>,
}

/// Per-image state: one accumulator per (size, pair), pixel-error sums and mask counts.
struct ImageResult {
    acc: Vec<MetricAccumulator>,
    px_sum: Vec<f64>,
    masked: Vec<usize>,
}

/// Runs the quantization part on ground-truth points already in input pixels (`input x input`
/// frame). Each image gets its own random stream (seed, stream = image index), so results do not
/// depend on thread scheduling. `progress` is called once per finished image.
pub fn quantization(
    samples: &[Keypoints],
    cfg: &QuantizationConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<QuantizationReport> {
    cfg.validate()?;
    let l = samples.first().map_or(0, Keypoints::len);
    if l == 0 || samples.iter().any(|s| s.len() != l) {
        return Err(Error::config(
            "quantization: every image needs the same, non-zero number of points",
        ));
    }
    let n_cells = cfg.sizes.len() * Pair::ALL.len();
    let results: Vec<ImageResult> = samples
        .par_iter()
        .enumerate()
        .map(|(idx, gt_in)| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(idx as u64);
            let mut r = ImageResult {
                acc: vec![MetricAccumulator::new(cfg.metric.clone(), l); n_cells],
                px_sum: vec![0.0; n_cells],
                masked: vec![0; n_cells],
            };
            for (si, &m) in cfg.sizes.iter().enumerate() {
                let mut maps = vec![0f32; l * m * m];
                for (pi, &pair) in Pair::ALL.iter().enumerate() {
                    let cell = si * Pair::ALL.len() + pi;
                    let reps = if pair == Pair::RrArgmax { cfg.draws } else { 1 };
                    for _ in 0..reps {
                        let (mask, pred_in) =
                            encode_decode(pair, cfg, gt_in, m, &mut rng, &mut maps)?;
                        let mut gt = gt_in.clone();
                        gt.visible = mask.clone();
                        for ((p, g), &v) in pred_in.xy.iter().zip(&gt.xy).zip(&mask) {
                            if v {
                                r.px_sum[cell] += (p[0] - g[0]).hypot(p[1] - g[1]) as f64;
                            }
                        }
                        r.masked[cell] += mask.iter().filter(|&&v| !v).count();
                        let f = cfg.input as f32;
                        r.acc[cell].add(&[pred_in], &[gt], f, f);
                    }
                }
            }
            progress();
            Ok(r)
        })
        .collect::<Result<_>>()?;

    let mut acc = vec![MetricAccumulator::new(cfg.metric.clone(), l); n_cells];
    let mut px_sum = vec![0f64; n_cells];
    let mut masked = vec![0usize; n_cells];
    for r in &results {
        for c in 0..n_cells {
            acc[c].merge(&r.acc[c]);
            px_sum[c] += r.px_sum[c];
            masked[c] += r.masked[c];
        }
    }
    let mut rows = Vec::new();
    for (si, &m) in cfg.sizes.iter().enumerate() {
        for (pi, &pair) in Pair::ALL.iter().enumerate() {
            let c = si * Pair::ALL.len() + pi;
            let rep = acc[c].finish();
            rows.push(QuantRow {
                pair,
                label: pair.label(cfg.k),
                size: m,
                nmae: rep.nmae,
                nme: rep.nme,
                mean_error_px: (px_sum[c] / rep.points_counted.max(1) as f64) as f32,
                points: rep.points_counted,
                masked: masked[c],
            });
        }
    }
    Ok(QuantizationReport {
        config: cfg.clone(),
        images: samples.len(),
        points_per_image: l,
        pairs: Pair::ALL
            .iter()
            .map(|&p| (p, p.label(cfg.k), p.description().to_string()))
            .collect(),
        rows,
    })
}

/// Encodes one image's points (input pixels) on an `m x m` map with a pair's encoder and
/// decodes them with its decoder: returns the mask and the decoded points in input pixels.
fn encode_decode(
    pair: Pair,
    cfg: &QuantizationConfig,
    gt_in: &Keypoints,
    m: usize,
    rng: &mut ChaCha8Rng,
    maps: &mut [f32],
) -> Result<(Vec<bool>, Keypoints)> {
    let gauss = |subpixel| TargetEncoder::Gaussian {
        sigma: cfg.sigma,
        subpixel,
    };
    let (enc, dec) = match pair {
        Pair::GaussianArgmax => (gauss(false), Decoder::Argmax),
        Pair::GaussianDark => (
            gauss(false),
            Decoder::Dark {
                sigma: Some(cfg.sigma),
            },
        ),
        Pair::SubpixelGaussianDark => (
            gauss(true),
            Decoder::Dark {
                sigma: Some(cfg.sigma),
            },
        ),
        Pair::RoundArgmax => (TargetEncoder::Round, Decoder::Argmax),
        Pair::FloorArgmax => (TargetEncoder::Floor, Decoder::Argmax),
        Pair::RrArgmax => (TargetEncoder::RandomizedRounding, Decoder::Argmax),
        // The ideal model's output: the expected target, no draw involved.
        Pair::RrTopkProbabilities | Pair::RrTopkLogOdds => (
            TargetEncoder::RandomizedRounding,
            Decoder::TopK { k: cfg.k },
        ),
    };
    let codec = Codec::new(cfg.input, m, enc, dec)?;
    let decode = |maps: &[f32]| -> Result<Keypoints> {
        let t = Tensor::from_slice(maps, (1, gt_in.len(), m, m), &Device::Cpu)?;
        Ok(codec.decode(&t)?.points.remove(0))
    };
    if matches!(pair, Pair::RrTopkProbabilities | Pair::RrTopkLogOdds) {
        let gt_map = codec.to_map_points(gt_in);
        let mut mask = Vec::with_capacity(gt_map.len());
        for ((&p, &vis), map) in gt_map
            .xy
            .iter()
            .zip(&gt_map.visible)
            .zip(maps.chunks_exact_mut(m * m))
        {
            let on = vis && codec::on_map(p, m, m);
            mask.push(on);
            if !on {
                map.fill(0.0);
                continue;
            }
            rounding::expected_map(p, m, m, map);
            if pair == Pair::RrTopkLogOdds {
                for v in map.iter_mut() {
                    let q = v.clamp(1e-6, 1.0 - 1e-6);
                    *v = (q / (1.0 - q)).ln();
                }
            }
        }
        return Ok((mask, decode(maps)?));
    }
    let mask = codec.encode(gt_in, rng, maps).mask;
    Ok((mask, decode(maps)?))
}
