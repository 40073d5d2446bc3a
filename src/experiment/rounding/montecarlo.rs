//! The Monte-Carlo part: one point encoded many times; the mean argmax of each encoder against
//! the float point.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::codec::{self, decode_one, encode, Decoder, TargetEncoder};
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
