//! Reproductions of published experiments.

pub mod input_points;
pub mod quantization_files;
pub mod rounding;
pub mod trained;
pub mod trained_report;
