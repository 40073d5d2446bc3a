//! Files that a crash never leaves half-written: the content goes to a temporary file in the same
//! directory, is flushed to disk (`fsync`), renamed over the final name, and the directory entry
//! is synced too. Readers therefore see the old file or the new one, never a torn mix. Every file
//! hmreg writes for a user (checkpoints, configs, metrics, pictures, reports) goes through here.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically (parent directories are created).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| Error::file(tmp, e.to_string()))?;
        f.write_all(bytes)
            .map_err(|e| Error::file(tmp, e.to_string()))
    })
}

/// Atomic write for writers that want a path of their own (safetensors, PNG encoders): `write`
/// fills the temporary file it is given; it is then synced and renamed to `path`. On any error
/// the temporary file is removed and `path` is left as it was.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::file(
                path,
                format!("cannot create directory {}: {e}", parent.display()),
            )
        })?;
    }
    let tmp = temporary_path(path);
    let finish = || -> Result<()> {
        write(&tmp)?;
        // The data must be on disk before the rename makes it visible under the final name.
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::file(&tmp, format!("cannot sync: {e}")))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::file(path, format!("cannot write: {e}")))
    };
    if let Err(e) = finish() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path);
    Ok(())
}

/// `dir/.name.tmp-PID` next to the target: same file system, so the rename is atomic, and hidden
/// from listings of the directory.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Makes the rename itself durable. Best effort: some file systems refuse to open or sync a
/// directory, and the file's own data is already safe by then.
fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    #[test]
    fn a_failed_writer_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"partial").unwrap();
            Err(Error::file(tmp, "encoder failed"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("encoder failed"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
