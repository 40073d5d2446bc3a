//! Heatmaps (N, C, H, W) back to points in heatmap pixels, with a confidence per point.
//!
//! Argmax decoding on another device (a GPU) reduces the maps there and reads back two numbers
//! per map. The other decoders copy the maps to the CPU once (Candle has no top-k, and on CUDA
//! sorting a flattened 256x256 map overflows the sort kernel's shared memory) and decode them
//! there in parallel. Nothing here
//! needs gradients (note: `candle_nn::ops::softmax_last_dim` has no backward, so it could not be
//! used where gradients matter anyway; here the softmax is plain Rust on the CPU).
//!
//! Confidence, for every decoder: the largest raw value of the map (a probability for sigmoid
//! outputs, a logit for raw BCE outputs, the peak height for Gaussian maps).

use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

use super::Decoder;
use crate::{Error, Keypoints, Result};

/// Decoded points of a batch: row-major `n x points`, heatmap pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub xy: Vec<[f32; 2]>,
    pub confidence: Vec<f32>,
    pub n: usize,
    pub points: usize,
}

impl Decoded {
    /// The points of sample `i`.
    pub fn sample(&self, i: usize) -> &[[f32; 2]] {
        &self.xy[i * self.points..(i + 1) * self.points]
    }

    /// One [`Keypoints`] per sample, scaled to a frame `scale` times larger per axis (see
    /// [`super::to_frame`]); all points visible.
    pub fn to_keypoints(&self, scale_x: f32, scale_y: f32) -> Vec<Keypoints> {
        (0..self.n)
            .map(|i| {
                Keypoints::new(
                    self.sample(i)
                        .iter()
                        .map(|&p| super::to_frame(p, scale_x, scale_y))
                        .collect(),
                )
            })
            .collect()
    }
}

/// Decodes a batch of heatmaps `(N, C, H, W)` of any float dtype on any device.
pub fn decode(maps: &Tensor, dec: &Decoder) -> Result<Decoded> {
    let (n, c, h, w) = maps.dims4()?;
    // A contiguous f32 CPU tensor is read in place: copying 100 MB of maps costs as much as
    // decoding them.
    if maps.device().is_cpu() && maps.dtype() == DType::F32 {
        let (storage, layout) = maps.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
            (&*storage, layout.contiguous_offsets())
        {
            let data = cpu.as_slice::<f32>()?;
            return decode_maps(&data[start..end], n, c, h, w, dec);
        }
    }
    if *dec == Decoder::Argmax && (!maps.device().is_cpu() || crate::ops::portable::forced()) {
        return argmax_on_device(maps);
    }
    let data: Vec<f32> = maps
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    decode_maps(&data, n, c, h, w, dec)
}

/// Argmax decoding where the maps are (a GPU): the reductions run there and only two numbers
/// per map come back, instead of the maps. Ties go to the first maximum, as on the CPU.
fn argmax_on_device(maps: &Tensor) -> Result<Decoded> {
    let (n, c, h, w) = maps.dims4()?;
    if h == 0 || w == 0 {
        return Err(Error::Msg(format!("decode: empty {h}x{w} maps")));
    }
    let flat = maps.flatten_from(2)?;
    let idx: Vec<u32> = flat.argmax(D::Minus1)?.flatten_all()?.to_vec1()?;
    let confidence: Vec<f32> = flat
        .max(D::Minus1)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let xy = idx
        .iter()
        .map(|&i| [(i as usize % w) as f32, (i as usize / w) as f32])
        .collect();
    Ok(Decoded {
        xy,
        confidence,
        n,
        points: c,
    })
}

/// The CPU side of [`decode`]: `data` holds `n * c` row-major `h x w` maps.
pub fn decode_maps(
    data: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    dec: &Decoder,
) -> Result<Decoded> {
    dec.validate()?;
    if *dec == (Decoder::Dark { sigma: None }) {
        return Err(Error::Msg(
            "decode: the dark decoder needs its sigma (a codec gives it the target's)".into(),
        ));
    }
    if data.len() != n * c * h * w {
        return Err(Error::Msg(format!(
            "decode: {} values for {n}x{c}x{h}x{w} maps",
            data.len()
        )));
    }
    if h == 0 || w == 0 {
        return Err(Error::Msg(format!("decode: empty {h}x{w} maps")));
    }
    let res: Vec<([f32; 2], f32)> = data
        .par_chunks(w * h)
        .map(|m| decode_one(m, w, h, dec))
        .collect();
    let (xy, confidence) = res.into_iter().unzip();
    Ok(Decoded {
        xy,
        confidence,
        n,
        points: c,
    })
}

/// Decodes one row-major `w x h` map: position in heatmap pixels and confidence.
pub fn decode_one(map: &[f32], w: usize, h: usize, dec: &Decoder) -> ([f32; 2], f32) {
    let (idx, max) = argmax(map);
    let (ax, ay) = (idx % w, idx / w);
    let pos = match dec {
        Decoder::Argmax => [ax as f32, ay as f32],
        Decoder::TopK { k } => top_k_mean(map, w, *k),
        Decoder::SoftArgmax { temperature } => soft_argmax(map, w, max, *temperature),
        // A codec always gives DARK its sigma; a bare call without one smooths with the
        // default Gaussian's.
        Decoder::Dark { sigma } => dark(
            map,
            w,
            h,
            ax,
            ay,
            sigma.unwrap_or_else(super::default_sigma),
        ),
        Decoder::QuarterOffset => quarter_offset(map, w, h, ax, ay),
    };
    (pos, max)
}

/// Flat index and value of the first maximum; NaNs are skipped (an all-NaN map gives index 0).
pub fn argmax(map: &[f32]) -> (usize, f32) {
    // Two simple passes (max, then its first position) vectorise; one pass with a running index
    // does not.
    let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    match map.iter().position(|&v| v == max) {
        Some(i) => (i, max),
        None => (0, map.first().copied().unwrap_or(f32::NAN)),
    }
}

/// The `k` largest values with their indices, largest first (earlier index first on ties).
pub fn top_k(map: &[f32], k: usize) -> Vec<(f32, usize)> {
    let k = k.min(map.len());
    let mut top: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, &v) in map.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if top.len() == k && v <= top[k - 1].0 {
            continue;
        }
        // Insert after every entry >= v, so equal values keep their scan order.
        let pos = top.partition_point(|&(t, _)| t >= v);
        top.insert(pos, (v, i));
        top.truncate(k);
    }
    top
}

/// The paper's decoder: softmax over the k largest raw values, weighted mean of their positions.
fn top_k_mean(map: &[f32], w: usize, k: usize) -> [f32; 2] {
    let top = top_k(map, k);
    let Some(&(m, _)) = top.first() else {
        return [0.0, 0.0];
    };
    let (mut s, mut sx, mut sy) = (0f64, 0f64, 0f64);
    for &(v, i) in &top {
        let e = ((v - m) as f64).exp();
        s += e;
        sx += e * (i % w) as f64;
        sy += e * (i / w) as f64;
    }
    [(sx / s) as f32, (sy / s) as f32]
}

/// Expected position under softmax(map / temperature) over the whole map.
fn soft_argmax(map: &[f32], w: usize, max: f32, temperature: f32) -> [f32; 2] {
    let inv = 1.0 / temperature as f64;
    let (mut s, mut sx, mut sy) = (0f64, 0f64, 0f64);
    for (row, vals) in map.chunks_exact(w).enumerate() {
        let mut rs = 0f64;
        for (col, &v) in vals.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            let e = ((v - max) as f64 * inv).exp();
            rs += e;
            sx += e * col as f64;
        }
        s += rs;
        sy += rs * row as f64;
    }
    if s > 0.0 {
        [(sx / s) as f32, (sy / s) as f32]
    } else {
        [0.0, 0.0]
    }
}

/// Argmax plus 0.25 px towards the larger neighbour, on each axis where both neighbours exist.
fn quarter_offset(map: &[f32], w: usize, h: usize, x: usize, y: usize) -> [f32; 2] {
    let at = |x: usize, y: usize| map[y * w + x];
    let mut p = [x as f32, y as f32];
    if x > 0 && x + 1 < w {
        p[0] += 0.25 * sign(at(x + 1, y) - at(x - 1, y));
    }
    if y > 0 && y + 1 < h {
        p[1] += 0.25 * sign(at(x, y + 1) - at(x, y - 1));
    }
    p
}

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// DARK (Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose
/// Estimation", CVPR 2020): smooth the map with a Gaussian of the target's sigma, take the log,
/// and refine the argmax `(x, y)` by one Newton step `-H^-1 g` with central differences (exact for
/// the quadratic log of a Gaussian). Only the 5x5 neighbourhood the differences read is smoothed:
/// DARK's rescaling of the smoothed map to the original maximum only adds a constant to the log
/// and leaves the step unchanged. The step needs two pixels on every side of the argmax (as in
/// DARK) and a peak-shaped (negative definite) Hessian; otherwise the argmax is returned. The
/// step is clamped to one pixel per axis.
///
/// Outside the map the smoothing reads zeros (a heatmap's background), not DARK's OpenCV default
/// border (reflect-101): on small maps the kernel reaches past the border and the mirrored mass
/// moves the smoothed peak. For sub-pixel Gaussians of sigma 1.5 on 8x8 maps the reflecting
/// border left a mean error of 0.51 px (worse than rounding's 0.38), zeros leave 0.05 px.
fn dark(map: &[f32], w: usize, h: usize, x: usize, y: usize, sigma: f32) -> [f32; 2] {
    let p = [x as f32, y as f32];
    if x < 2 || y < 2 || x + 2 >= w || y + 2 >= h {
        return p;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let kern: Vec<f32> = (-r..=r)
        .map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let (wi, hi) = (w as isize, h as isize);
    let smooth = |cx: isize, cy: isize| -> f32 {
        let mut s = 0f32;
        for (ky, &gy) in kern.iter().enumerate() {
            let yy = cy + ky as isize - r;
            if !(0..hi).contains(&yy) {
                continue;
            }
            let row = &map[yy as usize * w..(yy as usize + 1) * w];
            let mut rs = 0f32;
            for (kx, &gx) in kern.iter().enumerate() {
                let xx = cx + kx as isize - r;
                if (0..wi).contains(&xx) {
                    rs += gx * row[xx as usize];
                }
            }
            s += gy * rs;
        }
        let k_sum: f32 = kern.iter().sum();
        (s / (k_sum * k_sum)).max(1e-10).ln()
    };
    let (xi, yi) = (x as isize, y as isize);
    let l = |dx: isize, dy: isize| smooth(xi + dx, yi + dy);
    let c = l(0, 0);
    let dx = 0.5 * (l(1, 0) - l(-1, 0));
    let dy = 0.5 * (l(0, 1) - l(0, -1));
    let dxx = 0.25 * (l(2, 0) - 2.0 * c + l(-2, 0));
    let dyy = 0.25 * (l(0, 2) - 2.0 * c + l(0, -2));
    let dxy = 0.25 * (l(1, 1) - l(1, -1) - l(-1, 1) + l(-1, -1));
    let det = dxx * dyy - dxy * dxy;
    if !(dxx < 0.0 && det > 0.0 && det.is_finite()) {
        return p;
    }
    // -H^-1 g with H^-1 = [dyy, -dxy; -dxy, dxx] / det.
    let ox = -(dyy * dx - dxy * dy) / det;
    let oy = -(-dxy * dx + dxx * dy) / det;
    [p[0] + ox.clamp(-1.0, 1.0), p[1] + oy.clamp(-1.0, 1.0)]
}
