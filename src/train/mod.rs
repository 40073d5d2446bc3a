//! Training a model: everything built from a config ([`setup`]), one optimiser step
//! ([`step`]), the loop with its checkpoints and resume ([`trainer`]), validation through the
//! evaluation code ([`validate`]), the learning-rate finder ([`lr_find`]), progress display,
//! curves and the TensorBoard log ([`tb_log`]). The run directory and its files are [`crate::run`]'s; losses, optimiser and
//! schedules are [`crate::learn`]'s.

pub mod curves;
pub mod data_parallel;
pub mod lr_find;
pub mod progress;
pub mod setup;
pub mod step;
pub mod tb_log;
pub mod trainer;
pub mod validate;

pub use setup::Setup;
pub use trainer::{train, RunOptions, RunSummary};
