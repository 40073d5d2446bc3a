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
//! The returned maps (for pictures only) are the average of the original maps and the
//! pixel-mirrored, permuted flipped maps.
//!
//! BatchNorm runs in inference mode (`forward_t(x, false)`): running statistics, no updates.

use candle_core::{DType, Device, IndexOp, Tensor};

use crate::codec::{decode, Decoder};
use crate::models::KeypointNet;
use crate::{Error, Keypoints, Result};

/// Predictions of one batch: points in input pixels with a confidence each, and the raw maps.
#[derive(Debug)]
pub struct Inference {
    /// One per sample, in input pixels, all visible.
    pub points: Vec<Keypoints>,
    /// `confidence[i][p]`: the decoder's confidence of point `p` in sample `i`.
    pub confidence: Vec<Vec<f32>>,
    /// Raw model output `(N, L, h, w)` (flip-averaged with TTA), on the CPU as f32.
    pub maps: Tensor,
    /// The model's output for the batch as given (never flipped), on its device: what a loss
    /// against the batch's targets is computed on.
    pub output: Tensor,
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

/// Runs `model` on normalised images `x` `(N, 3, H, W)`, decodes with `decoder` and returns
/// points in input pixels. With `flip = Some(perm)`, averages with the mirrored prediction.
pub fn infer(
    model: &dyn KeypointNet,
    x: &Tensor,
    decoder: &Decoder,
    flip: Option<&[usize]>,
) -> Result<Inference> {
    let (_, _, _, in_w) = x.dims4()?;
    let stride = model.stride() as f32;
    let output = model.forward_t(x, false)?;
    let points_n = output.dim(1)?;
    let dec = decode(&output, decoder)?;
    let mut points = dec.to_keypoints(stride, stride);
    let mut confidence: Vec<Vec<f32>> = dec
        .confidence
        .chunks(points_n.max(1))
        .map(<[f32]>::to_vec)
        .collect();
    confidence.truncate(dec.n);
    let maps = output.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let Some(perm) = flip else {
        return Ok(Inference {
            points,
            confidence,
            maps,
            output,
        });
    };
    check_flip_permutation(perm, points_n)?;
    let fmaps = model.forward_t(&flip_horizontal(x)?, false)?;
    let fdec = decode(&fmaps, decoder)?;
    let fpoints = fdec.to_keypoints(stride, stride);
    let mirror = in_w as f32 - 1.0;
    for (i, (kp, fkp)) in points.iter_mut().zip(&fpoints).enumerate() {
        for (p, xy) in kp.xy.iter_mut().enumerate() {
            let f = fkp.xy[perm[p]];
            xy[0] = 0.5 * (xy[0] + (mirror - f[0]));
            xy[1] = 0.5 * (xy[1] + f[1]);
            confidence[i][p] = 0.5 * (confidence[i][p] + fdec.confidence[i * points_n + perm[p]]);
        }
    }
    let fmaps = fmaps.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let back = permute_channels(&flip_horizontal(&fmaps)?, perm)?;
    let maps = ((maps + back)? * 0.5)?;
    Ok(Inference {
        points,
        confidence,
        maps,
        output,
    })
}

/// The maps of sample `i` as one row-major `L x h x w` vector.
pub fn sample_maps(maps: &Tensor, i: usize) -> Result<Vec<f32>> {
    Ok(maps.i(i)?.flatten_all()?.to_vec1::<f32>()?)
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
