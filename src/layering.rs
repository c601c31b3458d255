//! The house rules of imports, checked on the source (ARCHITECTURE.md explains them):
//! top-level modules form layers, each importing only from the layers listed for it (all
//! listed earlier, so the layers cannot form a cycle), and the services import each other
//! as a tree. Only the runners (`http`, `background`) reach the assembled `AppState`, and
//! handlers leave queries to the services.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and what it may import. `ROOT` is the crate root's items
/// (`AppState`): the assembly, which only the runners use.
const LAYERS: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("material", &[]),
    ("gcode", &[]),
    ("mesh", &[]),
    ("render", &["gcode", "mesh"]),
    ("staging", &[]),
    ("db", &[]),
    // Wake-ups of held agent polls (local, and Postgres LISTEN): infrastructure.
    ("notify", &["db"]),
    ("error", &["db"]),
    ("storage", &["config", "error", "staging"]),
    ("slicer", &["config", "error", "mesh"]),
    // The printer agent runs beside printers, not in the server: pure helpers only.
    ("agent", &["material"]),
    (
        "services",
        &[
            "config", "db", "error", "gcode", "material", "mesh", "notify", "render", "slicer",
            "storage",
        ],
    ),
    (
        "background",
        &[
            // The demo farm runs the agent's virtual printers in-process.
            "ROOT", "agent", "config", "db", "error", "services", "slicer", "staging", "storage",
        ],
    ),
    (
        "http",
        &[
            "ROOT", "config", "db", "error", "gcode", "material", "mesh", "render", "services",
            "slicer", "staging", "storage",
        ],
    ),
];

/// The names a `prefix` path starts with in `src`: `crate::a::b` gives `a`, and
/// `crate::{a, b::c, D}` gives `a`, `b` and `D`.
fn imported(src: &str, prefix: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in src.match_indices(prefix) {
        // `xcrate::` or `other_super::` are not ours.
        let before = src[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &src[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item) = (0usize, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(ident(&item));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

/// Every `.rs` file under `dir`, with its module path below `src/` (`http/v1/mod.rs` →
/// `["http", "v1"]`), its unit tests cut off.
fn sources(dir: &Path, out: &mut Vec<(Vec<String>, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let src_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let rel = path.strip_prefix(&src_root).expect("under src");
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let mut text = std::fs::read_to_string(&path).expect("read source");
            if let Some(at) = text.find("#[cfg(test)]\nmod tests") {
                text.truncate(at);
            }
            out.push((module, text));
        }
    }
}

fn all_sources() -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[test]
fn top_level_modules_import_only_from_their_layers() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    for (i, (layer, deps)) in LAYERS.iter().enumerate() {
        for dep in *deps {
            assert!(
                *dep == "ROOT" || LAYERS[..i].iter().any(|(l, _)| l == dep),
                "layer {layer} lists {dep}, which is not an earlier layer"
            );
        }
    }
    let mut wrong = BTreeSet::new();
    for (module, text) in all_sources() {
        // The crate root and the binaries assemble everything; this module is the checker.
        let Some(top) = module.first().map(String::as_str) else {
            continue;
        };
        if top == "bin" || top == "layering" {
            continue;
        }
        let Some(deps) = allowed.get(top) else {
            panic!("src/{top} is not placed in a layer: add it to LAYERS in src/layering.rs");
        };
        for name in imported(&text, "crate::") {
            let dep = if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                "ROOT".to_string()
            } else {
                name
            };
            // Macros exported at the root (`crate::per_backend!`) are not a module.
            if dep == top || dep == "per_backend" || deps.contains(&dep.as_str()) {
                continue;
            }
            wrong.insert(format!("{} imports crate::{dep}", module.join("::")));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports across layers that the rules do not allow:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn services_import_each_other_as_a_tree() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let sources = all_sources();
    let services: BTreeSet<String> = sources
        .iter()
        .filter(|(m, _)| m.len() == 2 && m[0] == "services")
        .map(|(m, _)| m[1].clone())
        .collect();
    for (module, text) in &sources {
        if module.len() < 2 || module[0] != "services" {
            continue;
        }
        let this = &module[1];
        let mut names = imported(text, "crate::services::");
        names.extend(imported(text, "services::"));
        if module.len() == 2 {
            names.extend(imported(text, "super::"));
        }
        let deps = graph.entry(this.clone()).or_default();
        deps.extend(
            names
                .into_iter()
                .filter(|n| n != this && services.contains(n)),
        );
    }
    // Depth-first search; a back edge is a cycle, reported with its path.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            panic!(
                "services import each other in a cycle: {} -> {node}",
                path[at..].join(" -> ")
            );
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            visit(dep, graph, path, done);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done);
    }
    assert!(graph.len() > 10, "found {} services", graph.len());
}

/// Handlers decode, call a service and answer: no query and no transaction is written under
/// `http/` (a transaction spanning several service calls is a rule of its own: a service).
#[test]
fn handlers_name_no_table_and_open_no_transaction() {
    let naming: Vec<String> = all_sources()
        .into_iter()
        .filter(|(m, text)| {
            m.first().is_some_and(|t| t == "http")
                && (text.contains("db::schema") || text.contains("write_transaction"))
        })
        .map(|(m, _)| m.join("::"))
        .collect();
    assert!(
        naming.is_empty(),
        "handlers that name tables or open transactions (move it into a service): {naming:?}"
    );
}

/// `db/` owns every query: the services and the runners call its functions and never name a
/// table or build SQL themselves (ARCHITECTURE.md, "Where a call lives").
#[test]
fn only_db_names_tables() {
    let naming: Vec<String> = all_sources()
        .into_iter()
        .filter(|(m, text)| {
            m.first()
                .is_some_and(|t| matches!(t.as_str(), "services" | "http" | "background"))
                && (text.contains("db::schema") || text.contains("diesel::"))
        })
        .map(|(m, _)| m.join("::"))
        .collect();
    assert!(
        naming.is_empty(),
        "modules outside db/ that name tables or use diesel (move the query into db/models): {naming:?}"
    );
}

/// HTTP belongs to the runners: the rules and what they stand on answer in domain terms
/// (`Error` by meaning), and each API renders that in its own shape.
#[test]
fn nothing_below_the_runners_speaks_http() {
    let speaking: Vec<String> = all_sources()
        .into_iter()
        .filter(|(m, text)| {
            !m.is_empty()
                && !matches!(m[0].as_str(), "http" | "background" | "agent" | "layering")
                && (text.contains("actix_web") || text.contains("crate::http"))
        })
        .map(|(m, _)| m.join("::"))
        .collect();
    assert!(
        speaking.is_empty(),
        "modules below http/ that use actix_web or http/: {speaking:?}"
    );
}

#[test]
fn the_import_reader_sees_groups_and_paths() {
    let src = "use crate::{db::{self, DbConn}, error::Result, AppState};\n\
               fn f() { crate::services::jobs::x(); notcrate::y(); }";
    assert_eq!(
        imported(src, "crate::"),
        ["db", "error", "AppState", "services"]
    );
    assert_eq!(imported(src, "crate::services::"), ["jobs"]);
}
