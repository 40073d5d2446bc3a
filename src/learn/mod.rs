//! The ingredients of training, free of any run or loop: losses, the optimiser (with its CPU fast
//! path), mixed precision, learning-rate and momentum schedules, and the learning-rate sweep. Each section's
//! config type lives beside the code it configures; [`crate::run::config`] gathers them.

pub mod loss;
pub mod lr_sweep;
pub mod optim;
pub mod optim_cpu;
pub mod precision;
pub mod schedule;
