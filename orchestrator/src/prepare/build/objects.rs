//! The objects a patch series touches, and which of them this config builds, asked of
//! make itself: each folder's Kbuild Makefile is evaluated with the config's
//! `auto.conf`, so `mmu-$(CONFIG_MMU) := ... mprotect.o` followed by `obj-y += $(mmu-y)`
//! comes out as make sees it, not as a text search guesses it.

use crate::host::proc::{self, ProcSpec};
use crate::record::plan::Arch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Object files for the C files a patch series touches (`+++ b/net/ipv4/tcp.c` ->
/// `net/ipv4/tcp.o`), in first-seen order.
pub fn touched_objects(patches: &[PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for p in patches {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        for path in super::slot::touched_paths(&text) {
            if let Some(stem) = path.strip_suffix(".c") {
                let o = format!("{stem}.o");
                if !v.contains(&o) {
                    v.push(o);
                }
            }
        }
    }
    v
}

/// How many objects an incremental build recompiles because `changed` (paths relative to
/// `tree`) changed: the objects whose dependency list (the `.NAME.o.cmd` files fixdep
/// writes into the object folder) names one of them. A header a series touches rebuilds
/// everything that includes it, which the count of the slot's previous incremental build
/// knows nothing about. `None` when the folder has no such files (nothing built yet).
pub fn dependents(tree: &Path, objdir: &Path, changed: &[String]) -> Option<u64> {
    let needles: Vec<String> = changed
        .iter()
        .map(|c| format!("{}/{c}", tree.display()))
        .collect();
    let mut stack = vec![objdir.to_path_buf()];
    let (mut files, mut hits) = (0u64, 0u64);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() && name.starts_with('.') && name.ends_with(".o.cmd") {
                files += 1;
                let Ok(text) = std::fs::read(e.path()) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&text);
                // The object's own source is listed as `source_X := path`, its
                // dependencies one per line, each followed by ` \`.
                if needles.iter().any(|n| names(&text, n)) {
                    hits += 1;
                }
            }
        }
    }
    (files > 0).then_some(hits)
}

/// Whether `text` names the file `path` (and not one whose name starts like it).
fn names(text: &str, path: &str) -> bool {
    text.match_indices(path).any(|(i, _)| {
        text[i + path.len()..]
            .chars()
            .next()
            .is_none_or(char::is_whitespace)
    })
}

/// A makefile that loads the config and one folder's Kbuild file, then prints what that
/// folder builds. The variables a Kbuild file may read (`$(src)`, `$(obj)`, `$(srctree)`,
/// `$(SRCARCH)`) are passed on the command line.
const PRINT_MK: &str = "-include include/config/auto.conf\n\
include $(kmatrix-file)\n\
kmatrix-print:\n\
\t@echo $(obj-y) $(obj-m) $(lib-y)\n";

/// What make says one folder builds in this config (`None`: make could not say).
async fn folder_objects(tree: &Path, objdir: &Path, arch: Arch, dir: &str) -> Option<Vec<String>> {
    let base = if dir.is_empty() {
        tree.to_owned()
    } else {
        tree.join(dir)
    };
    let file = ["Kbuild", "Makefile"]
        .iter()
        .map(|f| base.join(f))
        .find(|p| p.is_file())?;
    let mk = objdir.join(".kmatrix-objects.mk");
    std::fs::write(&mk, PRINT_MK).ok()?;
    let srcarch = arch.srcarch();
    // The series' Kbuild file is evaluated here: sandboxed like the build.
    let out = proc::output(
        &crate::host::sandbox::Sandbox::new()
            .readable(tree)
            .writable(objdir)
            .wrap(
                ProcSpec::new("make")
                    .arg("-s")
                    .arg("-C")
                    .arg(objdir)
                    .arg("-f")
                    .arg(&mk)
                    .arg(format!("kmatrix-file={}", file.display()))
                    .arg(format!("srctree={}", tree.display()))
                    .arg(format!("src={dir}"))
                    .arg(format!("obj={dir}"))
                    .arg(format!("SRCARCH={srcarch}"))
                    .arg("ARCH_LIB=lib/")
                    .arg("kmatrix-print")
                    .timeout(Duration::from_secs(30)),
            ),
    )
    .await
    .ok()?;
    Some(out.split_whitespace().map(str::to_string).collect())
}

/// The touched objects this config builds: the object is in its folder's list, and each
/// folder in its parent's, up to the top. Anything make could not evaluate counts as
/// "not known to be built" (compiling a file the config leaves out would fail for the
/// wrong reason).
pub async fn enabled(tree: &Path, objdir: &Path, arch: Arch, objs: &[String]) -> Vec<String> {
    let mut lists: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    let mut out = Vec::new();
    for obj in objs {
        let mut item = Path::new(obj)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut dir = Path::new(obj)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let built = loop {
            if !lists.contains_key(&dir) {
                let l = folder_objects(tree, objdir, arch, &dir).await;
                lists.insert(dir.clone(), l);
            }
            let listed = lists[&dir].as_ref().is_some_and(|l| l.contains(&item));
            if !listed {
                break false;
            }
            if dir.is_empty() {
                break true;
            }
            let (parent, name) = match dir.rsplit_once('/') {
                Some((p, n)) => (p.to_string(), n.to_string()),
                None => (String::new(), dir.clone()),
            };
            item = format!("{name}/");
            dir = parent;
        };
        if built {
            out.push(obj.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn make_says_which_objects_the_config_builds() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("tree");
        let o = d.path().join("obj");
        for dir in ["net/ipv4", "mm", "lib", "include/config"] {
            std::fs::create_dir_all(t.join(dir)).unwrap();
        }
        std::fs::create_dir_all(o.join("include/config")).unwrap();
        std::fs::write(
            t.join("Kbuild"),
            "obj-y += mm/\nobj-$(CONFIG_NET) += net/\nobj-y += $(ARCH_LIB)\n",
        )
        .unwrap();
        std::fs::write(t.join("net/Makefile"), "obj-$(CONFIG_INET)\t\t+= ipv4/\n").unwrap();
        std::fs::write(
            t.join("net/ipv4/Makefile"),
            "obj-y     := route.o \\\n\t     tcp.o tcp_input.o\nobj-$(CONFIG_TCP_CONG_HTCP) += tcp_htcp.o\nccflags-y += $(call cc-option,-Wno-x)\n",
        )
        .unwrap();
        // The case a text search got wrong: objects listed through another variable.
        std::fs::write(
            t.join("mm/Makefile"),
            "mmu-y := nommu.o\nmmu-$(CONFIG_MMU) := mprotect.o mmap.o\nobj-y := filemap.o $(mmu-y)\nobj-$(CONFIG_KMATRIX_VMA_PROBE) += kmatrix_vma_probe.o\n",
        )
        .unwrap();
        std::fs::write(t.join("lib/Makefile"), "lib-y := string.o\n").unwrap();
        let objs: Vec<String> = [
            "net/ipv4/tcp.o",
            "net/ipv4/tcp_htcp.o",
            "mm/mprotect.o",
            "mm/nommu.o",
            "mm/kmatrix_vma_probe.o",
            "lib/string.o",
            "fs/nosuch.o",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        std::fs::write(
            o.join("include/config/auto.conf"),
            "CONFIG_NET=y\nCONFIG_INET=y\nCONFIG_MMU=y\nCONFIG_TCP_CONG_HTCP=m\n",
        )
        .unwrap();
        let on = enabled(&t, &o, Arch::X86_64, &objs).await;
        assert_eq!(
            on,
            [
                "net/ipv4/tcp.o",
                "net/ipv4/tcp_htcp.o",
                "mm/mprotect.o",
                "lib/string.o"
            ]
        );
        // Without INET the whole folder is out, and so is everything in it.
        std::fs::write(o.join("include/config/auto.conf"), "CONFIG_MMU=y\n").unwrap();
        assert_eq!(
            enabled(&t, &o, Arch::X86_64, &objs).await,
            ["mm/mprotect.o", "lib/string.o"]
        );
    }

    #[test]
    fn objects_that_include_a_changed_header_are_counted_from_fixdeps_files() {
        let obj = tempfile::tempdir().unwrap();
        let tree = "/slot/tree";
        let cmd = |dir: &str, name: &str, deps: &[&str]| {
            let d = obj.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            let mut t = format!("savedcmd_{dir}/{name}.o := gcc ...\n\nsource_{dir}/{name}.o := {tree}/{dir}/{name}.c\n\ndeps_{dir}/{name}.o := \\\n");
            for dep in deps {
                t.push_str(&format!("  {tree}/{dep} \\\n"));
            }
            std::fs::write(d.join(format!(".{name}.o.cmd")), t).unwrap();
        };
        assert_eq!(
            dependents(Path::new(tree), obj.path(), &["mm/a.c".into()]),
            None
        );
        cmd(
            "mm",
            "memory",
            &["include/linux/mmap_lock.h", "include/linux/mm.h"],
        );
        cmd("mm", "mmap_lock", &["include/linux/mmap_lock.h"]);
        cmd("net/ipv4", "tcp", &["include/linux/mm.h"]);
        // Not the header: a name that only starts like it.
        cmd("kernel", "fork", &["include/linux/mmap_lock.h.orig"]);
        std::fs::write(
            obj.path().join("mm/.memory.o.d"),
            "include/linux/mmap_lock.h",
        )
        .unwrap();
        let n = |c: &[&str]| {
            let c: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            dependents(Path::new(tree), obj.path(), &c)
        };
        assert_eq!(n(&["include/linux/mmap_lock.h"]), Some(2));
        assert_eq!(n(&["net/ipv4/tcp.c"]), Some(1));
        assert_eq!(n(&["include/linux/mmap_lock.h", "net/ipv4/tcp.c"]), Some(3));
        assert_eq!(n(&["include/linux/mm.h"]), Some(2));
        assert_eq!(n(&["Documentation/x.rst"]), Some(0));
    }

    #[test]
    fn touched_objects_come_from_the_patch_headers() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0001.patch");
        std::fs::write(
            &p,
            "--- a/mm/mmap_lock.c\n+++ b/mm/mmap_lock.c\t2026-06-10\n@@\n--- a/include/linux/mmap_lock.h\n+++ b/include/linux/mmap_lock.h\n--- a/net/ipv4/tcp.c\n+++ b/net/ipv4/tcp.c\n",
        )
        .unwrap();
        assert_eq!(touched_objects(&[p]), ["mm/mmap_lock.o", "net/ipv4/tcp.o"]);
    }
}
