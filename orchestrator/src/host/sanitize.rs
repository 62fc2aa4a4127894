//! What the guest wrote into its results share is data, never privilege: after each
//! boot the folder is walked and anything that could carry privilege or point outside it
//! is removed (symlinks, hard links to elsewhere, device nodes, FIFOs, sockets), setuid,
//! setgid and sticky bits and write-for-others are cleared, and files past the cell's
//! byte budget are removed. Each removal is reported as a note.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What the walk did, one line each (for the cell's notes).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub notes: Vec<String>,
    pub kept_bytes: u64,
    /// Notes not kept (past `MAX_NOTES`): a guest can leave thousands of entries.
    pub more: usize,
}

/// Most notes one walk keeps; the rest are counted in one line.
const MAX_NOTES: usize = 20;

impl Report {
    fn note(&mut self, line: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(line);
        } else {
            self.more += 1;
        }
    }
}

/// Deepest folder nesting kept (a guest can make very deep trees).
const MAX_DEPTH: usize = 32;
/// Most entries kept.
const MAX_ENTRIES: usize = 10_000;

/// Make `root` (a results share, after its virtiofsd stopped) safe to keep.
pub fn results_folder(root: &Path, budget: u64) -> Report {
    let mut r = Report::default();
    let mut entries = 0usize;
    let mut stack: Vec<(PathBuf, usize)> = vec![(root.to_owned(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<_> = rd.flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
            // Never follow anything: the entry itself is judged.
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            entries += 1;
            let ft = m.file_type();
            if let Some(what) = refused(&m, entries, depth) {
                let _ = if ft.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                r.note(format!(
                    "the guest left {what} at results/{}; removed",
                    rel.display()
                ));
                continue;
            }
            clear_privilege(&path, &rel, &m, &mut r);
            if ft.is_dir() {
                stack.push((path, depth + 1));
            } else if r.kept_bytes + m.len() > budget {
                let _ = std::fs::remove_file(&path);
                r.note(format!(
                    "results/{} ({} bytes) is past the cell's results limit of {budget} bytes; removed",
                    rel.display(),
                    m.len()
                ));
            } else {
                r.kept_bytes += m.len();
            }
        }
    }
    if r.more > 0 {
        r.notes.push(format!(
            "and {} more entries of the results share like those",
            r.more
        ));
    }
    r
}

/// What an entry is, when it is not kept: anything that could carry privilege or point
/// outside the folder, and what is past the limits of entries and depth.
fn refused(m: &std::fs::Metadata, entries: usize, depth: usize) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let ft = m.file_type();
    if ft.is_symlink() {
        Some("a symlink")
    } else if ft.is_block_device() || ft.is_char_device() {
        Some("a device node")
    } else if ft.is_fifo() {
        Some("a FIFO")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_file() && m.nlink() > 1 {
        // A hard link could make a host file look like a result.
        Some("a hard-linked file")
    } else if entries > MAX_ENTRIES {
        Some("an entry past the limit of 10000")
    } else if ft.is_dir() && depth >= MAX_DEPTH {
        Some("a folder nested too deep")
    } else {
        None
    }
}

/// No setuid, setgid or sticky bit; nothing writable by others. Setting such a bit is
/// noted.
fn clear_privilege(path: &Path, rel: &Path, m: &std::fs::Metadata, r: &mut Report) {
    let mode = m.permissions().mode();
    let safe = mode & 0o777 & !0o002;
    if mode & 0o7777 != safe {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(safe));
        if mode & 0o7000 != 0 {
            r.note(format!(
                "the guest set setuid/setgid/sticky bits on results/{}; cleared",
                rel.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_and_pointers_out_do_not_survive() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("results");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("ok.ktap"), "TAP version 13\n").unwrap();
        std::fs::write(root.join("x"), "binary").unwrap();
        std::fs::set_permissions(root.join("x"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::set_permissions(root.join("sub"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::os::unix::fs::symlink("/etc/shadow", root.join("s")).unwrap();
        nix::unistd::mkfifo(
            &root.join("sub/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .unwrap();
        std::fs::write(d.path().join("outside"), "host file").unwrap();
        std::fs::hard_link(d.path().join("outside"), root.join("hl")).unwrap();
        std::fs::write(root.join("big"), vec![0u8; 4096]).unwrap();
        let r = results_folder(&root, 100);
        let left: Vec<String> = walk(&root);
        assert_eq!(left, ["ok.ktap", "sub", "x"], "{:?}", r.notes);
        let mode = |p: &str| {
            std::fs::symlink_metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("x"), 0o755);
        assert_eq!(mode("sub"), 0o775, "no sticky bit, not writable by others");
        assert!(r.notes.iter().any(|n| n.contains("symlink at results/s")));
        assert!(r
            .notes
            .iter()
            .any(|n| n.contains("FIFO at results/sub/fifo")));
        assert!(r
            .notes
            .iter()
            .any(|n| n.contains("hard-linked file at results/hl")));
        assert!(r
            .notes
            .iter()
            .any(|n| n.contains("results/big") && n.contains("limit")));
        assert_eq!(
            std::fs::read_to_string(d.path().join("outside")).unwrap(),
            "host file"
        );
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Thousands of refused entries make a few notes, not thousands.
    #[test]
    fn notes_are_capped_and_the_rest_counted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("results");
        std::fs::create_dir_all(&root).unwrap();
        for i in 0..500 {
            std::os::unix::fs::symlink("/etc/shadow", root.join(format!("s{i}"))).unwrap();
        }
        let r = results_folder(&root, 1 << 20);
        assert_eq!(r.notes.len(), MAX_NOTES + 1);
        assert_eq!(r.more, 500 - MAX_NOTES);
        assert!(r.notes.last().unwrap().contains("480 more"));
        assert!(walk(&root).is_empty());
    }
}
