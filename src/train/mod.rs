//! Losses, optimiser, schedules, checkpoints and the training loop.

pub mod checkpoint;
pub mod loss;
pub mod optim;
pub mod schedule;
