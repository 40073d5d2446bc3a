//! Evaluation of a trained model and prediction on new images.
//!
//! - [`tta`]: inference on a prepared batch, with optional flip test-time augmentation.
//! - [`evaluate`]: metrics, per-sample errors and the samples kept for pictures.
//! - [`show`]: result pictures (targets, predictions, heatmaps).
//! - [`load`]: the model from a run directory or checkpoint, and the evaluation data.
//! - [`report`]: the eval summary (JSON, text table) and its output folder.
//! - [`predict`]: landmarks for arbitrary images, in the original image's pixels.

pub mod evaluate;
pub mod load;
pub mod predict;
pub mod report;
pub mod show;
pub mod tta;

pub use evaluate::{evaluate, EvalBatch, EvalOptions, EvalOutcome, SampleRecord};
pub use tta::{infer, Inference};
