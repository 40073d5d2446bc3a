//! Loading pretrained weights by name (filled in below).
use std::path::Path;

use super::params::{LoadReport, ParamStore};
use crate::Result;

pub fn load_pretrained(store: &ParamStore, path: &Path) -> Result<LoadReport> {
    store.load_safetensors(path)
}
