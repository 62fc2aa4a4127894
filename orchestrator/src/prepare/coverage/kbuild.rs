//! The Kbuild side of series coverage: the `make` variables that switch gcov profiling on
//! for the series' objects only, the objects a folder's Makefile keeps out of profiling,
//! and why the config does not build an object (`obj-$(CONFIG_NUMA) += mempolicy.o`:
//! it needs `CONFIG_NUMA`).

use super::cond::Symbols;
use std::collections::BTreeMap;
use std::path::Path;

/// Whether a path is safe to put into a make variable and a guest shell command as it is
/// (the series is hostile: `+++ b/net/$(reboot).c`).
pub fn plain_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 200
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'+'))
}

/// `make` variables profiling exactly `objects` (`mm/mmap_lock.o`, ...) when the config
/// has `CONFIG_GCOV_KERNEL`: scripts/Makefile.lib reads `GCOV_PROFILE_<stem>.o` with the
/// stem relative to the folder, so the same stem elsewhere (`tcp.o` in another folder)
/// must not match: the value is `y` only inside the object's folder (`$(obj)`), expanded
/// by each sub-make. Without `CONFIG_GCOV_KERNEL` the variables are never read.
pub fn make_vars(objects: &[String]) -> Vec<String> {
    let mut by_stem: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in objects.iter().filter(|o| plain_path(o)) {
        let Some(stem) = o.strip_suffix(".o") else {
            continue;
        };
        let (dir, name) = stem.rsplit_once('/').unwrap_or((".", stem));
        let dirs = by_stem.entry(name).or_default();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    by_stem
        .into_iter()
        .map(|(name, dirs)| {
            format!(
                "GCOV_PROFILE_{name}.o=$(if $(filter {},$(obj)),y)",
                dirs.join(" ")
            )
        })
        .collect()
}

/// A Makefile's logical lines: comments dropped, `\` continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines().take(20_000) {
        let line = raw.split('#').next().unwrap_or_default();
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        out.push(std::mem::take(&mut cur));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A folder's Kbuild file (Kbuild first, as make reads it), bounded.
fn kbuild_text(tree: &Path, dir: &str) -> Option<String> {
    let base = if dir.is_empty() {
        tree.to_path_buf()
    } else {
        tree.join(dir)
    };
    for f in ["Kbuild", "Makefile"] {
        let p = base.join(f);
        // Never follow a link a series could have planted.
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file() && m.len() < 1 << 20) {
            return std::fs::read_to_string(p).ok();
        }
    }
    None
}

/// Whether the object's folder keeps it out of profiling (`GCOV_PROFILE_x.o := n`, or
/// `GCOV_PROFILE := n` for the folder: boot code, the vDSO, gcov itself). A command-line
/// variable would override such a line, so these objects are left alone.
pub fn profiling_excluded(tree: &Path, object: &str) -> bool {
    let (dir, name) = object.rsplit_once('/').unwrap_or(("", object));
    let Some(text) = kbuild_text(tree, dir) else {
        return false;
    };
    let own = format!("GCOV_PROFILE_{name}");
    logical_lines(&text).iter().any(|l| {
        let Some((lhs, rhs)) = split_assignment(l) else {
            return false;
        };
        (lhs == own || lhs == "GCOV_PROFILE") && rhs.trim_start().starts_with('n')
    })
}

/// `lhs op rhs` for `:=`, `+=`, `?=`, `=`.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let eq = line.find('=')?;
    let (mut lhs, rhs) = (line[..eq].trim_end(), &line[eq + 1..]);
    if let Some(l) = lhs
        .strip_suffix(':')
        .or_else(|| lhs.strip_suffix('+'))
        .or_else(|| lhs.strip_suffix('?'))
    {
        lhs = l.trim_end();
    }
    let lhs = lhs.trim();
    if lhs.is_empty() || lhs.contains(char::is_whitespace) {
        return None;
    }
    Some((lhs, rhs))
}

fn enabled(syms: &Symbols, sym: &str) -> bool {
    matches!(syms.get(sym).map(String::as_str), Some("y" | "m"))
}

/// `CONFIG_X` in `$(CONFIG_X)`, the one place Kbuild lines name an option.
fn config_ref(s: &str) -> Option<&str> {
    let start = s.find("$(CONFIG_")? + "$(CONFIG_".len();
    let end = s[start..].find(')')? + start;
    Some(&s[start..end])
}

/// Whether the last build linked `object` (`mm/mmap_lock.o`): a member of its folder's
/// `built-in.a` (a thin archive: member names relative to the folder, each ending in
/// `/`) or a line of `modules.order`. Read before trusting an object file in a slot,
/// whose folder keeps objects of earlier configs.
pub fn linked(objdir: &Path, object: &str) -> bool {
    let (dir, name) = object.rsplit_once('/').unwrap_or(("", object));
    let read = |rel: &Path| crate::host::runfile::read(objdir, rel, 64 << 20).ok();
    let member = format!("\n{name}/");
    let in_archive = read(&Path::new(dir).join("built-in.a"))
        .is_some_and(|b| b.windows(member.len()).any(|w| w == member.as_bytes()));
    in_archive
        || read(Path::new("modules.order"))
            .is_some_and(|b| String::from_utf8_lossy(&b).lines().any(|l| l == object))
}

/// Why the config does not build `object` (`mm/mempolicy.o`): the option the Kbuild
/// lines leading to it need and the config lacks (`CONFIG_NUMA`), another arch's folder,
/// or that no Makefile lists it. `None` when the lines say it is built (or cannot tell).
pub fn why_not_built(tree: &Path, object: &str, srcarch: &str, syms: &Symbols) -> Option<String> {
    if let Some(rest) = object.strip_prefix("arch/") {
        let a = rest.split('/').next().unwrap_or_default();
        if a != srcarch {
            return Some(format!("built only for arch/{a}"));
        }
    }
    let (mut dir, mut item) = match object.rsplit_once('/') {
        Some((d, n)) => (d.to_string(), n.to_string()),
        None => (String::new(), object.to_string()),
    };
    for _ in 0..32 {
        let Some(text) = kbuild_text(tree, &dir) else {
            return Some(format!("{}/ has no Makefile", show(&dir)));
        };
        match listed(&text, &item, syms) {
            Listing::Needs(sym) => return Some(format!("needs CONFIG_{sym}")),
            Listing::NotListed => {
                // The top folder's Makefile names the arch folders indirectly.
                if dir.is_empty() || dir == format!("arch/{srcarch}") {
                    return None;
                }
                return Some(format!("{} does not list {item}", kbuild_name(tree, &dir)));
            }
            Listing::Yes => {}
        }
        if dir.is_empty() || dir == format!("arch/{srcarch}") {
            return None;
        }
        let (parent, name) = match dir.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), dir.clone()),
        };
        item = format!("{name}/");
        dir = parent;
    }
    None
}

fn show(dir: &str) -> &str {
    if dir.is_empty() {
        "the top"
    } else {
        dir
    }
}

fn kbuild_name(tree: &Path, dir: &str) -> String {
    let base = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    if tree.join(&base).join("Kbuild").is_file() {
        format!("{base}Kbuild")
    } else {
        format!("{base}Makefile")
    }
}

/// An option an `ifdef`/`ifeq` block wants on (`true`) or off.
type BlockCond = (String, bool);

/// A Makefile assignment (`lhs`, `rhs`) with the blocks around it.
type Assignment = (String, String, Vec<BlockCond>);

enum Listing {
    Yes,
    Needs(String),
    NotListed,
}

/// How a folder's Makefile lists `item` (`foo.o` or `sub/`): through `obj-y`, through
/// `obj-$(CONFIG_X)`, through a composite (`foo-y += item`, `obj-$(CONFIG_X) += foo.o`)
/// or a list variable (`mmu-$(CONFIG_MMU) := item`, `obj-y += $(mmu-y)`), inside
/// `ifdef`/`ifeq` blocks on options.
fn listed(text: &str, item: &str, syms: &Symbols) -> Listing {
    let lines = logical_lines(text);
    // Each line with the options of the `ifdef`/`ifeq` blocks around it.
    let mut blocks: Vec<Option<BlockCond>> = Vec::new();
    let mut assignments: Vec<Assignment> = Vec::new();
    for l in &lines {
        let t = l.trim();
        let word = t.split_whitespace().next().unwrap_or_default();
        match word {
            "ifdef" | "ifndef" | "ifeq" | "ifneq" => {
                let sym = config_ref(t).map(str::to_string).or_else(|| {
                    t.split_whitespace()
                        .nth(1)
                        .and_then(|s| s.strip_prefix("CONFIG_"))
                        .map(str::to_string)
                });
                // `ifdef CONFIG_X`, `ifeq ($(CONFIG_X),y)` and `ifneq ($(CONFIG_X),)` want
                // it on; `ifndef`, `ifeq (..,)`, `ifneq (..,y)` want it off.
                let empty_rhs = t.contains(",)") || t.contains(", )");
                let want_on = match word {
                    "ifdef" => true,
                    "ifndef" => false,
                    "ifeq" => !empty_rhs,
                    _ => empty_rhs,
                };
                blocks.push(sym.map(|s| (s, want_on)));
            }
            "else" => {
                if let Some(Some((_, want))) = blocks.last_mut() {
                    *want = !*want;
                }
            }
            "endif" => {
                blocks.pop();
            }
            _ => {
                if let Some((lhs, rhs)) = split_assignment(t) {
                    let conds = blocks.iter().flatten().cloned().collect();
                    assignments.push((lhs.to_string(), rhs.to_string(), conds));
                }
            }
        }
    }
    // Follow the item through composites and list variables to an obj-/lib- line.
    let mut wanted: Vec<String> = vec![item.to_string()];
    let mut seen = 0;
    let mut first_need: Option<String> = None;
    while let Some(w) = wanted.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        for (lhs, rhs, conds) in &assignments {
            if !rhs.split_whitespace().any(|tok| tok == w) {
                continue;
            }
            let block_need = conds
                .iter()
                .find(|(s, want_on)| enabled(syms, s) != *want_on)
                .map(|(s, _)| s.clone());
            let (name, suffix) = match lhs.rsplit_once('-') {
                Some(x) => x,
                None => continue,
            };
            let need = match config_ref(suffix) {
                Some(sym) if !enabled(syms, sym) => Some(sym.to_string()),
                Some(_) => None,
                None if matches!(suffix, "y" | "m" | "objs" | "") => None,
                // `foo-n`, `obj-$(ARCH_X)`: not an option we can name.
                None => continue,
            };
            let need = block_need.or(need);
            if matches!(name, "obj" | "lib" | "core" | "drivers" | "libs") {
                if need.is_none() {
                    return Listing::Yes;
                }
                first_need = first_need.or(need);
                continue;
            }
            if need.is_some() {
                first_need = first_need.or(need);
                continue;
            }
            // A composite object or a list variable: follow what includes it.
            for next in [
                format!("{name}.o"),
                format!("$({name}-y)"),
                format!("$({name}-objs)"),
            ] {
                if !wanted.contains(&next) {
                    wanted.push(next);
                }
            }
        }
    }
    match first_need {
        Some(s) => Listing::Needs(s),
        None => Listing::NotListed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(list: &[(&str, &str)]) -> Symbols {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn linked_reads_the_folders_thin_archive_and_modules_order_not_stale_objects() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("mm")).unwrap();
        // An object left by an earlier config: on disk, in no archive.
        std::fs::write(d.path().join("mm/mempolicy.o"), b"old").unwrap();
        // The member table of a thin archive as binutils writes it.
        std::fs::write(
            d.path().join("mm/built-in.a"),
            b"!<thin>\n//                                              20        `\nfilemap.o/\nmmap_lock.o/\n",
        )
        .unwrap();
        std::fs::write(d.path().join("modules.order"), b"drivers/x/y.o\n").unwrap();
        assert!(linked(d.path(), "mm/mmap_lock.o"));
        assert!(!linked(d.path(), "mm/mempolicy.o"));
        assert!(
            !linked(d.path(), "mm/lock.o"),
            "a suffix of a member is not it"
        );
        assert!(linked(d.path(), "drivers/x/y.o"));
        assert!(!linked(d.path(), "net/ipv4/tcp.o"), "no archive there");
    }

    #[test]
    fn make_vars_match_only_the_objects_folder() {
        let objs: Vec<String> = [
            "mm/mmap_lock.o",
            "net/ipv4/tcp.o",
            "net/ipv6/tcp.o",
            "init/main.o",
            "net/$(shell reboot).o",
            "../x.o",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            make_vars(&objs),
            [
                "GCOV_PROFILE_main.o=$(if $(filter init,$(obj)),y)",
                "GCOV_PROFILE_mmap_lock.o=$(if $(filter mm,$(obj)),y)",
                "GCOV_PROFILE_tcp.o=$(if $(filter net/ipv4 net/ipv6,$(obj)),y)",
            ]
        );
    }

    /// The variables as the kernel's own makefiles read them: a sub-make per folder,
    /// `target-stem` as scripts/Makefile.lib computes it, a folder's own `:= n` kept.
    #[test]
    fn make_vars_reach_sub_makes_and_select_one_folder() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Makefile"),
            "all:\n\t@$(MAKE) -s -f sub.mk obj=net/ipv4 t=net/ipv4/tcp.o\n\t@$(MAKE) -s -f sub.mk obj=net/ipv6 t=net/ipv6/tcp.o\n\t@$(MAKE) -s -f sub.mk obj=mm t=mm/mmap_lock.o\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sub.mk"),
            "target-stem = $(basename $(patsubst $(obj)/%,%,$(t)))\nall:\n\t@echo $(t)=$(if $(patsubst n%,,$(GCOV_PROFILE_$(target-stem).o)$(GCOV_PROFILE)),on,off)\n",
        )
        .unwrap();
        let out = std::process::Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(d.path())
            .args(make_vars(&["net/ipv4/tcp.o".to_string()]))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "net/ipv4/tcp.o=on\nnet/ipv6/tcp.o=off\nmm/mmap_lock.o=off\n"
        );
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    #[test]
    fn the_option_an_object_needs() {
        let t = tree(&[
            ("Kbuild", "obj-y += mm/\nobj-$(CONFIG_NET) += net/\n"),
            (
                "mm/Makefile",
                "mmu-y := nommu.o\nmmu-$(CONFIG_MMU) := mmap.o \\\n\tmprotect.o\nobj-y := filemap.o $(mmu-y)\nobj-$(CONFIG_NUMA) += mempolicy.o\nifdef CONFIG_SWAP\nobj-y += swapfile.o\nendif\nobj-$(CONFIG_ZSWAP) += zs.o\nzs-y := zswap.o zpool.o\n",
            ),
            ("net/Makefile", "obj-$(CONFIG_INET) += ipv4/\n"),
            ("net/ipv4/Makefile", "obj-y := tcp.o\n"),
        ]);
        let s = syms(&[("MMU", "y"), ("NET", "y")]);
        let why = |o: &str, s: &Symbols| why_not_built(t.path(), o, "x86", s);
        assert_eq!(
            why("mm/mempolicy.o", &s).as_deref(),
            Some("needs CONFIG_NUMA")
        );
        assert_eq!(why("mm/mprotect.o", &s), None);
        assert_eq!(why("mm/filemap.o", &s), None);
        assert_eq!(
            why("mm/swapfile.o", &s).as_deref(),
            Some("needs CONFIG_SWAP")
        );
        assert_eq!(why("mm/zpool.o", &s).as_deref(), Some("needs CONFIG_ZSWAP"));
        assert_eq!(
            why("net/ipv4/tcp.o", &s).as_deref(),
            Some("needs CONFIG_INET")
        );
        assert_eq!(
            why("mm/nosuch.o", &s).as_deref(),
            Some("mm/Makefile does not list nosuch.o")
        );
        let s = syms(&[("MMU", "y"), ("INET", "y")]);
        assert_eq!(
            why("net/ipv4/tcp.o", &s).as_deref(),
            Some("needs CONFIG_NET")
        );
        assert_eq!(
            why("arch/arm64/mm/fault.o", &s).as_deref(),
            Some("built only for arch/arm64")
        );
    }

    #[test]
    fn folders_that_keep_objects_out_of_profiling() {
        let t = tree(&[
            (
                "kernel/gcov/Makefile",
                "GCOV_PROFILE := n\nobj-y := base.o\n",
            ),
            (
                "lib/Makefile",
                "GCOV_PROFILE_string.o := n\nobj-y += string.o sort.o\n",
            ),
        ]);
        assert!(profiling_excluded(t.path(), "kernel/gcov/base.o"));
        assert!(profiling_excluded(t.path(), "lib/string.o"));
        assert!(!profiling_excluded(t.path(), "lib/sort.o"));
        assert!(!profiling_excluded(t.path(), "mm/none.o"));
    }
}
