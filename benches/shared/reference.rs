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
    let row: serde_json::Value =
        last_json(&String::from_utf8_lossy(&out.stdout)).map_err(|e| format!("{script}: {e}"))?;
    row["images_per_second"]
        .as_f64()
        .ok_or_else(|| format!("{script}: no images_per_second in {row}"))
}

/// The last line of `stdout` that is a JSON object, parsed (the benches' and scripts' result
/// lines).
pub fn last_json<T: serde::de::DeserializeOwned>(stdout: &str) -> Result<T, String> {
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .ok_or("no result line")?;
    serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))
}
