//! Run folders: made atomically and private to the user, and files written into them
//! whole (a reader never sees half a file).

use std::path::{Path, PathBuf};

/// A run folder could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the run folder {path}: {source}; pass a writable --runs-dir")]
pub struct RunDirError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A new folder `<runs>/<name>`, unique even for two invocations in the same second
/// (e.g. shards, or two `kmatrix boot`s): create_dir is atomic. Private to the invoking
/// user: it holds what guests wrote.
pub fn unique_dir(runs: &Path, name: &str) -> Result<PathBuf, RunDirError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::create_dir_all(runs).map_err(|source| RunDirError {
        path: runs.to_owned(),
        source,
    })?;
    let mut dir = runs.join(name);
    let mut n = 1;
    loop {
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                dir = runs.join(format!("{name}-{n}"));
            }
            Err(source) => return Err(RunDirError { path: dir, source }),
        }
    }
}

/// Write one output file atomically; the error names the file (with a full disk, which
/// one failed is the first question).
pub fn write(run_dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = run_dir.join(name);
    crate::host::cache::write_atomic(&path, bytes)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())))
}

/// The regular files of a folder, sorted (a module's sources, a test's files); the error
/// names the folder.
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Append text to a log file (best effort: logs are evidence, not control flow).
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}
