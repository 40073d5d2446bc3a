//! Which CPU algorithm computes a convolution: im2col + gemm, the direct kernel or Winograd.
//!
//! The choice follows per-layer timings of the speed bench's models (`cargo bench --bench speed
//! -- --layers`: batch 8, 256x256, 2 cores; `benches/README.md`). On an AVX2 AMD EPYC:
//! - Winograd F(2x2, 3x3) for 3x3 stride-1 layers with 64 or more channels in and out on planes
//!   of at least 16x16: UNet's 99-channel decoder at 256x256 went from 137 to 204 effective
//!   GFLOP/s, ResNet's 256-channel 64x64 layers from 163 to 290. Narrower layers lose to the
//!   direct kernel (HRNet's 36 channels at 32x32: 236 ms against 160), and 8x8 planes (a 4x4
//!   grid of tiles per gemm) to im2col.
//! - The direct kernel for the other stride-1 layers with at most 192 input channels (K ≤ 1,728)
//!   and rows of 8 or more outputs: HRNet's 18 channels at 64x64 from 53 to 129 GFLOP/s. With
//!   more input channels gemm's blocking along K wins (256 channels: 163 against 155).
//! - The direct weight gradient for 3x3 stride-1 layers on planes of at least 32x32 (HRNet's
//!   18 channels: 228 to 168 ms per step); on 8x8 planes its per-tile sums cost more than the
//!   products.
//!
//! On an AVX-512 Intel Xeon, where gemm runs 16-lane kernels too, the direct kernel's 16-lane
//! tiles change three of those choices (forward ms, direct against gemm):
//! - Stride-2 layers go to the direct kernel: HRNet's second stem layer 13.2 against 18.5,
//!   ResNet's 7x7 stem 9.6 against 14.8, HRNet's 18-channel fuse downsampling 0.6 against 1.0.
//!   (The AVX2 tiles' stride 2 is tested but not chosen: no AVX2-only machine has timed it.)
//! - Wider inputs too, up to K = 2,304: HRNet's transition from 256 to 18 channels, 12.1
//!   against 23.7 (gemm's 18 columns fill few of its registers).
//! - Rows narrower than a 16-float vector stay with gemm: HRNet's 144 channels at 8x8, 1.4
//!   (8-lane tiles) against 0.8.
//!
//! The Winograd choice stands there. The direct weight gradient keeps its lead on the narrow
//! layers it was tuned on (HRNet's 18 channels at 64x64: 3.8 ms forward and backward against
//! gemm's 5.6; its transition from 256 to 18 channels: 54 against 85) but loses from 64 output
//! channels, where gemm's blocking pays (UNet's 96-channel decoder: 1,127 against 929, ResNet's
//! 128 channels at 32x32: 36 against 23), so it now needs fewer than 64 output channels at
//! either width (on AVX2 only the narrow layers were ever timed).
//!
//! Tests force one algorithm for the current thread ([`with_conv_algo`]) to check each against
//! the definition on every geometry it supports.

use std::cell::Cell;

use super::conv_geom::ConvGeom;
use super::simd::{self, VectorWidth};
use super::{conv_direct, conv_winograd};

/// A CPU convolution algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// im2col tiles times the weights through gemm (every geometry).
    Gemm,
    /// Register-tiled direct convolution (AVX2 + FMA or AVX-512, stride 1 or 2).
    Direct,
    /// Winograd F(2x2, 3x3) (3x3 kernels, stride 1).
    Winograd,
}

thread_local! {
    static FORCED: Cell<Option<ConvAlgo>> = const { Cell::new(None) };
}

/// Runs `f` with `algo` used for every convolution this thread starts that `algo` supports
/// (the others keep the usual choice): the forward pass and the stride-1 input gradient (a
/// forward convolution) follow it; the weight gradient uses the direct kernel when `Direct` is
/// forced and gemm otherwise (Winograd has no weight-gradient path).
pub fn with_conv_algo<R>(algo: ConvAlgo, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<ConvAlgo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.set(self.0);
        }
    }
    let _restore = Restore(FORCED.replace(Some(algo)));
    f()
}

fn supports(algo: ConvAlgo, g: &ConvGeom) -> bool {
    match algo {
        ConvAlgo::Gemm => true,
        ConvAlgo::Direct => conv_direct::available() && conv_direct::supports(g),
        ConvAlgo::Winograd => conv_winograd::supports(g),
    }
}

/// The algorithm of the forward pass (and of a stride-1 input gradient, itself a forward
/// convolution).
pub fn forward(g: &ConvGeom) -> ConvAlgo {
    if let Some(algo) = FORCED.get().filter(|&a| supports(a, g)) {
        return algo;
    }
    let pointwise = g.kh == 1 && g.kw == 1 && g.padding == 0;
    if supports(ConvAlgo::Winograd, g)
        && g.c_in >= 64
        && g.c_out >= 64
        && g.out_h() >= 16
        && g.out_w() >= 16
    {
        ConvAlgo::Winograd
    } else if supports(ConvAlgo::Direct, g) && !pointwise && direct_pays(g) {
        ConvAlgo::Direct
    } else {
        ConvAlgo::Gemm
    }
}

/// Whether the direct kernel beats gemm on a layer it supports, at the vector width its tiles
/// would use on this thread (see the module's timings).
fn direct_pays(g: &ConvGeom) -> bool {
    match simd::current() {
        Some(VectorWidth::Avx512) => {
            conv_direct::tile_width(g) == VectorWidth::Avx512 && g.k() <= 2304
        }
        _ => g.stride == 1 && g.k() <= 1728,
    }
}

/// Whether the weight gradient uses the direct kernel (otherwise gemm).
pub fn direct_weight_grad(g: &ConvGeom) -> bool {
    let supported = conv_direct::available() && conv_direct::supports_weight_grad(g);
    match FORCED.get() {
        Some(ConvAlgo::Direct) => supported,
        Some(_) => false,
        // Stride 2 ties with gemm on AVX-512 (HRNet's stem: 49 against 47 ms of backward), and
        // from 64 output channels gemm's blocking wins (module docs).
        None => supported && g.stride == 1 && g.c_out < 64 && g.out_h() * g.out_w() >= 1024,
    }
}
