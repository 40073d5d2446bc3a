//! Datasets on disk, their validation, synthetic faces, and the training-time pipeline.

pub mod check;
pub mod check_coco;
pub mod coco;
pub mod dataset;
pub mod image_io;
pub mod landmarks;
pub mod points;
pub mod synth;
pub mod synth_canvas;
pub mod synth_face;

pub use check::{check_dataset, CheckReport, Problem, ProblemKind};
pub use dataset::{load_split, present_splits, Sample, SPLITS};
pub use image_io::{image_size, read_rgb};
pub use landmarks::{read_landmarks, write_landmarks_txt};
pub use points::PointSelection;
pub use synth::{generate, SynthConfig};

pub mod augment;
pub mod cache;
pub mod flip;
pub mod loader;
pub mod normalize;
pub mod pipeline_config;
pub mod pixel_augment;
pub mod sample;
pub mod show;
pub mod transform;
pub mod warp;

pub use loader::{Batch, FilePoints, Loader, LoaderMode, LoaderSpec, Shards};
pub use pipeline_config::{FlipConfig, NormalizeConfig, PipelineConfig, ResizeMode, TargetConfig};
pub use warp::{Mat3, PadMode};
