//! Landmarks through time and across photo series: a face tracker for frame sequences (detect
//! once, then crop each next frame from the previous landmarks, One Euro smoothing) and the
//! alignment of a photo series onto one reference face (a least-squares similarity per photo).
//!
//! Both run the model on images in memory through [`faces::FaceModel`], which prepares crops
//! exactly as [`crate::predict`] does for files.

pub mod align;
pub mod draw;
pub mod faces;
pub mod frames;
pub mod one_euro;
pub mod similarity;
pub mod tracker;
