//! Losses, optimiser, schedules, checkpoints and the training loop.

pub mod loss;
pub mod optim;
pub mod schedule;
