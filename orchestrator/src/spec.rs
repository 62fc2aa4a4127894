//! The YAML matrix spec: raw serde structs, then `validate()` into a typed [`Plan`].
//!
//! Two stages so that serde reports syntax and unknown keys with a line and column, and
//! our own checks report semantic problems with the key path (and its line when found).

use crate::console::Kind;
use crate::plan::{Arch, Cell, Expectation, Plan, TestSpec, VmSettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}{}: `{key}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSpec {
    source: RawSource,
    #[serde(default = "default_base_config")]
    base_config: String,
    #[serde(default)]
    fragments: Vec<String>,
    arches: Vec<String>,
    configs: BTreeMap<String, Vec<String>>,
    patchsets: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    tests: Vec<RawTest>,
    #[serde(default)]
    vm: RawVm,
    #[serde(default)]
    jobs: Option<usize>,
    #[serde(default = "default_guest_tests")]
    guest_tests: String,
    #[serde(default = "default_kconfigs")]
    kconfigs: String,
    /// Test-harness patches applied after a patchset's own patches.
    #[serde(default)]
    harness: Vec<RawHarness>,
    /// The patchset findings are compared against ("also in baseline").
    #[serde(default)]
    baseline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHarness {
    patch: String,
    /// Patchsets it applies to; all when absent.
    #[serde(default)]
    patchsets: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawExpect {
    kind: String,
    #[serde(default)]
    title: Option<String>,
}

fn default_base_config() -> String {
    "tinyconfig".into()
}
fn default_guest_tests() -> String {
    "guest-tests".into()
}
fn default_kconfigs() -> String {
    "kconfigs".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSource {
    #[serde(default)]
    debian_package: Option<String>,
    #[serde(default)]
    tarball: Option<String>,
    #[serde(default)]
    git: Option<String>,
    /// Revision for `git` (branch, tag or commit); HEAD when absent.
    #[serde(default)]
    rev: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTest {
    name: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default = "default_duration")]
    duration: String,
    #[serde(default = "default_timeout")]
    timeout: String,
    /// Run only in these patchsets / configs / arches (all when absent).
    #[serde(default)]
    patchsets: Option<Vec<String>>,
    #[serde(default)]
    configs: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    /// Kernel reports this test provokes on purpose (positive controls).
    #[serde(default)]
    expect: Vec<RawExpect>,
    /// An out-of-tree kernel module (a folder with a Kbuild file) built against each
    /// cell's kernel and shared with the guest, which the test loads.
    #[serde(default)]
    module: Option<String>,
}
fn default_duration() -> String {
    "20s".into()
}
fn default_timeout() -> String {
    "5m".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawVm {
    accel: Option<String>,
    memory: Option<String>,
    cpus: Option<u32>,
    boot_timeout: Option<String>,
    hung_task_timeout: Option<String>,
}

/// Where the kernel tree comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A Debian binary package shipping `/usr/src/<name>.tar.xz` (e.g. `linux-source-7.3`).
    DebianPackage(String),
    /// A kernel tree already on disk, used in place (never modified).
    Path(PathBuf),
    /// A release tarball (`linux-7.3.tar.xz`), unpacked once into the cache.
    Tarball(PathBuf),
    /// A git repository (path or URL) and a revision, checked out once into the cache as
    /// a worktree of a cached clone.
    Git { repo: String, rev: String },
}

/// Accelerator choice for QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

/// Parse a humane duration: `90s`, `5m`, `1h`, `1m30s`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (try `30s`, `5m`)"))?;
        num.clear();
        total += match c {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            _ => return Err(format!("`{s}` is not a duration (try `30s`, `5m`)")),
        };
    }
    if !num.is_empty() || s.is_empty() {
        return Err(format!("`{s}` is not a duration (try `30s`, `5m`)"));
    }
    Ok(Duration::from_secs(total))
}

/// Parse a memory size such as `1G`, `512M` into MiB.
pub fn parse_mib(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.chars().last() {
        Some('G' | 'g') => (&s[..s.len() - 1], 1024),
        Some('M' | 'm') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("`{s}` is not a memory size (try `1G` or `768M`)"))
}

/// Load and validate a spec file.
pub fn load(path: &Path) -> Result<Plan, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parse and validate spec text; `path` names the file in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Plan, SpecError> {
    let raw: RawSpec = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        // The library's message can carry a rendered snippet; keep its first line.
        let message = e.to_string().lines().next().unwrap_or_default().to_string();
        SpecError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })?;
    let mut h = crate::cache::Hasher::new("spec");
    h.field(text.as_bytes());
    let mut plan = validate(path, text, raw)?;
    plan.spec_hash = h.finish();
    Ok(plan)
}

fn validate(path: &Path, text: &str, raw: RawSpec) -> Result<Plan, SpecError> {
    // Absolute, so paths handed to QEMU, virtiofsd and make mean the same from anywhere.
    let root = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
    let invalid = |key: &str, message: String| SpecError::Invalid {
        path: path.to_owned(),
        line: find_key_line(text, key),
        key: key.to_string(),
        message,
    };

    let given = [
        raw.source.debian_package.is_some(),
        raw.source.path.is_some(),
        raw.source.tarball.is_some(),
        raw.source.git.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(invalid(
            "source",
            "give exactly one of `debian-package`, `path`, `tarball` or `git` (with `rev`)".into(),
        ));
    }
    if raw.source.rev.is_some() && raw.source.git.is_none() {
        return Err(invalid("source.rev", "`rev` goes with `git`".into()));
    }
    let source = match (raw.source.debian_package, raw.source.path) {
        _ if raw.source.tarball.is_some() => {
            let t = root.join(raw.source.tarball.as_deref().unwrap_or_default());
            if !t.is_file() {
                return Err(invalid(
                    "source.tarball",
                    format!("{} does not exist", t.display()),
                ));
            }
            SourceSpec::Tarball(t)
        }
        _ if raw.source.git.is_some() => {
            let repo = raw.source.git.clone().unwrap_or_default();
            // A local repository is resolved against the spec's folder; URLs stay as given.
            let repo = if repo.contains("://") || repo.contains('@') {
                repo
            } else {
                root.join(&repo).display().to_string()
            };
            SourceSpec::Git {
                repo,
                rev: raw.source.rev.clone().unwrap_or_else(|| "HEAD".into()),
            }
        }
        (Some(p), None) => SourceSpec::DebianPackage(p),
        (None, Some(p)) => {
            let p = root.join(p);
            if !p.join("Makefile").is_file() {
                return Err(invalid(
                    "source.path",
                    format!("{} is not a kernel tree (no Makefile)", p.display()),
                ));
            }
            SourceSpec::Path(p)
        }
        _ => {
            return Err(invalid(
                "source",
                "give exactly one of `debian-package` or `path`".into(),
            ))
        }
    };

    let kconfigs = root.join(&raw.kconfigs);
    let fragment = |key: &str, name: &str| -> Result<PathBuf, SpecError> {
        let p = kconfigs.join(format!("{name}.config"));
        if p.is_file() {
            Ok(p)
        } else {
            Err(invalid(
                key,
                format!(
                    "fragment `{name}` not found: expected {} (fragments live in `{}`)",
                    p.display(),
                    raw.kconfigs
                ),
            ))
        }
    };
    let common: Vec<PathBuf> = raw
        .fragments
        .iter()
        .map(|f| fragment("fragments", f))
        .collect::<Result<_, _>>()?;

    if raw.arches.is_empty() {
        return Err(invalid("arches", "list at least one arch".into()));
    }
    let mut arches = Vec::new();
    for a in &raw.arches {
        let arch = Arch::from_name(a).ok_or_else(|| {
            invalid(
                "arches",
                format!("unknown arch `{a}`: kmatrix knows x86_64 and arm64"),
            )
        })?;
        if arches.contains(&arch) {
            return Err(invalid("arches", format!("arch `{a}` listed twice")));
        }
        arches.push(arch);
    }
    if raw.configs.is_empty() {
        return Err(invalid("configs", "define at least one config".into()));
    }
    let mut configs = BTreeMap::new();
    for (name, frags) in &raw.configs {
        check_name("configs", name).map_err(|m| invalid(&format!("configs.{name}"), m))?;
        let key = format!("configs.{name}");
        let paths = frags
            .iter()
            .map(|f| fragment(&key, f))
            .collect::<Result<Vec<_>, _>>()?;
        configs.insert(name.clone(), paths);
    }
    if raw.patchsets.is_empty() {
        return Err(invalid(
            "patchsets",
            "define at least one patchset (`base: []` builds the tree unpatched)".into(),
        ));
    }
    let mut patchsets = BTreeMap::new();
    for (name, patches) in &raw.patchsets {
        let key = format!("patchsets.{name}");
        check_name("patchsets", name).map_err(|m| invalid(&key, m))?;
        let mut files = Vec::new();
        for p in patches {
            files.extend(resolve_patches(&root.join(p)).map_err(|m| invalid(&key, m))?);
        }
        patchsets.insert(name.clone(), files);
    }
    if let Some(b) = &raw.baseline {
        if !patchsets.contains_key(b) {
            return Err(invalid("baseline", format!("unknown patchset `{b}`")));
        }
    }
    let mut harness: Vec<(PathBuf, Option<Vec<String>>)> = Vec::new();
    for (i, h) in raw.harness.iter().enumerate() {
        let key = format!("harness[{i}]");
        let f = root.join(&h.patch);
        if !f.is_file() {
            return Err(invalid(
                &key,
                format!("patch {} does not exist", f.display()),
            ));
        }
        if let Some(ps) = &h.patchsets {
            for p in ps {
                if !patchsets.contains_key(p) {
                    return Err(invalid(&key, format!("unknown patchset `{p}`")));
                }
            }
        }
        harness.push((f, h.patchsets.clone()));
    }

    let guest_tests = root.join(&raw.guest_tests);
    let mut tests = Vec::new();
    for (i, t) in raw.tests.iter().enumerate() {
        let key = format!("tests[{i}]");
        let src = guest_tests.join(format!("{}.c", t.name));
        if !src.is_file() {
            return Err(invalid(
                &key,
                format!("guest test `{}` has no source {}", t.name, src.display()),
            ));
        }
        if tests.iter().any(|x: &TestSpec| x.name == t.name) {
            return Err(invalid(&key, format!("test `{}` listed twice", t.name)));
        }
        let duration = parse_duration(&t.duration).map_err(|m| invalid(&key, m))?;
        let timeout = parse_duration(&t.timeout).map_err(|m| invalid(&key, m))?;
        if timeout <= duration {
            return Err(invalid(
                &key,
                format!("timeout {} must exceed duration {}", t.timeout, t.duration),
            ));
        }
        let check = |what: &str, names: &Option<Vec<String>>, known: &dyn Fn(&str) -> bool| {
            for n in names.iter().flatten() {
                if !known(n) {
                    return Err(invalid(&key, format!("unknown {what} `{n}`")));
                }
            }
            Ok(())
        };
        check("patchset", &t.patchsets, &|n| patchsets.contains_key(n))?;
        check("config", &t.configs, &|n| configs.contains_key(n))?;
        check("arch", &t.arches, &|n| Arch::from_name(n).is_some())?;
        let mut expect = Vec::new();
        for e in &t.expect {
            let kind: Kind = serde_json::from_value(serde_json::Value::String(e.kind.clone()))
                .map_err(|_| invalid(&key, format!("unknown report kind `{}` in expect (kinds: lockdep, hung_task, null_deref, warning, bug, ...)", e.kind)))?;
            expect.push(Expectation {
                kind,
                title: e.title.clone(),
            });
        }
        let module = match &t.module {
            None => None,
            Some(m) => {
                let dir = root.join(m);
                if !dir.join("Kbuild").is_file() {
                    return Err(invalid(
                        &format!("{key}.module"),
                        format!(
                            "{} is not a module source folder: it needs a Kbuild file with `obj-m := {}.o`",
                            dir.display(),
                            dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                        ),
                    ));
                }
                Some(dir)
            }
        };
        tests.push(TestSpec {
            name: t.name.clone(),
            source: src,
            module,
            args: t.args.clone(),
            duration,
            timeout,
            patchsets: t.patchsets.clone(),
            configs: t.configs.clone(),
            arches: t
                .arches
                .as_ref()
                .map(|v| v.iter().filter_map(|a| Arch::from_name(a)).collect()),
            expect,
        });
    }

    let accel = match raw.vm.accel.as_deref().unwrap_or("auto") {
        "auto" => AccelChoice::Auto,
        "kvm" => AccelChoice::Kvm,
        "tcg" => AccelChoice::Tcg,
        other => {
            return Err(invalid(
                "vm.accel",
                format!("`{other}`: use auto, kvm or tcg"),
            ))
        }
    };
    let memory_mib =
        parse_mib(raw.vm.memory.as_deref().unwrap_or("1G")).map_err(|m| invalid("vm.memory", m))?;
    let boot_timeout = parse_duration(raw.vm.boot_timeout.as_deref().unwrap_or("3m"))
        .map_err(|m| invalid("vm.boot-timeout", m))?;
    let hung_task_timeout = parse_duration(raw.vm.hung_task_timeout.as_deref().unwrap_or("10s"))
        .map_err(|m| invalid("vm.hung-task-timeout", m))?;
    let vm = VmSettings {
        accel,
        memory_mib,
        cpus: raw.vm.cpus.unwrap_or(2),
        boot_timeout,
        hung_task_timeout,
    };

    let mut cells = Vec::new();
    for arch in &arches {
        for (cname, frags) in &configs {
            for (pname, patches) in &patchsets {
                let mut fragments = common.clone();
                let arch_frag = kconfigs.join(format!("{}.config", arch.name()));
                if arch_frag.is_file() {
                    fragments.push(arch_frag);
                }
                fragments.extend(frags.iter().cloned());
                let mut patches = patches.clone();
                for (h, only) in &harness {
                    if only.as_ref().is_none_or(|o| o.contains(pname)) {
                        patches.push(h.clone());
                    }
                }
                cells.push(Cell {
                    arch: *arch,
                    config: cname.clone(),
                    patchset: pname.clone(),
                    base_config: raw.base_config.clone(),
                    fragments,
                    patches,
                });
            }
        }
    }

    Ok(Plan {
        spec_path: path.to_owned(),
        spec_hash: String::new(),
        root,
        source,
        cells,
        tests,
        vm,
        baseline: raw.baseline,
        jobs: raw.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
    })
}

/// A patchset entry: a patch file, an mbox holding several patches (as `git format-patch
/// --stdout` or `b4 am` write them), or a folder with a `series` file.
fn resolve_patches(p: &Path) -> Result<Vec<PathBuf>, String> {
    if p.is_dir() {
        let series = p.join("series");
        let text = std::fs::read_to_string(&series).map_err(|e| {
            format!(
                "{} is a folder without a readable `series` file: {e}",
                p.display()
            )
        })?;
        let mut out = Vec::new();
        for line in text.lines() {
            let name = line.split('#').next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let f = p.join(name);
            if !f.is_file() {
                return Err(format!(
                    "{} lists `{name}`, which does not exist",
                    series.display()
                ));
            }
            out.push(f);
        }
        if out.is_empty() {
            return Err(format!("{} lists no patches", series.display()));
        }
        Ok(out)
    } else if p.is_file() {
        Ok(vec![p.to_owned()])
    } else {
        Err(format!("patch {} does not exist", p.display()))
    }
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{name}` may use only letters, digits, `-`, `_` and `.` (it becomes part of a cell id)"
        ))
    }
}

/// Best-effort line of the last component of a dotted key path, for error messages.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    let mut found = None;
    for part in key.split('.') {
        let part = part.split('[').next().unwrap_or(part);
        let (idx, _) = text.lines().enumerate().skip(from).find(|(_, l)| {
            l.trim_start()
                .trim_start_matches("- ")
                .starts_with(&format!("{part}:"))
        })?;
        from = idx;
        found = Some(idx + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("kconfigs")).unwrap();
        std::fs::create_dir_all(d.path().join("guest-tests")).unwrap();
        for f in ["guest", "lockdep", "x86_64", "pvl-on", "pvl-off"] {
            std::fs::write(d.path().join(format!("kconfigs/{f}.config")), "").unwrap();
        }
        std::fs::write(d.path().join("guest-tests/faults_vs_writers.c"), "").unwrap();
        d
    }

    const GOOD: &str = "\
source:
  debian-package: linux-source-7.3
fragments: [guest, lockdep]
arches: [x86_64, arm64]
configs:
  pvl-on: [pvl-on]
  pvl-off: [pvl-off]
patchsets:
  base: []
tests:
  - name: faults_vs_writers
    duration: 20s
    timeout: 2m
vm:
  accel: tcg
  memory: 1G
";

    #[test]
    fn expands_cells_arch_config_patchset_with_stable_ids() {
        let d = project();
        let plan = parse(&d.path().join("kmatrix.yaml"), GOOD).unwrap();
        let ids: Vec<String> = plan.cells.iter().map(|c| c.id()).collect();
        assert_eq!(
            ids,
            [
                "x86_64/pvl-off/base",
                "x86_64/pvl-on/base",
                "arm64/pvl-off/base",
                "arm64/pvl-on/base"
            ]
        );
        // Common fragments first, then the arch's, then the config's own: later wins.
        let names: Vec<String> = plan.cells[1]
            .fragments
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "guest.config",
                "lockdep.config",
                "x86_64.config",
                "pvl-on.config"
            ]
        );
        assert_eq!(plan.tests[0].duration, Duration::from_secs(20));
        assert_eq!(plan.vm.accel, AccelChoice::Tcg);
        assert_eq!(plan.vm.memory_mib, 1024);
    }

    #[test]
    fn unknown_key_is_a_syntax_error_with_line() {
        let d = project();
        let text = GOOD.replace("  memory: 1G", "  memory: 1G\n  memroy: 2G");
        let err = parse(&d.path().join("kmatrix.yaml"), &text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("kmatrix.yaml:17"), "{msg}");
        assert!(msg.contains("memroy"), "{msg}");
    }

    #[test]
    fn unknown_arch_names_key_and_line() {
        let d = project();
        let text = GOOD.replace("[x86_64, arm64]", "[x86_64, riscv]");
        let msg = parse(&d.path().join("kmatrix.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("kmatrix.yaml:4: `arches`"), "{msg}");
        assert!(msg.contains("unknown arch `riscv`"), "{msg}");
    }

    #[test]
    fn missing_fragment_names_the_expected_file() {
        let d = project();
        let text = GOOD.replace("pvl-off: [pvl-off]", "pvl-off: [pvl-of]");
        let msg = parse(&d.path().join("kmatrix.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`configs.pvl-off`"), "{msg}");
        assert!(msg.contains("pvl-of.config"), "{msg}");
        assert!(msg.contains(":7:"), "{msg}");
    }

    #[test]
    fn missing_patch_and_test_source_are_errors() {
        let d = project();
        let text = GOOD.replace("base: []", "base: []\n  v2: [patches/nope.patch]");
        let msg = parse(&d.path().join("kmatrix.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`patchsets.v2`") && msg.contains("nope.patch"),
            "{msg}"
        );
        let text = GOOD.replace("name: faults_vs_writers", "name: nosuch");
        let msg = parse(&d.path().join("kmatrix.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`tests[0]`") && msg.contains("nosuch.c"),
            "{msg}"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(parse_mib("2G").unwrap(), 2048);
        assert_eq!(parse_mib("768M").unwrap(), 768);
        assert!(parse_mib("lots").is_err());
    }
}
