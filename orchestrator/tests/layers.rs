//! The crate's layers import only downward, and no module imports itself back through
//! others (issue #27). Each folder of `src/` is a layer (ARCHITECTURE.md draws them); a
//! module may use modules of its own folder and of lower layers, never of a higher one
//! nor of another folder of its own rank. Imports are read from the source: every
//! `crate::a::b` and `super::a` path outside comments and `#[cfg(test)]` code, resolved
//! to the longest module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. A folder not listed fails the test (place it).
const LAYERS: &[&[&str]] = &[
    &["record"],
    &["console", "parse"],
    &["host"],
    &["spec"],
    &["prepare"],
    &["vm"],
    &["judge"],
    &["engine"],
    &["report"],
    &["cli"],
];

/// Top-level files that are not layers: the crate root and the binary.
const ROOTS: &[&str] = &["lib", "main"];

fn rank(module: &str) -> Option<usize> {
    let top = module.split('/').next().unwrap_or(module);
    LAYERS.iter().position(|l| l.contains(&top))
}

/// Every module of `src/` by path (`engine/cell`, `record`), with its source.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut name = rel.to_string_lossy().into_owned();
                if let Some(parent) = name.strip_suffix("/mod") {
                    name = parent.to_string();
                }
                out.insert(name, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

/// The code that is compiled outside tests, without comments.
fn code(src: &str) -> String {
    let mut out = String::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            match lines.peek().map(|l| l.trim()) {
                // `mod fakes;`: that one line is test-only.
                Some(n) if n.starts_with("mod ") && n.ends_with(';') => {
                    lines.next();
                    continue;
                }
                // A test module runs to the end of the file (the crate's convention).
                Some(n) if n.starts_with("mod ") => break,
                _ => continue,
            }
        }
        if t.starts_with("//") {
            continue;
        }
        // A trailing comment (a `//` inside a string is rare enough in paths' lines).
        let line = match line.find(" // ") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Module paths named after `prefix` (`crate::` or `super::`), as `a/b/c` candidates.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut v = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut parts = Vec::new();
        let mut s = rest;
        loop {
            let end = s
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if end == 0 {
                break;
            }
            parts.push(&s[..end]);
            match s[end..].strip_prefix("::") {
                Some(r) => s = r,
                None => break,
            }
        }
        // `a::{b, c::d}`: each member is a path of its own (one level of braces).
        if let Some(group) = s.strip_prefix('{').and_then(|g| g.split_once('}')) {
            for member in group.0.split(',') {
                let mut p = parts.clone();
                p.extend(
                    member
                        .trim()
                        .split("::")
                        .filter(|w| !w.is_empty() && *w != "self"),
                );
                v.push(p);
            }
            continue;
        }
        v.push(parts);
    }
    v
}

/// The longest module that `parts` (relative to `base`) names.
fn resolve(mods: &BTreeMap<String, String>, base: &str, parts: &[&str]) -> Option<String> {
    let mut best = None;
    let mut cur = base.to_string();
    for p in parts {
        let next = if cur.is_empty() {
            p.to_string()
        } else {
            format!("{cur}/{p}")
        };
        if !mods.contains_key(&next) {
            break;
        }
        best = Some(next.clone());
        cur = next;
    }
    best
}

fn parent(m: &str) -> &str {
    m.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Module -> the modules it imports.
fn graph(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut g = BTreeMap::new();
    for (m, src) in mods {
        let code = code(src);
        let mut deps = BTreeSet::new();
        for parts in paths_after(&code, "crate::") {
            deps.extend(resolve(mods, "", &parts));
        }
        // `super::x` from `a/b/c` (file `a/b/c.rs`) names `a/b/x`; from `a/b` (a
        // `mod.rs`) it names `a/x`.
        for parts in paths_after(&code, "super::") {
            let base = parent(m);
            match resolve(mods, base, &parts) {
                Some(d) => deps.insert(d),
                None if !base.is_empty() => deps.insert(base.to_string()),
                None => false,
            };
        }
        // A child module named bare (`cell::CellRun` in `engine/mod.rs`).
        for (child, _) in mods.range(format!("{m}/")..) {
            let Some(name) = child.strip_prefix(&format!("{m}/")) else {
                break;
            };
            if !name.contains('/') && !paths_after(&code, &format!("{name}::")).is_empty() {
                deps.insert(child.clone());
            }
        }
        deps.remove(m);
        g.insert(m.clone(), deps);
    }
    g
}

fn crate_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    graph(&modules(&src))
}

#[test]
fn every_folder_is_a_layer() {
    let g = crate_graph();
    let unplaced: Vec<&String> = g
        .keys()
        .filter(|m| !ROOTS.contains(&m.as_str()) && rank(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules outside every layer (put them in a layer folder, or add the folder to LAYERS): {unplaced:?}"
    );
}

#[test]
fn layers_import_only_downward() {
    let g = crate_graph();
    let mut bad = Vec::new();
    for (m, deps) in &g {
        let Some(r) = rank(m) else { continue };
        let top = m.split('/').next().unwrap();
        for d in deps {
            let Some(rd) = rank(d) else { continue };
            let dtop = d.split('/').next().unwrap();
            if rd > r || (rd == r && dtop != top) {
                bad.push(format!("{m} -> {d}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "upward or sideways imports (move the shared piece down a layer):\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn no_module_imports_itself_back() {
    let g = crate_graph();
    // Tarjan's strongly connected components; any with more than one module is a cycle.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w);
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        next: 0,
        out: vec![],
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    let cycles: Vec<String> = t.out.iter().map(|c| c.join(" <-> ")).collect();
    assert!(
        cycles.is_empty(),
        "import cycles (move what both need below them):\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn the_reader_finds_imports_and_skips_comments_and_tests() {
    let mut mods = BTreeMap::new();
    for m in ["a", "a/x", "a/y", "b", "b/z"] {
        mods.insert(m.to_string(), String::new());
    }
    mods.insert(
        "a/x".into(),
        "use crate::b::z::Thing;\nuse crate::a::{self, y::f};\n/// see [`crate::b`]\nlet y = super::y::f(); // crate::a\n#[cfg(test)]\nmod tests {\n use crate::b;\n}\n".into(),
    );
    let g = graph(&mods);
    assert_eq!(
        g["a/x"].iter().map(String::as_str).collect::<Vec<_>>(),
        ["a", "a/y", "b/z"]
    );
}
