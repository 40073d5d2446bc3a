//! From a source image and its points to the network input: the item's geometry in one warp
//! ([`geometry`], [`warp`]), fastai-style augmentation ([`augment`], [`pixel_augment`]), flips
//! that swap left and right points ([`flip`]), channel normalisation ([`normalize`]).

pub mod augment;
pub mod flip;
pub mod geometry;
pub mod normalize;
pub mod pixel_augment;
pub mod warp;
