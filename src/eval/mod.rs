//! Evaluation of a trained model on a labelled dataset. Training's validation runs
//! [`evaluate`] too, so a checkpoint gets the same figures from `hmreg eval` as in its run's logs.
//!
//! - [`tta`]: inference on a prepared batch, with optional flip test-time augmentation.
//! - [`evaluate`]: metrics, per-sample errors and the samples kept for pictures.
//! - [`dataset`]: a dataset split prepared like training's validation data, as batches.
//! - [`choices`]: the decoder and the flip permutation chosen at evaluation time.
//! - [`show`]: result pictures (targets, predictions, heatmaps).
//! - [`report`]: the eval summary (JSON, text table) and its output folder.

pub mod choices;
pub mod dataset;
pub mod evaluate;
pub mod published;
pub mod report;
pub mod show;
pub mod tta;

pub use evaluate::{evaluate, EvalBatch, EvalOptions, EvalOutcome, SampleRecord};
pub use tta::{infer, Inference};
