//! The networks: a ResNet18 encoder with a UNet decoder, HRNet-W18/W32 with the binary head.

pub mod params;

pub use params::{Param, ParamGroup, ParamKind, ParamStore};

use candle_core::Tensor;

/// A network that maps normalised images `(N, 3, H, W)` to one map per point `(N, L, H / s, W / s)`.
/// The maps are raw outputs: heatmap values for MSE training, logits for BCE training.
pub trait KeypointNet: Send + Sync {
    /// `train` selects batch statistics (and running-stat updates) in BatchNorm.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor>;
    /// Input pixels per heatmap pixel: 1 for the UNet, 4 for HRNet.
    fn stride(&self) -> usize;
}
