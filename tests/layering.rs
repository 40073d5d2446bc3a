//! The module layering of `src/lib.rs`'s doc table holds in the code: no module imports one of a
//! higher layer (or a peer it does not list), and no two source files import each other through a
//! chain (an import cycle). The table is read from lib.rs itself, so the documentation and this
//! check cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module and the peers it may use, from lib.rs's table rows
/// `//! | 3 | [`run`] | ... | `data`, `viz` |`.
fn layer_table(lib: &str) -> BTreeMap<String, (i32, BTreeSet<String>)> {
    let mut table = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let layer = match cells[0] {
            "base" => -1,
            n => match n.parse::<i32>() {
                Ok(n) => n,
                Err(_) => continue, // the header and separator rows
            },
        };
        let names = |cell: &str| -> BTreeSet<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let peers = cells.get(3).map_or_else(BTreeSet::new, |c| names(c));
        for m in names(cells[1]) {
            table.insert(m, (layer, peers.clone()));
        }
    }
    table
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/run/config.rs` -> [run, config]; `src/run/mod.rs` -> [run].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Code without comments and string literals (doc examples and messages mention paths too).
fn code_only(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' && prev != '\'' {
                in_str = !in_str;
            } else if !in_str {
                kept.push(c);
            }
            prev = c;
            i += 1;
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// Every path a file names that starts at `crate::` or `super::`, expanded out of `{...}` groups,
/// as absolute module paths (items included).
fn referenced_paths(code: &str, here: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let starts_ident =
        |i: usize| i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
    let mut i = 0;
    while i < bytes.len() {
        for root in ["crate::", "super::"] {
            let r: Vec<char> = root.chars().collect();
            if bytes[i..].starts_with(&r) && starts_ident(i) {
                let base: Vec<String> = if root == "crate::" {
                    Vec::new()
                } else {
                    // `super` of a mod.rs is the parent of its module; of a file, its module.
                    let up = if is_mod_file { 2 } else { 1 };
                    here[..here.len().saturating_sub(up)].to_vec()
                };
                let (paths, end) = parse_tree(&bytes, i + r.len());
                for p in paths {
                    let mut full = base.clone();
                    full.extend(p.into_iter().filter(|s| s != "self"));
                    found.push(full);
                }
                i = end;
            }
        }
        i += 1;
    }
    found
}

/// Parses `a::b::{c, d::e}` from `start`: the expanded paths and where parsing stopped.
fn parse_tree(s: &[char], start: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = start;
    loop {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        if i < s.len() && s[i] == '{' {
            let mut out = Vec::new();
            i += 1;
            loop {
                while i < s.len() && (s[i].is_whitespace() || s[i] == ',') {
                    i += 1;
                }
                if i >= s.len() || s[i] == '}' {
                    return (
                        out.into_iter()
                            .map(|p: Vec<String>| [prefix.clone(), p].concat())
                            .collect(),
                        i + 1,
                    );
                }
                let (sub, end) = parse_tree(s, i);
                out.extend(sub);
                i = end;
                // Skip `as name`.
                while i < s.len() && !matches!(s[i], ',' | '}') {
                    i += 1;
                }
            }
        }
        let begin = i;
        while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
            i += 1;
        }
        if begin == i {
            return (vec![prefix], i);
        }
        prefix.push(s[begin..i].iter().collect());
        if s[i..].starts_with(&[':', ':']) {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The source file a module path points into (longest prefix that is a file).
fn resolve(files: &BTreeMap<Vec<String>, PathBuf>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| files.contains_key(p))
}

#[test]
fn lower_modules_never_import_higher_ones_and_files_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let table = layer_table(&lib);
    assert!(
        table.len() >= 10,
        "layer table not found in lib.rs: {table:?}"
    );
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .filter(|p| !p.ends_with("main.rs"))
        .map(|p| (module_path(&src, p), p.clone()))
        .collect();

    let mut violations = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &files {
        let Some(top) = module.first() else { continue };
        let (layer, peers) = table
            .get(top)
            .unwrap_or_else(|| panic!("module `{top}` is missing from lib.rs's layer table"));
        let is_mod_file = file.ends_with("mod.rs");
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for path in referenced_paths(&code, module, is_mod_file) {
            let Some(target_top) = path.first() else {
                continue;
            };
            if let Some((target_layer, _)) = table.get(target_top) {
                let allowed = target_top == top
                    || target_layer < layer
                    || (target_layer == layer && (*layer < 0 || peers.contains(target_top)));
                if !allowed {
                    violations.push(format!(
                        "{}: `{top}` (layer {layer}) uses `{}`",
                        file.display(),
                        path.join("::")
                    ));
                }
            }
            // File edges; mod.rs files only declare and re-export, so edges into them are
            // skipped (a child naming its own module's re-export is no cycle).
            if let Some(target) = resolve(&files, &path) {
                let target_is_mod = files[&target].ends_with("mod.rs") || target.is_empty();
                if &target != module && !target_is_mod && !is_mod_file {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );

    // Depth-first search for a back edge.
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                0 => visit(m, edges, state, stack, cycles),
                1 => {
                    let at = stack.iter().position(|x| x == m).unwrap();
                    let names: Vec<String> = stack[at..]
                        .iter()
                        .chain(std::iter::once(m))
                        .map(|p| p.join("::"))
                        .collect();
                    cycles.push(names.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for n in files.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between files:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_and_relative_imports() {
    let code = "use crate::{run::config::TrainConfig, eval::{evaluate, dataset as d}};\nuse super::step::train_step;\n";
    let here = vec!["train".to_string(), "trainer".to_string()];
    let got = referenced_paths(code, &here, false);
    let joined: Vec<String> = got.iter().map(|p| p.join("::")).collect();
    assert!(
        joined.contains(&"run::config::TrainConfig".to_string()),
        "{joined:?}"
    );
    assert!(joined.contains(&"eval::evaluate".to_string()), "{joined:?}");
    assert!(joined.contains(&"eval::dataset".to_string()), "{joined:?}");
    assert!(
        joined.contains(&"train::step::train_step".to_string()),
        "{joined:?}"
    );
    let lib = "//! | layer | module | what | peers |\n//! |---|---|---|---|\n//! | 2 | [`eval`] | x | `run` |\n//! | base | [`error`], [`atomic`] | y | |\n";
    let t = layer_table(lib);
    assert_eq!(t["eval"].0, 2);
    assert!(t["eval"].1.contains("run"));
    assert_eq!(t["atomic"].0, -1);
}
