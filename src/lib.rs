//! hmreg: heatmap-based keypoint regression on Candle.
//!
//! # Layers
//!
//! The modules form layers; a module may use the modules of the layers below it and the ones
//! listed beside it, never one above (`tests/layering.rs` fails the build's tests otherwise, and
//! also refuses import cycles between files):
//!
//! | layer | module | what | may also use (same layer) |
//! |---|---|---|---|
//! | 7 | [`cli`] | the `hmreg` command line, one file per subcommand | |
//! | 6 | [`experiment`] | reproductions (the randomized-rounding experiment) | |
//! | 6 | [`sequence`] | landmarks through time: the face tracker, One Euro smoothing, similarity fits, photo-series alignment, GIFs | |
//! | 5 | [`predict`] | landmarks on photos: faces found or given, crops, the model, points in the photo's pixels | |
//! | 5 | [`train`] | setup, one step, the loop, validation, lr-find, progress | |
//! | 4 | [`eval`] | evaluation, flip test, reports, result pictures | |
//! | 3 | [`run`] | a run on disk: resolved config, run directory, checkpoints, history, loading a trained model, runs side by side | |
//! | 2 | [`learn`] | losses, optimiser, schedules, the lr sweep's arithmetic | |
//! | 1 | [`export`] | ONNX export: the network's graph, the in-graph decoders, metadata | `models`, `codec` |
//! | 1 | [`data`] | datasets, validation, synthetic faces, transforms, augmentation, loading | `codec`, `viz` |
//! | 1 | [`hub`] | pretrained weights by name: a local file or a Hugging Face hub name, the cache, downloads | |
//! | 1 | [`models`] | ResNet18 encoder, UNet decoder, HRNet, heads, parameter store | |
//! | 1 | [`codec`] | points to target heatmaps and back | |
//! | 1 | [`metrics`] | NMAE, NME, failure rate, AUC | |
//! | 1 | [`detect`] | face boxes in photos (SeetaFace's cascade through rustface) | |
//! | 1 | [`viz`] | PNG output: plots, grids, heatmaps, drawing | |
//! | 1 | [`tensorboard`] | TensorBoard event files: TFRecord framing, `Event`/`Summary` messages, writer, reader | `viz` |
//! | 1 | [`parallel`] | data-parallel collectives: worker threads, NCCL, the rendezvous across machines | |
//! | 0 | [`ops`] | tensor operations Candle lacks or runs slowly (conv, BatchNorm, pooling, resize) | |
//! | base | [`error`], [`keypoints`], [`bbox`], [`atomic`], [`device`], [`stdout`], [`progress`] | the error type, a set of points, a box by its corners, atomic file writes, device names (and the test suite's device), printing that a closed pipe ends quietly, the progress bar | |
//!
//! Coordinate convention used everywhere: a point is `[x, y]` in pixels of the image it belongs to,
//! the first pixel's centre at `[0, 0]` (no half-pixel shift); landmark files that count from
//! elsewhere (300-W counts from 1) are moved into it on reading (`data.origin`). Mapping to a map of another size scales by
//! `size_map / size_img`; an integer heatmap pixel `i` stands for coordinate `i`.

pub mod atomic;
pub mod bbox;
pub mod cli;
pub mod codec;
pub mod data;
pub mod detect;
pub mod device;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod export;
pub mod hub;
pub mod keypoints;
pub mod learn;
pub mod metrics;
pub mod models;
pub mod ops;
pub mod parallel;
pub mod predict;
pub mod progress;
pub mod run;
pub mod sequence;
pub mod stdout;
pub mod tensorboard;
pub mod train;
pub mod viz;

pub use bbox::BBox;
pub use error::{Error, Result};
pub use keypoints::Keypoints;
