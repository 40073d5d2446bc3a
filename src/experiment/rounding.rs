//! The randomized-rounding experiment (Yu and Tao, TPAMI 2021; the write-up's check).
//!
//! Two parts:
//! - [`montecarlo`]: one point encoded many times. Randomized rounding's mean argmax converges
//!   to the float point (error of the mean ~ 1/sqrt(N)); floor and round keep their bias.
//! - [`quantization`]: every landmark of a dataset, encoded and decoded with each
//!   encoder/decoder pair at several heatmap sizes, errors against the float ground truth: the
//!   error a perfect model would still make because of the target's quantization.
//!
//! The write-up's point: (163, 1342) in a "2500x1500" image on a 256 (w) x 384 (h) map, exact
//! (16.6912, 343.552). Only one reading of the axes gives those numbers:
//! `163 * 256 / 2500 = 16.6912` and `1342 * 384 / 1500 = 343.552`, so the image is 2500 wide and
//! 1500 high and the map 256 wide and 384 high (a non-uniform scale). The other reading gives
//! (27.8, 206.1) or (41.7, 137.4), which match nothing in the write-up.

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::codec::{self, decode_one, encode, rounding, Codec, Decoder, TargetEncoder};
use crate::metrics::{MetricAccumulator, MetricConfig};
use crate::{Error, Keypoints, Result};

/// The write-up's setting.
pub const POINT: [f32; 2] = [163.0, 1342.0];
pub const IMAGE_W: f32 = 2500.0;
pub const IMAGE_H: f32 = 1500.0;
pub const MAP_W: usize = 256;
pub const MAP_H: usize = 384;
/// The write-up's mean argmax over 2000 draws.
pub const WRITEUP_MEAN: [f32; 2] = [16.6730, 343.5515];
/// The exact point on the map, as the write-up states it.
pub const WRITEUP_EXACT: [f32; 2] = [16.6912, 343.552];

/// Settings of the Monte-Carlo part.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonteCarloConfig {
    /// Draws for the mean (the write-up: 2000).
    pub draws: usize,
    pub seed: u64,
    /// Draw counts for the spread of the mean.
    pub spread_draws: Vec<usize>,
    /// Independent trials per draw count.
    pub trials: usize,
}

impl Default for MonteCarloConfig {
    fn default() -> Self {
        MonteCarloConfig {
            draws: 2000,
            seed: 0,
            spread_draws: vec![10, 100, 1000, 10000],
            trials: 200,
        }
    }
}

/// Mean decoded position of one encoder over the draws.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EncoderMean {
    pub encoder: String,
    pub draws: usize,
    /// Mean argmax position, heatmap pixels.
    pub mean: [f64; 2],
    /// `mean - exact`.
    pub error: [f64; 2],
    /// Standard error of the mean per axis, `sqrt(e (1 - e) / N)` for randomized rounding
    /// (Bernoulli on the fractional part `e`), 0 for the deterministic encoders.
    pub standard_error: [f64; 2],
}

/// Spread of randomized rounding's mean for one draw count.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Spread {
    pub draws: usize,
    pub trials: usize,
    /// Root mean square over trials of `mean - exact`, per axis.
    pub rms_error: [f64; 2],
    /// The theoretical standard error `sqrt(e (1 - e) / N)`, per axis.
    pub predicted: [f64; 2],
    /// `rms_error * sqrt(N)`: constant when the error falls like 1/sqrt(N).
    pub rms_times_sqrt_n: [f64; 2],
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MonteCarloReport {
    pub point: [f32; 2],
    pub image_w: f32,
    pub image_h: f32,
    pub map_w: usize,
    pub map_h: usize,
    /// Our exact point on the map (f64 arithmetic).
    pub exact: [f64; 2],
    pub writeup_exact: [f32; 2],
    pub writeup_mean: [f32; 2],
    /// The write-up's mean in standard errors of a 2000-draw mean from the exact point.
    pub writeup_z: [f64; 2],
    pub seed: u64,
    pub means: Vec<EncoderMean>,
    pub spread: Vec<Spread>,
}

fn exact_point() -> [f64; 2] {
    [
        POINT[0] as f64 * MAP_W as f64 / IMAGE_W as f64,
        POINT[1] as f64 * MAP_H as f64 / IMAGE_H as f64,
    ]
}

fn bernoulli_se(exact: [f64; 2], n: usize) -> [f64; 2] {
    exact.map(|v| {
        let e = v - v.floor();
        (e * (1.0 - e) / n as f64).sqrt()
    })
}

/// Encodes the point `draws` times per encoder (full 256x384 maps, decoded by argmax: the
/// end-to-end path), then measures the spread of randomized rounding's mean over repeated trials.
/// The spread uses the encoder's chosen pixel directly ([`codec::centres`]): the argmax of a
/// one-hot map is that pixel (tested), and 2 million full maps would only cost time.
pub fn montecarlo(cfg: &MonteCarloConfig) -> Result<MonteCarloReport> {
    if cfg.draws == 0 || cfg.trials == 0 || cfg.spread_draws.contains(&0) {
        return Err(Error::config(
            "montecarlo: draws and trials must be at least 1",
        ));
    }
    let exact = exact_point();
    let kp = Keypoints::new(vec![[
        POINT[0] * MAP_W as f32 / IMAGE_W,
        POINT[1] * MAP_H as f32 / IMAGE_H,
    ]]);
    let mut map = vec![0f32; MAP_W * MAP_H];
    let mut means = Vec::new();
    for (i, enc) in [
        TargetEncoder::RandomizedRounding,
        TargetEncoder::Floor,
        TargetEncoder::Round,
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(i as u64);
        let mut sum = [0f64; 2];
        for _ in 0..cfg.draws {
            let mask = encode(&enc, &kp, MAP_W, MAP_H, &mut rng, &mut map);
            debug_assert!(mask[0]);
            let (xy, _) = decode_one(&map, MAP_W, MAP_H, &Decoder::Argmax);
            sum[0] += xy[0] as f64;
            sum[1] += xy[1] as f64;
        }
        let mean = sum.map(|s| s / cfg.draws as f64);
        means.push(EncoderMean {
            encoder: enc.to_string(),
            draws: cfg.draws,
            mean,
            error: [mean[0] - exact[0], mean[1] - exact[1]],
            standard_error: if enc == TargetEncoder::RandomizedRounding {
                bernoulli_se(exact, cfg.draws)
            } else {
                [0.0, 0.0]
            },
        });
    }

    let spread = cfg
        .spread_draws
        .iter()
        .enumerate()
        .map(|(si, &n)| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(100 + si as u64);
            let mut sq = [0f64; 2];
            for _ in 0..cfg.trials {
                let mut sum = [0f64; 2];
                for _ in 0..n {
                    let c = codec::centres(
                        &TargetEncoder::RandomizedRounding,
                        &kp,
                        MAP_W,
                        MAP_H,
                        &mut rng,
                    )[0]
                    .expect("the point is on the map");
                    sum[0] += c[0] as f64;
                    sum[1] += c[1] as f64;
                }
                for a in 0..2 {
                    let err = sum[a] / n as f64 - exact[a];
                    sq[a] += err * err;
                }
            }
            let rms = sq.map(|s| (s / cfg.trials as f64).sqrt());
            Spread {
                draws: n,
                trials: cfg.trials,
                rms_error: rms,
                predicted: bernoulli_se(exact, n),
                rms_times_sqrt_n: rms.map(|r| r * (n as f64).sqrt()),
            }
        })
        .collect();

    let se2000 = bernoulli_se(exact, 2000);
    Ok(MonteCarloReport {
        point: POINT,
        image_w: IMAGE_W,
        image_h: IMAGE_H,
        map_w: MAP_W,
        map_h: MAP_H,
        exact,
        writeup_exact: WRITEUP_EXACT,
        writeup_mean: WRITEUP_MEAN,
        writeup_z: [
            (WRITEUP_MEAN[0] as f64 - exact[0]) / se2000[0],
            (WRITEUP_MEAN[1] as f64 - exact[1]) / se2000[1],
        ],
        seed: cfg.seed,
        means,
        spread,
    })
}

/// Markdown rendering of [`MonteCarloReport`].
pub fn montecarlo_markdown(r: &MonteCarloReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Point ({}, {}) in a {}x{} (w x h) image on a {}x{} (w x h) map: exact ({:.4}, {:.4}) \
         (write-up: ({}, {})). Seed {}.\n\n",
        r.point[0],
        r.point[1],
        r.image_w,
        r.image_h,
        r.map_w,
        r.map_h,
        r.exact[0],
        r.exact[1],
        r.writeup_exact[0],
        r.writeup_exact[1],
        r.seed
    ));
    s.push_str(
        "| encoder | draws | mean x | mean y | error x | error y | std. error x | std. error y |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    s.push_str(&format!(
        "| write-up (randomized rounding) | 2000 | {:.4} | {:.4} | {:+.4} | {:+.4} | z = {:+.2} | z = {:+.2} |\n",
        r.writeup_mean[0],
        r.writeup_mean[1],
        r.writeup_mean[0] as f64 - r.exact[0],
        r.writeup_mean[1] as f64 - r.exact[1],
        r.writeup_z[0],
        r.writeup_z[1]
    ));
    for m in &r.means {
        s.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:+.4} | {:+.4} | {:.4} | {:.4} |\n",
            m.encoder,
            m.draws,
            m.mean[0],
            m.mean[1],
            m.error[0],
            m.error[1],
            m.standard_error[0],
            m.standard_error[1]
        ));
    }
    s.push_str(
        "\nSpread of randomized rounding's mean (RMS over trials of mean - exact; predicted = \
         sqrt(e(1-e)/N)):\n\n",
    );
    s.push_str("| draws N | trials | RMS x | predicted x | RMS y | predicted y | RMS x * sqrt(N) | RMS y * sqrt(N) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for p in &r.spread {
        s.push_str(&format!(
            "| {} | {} | {:.5} | {:.5} | {:.5} | {:.5} | {:.4} | {:.4} |\n",
            p.draws,
            p.trials,
            p.rms_error[0],
            p.predicted[0],
            p.rms_error[1],
            p.predicted[1],
            p.rms_times_sqrt_n[0],
            p.rms_times_sqrt_n[1]
        ));
    }
    s
}

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

/// Markdown tables of [`QuantizationReport`]: NMAE and NME per pair and heatmap size.
pub fn quantization_markdown(r: &QuantizationReport) -> String {
    let cfg = &r.config;
    let mut s = format!(
        "{} images x {} points, squished to {}x{} input; Gaussian sigma {} heatmap px; \
         {} randomized-rounding draws; errors against the float ground truth.\n\n",
        r.images, r.points_per_image, cfg.input, cfg.input, cfg.sigma, cfg.draws
    );
    let header = |s: &mut String, what: &str| {
        s.push_str(&format!("| {what} |"));
        for m in &cfg.sizes {
            s.push_str(&format!(" {m}x{m} |"));
        }
        s.push_str("\n|---|");
        for _ in &cfg.sizes {
            s.push_str("---|");
        }
        s.push('\n');
    };
    let cell = |pair: Pair, m: usize| r.rows.iter().find(|x| x.pair == pair && x.size == m);
    for (title, f) in [
        (
            "NMAE (x 1e-3)",
            (|q: &QuantRow| format!("{:.3}", q.nmae * 1e3)) as fn(&QuantRow) -> String,
        ),
        ("NME (%)", |q: &QuantRow| format!("{:.3}", q.nme * 100.0)),
        ("mean error (input px)", |q: &QuantRow| {
            format!("{:.3}", q.mean_error_px)
        }),
    ] {
        header(&mut s, title);
        for &pair in &Pair::ALL {
            s.push_str(&format!("| {} |", pair.label(cfg.k)));
            for &m in &cfg.sizes {
                match cell(pair, m) {
                    Some(q) => s.push_str(&format!(" {} |", f(q))),
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let masked: usize = r
        .rows
        .iter()
        .filter(|q| q.pair == Pair::GaussianArgmax)
        .map(|q| q.masked)
        .sum();
    s.push_str(&format!(
        "NME normaliser: {:?}. Points off the map (masked, not counted), summed over sizes: {masked}.\n\n",
        cfg.metric.norm.resolve(r.points_per_image)
    ));
    s.push_str("Pairs:\n");
    for &pair in &Pair::ALL {
        s.push_str(&format!(
            "- {}: {}\n",
            pair.label(cfg.k),
            pair.description()
        ));
    }
    s
}
