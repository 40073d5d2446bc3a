//! PNG output: curves, grids, heatmaps, annotated images. No system fonts and no plotting crate:
//! shapes are rasterised by `imageproc` (see [`draw`] for what it leaves to us), text comes from
//! the built-in bitmap font in [`font`].

pub mod draw;
pub mod font;
pub mod grid;
pub mod heatmap;
pub mod plot;
pub mod png;

pub use draw::{draw_cross, draw_line, draw_points};
pub use font::{draw_text, text_width};
pub use grid::Grid;
pub use heatmap::{colorize, overlay};
pub use plot::{LinePlot, Series};
pub use png::save_png;
