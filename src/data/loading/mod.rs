//! The training-time pipeline: its config ([`pipeline_config`]), decoded images kept across
//! epochs ([`cache`]), batches built in worker threads ([`loader`]) and the picture of what the
//! model is fed ([`show`]).

pub mod cache;
pub mod loader;
pub mod pipeline_config;
pub mod show;
