//! Kernel tree acquisition (Debian source package or a local tree) and patch application.

use crate::cache::{Cache, Hasher};
use crate::proc::{self, ProcError, ProcSpec};
use crate::spec::SourceSpec;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot download Debian package `{package}` (run `sudo scripts/setup-host` to add the apt suite that has it)")]
    Download {
        package: String,
        #[source]
        source: ProcError,
    },
    #[error("cannot unpack {}", deb.display())]
    Unpack {
        deb: PathBuf,
        #[source]
        source: ProcError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot copy tree for patchset `{patchset}`")]
    Copy {
        patchset: String,
        #[source]
        source: ProcError,
    },
}

/// A pristine kernel tree and a stable identity for cache keys.
#[derive(Debug, Clone)]
pub struct Tree {
    pub path: PathBuf,
    /// Identifies the tree's content (package and version, or path and git state).
    pub id: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Make the pristine tree available, fetching and unpacking it once.
pub async fn prepare(source: &SourceSpec, cache: &Cache) -> Result<Tree, SourceError> {
    match source {
        SourceSpec::Path(p) => {
            let rev = proc::output(&ProcSpec::new("git").arg("-C").arg(p).args([
                "describe",
                "--always",
                "--dirty",
                "--abbrev=40",
            ]))
            .await
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "no-git".into());
            let mut h = Hasher::new("path-tree");
            h.field(p.to_string_lossy().as_bytes())
                .field(rev.as_bytes());
            Ok(Tree {
                path: p.clone(),
                id: format!("path-{}", h.finish()),
            })
        }
        SourceSpec::DebianPackage(pkg) => debian_package(pkg, cache).await,
        SourceSpec::Tarball(t) => tarball(t, cache).await,
        SourceSpec::Git { repo, rev } => git(repo, rev, cache).await,
    }
}

fn unpack_err(path: &Path) -> impl FnOnce(ProcError) -> SourceError + '_ {
    move |source| SourceError::Unpack {
        deb: path.to_owned(),
        source,
    }
}

/// A tarball, unpacked once (by content hash) with its top folder stripped.
async fn tarball(t: &Path, cache: &Cache) -> Result<Tree, SourceError> {
    let mut h = Hasher::new("tarball");
    h.file(t).map_err(io(t))?;
    let id = format!("tarball-{}", h.finish());
    let tree = cache.dir("src").join(&id);
    let marker = tree.join(".kmatrix-unpacked");
    if !marker.exists() {
        let tmp = cache.dir("src").join(format!(".{id}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        proc::run(
            &ProcSpec::new("tar")
                .args(["-x", "--strip-components=1", "-f"])
                .arg(t)
                .arg("-C")
                .arg(&tmp),
        )
        .await
        .map_err(unpack_err(t))?;
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::rename(&tmp, &tree).map_err(io(&tree))?;
        std::fs::write(&marker, b"").map_err(io(&marker))?;
    }
    Ok(Tree { path: tree, id })
}

/// A git revision: a cached clone (fetched when the revision is missing) and a detached
/// worktree per commit; the tree id is the commit hash.
async fn git(repo: &str, rev: &str, cache: &Cache) -> Result<Tree, SourceError> {
    let mut h = Hasher::new("git-repo");
    h.field(repo.as_bytes());
    let clone = cache.dir("git").join(h.finish());
    let g = |args: &[&str]| ProcSpec::new("git").arg("-C").arg(&clone).args(args);
    let clone_err = |source| SourceError::Copy {
        patchset: format!("git {repo}"),
        source,
    };
    if !clone.join("HEAD").exists() {
        std::fs::create_dir_all(clone.parent().unwrap_or(Path::new("."))).map_err(io(&clone))?;
        proc::run(
            &ProcSpec::new("git")
                .args(["clone", "--bare", "--quiet", repo])
                .arg(&clone),
        )
        .await
        .map_err(clone_err)?;
    }
    let want = format!("{rev}^{{commit}}");
    let resolve = g(&["rev-parse", "--verify", &want]);
    let commit = match proc::output(&resolve).await {
        Ok(c) => c,
        Err(_) => {
            proc::run(&g(&["fetch", "--quiet", "origin", rev]))
                .await
                .map_err(clone_err)?;
            proc::output(&resolve).await.map_err(clone_err)?
        }
    };
    let commit = commit.trim().to_string();
    let tree = cache.dir("src").join(format!("git-{commit}"));
    if !tree.join("Makefile").exists() {
        let _ = proc::run(&g(&["worktree", "prune"])).await;
        proc::run(
            &g(&["worktree", "add", "--detach", "--force"])
                .arg(&tree)
                .arg(&commit),
        )
        .await
        .map_err(clone_err)?;
    }
    Ok(Tree {
        path: tree,
        id: format!("git-{commit}"),
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
                p.file_name()
                    .map(|n| {
                        let n = n.to_string_lossy();
                        n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
                    })
                    .unwrap_or(false)
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
                    .cwd(&debs),
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
    let tree = cache.dir("src").join(&stem);
    let marker = tree.join(".kmatrix-unpacked");
    if !marker.exists() {
        let tmp = cache.dir("src").join(format!(".{stem}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        // The package ships /usr/src/<pkg>.tar.xz whose top folder is <pkg>/.
        let script = format!(
            "set -o pipefail; dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./usr/src/{pkg}.tar.xz | tar -xJ -C \"$2\" --strip-components=1"
        );
        proc::run(
            &ProcSpec::new("bash")
                .args(["-c", &script, "unpack"])
                .arg(&deb)
                .arg(&tmp),
        )
        .await
        .map_err(|source| SourceError::Unpack {
            deb: deb.clone(),
            source,
        })?;
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::rename(&tmp, &tree).map_err(io(&tree))?;
        std::fs::write(&marker, b"").map_err(io(&marker))?;
    }
    Ok(Tree {
        path: tree,
        id: stem,
    })
}

/// Outcome of applying a patch series.
#[derive(Debug)]
pub enum Patched {
    Tree(Tree),
    /// A patch did not apply: which one, and `patch`'s own words (the failed hunks).
    Failed {
        patch: PathBuf,
        output: String,
    },
}

/// The tree for a patchset: the pristine tree when there are no patches, else a
/// hard-linked copy (patch writes new files, so the pristine tree stays intact) with
/// the patches applied in order. Cached by the hash of the patches.
pub async fn patched_tree(
    pristine: &Tree,
    patchset: &str,
    patches: &[PathBuf],
    cache: &Cache,
) -> Result<Patched, SourceError> {
    if patches.is_empty() {
        return Ok(Patched::Tree(pristine.clone()));
    }
    let mut h = Hasher::new("patched-tree");
    h.field(pristine.id.as_bytes());
    for p in patches {
        h.file(p).map_err(io(p))?;
    }
    let key = h.finish();
    let dir = cache
        .dir("trees")
        .join(format!("{}-{patchset}-{key}", pristine.id));
    let id = format!("{}+{key}", pristine.id);
    if dir.join(".kmatrix-patched").exists() {
        return Ok(Patched::Tree(Tree { path: dir, id }));
    }
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.parent().unwrap_or(Path::new("."))).map_err(io(&tmp))?;
    proc::run(&ProcSpec::new("cp").arg("-al").arg(&pristine.path).arg(&tmp))
        .await
        .map_err(|source| SourceError::Copy {
            patchset: patchset.to_string(),
            source,
        })?;
    let _ = std::fs::remove_file(tmp.join(".kmatrix-unpacked"));
    for p in patches {
        let out = proc::output(
            &ProcSpec::new("patch")
                .args(["-p1", "-N", "--no-backup-if-mismatch", "-i"])
                .arg(p)
                .arg("-d")
                .arg(&tmp),
        )
        .await;
        if let Err(e) = out {
            let _ = std::fs::remove_dir_all(&tmp);
            let output = match e {
                ProcError::Failed { tail, .. } => tail,
                other => other.to_string(),
            };
            return Ok(Patched::Failed {
                patch: p.clone(),
                output,
            });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
    std::fs::write(dir.join(".kmatrix-patched"), b"").map_err(io(&dir))?;
    Ok(Patched::Tree(Tree { path: dir, id }))
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
        assert_eq!(t.id, again.id);

        sh("cd linux-7.3 && git init -q && git add -A && git -c user.email=t@t -c user.name=t commit -qm one && git tag v1 && echo y > mm/b.c && git add -A && git -c user.email=t@t -c user.name=t commit -qm two", d.path());
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
}
