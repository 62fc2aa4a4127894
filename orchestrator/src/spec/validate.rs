//! Semantic checks of a parsed spec, one function per section, and the expansion into
//! cells. Every error names the key path (and its line when it can be found).

use super::raw::{RawAmplify, RawAmplifySettings, RawHarness, RawSource, RawSpec, RawTest, RawVm};
use super::{check_name, SpecError};
use crate::plan::{
    Amplify, Arch, Cell, Expectation, Limits, Plan, Selftest, SourceSpec, TestSpec, VmSettings,
    DEFAULT_SELFTESTS,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What every check needs: the file (for messages) and its folder (for relative paths).
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// The spec file's folder, absolute, so paths handed to QEMU, virtiofsd and make
    /// mean the same from anywhere.
    root: PathBuf,
}

impl Ctx<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            path: self.path.to_owned(),
            line: find_key_line(self.text, key),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

pub fn validate(path: &Path, text: &str, raw: RawSpec) -> Result<Plan, SpecError> {
    let root = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
    let cx = Ctx { path, text, root };

    let source = source(&cx, &raw.source)?;
    let kconfigs = cx.root.join(&raw.kconfigs);
    let common = raw
        .fragments
        .iter()
        .map(|f| fragment(&cx, &kconfigs, &raw.kconfigs, "fragments", f))
        .collect::<Result<Vec<_>, _>>()?;
    let arches = arches(&cx, &raw.arches)?;
    let configs = configs(&cx, &kconfigs, &raw.kconfigs, &raw.configs)?;
    let patchsets = patchsets(&cx, &raw.patchsets)?;
    if let Some(b) = &raw.baseline {
        if !patchsets.contains_key(b) {
            return Err(cx.invalid("baseline", format!("unknown patchset `{b}`")));
        }
    }
    let harness = harness(&cx, &raw.harness, &patchsets)?;
    let guest_tests = cx.root.join(&raw.guest_tests);
    let tests =
        raw.tests
            .iter()
            .enumerate()
            .try_fold(Vec::new(), |mut done: Vec<TestSpec>, (i, t)| {
                let spec = test(&cx, i, t, &guest_tests, &configs, &patchsets)?;
                if done.iter().any(|x| x.name == spec.name) {
                    return Err(cx.invalid(
                        &format!("tests[{i}]"),
                        format!("test `{}` listed twice", t.name),
                    ));
                }
                done.push(spec);
                Ok(done)
            })?;
    let vm = vm(&cx, &raw.vm)?;
    let limits = limits(&raw.limits);
    let selftests = selftests(&cx, raw.selftests.as_deref())?;

    let cells = expand(
        &arches,
        &configs,
        &patchsets,
        &harness,
        &common,
        &kconfigs,
        &raw.base_config,
    );
    amplified_kernels(&cx, &tests, &cells)?;
    Ok(Plan {
        spec_path: path.to_owned(),
        spec_hash: String::new(),
        root: cx.root,
        source,
        cells,
        tests,
        vm,
        limits,
        harness: harness.iter().map(|(p, _)| p.clone()).collect(),
        selftests,
        selftest_timeout: raw
            .selftest_timeout
            .as_ref()
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(180)),
        baseline: raw.baseline,
        jobs: raw.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
    })
}

fn source(cx: &Ctx, s: &RawSource) -> Result<SourceSpec, SpecError> {
    let given = [
        s.debian_package.is_some(),
        s.path.is_some(),
        s.tarball.is_some(),
        s.git.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(cx.invalid(
            "source",
            "give exactly one of `debian-package`, `path`, `tarball` or `git` (with `rev`)",
        ));
    }
    if s.rev.is_some() && s.git.is_none() {
        return Err(cx.invalid("source.rev", "`rev` goes with `git`"));
    }
    if let Some(rev) = &s.rev {
        // It goes to git as an argument: never let it look like an option.
        if rev.is_empty() || rev.starts_with('-') || rev.chars().any(char::is_whitespace) {
            return Err(cx.invalid(
                "source.rev",
                format!(
                    "`{rev}` is not a revision (a branch, tag or commit, not starting with `-`)"
                ),
            ));
        }
    }
    if let Some(t) = &s.tarball {
        let t = cx.root.join(t);
        if !t.is_file() {
            return Err(cx.invalid("source.tarball", format!("{} does not exist", t.display())));
        }
        return Ok(SourceSpec::Tarball(t));
    }
    if let Some(repo) = &s.git {
        if repo.starts_with('-') {
            return Err(cx.invalid("source.git", format!("`{repo}` is not a repository")));
        }
        // A local repository is resolved against the spec's folder; URLs stay as given.
        let repo = if repo.contains("://") || repo.contains('@') {
            repo.clone()
        } else {
            cx.root.join(repo).display().to_string()
        };
        return Ok(SourceSpec::Git {
            repo,
            rev: s.rev.clone().unwrap_or_else(|| "HEAD".into()),
        });
    }
    if let Some(p) = &s.path {
        let p = cx.root.join(p);
        if !p.join("Makefile").is_file() {
            return Err(cx.invalid(
                "source.path",
                format!("{} is not a kernel tree (no Makefile)", p.display()),
            ));
        }
        return Ok(SourceSpec::Path(p));
    }
    let pkg = s.debian_package.clone().unwrap_or_default();
    if pkg.is_empty()
        || !pkg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        || pkg.starts_with('-')
    {
        return Err(cx.invalid(
            "source.debian-package",
            format!("`{pkg}` is not a Debian package name"),
        ));
    }
    Ok(SourceSpec::DebianPackage(pkg))
}

fn fragment(
    cx: &Ctx,
    kconfigs: &Path,
    folder: &str,
    key: &str,
    name: &str,
) -> Result<PathBuf, SpecError> {
    check_name("fragment", name).map_err(|m| cx.invalid(key, m))?;
    let p = kconfigs.join(format!("{name}.config"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(cx.invalid(
            key,
            format!(
                "fragment `{name}` not found: expected {} (fragments live in `{folder}`)",
                p.display()
            ),
        ))
    }
}

fn arches(cx: &Ctx, raw: &[Arch]) -> Result<Vec<Arch>, SpecError> {
    if raw.is_empty() {
        return Err(cx.invalid("arches", "list at least one arch"));
    }
    let mut v: Vec<Arch> = Vec::new();
    for a in raw {
        if v.contains(a) {
            return Err(cx.invalid("arches", format!("arch `{a}` listed twice")));
        }
        v.push(*a);
    }
    Ok(v)
}

fn configs(
    cx: &Ctx,
    kconfigs: &Path,
    folder: &str,
    raw: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<PathBuf>>, SpecError> {
    if raw.is_empty() {
        return Err(cx.invalid("configs", "define at least one config"));
    }
    let mut out = BTreeMap::new();
    for (name, frags) in raw {
        let key = format!("configs.{name}");
        check_name("configs", name).map_err(|m| cx.invalid(&key, m))?;
        let paths = frags
            .iter()
            .map(|f| fragment(cx, kconfigs, folder, &key, f))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(name.clone(), paths);
    }
    Ok(out)
}

fn patchsets(
    cx: &Ctx,
    raw: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<PathBuf>>, SpecError> {
    if raw.is_empty() {
        return Err(cx.invalid(
            "patchsets",
            "define at least one patchset (`base: []` builds the tree unpatched)",
        ));
    }
    let mut out = BTreeMap::new();
    for (name, patches) in raw {
        let key = format!("patchsets.{name}");
        check_name("patchsets", name).map_err(|m| cx.invalid(&key, m))?;
        let mut files = Vec::new();
        for p in patches {
            files.extend(resolve_patches(&cx.root.join(p)).map_err(|m| cx.invalid(&key, m))?);
        }
        out.insert(name.clone(), files);
    }
    Ok(out)
}

type Harness = Vec<(PathBuf, Option<Vec<String>>)>;

fn harness(
    cx: &Ctx,
    raw: &[RawHarness],
    patchsets: &BTreeMap<String, Vec<PathBuf>>,
) -> Result<Harness, SpecError> {
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let key = format!("harness[{i}]");
        let f = cx.root.join(&h.patch);
        if !f.is_file() {
            return Err(cx.invalid(&key, format!("patch {} does not exist", f.display())));
        }
        for p in h.patchsets.iter().flatten() {
            if !patchsets.contains_key(p) {
                return Err(cx.invalid(&key, format!("unknown patchset `{p}`")));
            }
        }
        out.push((f, h.patchsets.clone()));
    }
    Ok(out)
}

fn test(
    cx: &Ctx,
    i: usize,
    t: &RawTest,
    guest_tests: &Path,
    configs: &BTreeMap<String, Vec<PathBuf>>,
    patchsets: &BTreeMap<String, Vec<PathBuf>>,
) -> Result<TestSpec, SpecError> {
    let key = format!("tests[{i}]");
    check_name("test", &t.name).map_err(|m| cx.invalid(&key, m))?;
    let src = guest_tests.join(format!("{}.c", t.name));
    if !src.is_file() {
        return Err(cx.invalid(
            &key,
            format!("guest test `{}` has no source {}", t.name, src.display()),
        ));
    }
    if t.timeout.0 <= t.duration.0 {
        return Err(cx.invalid(
            &key,
            format!(
                "timeout {} must exceed duration {}",
                t.timeout.1, t.duration.1
            ),
        ));
    }
    let known =
        |what: &str, names: &Option<Vec<String>>, map: &BTreeMap<String, Vec<PathBuf>>| match names
            .iter()
            .flatten()
            .find(|n| !map.contains_key(*n))
        {
            Some(n) => Err(cx.invalid(&key, format!("unknown {what} `{n}`"))),
            None => Ok(()),
        };
    known("patchset", &t.patchsets, patchsets)?;
    known("config", &t.configs, configs)?;
    if let Some(a) = t.args.iter().find(|a| a.contains(['\0', '\n'])) {
        return Err(cx.invalid(&key, format!("argument {a:?} holds a NUL or newline")));
    }
    let module = match &t.module {
        None => None,
        Some(m) => {
            let dir = cx.root.join(m);
            if !dir.join("Kbuild").is_file() {
                return Err(cx.invalid(
                    &format!("{key}.module"),
                    format!(
                        "{} is not a module source folder: it needs a Kbuild file with `obj-m := {}.o`",
                        dir.display(),
                        dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                    ),
                ));
            }
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            check_name("module", &name).map_err(|m| cx.invalid(&format!("{key}.module"), m))?;
            Some(dir)
        }
    };
    let amplify = match &t.amplify {
        None | Some(RawAmplify::Off) => None,
        Some(RawAmplify::On(a)) => Some(amplify(
            cx,
            &format!("{key}.amplify"),
            a,
            configs,
            patchsets,
        )?),
    };
    Ok(TestSpec {
        name: t.name.clone(),
        source: src,
        module,
        args: t.args.clone(),
        duration: t.duration.0,
        timeout: t.timeout.0,
        patchsets: t.patchsets.clone(),
        configs: t.configs.clone(),
        arches: t.arches.clone(),
        expect: t
            .expect
            .iter()
            .map(|e| Expectation {
                kind: e.kind,
                title: e.title.clone(),
            })
            .collect(),
        selftest: None,
        amplify,
    })
}

fn amplify(
    cx: &Ctx,
    key: &str,
    a: &RawAmplifySettings,
    configs: &BTreeMap<String, Vec<PathBuf>>,
    patchsets: &BTreeMap<String, Vec<PathBuf>>,
) -> Result<Amplify, SpecError> {
    let delay_us = a.delay_us.unwrap_or(Amplify::DEFAULT_DELAY_US);
    if !(1..=Amplify::MAX_DELAY_US).contains(&delay_us) {
        return Err(cx.invalid(
            key,
            format!(
                "`delay-us: {delay_us}`: give 1 to {} (microseconds a delayed call busy-waits: the probes run where the kernel cannot sleep)",
                Amplify::MAX_DELAY_US
            ),
        ));
    }
    let percent = a.percent.unwrap_or(100);
    if !(1..=100).contains(&percent) {
        return Err(cx.invalid(
            key,
            format!("`percent: {percent}`: give 1 to 100 (the share of calls that are delayed)"),
        ));
    }
    for (what, names) in [("functions", &a.functions), ("lock-ops", &a.lock_ops)] {
        for f in names {
            let plain = f.len() <= 128
                && f.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !plain {
                return Err(cx.invalid(
                    key,
                    format!(
                        "`{what}`: `{f}` is not a kernel symbol name (letters, digits, `_`, `.`)"
                    ),
                ));
            }
        }
    }
    let known =
        |what: &str, names: &Option<Vec<String>>, map: &BTreeMap<String, Vec<PathBuf>>| match names
            .iter()
            .flatten()
            .find(|n| !map.contains_key(*n))
        {
            Some(n) => Err(cx.invalid(key, format!("unknown {what} `{n}`"))),
            None => Ok(()),
        };
    known("config", &a.configs, configs)?;
    known("patchset", &a.patchsets, patchsets)?;
    Ok(Amplify {
        delay_us,
        percent,
        preempt: a.preempt.unwrap_or(true),
        seed: a.seed,
        functions: a.functions.clone(),
        lock_ops: a.lock_ops.clone(),
        configs: a.configs.clone(),
        patchsets: a.patchsets.clone(),
        arches: a.arches.clone(),
    })
}

/// Every cell a test is amplified in needs kprobes in its kernel, and a test's
/// amplification must be on somewhere: both are mistakes better told before any build.
fn amplified_kernels(cx: &Ctx, tests: &[TestSpec], cells: &[Cell]) -> Result<(), SpecError> {
    for (i, t) in tests.iter().enumerate() {
        if t.amplify.is_none() {
            continue;
        }
        let key = format!("tests[{i}].amplify");
        let on: Vec<&Cell> = cells
            .iter()
            .filter(|c| t.amplified_in(c).is_some())
            .collect();
        if on.is_empty() {
            return Err(cx.invalid(
                &key,
                format!(
                    "amplifies `{}` in no cell: its configs/patchsets/arches leave none of the cells the test runs in",
                    t.name
                ),
            ));
        }
        for c in on {
            if !enables(&c.fragments, "CONFIG_KPROBES") {
                return Err(cx.invalid(
                    &key,
                    format!(
                        "amplifies `{}` in cell {}, whose fragments do not enable CONFIG_KPROBES: add the `amplify` fragment (kconfigs/amplify.config) to `configs.{}`, or limit the cells with `amplify: {{ configs: [...] }}`",
                        t.name,
                        c.id(),
                        c.config
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Does the last word of these fragments (later wins) on `symbol` turn it on?
fn enables(fragments: &[PathBuf], symbol: &str) -> bool {
    let mut on = false;
    for f in fragments {
        for l in std::fs::read_to_string(f).unwrap_or_default().lines() {
            let l = l.trim();
            if let Some(v) = l.strip_prefix(symbol).and_then(|r| r.strip_prefix('=')) {
                on = v == "y";
            } else if l == format!("# {symbol} is not set") {
                on = false;
            }
        }
    }
    on
}

fn vm(cx: &Ctx, raw: &RawVm) -> Result<VmSettings, SpecError> {
    let memory_mib = raw.memory.map(|m| m.0 >> 20).unwrap_or(1024);
    if memory_mib < 128 {
        return Err(cx.invalid("vm.memory", "at least 128M (a lockdep kernel needs room)"));
    }
    let cpus = raw.cpus.unwrap_or(2);
    if cpus == 0 {
        return Err(cx.invalid("vm.cpus", "at least 1"));
    }
    Ok(VmSettings {
        accel: raw.accel,
        memory_mib,
        cpus,
        boot_timeout: raw
            .boot_timeout
            .as_ref()
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(180)),
        hung_task_timeout: raw
            .hung_task_timeout
            .as_ref()
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(10)),
    })
}

/// `suite/name` for each selftest: both plain names (they become paths).
fn selftests(cx: &Ctx, raw: Option<&[String]>) -> Result<Vec<Selftest>, SpecError> {
    let names: Vec<String> = match raw {
        Some(v) => v.to_vec(),
        None => DEFAULT_SELFTESTS.iter().map(|s| s.to_string()).collect(),
    };
    let mut out: Vec<Selftest> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let key = format!("selftests[{i}]");
        let Some((suite, name)) = n.split_once('/') else {
            return Err(cx.invalid(
                &key,
                format!("`{n}`: give `suite/name`, e.g. `mm/merge` for tools/testing/selftests/mm/merge"),
            ));
        };
        check_name("selftest suite", suite).map_err(|m| cx.invalid(&key, m))?;
        check_name("selftest", name).map_err(|m| cx.invalid(&key, m))?;
        let t = Selftest {
            suite: suite.to_string(),
            name: name.to_string(),
        };
        if out.contains(&t) {
            return Err(cx.invalid(&key, format!("`{n}` listed twice")));
        }
        out.push(t);
    }
    Ok(out)
}

fn limits(raw: &super::raw::RawLimits) -> Limits {
    let d = Limits::default();
    Limits {
        console_bytes: raw.console.map(|s| s.0).unwrap_or(d.console_bytes),
        test_output_bytes: raw.test_output.map(|s| s.0).unwrap_or(d.test_output_bytes),
        results_bytes: raw.results.map(|s| s.0).unwrap_or(d.results_bytes),
    }
}

/// Arch x config x patchset, in that order: common fragments, then the arch's own
/// (`kconfigs/<arch>.config` when present), then the config's; the patchset's patches,
/// then the harness patches that apply to it.
fn expand(
    arches: &[Arch],
    configs: &BTreeMap<String, Vec<PathBuf>>,
    patchsets: &BTreeMap<String, Vec<PathBuf>>,
    harness: &Harness,
    common: &[PathBuf],
    kconfigs: &Path,
    base_config: &str,
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for arch in arches {
        for (cname, frags) in configs {
            for (pname, patches) in patchsets {
                let mut fragments = common.to_vec();
                let arch_frag = kconfigs.join(format!("{}.config", arch.name()));
                if arch_frag.is_file() {
                    fragments.push(arch_frag);
                }
                fragments.extend(frags.iter().cloned());
                let mut patches = patches.clone();
                for (h, only) in harness {
                    if only.as_ref().is_none_or(|o| o.contains(pname)) {
                        patches.push(h.clone());
                    }
                }
                cells.push(Cell {
                    arch: *arch,
                    config: cname.clone(),
                    patchset: pname.clone(),
                    base_config: base_config.to_string(),
                    fragments,
                    patches,
                });
            }
        }
    }
    cells
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

/// Best-effort line of the last component of a dotted key path, for error messages.
fn find_key_line(text: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    let mut found = None;
    for part in key.split('.') {
        let part = part.split('[').next().unwrap_or(part);
        let (idx, _) = text.lines().enumerate().skip(from).find(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ");
            l.starts_with(&format!("{part}:"))
                || l.starts_with(&format!("'{part}':"))
                || l.starts_with(&format!("\"{part}\":"))
        })?;
        from = idx;
        found = Some(idx + 1);
    }
    found
}
