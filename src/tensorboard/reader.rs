//! Reading event files back: what a resumed run continues from, and what tools and tests check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::Event;
use super::record::read_records;
use crate::{Error, Result};

/// Whether a file name is an event file (TensorBoard reads names containing `tfevents`).
pub fn is_event_file(path: &Path) -> bool {
    path.is_file()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("tfevents"))
}

/// The event files directly in `dir`, in name order (their names start with the time they were
/// opened, so this is the order they were written in); none when `dir` does not exist.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, e.to_string()))?;
    let mut files = Vec::new();
    for e in entries {
        let p = e.map_err(|e| Error::file(dir, e.to_string()))?.path();
        if is_event_file(&p) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Every event of one file, CRCs checked (a torn last record is left out).
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e.to_string()))?;
    let records = read_records(&bytes).map_err(|msg| Error::file(path, msg))?;
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            Event::decode(r).map_err(|e| Error::file(path, format!("record {}: {e}", i + 1)))
        })
        .collect()
}

/// The highest step logged under every tag by the event files of `dir`.
pub fn last_steps(dir: &Path) -> Result<BTreeMap<String, i64>> {
    let mut last = BTreeMap::new();
    for file in event_files(dir)? {
        for ev in read_events(&file)? {
            for v in ev.summary.iter().flat_map(|s| &s.value) {
                let e = last.entry(v.tag.clone()).or_insert(ev.step);
                *e = (*e).max(ev.step);
            }
        }
    }
    Ok(last)
}
