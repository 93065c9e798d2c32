//! The dependency direction of `spec/architecture.md`, checked on the source: a module imports
//! only modules of lower layers, so the layers hold as the code grows.
//!
//! `domain`, `metrics` ← `config` ← `crypto`, `telemetry` ← `db`, `files`, `circuits` ←
//! `actors` ← `api`, `bridge` ← start-up ← the command line and the tools. The actor framework
//! (`actix::`) appears only from `actors` up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layer of each top-level module of `src/` (a new module must be placed here).
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        // Leaves any layer may use: they import nothing of tkm.
        "domain" | "metrics" | "retry" | "csv_dialect" => 0,
        "config" => 1,
        "crypto" | "telemetry" => 2,
        "db" | "files" | "circuits" => 3,
        "actors" => 4,
        "api" | "bridge" => 5,
        // The assembly: start-up wires everything; the command line and tools sit on top.
        "startup_circuits" | "startup_uploads" | "bench" | "fuzzing" => 6,
        "startup" | "cli_publish" | "cli_lists" | "cli_token_lists" | "cli_transactions"
        | "cli_keys" => 7,
        "cli" => 8,
        "bin" | "main" | "lib" => 9,
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file's code names through `crate::` (plain paths and `use
/// crate::{a, b::c}` groups), comments left out.
fn referenced(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::{c, d}}` on one line: the first segment of each item.
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = top_module(&src, file);
        let Some(level) = layer(&module) else {
            broken.push(format!(
                "{}: module `{module}` has no layer in tests/architecture.rs",
                file.display()
            ));
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap();
        for target in referenced(&source) {
            if target == module {
                continue;
            }
            match layer(&target) {
                Some(l) if l < level => {}
                _ => broken.push(format!(
                    "{}: `{module}` (layer {level}) imports `{target}` (layer {:?})",
                    file.display(),
                    layer(&target)
                )),
            }
        }
        if level < 4
            && source.lines().any(|l| {
                let code = l.split("//").next().unwrap_or("");
                code.contains("actix::") || code.trim_start().starts_with("use actix;")
            })
        {
            broken.push(format!(
                "{}: actors (`actix::`) below the actors layer",
                file.display()
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "layer violations:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_groups_and_ignores_comments() {
    let found = referenced(
        "use crate::{db::outbox, domain};\n// crate::api in a comment\nlet x = crate::actors::X;",
    );
    let want: BTreeSet<String> = ["db", "domain", "actors"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, want);
    assert_eq!(layer("db"), Some(3));
    assert!(layer("db") < layer("actors"));
    assert_eq!(layer("newthing"), None);
}
