//! Reproductions of published experiments.

pub mod rounding;
