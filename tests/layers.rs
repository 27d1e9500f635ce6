//! The layers of the design hold: this test reads `src/`, finds which
//! top-level module each file names (`crate::x`, `crate::{x, y}`, and
//! `super::x` where `super` is the crate root), and fails on any import
//! that breaks a rule of `DESIGN.md` or closes a cycle between modules.
//!
//! Rules: `http` and `ws` never name `mcp`, `transport`, `ops`, `registry`,
//! `server`, `warehouse`, `guard` or `tools`; `jsonrpc` never names `http`
//! or `mcp`; `mcp` never names `http`, `ws`, `transport`, `server`, `ops`,
//! `warehouse`, `guard` or `tools`; `warehouse` and `pool` never name `mcp`
//! or `tools`; `util` names no one; no cycle between top-level modules, and
//! none between the files of one module (`mcp/context.rs` naming
//! `mcp/session.rs`, which names it back, is a cycle too).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the HTTP engine and the WebSocket handshake must never name.
const ENGINE_NEVER: &[&str] = &[
    "mcp",
    "transport",
    "ops",
    "registry",
    "server",
    "warehouse",
    "guard",
    "tools",
];

/// Modules each module must never name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("http", ENGINE_NEVER),
    ("ws", ENGINE_NEVER),
    ("jsonrpc", &["http", "mcp"]),
    (
        "mcp",
        &[
            "http",
            "ws",
            "transport",
            "server",
            "ops",
            "warehouse",
            "guard",
            "tools",
        ],
    ),
    ("warehouse", &["mcp", "tools"]),
    ("pool", &["mcp", "tools"]),
];

/// Modules that are leaves: they name no other module of the crate.
const LEAVES: &[&str] = &["util"];

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`).
fn module_of(rel: &Path) -> Option<String> {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next()?.into_owned();
    if rel.components().count() == 1 {
        let name = first.strip_suffix(".rs")?.to_owned();
        return (name != "lib").then_some(name);
    }
    Some(first)
}

/// How many `super::` lead from this file to the crate root.
fn depth_to_root(rel: &Path) -> usize {
    let n = rel.components().count();
    let is_mod = rel.file_name().is_some_and(|f| f == "mod.rs");
    // src/x.rs: 1 (super = root); src/x/mod.rs: 1; src/x/y.rs: 2; src/x/y/mod.rs: 2.
    if is_mod { n - 1 } else { n }
}

/// The code of a file without comments (line comments, doc comments and
/// block comments), so links in docs do not count as imports.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            let end = after.find('\n').unwrap_or(after.len());
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("/*") {
            let end = after.find("*/").map_or(after.len(), |e| e + 2);
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("'\"'") {
            // A quote character literal is not the start of a string.
            out.push_str("' '");
            rest = after;
        } else if rest.starts_with('"') {
            // Skip string literals (they may hold "//" or "crate::").
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            rest = &rest[(i + 1).min(rest.len())..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a file's code names through `prefix` (`crate::`,
/// or as many `super::` as lead to the root).
fn named_through(code: &str, prefix: &str, into: &mut BTreeSet<String>) {
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        // A whole path segment: not `xcrate::` or the tail of `super::super::`.
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let after = &code[from..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident_at(item.trim());
                if !name.is_empty() && name != "self" {
                    into.insert(name.to_owned());
                }
            }
        } else {
            let name = ident_at(after);
            if !name.is_empty() && name != "super" && name != "self" {
                into.insert(name.to_owned());
            }
        }
    }
}

/// For each top-level module, the other top-level modules it names.
fn graph(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files {
        let rel = Path::new(rel);
        let Some(module) = module_of(rel) else {
            continue;
        };
        let code = code_of(text);
        let mut named = BTreeSet::new();
        named_through(&code, "crate::", &mut named);
        let supers = "super::".repeat(depth_to_root(rel));
        named_through(&code, &supers, &mut named);
        named.remove(&module);
        edges.entry(module).or_default().extend(named);
    }
    edges
}

/// Every broken rule and every cycle, as readable lines.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let edges = graph(files);
    let modules: BTreeSet<&String> = edges.keys().collect();
    let mut found = Vec::new();
    for (module, named) in &edges {
        for target in named.iter().filter(|t| modules.contains(t)) {
            let forbidden = FORBIDDEN
                .iter()
                .any(|(m, never)| m == module && never.contains(&target.as_str()));
            if forbidden || LEAVES.contains(&module.as_str()) {
                found.push(format!("{module} names {target}"));
            }
        }
    }
    // Cycles: a module that reaches itself.
    for cycle in cycles(&edges) {
        found.push(format!("cycle: {cycle}"));
    }
    found.sort();
    found.dedup();
    found
}

/// Every cycle of `edges` (between its keys: other names are ignored), as
/// `a -> b -> a`, each reported once, from its smallest node.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&String, Vec<&String>)> = vec![(start, vec![start])];
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten() {
                if next == start {
                    if path.iter().all(|m| *m >= start) {
                        let mut cycle: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
                        cycle.push(start);
                        found.push(cycle.join(" -> "));
                    }
                } else if edges.contains_key(next) && seen.insert(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    found
}

/// For each directory of `src/`, which of its entries (files, and
/// subdirectories as one) name which others: through `super::` (from a file
/// of the directory, or as many as lead back to it from deeper), `self::`
/// (from its `mod.rs`) or `crate::` and the directory's path.
fn sibling_graphs(
    files: &[(String, String)],
) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut dirs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, _) in files {
        let parts: Vec<&str> = rel.split('/').collect();
        for depth in 0..parts.len() {
            let dir = parts[..depth].join("/");
            let entry = parts[depth].trim_end_matches(".rs");
            if entry != "mod" && entry != "lib" {
                dirs.entry(dir).or_default().insert(entry.to_owned());
            }
        }
    }
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (rel, text) in files {
        let parts: Vec<&str> = rel.split('/').collect();
        let code = code_of(text);
        for depth in 0..parts.len() {
            let dir = parts[..depth].join("/");
            let Some(entries) = dirs.get(&dir) else {
                continue;
            };
            let node = parts[depth].trim_end_matches(".rs");
            if node == "mod" || node == "lib" {
                continue;
            }
            // How this file names its ancestor directory `dir`.
            let below = parts.len() - depth - 1;
            let is_mod = parts.last().is_some_and(|f| *f == "mod.rs");
            let supers = if is_mod { below } else { below + 1 };
            let mut named = BTreeSet::new();
            if depth > 0 {
                named_through(
                    &code,
                    &format!("crate::{}::", dir.replace('/', "::")),
                    &mut named,
                );
            } else {
                named_through(&code, "crate::", &mut named);
            }
            if supers == 0 {
                named_through(&code, "self::", &mut named);
            } else {
                named_through(&code, &"super::".repeat(supers), &mut named);
            }
            named.retain(|n| n != node && entries.contains(n));
            graphs
                .entry(dir)
                .or_default()
                .entry(node.to_owned())
                .or_default()
                .extend(named);
        }
    }
    graphs
}

/// Cycles between the entries of one directory, as readable lines.
fn file_cycles(files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (dir, edges) in sibling_graphs(files) {
        if dir.is_empty() {
            continue; // Top-level modules: `violations` reports those.
        }
        for cycle in cycles(&edges) {
            found.push(format!("cycle in {dir}/: {cycle}"));
        }
    }
    found.sort();
    found.dedup();
    found
}

fn read_src() -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under src");
                let text = std::fs::read_to_string(&path).expect("read");
                out.push((rel.to_string_lossy().into_owned(), text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files
}

#[test]
fn the_layers_hold_and_no_module_cycle_exists() {
    let files = read_src();
    assert!(files.len() > 50, "src/ read: {} files", files.len());
    let edges = graph(&files);
    // The reader sees real imports (so an empty graph cannot pass).
    assert!(edges["transport"].contains("mcp"), "{edges:?}");
    assert!(edges["tools"].contains("warehouse"), "{edges:?}");
    let found = violations(&files);
    assert!(
        found.is_empty(),
        "layer rules broken:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_cycle_between_the_files_of_a_module() {
    let files = read_src();
    let graphs = sibling_graphs(&files);
    // The reader sees real imports between files.
    assert!(graphs["mcp"]["session"].contains("call"), "{graphs:?}");
    assert!(graphs["http"]["conn"].contains("head"), "{graphs:?}");
    let found = file_cycles(&files);
    assert!(found.is_empty(), "file cycles:\n{}", found.join("\n"));
}

#[test]
fn a_cycle_between_files_is_caught() {
    let files = vec![
        file("mcp/mod.rs", "mod a;\nmod b;\nmod c;\n"),
        file("mcp/a.rs", "use super::b::B;\n"),
        file("mcp/b.rs", "use crate::mcp::{c::C, x};\n"),
        file(
            "mcp/c.rs",
            "// use super::a::A;\nfn f() -> super::a::A { todo!() }\n",
        ),
        file("mcp/d/mod.rs", "use super::a::A;\n"),
        file("mcp/d/e.rs", "use super::super::c::C;\n"),
    ];
    assert_eq!(file_cycles(&files), ["cycle in mcp/: a -> b -> c -> a"]);
    let graphs = sibling_graphs(&files);
    assert_eq!(
        graphs["mcp"]["d"],
        ["a", "c"].into_iter().map(String::from).collect()
    );
}

fn file(rel: &str, text: &str) -> (String, String) {
    (rel.to_owned(), text.to_owned())
}

#[test]
fn each_kind_of_violation_is_caught() {
    let base = vec![
        file("lib.rs", "pub mod http; pub mod mcp;"),
        file("http/mod.rs", "use crate::util::date;"),
        file("mcp/mod.rs", "use crate::jsonrpc::Id;"),
        file("jsonrpc/mod.rs", ""),
        file("util/mod.rs", ""),
        file("server.rs", "use crate::http::conn::Conn;"),
        file("transport/mod.rs", "use crate::{mcp::Session, http};"),
        file("ops/mod.rs", ""),
        file("registry.rs", ""),
        file("warehouse/mod.rs", "use crate::pool::Pool;"),
        file("pool/mod.rs", ""),
        file("tools/mod.rs", ""),
        file("ws/mod.rs", ""),
        file("guard/mod.rs", ""),
    ];
    assert_eq!(violations(&base), Vec::<String>::new());
    let cases = [
        // The violations the architecture issue listed, one by one.
        (
            "http/conn.rs",
            "use crate::server::Shared;",
            "http names server",
        ),
        ("server.rs", "use crate::registry::Registry;", ""),
        (
            "ws/mod.rs",
            "pub auth: Option<crate::ops::auth::Auth>,",
            "ws names ops",
        ),
        (
            "ws/handshake.rs",
            "crate::transport::origin::check(req, o)",
            "ws names transport",
        ),
        ("ws/mod.rs", "use crate::guard::Admitted;", "ws names guard"),
        (
            "warehouse/sqlite.rs",
            "use crate::tools::sql_guard::quote_ident;",
            "warehouse names tools",
        ),
        (
            "mcp/tasks.rs",
            "use crate::http::date::format_rfc3339;",
            "mcp names http",
        ),
        (
            "warehouse/snowflake/convert.rs",
            "let d = crate::{mcp::Context, util::date};",
            "warehouse names mcp",
        ),
        (
            "jsonrpc/write.rs",
            "use super::super::http::Response;",
            "jsonrpc names http",
        ),
        ("pool/mod.rs", "use super::tools::X;", "pool names tools"),
        (
            "util/date.rs",
            "use crate::http::Response;",
            "util names http",
        ),
        (
            "ops/mod.rs",
            "use crate::transport::error_response;",
            "cycle: ops -> transport -> ops",
        ),
    ];
    for (rel, code, expected) in cases {
        let mut files = base.clone();
        files.push(file(rel, code));
        if rel == "ops/mod.rs" {
            // A cycle needs its way back too.
            files.push(file("transport/auth.rs", "use crate::ops::rate;"));
        }
        let found = violations(&files);
        if expected.is_empty() {
            assert!(found.is_empty(), "{rel}: {code}: {found:?}");
        } else {
            assert!(
                found.iter().any(|f| f == expected),
                "{rel}: {code}: expected {expected:?}, found {found:?}"
            );
        }
    }
    // Comments and strings are not imports.
    let mut files = base.clone();
    files.push(file(
        "http/x.rs",
        "/// See [`crate::mcp::Session`].\n// crate::server\nlet s = \"crate::ops\"; /* crate::warehouse */",
    ));
    assert_eq!(violations(&files), Vec::<String>::new());
}
