//! The layers of gray-core, as ARCHITECTURE.md tells them: a module imports only from the
//! layers below its own, no file imports another that (through others) imports it back,
//! and no file is over 500 lines. Read from the sources, so a change that breaks a layer
//! fails here rather than in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: the folders (and top-level files) of `src/`.
const LAYERS: &[&str] = &[
    "label", "rules", "context", "metrics", "engine", "decision", "gray", "adapter", "rollout",
    "reload",
];

/// Longest file, in lines.
const MAX_LINES: usize = 500;

/// Every `.rs` file under `dir`, as a path relative to `src`.
fn sources(src: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.strip_prefix(src).unwrap_or(&path).to_path_buf());
        }
    }
}

/// A file's module, as `engine/values` or `engine` (for `engine/mod.rs`) or `gray`.
fn module_of(path: &Path) -> String {
    let text = path.with_extension("").to_string_lossy().replace('\\', "/");
    text.strip_suffix("/mod").unwrap_or(&text).to_owned()
}

/// The code of a file: no comments (doc links name other modules freely) and no unit
/// tests (they may reach anywhere in their own folder).
fn code(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    body.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `path`'s code names: `crate::a::b` (the file `a/b` if there is one, else
/// the folder `a`) and `super::x` (a sibling).
fn imports(path: &Path, code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let this = module_of(path);
    let folder = match path.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") => this.clone(),
        _ => this
            .rsplit_once('/')
            .map_or(String::new(), |(f, _)| f.to_owned()),
    };
    let words = |prefix: &str| -> Vec<Vec<String>> {
        code.match_indices(prefix)
            .filter(|(at, _)| {
                !code[..*at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            })
            .map(|(at, _)| {
                let rest = &code[at + prefix.len()..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                rest[..end]
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    let mut found = BTreeSet::new();
    for segments in words("crate::") {
        let Some(first) = segments.first() else {
            continue;
        };
        let nested = segments.get(1).map(|second| format!("{first}/{second}"));
        match nested {
            Some(nested) if modules.contains(&nested) => found.insert(nested),
            _ if modules.contains(first) => found.insert(first.clone()),
            _ => false,
        };
    }
    for segments in words("super::") {
        if let Some(first) = segments.first() {
            let sibling = format!("{folder}/{first}");
            if modules.contains(&sibling) {
                found.insert(sibling);
            }
        }
    }
    found.remove(&this);
    found
}

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split('/').next().unwrap_or(module);
    LAYERS.iter().position(|layer| *layer == top)
}

#[test]
fn lower_layers_never_import_higher_ones_and_no_file_imports_itself_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(src.join(path)).unwrap_or_else(|e| panic!("{e}"));
        let module = module_of(path);
        let lines = text.lines().count();
        if lines > MAX_LINES {
            problems.push(format!("{module}: {lines} lines, over {MAX_LINES}"));
        }
        let imported = imports(path, &code(&text), &modules);
        if module != "lib" {
            let Some(own) = layer_of(&module) else {
                problems.push(format!("{module}: in no layer (add it to LAYERS)"));
                continue;
            };
            for other in &imported {
                if layer_of(other).is_some_and(|layer| layer > own) {
                    problems.push(format!("{module} imports {other}, a higher layer"));
                }
            }
        }
        graph.insert(module, imported);
    }
    // A cycle: a module that reaches itself (the crate root re-exports everything).
    graph.remove("lib");
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[start].iter().collect();
        while let Some(next) = stack.pop() {
            if next == start {
                problems.push(format!("{start} imports itself back"));
                break;
            }
            if seen.insert(next.clone()) {
                stack.extend(graph.get(next).into_iter().flatten());
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_sees_an_import_and_a_cycle() {
    // The reader itself: a higher layer's name in code is an import, in a comment it is not.
    let modules: BTreeSet<String> = ["gray", "engine", "engine/values", "engine/compiled"]
        .map(str::to_owned)
        .into();
    let file = Path::new("engine/values.rs");
    let found = imports(
        file,
        &code("use crate::gray::Gray;\nuse super::compiled::Engine;\n// crate::rollout\n"),
        &modules,
    );
    assert_eq!(found, ["engine/compiled", "gray"].map(str::to_owned).into());
    assert!(layer_of("gray") > layer_of("engine/values"));
    let tests = code("fn a() {}\n#[cfg(test)]\nmod tests {\n use crate::gray::Gray;\n}\n");
    assert!(imports(file, &tests, &modules).is_empty());
}
