//! Known issues: a YAML list (the file the spec's `known-issues:` key names) of failures
//! already reported somewhere, each with a title pattern, the cells it is known in, a
//! link and why. A finding that matches one is shown as known, not new, in every output
//! and in `kmatrix compare`; a known issue that its cells, having run, no longer show is
//! reported as "maybe fixed".
//!
//! A run folder keeps a copy of the list (`known-issues.yaml`), so its outputs can be
//! re-rendered (`kmatrix report`, `merge`) and compared from the folder alone, against
//! the list the run was judged with.
//!
//! ```yaml
//! - title: "BUG: unable to handle kernel NULL pointer dereference in vma_start_read*"
//!   cells: ["*/pvl-on/v2"]
//!   link: https://example.org/issue/20
//!   why: v2's slow path never looks the VMA up; v3 fixes it
//! ```
//!
//! `title` is a glob over the whole title (`*` any text, `?` one character, `[[]` a
//! literal `[`). A cell that failed without a kernel report is matched by its verdict
//! line, `BUILD-FAIL: <reason>` (see [`verdict_key`]). `cells` are globs over cell ids
//! (all cells when absent).

use crate::record::result::CellResult;
use crate::record::verdict::{Category, Verdict};
use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The copy of the list inside a run folder.
pub const FILE: &str = "known-issues.yaml";

#[derive(Debug, thiserror::Error)]
pub enum KnownError {
    #[error("cannot read known issues {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message} (a list of `- title: ..., cells: [...], link: ..., why: ...`)")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}: known issue {index} (`{title}`): `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        index: usize,
        title: String,
        key: &'static str,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssue {
    title: String,
    #[serde(default)]
    cells: Vec<String>,
    #[serde(default)]
    link: Option<String>,
    why: String,
}

/// One known issue, its patterns compiled.
#[derive(Debug, Clone)]
pub struct KnownIssue {
    pub title: String,
    pub cells: Vec<String>,
    pub link: Option<String>,
    pub why: String,
    title_glob: GlobMatcher,
    cell_globs: GlobSet,
}

/// What outputs say about a known issue: the pattern, the link and why (also what
/// `compare.json` keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownRef {
    pub title: String,
    #[serde(default)]
    pub link: Option<String>,
    pub why: String,
}

impl KnownIssue {
    pub fn applies_to(&self, cell: &str) -> bool {
        self.cells.is_empty() || self.cell_globs.is_match(cell)
    }
    pub fn matches(&self, cell: &str, title: &str) -> bool {
        self.applies_to(cell) && self.title_glob.is_match(title)
    }
    /// Its pattern names a verdict line (`BUILD-FAIL: ...`), not a kernel report.
    pub fn is_verdict_line(&self) -> bool {
        Verdict::ALL
            .iter()
            .any(|v| self.title.starts_with(&format!("{}:", v.label())))
    }
    pub fn reference(&self) -> KnownRef {
        KnownRef {
            title: self.title.clone(),
            link: self.link.clone(),
            why: self.why.clone(),
        }
    }
    /// Could this cell's result show the issue? A report needs a kernel that booted; a
    /// verdict line needs a verdict about the kernel.
    fn judged_by(&self, c: &CellResult) -> bool {
        c.verdict.is_final() && (self.is_verdict_line() || !c.boot_lines.is_empty())
    }
}

/// Where a known issue stands in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueState {
    /// Seen in these cells.
    Seen(Vec<String>),
    /// These cells ran and could have shown it, and none did.
    MaybeFixed(Vec<String>),
    /// None of its cells ran far enough to say.
    NotJudged,
}

/// The list; empty when the spec names none.
#[derive(Debug, Clone, Default)]
pub struct KnownIssues {
    pub issues: Vec<KnownIssue>,
}

impl KnownIssues {
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    /// Read and check a list; errors name the file, the line or the entry and its key.
    pub fn load(path: &Path) -> Result<KnownIssues, KnownError> {
        let text = crate::host::runfile::read_given_string(
            path,
            crate::host::runfile::KNOWN_MAX,
            "a known-issues list",
        )
        .map_err(|source| KnownError::Read {
            path: path.to_owned(),
            source,
        })?;
        KnownIssues::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<KnownIssues, KnownError> {
        // An empty file is an empty list (all issues closed), not a syntax error.
        if text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        }) {
            return Ok(KnownIssues::default());
        }
        let raw: Vec<RawIssue> = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            KnownError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: e.to_string().lines().next().unwrap_or_default().to_string(),
            }
        })?;
        let mut issues = Vec::new();
        for (index, r) in raw.into_iter().enumerate() {
            let invalid = |key, message: String| KnownError::Invalid {
                path: path.to_owned(),
                index,
                title: r.title.clone(),
                key,
                message,
            };
            if r.title.trim().is_empty() {
                return Err(invalid("title", "give the title (or a glob of it)".into()));
            }
            if r.why.trim().is_empty() {
                return Err(invalid("why", "say why it is known (a line)".into()));
            }
            if let Some(l) = &r.link {
                if !link_is_safe(l) {
                    return Err(invalid(
                        "link",
                        format!("`{l}` is not an http(s) address or a relative path"),
                    ));
                }
            }
            let title_glob = Glob::new(&r.title)
                .map_err(|e| invalid("title", format!("not a glob: {e}")))?
                .compile_matcher();
            let mut b = GlobSetBuilder::new();
            for c in &r.cells {
                b.add(Glob::new(c).map_err(|e| invalid("cells", format!("`{c}`: {e}")))?);
            }
            let cell_globs = b.build().map_err(|e| invalid("cells", format!("{e}")))?;
            issues.push(KnownIssue {
                title: r.title,
                cells: r.cells,
                link: r.link,
                why: r.why,
                title_glob,
                cell_globs,
            });
        }
        Ok(KnownIssues { issues })
    }

    /// The list a run folder was judged with (its copy), empty when it has none.
    pub fn of_run(run_dir: &Path) -> std::io::Result<KnownIssues> {
        Ok(KnownIssues::text_of_run(run_dir)?
            .map(|(_, k)| k)
            .unwrap_or_default())
    }

    /// A run folder's copy of the list as it is written, and checked (it may come from
    /// anywhere: read as untrusted, and only a list that parses is one).
    pub fn text_of_run(run_dir: &Path) -> std::io::Result<Option<(String, KnownIssues)>> {
        let Some(text) =
            crate::host::runfile::read_optional(run_dir, FILE, crate::host::runfile::KNOWN_MAX)?
        else {
            return Ok(None);
        };
        let list = KnownIssues::parse(&run_dir.join(FILE), &text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Some((text, list)))
    }

    /// The known issue a cell's failure (a report title or its verdict line) matches.
    pub fn find(&self, cell: &str, title: &str) -> Option<&KnownIssue> {
        self.issues.iter().find(|i| i.matches(cell, title))
    }

    /// The known issue a cell's failure without a kernel report matches.
    pub fn find_verdict(&self, c: &CellResult) -> Option<&KnownIssue> {
        verdict_key(c).and_then(|k| self.find(&c.id, &k))
    }

    /// Each issue and where it stands in these cells.
    pub fn states<'a>(&'a self, cells: &[CellResult]) -> Vec<(&'a KnownIssue, IssueState)> {
        self.issues
            .iter()
            .map(|i| {
                let mine: Vec<&CellResult> = cells.iter().filter(|c| i.applies_to(&c.id)).collect();
                let seen: Vec<String> = mine
                    .iter()
                    .filter(|c| {
                        c.real_findings().any(|f| i.matches(&c.id, &f.title))
                            || verdict_key(c).is_some_and(|k| i.matches(&c.id, &k))
                    })
                    .map(|c| c.id.to_string())
                    .collect();
                let judged: Vec<String> = mine
                    .iter()
                    .filter(|c| i.judged_by(c))
                    .map(|c| c.id.to_string())
                    .collect();
                let state = if !seen.is_empty() {
                    IssueState::Seen(seen)
                } else if !judged.is_empty() {
                    IssueState::MaybeFixed(judged)
                } else {
                    IssueState::NotJudged
                };
                (i, state)
            })
            .collect()
    }
}

/// Keep a copy of the spec's list in a run folder (its outputs are judged with it).
pub fn keep_copy(list: &Path, run_dir: &Path) -> std::io::Result<()> {
    let text = std::fs::read(list)?;
    crate::host::rundir::write(run_dir, FILE, &text)
}

/// Only addresses a browser opens as a page: `http(s)://...` or a relative path (a
/// `javascript:` link in a report would run when clicked). Checked when a list loads, and
/// again by the writers (a `compare.json` could have been edited).
pub fn link_is_safe(l: &str) -> bool {
    if l.chars()
        .any(|c| c.is_whitespace() || crate::record::fmt::is_hidden(c) || c == '\\')
    {
        return false;
    }
    let lower = l.to_ascii_lowercase();
    if let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        return !rest.is_empty() && !rest.starts_with('/');
    }
    // Relative: no scheme, and not `//host/...` (a browser takes that as another host).
    let before_slash = l.split('/').next().unwrap_or("");
    !l.is_empty() && !before_slash.contains(':') && !l.starts_with("//")
}

/// The line that names a cell's failure when no kernel report does (a build error, a
/// patch that does not apply, a test that overran): `VERDICT: reason`, with what changes
/// from run to run (the log's path, the boots count of `--repeat`) left out. None for
/// cells that passed, whose failure has a kernel report, or that were not judged.
pub fn verdict_key(c: &CellResult) -> Option<String> {
    if !matches!(c.verdict.category(), Category::Failed | Category::Doubtful)
        || c.real_findings().next().is_some()
    {
        return None;
    }
    let reason = c.reason.as_deref().map(stable_reason).unwrap_or_default();
    Some(if reason.is_empty() {
        c.verdict.label().to_string()
    } else {
        format!("{}: {reason}", c.verdict.label())
    })
}

/// A reason without its run-specific tail: ` (log: PATH)` and ` (K/N boots)`.
pub fn stable_reason(reason: &str) -> String {
    let mut r = reason.trim_end();
    if let Some(i) = r.rfind(" (log: ") {
        if r.ends_with(')') {
            r = &r[..i];
        }
    }
    if let Some(i) = r.rfind(" (") {
        let tail = &r[i + 2..];
        if let Some(body) = tail.strip_suffix(" boots)") {
            if body
                .split_once('/')
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
            {
                r = &r[..i];
            }
        }
    }
    r.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::{Finding, Kind};
    use crate::record::plan::Arch;

    const LIST: &str = "\
# closed issues are deleted
- title: \"BUG: unable to handle kernel NULL pointer dereference in vma_start_read*\"
  cells: [\"*/pvl-on/v2\"]
  link: https://example.org/issues/20
  why: v2's slow path never looks the VMA up
- title: \"BUILD-FAIL: net/ipv4/tcp.c:*\"
  cells: [\"*/pvl-off/v2\"]
  why: the TCP caller uses a function only CONFIG_PER_VMA_LOCK has
- title: possible deadlock in kmatrix_fixture_*
  why: never seen any more
";

    fn cell(id: &str, verdict: Verdict, titles: &[&str]) -> CellResult {
        let mut parts = id.split('/');
        let (_, config, ps) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let mut c = CellResult::new(
            &crate::record::plan::tests::cell(Arch::X86_64, config, ps),
            "/tmp".into(),
        );
        c.verdict = verdict;
        c.boot_lines = if verdict == Verdict::BuildFail {
            vec![]
        } else {
            vec![1]
        };
        c.findings = titles
            .iter()
            .map(|t| Finding {
                kind: Kind::NullDeref,
                title: t.to_string(),
                ..Default::default()
            })
            .collect();
        c
    }

    #[test]
    fn titles_and_cells_match_by_glob_and_verdict_lines_match_failures_without_a_report() {
        let k = KnownIssues::parse(Path::new("k.yaml"), LIST).unwrap();
        let t =
            "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_locked_nested";
        assert!(k.find("x86_64/pvl-on/v2", t).is_some());
        assert!(k.find("arm64/pvl-on/v2", t).is_some());
        assert!(k.find("x86_64/pvl-on/v3", t).is_none(), "not known there");
        let mut off = cell("x86_64/pvl-off/v2", Verdict::BuildFail, &[]);
        off.reason = Some(
            "net/ipv4/tcp.c:2186:15: error: implicit declaration of function 'vma_start_read_unlocked' (log: /r/x/build.log)".into(),
        );
        assert_eq!(
            verdict_key(&off).unwrap(),
            "BUILD-FAIL: net/ipv4/tcp.c:2186:15: error: implicit declaration of function 'vma_start_read_unlocked'"
        );
        assert_eq!(
            k.find_verdict(&off).unwrap().why,
            "the TCP caller uses a function only CONFIG_PER_VMA_LOCK has"
        );
        // A cell whose failure has a report is matched by the report, never its verdict.
        assert_eq!(
            verdict_key(&cell("x86_64/pvl-on/v2", Verdict::Fail, &[t])),
            None
        );
    }

    #[test]
    fn a_known_issue_its_cells_no_longer_show_is_maybe_fixed() {
        let k = KnownIssues::parse(Path::new("k.yaml"), LIST).unwrap();
        let t = "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked";
        let cells = vec![
            cell("x86_64/pvl-on/v2", Verdict::Fail, &[t]),
            cell("x86_64/pvl-off/v2", Verdict::Pass, &[]),
        ];
        let states = k.states(&cells);
        assert_eq!(
            states[0].1,
            IssueState::Seen(vec!["x86_64/pvl-on/v2".into()])
        );
        assert_eq!(
            states[1].1,
            IssueState::MaybeFixed(vec!["x86_64/pvl-off/v2".into()])
        );
        // The third applies to every cell; both booted and neither showed it.
        assert!(matches!(&states[2].1, IssueState::MaybeFixed(c) if c.len() == 2));
        // A cell that did not boot cannot say a report went away.
        let only_built = vec![cell("x86_64/pvl-on/v2", Verdict::BuildFail, &[])];
        assert_eq!(k.states(&only_built)[0].1, IssueState::NotJudged);
    }

    #[test]
    fn bad_lists_name_the_file_and_the_entry() {
        let e = KnownIssues::parse(Path::new("k.yaml"), "- title: x\n  why: y\n  linkk: z\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.yaml:3:") && e.contains("linkk"), "{e}");
        let e = KnownIssues::parse(Path::new("k.yaml"), "- title: 'a[b'\n  why: y\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("known issue 0 (`a[b`): `title`"), "{e}");
        let e = KnownIssues::parse(
            Path::new("k.yaml"),
            "- title: x\n  why: y\n  link: 'javascript:alert(1)'\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`link`"), "{e}");
        let e = KnownIssues::parse(Path::new("k.yaml"), "- title: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("why"), "{e}");
        assert!(KnownIssues::parse(Path::new("k.yaml"), "# none open\n")
            .unwrap()
            .is_empty());
        assert!(KnownIssues::parse(Path::new("k.yaml"), "[]\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn reasons_lose_their_run_specific_tails() {
        assert_eq!(stable_reason("x: error (log: /a/b)"), "x: error");
        assert_eq!(stable_reason("oops (2/3 boots)"), "oops");
        assert_eq!(stable_reason("f(x) (log: /l) "), "f(x)");
        assert_eq!(stable_reason("call f (a)"), "call f (a)");
    }
}
