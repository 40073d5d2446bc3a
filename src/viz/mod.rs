//! PNG output: curves, grids, heatmaps, annotated images.
