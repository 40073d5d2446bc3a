//! hmreg: heatmap-based keypoint regression on Candle.
//!
//! Layout (one concept per file):
//! - [`data`]: LaPa-style datasets, validation, synthetic faces, transforms, augmentation, loading.
//! - [`codec`]: points to target heatmaps (Gaussian, randomized rounding) and heatmaps back to points.
//! - [`metrics`]: NMAE, NME, failure rate, AUC.
//! - [`ops`]: tensor operations Candle lacks or runs slowly (pooling, resize, conv, batch norm).
//! - [`models`]: ResNet18 encoder, UNet decoder, HRNet, heads, parameter store.
//! - [`train`]: losses, optimiser, schedules, checkpoints, the training loop.
//! - [`eval`]: evaluation and prediction.
//! - [`viz`]: PNG output: curves, grids, heatmaps, annotated images.
//! - [`experiment`]: reproductions (the randomized-rounding experiment).
//! - [`cli`]: the `hmreg` command line.
//!
//! Coordinate convention used everywhere: a point is `[x, y]` in pixels of the image it belongs to,
//! as written in the landmark files (no half-pixel shift). Mapping to a map of another size scales by
//! `size_map / size_img`; an integer heatmap pixel `i` stands for coordinate `i`.

pub mod cli;
pub mod codec;
pub mod data;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod keypoints;
pub mod metrics;
pub mod models;
pub mod ops;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
pub use keypoints::Keypoints;
