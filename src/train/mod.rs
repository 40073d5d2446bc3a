//! Losses, optimiser, schedules, checkpoints and the training loop.

pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod device;
pub mod history;
pub mod loss;
pub mod lr_find;
pub mod optim;
pub mod optim_cpu;
pub mod progress;
pub mod run_dir;
pub mod schedule;
pub mod trainer;

pub use config::TrainConfig;
pub use device::{parse_device, DeviceSpec};
pub use run_dir::load_for_inference;
pub use trainer::{train, RunOptions, RunSummary};
