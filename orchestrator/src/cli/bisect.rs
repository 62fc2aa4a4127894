//! `kmatrix bisect CELL`: the first patch of a cell's series at which its failure
//! appears ("which patch of my series did this?").
//!
//! Each step judges one prefix of the series (its first P patches, then the harness
//! patches the cell gets anyway) as a real one-cell run of the engine, in its own run
//! folder `prefix-P/`: the prefix kernel is built in the cell's build slot and cached
//! by content like any other, so later prefixes rebuild only what differs and a rerun
//! builds nothing; the verdict is `crate::judge::decide`'s, over `--repeat N` fresh boots.
//!
//! The first step is the full series: it must show the failure, and says what to look
//! for. The predicate is, by default, the dedup title of the full series' first kernel
//! report (the one its verdict names), or `--title`; for a BUILD-FAIL, PATCH-FAIL or
//! CONFIG-MISMATCH, the verdict itself (and those steps only build). Titles are taken
//! with the full series' changed functions preferred at every step, so a prefix's report
//! is titled as the full series would title it. A step is bad when the failure is seen
//! in any of its boots; a good one carries the chance `(1-p)^N` that a failure seen at
//! rate `p` (over the bad steps' boots) hid in all N of its boots. A step that cannot
//! show the failure (a runtime bug in a prefix that does not build) is skipped, and the
//! search goes round it; an infrastructure error or Ctrl-C stops the bisection.
//!
//! The unpatched tree (prefix 0) is taken as good: it is what the series applies to.
//!
//! Output: the first bad patch (its number, subject and file), a table of the steps, and
//! the one line that judges the first bad prefix again (`--prefix P`); in the terminal,
//! `bisect.json` and `report.html` of the bisect folder (`runs/bisect-<time>/`).

use crate::cli::session::{Finished, Session, Sinks, Start};
use crate::console::Finding;
use crate::engine::RunOptions;
use crate::host::cache::Cache;
use crate::record::bisect::*;
use crate::record::plan::{Cell, Plan};
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;
use crate::report;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    #[error("no cell `{0}` in the spec; `kmatrix plan` lists the cell ids")]
    NoCell(String),
    #[error("{cell}: patchset `{patchset}` has no patches of its own (harness patches are not the series): nothing to bisect")]
    NoSeries { cell: String, patchset: String },
    #[error("--prefix {prefix}: the series of {cell} has {len} patch(es); give 1 to {len}")]
    Prefix {
        cell: String,
        prefix: usize,
        len: usize,
    },
    #[error("{cell}: {verdict} at the full series, and no kernel report to look for ({reason}); pass --title with the title of the report to look for")]
    NothingToLookFor {
        cell: String,
        verdict: &'static str,
        reason: String,
    },
    #[error("cannot create the bisect folder {path}: {source}; pass a writable --runs-dir")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; the steps' run folders are kept")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// kmatrix itself failed (a task panicked).
    #[error("internal error during the step of prefix {prefix}: {why}")]
    Internal { prefix: usize, why: String },
}

impl BisectError {
    pub fn exit_code(&self) -> i32 {
        use crate::record::verdict::exit;
        match self {
            BisectError::Dir { .. } | BisectError::Write { .. } | BisectError::Internal { .. } => {
                exit::INFRA
            }
            _ => exit::USAGE,
        }
    }
}

/// What `kmatrix bisect` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    pub cell: String,
    pub spec: PathBuf,
    pub title: Option<String>,
    pub repeat: u32,
    pub runs_dir: Option<PathBuf>,
    /// Judge only this prefix (the repro of one step).
    pub prefix: Option<usize>,
}

/// The binary search over prefixes: `good` is known good (0: the unpatched tree), `bad`
/// known bad; each step halves what is between, going round skipped prefixes.
#[derive(Debug, Clone)]
pub struct Search {
    good: usize,
    bad: usize,
    skipped: BTreeSet<usize>,
}

impl Search {
    /// A series of `len` patches whose full series is bad.
    pub fn new(len: usize) -> Search {
        Search {
            good: 0,
            bad: len,
            skipped: BTreeSet::new(),
        }
    }
    /// The next prefix to judge: the untried one nearest the middle, None when done.
    pub fn next(&self) -> Option<usize> {
        let mid = (self.good + self.bad) / 2;
        (self.good + 1..self.bad)
            .filter(|p| !self.skipped.contains(p))
            .min_by_key(|p| (p.abs_diff(mid), *p))
    }
    pub fn record(&mut self, prefix: usize, judged: Judged) {
        match judged {
            Judged::Bad if prefix < self.bad => self.bad = prefix,
            Judged::Good if prefix > self.good && prefix < self.bad => self.good = prefix,
            Judged::Skip => {
                self.skipped.insert(prefix);
            }
            _ => {}
        }
    }
    pub fn outcome(&self) -> Outcome {
        if self.bad == self.good + 1 {
            Outcome::Found { patch: self.bad }
        } else {
            Outcome::Range {
                first: self.good + 1,
                last: self.bad,
            }
        }
    }
}

/// Why a step stops the bisection (its exit code and words), or how it is judged.
pub fn judge(
    predicate: &Predicate,
    verdict: Verdict,
    reason: Option<&str>,
    seen: u32,
) -> Result<(Judged, Option<String>), (i32, String)> {
    let reason = reason.unwrap_or("");
    match verdict {
        Verdict::Interrupted => {
            return Err((crate::record::verdict::exit::INTERRUPTED, reason.into()))
        }
        Verdict::InfraError => {
            return Err((
                crate::record::verdict::exit::INFRA,
                format!("INFRA-ERROR (the host's or kmatrix's fault, not the kernel's): {reason}"),
            ))
        }
        _ => {}
    }
    let skip = |why: String| Ok((Judged::Skip, Some(why)));
    match predicate {
        Predicate::Title { .. } => {
            if seen > 0 {
                return Ok((Judged::Bad, None));
            }
            match verdict {
                Verdict::BuildFail
                | Verdict::PatchFail
                | Verdict::ConfigMismatch
                | Verdict::BootFail => skip(format!(
                    "{}: the kernel did not run the tests",
                    verdict.label()
                )),
                Verdict::Inconclusive => {
                    skip(format!("the detectors could not be trusted: {reason}"))
                }
                _ => Ok((Judged::Good, None)),
            }
        }
        Predicate::Verdict { verdict: want } => {
            if verdict == *want {
                return Ok((Judged::Bad, None));
            }
            // Got past the phase that fails: good. Stopped before it: cannot say.
            let order = |v: Verdict| match v {
                Verdict::PatchFail => 0,
                Verdict::ConfigMismatch => 1,
                Verdict::BuildFail => 2,
                Verdict::BootFail => 3,
                _ => 4,
            };
            if order(verdict) < order(*want) {
                skip(format!("{}: it stopped before that phase", verdict.label()))
            } else {
                Ok((Judged::Good, None))
            }
        }
    }
}

/// The predicate the full series' result implies: its verdict for failures with no
/// kernel report, else the title of its first report (the one the verdict names).
pub fn default_predicate(r: &CellResult) -> Result<Predicate, BisectError> {
    let none = || BisectError::NothingToLookFor {
        cell: r.id.to_string(),
        verdict: r.verdict.label(),
        reason: r.reason.clone().unwrap_or_default(),
    };
    match r.verdict {
        Verdict::BuildFail | Verdict::PatchFail | Verdict::ConfigMismatch => {
            return Ok(Predicate::Verdict { verdict: r.verdict })
        }
        Verdict::BootFail if r.real_findings().next().is_none() => {
            return Ok(Predicate::Verdict { verdict: r.verdict })
        }
        _ => {}
    }
    let is_hang = |f: &&Finding| crate::judge::decide::is_hang(f.kind);
    r.real_findings()
        .find(|f| !is_hang(f))
        .or_else(|| r.real_findings().find(is_hang))
        .map(|f| Predicate::Title {
            title: f.title.clone(),
        })
        .ok_or_else(none)
}

/// `(1-p)^n`: the chance that a failure seen at rate `p` hides in all of `n` boots.
pub fn miss_chance(rate: f64, boots: u32) -> f64 {
    (1.0 - rate.clamp(0.0, 1.0)).powi(boots as i32)
}

/// Rates and miss chances once the steps are known.
fn settle(b: &mut Bisect) {
    let Some(pred) = &b.predicate else { return };
    if !pred.varies() {
        b.rate = None;
        return;
    }
    let (seen, boots) = b
        .steps
        .iter()
        .filter(|s| s.judged == Some(Judged::Bad))
        .fold((0, 0), |(a, n), s| (a + s.seen, n + s.boots));
    b.rate = (boots > 0).then(|| seen as f64 / boots as f64);
    for s in &mut b.steps {
        s.miss_chance = match (s.judged, b.rate) {
            (Some(Judged::Good), Some(p)) => Some(miss_chance(p, s.boots)),
            _ => None,
        };
    }
}

/// A path without `.` and `..` (spec paths are joined as written: `tests/specs/../data`).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The subject of a patch file (`Subject: [PATCH v2 1/2] mm: ...`, folded lines joined,
/// the bracketed tags dropped); the file name when it has none.
pub fn subject(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let mut subject = None;
    while let Some(l) = lines.next() {
        if l.is_empty() || l.starts_with("diff ") || l.starts_with("--- ") {
            break;
        }
        if let Some(s) = l.strip_prefix("Subject:") {
            let mut s = s.trim().to_string();
            for cont in lines.by_ref() {
                if cont.starts_with([' ', '\t']) {
                    s.push(' ');
                    s.push_str(cont.trim());
                } else {
                    break;
                }
            }
            subject = Some(s);
            break;
        }
    }
    let mut s = subject.unwrap_or_default();
    while s.starts_with('[') {
        match s.find(']') {
            Some(i) => s = s[i + 1..].trim_start().to_string(),
            None => break,
        }
    }
    if s.is_empty() {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        s
    }
}

/// Boots of a step's cell (its folder, or `repeat-N/` inside) that showed `title`, of
/// how many booted. Real findings only (findings.json, after attribution); each one is
/// titled again from the console with the full series' functions preferred.
fn title_seen(cell_dir: &Path, repeat: u32, preferred: &[String], title: &str) -> (u32, u32) {
    let dirs: Vec<PathBuf> = if repeat > 1 {
        (1..=repeat)
            .map(|i| cell_dir.join(format!("repeat-{i}")))
            .collect()
    } else {
        vec![cell_dir.to_owned()]
    };
    let (mut seen, mut boots) = (0, 0);
    for d in dirs {
        use crate::host::runfile;
        let Ok(console) = runfile::open(&d, "console.log", runfile::CONSOLE_MAX) else {
            continue;
        };
        boots += 1;
        let real: Vec<Finding> = runfile::read_string(&d, "findings.json", runfile::FINDINGS_MAX)
            .ok()
            .and_then(|t| serde_json::from_str::<FindingsFile>(&t).ok())
            .map(|f| f.findings)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.expected_by.is_none())
            .collect();
        let again = crate::console::parse_with(std::io::BufReader::new(console), preferred)
            .unwrap_or_default();
        let hit = real.iter().any(|f| {
            f.title == title
                || again
                    .iter()
                    .find(|g| g.report == f.report)
                    .or_else(|| again.iter().find(|g| g.line == f.line && g.kind == f.kind))
                    .is_some_and(|g| g.title == title)
        });
        if hit {
            seen += 1;
        }
    }
    (seen, boots)
}

#[derive(Deserialize)]
struct FindingsFile {
    findings: Vec<Finding>,
}

/// What every step shares.
struct Ctx {
    plan: Plan,
    cell: Cell,
    series: Vec<PathBuf>,
    harness: Vec<PathBuf>,
    /// The changed functions of the whole series (titles at every step).
    preferred: Vec<String>,
    dir: PathBuf,
    repeat: u32,
    cancel: watch::Receiver<bool>,
    args: Args,
    start: Instant,
}

impl Ctx {
    /// The cell and its series as `args` names them, checked, and the bisect folder made.
    fn new(
        plan: Plan,
        args: Args,
        cancel: watch::Receiver<bool>,
        start: Instant,
    ) -> Result<Ctx, BisectError> {
        let cell = plan
            .cells
            .iter()
            .find(|c| c.id() == args.cell)
            .cloned()
            .ok_or_else(|| BisectError::NoCell(args.cell.clone()))?;
        let series: Vec<PathBuf> = cell.series(&plan).cloned().collect();
        if series.is_empty() {
            return Err(BisectError::NoSeries {
                cell: cell.id().into(),
                patchset: cell.patchset.clone(),
            });
        }
        let len = series.len();
        if let Some(p) = args.prefix {
            if p == 0 || p > len {
                return Err(BisectError::Prefix {
                    cell: cell.id().into(),
                    prefix: p,
                    len,
                });
            }
        }
        let harness: Vec<PathBuf> = cell
            .patches
            .iter()
            .filter(|p| plan.harness.contains(p))
            .cloned()
            .collect();
        let preferred = changed_functions(&series);
        let runs = args
            .runs_dir
            .clone()
            .unwrap_or_else(|| plan.root.join("runs"));
        let dir = crate::host::rundir::unique_dir(
            &runs,
            &format!("bisect-{}", crate::record::fmt::timestamp()),
        )
        .map_err(|e| BisectError::Dir {
            path: e.path,
            source: e.source,
        })?;
        Ok(Ctx {
            plan,
            cell,
            series,
            harness,
            preferred,
            dir,
            repeat: args.repeat.max(1),
            cancel,
            args,
            start,
        })
    }

    /// The record before any step: the series, and `--title` if given.
    fn record(&self) -> Bisect {
        Bisect {
            schema: SCHEMA,
            cell: self.cell.id().into(),
            spec: self.args.spec.clone(),
            repeat: self.repeat,
            predicate: self
                .args
                .title
                .clone()
                .map(|title| Predicate::Title { title }),
            series: self
                .series
                .iter()
                .enumerate()
                .map(|(i, p)| Patch {
                    index: i + 1,
                    file: normalize(p),
                    subject: subject(p),
                })
                .collect(),
            steps: Vec::new(),
            outcome: Outcome::Running,
            rate: None,
            repro: None,
            seconds: 0.0,
            dir: self.dir.clone(),
        }
    }

    /// `bisect.json` and `report.html` as they stand (after every step, so an
    /// interrupted bisection keeps what it learnt).
    fn save(&self, b: &mut Bisect) -> Result<(), BisectError> {
        let dir = &self.dir;
        b.seconds = self.start.elapsed().as_secs_f64();
        settle(b);
        let werr = |source| BisectError::Write {
            path: dir.join(FILE),
            source,
        };
        let json = serde_json::to_vec_pretty(b).map_err(|e| werr(std::io::Error::other(e)))?;
        crate::host::rundir::write(dir, FILE, &json).map_err(werr)?;
        crate::host::rundir::write(dir, "report.html", report::html::bisect_page(b).as_bytes())
            .map_err(|source| BisectError::Write {
                path: dir.join("report.html"),
                source,
            })
    }

    /// `--prefix P`: that prefix alone, judged if a predicate was given.
    async fn judge_one(&self, b: &mut Bisect, p: usize) -> Result<(), BisectError> {
        let (mut step, _) = self.step(p, b.predicate.as_ref()).await?;
        if let Some(pred) = &b.predicate {
            match judge(
                pred,
                judged_verdict(&step),
                step.reason.as_deref(),
                step.seen,
            ) {
                Ok((j, why)) => {
                    step.judged = Some(j);
                    step.why = why;
                }
                Err((code, why)) => b.outcome = Outcome::Stopped { why, code },
            }
        }
        b.steps.push(step);
        if b.outcome == Outcome::Running {
            b.outcome = Outcome::Judged;
        }
        b.repro = Some(self.repro(p, b.predicate.as_ref()));
        self.save(b)?;
        print!("{}", report::text::bisect(b));
        Ok(())
    }

    /// The full series: the failure must be there, and says what to look for. Leaves
    /// `b.outcome` Running when the search can go on.
    async fn full_series(&self, b: &mut Bisect) -> Result<(), BisectError> {
        let (mut step, full) = self.step(self.series.len(), b.predicate.as_ref()).await?;
        if b.predicate.is_none() && full.verdict.is_final() && full.verdict != Verdict::Pass {
            match default_predicate(&full) {
                Ok(p) => {
                    (step.seen, step.boots) = self.full_series_seen(&step, &p);
                    b.predicate = Some(p);
                }
                Err(e) => {
                    b.steps.push(step);
                    b.outcome = Outcome::NotReproduced { why: e.to_string() };
                    self.save(b)?;
                    print!("{}", report::text::bisect(b));
                    return Err(e);
                }
            }
        }
        match (judge_step(b, &step), &b.predicate) {
            (Err((code, why)), _) => b.outcome = Outcome::Stopped { why, code },
            (Ok((Judged::Bad, _)), Some(_)) => step.judged = Some(Judged::Bad),
            (Ok((j, why)), Some(p)) => {
                step.judged = Some(j);
                step.why = why;
                b.outcome = Outcome::NotReproduced {
                    why: format!(
                        "the full series does not show {} ({}{})",
                        p.describe(),
                        step.verdict.label(),
                        step.reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                };
            }
            (Ok(_), None) => {
                b.outcome = Outcome::NotReproduced {
                    why: "the full series passes: nothing to bisect".into(),
                }
            }
        }
        b.steps.push(step);
        self.save(b)
    }

    /// Boots of the full series' step that showed the predicate it implied.
    fn full_series_seen(&self, step: &Step, p: &Predicate) -> (u32, u32) {
        match p {
            Predicate::Title { title } => {
                let (seen, boots) = title_seen(
                    &self.dir.join(&step.dir).join(self.cell.rel_dir()),
                    self.repeat,
                    &self.preferred,
                    title,
                );
                // The title is the full series' own: at least one boot showed it.
                (seen.max(1), boots.max(1))
            }
            Predicate::Verdict { .. } => (1, 1),
        }
    }

    /// The prefixes between the known good and the known bad, until one patch is left
    /// (or a step stops the bisection).
    async fn search(&self, b: &mut Bisect) -> Result<(), BisectError> {
        let mut search = Search::new(self.series.len());
        while b.outcome == Outcome::Running {
            let Some(p) = search.next() else {
                b.outcome = search.outcome();
                break;
            };
            let (mut step, _) = self.step(p, b.predicate.as_ref()).await?;
            match judge_step(b, &step) {
                Ok((j, why)) => {
                    step.judged = Some(j);
                    step.why = why;
                    search.record(p, j);
                }
                Err((code, why)) => b.outcome = Outcome::Stopped { why, code },
            }
            b.steps.push(step);
            self.save(b)?;
        }
        Ok(())
    }

    /// One prefix as a one-cell run in `prefix-P/`.
    async fn step(
        &self,
        prefix: usize,
        predicate: Option<&Predicate>,
    ) -> Result<(Step, CellResult), BisectError> {
        self.announce(prefix);
        let rel = PathBuf::from(format!("prefix-{prefix}"));
        let run_dir = self.dir.join(&rel);
        let result = self.run_prefix(prefix, predicate, &run_dir).await?;
        let cell_dir = run_dir.join(self.cell.rel_dir());
        // This folder is a prefix, not the cell as the spec has it: say how to redo it.
        let _ = std::fs::write(
            cell_dir.join("repro.txt"),
            format!("{}\n", self.repro(prefix, predicate)),
        );
        let (seen, boots) = match predicate {
            Some(Predicate::Title { title }) => {
                title_seen(&cell_dir, self.repeat, &self.preferred, title)
            }
            Some(Predicate::Verdict { verdict }) => (u32::from(result.verdict == *verdict), 1),
            None => (0, 0),
        };
        // `judge::cell::series_reached` turns a PASS whose tests never ran the series
        // into INCONCLUSIVE with the coverage summary as its reason.
        let series_never_ran = result.verdict == Verdict::Inconclusive
            && result.series_coverage.as_ref().is_some_and(|c| {
                c.reach == crate::record::coverage::Reach::NeverRan
                    && result.reason.as_deref() == Some(c.summary.as_str())
            });
        let step = Step {
            prefix,
            verdict: result.verdict,
            reason: result.reason.clone(),
            series_never_ran,
            judged: None,
            why: None,
            seen,
            boots,
            miss_chance: None,
            seconds: result.seconds,
            kernel_cached: result.kernel_cached,
            dir: rel,
        };
        Ok((step, result))
    }

    /// The terminal line that says which prefix is judged now.
    fn announce(&self, prefix: usize) {
        let first = self.series.len().min(prefix);
        let what = match prefix {
            p if p == self.series.len() => format!("the full series ({p} patches)"),
            p => format!("the first {p} of {} patches", self.series.len()),
        };
        report::terminal::line(&format!(
            "bisect {}: {what}, up to {}",
            self.cell.id(),
            self.series[first - 1]
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
    }

    /// The engine's run of the one-cell plan of `prefix` in `run_dir`: its cell's result.
    async fn run_prefix(
        &self,
        prefix: usize,
        predicate: Option<&Predicate>,
        run_dir: &Path,
    ) -> Result<CellResult, BisectError> {
        std::fs::create_dir_all(run_dir).map_err(|source| BisectError::Dir {
            path: run_dir.to_owned(),
            source,
        })?;
        if let Some(k) = &self.plan.known_issues {
            let _ = crate::spec::known::keep_copy(k, run_dir);
        }
        let plan = self.prefix_plan(prefix);
        let opts = RunOptions {
            rebuild: false,
            build_only: predicate.is_some_and(Predicate::build_only),
            resume: Vec::new(),
            repeat: self.repeat,
            // One step's cells (usually one): one at a time.
            jobs: 1,
            last_run: Vec::new(),
        };
        let mut meta = crate::cli::session::meta(&plan, None);
        // Not a run of the spec as written: never merged or resumed with one.
        meta.spec_hash = format!("{}+prefix-{prefix}", plan.spec_hash);
        let internal = |why: String| BisectError::Internal { prefix, why };
        let session = Session::start(Start {
            plan,
            cache: Cache::from_env(),
            opts,
            run_dir: run_dir.to_owned(),
            meta,
            sinks: Sinks::Run { matrix: false },
            cancel: self.cancel.clone(),
        });
        let Finished { cells, write_error } = session.run().await.map_err(internal)?;
        if let Some(e) = write_error {
            return Err(BisectError::Write {
                path: run_dir.to_owned(),
                source: e,
            });
        }
        cells
            .into_iter()
            .next()
            .ok_or_else(|| internal("the step finished without its cell".into()))
    }

    /// The spec's plan cut to the one cell, patched with the first `prefix` patches of
    /// its series and then the harness patches.
    fn prefix_plan(&self, prefix: usize) -> Plan {
        let first = self.series.len().min(prefix);
        let mut cell = self.cell.clone();
        cell.patches = self.series[..first]
            .iter()
            .chain(&self.harness)
            .cloned()
            .collect();
        let mut plan = self.plan.clone();
        plan.cells = vec![cell];
        plan
    }

    /// The line that judges one prefix again.
    fn repro(&self, prefix: usize, predicate: Option<&Predicate>) -> String {
        let q = crate::host::guest::shell_quote;
        let mut s = format!(
            "kmatrix bisect {} --spec {} --prefix {prefix}",
            q(&self.cell.id()),
            q(&self.args.spec.display().to_string())
        );
        if let Some(Predicate::Title { title }) = predicate {
            s.push_str(&format!(" --title {}", q(title)));
        }
        if self.repeat > 1 {
            s.push_str(&format!(" --repeat {}", self.repeat));
        }
        s
    }
}

/// The changed functions of the whole series, each once, in the order of the patches.
fn changed_functions(series: &[PathBuf]) -> Vec<String> {
    let mut preferred: Vec<String> = Vec::new();
    for p in series {
        for f in crate::console::changed_functions(&std::fs::read_to_string(p).unwrap_or_default())
        {
            if !preferred.contains(&f) {
                preferred.push(f);
            }
        }
    }
    preferred
}

/// A step judged against the predicate. Before a predicate is known only a stop (or a
/// pass) can come of the full series.
fn judge_step(b: &Bisect, s: &Step) -> Result<(Judged, Option<String>), (i32, String)> {
    let p = b.predicate.clone().unwrap_or(Predicate::Verdict {
        verdict: Verdict::Pass,
    });
    judge(&p, judged_verdict(s), s.reason.as_deref(), s.seen)
}

/// The verdict a step is judged by: a prefix whose changes no test ran, with the
/// detectors alive and nothing found, did not fail (its PASS before series coverage).
fn judged_verdict(s: &Step) -> Verdict {
    if s.series_never_ran {
        Verdict::Pass
    } else {
        s.verdict
    }
}

/// `kmatrix bisect`: the whole bisection (or one prefix with `--prefix`); writes
/// `bisect.json` and `report.html` after each step and prints the result. Returns the
/// exit code (README "kmatrix bisect").
/// `plan` is the spec as `args.spec` names it, loaded the way every command loads it.
pub async fn run(
    plan: Plan,
    args: Args,
    cancel: watch::Receiver<bool>,
) -> Result<i32, BisectError> {
    Ok(find(plan, args, cancel).await?.exit_code())
}

/// The bisection as `run` does it, its record returned (`kmatrix bisect-new`).
pub async fn find(
    plan: Plan,
    args: Args,
    cancel: watch::Receiver<bool>,
) -> Result<Bisect, BisectError> {
    let start = Instant::now();
    let cx = Ctx::new(plan, args, cancel, start)?;
    let mut b = cx.record();
    if let Some(p) = cx.args.prefix {
        cx.judge_one(&mut b, p).await?;
        return Ok(b);
    }
    cx.full_series(&mut b).await?;
    cx.search(&mut b).await?;
    if let Outcome::Found { patch } = b.outcome {
        b.repro = Some(cx.repro(patch, b.predicate.as_ref()));
    }
    cx.save(&mut b)?;
    print!("{}", report::text::bisect(&b));
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive a search with a truth table: `bad[p]` for each prefix, None = skip.
    fn search(len: usize, bad: &[Option<bool>]) -> (Outcome, Vec<usize>) {
        let mut s = Search::new(len);
        let mut tried = Vec::new();
        while let Some(p) = s.next() {
            tried.push(p);
            let j = match bad[p] {
                Some(true) => Judged::Bad,
                Some(false) => Judged::Good,
                None => Judged::Skip,
            };
            s.record(p, j);
        }
        (s.outcome(), tried)
    }

    #[test]
    fn binary_search_names_the_first_bad_patch_in_log2_steps() {
        for len in 1..=9usize {
            for first_bad in 1..=len {
                let truth: Vec<Option<bool>> = (0..=len).map(|p| Some(p >= first_bad)).collect();
                let (o, tried) = search(len, &truth);
                assert_eq!(o, Outcome::Found { patch: first_bad }, "len {len}");
                let bound = (len as f64).log2().ceil() as usize;
                assert!(tried.len() <= bound, "len {len}: {tried:?}");
            }
        }
        // Two patches: one step, the first patch alone.
        assert_eq!(search(2, &[Some(false), Some(true), Some(true)]).1, [1]);
    }

    #[test]
    fn skipped_prefixes_are_gone_round_or_leave_a_range() {
        // Prefix 2 does not build: 1 good, 3 bad -> the first bad is 2 or 3.
        let truth = [Some(false), Some(false), None, Some(true), Some(true)];
        let (o, tried) = search(4, &truth);
        assert_eq!(o, Outcome::Range { first: 2, last: 3 });
        assert_eq!(tried, [2, 1, 3]);
        // A skip in the middle, the answer beside it.
        let truth = [Some(false), Some(true), None, Some(true)];
        assert_eq!(search(3, &truth).0, Outcome::Found { patch: 1 });
    }

    fn title() -> Predicate {
        Predicate::Title {
            title: "WARNING in f".into(),
        }
    }

    /// A prefix that adds a function only a later patch calls: INCONCLUSIVE by series
    /// coverage, yet for the bisection a step that did not fail (seen in the fixture
    /// series on a real kernel: its first step was skipped and the answer was "1..2").
    #[test]
    fn a_prefix_whose_changes_never_ran_is_good_not_skipped() {
        let mut s = Step {
            prefix: 1,
            verdict: Verdict::Inconclusive,
            reason: Some("series coverage: 0 of 3 changed lines ran".into()),
            series_never_ran: true,
            judged: None,
            why: None,
            seen: 0,
            boots: 1,
            miss_chance: None,
            seconds: 1.0,
            kernel_cached: None,
            dir: "prefix-1".into(),
        };
        let b = |p| Bisect {
            schema: SCHEMA,
            cell: "x86_64/pvl-on/sleep".into(),
            spec: "s.yaml".into(),
            repeat: 1,
            predicate: Some(p),
            series: vec![],
            steps: vec![],
            outcome: Outcome::Running,
            rate: None,
            repro: None,
            seconds: 0.0,
            dir: "d".into(),
        };
        assert_eq!(judge_step(&b(title()), &s).unwrap().0, Judged::Good);
        // Detectors that stayed silent still make a step unjudgeable.
        s.series_never_ran = false;
        assert_eq!(judge_step(&b(title()), &s).unwrap().0, Judged::Skip);
    }

    #[test]
    fn a_step_is_bad_when_seen_in_any_boot_and_cannot_be_judged_when_it_did_not_run() {
        assert_eq!(
            judge(&title(), Verdict::Fail, None, 1).unwrap().0,
            Judged::Bad
        );
        assert_eq!(
            judge(&title(), Verdict::Pass, None, 0).unwrap().0,
            Judged::Good
        );
        // Another report does not make it bad.
        assert_eq!(
            judge(&title(), Verdict::Fail, Some("WARNING in g"), 0)
                .unwrap()
                .0,
            Judged::Good
        );
        let (j, why) = judge(&title(), Verdict::BuildFail, Some("x.c: error"), 0).unwrap();
        assert_eq!(j, Judged::Skip);
        assert!(why.unwrap().contains("did not run"));
        assert_eq!(
            judge(&title(), Verdict::Inconclusive, None, 0).unwrap().0,
            Judged::Skip
        );
        assert_eq!(
            judge(&title(), Verdict::InfraError, Some("disk"), 0)
                .unwrap_err()
                .0,
            3
        );
        assert_eq!(
            judge(&title(), Verdict::Interrupted, None, 0)
                .unwrap_err()
                .0,
            130
        );
    }

    #[test]
    fn verdict_predicates_compare_the_phase_reached() {
        let build = Predicate::Verdict {
            verdict: Verdict::BuildFail,
        };
        assert!(build.build_only() && !build.varies());
        assert_eq!(
            judge(&build, Verdict::BuildFail, None, 1).unwrap().0,
            Judged::Bad
        );
        // Build-only steps that built say PASS ("built (build only)").
        assert_eq!(
            judge(&build, Verdict::Pass, None, 0).unwrap().0,
            Judged::Good
        );
        assert_eq!(
            judge(&build, Verdict::PatchFail, None, 0).unwrap().0,
            Judged::Skip
        );
        let patch = Predicate::Verdict {
            verdict: Verdict::PatchFail,
        };
        assert_eq!(
            judge(&patch, Verdict::BuildFail, None, 0).unwrap().0,
            Judged::Good
        );
    }

    #[test]
    fn the_default_predicate_is_the_verdicts_report_or_the_verdict_itself() {
        use crate::console::Kind;
        let mut r = CellResult::new(
            &crate::record::plan::tests::cell(crate::record::plan::Arch::X86_64, "pvl-on", "v2"),
            "/tmp".into(),
        );
        r.verdict = Verdict::Fail;
        let f = |kind, title: &str, expected: bool| Finding {
            kind,
            title: title.into(),
            expected_by: expected.then(|| "vma_probe".to_string()),
            ..Default::default()
        };
        r.findings = vec![
            f(Kind::Lockdep, "possible deadlock in vma_probe_write", true),
            f(Kind::HungTask, "INFO: task hung in x", false),
            f(
                Kind::NullDeref,
                "BUG: unable to handle kernel NULL pointer dereference in y",
                false,
            ),
        ];
        assert_eq!(
            default_predicate(&r).unwrap(),
            Predicate::Title {
                title: "BUG: unable to handle kernel NULL pointer dereference in y".into()
            }
        );
        r.verdict = Verdict::BuildFail;
        r.findings.clear();
        assert_eq!(
            default_predicate(&r).unwrap(),
            Predicate::Verdict {
                verdict: Verdict::BuildFail
            }
        );
        r.verdict = Verdict::Hang;
        r.reason = Some("test t overran its timeout".into());
        let e = default_predicate(&r).unwrap_err().to_string();
        assert!(e.contains("--title") && e.contains("overran"), "{e}");
    }

    #[test]
    fn miss_chance_is_one_minus_rate_to_the_boots() {
        assert_eq!(miss_chance(1.0, 1), 0.0);
        assert!((miss_chance(0.5, 3) - 0.125).abs() < 1e-12);
        assert_eq!(miss_chance(0.0, 4), 1.0);
    }

    #[test]
    fn subjects_are_read_from_the_mail_header() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0002-tcp.patch");
        std::fs::write(
            &p,
            "From 1 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH v2 2/2] tcp: Use vma_start_read_unlocked() for zerocopy\n receive\n\nbody\n---\n",
        )
        .unwrap();
        assert_eq!(
            subject(&p),
            "tcp: Use vma_start_read_unlocked() for zerocopy receive"
        );
        let q = d.path().join("plain.diff");
        std::fs::write(&q, "--- a/x\n+++ b/x\n").unwrap();
        assert_eq!(subject(&q), "plain.diff");
    }

    #[test]
    fn the_answer_and_steps_are_shown_in_the_terminal_and_the_page_escaped() {
        let step = |prefix, verdict, judged, seen| Step {
            prefix,
            verdict,
            reason: (verdict != Verdict::Pass).then(|| "WARNING in f".to_string()),
            series_never_ran: false,
            judged: Some(judged),
            why: None,
            seen,
            boots: 2,
            miss_chance: None,
            seconds: 65.0,
            kernel_cached: Some(true),
            dir: PathBuf::from(format!("prefix-{prefix}")),
        };
        let mut b = Bisect {
            schema: SCHEMA,
            cell: "x86_64/pvl-on/v2".into(),
            spec: "kmatrix.yaml".into(),
            repeat: 2,
            predicate: Some(title()),
            series: (1..=3)
                .map(|i| Patch {
                    index: i,
                    file: format!("patches/000{i}.patch").into(),
                    subject: format!("mm: <b>part {i}</b>"),
                })
                .collect(),
            steps: vec![
                step(3, Verdict::Fail, Judged::Bad, 2),
                step(1, Verdict::Pass, Judged::Good, 0),
                step(2, Verdict::Fail, Judged::Bad, 1),
            ],
            outcome: Outcome::Found { patch: 2 },
            rate: None,
            repro: Some("kmatrix bisect 'x86_64/pvl-on/v2' --prefix 2".into()),
            seconds: 200.0,
            dir: "/r/bisect-1".into(),
        };
        settle(&mut b);
        // 3 of 4 boots of the bad steps: a miss in both boots of prefix 1 is 1/16.
        assert_eq!(b.rate, Some(0.75));
        assert_eq!(b.steps[1].miss_chance, Some(0.0625));
        let text = crate::report::text::bisect(&b);
        assert!(
            text.contains("first bad patch: 2/3 mm: <b>part 2</b>"),
            "{text}"
        );
        assert!(
            text.contains("  1/3     PASS     good    0/2   6%"),
            "{text}"
        );
        assert!(text.contains("repro: kmatrix bisect"), "{text}");
        let html = crate::report::html::bisect_page(&b);
        assert!(
            html.contains("First bad patch: 2/3 mm: &lt;b&gt;part 2&lt;/b&gt;"),
            "{html}"
        );
        assert!(html.contains("href=\"prefix-1/report.html\""), "{html}");
        assert_eq!(b.exit_code(), 0);
    }
}
