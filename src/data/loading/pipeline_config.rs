//! Configuration of the training-time pipeline (fastai's DataBlock in the recipe), with the
//! recipe as defaults: `Resize(400)` by crop, `aug_transforms(size=256, do_flip=False)`,
//! ImageNet normalisation.

use serde::{Deserialize, Serialize};

pub use crate::data::transforms::augment::AugmentConfig;
use crate::{Error, Result};

/// How an item is brought to a square (fastai `ResizeMethod`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// The largest square inside the image: random position in training, centred in validation.
    #[default]
    Crop,
    /// The smallest square holding the image, the rest filled by the pad mode (reflection).
    Pad,
    /// The whole image stretched to a square.
    Squish,
    /// Top-down: the square centred on the sample's box (its annotated face or person box, else
    /// the bounding box of all its file's points) with a side of `box_scale` times the box's
    /// longer side; where it leaves the image, the pad mode fills in. The same square in training
    /// (translation and zoom augment it) and evaluation, so no labelled point is cut away.
    Box,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Side of the network input, in pixels.
    pub input_size: usize,
    /// fastai's item size (`Resize(400)`). The geometry is composed into one warp, so this only
    /// sets the resolution the source is antialiased down to first when it is larger (what the
    /// recipe's resize to 400 does); 0 turns that pre-downscale off.
    pub item_size: usize,
    pub resize: ResizeMode,
    /// Side of the `box` crop relative to the box's longer side (1.25 as in the randomized
    /// rounding paper's API and HRNet's face crops).
    pub box_scale: f64,
    pub augment: AugmentConfig,
    pub flip: FlipConfig,
    pub normalize: NormalizeConfig,
    /// Worker threads for decoding, augmenting and encoding; 0 = all cores.
    pub workers: usize,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
    /// Memory for decoded (and pre-downscaled) images kept across epochs, in MB; 0 = no cache.
    pub cache_mb: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            input_size: 256,
            item_size: 400,
            resize: ResizeMode::Crop,
            box_scale: 1.25,
            augment: AugmentConfig::default(),
            flip: FlipConfig::default(),
            normalize: NormalizeConfig::default(),
            workers: 0,
            prefetch: 2,
            cache_mb: 1024,
        }
    }
}

impl PipelineConfig {
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.input_size > 8192 {
            return Err(Error::config(format!(
                "pipeline.input_size must be in 1..=8192, got {}",
                self.input_size
            )));
        }
        if self.item_size > 16384 {
            return Err(Error::config(format!(
                "pipeline.item_size must be at most 16384 (0 = no pre-downscale), got {}",
                self.item_size
            )));
        }
        if !(self.box_scale.is_finite() && self.box_scale > 0.0 && self.box_scale <= 10.0) {
            return Err(Error::config(format!(
                "pipeline.box_scale must be in (0, 10], got {}",
                self.box_scale
            )));
        }
        self.augment.validate()?;
        self.flip.validate()?;
        self.normalize.validate()?;
        Ok(())
    }

    /// Number of worker threads to use (resolves 0 to the number of cores).
    pub fn worker_threads(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// How targets are made from the transformed points.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    pub encoder: crate::codec::TargetEncoder,
    /// Input pixels per heatmap pixel: 4 for HRNet (64x64 maps for 256 inputs), 1 for the UNet.
    pub stride: usize,
}

impl Default for TargetConfig {
    /// The recipe's variant 1: Gaussian sigma 10 on full-resolution maps.
    fn default() -> Self {
        TargetConfig {
            encoder: crate::codec::TargetEncoder::default(),
            stride: 1,
        }
    }
}

impl TargetConfig {
    /// Checks the encoder and that the stride divides the input size; returns the map side.
    pub fn validate(&self, input_size: usize) -> Result<usize> {
        self.encoder.validate()?;
        if self.stride == 0 || !input_size.is_multiple_of(self.stride) {
            return Err(Error::config(format!(
                "target.stride must divide the input size {input_size}, got {}",
                self.stride
            )));
        }
        Ok(input_size / self.stride)
    }
}

/// Random horizontal flips. Off in the recipe (landmarks have left/right identities); when on,
/// symmetric points swap indices (built-in for iBUG-68 and LaPa-106, or `permutation`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FlipConfig {
    /// Probability of a flip per training sample.
    pub p: f32,
    /// Custom mirror permutation over the points of the landmark files: `permutation[i]` is the
    /// point that `i` becomes after a flip. Must be an involution.
    pub permutation: Option<Vec<usize>>,
}

impl FlipConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.p) {
            return Err(Error::config(format!(
                "pipeline.flip.p must be in [0, 1], got {}",
                self.p
            )));
        }
        if let Some(perm) = &self.permutation {
            crate::data::transforms::flip::check_permutation(perm)?;
        }
        Ok(())
    }
}

/// Per-channel normalisation `(v - mean) / std` of RGB values in [0, 1].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeConfig {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for NormalizeConfig {
    /// ImageNet statistics, as fastai's `Normalize.from_stats(*imagenet_stats)`.
    fn default() -> Self {
        NormalizeConfig {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

impl NormalizeConfig {
    pub fn validate(&self) -> Result<()> {
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::config(format!(
                "pipeline.normalize: std must be positive and mean finite, got mean {:?} std {:?}",
                self.mean, self.std
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_recipe_and_parse_from_partial_toml() {
        let c: PipelineConfig =
            toml::from_str("input_size = 128\n[augment.rotate]\nmax_deg = 5.0\n").unwrap();
        assert_eq!(c.input_size, 128);
        assert_eq!(c.item_size, 400);
        assert_eq!(c.augment.rotate.max_deg, 5.0);
        assert_eq!(c.augment.rotate.p, 0.75);
        assert_eq!(c.augment.zoom.max, 1.1);
        assert_eq!(c.flip.p, 0.0);
        assert_eq!(c.normalize.std, [0.229, 0.224, 0.225]);
        assert!(toml::from_str::<PipelineConfig>("input_sise = 3").is_err());
        c.validate().unwrap();
    }
}
