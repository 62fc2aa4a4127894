//! Build slots: one stable tree path and object folder per source tree x arch x config.
//!
//! Every patchset of a slot is built in the same two folders, so `make` rebuilds only
//! what the difference between two patchsets touches and ccache sees the same paths.
//! Switching patchsets rewrites only the files whose content differs, as new files with
//! new mtimes (make compares mtimes: a file put back with its old mtime would leave a
//! stale object behind). The tree starts as a hard-linked copy of the pristine tree;
//! nothing is ever written in place, so the pristine tree stays intact.
//!
//! The patches are applied by `patch` on an overlay holding only the files they touch
//! (PATCH-FAIL keeps `patch`'s own words), then synced into the slot's tree.

use crate::host::cache::{Cache, Hasher};
use crate::host::proc::{self, ProcError, ProcSpec};
use crate::prepare::source::Tree;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot copy the kernel tree into the build slot")]
    Copy(#[source] ProcError),
    #[error(transparent)]
    Lock(#[from] crate::host::cache::LockError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SlotError + '_ {
    move |source| SlotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A patch that did not apply: which one, and `patch`'s own words (the failed hunks).
#[derive(Debug, Clone)]
pub struct PatchFailure {
    pub patch: PathBuf,
    pub output: String,
}

/// What the slot's tree holds beyond the pristine tree: path -> sha256 of the content
/// kmatrix wrote there (None: the file was deleted).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    differs: BTreeMap<String, Option<String>>,
}

/// A locked build slot.
pub struct Slot {
    pub tree: PathBuf,
    pub objdir: PathBuf,
    state_file: PathBuf,
    /// How many objects the slot's last cold and incremental builds compiled: the
    /// next build's progress is measured against them.
    counts_file: PathBuf,
    _lock: crate::host::cache::Lock,
}

/// Objects compiled by the slot's last builds, by kind (a cold build compiles the whole
/// config; an incremental one what the patchset switch touched).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCounts {
    pub cold: Option<u64>,
    pub incremental: Option<u64>,
    /// [`config_digest`] of the config the last build compiled with.
    #[serde(default)]
    pub config: Option<u64>,
}

/// A config's fingerprint (FNV-1a): the same config as the slot's last build, and the
/// only objects to recompile are those that depend on the changed files.
pub fn config_digest(config: &str) -> u64 {
    config.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How long a build waits for another build of the same slot (a cold build of a big
/// config on a slow host takes a while, so generous).
const SLOT_WAIT: Duration = Duration::from_secs(3 * 3600);

impl Slot {
    /// The slot for a tree, arch and config, created on first use and locked: the cells
    /// of one slot build one after the other.
    pub async fn open(
        cache: &Cache,
        pristine: &Tree,
        name: &str,
        waiting: impl Fn(String),
    ) -> Result<Slot, SlotError> {
        let dir = slot_dir(cache, pristine, name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock = crate::host::cache::lock(
            &dir.join(".lock"),
            &format!("build slot {name}"),
            SLOT_WAIT,
            waiting,
        )
        .await?;
        let slot = Slot {
            tree: dir.join("tree"),
            objdir: dir.join("obj"),
            state_file: dir.join("state.json"),
            counts_file: dir.join("objects.json"),
            _lock: lock,
        };
        std::fs::create_dir_all(&slot.objdir).map_err(io(&slot.objdir))?;
        if !dir.join("tree.complete").exists() {
            let _ = std::fs::remove_dir_all(&slot.tree);
            let _ = std::fs::remove_file(&slot.state_file);
            // Hard links where the cache and the tree share a filesystem, else a copy.
            let linked = proc::run(
                &ProcSpec::new("cp")
                    .arg("-al")
                    .arg(&pristine.path)
                    .arg(&slot.tree),
            )
            .await;
            if linked.is_err() {
                let _ = std::fs::remove_dir_all(&slot.tree);
                proc::run(
                    &ProcSpec::new("cp")
                        .arg("-a")
                        .arg(&pristine.path)
                        .arg(&slot.tree),
                )
                .await
                .map_err(SlotError::Copy)?;
            }
            for marker in [".kmatrix-complete", ".kmatrix-unpacked"] {
                let _ = std::fs::remove_file(slot.tree.join(marker));
            }
            std::fs::write(dir.join("tree.complete"), b"").map_err(io(&dir))?;
        }
        Ok(slot)
    }

    /// Make the slot's tree the pristine tree plus `patches`. Returns the paths whose
    /// content changed in the slot (what make will rebuild), or the patch that failed.
    pub async fn sync(
        &self,
        pristine: &Tree,
        patches: &[PathBuf],
        mutable_source: bool,
    ) -> Result<Result<Vec<String>, PatchFailure>, SlotError> {
        let mut state: State = std::fs::read(&self.state_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if mutable_source {
            relink_changed(&pristine.path, &self.tree, &state)?;
        }
        let overlay = tempfile::Builder::new()
            .prefix(".overlay.")
            .tempdir_in(self.tree.parent().unwrap_or(Path::new(".")))
            .map_err(io(&self.tree))?;
        let touched = match apply(&pristine.path, patches, overlay.path()).await? {
            Ok(t) => t,
            Err(f) => return Ok(Err(f)),
        };
        // Desired content of every path that differs from pristine now or did before.
        let mut paths: BTreeSet<String> = state.differs.keys().cloned().collect();
        paths.extend(touched.iter().cloned());
        let mut changed = Vec::new();
        let mut differs = BTreeMap::new();
        for p in &paths {
            let want_from = if touched.contains(p) {
                overlay.path().join(p)
            } else {
                pristine.path.join(p)
            };
            let want = std::fs::read(&want_from).ok();
            let slot_file = self.tree.join(p);
            let have = std::fs::read(&slot_file).ok();
            if touched.contains(p) {
                let pristine_content = std::fs::read(pristine.path.join(p)).ok();
                if want != pristine_content {
                    differs.insert(p.clone(), want.as_ref().map(|w| digest(w)));
                }
            }
            if want == have {
                continue;
            }
            match &want {
                Some(bytes) => replace_file(&slot_file, bytes, &want_from)?,
                None => {
                    let _ = std::fs::remove_file(&slot_file);
                }
            }
            changed.push(p.clone());
        }
        state.differs = differs;
        crate::host::cache::write_atomic(
            &self.state_file,
            &serde_json::to_vec(&state).unwrap_or_default(),
        )
        .map_err(io(&self.state_file))?;
        Ok(Ok(changed))
    }
}

/// The folder of a slot. A tree kmatrix unpacked is keyed by what it is (the same
/// package, tarball or commit always gets the same slot, wherever the cache put it); a
/// developer's own tree by where it is (its content changes, and the slot follows it).
fn slot_dir(cache: &Cache, pristine: &Tree, name: &str) -> PathBuf {
    let mut h = Hasher::new("slot");
    if pristine.mutable {
        h.field(b"path")
            .field(pristine.path.as_os_str().as_encoded_bytes());
    } else {
        h.field(b"id").field(pristine.id.as_bytes());
    }
    cache.dir("slots").join(h.finish()).join(name)
}

/// A slot as it is now, read without its lock (for estimates: another run may change it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SlotFacts {
    /// A kernel was built in it: its next build is incremental.
    pub built: bool,
    pub counts: ObjectCounts,
}

impl Slot {
    pub fn peek(cache: &Cache, pristine: &Tree, name: &str) -> SlotFacts {
        let dir = slot_dir(cache, pristine, name);
        SlotFacts {
            built: dir.join("obj/vmlinux").exists(),
            counts: std::fs::read(dir.join("objects.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        }
    }

    /// What the slot's earlier builds compiled (nothing known: both None).
    pub fn object_counts(&self) -> ObjectCounts {
        std::fs::read(&self.counts_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Remember how many objects a finished build compiled (best effort: a lost count
    /// only makes the next estimate rougher).
    pub fn remember_objects(&self, cold: bool, compiled: u64, config: &str) {
        let mut c = self.object_counts();
        c.config = Some(config_digest(config));
        if cold {
            c.cold = Some(compiled);
        } else {
            c.incremental = Some(compiled);
        }
        let _ = crate::host::cache::write_atomic(
            &self.counts_file,
            &serde_json::to_vec(&c).unwrap_or_default(),
        );
    }
}

fn digest(bytes: &[u8]) -> String {
    let mut h = Hasher::new("file");
    h.field(bytes);
    h.finish()
}

/// A new file (new inode, new mtime) in place of `path`, written via rename so a hard
/// link into the pristine tree is never modified. Keeps the source's permissions.
fn replace_file(path: &Path, bytes: &[u8], like: &Path) -> Result<(), SlotError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kmatrix.")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    if let Ok(m) = std::fs::metadata(like) {
        let _ = tmp.as_file().set_permissions(m.permissions());
    }
    tmp.persist(path).map_err(|e| SlotError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

/// For a tree a developer edits: files that changed in the pristine tree since the slot
/// linked them (another inode, or another size or mtime for a copied slot), files that
/// appeared and files that went away, except those the patches own.
fn relink_changed(pristine: &Path, slot: &Path, state: &State) -> Result<(), SlotError> {
    let mut stack = vec![PathBuf::new()];
    let mut seen = BTreeSet::new();
    while let Some(rel) = stack.pop() {
        let dir = pristine.join(&rel);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if rel.as_os_str().is_empty() && (name == ".git" || name == ".kmatrix-complete") {
                continue;
            }
            let r = rel.join(&name);
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(r);
                continue;
            }
            let key = r.to_string_lossy().into_owned();
            seen.insert(key.clone());
            if state.differs.contains_key(&key) {
                continue;
            }
            let dst = slot.join(&r);
            let same = std::fs::symlink_metadata(&dst).is_ok_and(|d| {
                d.ino() == m.ino()
                    || (d.size() == m.size()
                        && d.mtime() == m.mtime()
                        && d.mtime_nsec() == m.mtime_nsec())
            });
            if !same {
                if let Some(p) = dst.parent() {
                    std::fs::create_dir_all(p).map_err(io(p))?;
                }
                let _ = std::fs::remove_file(&dst);
                // The developer's mtime is newer than the objects built from the old
                // content, so make sees the change.
                if std::fs::hard_link(e.path(), &dst).is_err() && !m.is_symlink() {
                    std::fs::copy(e.path(), &dst).map_err(io(&dst))?;
                    let f = std::fs::File::options()
                        .write(true)
                        .open(&dst)
                        .map_err(io(&dst))?;
                    let _ = f.set_modified(m.modified().map_err(io(&dst))?);
                }
            }
        }
    }
    // Files the developer deleted.
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(slot.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let r = rel.join(e.file_name());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(r);
                continue;
            }
            let key = r.to_string_lossy().into_owned();
            if !seen.contains(&key) && !state.differs.contains_key(&key) {
                let _ = std::fs::remove_file(slot.join(&r));
            }
        }
    }
    Ok(())
}

/// The files a unified diff touches (`--- a/x`, `+++ b/x`, git rename/copy headers),
/// with the first path component stripped as `patch -p1` does.
pub fn touched_paths(patch: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let mut add = |p: &str| {
        let p = p.split('\t').next().unwrap_or_default().trim_end();
        if p == "/dev/null" || p.is_empty() {
            return;
        }
        let stripped = match p.split_once('/') {
            Some((_, rest)) => rest,
            None => return,
        };
        // Never let a patch name a file outside the tree.
        if stripped.starts_with('/') || stripped.split('/').any(|c| c == "..") {
            return;
        }
        if !v.iter().any(|x| x == stripped) {
            v.push(stripped.to_string());
        }
    };
    for l in patch.lines() {
        if let Some(p) = l.strip_prefix("--- ").or_else(|| l.strip_prefix("+++ ")) {
            add(p);
        } else if let Some(p) = l
            .strip_prefix("rename from ")
            .or_else(|| l.strip_prefix("rename to "))
            .or_else(|| l.strip_prefix("copy from "))
            .or_else(|| l.strip_prefix("copy to "))
        {
            add(&format!("a/{p}"));
        }
    }
    v
}

/// Apply `patches` in order to copies of the files they touch, in `overlay`. Returns the
/// touched paths (relative to the tree).
async fn apply(
    pristine: &Path,
    patches: &[PathBuf],
    overlay: &Path,
) -> Result<Result<BTreeSet<String>, PatchFailure>, SlotError> {
    let mut touched = BTreeSet::new();
    for p in patches {
        let text = std::fs::read_to_string(p).map_err(io(p))?;
        for rel in touched_paths(&text) {
            if touched.insert(rel.clone()) {
                let src = pristine.join(&rel);
                if src.is_file() {
                    let dst = overlay.join(&rel);
                    if let Some(d) = dst.parent() {
                        std::fs::create_dir_all(d).map_err(io(d))?;
                    }
                    std::fs::copy(&src, &dst).map_err(io(&src))?;
                }
            }
        }
        // A patch can make links and run nothing, but `patch` reads hostile input:
        // it runs sandboxed, writing only the overlay.
        let out = proc::output(
            &crate::host::sandbox::Sandbox::new()
                .readable(p)
                .writable(overlay)
                .wrap(
                    ProcSpec::new("patch")
                        .args(["-p1", "-N", "--no-backup-if-mismatch", "-i"])
                        .arg(p)
                        .arg("-d")
                        .arg(overlay)
                        .timeout(Duration::from_secs(120)),
                ),
        )
        .await;
        if let Err(e) = out {
            let output = match e {
                ProcError::Failed { tail, .. } => tail,
                other => other.to_string(),
            };
            return Ok(Err(PatchFailure {
                patch: p.clone(),
                output,
            }));
        }
    }
    // The series' result must be regular files: GNU patch makes symlinks from git
    // patches, and a link would let the slot (and kmatrix's copy into it) reach outside.
    for rel in &touched {
        let Ok(m) = std::fs::symlink_metadata(overlay.join(rel)) else {
            continue;
        };
        if !m.is_file() {
            let what = if m.file_type().is_symlink() {
                "a symbolic link"
            } else if m.is_dir() {
                "a folder"
            } else {
                "a special file"
            };
            return Ok(Err(PatchFailure {
                patch: patches.last().cloned().unwrap_or_default(),
                output: format!(
                    "the series makes {rel} {what}: refused (a patch may only add, change or remove regular files)"
                ),
            }));
        }
    }
    Ok(Ok(touched))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tree(root: &Path) -> Tree {
        std::fs::create_dir_all(root.join("mm")).unwrap();
        std::fs::write(root.join("Makefile"), "all:\n").unwrap();
        std::fs::write(root.join("mm/a.c"), "int a = 1;\n").unwrap();
        std::fs::write(root.join("mm/b.c"), "int b = 1;\n").unwrap();
        Tree {
            path: root.to_owned(),
            id: "t".into(),
            mutable: false,
        }
    }

    fn patch(dir: &Path, name: &str, file: &str, from: &str, to: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("--- a/{file}\n+++ b/{file}\n@@ -1 +1 @@\n-{from}\n+{to}\n"),
        )
        .unwrap();
        p
    }

    #[test]
    fn touched_paths_strip_one_component_and_refuse_escapes() {
        let text = "diff --git a/mm/x.c b/mm/y.c\nrename from mm/x.c\nrename to mm/y.c\n--- a/mm/a.c\t2026\n+++ b/mm/a.c\n--- /dev/null\n+++ b/mm/new.c\n--- a/../../etc/passwd\n";
        assert_eq!(
            touched_paths(text),
            ["mm/x.c", "mm/y.c", "mm/a.c", "mm/new.c"]
        );
    }

    #[tokio::test]
    async fn switching_patchsets_rewrites_only_what_differs_with_new_mtimes() {
        let d = tempfile::tempdir().unwrap();
        let pristine = tree(&d.path().join("src"));
        let cache = Cache {
            root: d.path().join("cache"),
        };
        let p1 = patch(d.path(), "1.patch", "mm/a.c", "int a = 1;", "int a = 2;");
        let slot = Slot::open(&cache, &pristine, "x86_64-c", |_| {})
            .await
            .unwrap();
        // Base: nothing differs; the tree is hard links to the pristine tree.
        assert_eq!(
            slot.sync(&pristine, &[], false).await.unwrap().unwrap(),
            Vec::<String>::new()
        );
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(
            ino(&slot.tree.join("mm/b.c")),
            ino(&pristine.path.join("mm/b.c"))
        );
        // A patchset: only the patched file changes, pristine untouched.
        let changed = slot
            .sync(&pristine, std::slice::from_ref(&p1), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed, ["mm/a.c"]);
        assert_eq!(
            std::fs::read_to_string(slot.tree.join("mm/a.c")).unwrap(),
            "int a = 2;\n"
        );
        assert_eq!(
            std::fs::read_to_string(pristine.path.join("mm/a.c")).unwrap(),
            "int a = 1;\n"
        );
        // The same patchset again: nothing to do.
        assert!(slot
            .sync(&pristine, &[p1], false)
            .await
            .unwrap()
            .unwrap()
            .is_empty());
        // Back to base: the file is restored as a new file, newer than before.
        let before = std::fs::metadata(slot.tree.join("mm/a.c"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            slot.sync(&pristine, &[], false).await.unwrap().unwrap(),
            ["mm/a.c"]
        );
        let restored = std::fs::metadata(slot.tree.join("mm/a.c")).unwrap();
        assert!(restored.modified().unwrap() > before);
        assert_ne!(
            restored.ino(),
            ino(&pristine.path.join("mm/a.c")),
            "a copy, never the pristine inode"
        );
        assert_eq!(
            std::fs::read_to_string(slot.tree.join("mm/a.c")).unwrap(),
            "int a = 1;\n"
        );
    }

    #[tokio::test]
    async fn a_patch_that_does_not_apply_keeps_patchs_words() {
        let d = tempfile::tempdir().unwrap();
        let pristine = tree(&d.path().join("src"));
        let cache = Cache {
            root: d.path().join("cache"),
        };
        let bad = patch(d.path(), "bad.patch", "mm/a.c", "int nope;", "int a = 3;");
        let slot = Slot::open(&cache, &pristine, "x86_64-c", |_| {})
            .await
            .unwrap();
        let f = slot
            .sync(&pristine, std::slice::from_ref(&bad), false)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(f.patch, bad);
        assert!(f.output.contains("FAILED"), "{}", f.output);
        assert_eq!(
            std::fs::read_to_string(slot.tree.join("mm/a.c")).unwrap(),
            "int a = 1;\n"
        );
    }

    #[tokio::test]
    async fn a_developers_edit_reaches_the_slot() {
        let d = tempfile::tempdir().unwrap();
        let mut pristine = tree(&d.path().join("src"));
        pristine.mutable = true;
        let cache = Cache {
            root: d.path().join("cache"),
        };
        let slot = Slot::open(&cache, &pristine, "x86_64-c", |_| {})
            .await
            .unwrap();
        slot.sync(&pristine, &[], true).await.unwrap().unwrap();
        // An editor that writes a new file and renames it over the old one.
        std::fs::write(pristine.path.join("mm/.b.c.swp"), "int b = 9;\n").unwrap();
        std::fs::rename(
            pristine.path.join("mm/.b.c.swp"),
            pristine.path.join("mm/b.c"),
        )
        .unwrap();
        std::fs::write(pristine.path.join("mm/new.c"), "int n;\n").unwrap();
        std::fs::remove_file(pristine.path.join("Makefile")).unwrap();
        slot.sync(&pristine, &[], true).await.unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(slot.tree.join("mm/b.c")).unwrap(),
            "int b = 9;\n"
        );
        assert!(slot.tree.join("mm/new.c").is_file());
        assert!(!slot.tree.join("Makefile").exists());
    }

    /// A git patch can make a symbolic link (GNU patch does): the series would then reach
    /// outside the slot through kmatrix's own copy. It is refused, and nothing the link
    /// points at reaches the slot.
    #[tokio::test]
    async fn a_patch_that_makes_a_symlink_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let pristine = tree(&d.path().join("src"));
        let cache = Cache {
            root: d.path().join("cache"),
        };
        let secret = d.path().join("secret");
        std::fs::write(&secret, "host secret\n").unwrap();
        let link = d.path().join("link.patch");
        std::fs::write(
            &link,
            format!(
                "diff --git a/mm/evil.c b/mm/evil.c\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/mm/evil.c\n@@ -0,0 +1 @@\n+{}\n\\ No newline at end of file\n",
                secret.display()
            ),
        )
        .unwrap();
        let slot = Slot::open(&cache, &pristine, "x86_64-c", |_| {})
            .await
            .unwrap();
        let f = slot
            .sync(&pristine, std::slice::from_ref(&link), false)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            f.output.contains("mm/evil.c a symbolic link: refused"),
            "{}",
            f.output
        );
        assert!(std::fs::symlink_metadata(slot.tree.join("mm/evil.c")).is_err());
    }
}
