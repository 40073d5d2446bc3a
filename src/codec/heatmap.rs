//! [`Codec`]: the one object that knows both frames of a heatmap model, the network input
//! (`input_size x input_size` pixels) and its maps (`map_size x map_size`), with the encoder and
//! the decoder that go between points and maps (MMPose's `MSRAHeatmap` codec is the model of the
//! idea). Callers speak input pixels only: nobody else scales by a stride.
//!
//! Scaling follows the crate convention (src/lib.rs): a point is multiplied by
//! `map_size / input_size` onto the map and by `input_size / map_size` back, no half-pixel shift.

use candle_core::Tensor;
use rand::Rng;

use super::{decode, Decoder, TargetEncoder};
use crate::{Error, Keypoints, Result};

/// Points to targets and maps back to points, for one input size and one map size.
#[derive(Clone, Debug, PartialEq)]
pub struct Codec {
    input_size: usize,
    map_size: usize,
    encoder: TargetEncoder,
    decoder: Decoder,
    /// Input pixels added to every predicted point once inference is done (see
    /// [`Codec::with_point_offset`]).
    point_offset: [f32; 2],
}

/// What encoding one sample gives besides its maps.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// True where the point is visible and lands on its map (its map is not empty).
    pub mask: Vec<bool>,
    /// Where each target map peaks, in input pixels (what argmax decoding of the map gives),
    /// visible = `mask`: the write-up's "decoded target" the `nmae_vs_target` figure compares
    /// with. Masked points keep their input coordinates.
    pub targets: Keypoints,
}

/// Decoded maps of a batch, in input pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// One per sample, all points visible.
    pub points: Vec<Keypoints>,
    /// `confidence[i][p]`: the decoder's confidence of point `p` of sample `i` (see
    /// [`super::decode`]).
    pub confidence: Vec<Vec<f32>>,
}

impl Codec {
    /// A codec for square inputs of `input_size` and maps of `map_size` pixels. A DARK decoder
    /// without its own sigma takes the Gaussian encoder's (DARK's smoothing must match the
    /// target); with a binary encoder it must be given (`dark:SIGMA`).
    pub fn new(
        input_size: usize,
        map_size: usize,
        encoder: TargetEncoder,
        decoder: Decoder,
    ) -> Result<Codec> {
        if input_size == 0 || map_size == 0 {
            return Err(Error::config(format!(
                "codec: input size ({input_size}) and map size ({map_size}) must be at least 1"
            )));
        }
        encoder.validate()?;
        let mut codec = Codec {
            input_size,
            map_size,
            encoder,
            decoder: Decoder::Argmax,
            point_offset: [0.0; 2],
        };
        codec.decoder = codec.resolve_decoder(decoder)?;
        Ok(codec)
    }

    /// The same codec with `offset` (input pixels, x and y) added to every point that
    /// inference reports, after the flip test ([`crate::eval::infer`]): a calibration for
    /// labels whose convention a flip-trained model cannot learn. 300-W's points sit to the
    /// right of their own mirror axis; a model trained with flips is mirror-symmetric and so
    /// predicts the axis, and only a constant added after the flip test's average gives the
    /// labels' convention back (averaging undoes any offset inside the decoder). Not applied by
    /// [`Codec::decode`], which stays the maps' own reading.
    pub fn with_point_offset(mut self, offset: [f32; 2]) -> Result<Codec> {
        let bound = self.input_size as f32;
        if offset.iter().any(|v| !v.is_finite() || v.abs() >= bound) {
            return Err(Error::config(format!(
                "metrics.point_offset: {offset:?} must be two finite numbers of input pixels, \
                 each smaller than the input size ({bound}) in magnitude"
            )));
        }
        self.point_offset = offset;
        Ok(self)
    }

    /// Input pixels added to inference's points (zero unless a calibration was given).
    pub fn point_offset(&self) -> [f32; 2] {
        self.point_offset
    }

    fn resolve_decoder(&self, decoder: Decoder) -> Result<Decoder> {
        let decoder = match decoder {
            Decoder::Dark { sigma: None } => match self.encoder.sigma() {
                Some(sigma) => Decoder::Dark { sigma: Some(sigma) },
                None => {
                    return Err(Error::config(format!(
                        "metrics.decoder: the dark decoder smooths with the target's Gaussian, \
                         but target.encoder `{}` is binary; give the decoder's sigma \
                         (metrics.decoder.sigma, or `dark:SIGMA` on the command line)",
                        self.encoder
                    )))
                }
            },
            d => d,
        };
        decoder.validate()?;
        Ok(decoder)
    }

    pub fn input_size(&self) -> usize {
        self.input_size
    }

    pub fn map_size(&self) -> usize {
        self.map_size
    }

    pub fn encoder(&self) -> &TargetEncoder {
        &self.encoder
    }

    /// The decoder, resolved (a DARK decoder always carries its sigma).
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Input pixels to map pixels, per axis.
    fn to_map(&self) -> f32 {
        self.map_size as f32 / self.input_size as f32
    }

    /// Map pixels to input pixels, per axis.
    fn to_input(&self) -> f32 {
        self.input_size as f32 / self.map_size as f32
    }

    /// Points in input pixels scaled onto the map (for code that draws its own maps, such as
    /// the rounding experiment's ideal model).
    pub fn to_map_points(&self, kp: &Keypoints) -> Keypoints {
        let s = self.to_map();
        kp.scaled(s, s)
    }

    /// Values in one sample's targets: `points x map_size x map_size`.
    pub fn target_len(&self, points: usize) -> usize {
        points * self.map_size * self.map_size
    }

    /// Encodes points in input pixels into `out` (`target_len(kp.len())` values, overwritten).
    /// Randomized rounding draws from `rng` (see [`super::centres`]).
    ///
    /// Panics if `out` has the wrong length.
    pub fn encode(&self, kp: &Keypoints, rng: &mut impl Rng, out: &mut [f32]) -> Encoded {
        let m = self.map_size;
        let centres = super::encode_centres(&self.encoder, &self.to_map_points(kp), m, m, rng, out);
        let back = self.to_input();
        let xy = kp
            .xy
            .iter()
            .zip(&centres)
            .zip(out.chunks_exact(m * m))
            .map(|((&p, c), map)| match (c, &self.encoder) {
                (None, _) => p,
                // A sub-pixel Gaussian peaks at the pixel nearest its centre; the map itself
                // settles ties exactly as argmax decoding does.
                (Some(_), TargetEncoder::Gaussian { subpixel: true, .. }) => {
                    let (i, _) = super::decode::argmax(map);
                    [(i % m) as f32 * back, (i / m) as f32 * back]
                }
                // Every other target has its peak (its single 1) at the centre pixel.
                (Some(c), _) => [c[0] * back, c[1] * back],
            })
            .collect();
        let mask: Vec<bool> = centres.iter().map(Option::is_some).collect();
        Encoded {
            targets: Keypoints {
                xy,
                visible: mask.clone(),
            },
            mask,
        }
    }

    /// Decodes maps `(N, L, map_size, map_size)` of any float dtype on any device into points in
    /// input pixels.
    pub fn decode(&self, maps: &Tensor) -> Result<Predictions> {
        let (_, _, h, w) = maps.dims4()?;
        if (h, w) != (self.map_size, self.map_size) {
            return Err(Error::Msg(format!(
                "decode: {h}x{w} maps, but the codec's maps are {m}x{m} (input {s}x{s})",
                m = self.map_size,
                s = self.input_size
            )));
        }
        let dec = decode(maps, &self.decoder)?;
        let s = self.to_input();
        let points = dec.to_keypoints(s, s);
        let confidence = dec
            .confidence
            .chunks(dec.points.max(1))
            .take(dec.n)
            .map(<[f32]>::to_vec)
            .collect();
        Ok(Predictions { points, confidence })
    }
}
