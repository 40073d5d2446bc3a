//! What a dataset is made of and how it is read: one annotated image ([`sample`]), the LaPa
//! layout ([`dataset`]), COCO keypoint files ([`coco`]), landmark files ([`landmarks`]), images
//! ([`image_io`]) and which of a file's points a model learns ([`points`]).

pub mod coco;
pub mod dataset;
pub mod image_io;
pub mod landmarks;
pub mod points;
pub mod sample;
