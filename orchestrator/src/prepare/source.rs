//! Kernel tree acquisition: a Debian source package, a tarball, a git revision (each
//! unpacked once into the cache as an [`Entry`](crate::host::cache::Entry)), or a developer's
//! own tree used in place. Every tree has a content identity for cache keys: a tree kmatrix
//! unpacked is named by what it came from; a developer's tree by its git state (HEAD, the
//! diff against it and the untracked files) or, without git, by a walk of every file's
//! path, size and mtime.

use crate::host::cache::{Cache, Hasher};
use crate::host::proc::{self, ProcError, ProcSpec};
use crate::record::plan::SourceSpec;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot download Debian package `{package}` (run `sudo scripts/setup-host` to add the apt suite that has it)")]
    Download {
        package: String,
        #[source]
        source: ProcError,
    },
    #[error("cannot unpack {}", what.display())]
    Unpack {
        what: PathBuf,
        #[source]
        source: ProcError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("git {repo}: cannot {step}")]
    Git {
        repo: String,
        step: &'static str,
        #[source]
        source: ProcError,
    },
}

/// A pristine kernel tree and its content identity.
#[derive(Debug, Clone)]
pub struct Tree {
    pub path: PathBuf,
    /// Identifies the tree's content (package and version, tarball hash, commit, or a
    /// developer tree's git state or stat walk).
    pub id: String,
    /// A developer's tree, which changes between runs (kmatrix's own trees never do).
    pub mutable: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Deadlines for the external steps: none of them may wait forever.
const DOWNLOAD: Duration = Duration::from_secs(30 * 60);
const UNPACK: Duration = Duration::from_secs(20 * 60);
const CLONE: Duration = Duration::from_secs(2 * 3600);
const GIT_QUICK: Duration = Duration::from_secs(10 * 60);

/// Make the pristine tree available, fetching and unpacking it once.
pub async fn prepare(source: &SourceSpec, cache: &Cache) -> Result<Tree, SourceError> {
    match source {
        SourceSpec::Path(p) => Ok(Tree {
            path: p.clone(),
            id: tree_identity(p).await?,
            mutable: true,
        }),
        SourceSpec::DebianPackage(pkg) => debian_package(pkg, cache).await,
        SourceSpec::Tarball(t) => tarball(t, cache).await,
        SourceSpec::Git { repo, rev } => git(repo, rev, cache).await,
    }
}

/// A developer's tree, by content: git HEAD plus the binary diff against it plus the
/// untracked (not ignored) files; without git, every file's path, size and mtime (ns).
pub async fn tree_identity(p: &Path) -> Result<String, SourceError> {
    let g = |args: &[&str]| {
        ProcSpec::new("git")
            .arg("-C")
            .arg(p)
            .args(args)
            .timeout(GIT_QUICK)
    };
    let mut h = Hasher::new("path-tree-v2");
    h.field(p.as_os_str().as_encoded_bytes());
    let is_git = proc::output(&g(&["rev-parse", "--show-toplevel"]))
        .await
        .is_ok_and(|top| Path::new(top.trim()) == p.canonicalize().unwrap_or_default());
    if is_git {
        let head = proc::output(&g(&["rev-parse", "--verify", "HEAD^{commit}"]))
            .await
            .unwrap_or_default();
        h.field(head.trim().as_bytes());
        let diff = proc::output(&g(&["diff", "--binary", "--no-ext-diff", "HEAD", "--"]))
            .await
            .map_err(|source| SourceError::Git {
                repo: p.display().to_string(),
                step: "diff the tree against HEAD",
                source,
            })?;
        h.field(diff.as_bytes());
        let untracked = proc::output(&g(&["ls-files", "-z", "--others", "--exclude-standard"]))
            .await
            .unwrap_or_default();
        for f in untracked.split('\0').filter(|f| !f.is_empty()) {
            h.field(f.as_bytes());
            let _ = h.file(&p.join(f));
        }
        return Ok(format!("path-{}", h.finish()));
    }
    let root = p.to_owned();
    let walked = tokio::task::spawn_blocking(move || stat_walk(&root))
        .await
        .map_err(|e| SourceError::Io {
            path: p.to_owned(),
            source: std::io::Error::other(e),
        })?;
    h.field(walked.as_bytes());
    Ok(format!("path-{}", h.finish()))
}

/// Path, size and mtime (ns) of every file under `root`, sorted: changes whenever any
/// file's content is rewritten, without reading the contents.
pub fn stat_walk(root: &Path) -> String {
    let mut rows = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(r);
            } else {
                rows.push(format!(
                    "{}\t{}\t{}.{:09}",
                    r.display(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec()
                ));
            }
        }
    }
    rows.sort();
    rows.join("\n")
}

/// A tarball, unpacked once (by content hash) with its top folder stripped.
async fn tarball(t: &Path, cache: &Cache) -> Result<Tree, SourceError> {
    let mut h = Hasher::new("tarball");
    h.file(t).map_err(io(t))?;
    let id = format!("tarball-{}", h.finish());
    let entry = cache.entry("src", &id);
    if let Some(path) = entry.resolve() {
        return Ok(Tree {
            path,
            id,
            mutable: false,
        });
    }
    let staging = entry.staging().map_err(io(&entry.path))?;
    proc::run(
        &ProcSpec::new("tar")
            .args(["-x", "--strip-components=1", "-f"])
            .arg(t)
            .arg("-C")
            .arg(staging.path())
            .timeout(UNPACK),
    )
    .await
    .map_err(|source| SourceError::Unpack {
        what: t.to_owned(),
        source,
    })?;
    let path = entry.publish(staging, false).map_err(io(&entry.path))?;
    Ok(Tree {
        path,
        id,
        mutable: false,
    })
}

/// A git revision: a cached bare clone (fetched when the revision is missing) and the
/// commit's files exported once into the cache; the tree id is the commit hash.
async fn git(repo: &str, rev: &str, cache: &Cache) -> Result<Tree, SourceError> {
    let mut h = Hasher::new("git-repo");
    h.field(repo.as_bytes());
    let clone_entry = cache.entry("git", &h.finish());
    let err = |step: &'static str| {
        move |source| SourceError::Git {
            repo: repo.to_string(),
            step,
            source,
        }
    };
    let clone = match clone_entry.resolve() {
        Some(c) => c,
        None => {
            let staging = clone_entry.staging().map_err(io(&clone_entry.path))?;
            proc::run(
                &ProcSpec::new("git")
                    .args(["clone", "--bare", "--quiet", "--", repo])
                    .arg(staging.path().join("repo.git"))
                    .timeout(CLONE),
            )
            .await
            .map_err(err("clone"))?;
            clone_entry
                .publish(staging, false)
                .map_err(io(&clone_entry.path))?
        }
    }
    .join("repo.git");
    let g = |args: &[&str]| {
        ProcSpec::new("git")
            .arg("-C")
            .arg(&clone)
            .args(args)
            .timeout(GIT_QUICK)
    };
    let want = format!("{rev}^{{commit}}");
    let resolve = g(&["rev-parse", "--verify", "--end-of-options", &want]);
    let commit = match proc::output(&resolve).await {
        Ok(c) => c,
        Err(_) => {
            proc::run(&g(&["fetch", "--quiet", "origin", "--", rev]).timeout(CLONE))
                .await
                .map_err(err("fetch the revision"))?;
            proc::output(&resolve)
                .await
                .map_err(err("find the revision"))?
        }
    };
    let commit = commit.trim().to_string();
    let id = format!("git-{commit}");
    let entry = cache.entry("src", &id);
    if let Some(path) = entry.resolve() {
        return Ok(Tree {
            path,
            id,
            mutable: false,
        });
    }
    // An export, not a worktree: a checkout killed half-way never looks complete.
    let staging = entry.staging().map_err(io(&entry.path))?;
    let script = "set -o pipefail; git -C \"$1\" archive --format=tar \"$2\" | tar -x -C \"$3\"";
    proc::run(
        &ProcSpec::new("bash")
            .args(["-c", script, "export"])
            .arg(&clone)
            .arg(&commit)
            .arg(staging.path())
            .timeout(UNPACK),
    )
    .await
    .map_err(err("export the commit"))?;
    let path = entry.publish(staging, false).map_err(io(&entry.path))?;
    Ok(Tree {
        path,
        id,
        mutable: false,
    })
}

async fn debian_package(pkg: &str, cache: &Cache) -> Result<Tree, SourceError> {
    let debs = cache.dir("debs");
    std::fs::create_dir_all(&debs).map_err(io(&debs))?;
    let find = || -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&debs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
                })
            })
            .collect();
        found.sort();
        found.pop()
    };
    let deb = match find() {
        Some(d) => d,
        None => {
            proc::run(
                &ProcSpec::new("apt-get")
                    .args(["download", "-q", pkg])
                    .cwd(&debs)
                    .timeout(DOWNLOAD),
            )
            .await
            .map_err(|source| SourceError::Download {
                package: pkg.to_string(),
                source,
            })?;
            find().ok_or_else(|| SourceError::Io {
                path: debs.clone(),
                source: std::io::Error::other(format!("apt-get download left no {pkg}_*.deb")),
            })?
        }
    };
    let stem = deb
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entry = cache.entry("src", &stem);
    if let Some(path) = entry.resolve() {
        return Ok(Tree {
            path,
            id: stem,
            mutable: false,
        });
    }
    let staging = entry.staging().map_err(io(&entry.path))?;
    // The package ships /usr/src/<pkg>.tar.xz whose top folder is <pkg>/.
    let script = format!(
        "set -o pipefail; dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./usr/src/{pkg}.tar.xz | tar -xJ -C \"$2\" --strip-components=1"
    );
    proc::run(
        &ProcSpec::new("bash")
            .args(["-c", &script, "unpack"])
            .arg(&deb)
            .arg(staging.path())
            .timeout(UNPACK),
    )
    .await
    .map_err(|source| SourceError::Unpack {
        what: deb.clone(),
        source,
    })?;
    let path = entry.publish(staging, false).map_err(io(&entry.path))?;
    Ok(Tree {
        path,
        id: stem,
        mutable: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(cmd: &str, dir: &Path) {
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{cmd}");
    }

    const GIT: &str = "git -c user.email=t@t -c user.name=t";

    #[tokio::test]
    async fn tarball_and_git_sources_unpack_once_with_stable_ids() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: d.path().join("cache"),
        };
        sh("mkdir -p linux-7.3/mm && echo 'VERSION = 7' > linux-7.3/Makefile && echo x > linux-7.3/mm/a.c && tar -cJf linux.tar.xz linux-7.3", d.path());
        let t = prepare(&SourceSpec::Tarball(d.path().join("linux.tar.xz")), &cache)
            .await
            .unwrap();
        assert!(t.path.join("Makefile").is_file() && t.path.join("mm/a.c").is_file());
        let again = prepare(&SourceSpec::Tarball(d.path().join("linux.tar.xz")), &cache)
            .await
            .unwrap();
        assert_eq!((t.id.as_str(), &t.path), (again.id.as_str(), &again.path));

        sh(&format!("cd linux-7.3 && git init -q && git add -A && {GIT} commit -qm one && git tag v1 && echo y > mm/b.c && git add -A && {GIT} commit -qm two"), d.path());
        let repo = d.path().join("linux-7.3").display().to_string();
        let v1 = prepare(
            &SourceSpec::Git {
                repo: repo.clone(),
                rev: "v1".into(),
            },
            &cache,
        )
        .await
        .unwrap();
        assert!(v1.path.join("mm/a.c").is_file() && !v1.path.join("mm/b.c").exists());
        let head = prepare(
            &SourceSpec::Git {
                repo,
                rev: "HEAD".into(),
            },
            &cache,
        )
        .await
        .unwrap();
        assert!(head.path.join("mm/b.c").is_file());
        assert_ne!(v1.id, head.id);
        assert!(v1.id.starts_with("git-") && v1.id.len() == 44, "{}", v1.id);
    }

    #[tokio::test]
    async fn a_developers_tree_is_identified_by_its_content() {
        // Issue #17: two different uncommitted edits used to share one key.
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("linux");
        sh(&format!("mkdir -p linux/mm && cd linux && echo 'VERSION = 7' > Makefile && echo 'int a;' > mm/a.c && git init -q && git add -A && {GIT} commit -qm one"), d.path());
        let clean = tree_identity(&t).await.unwrap();
        assert_eq!(clean, tree_identity(&t).await.unwrap(), "stable");
        std::fs::write(t.join("mm/a.c"), "int a = 1;\n").unwrap();
        let edit1 = tree_identity(&t).await.unwrap();
        std::fs::write(t.join("mm/a.c"), "int a = 2;\n").unwrap();
        let edit2 = tree_identity(&t).await.unwrap();
        assert!(clean != edit1 && edit1 != edit2 && clean != edit2);
        std::fs::write(t.join("mm/new.c"), "int n;\n").unwrap();
        assert_ne!(edit2, tree_identity(&t).await.unwrap(), "untracked file");
        // Without git: a stat walk sees a rewrite too.
        let plain = d.path().join("plain");
        sh(
            "mkdir -p plain/mm && echo x > plain/Makefile && echo 'int a;' > plain/mm/a.c",
            d.path(),
        );
        let a = tree_identity(&plain).await.unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(plain.join("mm/a.c"), "int b;\n").unwrap();
        assert_ne!(a, tree_identity(&plain).await.unwrap());
    }
}
