//! Points to target heatmaps and heatmaps back to points.
