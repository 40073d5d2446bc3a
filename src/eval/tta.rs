//! Inference on a prepared batch, optionally with horizontal-flip test-time augmentation.
//!
//! Flip TTA runs the model on the mirrored batch as well. In the mirrored picture, channel `c`
//! finds the mirror image of point `perm[c]` (left and right swap identities), so the original
//! point `i` is the mirrored prediction of channel `perm[i]`: `x -> W - 1 - x` in input pixels
//! (crate convention: pixel `i` is coordinate `i`; the pipeline's flip uses the same mirror).
//!
//! The two predictions are averaged as coordinates, not as heatmaps: under this convention a
//! mirrored stride-4 heatmap is misaligned with the original by 3/4 of a map pixel, which
//! heatmap averaging would have to correct by resampling (MMPose and HRNet shift by a whole pixel
//! for their own convention). Coordinate averaging is exact for every decoder and every stride.
//! The maps of a kept sample (for pictures only) are the average of the original maps and the
//! pixel-mirrored, permuted flipped maps.
//!
//! BatchNorm runs in inference mode (`forward_t(x, false)`): running statistics, no updates.

use candle_core::{DType, Device, Tensor};

use crate::codec::{Codec, Predictions};
use crate::models::KeypointNet;
use crate::{Error, Keypoints, Result};

/// Predictions of one batch: points in input pixels with a confidence each, and the model's
/// outputs, left on their device (pictures copy the maps of the samples they keep with
/// [`Inference::sample_maps`]; copying every map would undo the on-device argmax on a GPU).
#[derive(Debug)]
pub struct Inference {
    /// One per sample, in input pixels, all visible.
    pub points: Vec<Keypoints>,
    /// `confidence[i][p]`: the decoder's confidence of point `p` in sample `i`.
    pub confidence: Vec<Vec<f32>>,
    /// The model's output for the batch as given (never flipped), on its device: what a loss
    /// against the batch's targets is computed on.
    pub output: Tensor,
    /// With the flip test: the output for the mirrored batch and the point permutation.
    flipped: Option<(Tensor, Vec<usize>)>,
}

impl Inference {
    /// `(h, w)` of the maps.
    pub fn map_size(&self) -> Result<(usize, usize)> {
        let (_, _, h, w) = self.output.dims4()?;
        Ok((h, w))
    }

    /// The maps of sample `i` as one row-major `L x h x w` vector, on the CPU: the raw output,
    /// or with the flip test the average of the original maps and the pixel-mirrored, permuted
    /// flipped maps.
    pub fn sample_maps(&self, i: usize) -> Result<Vec<f32>> {
        let to_host = |t: &Tensor| -> Result<Tensor> {
            Ok(t.narrow(0, i, 1)?
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?)
        };
        let mut maps = to_host(&self.output)?;
        if let Some((fmaps, perm)) = &self.flipped {
            let back = permute_channels(&flip_horizontal(&to_host(fmaps)?)?, perm)?;
            maps = ((maps + back)? * 0.5)?;
        }
        Ok(maps.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// Mirrors a batch `(N, C, H, W)` left to right.
pub fn flip_horizontal(x: &Tensor) -> Result<Tensor> {
    let w = x.dim(3)?;
    let idx: Vec<u32> = (0..w as u32).rev().collect();
    let idx = Tensor::from_vec(idx, w, x.device())?;
    Ok(x.index_select(&idx, 3)?)
}

/// Reorders channels: output channel `i` is input channel `perm[i]`.
pub fn permute_channels(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let idx: Vec<u32> = perm.iter().map(|&p| p as u32).collect();
    let idx = Tensor::from_vec(idx, perm.len(), x.device())?;
    Ok(x.index_select(&idx, 1)?)
}

/// Checks that `perm` is a permutation of `0..points` that undoes itself (pairs swap).
pub fn check_flip_permutation(perm: &[usize], points: usize) -> Result<()> {
    if perm.len() != points {
        return Err(Error::config(format!(
            "flip test: the flip permutation has {} entries for {points} points",
            perm.len()
        )));
    }
    for (i, &p) in perm.iter().enumerate() {
        if p >= points || perm[p] != i {
            return Err(Error::config(format!(
                "flip test: flip permutation {perm:?} is not a pairing of 0..{points} \
                 (entry {i} -> {p})"
            )));
        }
    }
    Ok(())
}

/// Adds the codec's calibration to every point (after the flip test's average, which would
/// cancel an offset inside the decoder).
fn shift(points: &mut [Keypoints], offset: [f32; 2]) {
    if offset == [0.0; 2] {
        return;
    }
    for xy in points.iter_mut().flat_map(|kp| kp.xy.iter_mut()) {
        xy[0] += offset[0];
        xy[1] += offset[1];
    }
}

/// Runs `model` on normalised images `x` `(N, 3, H, W)`, decodes with `codec` and returns
/// points in input pixels. With `flip = Some(perm)`, averages with the mirrored prediction.
/// The codec's point offset is added last.
pub fn infer(
    model: &dyn KeypointNet,
    x: &Tensor,
    codec: &Codec,
    flip: Option<&[usize]>,
) -> Result<Inference> {
    let (_, _, _, in_w) = x.dims4()?;
    let output = model.forward_t(x, false)?;
    let points_n = output.dim(1)?;
    let Predictions {
        mut points,
        mut confidence,
    } = codec.decode(&output)?;
    let Some(perm) = flip else {
        shift(&mut points, codec.point_offset());
        return Ok(Inference {
            points,
            confidence,
            output,
            flipped: None,
        });
    };
    check_flip_permutation(perm, points_n)?;
    let fmaps = model.forward_t(&flip_horizontal(x)?, false)?;
    let fdec = codec.decode(&fmaps)?;
    let mirror = in_w as f32 - 1.0;
    for (i, (kp, fkp)) in points.iter_mut().zip(&fdec.points).enumerate() {
        for (p, xy) in kp.xy.iter_mut().enumerate() {
            let f = fkp.xy[perm[p]];
            xy[0] = 0.5 * (xy[0] + (mirror - f[0]));
            xy[1] = 0.5 * (xy[1] + f[1]);
            confidence[i][p] = 0.5 * (confidence[i][p] + fdec.confidence[i][perm[p]]);
        }
    }
    shift(&mut points, codec.point_offset());
    Ok(Inference {
        points,
        confidence,
        output,
        flipped: Some((fmaps, perm.to_vec())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_and_permute() {
        let x = Tensor::arange(0f32, 12.0, &crate::device::test_device())
            .unwrap()
            .reshape((1, 3, 1, 4))
            .unwrap();
        let f = flip_horizontal(&x).unwrap();
        assert_eq!(
            f.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [3., 2., 1., 0., 7., 6., 5., 4., 11., 10., 9., 8.]
        );
        let p = permute_channels(&x, &[2, 1, 0]).unwrap();
        assert_eq!(
            p.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [8., 9., 10., 11., 4., 5., 6., 7., 0., 1., 2., 3.]
        );
    }

    #[test]
    fn permutation_checks() {
        assert!(check_flip_permutation(&[1, 0, 2], 3).is_ok());
        assert!(check_flip_permutation(&[1, 2, 0], 3).is_err());
        assert!(check_flip_permutation(&[0, 1], 3).is_err());
        assert!(check_flip_permutation(&[0, 5, 2], 3).is_err());
    }
}
