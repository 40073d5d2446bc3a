//! Datasets on disk, their validation, synthetic faces, and the training-time pipeline.

pub mod augment;
pub mod flip;
pub mod normalize;
pub mod pipeline_config;
pub mod transform;
pub mod warp;

pub use pipeline_config::{FlipConfig, NormalizeConfig, PipelineConfig, ResizeMode};
pub use warp::{Mat3, PadMode};
