//! Running a reference script of benches/ (PyTorch, fastai) and reading its result line.

use std::ffi::OsStr;
use std::process::Command;

/// Runs `python3 benches/<script> <args>` and returns the `images_per_second` of the last JSON
/// line it prints (the scripts' `--json` output).
pub fn images_per_second<S: AsRef<OsStr>>(script: &str, args: &[S]) -> Result<f64, String> {
    let path = format!("{}/benches/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .arg("--json")
        .output()
        .map_err(|e| format!("python3 {script}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{script} failed: {}", err.trim_end()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .ok_or_else(|| format!("{script}: no result line"))?;
    let row: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    row["images_per_second"]
        .as_f64()
        .ok_or_else(|| format!("{script}: no images_per_second in {line}"))
}
