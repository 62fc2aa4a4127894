//! Kconfig fragment merging and verification (pure functions over `.config` text).
//!
//! Fragments merge in order, later wins, as `scripts/kconfig/merge_config.sh` does. After
//! `olddefconfig`, every symbol a fragment asked for must have that value in the final
//! `.config`; one that was not honoured is a mismatch, and the cell is not built.

use std::collections::BTreeMap;
use std::path::Path;

/// One requested symbol value and the fragment that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub value: String,
    pub fragment: String,
}

/// A symbol whose final value is not what a fragment asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    pub symbol: String,
    pub wanted: String,
    pub got: String,
    pub fragment: String,
    /// The symbol's `depends on` / `def_bool` lines from its Kconfig entry, when found.
    pub kconfig: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CONFIG_{} asked {} (by {}), got {}",
            self.symbol, self.wanted, self.fragment, self.got
        )?;
        if let Some(k) = &self.kconfig {
            write!(f, " [Kconfig: {k}]")?;
        }
        Ok(())
    }
}

/// Parse one `.config` line into (symbol without `CONFIG_`, value); `n` for "is not set".
pub fn parse_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("# CONFIG_") {
        let sym = rest.strip_suffix(" is not set")?;
        return Some((sym, "n"));
    }
    let rest = line.strip_prefix("CONFIG_")?;
    let (sym, val) = rest.split_once('=')?;
    Some((sym, val))
}

/// All symbol values in a `.config` or fragment.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(parse_line)
        .map(|(s, v)| (s.to_string(), v.to_string()))
        .collect()
}

/// Merge fragments (name, text) in order over `base`. Returns the merged `.config` text
/// and what was requested (the last fragment to name a symbol wins).
pub fn merge(base: &str, fragments: &[(String, String)]) -> (String, BTreeMap<String, Request>) {
    let mut requested: BTreeMap<String, Request> = BTreeMap::new();
    for (name, text) in fragments {
        for (sym, val) in text.lines().filter_map(parse_line) {
            requested.insert(
                sym.to_string(),
                Request {
                    value: val.to_string(),
                    fragment: name.clone(),
                },
            );
        }
    }
    let mut out = String::with_capacity(base.len() + 4096);
    for line in base.lines() {
        match parse_line(line) {
            Some((sym, _)) if requested.contains_key(sym) => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (sym, r) in &requested {
        if r.value == "n" {
            out.push_str(&format!("# CONFIG_{sym} is not set\n"));
        } else {
            out.push_str(&format!("CONFIG_{sym}={}\n", r.value));
        }
    }
    (out, requested)
}

/// Compare requested values with the final `.config`. `n` matches an absent symbol.
pub fn verify(requested: &BTreeMap<String, Request>, final_config: &str) -> Vec<Mismatch> {
    let got = parse(final_config);
    requested
        .iter()
        .filter_map(|(sym, r)| {
            let g = got.get(sym).map(String::as_str).unwrap_or("n");
            let ok = g == r.value || (r.value == "n" && g == "n");
            (!ok).then(|| Mismatch {
                symbol: sym.clone(),
                wanted: r.value.clone(),
                got: if got.contains_key(sym) {
                    g.to_string()
                } else {
                    "not set (symbol absent: unknown or dependencies unmet)".into()
                },
                fragment: r.fragment.clone(),
                kconfig: None,
            })
        })
        .collect()
}

/// Find `config SYMBOL` in the tree's Kconfig files and return the lines that decide
/// its value (type/def_bool, depends on, select-only hints), joined with `; `.
pub fn kconfig_entry(tree: &Path, symbol: &str) -> Option<String> {
    let header = format!("config {symbol}");
    let mut stack = vec![tree.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if p.is_dir() {
                if !name.starts_with('.') && name != "Documentation" && name != "tools" {
                    stack.push(p);
                }
            } else if name.starts_with("Kconfig") {
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                if let Some(entry) = entry_in(&text, &header) {
                    let rel = p.strip_prefix(tree).unwrap_or(&p).display().to_string();
                    return Some(format!("{rel}: {entry}"));
                }
            }
        }
    }
    None
}

fn entry_in(text: &str, header: &str) -> Option<String> {
    let mut lines = text.lines();
    lines.by_ref().find(|l| l.trim_end() == header)?;
    let mut parts = Vec::new();
    for l in lines {
        let t = l.trim();
        if t.starts_with("config ") || t.starts_with("menuconfig ") || t.starts_with("endmenu") {
            break;
        }
        if t.starts_with("help") || t.starts_with("---help---") {
            break;
        }
        if t.starts_with("depends on")
            || t.starts_with("def_bool")
            || t.starts_with("bool")
            || t.starts_with("tristate")
            || t.starts_with("select")
        {
            parts.push(t.to_string());
        }
    }
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(name: &str, text: &str) -> (String, String) {
        (name.to_string(), text.to_string())
    }

    #[test]
    fn later_fragment_wins_and_replaces_base_lines() {
        let base = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=5\n";
        let (merged, req) = merge(
            base,
            &[
                frag("one", "CONFIG_B=y\nCONFIG_C=10\n"),
                frag("two", "# CONFIG_B is not set\nCONFIG_D=\"x y\"\n"),
            ],
        );
        let m = parse(&merged);
        assert_eq!(m["A"], "y");
        assert_eq!(m["B"], "n");
        assert_eq!(m["C"], "10");
        assert_eq!(m["D"], "\"x y\"");
        assert_eq!(req["B"].fragment, "two");
        assert_eq!(req["C"].fragment, "one");
        // Each symbol appears once.
        assert_eq!(merged.matches("CONFIG_B").count(), 1);
    }

    #[test]
    fn verify_flags_undone_symbols_and_accepts_absent_for_n() {
        let (_, req) = merge(
            "",
            &[frag(
                "pvl-off",
                "# CONFIG_PER_VMA_LOCK is not set\n# CONFIG_GONE is not set\nCONFIG_X=y\n",
            )],
        );
        // olddefconfig turned PER_VMA_LOCK back on (def_bool y); X vanished.
        let final_cfg = "CONFIG_PER_VMA_LOCK=y\n";
        let mm = verify(&req, final_cfg);
        assert_eq!(mm.len(), 2, "{mm:?}");
        assert_eq!(mm[0].symbol, "PER_VMA_LOCK");
        assert_eq!(mm[0].wanted, "n");
        assert_eq!(mm[0].got, "y");
        assert_eq!(mm[1].symbol, "X");
        assert!(mm[1].got.contains("absent"));
    }

    #[test]
    fn kconfig_entry_reads_dependencies() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("mm")).unwrap();
        std::fs::write(
            d.path().join("mm/Kconfig"),
            "config OTHER\n\tbool\n\nconfig PER_VMA_LOCK\n\tdef_bool y\n\tdepends on ARCH_SUPPORTS_PER_VMA_LOCK && MMU && SMP\n\thelp\n\t  Allow per-vma locking.\n",
        )
        .unwrap();
        let e = kconfig_entry(d.path(), "PER_VMA_LOCK").unwrap();
        assert_eq!(
            e,
            "mm/Kconfig: def_bool y; depends on ARCH_SUPPORTS_PER_VMA_LOCK && MMU && SMP"
        );
        assert!(kconfig_entry(d.path(), "NOPE").is_none());
    }
}
