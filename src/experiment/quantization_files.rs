//! The quantization part's files: `quantization.json`, `quantization.md` and the plot
//! `quantization.png`.

use std::path::Path;

use crate::atomic::write_atomic;
use crate::experiment::rounding::{self, QuantizationReport};
use crate::viz::plot::{LinePlot, Series};
use crate::Result;

pub const JSON_FILE: &str = "quantization.json";
pub const MD_FILE: &str = "quantization.md";
pub const PNG_FILE: &str = "quantization.png";

/// The report as the pretty JSON that `--json` prints and `quantization.json` holds.
pub fn json(r: &QuantizationReport) -> Result<String> {
    Ok(serde_json::to_string_pretty(r)?)
}

/// Writes the three files into `out` (created by the atomic writes if needed).
pub fn write_all(r: &QuantizationReport, out: &Path) -> Result<()> {
    write_atomic(&out.join(JSON_FILE), json(r)?.as_bytes())?;
    write_atomic(
        &out.join(MD_FILE),
        rounding::quantization_markdown(r).as_bytes(),
    )?;
    plot(r).save_png(&out.join(PNG_FILE))
}

/// NME against heatmap size, one series per pair (log-log: errors scale like 1/size).
fn plot(report: &QuantizationReport) -> LinePlot {
    let k = report.config.k;
    let series = rounding::Pair::ALL
        .iter()
        .map(|&pair| {
            let points = report
                .rows
                .iter()
                .filter(|q| q.pair == pair)
                .map(|q| (q.size as f64, q.nme as f64 * 100.0))
                .collect();
            Series::new(pair.label(k), points)
        })
        .collect();
    LinePlot {
        title: format!(
            "Target quantization, {} images, input {}x{}",
            report.images, report.config.input, report.config.input
        ),
        x_label: "heatmap size (px)".into(),
        y_label: "NME vs float ground truth (%)".into(),
        log_x: true,
        log_y: true,
        series,
        x_ticks: report.config.sizes.iter().map(|&s| s as f64).collect(),
    }
}
