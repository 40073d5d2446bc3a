//! Losses, optimiser, schedules, checkpoints and the training loop.
