//! `kmatrix report --kcidb RUN_DIR`: a run in KernelCI's KCIDB I/O format (schema 5.3,
//! as the `kcidb-io` package publishes it), for users who send results to a KernelCI
//! dashboard (`kcidb-submit` reads it from stdin).
//!
//! The mapping, by KCIDB object:
//! - **checkout**: the source tree plus one patchset (`valid: false` when it did not
//!   apply); the patchset hash is the one KCIDB defines, over the series' own patches
//!   (not kmatrix's test harness), when the spec is there to name them.
//! - **build**: one per cell (arch x config x patchset) that reached its build; `FAIL`
//!   for BUILD-FAIL and CONFIG-MISMATCH, `ERROR` when the host broke it.
//! - **test**: per booted cell a `boot` test, one `kmatrix.<test>` per guest test and
//!   one per KTAP case under it. A test during which the kernel printed an unexpected
//!   report is `FAIL` whatever it said; one whose positive control stayed silent is
//!   `ERROR` (the detectors could not be trusted); host-side failures are `MISS`.
//! - **issue**: one per distinct kernel report title (and per first compiler error),
//!   with an id derived from the title, so the same bug has the same issue in every run;
//!   **incident**: each time it was seen, linked to the test (or build) that saw it.
//!   Reports a positive control expected are evidence, not issues.
//!
//! Ids are `<origin>:<run>/<cell id>[/<test>]`, `<run>` being the run folder's name and
//! a digest of its results: exporting the same run twice gives the same ids.

use super::html::{cell_rel_dir, href};
use crate::console::Finding;
use crate::host::cache::Hasher;
use crate::parse::ktap;
use crate::record::result::{CellResult, ControlState, TestOutcome, TestResult, LIVENESS};
use crate::record::verdict::Verdict;
use crate::report::results::RunMeta;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The schema version written (`version` of the document).
pub const MAJOR: u64 = 5;
pub const MINOR: u64 = 3;

/// KCIDB's limit on a log excerpt, in characters.
const EXCERPT_MAX: usize = 16384;
/// KTAP cases exported per test at most (the guest decides how many it prints).
const CASES_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum KcidbError {
    #[error(
        "--kcidb-origin `{0}`: a KCIDB origin is lowercase letters, digits and `_` (e.g. `kmatrix`)"
    )]
    Origin(String),
    #[error("--kcidb-url `{0}`: give the http(s) URL the run folder is published at, e.g. a CI job's artifacts")]
    Url(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the export needs besides the run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The CI system's name in KCIDB (`--kcidb-origin`).
    pub origin: String,
    /// Where the run folder is published (`--kcidb-url`): log and config links are made
    /// from it. Without it the documents carry the files' paths in `misc` only.
    pub url: Option<String>,
    /// Each patchset's own patches in order (from the spec), for `patchset_hash`.
    pub patchsets: BTreeMap<String, Vec<PathBuf>>,
}

impl Options {
    pub fn new(origin: &str) -> Options {
        Options {
            origin: origin.to_string(),
            url: None,
            patchsets: BTreeMap::new(),
        }
    }

    fn check(&self) -> Result<(), KcidbError> {
        let o = &self.origin;
        if o.is_empty()
            || !o
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(KcidbError::Origin(o.clone()));
        }
        if let Some(u) = &self.url {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| {
                !r.is_empty()
                    && r.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b))
            });
            if !ok {
                return Err(KcidbError::Url(u.clone()));
            }
        }
        Ok(())
    }
}

/// KCIDB's patchset hash: sha256 over the newline-terminated sha256 of each patch, in
/// order (`sha256sum *.patch | cut -c-64 | sha256sum`); empty without patches.
pub fn patchset_hash(patches: &[PathBuf]) -> Result<String, KcidbError> {
    use sha2::{Digest, Sha256};
    if patches.is_empty() {
        return Ok(String::new());
    }
    let mut outer = Sha256::new();
    for p in patches {
        let bytes = std::fs::read(p).map_err(|source| KcidbError::Io {
            path: p.clone(),
            source,
        })?;
        outer.update(format!("{:x}\n", Sha256::digest(&bytes)));
    }
    Ok(format!("{:x}", outer.finalize()))
}

/// RFC 3339 UTC time of a Unix timestamp (seconds).
fn time(at: f64) -> String {
    // RFC 3339 ends with the year 9999 (humantime fails past it).
    let last = std::time::Duration::from_secs(253_402_300_799);
    let d = crate::record::fmt::duration(at).min(last);
    humantime::format_rfc3339_micros(UNIX_EPOCH + d).to_string()
}

/// Seconds to the millisecond (what was measured, without float noise).
fn secs(s: f64) -> Value {
    ((s * 1000.0).round() / 1000.0).into()
}

/// Text KCIDB accepts in a log excerpt: no NUL, at most 16384 characters.
fn excerpt(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '\0')
        .take(EXCERPT_MAX)
        .collect()
}

/// A name as one segment of a KCIDB test path (`[a-zA-Z0-9_-]+`): other characters
/// become `_`, runs of them one, none at either end.
fn segment(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' {
            c
        } else {
            '_'
        };
        if c != '_' || !(s.is_empty() || s.ends_with('_')) {
            s.push(c);
        }
        if s.len() >= 64 {
            break;
        }
    }
    let s = s.trim_end_matches('_');
    if s.is_empty() {
        "_".into()
    } else {
        s.to_string()
    }
}

/// An object with the fields that are there (KCIDB has no nulls).
fn object(fields: Vec<(&str, Option<Value>)>) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Value::Object(m)
}

/// Seconds a test's phase began, from the cell's timeline.
fn phase_time(
    c: &CellResult,
    phase: crate::record::phase::Phase,
    detail: Option<&str>,
) -> Option<f64> {
    c.phases
        .iter()
        .find(|p| p.phase == phase && detail.is_none_or(|d| p.detail == d))
        .map(|p| p.at)
}

struct Export<'a> {
    opts: &'a Options,
    run_dir: &'a Path,
    run: String,
    doc: BTreeMap<&'static str, Vec<Value>>,
    /// Issues by id, each once.
    issues: BTreeMap<String, Value>,
    /// The run's comparison (`kmatrix compare`), with the patch that brought each new
    /// finding (`kmatrix bisect-new`).
    compare: Option<crate::judge::compare::Comparison>,
}

impl Export<'_> {
    fn id(&self, rest: &str) -> String {
        format!("{}:{}/{rest}", self.opts.origin, self.run)
    }

    /// A file of the cell: its path in the run folder, and its URL when published.
    fn file(&self, c: &CellResult, name: &str) -> Option<(String, Option<String>)> {
        let rel = cell_rel_dir(c, self.run_dir)?.join(name);
        if !crate::host::runfile::is_plain_file(self.run_dir, &rel) {
            return None;
        }
        let link = href(&rel);
        let url = self
            .opts
            .url
            .as_ref()
            .map(|u| format!("{}/{link}", u.trim_end_matches('/')));
        Some((rel.display().to_string(), url))
    }

    fn url(&self, c: &CellResult, name: &str) -> Option<Value> {
        self.file(c, name).and_then(|(_, u)| u).map(Value::from)
    }

    /// The issue a finding is, registered once; returns its id.
    fn issue(&mut self, title: &str, category: &str, misc: Value) -> String {
        let mut h = Hasher::new("kcidb-issue");
        h.field(title.as_bytes());
        let id = format!("{}:{}", self.opts.origin, &h.finish()[..16]);
        self.issues.entry(id.clone()).or_insert_with(|| {
            json!({
                "id": id,
                "version": 0,
                "origin": self.opts.origin,
                "report_subject": excerpt(title),
                "comment": excerpt(title),
                "categories": [category],
                "culprit": {"code": true, "tool": false, "harness": false},
                "misc": misc,
            })
        });
        id
    }

    fn push(&mut self, kind: &'static str, v: Value) {
        self.doc.entry(kind).or_default().push(v);
    }

    fn checkouts(&mut self, cells: &[CellResult]) -> Result<(), KcidbError> {
        let mut seen: Vec<&str> = Vec::new();
        for c in cells {
            if seen.contains(&c.patchset.as_str()) {
                continue;
            }
            seen.push(&c.patchset);
            let of: Vec<&CellResult> = cells.iter().filter(|x| x.patchset == c.patchset).collect();
            let failed = of.iter().find(|x| x.verdict == Verdict::PatchFail);
            let source = of.iter().find_map(|x| x.source_id.clone());
            let commit = source
                .as_deref()
                .and_then(|s| s.strip_prefix("git-"))
                .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(|h| h.to_ascii_lowercase());
            let hash = match self.opts.patchsets.get(&c.patchset) {
                Some(p) => Some(patchset_hash(p)?),
                None => None,
            };
            let start = of
                .iter()
                .filter_map(|x| x.phases.first().map(|p| p.at))
                .reduce(f64::min);
            let comment = format!(
                "{} + patchset {}",
                source.as_deref().unwrap_or("unknown source"),
                c.patchset
            );
            let log = failed.map(|x| {
                let mut t = x.reason.clone().unwrap_or_default();
                for d in &x.details {
                    t.push('\n');
                    t.push_str(d);
                }
                excerpt(&t)
            });
            let v = object(vec![
                ("id", Some(self.id(&c.patchset).into())),
                ("origin", Some(self.opts.origin.clone().into())),
                ("comment", Some(excerpt(&comment).into())),
                ("git_commit_hash", commit.map(Value::from)),
                ("patchset_hash", hash.map(Value::from)),
                ("start_time", start.map(|t| time(t).into())),
                ("valid", Some((failed.is_none()).into())),
                ("log_excerpt", log.map(Value::from)),
                (
                    "misc",
                    Some(json!({"patchset": c.patchset, "source": source})),
                ),
            ]);
            self.push("checkouts", v);
        }
        Ok(())
    }

    /// Whether the cell got as far as building (or fetching) its kernel.
    fn reached_build(c: &CellResult) -> bool {
        c.kernel_key.is_some()
            || matches!(c.verdict, Verdict::BuildFail | Verdict::ConfigMismatch)
            || c.phases
                .iter()
                .any(|p| p.phase == crate::record::phase::Phase::Build)
    }

    fn build(&mut self, c: &CellResult) -> Option<String> {
        if c.verdict == Verdict::PatchFail || !Self::reached_build(c) {
            return None;
        }
        let id = self.id(&c.id);
        let status = if c.kernel_key.is_some() {
            Some(Status::Pass)
        } else {
            match c.verdict {
                Verdict::BuildFail | Verdict::ConfigMismatch => Some(Status::Fail),
                Verdict::InfraError => Some(Status::Error),
                // Interrupted: whether it would have built is unknown.
                _ => None,
            }
        };
        let spans = c.phase_spans();
        let build_spans: Vec<_> = spans
            .iter()
            .filter(|s| {
                matches!(
                    s.start.phase,
                    crate::record::phase::Phase::Patch | crate::record::phase::Phase::Build
                )
            })
            .collect();
        let start = build_spans
            .first()
            .map(|s| s.start.at)
            .or(c.phases.first().map(|p| p.at));
        let duration = (!build_spans.is_empty() && c.kernel_cached != Some(true))
            .then(|| build_spans.iter().map(|s| s.seconds).sum::<f64>());
        let log = matches!(status, Some(Status::Fail | Status::Error)).then(|| {
            let mut t = c.reason.clone().unwrap_or_default();
            for d in &c.details {
                t.push('\n');
                t.push_str(d);
            }
            excerpt(&t)
        });
        let files: BTreeMap<&str, String> = ["build.log", "config"]
            .iter()
            .filter_map(|f| Some((*f, self.file(c, f)?.0)))
            .collect();
        let v = object(vec![
            ("id", Some(id.clone().into())),
            ("checkout_id", Some(self.id(&c.patchset).into())),
            ("origin", Some(self.opts.origin.clone().into())),
            ("architecture", Some(c.arch.name().into())),
            ("config_name", Some(c.config.clone().into())),
            ("comment", Some(c.id.to_string().into())),
            ("status", status.map(Value::from)),
            ("start_time", start.map(|t| time(t).into())),
            ("duration", duration.map(secs)),
            ("log_url", self.url(c, "build.log")),
            ("config_url", self.url(c, "config")),
            ("log_excerpt", log.map(Value::from)),
            (
                "misc",
                Some(json!({
                    "kernel_key": c.kernel_key,
                    "cached": c.kernel_cached,
                    "verdict": c.verdict.label(),
                    "files": files,
                    // Which of the series' changed lines this build compiled and the
                    // tests ran (the whole record is in results.json).
                    "series_coverage": c.series_coverage.as_ref().map(|s| json!({
                        "reach": s.reach,
                        "summary": s.summary,
                        "lines_measurable": s.lines_measurable,
                        "lines_ran": s.lines_ran,
                    })),
                })),
            ),
        ]);
        self.push("builds", v);
        if status == Some(Status::Fail) && c.verdict == Verdict::BuildFail {
            let first = c
                .details
                .first()
                .or(c.reason.as_ref())
                .cloned()
                .unwrap_or_default();
            let issue = self.issue(&first, "build.error", json!({"kind": "build"}));
            self.incident(&issue, json!({"build_id": id}), &first);
        }
        Some(id)
    }

    fn incident(&mut self, issue: &str, link: Value, what: &str) {
        let key = link
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut v = json!({
            "id": format!("{key}#{issue}"),
            "origin": self.opts.origin,
            "issue_id": issue,
            "issue_version": 0,
            "present": true,
            "comment": excerpt(what),
        });
        if let (Some(m), Some(l)) = (v.as_object_mut(), link.as_object()) {
            m.extend(l.clone());
        }
        // The same report twice in one test is one incident.
        let dup = self
            .doc
            .get("incidents")
            .is_some_and(|all| all.iter().any(|i| i["id"] == v["id"]));
        if !dup {
            self.push("incidents", v);
        }
    }

    fn tests(&mut self, c: &CellResult, build_id: &str) {
        let booted = !c.boot_lines.is_empty() || c.ssh_ready_secs.is_some();
        if !booted && c.verdict != Verdict::BootFail {
            return;
        }
        let boot_id = format!("{build_id}/boot");
        let boot_status = if booted { Status::Pass } else { Status::Fail };
        let env = json!({
            "comment": format!(
                "QEMU {} guest under {}",
                c.arch.name(),
                c.accel.map_or("an unknown accelerator", |a| a.name())
            ),
            "misc": {"accel": c.accel.map(|a| a.name()), "accel_note": c.accel_note},
        });
        let console = self.file(c, "console.log");
        let boot = object(vec![
            ("id", Some(boot_id.clone().into())),
            ("build_id", Some(build_id.into())),
            ("origin", Some(self.opts.origin.clone().into())),
            ("path", Some("boot".into())),
            ("status", Some(boot_status.into())),
            ("environment", Some(env.clone())),
            (
                "start_time",
                phase_time(c, crate::record::phase::Phase::Boot, None).map(|t| time(t).into()),
            ),
            ("duration", c.ssh_ready_secs.map(secs)),
            (
                "log_url",
                console
                    .as_ref()
                    .and_then(|(_, u)| u.clone())
                    .map(Value::from),
            ),
            (
                "log_excerpt",
                (!booted).then(|| excerpt(c.reason.as_deref().unwrap_or_default()).into()),
            ),
            (
                "misc",
                Some(json!({
                    "console": console.as_ref().map(|(p, _)| p),
                    "kernel_init_secs": c.kernel_init_secs,
                    "detectors": c.detectors.as_ref().map(|d| d.summary()),
                    "verdict": c.verdict.label(),
                    // The cell's throughput against its base cell (perf_faults): the
                    // line every output shows, and the rows it sums up.
                    "performance": c.perf.as_ref().map(|p| json!({
                        "summary": p.summary(),
                        "base": p.base,
                        "base_boots": p.base_boots,
                        "cell_boots": p.cell_boots,
                        "rows": p.rows,
                    })),
                })),
            ),
        ]);
        self.push("tests", boot);
        for t in &c.tests {
            self.test(c, t, build_id, &env);
        }
        // Reports outside any exported test belong to the boot.
        let names: Vec<&str> = c.tests.iter().map(|t| t.name.as_str()).collect();
        for f in c.real_findings() {
            if f.during.as_deref().is_none_or(|d| !names.contains(&d)) {
                self.finding(c, f, &boot_id);
            }
        }
    }

    /// The patch that brought `title` into cell `c`'s series, if a bisection said.
    fn introduced(&self, c: &CellResult, title: &str) -> Option<crate::record::bisect::Introduced> {
        self.compare
            .as_ref()?
            .rows
            .iter()
            .find(|r| r.cell == c.id.as_str() && r.title == title)?
            .introduced
            .clone()
    }

    fn finding(&mut self, c: &CellResult, f: &Finding, test_id: &str) {
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(segment))
            .unwrap_or_else(|| "other".into());
        let trace: Vec<&str> = f
            .trace
            .iter()
            .take(16)
            .map(|fr| fr.function.as_str())
            .collect();
        let issue = self.issue(
            &f.title,
            &format!("runtime.{kind}"),
            json!({"kind": kind, "frame": f.frame, "trace": trace}),
        );
        let what = match self.introduced(c, &f.title) {
            Some(i) => format!("{}; {}", f.title, i.describe()),
            None => f.title.clone(),
        };
        self.incident(&issue, json!({"test_id": test_id}), &what);
    }

    fn test(&mut self, c: &CellResult, t: &TestResult, build_id: &str, env: &Value) {
        let id = format!("{build_id}/{}", t.name);
        let path = format!("kmatrix.{}", segment(&t.name));
        let reports: Vec<&Finding> = c
            .real_findings()
            .filter(|f| f.during.as_deref() == Some(t.name.as_str()))
            .collect();
        let log = test_log(t, &reports);
        let ktap = self.file(c, &format!("tests/{}.ktap", t.name));
        let start = phase_time(c, crate::record::phase::Phase::Test, Some(&t.name));
        let v = object(vec![
            ("id", Some(id.clone().into())),
            ("build_id", Some(build_id.into())),
            ("origin", Some(self.opts.origin.clone().into())),
            ("path", Some(path.clone().into())),
            ("status", Some(test_status(c, t, &reports).into())),
            ("environment", Some(env.clone())),
            ("start_time", start.map(|s| time(s).into())),
            ("duration", Some(secs(t.seconds))),
            (
                "log_url",
                ktap.as_ref().and_then(|(_, u)| u.clone()).map(Value::from),
            ),
            (
                "log_excerpt",
                (!log.is_empty()).then(|| excerpt(&log).into()),
            ),
            (
                "misc",
                Some(json!({
                    "ktap": ktap.as_ref().map(|(p, _)| p),
                    "outcome": t.outcome,
                    "overlap": t.overlap,
                    "vmstat_delta": t.vmstat_delta,
                    "evidence": t.evidence,
                    "controls": test_controls(c, t),
                })),
            ),
        ]);
        self.push("tests", v);
        self.cases(t, &id, &path, build_id, env);
        for f in reports {
            self.finding(c, f, &id);
        }
    }

    /// A test object per KTAP case of the test (the first `CASES_MAX`).
    fn cases(&mut self, t: &TestResult, id: &str, path: &str, build_id: &str, env: &Value) {
        for case in t.ktap.cases.iter().take(CASES_MAX) {
            let v = object(vec![
                ("id", Some(format!("{id}/{}", case.number).into())),
                ("build_id", Some(build_id.into())),
                ("origin", Some(self.opts.origin.clone().into())),
                (
                    "path",
                    Some(format!("{path}.{}", segment(&case.description)).into()),
                ),
                (
                    "status",
                    Some(
                        match case.status {
                            ktap::Status::Ok => Status::Pass,
                            ktap::Status::NotOk => Status::Fail,
                            ktap::Status::Skip => Status::Skip,
                        }
                        .into(),
                    ),
                ),
                ("environment", Some(env.clone())),
                ("comment", Some(excerpt(&case.description).into())),
            ]);
            self.push("tests", v);
        }
    }
}

/// KCIDB's status of a build or test (schema 5: worst first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Fail,
    Error,
    Miss,
    Pass,
    Skip,
}

impl From<Status> for Value {
    fn from(s: Status) -> Value {
        Value::from(match s {
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Miss => "MISS",
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
        })
    }
}

/// A test's KCIDB status: FAIL with a kernel report during it, ERROR when its control
/// stayed silent (it could not have shown one), SKIP when every KTAP case skipped (the
/// kernel lacks what it drives), else what its outcome says.
fn test_status(c: &CellResult, t: &TestResult, reports: &[&Finding]) -> Status {
    let silent = c
        .controls
        .iter()
        .any(|k| k.test == t.name && k.state == ControlState::Silent);
    if !reports.is_empty() {
        Status::Fail
    } else if silent {
        Status::Error
    } else {
        match &t.outcome {
            TestOutcome::Exited { .. } if t.skipped().is_some() => Status::Skip,
            TestOutcome::Exited { .. } if t.passed() => Status::Pass,
            TestOutcome::Exited { .. }
            | TestOutcome::NotRun { .. }
            | TestOutcome::TimedOut { .. }
            | TestOutcome::Unresponsive { .. }
            | TestOutcome::GuestDied { .. } => Status::Fail,
            TestOutcome::Abandoned { .. } => Status::Error,
            TestOutcome::HostError { .. } => Status::Miss,
        }
    }
}

/// A test's log excerpt: why it failed, then the kernel reports during it.
fn test_log(t: &TestResult, reports: &[&Finding]) -> String {
    let mut log = String::new();
    if let Some(why) = t.failure() {
        log.push_str(&why);
        log.push('\n');
    }
    if let Some(why) = t.skipped() {
        log.push_str(&format!("skipped: {why}\n"));
    }
    for f in reports {
        log.push_str(&f.report);
        log.push('\n');
    }
    log
}

/// The positive controls of a test (not the liveness step's) and their state.
fn test_controls(c: &CellResult, t: &TestResult) -> Vec<Value> {
    c.controls
        .iter()
        .filter(|k| k.test == t.name && k.test != LIVENESS)
        .map(|k| {
            json!({
                "kind": k.expect.kind,
                "title": k.expect.title,
                "state": match &k.state {
                    ControlState::Fired { .. } => "fired".to_string(),
                    ControlState::Silent => "silent".to_string(),
                    ControlState::NotJudged { why } => format!("not judged: {why}"),
                },
            })
        })
        .collect()
}

/// The run's name in ids: the folder's name and a digest of its results (unique per
/// run, the same for every export of it).
fn run_key(meta: &RunMeta, cells: &[CellResult], run_dir: &Path) -> String {
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    let mut h = Hasher::new("kcidb-run");
    h.field(meta.spec_hash.as_bytes());
    for c in cells {
        h.field(super::results::render_cell(c).as_bytes());
    }
    format!("{name}.{}", &h.finish()[..8])
}

/// The run as one KCIDB document.
pub fn render(
    meta: &RunMeta,
    cells: &[CellResult],
    run_dir: &Path,
    opts: &Options,
) -> Result<Value, KcidbError> {
    opts.check()?;
    let mut e = Export {
        opts,
        run_dir,
        run: run_key(meta, cells, run_dir),
        doc: BTreeMap::new(),
        issues: BTreeMap::new(),
        // A forged compare.json (a link, a FIFO, a giant) is refused, not followed.
        compare: crate::judge::compare::of_run(run_dir).map_err(|source| KcidbError::Io {
            path: run_dir.join(crate::judge::compare::FILE),
            source,
        })?,
    };
    e.checkouts(cells)?;
    for c in cells {
        if let Some(build) = e.build(c) {
            e.tests(c, &build);
        }
    }
    let mut doc = Map::new();
    doc.insert("version".into(), json!({"major": MAJOR, "minor": MINOR}));
    for kind in ["checkouts", "builds", "tests"] {
        doc.insert(kind.into(), e.doc.remove(kind).unwrap_or_default().into());
    }
    doc.insert(
        "issues".into(),
        e.issues.into_values().collect::<Vec<_>>().into(),
    );
    doc.insert(
        "incidents".into(),
        e.doc.remove("incidents").unwrap_or_default().into(),
    );
    Ok(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_urls_are_checked_before_anything_is_written() {
        assert!(Options::new("kmatrix").check().is_ok());
        assert!(Options::new("my_ci2").check().is_ok());
        for bad in ["", "KMatrix", "k-matrix", "k:m"] {
            let e = Options::new(bad).check().unwrap_err().to_string();
            assert!(e.contains("--kcidb-origin"), "{e}");
        }
        let mut o = Options::new("kmatrix");
        o.url = Some("https://ci.example/job/1/artifacts".into());
        assert!(o.check().is_ok());
        for bad in ["ftp://x", "https://", "https://a b", "runs/latest"] {
            o.url = Some(bad.into());
            assert!(o.check().unwrap_err().to_string().contains("--kcidb-url"));
        }
    }

    #[test]
    fn the_patchset_hash_is_kcidbs() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("0001.patch");
        let b = d.path().join("0002.patch");
        std::fs::write(&a, "a\n").unwrap();
        std::fs::write(&b, "b\n").unwrap();
        // sha256sum 0001.patch 0002.patch | cut -c-64 | sha256sum
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("sha256sum 0001.patch 0002.patch | cut -c-64 | sha256sum | cut -c-64")
            .current_dir(d.path())
            .output()
            .unwrap();
        let want = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(want.len(), 64);
        assert_eq!(patchset_hash(&[a, b]).unwrap(), want);
        assert_eq!(patchset_hash(&[]).unwrap(), "");
    }

    #[test]
    fn excerpts_and_paths_are_what_kcidb_accepts() {
        assert_eq!(excerpt("a\0b"), "ab");
        assert_eq!(excerpt(&"x".repeat(20000)).chars().count(), EXCERPT_MAX);
        assert_eq!(segment("faults_vs_writers"), "faults_vs_writers");
        assert_eq!(segment("lookup: no VMA (EFAULT)"), "lookup_no_VMA_EFAULT");
        assert_eq!(segment("/proc/PID/mem intact"), "proc_PID_mem_intact");
        assert_eq!(segment(""), "_");
        assert_eq!(time(0.5), "1970-01-01T00:00:00.500000Z");
    }
}
