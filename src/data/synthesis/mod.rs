//! `hmreg data synth`: a LaPa-layout dataset of synthetic faces ([`generate`]), each face drawn
//! ([`face`]) by a small anti-aliased rasteriser ([`canvas`]).

pub mod canvas;
pub mod face;
pub mod generate;
