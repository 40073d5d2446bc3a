//! PixelShuffle (sub-pixel convolution output): `(N, C r², H, W) -> (N, C, H r, W r)`, as a
//! reshape and permutation so that gradients come from Candle's autodiff.

use candle_core::{Result, Tensor};

/// PyTorch's `nn.PixelShuffle(r)`: input channel `c r² + i r + j` becomes sub-pixel `(i, j)` of
/// output channel `c`.
pub fn pixel_shuffle(x: &Tensor, r: usize) -> Result<Tensor> {
    let (n, cr2, h, w) = x.dims4()?;
    if r == 0 || cr2 % (r * r) != 0 {
        candle_core::bail!("pixel_shuffle: {cr2} channels not divisible by {r}^2");
    }
    let c = cr2 / (r * r);
    x.reshape((n * c, r, r, h, w))?
        .permute((0, 3, 1, 4, 2))?
        .contiguous()?
        .reshape((n, c, h * r, w * r))
}
