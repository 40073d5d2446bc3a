//! `.ci/unused-deps` reads code, not comments: run on small crates written here, it fails on a
//! dependency named only in a comment (how candle-nn went unnoticed) and passes once the code
//! uses it. The repository itself passes (CI runs the script too; this keeps `cargo test` honest).

use std::path::Path;
use std::process::{Command, Output};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/unused-deps")
}

fn run_on(dir: &Path) -> Output {
    Command::new("bash")
        .arg(script())
        .arg(dir)
        .output()
        .unwrap()
}

/// A crate with `[dependencies] used, commented` and `[dev-dependencies] tested`, whose
/// `src/lib.rs` is `lib` and whose only test file is `test`.
fn crate_with(lib: &str, test: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"t\"\n\n[dependencies]\nused = \"1\"\ncommented-out = \"1\"\n\n\
         [dev-dependencies]\ntested = \"1\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("tests")).unwrap();
    std::fs::write(root.join("src/lib.rs"), lib).unwrap();
    std::fs::write(root.join("tests/t.rs"), test).unwrap();
    dir
}

#[test]
fn a_dependency_named_only_in_comments_is_unused() {
    let dir = crate_with(
        "//! Unlike `commented_out::Thing`, this crate...\n\
         use used::Thing;\n\
         /// See commented_out::other.\n\
         pub fn f() -> Thing { Thing::new() } // not commented_out::new\n",
        "use tested::check;\n",
    );
    let out = run_on(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("unused dependency in [dependencies]: commented-out"),
        "{stdout}"
    );
    assert!(!stdout.contains(": used "), "{stdout}");
    assert!(!stdout.contains("tested"), "{stdout}");
}

#[test]
fn the_same_crate_passes_once_the_code_names_it() {
    let dir = crate_with(
        "use used::Thing;\npub fn g() { commented_out::run(); }\n",
        "use tested::check;\n",
    );
    let out = run_on(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("every dependency is used"), "{stdout}");
}

#[test]
fn a_dev_dependency_named_only_in_a_test_comment_is_unused() {
    let dir = crate_with(
        "use used::Thing;\npub fn g() { commented_out::run(); }\n",
        "// tested::check would be nice\n#[test]\nfn t() {}\n",
    );
    let out = run_on(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("unused dependency in [dev-dependencies]: tested"),
        "{stdout}"
    );
}

#[test]
fn this_repository_uses_every_dependency() {
    let out = run_on(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
