//! `hmreg runs`: the runs under `runs/` (or the folders given) as one table, or as JSON: name,
//! architecture, data, epochs done, the best and last value of every validation figure (a cell
//! `best/last`), wall time, and the settings in which the runs differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::run::history::EpochFigure;
use crate::run::listing::{BestValue, Listing, RunInfo};
use crate::{stdout, Error, Result};

/// Compare runs.
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Run directories, or folders holding runs at any depth (a rounding grid's folder).
    #[arg(value_name = "DIR", default_value = "runs")]
    pub dirs: Vec<PathBuf>,
    /// Order by the best value of this figure, best first (AUC: highest; every other figure:
    /// lowest); runs that never measured it last. Default: by name.
    #[arg(long, value_name = "FIGURE", value_parser = super::args::figure_parser())]
    pub sort: Option<EpochFigure>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: RunsArgs) -> Result<()> {
    let mut listing = Listing::read(&a.dirs)?;
    match a.sort {
        Some(f) => listing.sort_by_best(f),
        None => listing.sort_by_name(),
    }
    // Problems go to stderr before the table, each on its own line; a broken run also makes the
    // exit status 1 (below), a folder that merely holds no run does not.
    for dir in &listing.not_runs {
        eprintln!(
            "hmreg runs: warning: {}: not a run (no config.toml) and no run below it; skipped",
            dir.display()
        );
    }
    for e in &listing.unreadable {
        eprintln!("hmreg runs: warning: {e}; run skipped");
    }
    let text = if a.json {
        json(&listing)?
    } else {
        table(&listing, a.sort)
    };
    stdout::text(&text)?;
    match listing.unreadable.len() {
        0 => Ok(()),
        n => Err(Error::Problems(format!(
            "{n} run{} could not be read (see the warnings above)",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

/// The figures a table shows: the sort figure first when it is a loss (so the order can be
/// read off), then every validation figure some run measured.
fn shown_figures(listing: &Listing, sort: Option<EpochFigure>) -> Vec<EpochFigure> {
    let mut figures: Vec<EpochFigure> = sort
        .filter(|f| f.validation().is_none())
        .into_iter()
        .collect();
    figures.extend(listing.figures().into_iter().map(EpochFigure::from));
    figures
}

/// Settings the table's own columns show (arch, data, epochs): left out of its settings columns
/// when they differ, so that no value stands twice (`--json` lists every differing key).
const IN_FIXED_COLUMNS: [&str; 4] = ["model.arch", "model.width", "data.root", "epochs"];

fn table(listing: &Listing, sort: Option<EpochFigure>) -> String {
    let figures = shown_figures(listing, sort);
    let differing: Vec<String> = listing
        .differing_keys()
        .into_iter()
        .filter(|k| !IN_FIXED_COLUMNS.contains(&k.as_str()))
        .collect();
    let mut header: Vec<String> = ["name", "arch", "data", "epochs"]
        .map(String::from)
        .to_vec();
    // One column per figure holding best/last keeps five figures within a wide terminal.
    header.extend(figures.iter().map(|f| format!("{f} best/last")));
    header.push("wall".into());
    header.extend(differing.iter().cloned());
    let rows: Vec<Vec<String>> = listing
        .runs
        .iter()
        .map(|r| {
            let mut row = vec![
                r.name.clone(),
                arch(r),
                data(r),
                format!("{}/{}", r.epochs_done(), r.total_epochs()),
            ];
            row.extend(figures.iter().map(|&f| {
                format!(
                    "{}/{}",
                    number(r.best(f).map(|b| b.value)),
                    number(r.last(f))
                )
            }));
            row.push(if r.epochs_done() == 0 {
                "-".into()
            } else {
                duration(r.seconds())
            });
            row.extend(differing.iter().map(|k| setting(r, k)));
            row
        })
        .collect();
    // Text columns (name, arch, data, settings that are strings) read best left-aligned, the
    // counts and figures right-aligned.
    let numeric: Vec<bool> = (0..header.len())
        .map(|c| c >= 3 && rows.iter().all(|row| is_numeric(&row[c])))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|row| row[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if numeric[c] {
                    format!("{cell:>w$}", w = widths[c])
                } else {
                    format!("{cell:<w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A count, figure, duration or number: what starts with a digit (or a minus and a digit).
fn is_numeric(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    cell == "-" || digits.starts_with(|c: char| c.is_ascii_digit())
}

fn arch(r: &RunInfo) -> String {
    let m = &r.config.model;
    if m.width == 1.0 {
        m.arch.to_string()
    } else {
        format!("{} x{}", m.arch, m.width)
    }
}

/// The data root, relative to the current directory when it lies below it, with the count of
/// extra training sources mixed in.
fn data(r: &RunInfo) -> String {
    let root = &r.config.data.root;
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| root.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| root.clone());
    match r.config.data.extra.len() {
        0 => shown.display().to_string(),
        n => format!("{} +{n}", shown.display()),
    }
}

fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "-".into(),
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A setting as a table cell: strings without their quotes, a key the run lacks as `-`.
fn setting(r: &RunInfo, key: &str) -> String {
    match r.settings.get(key) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

/// A run in `--json`'s output.
#[derive(serde::Serialize)]
struct RunJson<'a> {
    name: &'a str,
    dir: &'a Path,
    arch: String,
    width: f32,
    data: &'a Path,
    epochs_done: usize,
    total_epochs: usize,
    /// Every epoch figure's best value and the epoch that reached it.
    best: BTreeMap<&'static str, BestValue>,
    last: BTreeMap<&'static str, f64>,
    seconds: f64,
    /// The values of the differing settings (`null`: the run's config lacks the key).
    settings: BTreeMap<&'a str, Option<&'a toml::Value>>,
}

#[derive(serde::Serialize)]
struct ListingJson<'a> {
    runs: Vec<RunJson<'a>>,
    differing: &'a [String],
    not_runs: &'a [PathBuf],
    unreadable: Vec<String>,
}

fn json(listing: &Listing) -> Result<String> {
    let differing = listing.differing_keys();
    let runs = listing
        .runs
        .iter()
        .map(|r| RunJson {
            name: &r.name,
            dir: &r.dir,
            arch: r.config.model.arch.to_string(),
            width: r.config.model.width,
            data: &r.config.data.root,
            epochs_done: r.epochs_done(),
            total_epochs: r.total_epochs(),
            best: EpochFigure::all()
                .filter_map(|f| r.best(f).map(|b| (f.name(), b)))
                .collect(),
            // JSON has no NaN: a non-finite last value is left out like a missing one.
            last: EpochFigure::all()
                .filter_map(|f| r.last(f).filter(|v| v.is_finite()).map(|v| (f.name(), v)))
                .collect(),
            seconds: r.seconds(),
            settings: differing
                .iter()
                .map(|k| (k.as_str(), r.settings.get(k)))
                .collect(),
        })
        .collect();
    let doc = ListingJson {
        runs,
        differing: &differing,
        not_runs: &listing.not_runs,
        unreadable: listing.unreadable.iter().map(|e| e.to_string()).collect(),
    };
    let mut text =
        serde_json::to_string_pretty(&doc).map_err(|e| Error::Msg(format!("JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sort_choices_are_the_figures_names() {
        use clap::builder::TypedValueParser;
        let listed: Vec<String> = super::super::args::figure_parser()
            .possible_values()
            .unwrap()
            .map(|v| v.get_name().to_string())
            .collect();
        assert_eq!(listed, EpochFigure::names());
    }

    #[test]
    fn durations_and_numbers_read_at_a_glance() {
        assert_eq!(duration(42.4), "42s");
        assert_eq!(duration(95.0), "1m35s");
        assert_eq!(duration(3725.0), "1h02m");
        assert_eq!(number(Some(0.014_25)), "0.0143");
        assert_eq!(number(Some(f64::NAN)), "-");
        assert!(is_numeric("1m35s") && is_numeric("20/20") && is_numeric("1e-2"));
        assert!(is_numeric("-0.5") && is_numeric("-"));
        assert!(!is_numeric("mse") && !is_numeric("[8, 30]") && !is_numeric("-x"));
    }
}
