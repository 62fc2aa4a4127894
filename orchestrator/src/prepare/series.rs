//! A git range as a patch series: `patchsets: { mine: { git: <repo>, range: <base>..<tip> } }`
//! in the spec, or `kmatrix run --tree PATH --series RANGE`. Each commit becomes one patch
//! (`git format-patch`), exported once into the cache under the commits' ids (the same
//! commits are the same patches, byte for byte); each patch keeps its commit's subject
//! for the reports.

use crate::host::cache::{Cache, Hasher};
use crate::host::proc::{self, ProcError, ProcSpec};
use crate::record::plan::Plan;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// The spec (or `--series`) names something the repository does not have.
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{origin}: cannot {step} in {}", repo.display())]
    Git {
        origin: String,
        repo: PathBuf,
        step: &'static str,
        #[source]
        source: ProcError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SeriesError {
    /// A mistake in what the user asked for (exit 2), not a failure of the host.
    pub fn is_usage(&self) -> bool {
        matches!(self, SeriesError::Invalid { .. })
    }
}

/// Local git commands are quick; a hung one (a wedged network file system) is an error.
const GIT: Duration = Duration::from_secs(10 * 60);

/// The commits of a range, resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commits {
    pub base: String,
    pub tip: String,
    /// (commit id, subject), oldest first.
    pub commits: Vec<(String, String)>,
}

impl Commits {
    /// The same range by ids: what it means no longer moves with the branch.
    pub fn pinned(&self) -> String {
        format!("{}..{}", self.base, self.tip)
    }
}

fn git(repo: &Path) -> ProcSpec {
    // Never the repository of a folder above: a plain tree inside some checkout is not
    // a repository of its own.
    let ceiling = std::path::absolute(repo)
        .ok()
        .and_then(|r| r.parent().map(Path::to_owned))
        .unwrap_or_default();
    ProcSpec::new("git")
        .arg("-C")
        .arg(repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CEILING_DIRECTORIES", ceiling)
        .timeout(GIT)
}

/// Resolve `range` in `repo`: both ends must be commits, the range must hold commits and
/// no merges (each commit is applied as one patch).
pub async fn commits(repo: &Path, range: &str, origin: &str) -> Result<Commits, SeriesError> {
    let invalid = |message: String| SeriesError::Invalid {
        origin: origin.to_string(),
        message,
    };
    crate::record::plan::check_range(range).map_err(invalid)?;
    if proc::output(&git(repo).args(["rev-parse", "--git-dir"]))
        .await
        .is_err()
    {
        return Err(invalid(format!(
            "{} is not a git repository: give the folder of a git checkout (or a bare repository) that holds the range",
            repo.display()
        )));
    }
    let (base, tip) = range.split_once("..").unwrap_or((range, ""));
    let tip = if tip.is_empty() { "HEAD" } else { tip };
    let base_id = commit_id(repo, base, range).await.map_err(invalid)?;
    let tip_id = commit_id(repo, tip, range).await.map_err(invalid)?;
    let span = format!("{base_id}..{tip_id}");
    let step = |step| {
        move |source| SeriesError::Git {
            origin: origin.to_string(),
            repo: repo.to_owned(),
            step,
            source,
        }
    };
    let merges = proc::output(&git(repo).args(["rev-list", "--merges", &span]))
        .await
        .map_err(step("list the range's merges"))?;
    if let Some(m) = merges.lines().next() {
        return Err(invalid(format!(
            "`{range}` holds merge commit {}: each commit is applied as one patch, so the range must be linear (rebase it onto `{base}`)",
            &m[..m.len().min(12)]
        )));
    }
    let commits = log(repo, &span)
        .await
        .map_err(step("list the range's commits"))?;
    if commits.is_empty() {
        return Err(invalid(format!(
            "`{range}` holds no commits: everything in `{tip}` is already in `{base}` (a range is <base>..<tip>, the commits on tip since base)"
        )));
    }
    Ok(Commits {
        base: base_id,
        tip: tip_id,
        commits,
    })
}

/// The commit id `rev` (an end of `range`) names, or what to tell the user.
async fn commit_id(repo: &Path, rev: &str, range: &str) -> Result<String, String> {
    let want = format!("{rev}^{{commit}}");
    let id = proc::output(&git(repo).args([
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &want,
    ]))
    .await
    .map_err(|_| {
        format!(
            "unknown revision `{rev}` in `{range}`: not a branch, tag or commit of {} (`git -C {} log --oneline -3 {rev}` shows what git sees)",
            repo.display(),
            repo.display()
        )
    })?;
    Ok(id.trim().to_string())
}

/// The commits of `span` (ids, not names), oldest first, with their subjects.
async fn log(repo: &Path, span: &str) -> Result<Vec<(String, String)>, ProcError> {
    let log = proc::output(&git(repo).args([
        "log",
        "--reverse",
        "--no-show-signature",
        "--format=%H%x09%s",
        span,
    ]))
    .await?;
    Ok(log
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, s)| (id.to_string(), s.to_string()))
        .collect())
}

/// `git format-patch` of the commits into the cache, once per set of commit ids; the
/// patch files in order.
pub async fn export(
    repo: &Path,
    c: &Commits,
    cache: &Cache,
    origin: &str,
) -> Result<Vec<PathBuf>, SeriesError> {
    let mut h = Hasher::new("git-series-v1");
    h.field(c.base.as_bytes());
    for (id, _) in &c.commits {
        h.field(id.as_bytes());
    }
    let entry = cache.entry("series", &h.finish());
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SeriesError::Io { path, source }
    };
    let dir = match entry.resolve() {
        Some(d) => d,
        None => {
            let staging = entry.staging().map_err(io(&entry.path))?;
            // The user's configuration may not change what `patch -p1` is given: prefixes
            // on, no renames (plain deletes and adds apply everywhere), no extra mail parts.
            let spec = git(repo)
                .args([
                    "-c",
                    "diff.noprefix=false",
                    "-c",
                    "diff.mnemonicPrefix=false",
                ])
                .args([
                    "format-patch",
                    "--quiet",
                    "--no-signature",
                    "--no-thread",
                    "--no-cover-letter",
                    "--no-to",
                    "--no-cc",
                    "--no-add-header",
                    "--no-notes",
                    "--no-renames",
                    "--no-ext-diff",
                    "--suffix=.patch",
                    "-o",
                ])
                .arg(staging.path())
                .arg(c.pinned());
            proc::run(&spec).await.map_err(|source| SeriesError::Git {
                origin: origin.to_string(),
                repo: repo.to_owned(),
                step: "export the commits with `git format-patch`",
                source,
            })?;
            entry.publish(staging, false).map_err(io(&entry.path))?
        }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    files.sort();
    if files.len() != c.commits.len() {
        return Err(SeriesError::Io {
            path: dir,
            source: std::io::Error::other(format!(
                "holds {} patch(es) for {} commit(s)",
                files.len(),
                c.commits.len()
            )),
        });
    }
    Ok(files)
}

/// Export every git range patchset of the plan: its cells get the patches (before any
/// harness patch) and the plan the subjects.
pub async fn resolve(plan: &mut Plan, cache: &Cache) -> Result<(), SeriesError> {
    for r in std::mem::take(&mut plan.ranges) {
        let c = commits(&r.repo, &r.range, &r.origin).await?;
        let files = export(&r.repo, &c, cache, &r.origin).await?;
        for (f, (_, subject)) in files.iter().zip(&c.commits) {
            plan.subjects.insert(f.clone(), vec![subject.clone()]);
        }
        for cell in plan.cells.iter_mut().filter(|c| c.patchset == r.patchset) {
            cell.patches.splice(0..0, files.iter().cloned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str, dir: &Path) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    const GIT: &str = "git -c user.email=t@t -c user.name=t";

    /// A repository with a base and two commits on it, and a copy of the base beside it.
    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        sh(&format!("mkdir -p r/mm && cd r && git init -q && printf 'int a;\\nint b;\\n' > mm/a.c && git add -A && {GIT} commit -qm base && git tag base && sed -i 's/int a;/int a = 1;/' mm/a.c && {GIT} commit -qam 'mm: set a' && printf 'int c;\\n' > mm/c.c && git add -A && {GIT} commit -qm 'mm: add c' && git archive --prefix=pristine/ base | tar -x -C ..",), d.path());
        d
    }

    #[test]
    fn ranges_are_checked_before_git_runs() {
        assert!(crate::record::plan::check_range("v7.3..HEAD").is_ok());
        assert!(crate::record::plan::check_range("origin/master..").is_ok());
        for bad in ["HEAD", "a...b", "..tip", "-x..y", "a..--output=x", "a b..c"] {
            assert!(crate::record::plan::check_range(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_two_commit_range_is_two_patches_with_their_subjects_that_apply() {
        let d = repo();
        let r = d.path().join("r");
        let cache = Cache {
            root: d.path().join("cache"),
        };
        let c = commits(&r, "base..HEAD", "test").await.unwrap();
        let subjects: Vec<&str> = c.commits.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(subjects, ["mm: set a", "mm: add c"]);
        let files = export(&r, &c, &cache, "test").await.unwrap();
        assert_eq!(files.len(), 2);
        assert!(files[0].ends_with("0001-mm-set-a.patch"), "{files:?}");
        // Exported once: the same commits give the same files, without git.
        let again = export(&r, &c, &cache, "test").await.unwrap();
        assert_eq!(files, again);
        // They apply in order to the base with `patch -p1`, as the build slot applies them.
        let pristine = d.path().join("pristine");
        for f in &files {
            sh(&format!("patch -p1 -s < {}", f.display()), &pristine);
        }
        assert_eq!(
            std::fs::read_to_string(pristine.join("mm/a.c")).unwrap(),
            "int a = 1;\nint b;\n"
        );
        assert!(pristine.join("mm/c.c").is_file());
        // The subject a patch file carries is the commit's.
        let text = std::fs::read_to_string(&files[1]).unwrap();
        assert_eq!(crate::record::plan::patch_subjects(&text), ["mm: add c"]);
    }

    #[tokio::test]
    async fn unknown_revisions_empty_ranges_merges_and_non_repositories_say_what_to_do() {
        let d = repo();
        let r = d.path().join("r");
        let e = commits(&r, "v9.9..HEAD", "kmatrix.yaml:3: `patchsets.mine`")
            .await
            .unwrap_err();
        assert!(e.is_usage());
        let msg = e.to_string();
        assert!(
            msg.starts_with("kmatrix.yaml:3: `patchsets.mine`: unknown revision `v9.9`"),
            "{msg}"
        );
        let msg = commits(&r, "HEAD..base", "o")
            .await
            .unwrap_err()
            .to_string();
        assert!(msg.contains("holds no commits"), "{msg}");
        let msg = commits(&d.path().join("pristine"), "base..HEAD", "o")
            .await
            .unwrap_err()
            .to_string();
        assert!(msg.contains("is not a git repository"), "{msg}");
        sh(&format!("git checkout -q -b side base && echo x > x && git add x && {GIT} commit -qm side && git checkout -q - && {GIT} merge -q --no-edit side"), &r);
        let msg = commits(&r, "base..HEAD", "o")
            .await
            .unwrap_err()
            .to_string();
        assert!(msg.contains("merge commit"), "{msg}");
    }
}
