//! `kmatrix b4-check`: b4's external check protocol (`b4 review`, b4 >= 0.15). b4 runs
//! the command named by `b4.review-series-check-cmd` in the kernel tree, with the
//! series' cover letter on stdin and `B4_TRACKING_FILE` naming a JSON copy of the review
//! branch's tracking data; it reads a JSON list of `{tool, status, summary, url,
//! details}` from stdout (`b4/review/checks.py`, `_run_external_cmd`).
//!
//! The series is the review branch's commits above its base (b4 puts an empty tracking
//! commit at the branch's tip, and the series' prerequisites on the base). The matrix
//! runs as `kmatrix run --tree TOPDIR --series BASE..TIP` (a child kmatrix, its output on
//! stderr), and its results become one `kmatrix` entry: `fail` when a series cell fails
//! (the first finding's title per failing cell), `warn` when a cell could not judge the
//! series (INCONCLUSIVE, the host, a base that fails as well), `pass` otherwise; the
//! url is the run's report.html, the details every cell, in the structured list b4's
//! TUI renders for its own checks.

use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::record::result::CellResult;
use crate::record::verdict::{Category, Verdict};

/// What b4 passes: the environment variable naming the tracking data's file.
pub const TRACKING_ENV: &str = "B4_TRACKING_FILE";
/// b4's prefix of review branches (`b4/review/<change-id>`).
const REVIEW_BRANCH_PREFIX: &str = "b4/review/";
/// The line b4 writes between the cover letter and the JSON in a tracking commit.
const TRACKING_MARKER: &str = "--- b4-review-tracking ---";
/// The quick profile, unless `--only` says otherwise.
pub const DEFAULT_ONLY: &str = "x86_64/*";
/// b4 shows the summary in one panel line; a kernel's titles can be long.
const SUMMARY_MAX: usize = 1500;
/// git answers in well under this; a hung git must not hang b4's TUI.
const GIT_LIMIT: Duration = Duration::from_secs(60);

pub struct Args {
    pub spec: Option<PathBuf>,
    pub only: Vec<String>,
    pub runs_dir: Option<PathBuf>,
}

/// b4's three check states, in the order the worst one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One entry of b4's check output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub tool: String,
    pub status: Status,
    pub summary: String,
    pub url: String,
    /// A JSON list of `{status, context, state, description, url}` (what b4's TUI shows
    /// as a list, as for patchwork's checks), or plain text.
    pub details: String,
}

impl Check {
    fn new(status: Status, summary: String) -> Check {
        Check {
            tool: "kmatrix".into(),
            status,
            summary: bounded(&summary),
            url: String::new(),
            details: String::new(),
        }
    }
}

/// The series under review, as commit ids of the tree's repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub branch: String,
    pub base: String,
    pub tip: String,
    pub subject: String,
}

impl Series {
    pub fn range(&self) -> String {
        format!("{}..{}", self.base, self.tip)
    }
}

/// Run the check and print b4's JSON on stdout. Every outcome is a JSON answer (b4
/// shows a command's stderr only when its stdout is empty); the exit code is the run's.
pub async fn main(args: Args) -> i32 {
    let (check, code) = match check(&args).await {
        Ok(r) => r,
        Err(why) => (
            Check::new(
                Status::Warn,
                format!("kmatrix could not test the series: {why}"),
            ),
            crate::record::verdict::exit::USAGE,
        ),
    };
    match serde_json::to_string(&[check]) {
        Ok(json) => {
            println!("{json}");
            code
        }
        Err(e) => {
            eprintln!("kmatrix: b4-check: {e}");
            crate::record::verdict::exit::INFRA
        }
    }
}

async fn check(args: &Args) -> Result<(Check, i32), String> {
    let file = std::env::var_os(TRACKING_ENV).ok_or_else(|| {
        format!("no {TRACKING_ENV}: b4 passes it for a series with a review branch (`b4 review` checks it out); configure kmatrix as b4.review-series-check-cmd")
    })?;
    let tracking =
        crate::host::runfile::read_given_string(Path::new(&file), 16 << 20, "b4's tracking file")
            .map_err(|e| format!("{TRACKING_ENV} {}: {e}", Path::new(&file).display()))?;
    let top = git(Path::new("."), &["rev-parse", "--show-toplevel"])
        .await
        .map_err(|e| format!("not in a git repository: {e}"))?;
    let top = PathBuf::from(top);
    let series = find_series(&top, &tracking).await?;
    eprintln!(
        "kmatrix: b4-check: {} ({}): {}",
        series.branch,
        crate::record::fmt::visible(&series.subject),
        series.range()
    );
    let spec = spec_path(args.spec.as_deref(), &top)?;
    let runs = match &args.runs_dir {
        Some(r) => r.clone(),
        None => spec
            .parent()
            .map(|p| p.join("runs"))
            .unwrap_or_else(|| PathBuf::from("runs")),
    };
    // A folder of its own, so that this check's run is found without racing another.
    let runs =
        crate::host::rundir::unique_dir(&runs, &format!("b4-{}", crate::record::fmt::timestamp()))
            .map_err(|e| e.to_string())?;
    let only = if args.only.is_empty() {
        vec![DEFAULT_ONLY.to_string()]
    } else {
        args.only.clone()
    };
    let mut argv: Vec<std::ffi::OsString> = vec![
        "run".into(),
        "--spec".into(),
        spec.clone().into(),
        "--tree".into(),
        top.clone().into(),
        "--series".into(),
        series.range().into(),
        "--runs-dir".into(),
        runs.clone().into(),
    ];
    for o in &only {
        argv.push("--only".into());
        argv.push(o.into());
    }
    let (code, tail) = run_child(&argv).await?;
    let run_dir = std::fs::canonicalize(runs.join("latest")).map_err(|_| {
        format!(
            "`kmatrix run` exited {code} without a run folder:\n{}",
            tail.join("\n")
        )
    })?;
    let (_, cells) = crate::report::load_results(&run_dir).map_err(|e| {
        format!(
            "`kmatrix run` exited {code}; its results: {e}\n{}",
            tail.join("\n")
        )
    })?;
    Ok((judge(&cells, &file_url(&run_dir.join("report.html"))), code))
}

/// The series b4's tracking data names, in `top`'s repository: the commits of the review
/// branch `b4/review/<change-id>` below b4's tracking commit, above the first patch's
/// parent (the base plus any prerequisite commits). Every value is checked before git
/// sees it: the file is b4's, but its content came from a mailing list.
pub async fn find_series(top: &Path, tracking: &str) -> Result<Series, String> {
    let v: Value = serde_json::from_str(tracking)
        .map_err(|e| format!("{TRACKING_ENV} is not b4's tracking JSON: {e}"))?;
    let s = v
        .get("series")
        .ok_or_else(|| format!("{TRACKING_ENV} has no `series`"))?;
    let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default();
    let change_id = field("change-id");
    if !plain_ref_part(change_id) {
        return Err(format!(
            "{TRACKING_ENV}: change-id {:?} is not a branch name b4 would make",
            crate::record::fmt::visible(change_id)
        ));
    }
    let branch = format!("{REVIEW_BRANCH_PREFIX}{change_id}");
    let tip_ref = format!("refs/heads/{branch}");
    let tip = commit(top, &tip_ref)
        .await
        .map_err(|e| format!("review branch {branch}: {e}"))?;
    // b4's tracking commit (empty, its JSON in the message) is not part of the series.
    let message = git(top, &["log", "-1", "--format=%B", &tip]).await?;
    let tip = if message.contains(TRACKING_MARKER) {
        commit(top, &format!("{tip}~1")).await?
    } else {
        tip
    };
    let base = match field("first-patch-commit") {
        "" => {
            let b = field("base-commit");
            if !is_hex(b) {
                return Err(format!(
                    "{TRACKING_ENV}: no base-commit or first-patch-commit"
                ));
            }
            commit(top, b).await?
        }
        first if is_hex(first) => commit(top, &format!("{first}~1")).await?,
        other => {
            return Err(format!(
                "{TRACKING_ENV}: first-patch-commit {:?} is not a commit id",
                crate::record::fmt::visible(other)
            ))
        }
    };
    if base == tip {
        return Err(format!("{branch} has no commits above its base"));
    }
    Ok(Series {
        branch,
        base,
        tip,
        subject: field("subject").chars().take(200).collect(),
    })
}

/// The spec: `--spec`, else the tree's own `kmatrix.yaml`, else the one of the kmatrix
/// checkout this binary was built from (where `scripts/setup-host` built it).
pub fn spec_path(given: Option<&Path>, top: &Path) -> Result<PathBuf, String> {
    if let Some(s) = given {
        return std::path::absolute(s).map_err(|e| format!("--spec {}: {e}", s.display()));
    }
    let own = top.join("kmatrix.yaml");
    if own.is_file() {
        return Ok(own);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmatrix.yaml");
    if built.is_file() {
        return std::path::absolute(&built).map_err(|e| e.to_string());
    }
    Err(format!(
        "no spec: {} has no kmatrix.yaml and the kmatrix checkout this binary was built from is gone; pass --spec",
        top.display()
    ))
}

/// The run's cells judged for b4: one entry, the worst status of its cells.
pub fn judge(cells: &[CellResult], url: &str) -> Check {
    let mut rows: Vec<(Status, &CellResult, String)> = Vec::new();
    for c in cells {
        let base = cells
            .iter()
            .find(|b| b.patchset == "base" && b.arch == c.arch && b.config == c.config);
        let (status, why) = cell_status(c, base);
        rows.push((status, c, why));
    }
    let worst = rows.iter().map(|r| r.0).max();
    let Some(worst) = worst else {
        return Check::new(Status::Warn, "the run has no cells".into());
    };
    let summary = match worst {
        Status::Pass => format!(
            "{} cell(s) passed: {}",
            rows.len(),
            rows.iter()
                .map(|r| r.1.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        bad => rows
            .iter()
            .filter(|r| r.0 == bad)
            .map(|r| format!("{} {}: {}", r.1.verdict.label(), r.1.id, r.2))
            .collect::<Vec<_>>()
            .join("; "),
    };
    let details: Vec<Value> = rows
        .iter()
        .map(|(status, c, why)| {
            serde_json::json!({
                "status": status,
                "context": c.id,
                "state": c.verdict.label(),
                "description": bounded(why),
                "url": file_url(&c.dir),
            })
        })
        .collect();
    Check {
        tool: "kmatrix".into(),
        status: worst,
        summary: bounded(&summary),
        url: url.to_string(),
        details: serde_json::to_string(&details).unwrap_or_default(),
    }
}

/// One cell for b4. The base cells are the series' baseline: a base that does not pass
/// leaves the series untested (warn); a series cell that fails exactly as its base
/// does says nothing about the series either.
pub fn cell_status(c: &CellResult, base: Option<&CellResult>) -> (Status, String) {
    let why = what_failed(c);
    if c.patchset == "base" {
        return match c.verdict.category() {
            Category::Pass => (Status::Pass, "the base commit passes".into()),
            _ => (Status::Warn, format!("the base commit itself: {why}")),
        };
    }
    match c.verdict.category() {
        Category::Pass => (Status::Pass, "passed".into()),
        Category::Failed => match base {
            Some(b) if b.verdict == c.verdict && what_failed(b) == why => {
                (Status::Warn, format!("{why} (as its base commit does)"))
            }
            _ => (Status::Fail, why),
        },
        Category::Doubtful => (Status::Warn, why),
        Category::Infra | Category::Interrupted => (Status::Warn, format!("not tested: {why}")),
    }
}

/// What a cell's verdict rests on: its first kernel report's title, else the first build
/// error, else its reason.
fn what_failed(c: &CellResult) -> String {
    if c.verdict == Verdict::Pass {
        return "passed".into();
    }
    if let Some(f) = c.real_findings().next() {
        return crate::record::fmt::visible(&f.title);
    }
    if matches!(c.verdict, Verdict::BuildFail | Verdict::PatchFail) {
        if let Some(d) = c.details.first() {
            return crate::record::fmt::visible(d);
        }
    }
    crate::record::fmt::visible(c.reason.as_deref().unwrap_or(c.verdict.label()))
}

/// The child `kmatrix run`: its output goes to stderr (b4 reads stdout), its last lines
/// are kept for the answer when it produced no results. A signal to b4-check stops it as
/// Ctrl-C stops a run: the results so far are written.
async fn run_child(argv: &[std::ffi::OsString]) -> Result<(i32, Vec<String>), String> {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find kmatrix itself: {e}"))?;
    let mut child = tokio::process::Command::new(exe)
        .args(argv)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start kmatrix run: {e}"))?;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let mut pumps = Vec::new();
    let outs: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = vec![
        Box::new(child.stdout.take().expect("piped")),
        Box::new(child.stderr.take().expect("piped")),
    ];
    for out in outs {
        let tail = tail.clone();
        pumps.push(tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = writeln!(std::io::stderr(), "{l}");
                if let Ok(mut t) = tail.lock() {
                    if t.len() == 20 {
                        t.pop_front();
                    }
                    t.push_back(l);
                }
            }
        }));
    }
    let (cancel_tx, mut cancel_rx) = tokio::sync::watch::channel(false);
    crate::cli::signals::on_signals(cancel_tx);
    let status = tokio::select! {
        s = child.wait() => s,
        _ = cancel_rx.wait_for(|c| *c) => {
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
            child.wait().await
        }
    }
    .map_err(|e| format!("waiting for kmatrix run: {e}"))?;
    for p in pumps {
        let _ = p.await;
    }
    let tail: Vec<String> = tail
        .lock()
        .map(|t| t.iter().map(|l| crate::record::fmt::visible(l)).collect())
        .unwrap_or_default();
    Ok((
        status.code().unwrap_or(crate::record::verdict::exit::INFRA),
        tail,
    ))
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let spec = crate::host::proc::ProcSpec::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .timeout(GIT_LIMIT);
    crate::host::proc::output(&spec)
        .await
        .map(|o| o.trim().to_string())
        .map_err(|e| crate::record::fmt::chain(&e))
}

/// A revision as a full commit id (`--end-of-options`: never read as an option).
async fn commit(top: &Path, rev: &str) -> Result<String, String> {
    let id = git(
        top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .await
    .map_err(|_| format!("no commit {rev} in this repository"))?;
    if is_hex(&id) {
        Ok(id)
    } else {
        Err(format!("no commit {rev} in this repository"))
    }
}

fn is_hex(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// A part of a branch name as b4 makes them (a change-id like `20260101-topic-v2-1a2b3c`).
fn plain_ref_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with(['.', '-', '/'])
        && !s.contains("..")
        && !s.ends_with(['/', '.'])
        && !s.ends_with(".lock")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '+'))
}

fn bounded(s: &str) -> String {
    if s.chars().count() <= SUMMARY_MAX {
        return s.to_string();
    }
    let mut t: String = s.chars().take(SUMMARY_MAX).collect();
    t.push_str(" ...");
    t
}

/// `file://` URL of a local path, its bytes outside the unreserved set percent-encoded.
pub fn file_url(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut u = String::from("file://");
    for &b in p.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            u.push(b as char);
        } else {
            u.push_str(&format!("%{b:02X}"));
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::finding::{Finding, Kind};
    use crate::record::plan::{Arch, Cell};

    fn cell(config: &str, patchset: &str, verdict: Verdict) -> CellResult {
        let c = Cell {
            arch: Arch::X86_64,
            config: config.into(),
            patchset: patchset.into(),
            base_config: "tinyconfig".into(),
            fragments: vec![],
            patches: vec![],
        };
        let mut r = CellResult::new(&c, PathBuf::from("/runs/r").join(c.rel_dir()));
        r.verdict = verdict;
        r
    }

    fn finding(title: &str, expected_by: Option<&str>) -> Finding {
        Finding {
            kind: Kind::NullDeref,
            title: title.into(),
            line: 1,
            expected_by: expected_by.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn a_failing_series_cell_fails_with_its_first_real_findings_title() {
        let base = cell("pvl-on", "base", Verdict::Pass);
        let mut s = cell("pvl-on", "series", Verdict::Fail);
        s.reason = Some("FAIL - something".into());
        s.findings = vec![
            finding(
                "possible circular locking dependency detected",
                Some("vma_probe"),
            ),
            finding(
                "BUG: unable to handle kernel NULL pointer dereference in f",
                None,
            ),
            finding("BUG: soft lockup in g", None),
        ];
        let mut bf = cell("pvl-off", "series", Verdict::BuildFail);
        bf.reason = Some("net/ipv4/tcp.c:1: error: x (log: /runs/r/build.log)".into());
        bf.details = vec!["net/ipv4/tcp.c:1: error: x".into()];
        let base_off = cell("pvl-off", "base", Verdict::Pass);
        let c = judge(&[base, s, base_off, bf], "file:///runs/r/report.html");
        assert_eq!(c.tool, "kmatrix");
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.summary,
            "FAIL x86_64/pvl-on/series: BUG: unable to handle kernel NULL pointer dereference in f; BUILD-FAIL x86_64/pvl-off/series: net/ipv4/tcp.c:1: error: x"
        );
        assert_eq!(c.url, "file:///runs/r/report.html");
        let d: Vec<Value> = serde_json::from_str(&c.details).unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(d[0]["context"], "x86_64/pvl-on/base");
        assert_eq!(d[0]["status"], "pass");
        assert_eq!(d[1]["status"], "fail");
        assert_eq!(d[1]["state"], "FAIL");
        assert_eq!(d[1]["url"], "file:///runs/r/x86_64/pvl-on/series");
    }

    #[test]
    fn doubtful_untested_and_inherited_failures_warn_and_a_clean_run_passes() {
        let mut inc = cell("pvl-on", "series", Verdict::Inconclusive);
        inc.reason = Some("control vma_probe stayed silent".into());
        let base = cell("pvl-on", "base", Verdict::Pass);
        let c = judge(&[base.clone(), inc], "");
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.summary,
            "INCONCLUSIVE x86_64/pvl-on/series: control vma_probe stayed silent"
        );
        let mut infra = cell("pvl-on", "series", Verdict::InfraError);
        infra.reason = Some("the disk is full".into());
        assert_eq!(
            cell_status(&infra, Some(&base)),
            (Status::Warn, "not tested: the disk is full".into())
        );
        // The base does not build: neither does the series, for the same reason.
        let mut b = cell("pvl-on", "base", Verdict::BuildFail);
        b.details = vec!["fixture: error: not a kernel".into()];
        let mut s = cell("pvl-on", "series", Verdict::BuildFail);
        s.details = b.details.clone();
        assert_eq!(cell_status(&b, None).0, Status::Warn);
        assert_eq!(cell_status(&s, Some(&b)).0, Status::Warn);
        // ... but a different error is the series' own.
        s.details = vec!["lib/x.c:3:1: error: expected ';'".into()];
        assert_eq!(cell_status(&s, Some(&b)).0, Status::Fail);
        let ok = judge(&[base, cell("pvl-on", "series", Verdict::Pass)], "u");
        assert_eq!(ok.status, Status::Pass);
        assert_eq!(
            ok.summary,
            "2 cell(s) passed: x86_64/pvl-on/base, x86_64/pvl-on/series"
        );
    }

    #[test]
    fn hostile_text_is_bounded_and_made_visible() {
        let mut s = cell("pvl-on", "series", Verdict::Fail);
        s.findings = vec![finding(
            &format!("BUG: \u{1b}[2J{}", "x".repeat(5000)),
            None,
        )];
        let c = judge(&[s], "");
        assert!(!c.summary.contains('\u{1b}'));
        assert!(c.summary.chars().count() < SUMMARY_MAX + 100);
        assert!(!plain_ref_part("--upload-pack=x"));
        assert!(!plain_ref_part("a/../b"));
        assert!(plain_ref_part("20260101-topic-v2-1a2b3c"));
        assert_eq!(
            file_url(Path::new("/a b/r%.html")),
            "file:///a%20b/r%25.html"
        );
    }
}
