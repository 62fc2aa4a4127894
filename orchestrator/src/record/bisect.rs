//! A bisection as `bisect.json` records it: the series, each judged prefix, the outcome.

use crate::record::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The bisection's own record, in its folder.
pub const FILE: &str = "bisect.json";
/// Version of the `bisect.json` layout.
pub const SCHEMA: u32 = 1;

/// What makes a prefix bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Predicate {
    /// A kernel report with this dedup title, in any boot.
    Title { title: String },
    /// This verdict (a failure with no kernel report: build, patch, config, boot).
    Verdict { verdict: Verdict },
}

impl Predicate {
    /// Steps that only need a build (the predicate is decided before any boot).
    pub fn build_only(&self) -> bool {
        matches!(
            self,
            Predicate::Verdict {
                verdict: Verdict::BuildFail | Verdict::PatchFail | Verdict::ConfigMismatch
            }
        )
    }
    /// The outcome can differ between boots (a rate and a miss chance make sense).
    pub fn varies(&self) -> bool {
        !self.build_only()
    }
    pub fn describe(&self) -> String {
        match self {
            Predicate::Title { title } => format!("the report `{title}`"),
            Predicate::Verdict { verdict } => format!("the verdict {}", verdict.label()),
        }
    }
}

/// One patch of the series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// 1-based position in the series.
    pub index: usize,
    pub file: PathBuf,
    pub subject: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Judged {
    Bad,
    Good,
    /// The step cannot show the failure (e.g. it does not build): the search goes round.
    Skip,
}

impl Judged {
    pub fn label(self) -> &'static str {
        match self {
            Judged::Bad => "bad",
            Judged::Good => "good",
            Judged::Skip => "skip",
        }
    }
}

/// One judged prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The first `prefix` patches were applied.
    pub prefix: usize,
    pub verdict: Verdict,
    pub reason: Option<String>,
    /// INCONCLUSIVE only because no test ran this prefix's changes (series coverage),
    /// with the detectors alive: for the bisection, a step that did not fail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub series_never_ran: bool,
    /// None with `--prefix` and no title: the verdict is all there is.
    pub judged: Option<Judged>,
    /// Why a step was skipped.
    pub why: Option<String>,
    /// Boots that showed the failure, of `boots`.
    pub seen: u32,
    pub boots: u32,
    /// For a good step whose failure varies between boots: the chance that a failure of
    /// the observed rate was in this prefix and missed all its boots.
    pub miss_chance: Option<f64>,
    pub seconds: f64,
    pub kernel_cached: Option<bool>,
    /// The step's run folder, relative to the bisect folder.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Steps are still running (bisect.json is written after each one).
    Running,
    /// The first bad patch.
    Found { patch: usize },
    /// Skipped steps leave more than one candidate: the first bad patch is one of these.
    Range { first: usize, last: usize },
    /// The full series does not show the failure.
    NotReproduced { why: String },
    /// Stopped by the host or Ctrl-C (`code` is the exit code).
    Stopped { why: String, code: i32 },
    /// `--prefix`: one prefix judged, no search.
    Judged,
}

/// Everything a bisection found (`bisect.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bisect {
    pub schema: u32,
    pub cell: String,
    pub spec: PathBuf,
    pub repeat: u32,
    pub predicate: Option<Predicate>,
    pub series: Vec<Patch>,
    pub steps: Vec<Step>,
    pub outcome: Outcome,
    /// The failure's rate over the bad steps' boots (when it can vary).
    pub rate: Option<f64>,
    /// The one line that judges the first bad prefix again.
    pub repro: Option<String>,
    pub seconds: f64,
    pub dir: PathBuf,
}

impl Bisect {
    pub fn patch(&self, index: usize) -> Option<&Patch> {
        self.series.iter().find(|p| p.index == index)
    }
    pub fn exit_code(&self) -> i32 {
        match &self.outcome {
            Outcome::Found { .. } => crate::record::verdict::exit::PASS,
            Outcome::Stopped { code, .. } => *code,
            Outcome::Judged => {
                let bad = self.steps.iter().any(|s| {
                    s.judged == Some(Judged::Bad)
                        || (s.judged.is_none() && s.verdict != Verdict::Pass)
                });
                if bad {
                    crate::record::verdict::exit::FINDINGS
                } else {
                    crate::record::verdict::exit::PASS
                }
            }
            _ => crate::record::verdict::exit::FINDINGS,
        }
    }
}

/// Where a finding entered its cell's series: the answer of the bisection `kmatrix
/// bisect-new` ran for it (compare.json keeps it beside the finding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introduced {
    /// The first bad patch (1-based) and its subject, when the bisection found one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Patches in the series.
    pub of: usize,
    /// Otherwise what the bisection said (a range, not reproduced, stopped, not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Boots per step (from the finding's rate).
    pub repeat: u32,
    /// The bisection's folder (its bisect.json and report.html), relative to the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

impl Introduced {
    /// `introduced by patch 2/3: mm: ...`, or what the bisection said instead.
    pub fn describe(&self) -> String {
        match (self.patch, &self.note) {
            (Some(p), _) => format!(
                "introduced by patch {p}/{}: {}",
                self.of,
                self.subject.as_deref().unwrap_or("?")
            ),
            (None, Some(n)) => format!("bisected: {n}"),
            (None, None) => "not bisected".into(),
        }
    }

    /// The answer of a finished bisection of a series of `b.series.len()` patches.
    pub fn of_bisect(b: &Bisect, dir: Option<PathBuf>) -> Introduced {
        let of = b.series.len();
        let (patch, note) = match &b.outcome {
            Outcome::Found { patch } => (Some(*patch), None),
            Outcome::Range { first, last } => (
                None,
                Some(format!("introduced by one of patches {first}-{last}/{of} (the others could not be judged)")),
            ),
            Outcome::NotReproduced { why } => (None, Some(format!("not reproduced: {why}"))),
            Outcome::Stopped { why, .. } => (None, Some(format!("stopped: {why}"))),
            Outcome::Running | Outcome::Judged => (None, Some("did not finish".into())),
        };
        Introduced {
            patch,
            subject: patch.and_then(|p| b.patch(p)).map(|p| p.subject.clone()),
            of,
            note,
            repeat: b.repeat,
            dir,
        }
    }
}
