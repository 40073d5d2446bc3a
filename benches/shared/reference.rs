//! Running a reference script of benches/ (PyTorch, fastai) and reading its result line.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// benches/<script> of the source tree this bench was built from, else of the current folder:
/// a bench executable carried to another machine (benches/gpu-check.sh) runs from a checkout
/// at another path.
pub fn script_path(script: &str) -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(script);
    if built.is_file() {
        built
    } else {
        PathBuf::from("benches").join(script)
    }
}

/// Whether `python3 -c "import <module>"` works (a reference's packages are installed).
pub fn python_imports(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|p| p.status.success())
}

/// Runs `python3 benches/<script> <args> --json` and parses the last JSON line it prints.
pub fn run_script<T: serde::de::DeserializeOwned, S: AsRef<OsStr>>(
    script: &str,
    args: &[S],
) -> Result<T, String> {
    let path = script_path(script);
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
    last_json(&String::from_utf8_lossy(&out.stdout)).map_err(|e| format!("{script}: {e}"))
}

/// Runs `python3 benches/<script> <args>` and returns the `images_per_second` of the last JSON
/// line it prints (the scripts' `--json` output).
pub fn images_per_second<S: AsRef<OsStr>>(script: &str, args: &[S]) -> Result<f64, String> {
    let row: serde_json::Value = run_script(script, args)?;
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
