//! Kernel builds: config generation and verification, `make` with its log streamed to
//! disk, and a cache of finished kernels keyed by everything that decides the output.

use crate::cache::{Cache, Hasher};
use crate::kconfig::{self, Mismatch};
use crate::plan::Cell;
use crate::proc::{self, ProcError, ProcSpec};
use crate::source::Tree;
use std::path::{Path, PathBuf};

/// Bump when the build recipe changes in a way that changes outputs.
const RECIPE: &str = "kmatrix-build-v2";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the `{target}` config; see {log}")]
    Config {
        target: String,
        log: PathBuf,
        #[source]
        source: ProcError,
    },
    #[error(
        "toolchain `{cc}` not usable: install Debian's {package} (`sudo scripts/setup-host` does)"
    )]
    Toolchain {
        cc: String,
        package: &'static str,
        #[source]
        source: ProcError,
    },
}

/// What the build phase decided for a cell.
#[derive(Debug)]
pub enum BuildOutcome {
    Built(Kernel),
    /// The final config is not what the fragments asked for: never built.
    ConfigMismatch {
        mismatches: Vec<Mismatch>,
        config: PathBuf,
    },
    /// `make` failed: the first compiler errors and the full log.
    Failed {
        errors: Vec<String>,
        log: PathBuf,
    },
}

/// A built kernel in the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub image: PathBuf,
    pub vmlinux: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub key: String,
    /// True when no `make` ran (cache hit).
    pub cached: bool,
    /// Out-of-tree modules built against this kernel.
    pub modules: Vec<ModuleBuild>,
}

/// One out-of-tree module built against a kernel: its `.ko`, or why it did not build
/// (modpost's `undefined!` for a symbol the kernel does not export, say).
#[derive(Debug, Clone)]
pub struct ModuleBuild {
    pub name: String,
    pub ko: Option<PathBuf>,
    pub errors: Vec<String>,
}

/// A module to build: its name (`<name>.ko`) and source folder.
pub type ModuleSource = (String, PathBuf);

/// The modules' results as stored in a cached kernel's folder.
fn load_modules(out: &Path, modules: &[ModuleSource]) -> Vec<ModuleBuild> {
    modules
        .iter()
        .map(|(name, _)| {
            let ko = out.join("modules").join(format!("{name}.ko"));
            let errors =
                std::fs::read_to_string(out.join("modules").join(format!("{name}.errors")))
                    .map(|t| t.lines().map(str::to_string).collect())
                    .unwrap_or_default();
            ModuleBuild {
                name: name.clone(),
                ko: ko.is_file().then_some(ko),
                errors,
            }
        })
        .collect()
}

/// The lines of a module build's output that say why it failed: modpost's verdicts
/// (`ERROR: modpost: "sym" [...] undefined!`) and compiler errors.
pub fn module_errors(log: &str) -> Vec<String> {
    let mut v: Vec<String> = log
        .lines()
        .filter(|l| l.contains("ERROR: modpost:") || l.contains("error:"))
        .map(|l| l.trim().to_string())
        .collect();
    v.dedup();
    v.truncate(10);
    v
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The compiler `make` will use, with ccache in front when it is installed.
fn compiler(cell: &Cell) -> String {
    let cc = format!("{}gcc", cell.arch.cross_prefix());
    if which("ccache") {
        format!("ccache {cc}")
    } else {
        cc
    }
}

pub fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// `make` arguments for a cell (pure: unit-tested, logged in full).
pub fn make_args(
    cell: &Cell,
    tree: &Path,
    objdir: &Path,
    cc: &str,
    jobs: usize,
    targets: &[&str],
) -> Vec<String> {
    let mut a = vec![
        "-C".to_string(),
        tree.display().to_string(),
        format!("O={}", objdir.display()),
        format!("ARCH={}", cell.arch.kernel_arch()),
    ];
    if !cell.arch.cross_prefix().is_empty() {
        a.push(format!("CROSS_COMPILE={}", cell.arch.cross_prefix()));
    }
    a.push(format!("CC={cc}"));
    a.push(format!("-j{}", jobs.max(1)));
    a.extend(targets.iter().map(|t| t.to_string()));
    a
}

/// The cache key: tree identity, patches (already in the tree id), base config, fragment
/// contents in order, arch, compiler version, recipe.
pub async fn cache_key(
    cell: &Cell,
    tree: &Tree,
    modules: &[ModuleSource],
) -> Result<String, BuildError> {
    let cc = format!("{}gcc", cell.arch.cross_prefix());
    let version = proc::output(&ProcSpec::new(&cc).arg("--version"))
        .await
        .map_err(|source| BuildError::Toolchain {
            cc: cc.clone(),
            package: cell.arch.compiler_package(),
            source,
        })?;
    let mut h = Hasher::new(RECIPE);
    h.field(tree.id.as_bytes())
        .field(cell.arch.name().as_bytes())
        .field(cell.base_config.as_bytes())
        .field(version.lines().next().unwrap_or_default().as_bytes());
    for f in &cell.fragments {
        h.file(f).map_err(io(f))?;
    }
    for (name, dir) in modules {
        h.field(name.as_bytes());
        for f in module_files(dir)? {
            h.field(f.file_name().unwrap_or_default().as_encoded_bytes());
            h.file(&f).map_err(io(&f))?;
        }
    }
    Ok(h.finish())
}

/// Build (or find in the cache) the kernel for a cell. The cell's own folder receives
/// `build.log` and `config` either way.
pub async fn build(
    cell: &Cell,
    tree: &Tree,
    cache: &Cache,
    jobs: usize,
    cell_dir: &Path,
    rebuild: bool,
    modules: &[ModuleSource],
) -> Result<BuildOutcome, BuildError> {
    let key = cache_key(cell, tree, modules).await?;
    let out = cache.dir("kernels").join(&key);
    let kernel = Kernel {
        image: out.join("image"),
        vmlinux: out.join("vmlinux"),
        config: out.join("config"),
        log: out.join("build.log"),
        key: key.clone(),
        cached: true,
        modules: load_modules(&out, modules),
    };
    std::fs::create_dir_all(cell_dir).map_err(io(cell_dir))?;
    if !rebuild && out.join(".complete").exists() {
        copy_evidence(&kernel, cell_dir)?;
        return Ok(BuildOutcome::Built(kernel));
    }

    // The object folder is per tree and cell so reruns after a change are incremental.
    let objdir = cache.dir("obj").join(&tree.id).join(cell.dir_name());
    std::fs::create_dir_all(&objdir).map_err(io(&objdir))?;
    // Two runs (or two tests) building the same cell share one object folder: take turns.
    let _lock = lock_dir(&objdir).await?;
    if !rebuild && out.join(".complete").exists() {
        copy_evidence(&kernel, cell_dir)?;
        return Ok(BuildOutcome::Built(kernel));
    }
    let log = cell_dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    let cc = compiler(cell);
    let make = |targets: &[&str], jobs: usize| {
        ProcSpec::new("make")
            .args(make_args(cell, &tree.path, &objdir, &cc, jobs, targets))
            .log(&log)
    };

    // 1. base config, 2. merge fragments in order, 3. olddefconfig, 4. verify.
    let spec = make(&[&cell.base_config], 1);
    append(&log, &format!("$ {}\n", spec.display()));
    proc::run(&spec)
        .await
        .map_err(|source| BuildError::Config {
            target: cell.base_config.clone(),
            log: log.clone(),
            source,
        })?;
    let cfg_path = objdir.join(".config");
    let base = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let mut fragments = Vec::new();
    for f in &cell.fragments {
        let text = std::fs::read_to_string(f).map_err(io(f))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        fragments.push((name, text));
    }
    let (merged, requested) = kconfig::merge(&base, &fragments);
    std::fs::write(&cfg_path, merged).map_err(io(&cfg_path))?;
    let spec = make(&["olddefconfig"], 1);
    append(&log, &format!("$ {}\n", spec.display()));
    proc::run(&spec)
        .await
        .map_err(|source| BuildError::Config {
            target: "olddefconfig".into(),
            log: log.clone(),
            source,
        })?;
    let final_cfg = std::fs::read_to_string(&cfg_path).map_err(io(&cfg_path))?;
    let cell_cfg = cell_dir.join("config");
    std::fs::write(&cell_cfg, &final_cfg).map_err(io(&cell_cfg))?;
    let mut mismatches = kconfig::verify(&requested, &final_cfg);
    if !mismatches.is_empty() {
        for m in &mut mismatches {
            m.kconfig = kconfig::kconfig_entry(&tree.path, &m.symbol);
        }
        return Ok(BuildOutcome::ConfigMismatch {
            mismatches,
            config: cell_cfg,
        });
    }

    // 5. Files the patches touch first: a compile error there is known in a minute or
    //    two, not after most of the kernel was built (Kbuild builds net/ near the end).
    let enabled = kconfig::parse(&final_cfg);
    let touched: Vec<String> = touched_objects(&cell.patches)
        .into_iter()
        .filter(|o| object_enabled(&tree.path, &enabled, o))
        .collect();
    if !touched.is_empty() {
        let refs: Vec<&str> = touched.iter().map(String::as_str).collect();
        let mut args = vec!["-k"];
        args.extend(refs);
        let spec = make(&args, jobs);
        append(&log, &format!("$ {}\n", spec.display()));
        if let Ok(mut p) = proc::spawn(&spec) {
            if let Ok(st) = p.wait().await {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let errors: Vec<String> = first_errors(&text, 10)
                    .into_iter()
                    .map(|l| relative_to(&l, &tree.path))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .filter(|l| l.contains("error:"))
                    .collect();
                if !st.success() && !errors.is_empty() {
                    return Ok(BuildOutcome::Failed { errors, log });
                }
            }
        }
    }

    // 6. the build itself.
    let (target, image_rel) = cell.arch.image_target();
    // With out-of-tree modules to build, `modules` writes Module.symvers: without it
    // modpost only warns about symbols the kernel does not export.
    let targets: &[&str] = if modules.is_empty() {
        &[target]
    } else {
        &[target, "modules"]
    };
    let spec = make(targets, jobs);
    append(&log, &format!("$ {}\n", spec.display()));
    let mut p = proc::spawn(&spec).map_err(|e| BuildError::Config {
        target: target.into(),
        log: log.clone(),
        source: e,
    })?;
    let status = p.wait().await.map_err(|e| BuildError::Config {
        target: target.into(),
        log: log.clone(),
        source: e,
    })?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        return Ok(BuildOutcome::Failed {
            errors: first_errors(&text, 10)
                .into_iter()
                .map(|l| relative_to(&l, &tree.path))
                .collect::<Vec<_>>(),
            log,
        });
    }

    // 7. publish into the cache atomically.
    let tmp = out.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("modules")).map_err(io(&tmp))?;

    // 8. out-of-tree modules against this kernel. One that does not build is a result
    //    (a test reports it), not a failed kernel.
    for (name, src) in modules {
        let mdir = objdir.join("kmatrix-modules").join(name);
        let _ = std::fs::remove_dir_all(&mdir);
        std::fs::create_dir_all(&mdir).map_err(io(&mdir))?;
        for f in module_files(src)? {
            let dst = mdir.join(f.file_name().unwrap_or_default());
            std::fs::copy(&f, &dst).map_err(io(&f))?;
        }
        let mlog = mdir.join("build.log");
        let m = format!("M={}", mdir.display());
        let spec = ProcSpec::new("make")
            .args(make_args(
                cell,
                &tree.path,
                &objdir,
                &cc,
                jobs,
                &[&m, "modules"],
            ))
            .log(&mlog);
        append(&log, &format!("$ {}\n", spec.display()));
        let ok = proc::run(&spec).await.is_ok();
        let text = std::fs::read_to_string(&mlog).unwrap_or_default();
        append(&log, &text);
        let ko = mdir.join(format!("{name}.ko"));
        if ok && ko.is_file() {
            std::fs::copy(&ko, tmp.join("modules").join(format!("{name}.ko"))).map_err(io(&ko))?;
        } else {
            let mut errors = module_errors(&text);
            if errors.is_empty() {
                errors.push(format!("make M=... modules failed; see {}", log.display()));
            }
            let f = tmp.join("modules").join(format!("{name}.errors"));
            std::fs::write(&f, errors.join("\n")).map_err(io(&f))?;
        }
    }
    for (from, to) in [
        (objdir.join(image_rel), "image"),
        (objdir.join("vmlinux"), "vmlinux"),
        (cfg_path.clone(), "config"),
        (log.clone(), "build.log"),
    ] {
        std::fs::copy(&from, tmp.join(to)).map_err(io(&from))?;
    }
    std::fs::write(tmp.join(".complete"), b"").map_err(io(&tmp))?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&tmp, &out).map_err(io(&out))?;
    Ok(BuildOutcome::Built(Kernel {
        cached: false,
        modules: load_modules(&out, modules),
        ..kernel
    }))
}

/// A module folder's files (flat, sorted: Kbuild and sources).
fn module_files(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// An exclusive lock on a folder, held until dropped.
async fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, BuildError> {
    let path = dir.join(".kmatrix-lock");
    crate::cache::lock(&path).await.map_err(io(&path))
}

fn copy_evidence(k: &Kernel, cell_dir: &Path) -> Result<(), BuildError> {
    for (from, to) in [(&k.log, "build.log"), (&k.config, "config")] {
        let dst = cell_dir.join(to);
        std::fs::copy(from, &dst).map_err(io(from))?;
    }
    Ok(())
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Object files for the C files a patch series touches (`+++ b/net/ipv4/tcp.c` ->
/// `net/ipv4/tcp.o`), in first-seen order.
pub fn touched_objects(patches: &[PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for p in patches {
        let Ok(text) = std::fs::read_to_string(p) else {
            continue;
        };
        for l in text.lines() {
            let Some(path) = l.strip_prefix("+++ b/") else {
                continue;
            };
            let path = path.split_whitespace().next().unwrap_or_default();
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

/// Is `obj` (e.g. `net/ipv4/tcp.o`) built in this config? Read from the Kbuild
/// Makefiles: `obj-y += x.o` or `obj-$(CONFIG_X) += x.o` with X=y, and the same for each
/// folder up to a top-level one. Anything less plain counts as "don't know" (false), since
/// compiling a file alone that the config leaves out would fail for the wrong reason.
pub fn object_enabled(
    tree: &Path,
    config: &std::collections::BTreeMap<String, String>,
    obj: &str,
) -> bool {
    let mut item = obj.to_string();
    let mut dir = match Path::new(obj).parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => return false,
    };
    loop {
        let name = Path::new(&item)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let token = if item.ends_with('/') {
            format!("{name}/")
        } else {
            name
        };
        let mk = ["Makefile", "Kbuild"]
            .iter()
            .find_map(|m| std::fs::read_to_string(tree.join(&dir).join(m)).ok());
        let Some(mk) = mk else { return false };
        if !listed_as_enabled(&mk.replace("\\\n", " "), &token, config) {
            return false;
        }
        // Up one folder: the folder itself must be listed in its parent.
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => {
                item = format!("{}/", dir.display());
                dir = p.to_owned();
            }
            _ => return true,
        }
    }
}

fn listed_as_enabled(
    makefile: &str,
    token: &str,
    config: &std::collections::BTreeMap<String, String>,
) -> bool {
    for stmt in makefile.lines() {
        let Some((lhs, rhs)) = stmt.split_once('=') else {
            continue;
        };
        if !rhs.split_whitespace().any(|t| t == token) {
            continue;
        }
        let lhs = lhs.trim().trim_end_matches([':', '+', '?']).trim();
        if lhs == "obj-y" {
            return true;
        }
        if let Some(sym) = lhs
            .strip_prefix("obj-$(CONFIG_")
            .and_then(|r| r.strip_suffix(')'))
        {
            return config.get(sym).is_some_and(|v| v == "y");
        }
    }
    false
}

/// Compiler messages name files by absolute path inside the (cache) tree; show them as the
/// kernel's own paths, `net/ipv4/tcp.c:2175:38: error: ...`.
fn relative_to(line: &str, tree: &Path) -> String {
    line.replace(&format!("{}/", tree.display()), "")
}

/// The first compiler/linker errors in a build log (`file:line:col: error: ...`).
pub fn first_errors(log: &str, max: usize) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for l in log.lines() {
        let is_err = l.contains(": error: ")
            || l.contains(": fatal error: ")
            || l.contains("undefined reference to")
            || (l.starts_with("ERROR: modpost:"));
        if is_err && !v.iter().any(|x| x == l) {
            v.push(l.to_string());
            if v.len() == max {
                break;
            }
        }
    }
    if v.is_empty() {
        // No recognisable error line: show make's own last words.
        v = log
            .lines()
            .rev()
            .filter(|l| l.starts_with("make") || l.contains("Error"))
            .take(3)
            .map(str::to_string)
            .collect();
        v.reverse();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Arch;

    fn cell(arch: Arch) -> Cell {
        Cell {
            arch,
            config: "pvl-on".into(),
            patchset: "base".into(),
            base_config: "tinyconfig".into(),
            fragments: vec![],
            patches: vec![],
        }
    }

    #[test]
    fn make_args_native_and_cross() {
        let a = make_args(
            &cell(Arch::X86_64),
            Path::new("/t"),
            Path::new("/o"),
            "gcc",
            2,
            &["bzImage"],
        );
        assert_eq!(
            a,
            [
                "-C",
                "/t",
                "O=/o",
                "ARCH=x86_64",
                "CC=gcc",
                "-j2",
                "bzImage"
            ]
        );
        let a = make_args(
            &cell(Arch::Arm64),
            Path::new("/t"),
            Path::new("/o"),
            "ccache aarch64-linux-gnu-gcc",
            4,
            &["Image"],
        );
        assert_eq!(
            a,
            [
                "-C",
                "/t",
                "O=/o",
                "ARCH=arm64",
                "CROSS_COMPILE=aarch64-linux-gnu-",
                "CC=ccache aarch64-linux-gnu-gcc",
                "-j4",
                "Image"
            ]
        );
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

    #[test]
    fn object_enabled_follows_kbuild_lists_and_config() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path();
        std::fs::create_dir_all(t.join("net/ipv4")).unwrap();
        std::fs::create_dir_all(t.join("mm")).unwrap();
        std::fs::write(t.join("net/Makefile"), "obj-$(CONFIG_INET)\t\t+= ipv4/\n").unwrap();
        std::fs::write(
            t.join("net/ipv4/Makefile"),
            "obj-y     := route.o \\\n\t     tcp.o tcp_input.o\nobj-$(CONFIG_TCP_CONG_HTCP) += tcp_htcp.o\n",
        )
        .unwrap();
        std::fs::write(
            t.join("mm/Makefile"),
            "obj-$(CONFIG_KMATRIX_VMA_PROBE) += kmatrix_vma_probe.o\nmmu-y := nommu.o\n",
        )
        .unwrap();
        let cfg = crate::kconfig::parse("CONFIG_INET=y\nCONFIG_TCP_CONG_HTCP=m\n");
        assert!(object_enabled(t, &cfg, "net/ipv4/tcp.o"));
        assert!(
            !object_enabled(t, &cfg, "net/ipv4/tcp_htcp.o"),
            "=m is not built in"
        );
        assert!(
            !object_enabled(t, &cfg, "mm/kmatrix_vma_probe.o"),
            "symbol unset"
        );
        assert!(
            !object_enabled(t, &cfg, "mm/nommu.o"),
            "indirect list: don't know"
        );
        let no_inet = crate::kconfig::parse("");
        assert!(
            !object_enabled(t, &no_inet, "net/ipv4/tcp.o"),
            "folder not built"
        );
    }

    #[test]
    fn first_errors_finds_compiler_errors_with_file_and_line() {
        let log = "  CC      net/ipv4/tcp.o\n../net/ipv4/tcp.c:2175:35: error: implicit declaration of function 'vma_start_read_unlocked' [-Werror=implicit-function-declaration]\n 2175 |  struct vm_area_struct *vma = vma_start_read_unlocked(mm, address);\nmake[4]: *** [../scripts/Makefile.build:287: net/ipv4/tcp.o] Error 1\n";
        let e = first_errors(log, 10);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("../net/ipv4/tcp.c:2175:35: error:"));
        let e = first_errors("make: *** [Makefile:224: __sub-make] Error 2\n", 10);
        assert_eq!(e, ["make: *** [Makefile:224: __sub-make] Error 2"]);
    }

    #[tokio::test]
    async fn cache_key_changes_with_each_input() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.config");
        std::fs::write(&f, "CONFIG_A=y\n").unwrap();
        let mut c = cell(Arch::X86_64);
        c.fragments = vec![f.clone()];
        let tree = Tree {
            path: d.path().into(),
            id: "linux-7.3".into(),
        };
        let k0 = cache_key(&c, &tree, &[]).await.unwrap();
        assert_eq!(k0, cache_key(&c, &tree, &[]).await.unwrap(), "stable");
        std::fs::write(&f, "CONFIG_A=n\n").unwrap();
        let k1 = cache_key(&c, &tree, &[]).await.unwrap();
        assert_ne!(k0, k1, "fragment content");
        let tree2 = Tree {
            id: "linux-7.3+patch".into(),
            ..tree.clone()
        };
        assert_ne!(
            k1,
            cache_key(&c, &tree2, &[]).await.unwrap(),
            "tree/patches"
        );
        let m = d.path().join("vma_user");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("Kbuild"), "obj-m := vma_user.o\n").unwrap();
        let mods = [("vma_user".to_string(), m.clone())];
        let k2 = cache_key(&c, &tree, &mods).await.unwrap();
        assert_ne!(k1, k2, "a module to build");
        std::fs::write(m.join("vma_user.c"), "int x;\n").unwrap();
        assert_ne!(
            k2,
            cache_key(&c, &tree, &mods).await.unwrap(),
            "module source"
        );
        c.base_config = "defconfig".into();
        assert_ne!(k1, cache_key(&c, &tree, &[]).await.unwrap(), "base config");
    }

    #[test]
    fn module_errors_keep_modposts_verdict() {
        // As 7.3's modpost says it (older ones quote the symbol and the path).
        let log = "  MODPOST Module.symvers\nERROR: modpost: vma_user.ko: symbol 'vma_start_read_unlocked' undefined!\nmake[3]: *** [../scripts/Makefile.modpost:147: Module.symvers] Error 1\n";
        assert_eq!(
            module_errors(log),
            ["ERROR: modpost: vma_user.ko: symbol 'vma_start_read_unlocked' undefined!"]
        );
    }
}
