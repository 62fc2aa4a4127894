//! The cache directory: downloaded packages, unpacked trees, build slots, kernels, guest
//! images and keys. `KMATRIX_CACHE`, else `$XDG_CACHE_HOME/kmatrix`, else
//! `~/.cache/kmatrix`.
//!
//! Every cached object is an [`Entry`]: filled in a staging folder unique to its builder,
//! then published once, atomically; a published entry is never modified or deleted
//! while in use (a rebuild publishes a new generation and switches the name to it).

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    /// A module whose source ships inside kmatrix (`Kbuild` and `<name>.c`), written once
    /// into `<folder>/<hash of the source>/<name>` so that any spec can build it.
    pub fn embedded_module(
        &self,
        folder: &str,
        name: &str,
        kbuild: &str,
        source: &str,
    ) -> std::io::Result<(String, PathBuf)> {
        let mut h = Hasher::new(&format!("{folder}-module"));
        h.field(kbuild.as_bytes()).field(source.as_bytes());
        let dir = self.dir(folder).join(h.finish()).join(name);
        let c = dir.join(format!("{name}.c"));
        if !c.is_file() {
            std::fs::create_dir_all(&dir)?;
            write_atomic(&dir.join("Kbuild"), kbuild.as_bytes())?;
            write_atomic(&c, source.as_bytes())?;
        }
        Ok((name.to_string(), dir))
    }

    pub fn from_env() -> Cache {
        let root = std::env::var_os("KMATRIX_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kmatrix"))
            })
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kmatrix")))
            .unwrap_or_else(|| PathBuf::from("/var/cache/kmatrix"));
        Cache { root }
    }
    pub fn dir(&self, sub: &str) -> PathBuf {
        self.root.join(sub)
    }
    /// The entry `<kind>/<name>` (e.g. `kernels/<key>`).
    pub fn entry(&self, kind: &str, name: &str) -> Entry {
        Entry::new(self.root.join(kind).join(name))
    }
}

/// Incremental sha256 over the inputs that decide an output.
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new(domain: &str) -> Hasher {
        let mut h = Hasher(Sha256::new());
        h.field(domain.as_bytes());
        h
    }
    /// Length-prefixed, so ("ab","c") and ("a","bc") differ.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }
    pub fn file(&mut self, path: &Path) -> std::io::Result<&mut Self> {
        let bytes = std::fs::read(path)?;
        Ok(self.field(&bytes))
    }
    /// Short hex digest (16 bytes) for directory names.
    pub fn finish(self) -> String {
        let d = self.0.finalize();
        d.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// The marker a published entry carries; written last, inside the staging folder.
const COMPLETE: &str = ".kmatrix-complete";

/// A cached object: `<parent>/<name>` is a symlink to the generation that holds it
/// (`<name>@<unique>`), published by [`Entry::publish`].
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
}

/// A builder's own folder for an entry being made; removed if never published.
pub struct Staging {
    dir: Option<tempfile::TempDir>,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }
}

impl Entry {
    pub fn new(path: PathBuf) -> Entry {
        Entry { path }
    }
    fn parent(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    /// The folder holding the published object, resolved once: a later rebuild switches
    /// the name, never what a reader already resolved.
    pub fn resolve(&self) -> Option<PathBuf> {
        let real = std::fs::canonicalize(&self.path).ok()?;
        real.join(COMPLETE).exists().then_some(real)
    }
    pub fn is_complete(&self) -> bool {
        self.resolve().is_some()
    }
    /// A fresh staging folder beside the entry, unique to this builder, so two builders
    /// of one entry never write into each other's files.
    pub fn staging(&self) -> std::io::Result<Staging> {
        std::fs::create_dir_all(self.parent())?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.name()))
            .suffix(".staging")
            .tempdir_in(self.parent())?;
        Ok(Staging { dir: Some(dir) })
    }
    /// Publish a filled staging folder. Without `replace`, an entry someone else published
    /// meanwhile wins and ours is dropped (same inputs, same output). With `replace` (a
    /// rebuild), ours becomes the entry and the old generation stays on disk for whoever
    /// still uses it. Returns the folder that now holds the entry.
    pub fn publish(&self, mut staging: Staging, replace: bool) -> std::io::Result<PathBuf> {
        if !replace {
            if let Some(real) = self.resolve() {
                return Ok(real);
            }
        }
        let dir = staging
            .dir
            .take()
            .ok_or_else(|| std::io::Error::other("staging folder already used"))?;
        write_atomic(&dir.path().join(COMPLETE), b"")?;
        let generation = format!(
            "{}@{}",
            self.name(),
            dir.path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .trim_start_matches('.')
                .rsplit('.')
                .nth(1)
                .unwrap_or("0")
        );
        let real = self.parent().join(&generation);
        std::fs::rename(dir.keep(), &real)?;
        // A legacy (pre-generation) folder under the name is moved out of the way; it is
        // not ours to keep in place.
        if self.path.is_dir() && !self.path.is_symlink() {
            let stale =
                self.parent()
                    .join(format!(".{}.stale.{}", self.name(), std::process::id()));
            std::fs::rename(&self.path, &stale)?;
            let _ = std::fs::remove_dir_all(&stale);
        }
        let link = tempfile::Builder::new()
            .prefix(&format!(".{}.", self.name()))
            .suffix(".link")
            .make_in(self.parent(), |p| {
                std::os::unix::fs::symlink(&generation, p)
            })?;
        link.persist(&self.path).map_err(|e| e.error)?;
        sync_dir(self.parent())?;
        Ok(real)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gave up after {}s waiting for {what} ({path}): {holder}; if that process is stuck, stop it", waited.as_secs())]
    Timeout {
        what: String,
        path: PathBuf,
        holder: String,
        waited: Duration,
    },
}

/// An exclusive advisory lock held until dropped (the kernel drops it if the holder dies).
pub struct Lock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Who holds a lock, as its holder wrote it into the lock file.
fn holder(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "held by another process".into())
}

/// Take the lock on `path` (created if missing) for `what`. Two kmatrix runs sharing a
/// cache take turns on shared steps instead of racing; waiting does not block the async
/// runtime. While waiting, `waiting` is called every 30 s with who holds it and since
/// when; after `limit` the wait ends with an error naming the holder.
pub async fn lock(
    path: &Path,
    what: &str,
    limit: Duration,
    waiting: impl Fn(String),
) -> Result<Lock, LockError> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let start = Instant::now();
    let mut told = Instant::now();
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut l) => {
                let since = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                // The command line, shortened: a `boot -- SCRIPT` can be pages long.
                let mut cmd = std::env::args().collect::<Vec<_>>().join(" ");
                if let Some((i, _)) = cmd.char_indices().nth(160) {
                    cmd.truncate(i);
                    cmd.push_str(" ...");
                }
                let cmd = cmd.replace(['\n', '\r'], " ");
                let me = format!(
                    "held by pid {} ({cmd}) for {what} since unix time {since}",
                    std::process::id(),
                );
                let _ = l.set_len(0);
                let _ = l.write_all(me.as_bytes());
                return Ok(Lock { _lock: l });
            }
            Err((f, _)) => {
                file = f;
                if start.elapsed() > limit {
                    return Err(LockError::Timeout {
                        what: what.to_string(),
                        path: path.to_owned(),
                        holder: holder(path),
                        waited: start.elapsed(),
                    });
                }
                if told.elapsed() >= Duration::from_secs(30) {
                    told = Instant::now();
                    waiting(format!(
                        "waiting {}s for {what}: {}",
                        start.elapsed().as_secs(),
                        holder(path)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Write a file atomically: a temp file in the same folder, fsync, rename, fsync of the
/// folder. A failed write (disk full) leaves neither a temp file nor a changed `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_fields_are_length_prefixed() {
        let mut a = Hasher::new("t");
        a.field(b"ab").field(b"c");
        let mut b = Hasher::new("t");
        b.field(b"a").field(b"bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn write_atomic_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/r.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
    }

    #[test]
    fn write_atomic_that_fails_leaves_no_temp_file() {
        let d = tempfile::tempdir().unwrap();
        // A non-empty folder in the way: the final rename fails.
        std::fs::create_dir_all(d.path().join("r.json/x")).unwrap();
        assert!(write_atomic(&d.path().join("r.json"), b"one").is_err());
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.json"]);
    }

    #[test]
    fn entries_publish_once_and_a_rebuild_keeps_what_readers_resolved() {
        let d = tempfile::tempdir().unwrap();
        let e = Entry::new(d.path().join("kernels/k1"));
        assert!(!e.is_complete());
        // Two builders of one entry: separate staging folders.
        let a = e.staging().unwrap();
        let b = e.staging().unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.path().join("image"), "A").unwrap();
        std::fs::write(b.path().join("image"), "B").unwrap();
        let first = e.publish(a, false).unwrap();
        // The second publisher of the same inputs keeps the first's entry.
        assert_eq!(e.publish(b, false).unwrap(), first);
        let real = e.resolve().unwrap();
        assert_eq!(std::fs::read_to_string(real.join("image")).unwrap(), "A");
        // A rebuild switches the name; the generation a reader resolved stays intact.
        let c = e.staging().unwrap();
        std::fs::write(c.path().join("image"), "C").unwrap();
        let second = e.publish(c, true).unwrap();
        assert_ne!(second, first);
        assert_eq!(std::fs::read_to_string(e.path.join("image")).unwrap(), "C");
        assert_eq!(std::fs::read_to_string(first.join("image")).unwrap(), "A");
        // Nothing half-made is left behind.
        let staged = std::fs::read_dir(d.path().join("kernels"))
            .unwrap()
            .filter(|x| {
                x.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".staging")
            })
            .count();
        assert_eq!(staged, 0);
    }

    #[test]
    fn a_staging_folder_never_published_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let e = Entry::new(d.path().join("images/x"));
        let p = {
            let s = e.staging().unwrap();
            std::fs::write(s.path().join("f"), "x").unwrap();
            s.path().to_owned()
        };
        assert!(!p.exists());
        assert!(!e.is_complete());
    }

    #[tokio::test]
    async fn a_lock_wait_names_the_holder_and_gives_up() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let held = lock(&p, "the test", Duration::from_secs(1), |_| {})
            .await
            .unwrap();
        let err = lock(&p, "the test", Duration::from_millis(500), |_| {})
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("gave up") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(lock(&p, "the test", Duration::from_secs(1), |_| {})
            .await
            .is_ok());
    }
}
