//! Losses, optimiser, schedules, checkpoints and the training loop.

pub mod checkpoint;
pub mod device;
pub mod history;
pub mod loss;
pub mod lr_find;
pub mod optim;
pub mod schedule;
