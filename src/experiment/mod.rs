//! Reproductions of published experiments.

pub mod rounding;
pub mod trained;
pub mod trained_report;
