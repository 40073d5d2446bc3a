//! `curves.png`: the loss curves (left) and the validation metric with the mean-shape baseline
//! (right), side by side, redrawn after every epoch.

use std::path::Path;

use image::{imageops, Rgb, RgbImage};

use crate::run::history::{EpochFigure, EpochRecord};
use crate::viz::plot::{LinePlot, Series};
use crate::Result;

pub const CURVES_PNG: &str = "curves.png";

/// Draws the curves of `records`. `baseline` is the mean-shape figure of `metric`, drawn as a
/// flat line for comparison.
pub fn save_curves(
    path: &Path,
    records: &[EpochRecord],
    metric: EpochFigure,
    baseline: Option<f64>,
) -> Result<()> {
    let pts = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect()
    };
    let losses = LinePlot {
        title: "Loss".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        log_x: false,
        log_y: true,
        series: vec![
            Series::new("train", pts(&|r| Some(r.train_loss))),
            Series::new("valid", pts(&|r| Some(r.valid_loss))),
        ],
        ..LinePlot::default()
    };
    let mut series = vec![Series::new(metric.name(), pts(&|r| r.value(metric)))];
    if let (Some(b), Some(first), Some(last)) = (baseline, records.first(), records.last()) {
        series.push(Series::new(
            "mean-shape baseline",
            vec![(first.epoch as f64, b), (last.epoch as f64, b)],
        ));
    }
    let metric_plot = LinePlot {
        title: format!("Validation {metric}"),
        x_label: "epoch".into(),
        y_label: metric.name().into(),
        log_x: false,
        log_y: true,
        series,
        ..LinePlot::default()
    };
    let (w, h) = (640, 420);
    let mut img = RgbImage::from_pixel(2 * w, h, Rgb([255, 255, 255]));
    imageops::replace(&mut img, &losses.render(w, h), 0, 0);
    imageops::replace(&mut img, &metric_plot.render(w, h), w as i64, 0);
    crate::viz::png::save_png(&img, path)
}
