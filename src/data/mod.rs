//! Datasets on disk, their validation, synthetic faces, and the training-time pipeline, one
//! folder per concept:
//!
//! - [`sources`]: what a dataset is made of and how it is read (LaPa layout, COCO keypoint files,
//!   landmark files, images, the point selection).
//! - [`checks`]: `hmreg data check`, every problem of a dataset by file and line.
//! - [`synthesis`]: `hmreg data synth`, synthetic faces with 68 landmarks.
//! - [`transforms`]: an item's geometry, augmentation, flips, normalisation.
//! - [`loading`]: the pipeline's config, the image cache, the batch loader, `hmreg data show`.

pub mod checks;
pub mod loading;
pub mod sources;
pub mod synthesis;
pub mod transforms;

pub use checks::lapa::{check_dataset, CheckReport, Problem, ProblemKind};
pub use loading::loader::{Batch, FilePoints, Loader, LoaderMode, LoaderSpec, Shards};
pub use loading::pipeline_config::{
    FlipConfig, NormalizeConfig, PipelineConfig, ResizeMode, TargetConfig,
};
pub use sources::dataset::{load_split, present_splits, Sample, SPLITS};
pub use sources::image_io::{image_size, read_rgb};
pub use sources::landmarks::{read_landmarks, write_landmarks_txt};
pub use sources::points::PointSelection;
pub use synthesis::generate::{generate, SynthConfig};
pub use transforms::warp::{Mat3, PadMode};
