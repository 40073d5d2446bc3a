//! Finds the face detector model that the `rustface` crate ships inside its package
//! (`model/seeta_fd_frontal_v1.0.bin`, SeetaFace, BSD-2) and copies it into OUT_DIR, where
//! `src/detect.rs` embeds it: the binary detects faces with no download and no copy of
//! third-party files in this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

const MODEL: &str = "model/seeta_fd_frontal_v1.0.bin";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let model = rustface_dir().map(|d| d.join(MODEL));
    match model {
        Some(m) if m.is_file() => {
            std::fs::copy(&m, out.join("seeta_fd_frontal_v1.0.bin"))
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", m.display()));
            // The package's group photo (the 1927 Solvay conference) is the speed bench's photo
            // with faces; nothing embeds it.
            let photo = m
                .parent()
                .and_then(Path::parent)
                .map(|d| d.join("test.png"));
            if let Some(photo) = photo.filter(|p| p.is_file()) {
                let _ = std::fs::copy(photo, out.join("group_photo.png"));
            }
        }
        other => panic!(
            "the rustface package's {MODEL} was not found (looked at {other:?}); \
             `cargo fetch` downloads it"
        ),
    }
}

/// The source folder of the rustface package this build compiles: in cargo's registry cache
/// (the version from Cargo.lock), else wherever `cargo metadata` says (vendored sources).
fn rustface_dir() -> Option<PathBuf> {
    registry_dir().or_else(metadata_dir)
}

/// `$CARGO_HOME/registry/src/<index>/rustface-<locked version>`, when it holds the model.
fn registry_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let lock = std::fs::read_to_string(manifest.join("Cargo.lock")).ok()?;
    let after = lock.split("name = \"rustface\"").nth(1)?;
    let version = after.lines().find_map(|l| {
        l.strip_prefix("version = \"")
            .and_then(|v| v.strip_suffix('"'))
    })?;
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry").join("src"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("rustface-{version}")))
        .find(|d| d.join(MODEL).is_file())
}

/// The rustface package's folder according to `cargo metadata`.
fn metadata_dir() -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")?;
    // Only the packages of the platform being built are downloaded: the full resolve would
    // need the others too.
    let target = std::env::var("TARGET").ok()?;
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &target, "--manifest-path"])
        .arg(Path::new(&manifest).join("Cargo.toml"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    doc["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "rustface")
        .and_then(|p| p["manifest_path"].as_str())
        .and_then(|m| Path::new(m).parent().map(Path::to_path_buf))
}
