//! Semantic checks of a parsed spec, one function per section, and the expansion into
//! cells. Every error names the key path (and its line when it can be found).

use super::bounds;
use super::error::{check_name, SpecError};
use super::raw::{
    RawAmplify, RawAmplifySettings, RawHarness, RawPatchset, RawSource, RawSpec, RawTest, RawVm,
};
use super::target::Target;
use crate::record::plan::{
    Amplify, Arch, Cell, Expectation, GitRange, Limits, Plan, Selftest, SourceSpec, TestSpec,
    VmSettings, DEFAULT_SELFTESTS,
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
    /// `kmatrix.yaml:12: `patchsets.mine``: where a key is, for errors found later.
    fn origin(&self, key: &str) -> String {
        let line = find_key_line(self.text, key)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        format!("{}{line}: `{key}`", self.path.display())
    }

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

    counts(&cx, &raw)?;
    let source = source(&cx, &raw.source)?;
    let kconfigs = cx.root.join(&raw.kconfigs);
    let common = raw
        .fragments
        .iter()
        .map(|f| fragment(&cx, &kconfigs, &raw.kconfigs, "fragments", f))
        .collect::<Result<Vec<_>, _>>()?;
    let arches = arches(&cx, &raw.arches)?;
    let configs = configs(&cx, &kconfigs, &raw.kconfigs, &raw.configs)?;
    let (patchsets, ranges) = patchsets(&cx, &raw.patchsets)?;
    let subjects = subjects(&patchsets);
    if let Some(b) = &raw.baseline {
        if !patchsets.contains_key(b) {
            return Err(cx.invalid("baseline", format!("unknown patchset `{b}`")));
        }
    }
    let harness = harness(&cx, &raw.harness, &patchsets)?;
    let guest_tests = cx.root.join(&raw.guest_tests);
    let tests = tests(&cx, &raw.tests, &guest_tests, &configs, &patchsets)?;
    let vm = vm(&cx, &raw.vm)?;
    let limits = limits(&cx, &raw.limits)?;
    if let Some(t) = &raw.selftest_timeout {
        bounds::time(t.0, &t.1, bounds::TIME).map_err(|m| cx.invalid("selftest-timeout", m))?;
    }
    if let Some(j) = raw.jobs {
        bounds::within(j, 1, bounds::JOBS).map_err(|m| cx.invalid("jobs", m))?;
    }
    let selftests = selftests(&cx, raw.selftests.as_deref())?;
    let known_issues = known_issues(&cx, raw.known_issues.as_deref())?;

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
        // One job more than cores: a compile waiting on the disk leaves a core idle.
        known_issues,
        jobs: raw.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() + 1)
                .unwrap_or(3)
        }),
        subjects,
        ranges,
    })
}

/// The lengths of every list before anything is looked at: the matrix is a product, so
/// its cells are counted before they are made.
fn counts(cx: &Ctx, raw: &RawSpec) -> Result<(), SpecError> {
    bounds::count("fragments", raw.fragments.len(), bounds::FRAGMENTS)
        .map_err(|m| cx.invalid("fragments", m))?;
    bounds::count("tests", raw.tests.len(), bounds::TESTS).map_err(|m| cx.invalid("tests", m))?;
    bounds::count("harness patches", raw.harness.len(), bounds::HARNESS)
        .map_err(|m| cx.invalid("harness", m))?;
    if let Some(s) = &raw.selftests {
        bounds::count("selftests", s.len(), bounds::SELFTESTS)
            .map_err(|m| cx.invalid("selftests", m))?;
    }
    let cells = raw
        .arches
        .len()
        .saturating_mul(raw.configs.len())
        .saturating_mul(raw.patchsets.len());
    if cells > bounds::CELLS {
        return Err(cx.invalid(
            "patchsets",
            format!(
                "{} arch(es) x {} config(s) x {} patchset(s) make {cells} cells: at most {} (split the matrix into several specs)",
                raw.arches.len(),
                raw.configs.len(),
                raw.patchsets.len(),
                bounds::CELLS
            ),
        ));
    }
    Ok(())
}

/// Each patch's subjects, for the reports.
fn subjects(patchsets: &Patchsets) -> BTreeMap<PathBuf, Vec<String>> {
    patchsets
        .values()
        .flatten()
        .map(|p| {
            // Each patch was checked (a regular file under the cap) when it was listed.
            let text = crate::host::runfile::read_given_string(p, bounds::PATCH_BYTES, "a patch")
                .unwrap_or_default();
            (p.clone(), crate::record::plan::patch_subjects(&text))
        })
        .collect()
}

/// Every test checked, none named twice.
fn tests(
    cx: &Ctx,
    raw: &[RawTest],
    guest_tests: &Path,
    configs: &BTreeMap<String, Vec<PathBuf>>,
    patchsets: &Patchsets,
) -> Result<Vec<TestSpec>, SpecError> {
    raw.iter()
        .enumerate()
        .try_fold(Vec::new(), |mut done: Vec<TestSpec>, (i, t)| {
            let spec = test(cx, i, t, guest_tests, configs, patchsets)?;
            if done.iter().any(|x| x.name == spec.name) {
                return Err(cx.invalid(
                    &format!("tests[{i}]"),
                    format!("test `{}` listed twice", t.name),
                ));
            }
            done.push(spec);
            Ok(done)
        })
}

/// The patchset `kmatrix run --tree PATH` tests: the tree as it is.
pub const TREE_PATCHSET: &str = "tree";
/// With `--series`: the range's base alone, and the range's commits on it.
pub const BASE_PATCHSET: &str = "base";
pub const SERIES_PATCHSET: &str = "series";

/// Put a developer's tree or branch in place of the spec's source and patchsets; the
/// rest of the matrix (arches, configs, fragments, tests, harness, vm) stays. Tests and
/// harness patches meant only for patchsets that are gone (the seed series' probe) go too.
pub fn retarget(raw: &mut RawSpec, target: &Target) {
    let (source, patchsets, baseline) = match target {
        Target::Spec => return,
        Target::Tree(tree) => (
            RawSource {
                path: Some(tree.clone()),
                ..RawSource::default()
            },
            vec![(TREE_PATCHSET, RawPatchset::Files(vec![]))],
            None,
        ),
        Target::Branch { repo, base, range } => (
            RawSource {
                git: Some(repo.display().to_string()),
                rev: Some(base.clone()),
                ..RawSource::default()
            },
            vec![
                (BASE_PATCHSET, RawPatchset::Files(vec![])),
                (
                    SERIES_PATCHSET,
                    RawPatchset::Git {
                        git: repo.clone(),
                        range: range.clone(),
                    },
                ),
            ],
            Some(BASE_PATCHSET.to_string()),
        ),
    };
    raw.source = source;
    raw.patchsets = patchsets
        .into_iter()
        .map(|(n, p)| (n.to_string(), p))
        .collect();
    raw.baseline = baseline;
    let names: Vec<String> = raw.patchsets.keys().cloned().collect();
    // `Some([])` would mean "no patchset": such an entry is dropped instead.
    let keep = |only: &mut Option<Vec<String>>| match only {
        None => true,
        Some(v) => {
            v.retain(|n| names.contains(n));
            !v.is_empty()
        }
    };
    raw.tests.retain_mut(|t| keep(&mut t.patchsets));
    raw.harness.retain_mut(|h| keep(&mut h.patchsets));
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
    if p.exists() {
        bounds::file(&p, bounds::FRAGMENT_BYTES, "fragment").map_err(|m| cx.invalid(key, m))?;
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
        bounds::count("fragments", frags.len(), bounds::FRAGMENTS)
            .map_err(|m| cx.invalid(&key, m))?;
        let paths = frags
            .iter()
            .map(|f| fragment(cx, kconfigs, folder, &key, f))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(name.clone(), paths);
    }
    Ok(out)
}

type Patchsets = BTreeMap<String, Vec<PathBuf>>;

fn patchsets(
    cx: &Ctx,
    raw: &BTreeMap<String, RawPatchset>,
) -> Result<(Patchsets, Vec<GitRange>), SpecError> {
    if raw.is_empty() {
        return Err(cx.invalid(
            "patchsets",
            "define at least one patchset (`base: []` builds the tree unpatched)",
        ));
    }
    let mut out = BTreeMap::new();
    let mut ranges = Vec::new();
    for (name, patches) in raw {
        let key = format!("patchsets.{name}");
        check_name("patchsets", name).map_err(|m| cx.invalid(&key, m))?;
        let mut files = Vec::new();
        match patches {
            RawPatchset::Files(list) => {
                for p in list {
                    files.extend(
                        resolve_patches(&cx.root.join(p)).map_err(|m| cx.invalid(&key, m))?,
                    );
                }
            }
            RawPatchset::Git { git, range } => {
                ranges.push(git_range(cx, &key, name, git, range)?);
            }
        }
        bounds::count("patches", files.len(), bounds::PATCHES).map_err(|m| cx.invalid(&key, m))?;
        out.insert(name.clone(), files);
    }
    Ok((out, ranges))
}

/// A git range patchset, checked as far as it can be without running git (that is
/// `series::resolve`'s job: unknown revisions, empty ranges).
fn git_range(
    cx: &Ctx,
    key: &str,
    name: &str,
    git: &std::path::Path,
    range: &str,
) -> Result<GitRange, SpecError> {
    let text = git.to_string_lossy();
    if text.contains("://") || text.starts_with('-') || text.is_empty() {
        return Err(cx.invalid(
            &format!("{key}.git"),
            format!("`{text}` is not a local repository: a range is read from a checkout on this machine (clone it first)"),
        ));
    }
    let repo = cx.root.join(git);
    if !repo.is_dir() {
        return Err(cx.invalid(
            &format!("{key}.git"),
            format!(
                "{} is not a folder: give the folder of a git checkout",
                repo.display()
            ),
        ));
    }
    crate::record::plan::check_range(range).map_err(|m| cx.invalid(&format!("{key}.range"), m))?;
    Ok(GitRange {
        patchset: name.to_string(),
        repo,
        range: range.to_string(),
        origin: cx.origin(key),
    })
}

type Harness = Vec<(PathBuf, Option<Vec<String>>)>;

fn harness(cx: &Ctx, raw: &[RawHarness], patchsets: &Patchsets) -> Result<Harness, SpecError> {
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let key = format!("harness[{i}]");
        let f = cx.root.join(&h.patch);
        if !f.exists() {
            return Err(cx.invalid(&key, format!("patch {} does not exist", f.display())));
        }
        bounds::file(&f, bounds::PATCH_BYTES, "patch").map_err(|m| cx.invalid(&key, m))?;
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
    for (what, d) in [("duration", &t.duration), ("timeout", &t.timeout)] {
        bounds::time(d.0, &d.1, bounds::TIME)
            .map_err(|m| cx.invalid(&format!("{key}.{what}"), m))?;
    }
    bounds::count("arguments", t.args.len(), bounds::ARGS).map_err(|m| cx.invalid(&key, m))?;
    if t.args.iter().any(|a| a.len() > bounds::ARG_BYTES) {
        return Err(cx.invalid(
            &key,
            format!("an argument is longer than {} bytes", bounds::ARG_BYTES),
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
    known_names(cx, &key, "patchset", &t.patchsets, patchsets)?;
    known_names(cx, &key, "config", &t.configs, configs)?;
    if let Some(a) = t.args.iter().find(|a| a.contains(['\0', '\n'])) {
        return Err(cx.invalid(&key, format!("argument {a:?} holds a NUL or newline")));
    }
    let module = match &t.module {
        None => None,
        Some(m) => Some(module(cx, &format!("{key}.module"), m)?),
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

/// Every name a test limits itself to is in the spec's `map` (its patchsets or configs).
fn known_names(
    cx: &Ctx,
    key: &str,
    what: &str,
    names: &Option<Vec<String>>,
    map: &BTreeMap<String, Vec<PathBuf>>,
) -> Result<(), SpecError> {
    match names.iter().flatten().find(|n| !map.contains_key(*n)) {
        Some(n) => Err(cx.invalid(key, format!("unknown {what} `{n}`"))),
        None => Ok(()),
    }
}

/// A test's kernel module: a folder (relative to the spec) with a Kbuild file, named
/// as a module may be.
fn module(cx: &Ctx, key: &str, m: &str) -> Result<PathBuf, SpecError> {
    let dir = cx.root.join(m);
    if !dir.join("Kbuild").is_file() {
        return Err(cx.invalid(
            key,
            format!(
                "{} is not a module source folder: it needs a Kbuild file with `obj-m := {}.o`",
                dir.display(),
                dir.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
        ));
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    check_name("module", &name).map_err(|m| cx.invalid(key, m))?;
    Ok(dir)
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
        let text = crate::host::runfile::read_given_string(f, bounds::FRAGMENT_BYTES, "a fragment")
            .unwrap_or_default();
        for l in text.lines() {
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
    if memory_mib > bounds::MEMORY_MIB {
        return Err(cx.invalid(
            "vm.memory",
            format!("at most {}G", bounds::MEMORY_MIB >> 10),
        ));
    }
    let cpus = raw.cpus.unwrap_or(2);
    if cpus == 0 {
        return Err(cx.invalid("vm.cpus", "at least 1"));
    }
    let numa_nodes = raw.numa_nodes.unwrap_or(1);
    if !(1..=8).contains(&numa_nodes)
        || memory_mib / u64::from(numa_nodes) < 64
        || cpus % numa_nodes != 0
    {
        return Err(cx.invalid(
            "vm.numa-nodes",
            "1 to 8, each node a socket with a whole share of `vm.cpus` and at least 64M of `vm.memory`",
        ));
    }
    bounds::within(cpus, 1, bounds::CPUS).map_err(|m| cx.invalid("vm.cpus", m))?;
    if let Some(t) = &raw.boot_timeout {
        bounds::time(t.0, &t.1, bounds::TIME).map_err(|m| cx.invalid("vm.boot-timeout", m))?;
    }
    if let Some(t) = &raw.hung_task_timeout {
        bounds::time(t.0, &t.1, bounds::HUNG_TASK)
            .map_err(|m| cx.invalid("vm.hung-task-timeout", m))?;
    }
    Ok(VmSettings {
        accel: raw.accel,
        memory_mib,
        cpus,
        numa_nodes,
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

/// The known-issues list: it must exist and parse now, not when the run's outputs are
/// written.
fn known_issues(cx: &Ctx, raw: Option<&str>) -> Result<Option<PathBuf>, SpecError> {
    let Some(f) = raw else { return Ok(None) };
    let path = cx.root.join(f);
    if !path.is_file() {
        return Err(cx.invalid(
            "known-issues",
            format!(
                "{} does not exist (a YAML list of known issues)",
                path.display()
            ),
        ));
    }
    crate::spec::known::KnownIssues::load(&path)
        .map_err(|e| cx.invalid("known-issues", e.to_string()))?;
    Ok(Some(path))
}

fn limits(cx: &Ctx, raw: &super::raw::RawLimits) -> Result<Limits, SpecError> {
    let d = Limits::default();
    let l = Limits {
        console_bytes: raw.console.map(|s| s.0).unwrap_or(d.console_bytes),
        test_output_bytes: raw.test_output.map(|s| s.0).unwrap_or(d.test_output_bytes),
        results_bytes: raw.results.map(|s| s.0).unwrap_or(d.results_bytes),
    };
    for (key, v, max) in [
        ("limits.console", l.console_bytes, bounds::CONSOLE_BYTES),
        (
            "limits.test-output",
            l.test_output_bytes,
            bounds::TEST_OUTPUT_BYTES,
        ),
        ("limits.results", l.results_bytes, bounds::RESULTS_BYTES),
    ] {
        if v > max {
            return Err(cx.invalid(key, format!("{v} bytes: at most {}M", max >> 20)));
        }
    }
    Ok(l)
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
/// --stdout` or `b4 am` write them), or a folder with a `series` file. A series comes
/// from anywhere: its file must be a regular file of at most a megabyte, and each entry a
/// patch inside its folder (no `..`, no absolute path, no link out).
fn resolve_patches(p: &Path) -> Result<Vec<PathBuf>, String> {
    if p.is_dir() {
        let series = p.join("series");
        let text =
            crate::host::runfile::read_given_string(&series, bounds::SERIES_BYTES, "a series file")
                .map_err(|e| {
                    format!(
                        "{} is a folder without a readable `series` file: {e}",
                        p.display()
                    )
                })?;
        let folder = p
            .canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let name = line.split('#').next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let at = format!("{}:{}", series.display(), i + 1);
            let plain = Path::new(name)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain {
                return Err(format!(
                    "{at}: `{}` is not a patch inside {} (no `..` or absolute path)",
                    crate::record::fmt::visible(name),
                    p.display()
                ));
            }
            let f = p.join(name);
            if !f.exists() {
                return Err(format!("{at}: lists `{name}`, which does not exist"));
            }
            if !f.canonicalize().is_ok_and(|c| c.starts_with(&folder)) {
                return Err(format!(
                    "{at}: `{name}` is a link out of {}: a series names patches inside its folder",
                    p.display()
                ));
            }
            bounds::file(&f, bounds::PATCH_BYTES, "patch").map_err(|m| format!("{at}: {m}"))?;
            out.push(f);
            if out.len() > bounds::PATCHES {
                return Err(format!(
                    "{}: more than {} patches",
                    series.display(),
                    bounds::PATCHES
                ));
            }
        }
        if out.is_empty() {
            return Err(format!("{} lists no patches", series.display()));
        }
        Ok(out)
    } else if p.exists() {
        bounds::file(p, bounds::PATCH_BYTES, "patch")?;
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
        let (part, index) = match part.split_once('[') {
            Some((p, i)) => (p, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        // A key inside an inline mapping (`mine: { git: r, range: x }`) is not at the
        // start of a line: the enclosing key's line is the nearest.
        let Some((idx, _)) = text.lines().enumerate().skip(from).find(|(_, l)| {
            let l = l.trim_start().trim_start_matches("- ");
            l.starts_with(&format!("{part}:"))
                || l.starts_with(&format!("'{part}':"))
                || l.starts_with(&format!("\"{part}\":"))
        }) else {
            break;
        };
        from = idx;
        found = Some(idx + 1);
        if let Some(i) = index {
            match list_item(text, idx, i) {
                Some(item) => {
                    from = item;
                    found = Some(item + 1);
                }
                None => break,
            }
        }
    }
    found
}

/// The line of item `i` of the block list under the key on line `key` (`tests:` then
/// `  - name: a` lines); none for an inline list.
fn list_item(text: &str, key: usize, i: usize) -> Option<usize> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut lines = text
        .lines()
        .enumerate()
        .skip(key + 1)
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (first, l) = lines.next()?;
    if !l.trim_start().starts_with("- ") {
        return None;
    }
    let at = indent(l);
    std::iter::once((first, l))
        .chain(lines)
        .take_while(|(_, l)| indent(l) >= at)
        .filter(|(_, l)| indent(l) == at && l.trim_start().starts_with('-'))
        .nth(i)
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::super::{parse, parse_for, Target};
    use crate::record::plan::SourceSpec;
    use std::path::Path;

    fn sh(cmd: &str, dir: &Path) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
    }

    /// A project with fragments, two tests (one only for `v2`), a harness patch for all
    /// patchsets and one only for `v2`, a patch series and a two-commit git repository.
    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        sh("mkdir -p kconfigs guest-tests patches/v2 harness && touch kconfigs/guest.config kconfigs/pvl-on.config guest-tests/stress.c guest-tests/probe.c harness/all.patch harness/probe.patch", d.path());
        std::fs::write(
            d.path().join("patches/v2/0001-x.patch"),
            "From 9d96 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH v2 1/1] mm: Add\n a folded subject\n\n---\n",
        )
        .unwrap();
        sh("mkdir -p linux/mm && cd linux && echo 'VERSION = 7' > Makefile && echo 'int a;' > mm/a.c && git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm base && git tag base && echo 'int b;' >> mm/a.c && git -c user.email=t@t -c user.name=t commit -qam 'mm: one' && echo 'int c;' >> mm/a.c && git -c user.email=t@t -c user.name=t commit -qam 'mm: two'", d.path());
        d
    }

    const SPEC: &str = "\
source:
  debian-package: linux-source-7.3
fragments: [guest]
arches: [x86_64]
configs:
  pvl-on: [pvl-on]
patchsets:
  base: []
  v2: [patches/v2/0001-x.patch]
  mine: { git: linux, range: base..HEAD }
harness:
  - { patch: harness/all.patch }
  - { patch: harness/probe.patch, patchsets: [v2] }
baseline: base
tests:
  - name: stress
  - { name: probe, patchsets: [v2] }
";

    fn err(d: &Path, text: &str) -> String {
        parse(&d.join("kmatrix.yaml"), text)
            .unwrap_err()
            .to_string()
    }

    #[tokio::test]
    async fn a_git_range_patchset_becomes_its_commits_before_the_harness() {
        let d = project();
        let mut plan = parse(&d.path().join("kmatrix.yaml"), SPEC).unwrap();
        assert_eq!(plan.ranges.len(), 1);
        assert_eq!(plan.ranges[0].range, "base..HEAD");
        assert!(
            plan.ranges[0]
                .origin
                .ends_with("kmatrix.yaml:10: `patchsets.mine`"),
            "{}",
            plan.ranges[0].origin
        );
        let cache = crate::host::cache::Cache {
            root: d.path().join("cache"),
        };
        crate::prepare::series::resolve(&mut plan, &cache)
            .await
            .unwrap();
        assert!(plan.ranges.is_empty());
        let mine = plan.cells.iter().find(|c| c.patchset == "mine").unwrap();
        let names: Vec<String> = mine
            .patches
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["0001-mm-one.patch", "0002-mm-two.patch", "all.patch"]
        );
        assert_eq!(mine.subjects(&plan), ["mm: one", "mm: two"]);
        // A patch file's own subject, folded line joined, prefix dropped.
        let v2 = plan.cells.iter().find(|c| c.patchset == "v2").unwrap();
        assert_eq!(v2.subjects(&plan), ["mm: Add a folded subject"]);
    }

    #[test]
    fn a_patchset_of_the_wrong_shape_or_range_says_what_is_expected() {
        let d = project();
        let d = d.path();
        let msg = err(d, &SPEC.replace("base..HEAD }", "base..HEAD, depth: 2 }"));
        assert!(
            msg.contains("kmatrix.yaml:10:") && msg.contains("depth"),
            "{msg}"
        );
        let msg = err(d, &SPEC.replace(", range: base..HEAD", ""));
        assert!(
            msg.contains("kmatrix.yaml:10:") && msg.contains("range"),
            "{msg}"
        );
        let msg = err(d, &SPEC.replace("{ git: linux, range: base..HEAD }", "3"));
        assert!(
            msg.contains("a list of patch files, or `{ git: <repository>, range: <base>..<tip> }`"),
            "{msg}"
        );
        let msg = err(d, &SPEC.replace("base..HEAD", "base"));
        assert!(
            msg.contains(":10: `patchsets.mine.range`") && msg.contains("<base>..<tip>"),
            "{msg}"
        );
        let msg = err(d, &SPEC.replace("git: linux", "git: nowhere"));
        assert!(
            msg.contains(":10: `patchsets.mine.git`") && msg.contains("is not a folder"),
            "{msg}"
        );
        let msg = err(
            d,
            &SPEC.replace("git: linux", "git: 'https://example.org/linux.git'"),
        );
        assert!(msg.contains("not a local repository"), "{msg}");
    }

    #[test]
    fn a_tree_or_a_branch_replaces_the_source_and_patchsets_and_drops_what_was_only_theirs() {
        let d = project();
        let path = d.path().join("kmatrix.yaml");
        let tree = d.path().join("linux");
        let spec = parse(&path, SPEC).unwrap();
        let plan = parse_for(&path, SPEC, &Target::Tree(tree.clone())).unwrap();
        assert_eq!(plan.source, SourceSpec::Path(tree.clone()));
        let ids: Vec<String> = plan.cells.iter().map(|c| c.id().into()).collect();
        assert_eq!(ids, ["x86_64/pvl-on/tree"]);
        assert!(plan.ranges.is_empty() && plan.baseline.is_none());
        // The harness for every patchset stays; the v2-only test and harness go.
        assert_eq!(plan.harness, [d.path().join("harness/all.patch")]);
        let tests: Vec<&str> = plan.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tests, ["stress"]);
        assert_ne!(plan.spec_hash, spec.spec_hash, "another matrix");

        let branch = Target::Branch {
            repo: tree.clone(),
            base: "abc".into(),
            range: "abc..def".into(),
        };
        let plan = parse_for(&path, SPEC, &branch).unwrap();
        assert_eq!(
            plan.source,
            SourceSpec::Git {
                repo: tree.display().to_string(),
                rev: "abc".into()
            }
        );
        let ids: Vec<String> = plan.cells.iter().map(|c| c.id().into()).collect();
        assert_eq!(ids, ["x86_64/pvl-on/base", "x86_64/pvl-on/series"]);
        assert_eq!(plan.baseline.as_deref(), Some("base"));
        assert_eq!(plan.ranges.len(), 1);
        assert_eq!(
            (
                plan.ranges[0].patchset.as_str(),
                plan.ranges[0].range.as_str()
            ),
            ("series", "abc..def")
        );
    }
}

#[cfg(test)]
mod known_tests {
    const SPEC: &str = "\
source: { debian-package: linux-source-7.3 }
arches: [x86_64]
configs: { on: [] }
patchsets: { base: [] }
known-issues: known.yaml
";

    #[test]
    fn the_known_issues_list_must_exist_and_parse_when_the_spec_loads() {
        let d = tempfile::tempdir().unwrap();
        let spec = d.path().join("kmatrix.yaml");
        let e = super::super::parse(&spec, SPEC).unwrap_err().to_string();
        assert!(
            e.contains("kmatrix.yaml:5: `known-issues`") && e.contains("known.yaml does not exist"),
            "{e}"
        );
        std::fs::write(
            d.path().join("known.yaml"),
            "- title: x\n  why: y\n  cell: [a]\n",
        )
        .unwrap();
        let e = super::super::parse(&spec, SPEC).unwrap_err().to_string();
        assert!(
            e.contains("`known-issues`") && e.contains("known.yaml:3:") && e.contains("cell"),
            "{e}"
        );
        std::fs::write(d.path().join("known.yaml"), "- title: x\n  why: y\n").unwrap();
        let plan = super::super::parse(&spec, SPEC).unwrap();
        assert_eq!(
            plan.known_issues.as_deref(),
            Some(d.path().join("known.yaml").as_path())
        );
        let plain =
            super::super::parse(&spec, &SPEC.replace("known-issues: known.yaml\n", "")).unwrap();
        assert_eq!(plain.known_issues, None::<std::path::PathBuf>);
    }
}
