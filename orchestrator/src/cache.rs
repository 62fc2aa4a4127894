//! The cache directory: downloaded packages, unpacked trees, build directories, kernels,
//! guest images and keys. `KMATRIX_CACHE`, else `$XDG_CACHE_HOME/kmatrix`, else
//! `~/.cache/kmatrix`.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
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

/// An exclusive advisory lock on `path` (created if missing), held until the guard is
/// dropped. Two kmatrix runs sharing a cache take turns on shared steps instead of
/// racing; waiting does not block the async runtime.
pub async fn lock(path: &Path) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((f, _)) => {
                file = f;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// Write a file atomically: temp file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    // A failed write (disk full) leaves neither a partial temp file nor a changed `path`.
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
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
}
