//! The crate's layers read straight down (docs/architecture.md): each
//! top-level module imports only modules of lower layers, and within a
//! folder no two files import each other, directly or round a loop.
//!
//! The check reads the sources: every `crate::<module>` path names a
//! dependency of the file it is in, and every `super::<sibling>` path of
//! a file names a dependency on that sibling.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's floor, from the ground up. A module may import
/// only modules on a lower floor.
const FLOORS: &[(&str, u32)] = &[
    ("ids", 0),
    ("config", 1),
    ("layout", 1),
    ("logging", 1),
    ("auth", 2),
    ("recording", 2),
    ("media", 3),
    ("metrics", 4),
    ("protocol", 4),
    ("room", 5),
    ("cluster", 6),
    ("signaling", 7),
    ("sip", 7),
    ("http", 8),
    ("server", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file (not the binaries), with its path under `src/`.
fn library_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap() != "bin" {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&src(), &mut paths);
    paths
        .into_iter()
        .filter(|p| {
            let rel = p.strip_prefix(src()).unwrap();
            rel != Path::new("main.rs") && rel != Path::new("lib.rs")
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.strip_prefix(src()).unwrap().to_path_buf(),
                code_only(&text),
            )
        })
        .collect()
}

/// The text without comments, so that a doc link is not an import.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers that follow `prefix` in `text` (`crate::` → `room`, ...),
/// also inside `prefix{a, b::c}` groups.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        // In `super::super::x`, `super::` also matches at the second step;
        // a match that is itself a step of a longer path is not this one.
        if text[..i].ends_with("super::") {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() && name != "super" && name != "self" {
                out.insert(name);
            }
        }
    }
    out
}

fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn imports_run_only_down_the_layers() {
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    let mut upward = Vec::new();
    for (rel, text) in library_files() {
        let from = top_module(&rel);
        let Some(&floor) = floors.get(from.as_str()) else {
            panic!(
                "src/{} is in module `{from}`, which has no floor in tests/layers.rs: give it one",
                rel.display()
            );
        };
        for to in names_after(&text, "crate::") {
            if to == from {
                continue;
            }
            let Some(&to_floor) = floors.get(to.as_str()) else {
                continue; // crate::SomeItem re-exported at the root
            };
            if to_floor >= floor {
                upward.push(format!("src/{} ({from}) imports {to}", rel.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not run down the layers:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_ground_floor_imports_nothing_of_ours() {
    let text = code_only(&std::fs::read_to_string(src().join("ids.rs")).unwrap());
    assert!(names_after(&text, "crate::").is_empty());
    assert!(names_after(&text, "super::").is_empty());
}

/// Within each folder, the graph of its files' imports of each other has
/// no loop. A subfolder `x/` is one node of its parent's graph: what its
/// files import of their parent's files counts as `x`'s.
#[test]
fn no_folder_has_an_import_loop() {
    let files = library_files();
    // Folder → its nodes (file stems and subfolders with a mod.rs).
    let mut nodes: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for (rel, _) in &files {
        let dir = rel.parent().unwrap();
        let stem = rel.file_stem().unwrap().to_str().unwrap();
        if stem == "mod" {
            if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
                let name = name.to_str().unwrap().to_string();
                nodes.entry(parent.to_path_buf()).or_default().insert(name);
            }
        } else {
            nodes
                .entry(dir.to_path_buf())
                .or_default()
                .insert(stem.to_string());
        }
    }
    // Folder → node → the nodes it imports.
    let mut graphs: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut add = |dir: &Path, node: &str, imported: BTreeSet<String>| {
        let Some(siblings) = nodes.get(dir) else {
            return;
        };
        let deps: BTreeSet<String> = imported
            .into_iter()
            .filter(|n| siblings.contains(n) && n != node)
            .collect();
        graphs
            .entry(dir.to_path_buf())
            .or_default()
            .entry(node.to_string())
            .or_default()
            .extend(deps);
    };
    let full_path = |dir: &Path| -> String {
        let parts: Vec<_> = dir
            .components()
            .map(|c| c.as_os_str().to_str().unwrap().to_string())
            .collect();
        format!("crate::{}::", parts.join("::"))
    };
    for (rel, text) in &files {
        let dir = rel.parent().unwrap();
        let stem = rel.file_stem().unwrap().to_str().unwrap();
        // As a node of its own folder (mod.rs is the folder itself).
        if stem != "mod" {
            let mut imported = names_after(text, "super::");
            if !dir.as_os_str().is_empty() {
                imported.extend(names_after(text, &full_path(dir)));
            }
            add(dir, stem, imported);
        }
        // As part of its folder, a node of the folder above.
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            continue;
        };
        let up = if stem == "mod" {
            "super::"
        } else {
            "super::super::"
        };
        let mut imported = names_after(text, up);
        if !parent.as_os_str().is_empty() {
            imported.extend(names_after(text, &full_path(parent)));
        }
        add(parent, name.to_str().unwrap(), imported);
    }
    let mut loops = Vec::new();
    for (dir, graph) in &graphs {
        for start in graph.keys() {
            // Depth-first search for a way back to `start`.
            let mut stack = vec![vec![start.clone()]];
            let mut seen = BTreeSet::new();
            while let Some(path) = stack.pop() {
                let node = path.last().unwrap();
                for next in graph.get(node).into_iter().flatten() {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    if next == start {
                        loops.push(format!("src/{}: {}", dir.display(), longer.join(" → ")));
                    } else if seen.insert(next.clone()) {
                        stack.push(longer);
                    }
                }
            }
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

/// The checker itself finds what it looks for.
#[test]
fn the_reader_finds_imports() {
    let text = code_only(
        "use crate::room::Registry;\nuse crate::{media, auth::Identity};\n// crate::http in a comment\nuse super::{own_mix::OwnMix, tile};\nuse super::super::x;",
    );
    assert_eq!(
        names_after(&text, "crate::"),
        ["auth", "media", "room"].map(String::from).into()
    );
    assert_eq!(
        names_after(&text, "super::"),
        ["own_mix", "tile"].map(String::from).into()
    );
}
