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
//!
//! Each part is its own file ([`montecarlo`], [`quantization`]); [`markdown`] renders both
//! reports. Their items are re-exported here, so callers name `rounding::montecarlo` etc.

pub mod markdown;
pub mod montecarlo;
pub mod quantization;

pub use markdown::{montecarlo_markdown, quantization_markdown};
pub use montecarlo::*;
pub use quantization::*;
