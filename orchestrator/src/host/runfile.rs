//! Files of a run folder read as untrusted input. A run folder may come from anywhere
//! (shards downloaded from CI and given to `merge`, `report`, `compare`; any folder
//! `kmatrix mcp` is pointed at), so every file in it is opened beneath its folder
//! without following a link on any part of its path (`O_NOFOLLOW`), must be a regular
//! file (never a FIFO that hangs the reader or a device that never ends), and is read
//! only up to a cap. Every reader of a run folder goes through here.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

/// `results.json`: a cell's findings are capped per title, so even thousands of cells
/// stay far below this.
pub const RESULTS_MAX: u64 = 256 << 20;
/// `compare.json`: a row per title and cell.
pub const COMPARE_MAX: u64 = 64 << 20;
/// `known-issues.yaml`: a list written by hand.
pub const KNOWN_MAX: u64 = 4 << 20;
/// A cell's `findings.json`.
pub const FINDINGS_MAX: u64 = 64 << 20;
/// `bisect.json`: a step per patch.
pub const BISECT_MAX: u64 = 16 << 20;
/// A console log, read as a stream (its size is bounded by `limits.console` when kmatrix
/// wrote it; this bounds one that did not come from kmatrix).
pub const CONSOLE_MAX: u64 = 4 << 30;

/// What to do about a file refused here: the error says it after the why.
const HINT: &str = "kmatrix writes only regular files there: check where this run folder came from";

fn refused(path: &Path, why: String) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {why}; {HINT}", path.display()),
    )
}

fn errno(path: &Path, e: nix::errno::Errno) -> std::io::Error {
    match e {
        nix::errno::Errno::ELOOP => refused(
            path,
            "is a symbolic link (or lies under one), which kmatrix does not follow in a run folder"
                .into(),
        ),
        nix::errno::Errno::ENOTDIR => refused(
            path,
            "lies under a symbolic link or a file, which kmatrix does not follow in a run folder"
                .into(),
        ),
        e => {
            let e = std::io::Error::from(e);
            std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        }
    }
}

/// What a file type is called in an error.
fn kind_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "a folder",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "not a regular file",
    }
}

/// The folder holding `rel` beneath `dir`, reached without following a link, and the
/// status of `rel` itself (not followed either).
fn walk(
    dir: &Path,
    rel: &Path,
) -> std::io::Result<(OwnedFd, std::ffi::OsString, nix::sys::stat::FileStat)> {
    use nix::fcntl::{openat, AtFlags, OFlag};
    use nix::sys::stat::{fstatat, Mode};
    let path = dir.join(rel);
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            _ => Err(refused(
                &path,
                "is not a plain path inside its run folder".into(),
            )),
        })
        .collect::<Result<_, _>>()?;
    let Some((last, folders)) = parts.split_last() else {
        return Err(refused(&path, "names no file".into()));
    };
    let mut fd: OwnedFd = File::open(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .into();
    for f in folders {
        fd = openat(
            &fd,
            *f,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| errno(&path, e))?;
    }
    let st = fstatat(&fd, *last, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| errno(&path, e))?;
    Ok((fd, last.to_os_string(), st))
}

/// Is `rel` beneath `dir` a regular file reached without a link (what a report may link
/// to: a browser would follow a link out of the run folder)?
pub fn is_plain_file(dir: &Path, rel: impl AsRef<Path>) -> bool {
    walk(dir, rel.as_ref()).is_ok_and(|(_, _, st)| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

/// Open `rel` beneath `dir` (itself as the user named it: `runs/latest` is a link) for
/// reading: no link followed on the way, a regular file of at most `cap` bytes. A
/// missing file is an error of kind `NotFound`.
pub fn open(dir: &Path, rel: impl AsRef<Path>, cap: u64) -> std::io::Result<File> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let rel = rel.as_ref();
    let path = dir.join(rel);
    // Look before opening: opening a FIFO waits for a writer, opening a device may act.
    let (fd, last, st) = walk(dir, rel)?;
    check(&path, st.st_mode, st.st_size as u64, cap)?;
    let file: File = openat(
        &fd,
        last.as_os_str(),
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| errno(&path, e))?
    .into();
    // And again what was opened: it may have been swapped since.
    let m = file.metadata()?;
    use std::os::unix::fs::MetadataExt;
    check(&path, m.mode(), m.len(), cap)?;
    Ok(file)
}

/// A file the user named (a spec, a series, a fragment, a log to parse): links followed,
/// as the user's own files may be, but it must be a regular file of at most `cap` bytes
/// (a FIFO would hang the reader, `/dev/zero` never ends). `what` says what it is for.
pub fn read_given(path: &Path, cap: u64, what: &str) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let named =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let m = std::fs::metadata(path).map_err(named)?;
    let limit = |mode: u32, len: u64| -> std::io::Result<()> {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: is {}, not a regular file ({what} must be one)",
                    path.display(),
                    kind_name(mode)
                ),
            ));
        }
        if len > cap {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: is {len} bytes, more than the {cap} {what} may be",
                    path.display()
                ),
            ));
        }
        Ok(())
    };
    limit(m.mode(), m.len())?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(named)?;
    let m = f.metadata().map_err(named)?;
    limit(m.mode(), m.len())?;
    let mut buf = Vec::new();
    f.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(named)?;
    limit(m.mode(), buf.len() as u64)?;
    Ok(buf)
}

/// [`read_given`] as UTF-8 text.
pub fn read_given_string(path: &Path, cap: u64, what: &str) -> std::io::Result<String> {
    String::from_utf8(read_given(path, cap, what)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: is not UTF-8 text", path.display()),
        )
    })
}

fn check(path: &Path, mode: u32, len: u64, cap: u64) -> std::io::Result<()> {
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Err(refused(
            path,
            format!("is {}, not a regular file", kind_name(mode)),
        ));
    }
    if len > cap {
        return Err(refused(
            path,
            format!("is {len} bytes, more than the {cap} kmatrix reads of such a file"),
        ));
    }
    Ok(())
}

/// The whole of `rel` beneath `dir` (see [`open`]), at most `cap` bytes even if it
/// grows while read.
pub fn read(dir: &Path, rel: impl AsRef<Path>, cap: u64) -> std::io::Result<Vec<u8>> {
    let rel = rel.as_ref();
    let f = open(dir, rel, cap)?;
    let mut buf = Vec::new();
    f.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(refused(
            &dir.join(rel),
            format!("grew past the {cap} bytes kmatrix reads of such a file"),
        ));
    }
    Ok(buf)
}

/// [`read`] as text (UTF-8, or an error naming the file).
pub fn read_string(dir: &Path, rel: impl AsRef<Path>, cap: u64) -> std::io::Result<String> {
    let rel = rel.as_ref();
    String::from_utf8(read(dir, rel, cap)?)
        .map_err(|_| refused(&dir.join(rel), "is not UTF-8 text".into()))
}

/// [`read_string`], `None` when the file is not there (an optional file of a run).
pub fn read_optional(
    dir: &Path,
    rel: impl AsRef<Path>,
    cap: u64,
) -> std::io::Result<Option<String>> {
    match read_string(dir, rel, cap) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn err(dir: &Path, rel: &str) -> String {
        read(dir, rel, 100).unwrap_err().to_string()
    }

    #[test]
    fn only_regular_files_under_the_cap_beneath_the_folder_are_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("ok.json"), "{}").unwrap();
        std::fs::create_dir(p.join("cell")).unwrap();
        std::fs::write(p.join("cell/f.json"), "[]").unwrap();
        assert_eq!(read(p, "ok.json", 100).unwrap(), b"{}");
        assert_eq!(read_string(p, "cell/f.json", 100).unwrap(), "[]");

        symlink("/etc/passwd", p.join("link")).unwrap();
        assert!(
            err(p, "link").contains("symbolic link"),
            "{}",
            err(p, "link")
        );
        symlink(p.join("cell"), p.join("dirlink")).unwrap();
        assert!(err(p, "dirlink/f.json").contains("symbolic link"));
        nix::unistd::mkfifo(&p.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = err(p, "fifo");
        assert!(
            e.contains("is a FIFO, not a regular file") && e.contains("fifo"),
            "{e}"
        );
        assert!(err(p, "cell").contains("a folder"));
        std::fs::write(p.join("big"), vec![b'x'; 101]).unwrap();
        assert!(err(p, "big").contains("101 bytes, more than the 100"));
        assert!(err(p, "../x").contains("not a plain path"));
        assert!(err(p, "/etc/passwd").contains("not a plain path"));
        std::fs::write(p.join("bin"), [0xff, 0xfe]).unwrap();
        assert!(read_string(p, "bin", 100)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        assert_eq!(
            read(p, "missing", 100).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
        assert_eq!(read_optional(p, "missing", 100).unwrap(), None);
        // The folder itself may be a link (`runs/latest`).
        symlink(p, d.path().join("latest")).unwrap();
        assert_eq!(read(&p.join("latest"), "ok.json", 100).unwrap(), b"{}");
    }
}
