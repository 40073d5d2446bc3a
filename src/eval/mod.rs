//! Evaluation of a trained model and prediction on new images.
//!
//! - [`tta`]: inference on a prepared batch, with optional flip test-time augmentation.
//! - [`evaluate`]: metrics, per-sample errors and the samples kept for pictures.
//! - [`show`]: result pictures (targets, predictions, heatmaps).
//! - [`predict`]: landmarks for arbitrary images, in the original image's pixels.

pub mod evaluate;
pub mod predict;
pub mod show;
pub mod tta;

pub use evaluate::{evaluate, EvalBatch, EvalOptions, EvalOutcome, SampleRecord};
pub use tta::{infer, Inference};
