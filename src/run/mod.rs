//! A training run as stored on disk, shared by training and evaluation:
//! - [`config`]: the resolved config (`config.toml`), every section of a run in one TOML file;
//! - [`dir`]: the run directory's layout and finding a checkpoint in it;
//! - [`checkpoint`]: atomic, verified checkpoints (weights, optimiser state, progress);
//! - [`history`]: per-epoch records (`metrics.jsonl`, `metrics.csv`);
//! - [`model`]: a trained model loaded back for inference;
//! - [`listing`]: runs side by side (`hmreg runs`): found under folders, read, their differences.
//!
//! Files are written through [`crate::atomic`].

pub mod checkpoint;
pub mod config;
pub mod dir;
pub mod history;
pub mod listing;
pub mod model;
pub mod resolved;

pub use crate::device::{parse_device, DeviceSpec};
pub use config::TrainConfig;
pub use model::{load_model, LoadedModel, ModelSource};
pub use resolved::ResolvedRun;
