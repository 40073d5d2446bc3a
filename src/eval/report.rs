//! What `hmreg eval` prints and writes: one JSON document, a text table, and an output folder
//! with pictures and per-sample errors.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::evaluate::{EvalOutcome, SampleRecord};
use super::published::{self, Published};
use super::show;
use crate::metrics::MetricReport;
use crate::{Error, Result};

/// Samples listed in the summary's `worst` table.
pub const WORST_LISTED: usize = 10;
/// Side of one picture in the result grids.
pub const GRID_CELL: u32 = 256;

#[derive(Clone, Debug, serde::Serialize)]
pub struct PointRow {
    /// Position in the model's output.
    pub point: usize,
    /// Index in the landmark files (the data selection), when known.
    pub file_index: Option<usize>,
    /// Mean normalised error of this point (fraction, same normaliser as NME).
    pub nme: f32,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct WorstRow {
    pub id: String,
    pub nme: Option<f32>,
}

/// The JSON document of `hmreg eval --json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalSummary {
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
    pub data: PathBuf,
    pub split: String,
    pub decoder: String,
    pub flip_test: bool,
    pub images: usize,
    pub metrics: MetricReport,
    /// Mean prediction minus label, input pixels (x, y); null without labelled points.
    pub mean_error_px: [Option<f64>; 2],
    pub per_point: Vec<PointRow>,
    pub worst: Vec<WorstRow>,
    /// Published figures for the same layout and normaliser (other data and training: a
    /// landmark, not a like-for-like comparison).
    pub published: Vec<Published>,
    /// Files written under `--out`.
    pub written: Vec<PathBuf>,
}

pub struct SummaryContext<'a> {
    pub checkpoint: &'a Path,
    pub data: &'a Path,
    pub split: &'a str,
    pub decoder: String,
    pub flip_test: bool,
    /// File indices of the model's points (`None`: unknown or all points in file order).
    pub file_indices: Option<Vec<usize>>,
    /// Points per landmark file when the model predicts all of them in file order.
    pub whole_layout: Option<usize>,
}

pub fn summarize(out: &EvalOutcome, ctx: &SummaryContext) -> EvalSummary {
    let per_point = out
        .report
        .per_point
        .iter()
        .enumerate()
        .map(|(i, &nme)| PointRow {
            point: i,
            file_index: ctx.file_indices.as_ref().and_then(|v| v.get(i).copied()),
            nme,
        })
        .collect();
    let mut ranked: Vec<&super::SampleRecord> = out.samples.iter().collect();
    ranked.sort_by(|a, b| {
        let key = |s: &super::SampleRecord| s.nme.unwrap_or(f32::INFINITY);
        key(b).total_cmp(&key(a))
    });
    let worst = ranked
        .into_iter()
        .take(WORST_LISTED)
        .map(|s| WorstRow {
            id: s.id.clone(),
            nme: s.nme,
        })
        .collect();
    EvalSummary {
        checkpoint: ctx.checkpoint.to_path_buf(),
        data: ctx.data.to_path_buf(),
        split: ctx.split.to_string(),
        decoder: ctx.decoder.clone(),
        flip_test: ctx.flip_test,
        images: out.report.count,
        metrics: out.report.clone(),
        mean_error_px: out.mean_error.map(|v| v.is_finite().then_some(v)),
        per_point,
        worst,
        published: ctx
            .whole_layout
            .map(|n| published::comparable(n, true, out.report.norm))
            .unwrap_or_default(),
        written: Vec::new(),
    }
}

fn pct(v: f32) -> String {
    if v.is_finite() {
        format!("{:.2} %", 100.0 * v)
    } else {
        "n/a".to_string()
    }
}

/// The human-readable report.
pub fn to_text(s: &EvalSummary) -> String {
    let m = &s.metrics;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} images of `{}` in {}",
        s.images,
        s.split,
        s.data.display()
    );
    let _ = writeln!(t, "checkpoint {}", s.checkpoint.display());
    let _ = writeln!(
        t,
        "decoder {}, flip test {}",
        s.decoder,
        if s.flip_test { "on" } else { "off" }
    );
    let thr = 100.0 * m.failure_threshold;
    let _ = writeln!(t, "  NMAE (vs float ground truth)   {:.5}", m.nmae);
    match m.nmae_vs_target {
        Some(v) => {
            let _ = writeln!(
                t,
                "  NMAE (vs decoded targets)      {v:.5}   (the write-up's variant)"
            );
        }
        None => {
            let _ = writeln!(t, "  NMAE (vs decoded targets)      n/a");
        }
    }
    let _ = writeln!(
        t,
        "  NME                            {}   (normaliser {:?})",
        pct(m.nme),
        m.norm
    );
    let _ = writeln!(t, "  FR@{thr:.0}%                         {}", pct(m.fr));
    let _ = writeln!(t, "  AUC@{thr:.0}%                        {:.4}", m.auc);
    if let [Some(x), Some(y)] = s.mean_error_px {
        let _ = writeln!(
            t,
            "  mean error x, y (input px)     {x:+.3}, {y:+.3}   (prediction minus label; \
             metrics.point_offset less this cancels it)"
        );
    }
    if m.points_unscored > 0 {
        let _ = writeln!(
            t,
            "  ({} of {} annotated points fell outside the model's input crop and were not scored; \
             pipeline.resize = \"box\" crops around each face so that none are lost)",
            m.points_unscored,
            m.points_unscored + m.points_counted
        );
    }
    if m.nme_skipped > 0 {
        let _ = writeln!(
            t,
            "  ({} images without a usable normaliser left out of NME, FR and AUC)",
            m.nme_skipped
        );
    }
    if !s.published.is_empty() {
        let _ = writeln!(
            t,
            "published figures for {} (other data, training and boxes: where this model stands, \
             not a like-for-like comparison):",
            s.published[0].layout
        );
        for p in &s.published {
            let _ = writeln!(
                t,
                "  {:>5.2} %  {}, {}: {} [{}]",
                p.nme_percent, p.model, p.benchmark, p.protocol, p.source
            );
        }
    }
    let _ = writeln!(t, "per point:");
    let _ = writeln!(t, "  point  file index  NME");
    for r in &s.per_point {
        let idx = r.file_index.map_or("-".to_string(), |i| i.to_string());
        let _ = writeln!(t, "  {:>5}  {:>10}  {}", r.point, idx, pct(r.nme));
    }
    if !s.worst.is_empty() {
        let _ = writeln!(t, "worst images:");
        for w in &s.worst {
            let _ = writeln!(t, "  {:<30} {}", w.id, w.nme.map_or("n/a".to_string(), pct));
        }
    }
    for f in &s.written {
        let _ = writeln!(t, "wrote {}", f.display());
    }
    t
}

/// Writes `results.png` (the first samples), `worst.png` (the worst samples, worst first),
/// `metrics.json` (the summary) and `samples.csv` (every sample's NME and predicted points, input
/// pixels) into `dir`. Returns the files written (also recorded in `summary.written`).
pub fn write_outputs(dir: &Path, out: &EvalOutcome, summary: &mut EvalSummary) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, format!("cannot create: {e}")))?;
    let mut written = Vec::new();
    if !out.first.is_empty() {
        let f = dir.join("results.png");
        crate::viz::save_png(&show::results_grid(&out.first, GRID_CELL), &f)?;
        written.push(f);
    }
    if !out.worst.is_empty() {
        let f = dir.join("worst.png");
        crate::viz::save_png(&show::results_grid(&out.worst, GRID_CELL), &f)?;
        written.push(f);
    }
    let csv = dir.join("samples.csv");
    crate::atomic::write_atomic(&csv, &samples_csv(&out.samples)?)?;
    written.push(csv);
    let json = dir.join("metrics.json");
    written.push(json.clone());
    summary.written = written;
    let doc = serde_json::to_string_pretty(summary)?;
    crate::atomic::write_atomic(&json, doc.as_bytes())
}

/// `samples.csv`: one row per sample, its NME (empty when unknown) and every predicted point
/// with its confidence.
fn samples_csv(samples: &[SampleRecord]) -> Result<Vec<u8>> {
    let csv_error = |e: csv::Error| Error::Msg(format!("samples.csv: {e}"));
    let mut w = csv::Writer::from_writer(Vec::new());
    let points = samples.first().map_or(0, |s| s.pred.len());
    let mut header = vec!["id".to_string(), "nme".to_string()];
    for p in 0..points {
        header.extend([format!("x{p}"), format!("y{p}"), format!("conf{p}")]);
    }
    w.write_record(&header).map_err(csv_error)?;
    for s in samples {
        let mut row = vec![s.id.clone(), s.nme.map_or(String::new(), |v| v.to_string())];
        for (p, c) in s.pred.iter().zip(&s.confidence) {
            row.extend([p[0].to_string(), p[1].to_string(), c.to_string()]);
        }
        w.write_record(&row).map_err(csv_error)?;
    }
    w.into_inner()
        .map_err(|e| Error::Msg(format!("samples.csv: {e}")))
}
