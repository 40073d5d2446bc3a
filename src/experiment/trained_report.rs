//! The trained rounding grid's outputs: `trained.json` (settings, every cell, the per-method
//! summary and the floors), `trained.csv` (one row per cell), `trained.md` (the tables) and
//! `trained.png` (NME against heatmap size).

use std::path::Path;

use super::trained::{CellResult, Floor, GridConfig, Method};
use crate::atomic::write_atomic;
use crate::data::sources::dataset::list_split;
use crate::run::TrainConfig;
use crate::viz::plot::{LinePlot, Series};
use crate::{Error, Result};

pub const JSON_FILE: &str = "trained.json";
pub const CSV_FILE: &str = "trained.csv";
pub const MD_FILE: &str = "trained.md";
pub const PNG_FILE: &str = "trained.png";

/// One method at one size, over its seeds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub method: Method,
    pub size: usize,
    pub seeds: usize,
    /// NME (fraction): mean, lowest and highest over the seeds.
    pub nme_mean: f64,
    pub nme_min: f64,
    pub nme_max: f64,
    pub nmae_mean: f64,
    pub nmae_vs_target_mean: Option<f64>,
    /// The method's untrained quantization floor (NME, NMAE) at this size.
    pub floor_nme: Option<f64>,
    pub floor_nmae: Option<f64>,
}

/// Everything the grid measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainedReport {
    pub grid: GridConfig,
    /// The base config's essentials, for titles and readers of the JSON.
    pub arch: String,
    pub width: f32,
    pub input_size: usize,
    pub epochs: usize,
    pub data: String,
    pub val_images: Option<usize>,
    pub descriptions: Vec<(Method, String)>,
    pub cells: Vec<CellResult>,
    pub summary: Vec<Summary>,
    pub floors: Vec<Floor>,
}

impl TrainedReport {
    /// The report of a grid run from `base`: its cells' results, the per-method summary, the
    /// floors, and the base config's essentials (the validation images are counted on disk;
    /// `None` if the split cannot be listed).
    pub fn new(
        base: &TrainConfig,
        grid: GridConfig,
        cells: Vec<CellResult>,
        floors: Vec<Floor>,
    ) -> Self {
        let summary = summarize(&grid, &cells, &floors);
        TrainedReport {
            arch: base.model.arch.to_string(),
            width: base.model.width,
            input_size: base.pipeline.input_size,
            epochs: base.epochs,
            data: base.data.root.display().to_string(),
            val_images: list_split(&base.data.root, &base.data.val_split)
                .ok()
                .map(|l| l.landmarks.len()),
            descriptions: grid
                .methods
                .iter()
                .map(|m| (*m, m.describe(&grid.params)))
                .collect(),
            grid,
            cells,
            summary,
            floors,
        }
    }
}

/// Per-(method, size) statistics over the seeds present, in the grid's order.
pub fn summarize(grid: &GridConfig, cells: &[CellResult], floors: &[Floor]) -> Vec<Summary> {
    let mut out = Vec::new();
    for &size in &grid.sizes {
        for &method in &grid.methods {
            let mine: Vec<&CellResult> = cells
                .iter()
                .filter(|c| c.method == method && c.size == size)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let n = mine.len() as f64;
            let mean = |f: &dyn Fn(&CellResult) -> f64| mine.iter().map(|c| f(c)).sum::<f64>() / n;
            let vs: Vec<f64> = mine.iter().filter_map(|c| c.nmae_vs_target).collect();
            let floor = floors.iter().find(|f| f.method == method && f.size == size);
            out.push(Summary {
                method,
                size,
                seeds: mine.len(),
                nme_mean: mean(&|c| c.nme),
                nme_min: mine.iter().map(|c| c.nme).fold(f64::INFINITY, f64::min),
                nme_max: mine.iter().map(|c| c.nme).fold(f64::NEG_INFINITY, f64::max),
                nmae_mean: mean(&|c| c.nmae),
                nmae_vs_target_mean: (vs.len() == mine.len()).then(|| vs.iter().sum::<f64>() / n),
                floor_nme: floor.map(|f| f.nme),
                floor_nmae: floor.map(|f| f.nmae),
            });
        }
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(pct).unwrap_or_else(|| "-".into())
}

/// The markdown tables: NME per method and size (mean and range over seeds, floor), then NME
/// beside the write-up's NMAE (against the float points and against the decoded targets), then
/// every cell.
pub fn markdown(r: &TrainedReport) -> String {
    let mut s = format!(
        "# Randomized rounding, trained: {} (width {}) on {}x{} inputs, {} epochs per cell, \
         {} validation images of {}\n\n",
        r.arch,
        r.width,
        r.input_size,
        r.input_size,
        r.epochs,
        r.val_images.map_or("?".into(), |n| n.to_string()),
        r.data
    );
    for (m, d) in &r.descriptions {
        s.push_str(&format!("- `{m}`: {d}\n"));
    }
    s.push_str(
        "\n## NME (%) against the float ground truth: mean over seeds [lowest, highest] \
         (untrained quantization floor)\n\n",
    );
    s.push_str("| method |");
    for size in &r.grid.sizes {
        s.push_str(&format!(" {size}x{size} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(r.grid.sizes.len()));
    s.push('\n');
    for &m in &r.grid.methods {
        s.push_str(&format!("| {m} |"));
        for &size in &r.grid.sizes {
            match r.summary.iter().find(|x| x.method == m && x.size == size) {
                Some(x) => s.push_str(&format!(
                    " {} [{}, {}] ({}) |",
                    pct(x.nme_mean),
                    pct(x.nme_min),
                    pct(x.nme_max),
                    opt_pct(x.floor_nme)
                )),
                None => s.push_str(" not run |"),
            }
        }
        s.push('\n');
    }
    s.push_str(
        "\n## NME beside the write-up's NMAE (%, means over seeds)\n\n\
         NMAE vs targets compares predictions with the argmax-decoded target maps, as the \
         write-up's notebook does: for quantized targets it hides the quantization error.\n\n\
         | method | size | NME | NMAE | NMAE vs targets | floor NME | floor NMAE |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for x in &r.summary {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            x.method,
            x.size,
            pct(x.nme_mean),
            pct(x.nmae_mean),
            opt_pct(x.nmae_vs_target_mean),
            opt_pct(x.floor_nme),
            opt_pct(x.floor_nmae)
        ));
    }
    let decoders = decoder_names(r);
    if !decoders.is_empty() {
        s.push_str(
            "\n## The same networks read out by other decoders (NME %, means over seeds)\n\n\
             Each cell's last checkpoint decoded with every decoder, whatever it was trained \
             for: the gap between columns is the decoder's share, the gap between rows at equal \
             decoder the targets'.\n\n| method | size | own |",
        );
        for d in &decoders {
            s.push_str(&format!(" {d} |"));
        }
        s.push_str("\n|---|---|---|");
        s.push_str(&"---|".repeat(decoders.len()));
        s.push('\n');
        for x in &r.summary {
            s.push_str(&format!(
                "| {} | {} | {} |",
                x.method,
                x.size,
                pct(x.nme_mean)
            ));
            for d in &decoders {
                s.push_str(&format!(
                    " {} |",
                    opt_pct(mean_by_decoder(r, x.method, x.size, d))
                ));
            }
            s.push('\n');
        }
    }
    s.push_str(
        "\n## Every cell\n\n| method | size | stride | seed | epochs | NME | NMAE | NMAE vs \
         targets | FR@10% | AUC@10% | seconds |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in &r.cells {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.0} |\n",
            c.method,
            c.size,
            c.stride,
            c.seed,
            c.epochs,
            pct(c.nme),
            pct(c.nmae),
            opt_pct(c.nmae_vs_target),
            pct(c.fr),
            c.auc,
            c.seconds
        ));
    }
    s
}

/// The cross-decoders' names, in the order of the first cell.
fn decoder_names(r: &TrainedReport) -> Vec<String> {
    r.cells
        .first()
        .map(|c| c.nme_by_decoder.keys().cloned().collect())
        .unwrap_or_default()
}

/// Mean NME over the seeds of (method, size) with decoder `d`.
fn mean_by_decoder(r: &TrainedReport, m: Method, size: usize, d: &str) -> Option<f64> {
    let v: Vec<f64> = r
        .cells
        .iter()
        .filter(|c| c.method == m && c.size == size)
        .filter_map(|c| c.nme_by_decoder.get(d).copied())
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// One row per cell.
pub fn csv(r: &TrainedReport) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Msg(format!("trained.csv: {e}"));
    let decoders = decoder_names(r);
    let mut header: Vec<String> = [
        "method",
        "size",
        "stride",
        "seed",
        "epochs",
        "nme",
        "nmae",
        "nmae_vs_target",
        "fr",
        "auc",
        "seconds",
        "floor_nme",
        "floor_nmae",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    header.extend(decoders.iter().map(|d| format!("nme[{d}]")));
    header.push("run_dir".into());
    w.write_record(&header).map_err(err)?;
    for c in &r.cells {
        let floor = r
            .floors
            .iter()
            .find(|f| f.method == c.method && f.size == c.size);
        let mut row = vec![
            c.method.to_string(),
            c.size.to_string(),
            c.stride.to_string(),
            c.seed.to_string(),
            c.epochs.to_string(),
            c.nme.to_string(),
            c.nmae.to_string(),
            c.nmae_vs_target.map(|v| v.to_string()).unwrap_or_default(),
            c.fr.to_string(),
            c.auc.to_string(),
            format!("{:.1}", c.seconds),
            floor.map(|f| f.nme.to_string()).unwrap_or_default(),
            floor.map(|f| f.nmae.to_string()).unwrap_or_default(),
        ];
        row.extend(decoders.iter().map(|d| {
            c.nme_by_decoder
                .get(d)
                .map(|v| v.to_string())
                .unwrap_or_default()
        }));
        row.push(c.run_dir.display().to_string());
        w.write_record(&row).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Msg(format!("trained.csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Msg(format!("trained.csv: {e}")))
}

/// NME (%) against heatmap size (log2 axis), one line per method with min-max bars over the
/// seeds, and each method's floor dashed in its colour.
pub fn plot(r: &TrainedReport) -> LinePlot {
    let mut series = Vec::new();
    for (i, &m) in r.grid.methods.iter().enumerate() {
        let mine: Vec<_> = r.summary.iter().filter(|x| x.method == m).collect();
        let mut s = Series::new(
            m.name(),
            mine.iter()
                .map(|x| (x.size as f64, x.nme_mean * 100.0))
                .collect(),
        );
        s.errors = mine
            .iter()
            .map(|x| (x.nme_min * 100.0, x.nme_max * 100.0))
            .collect();
        s.color = Some(i);
        series.push(s);
        let floor: Vec<(f64, f64)> = r
            .floors
            .iter()
            .filter(|f| f.method == m)
            .map(|f| (f.size as f64, f.nme * 100.0))
            .collect();
        series.push(Series {
            points: floor,
            dashed: true,
            color: Some(i),
            ..Series::default()
        });
    }
    LinePlot {
        title: "Trained NME by heatmap size (dashed: untrained floor)".into(),
        x_label: format!("heatmap size (px) for a {0}x{0} input", r.input_size),
        y_label: "NME (%)".into(),
        log_x: true,
        log_y: true,
        series,
        x_ticks: r.grid.sizes.iter().map(|&s| s as f64).collect(),
    }
}

/// Writes the four files into `out`.
pub fn write_all(r: &TrainedReport, out: &Path) -> Result<()> {
    let json = serde_json::to_string_pretty(r)?;
    write_atomic(&out.join(JSON_FILE), json.as_bytes())?;
    write_atomic(&out.join(CSV_FILE), csv(r)?.as_bytes())?;
    write_atomic(&out.join(MD_FILE), markdown(r).as_bytes())?;
    plot(r).save_png(&out.join(PNG_FILE))
}
