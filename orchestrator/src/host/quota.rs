//! The results share on a filesystem of its own: a tmpfs with the cell's byte limit and
//! an inode limit mounted on the cell's `results/` for as long as the cell runs, so a
//! guest that writes without end, or makes a million empty files, meets ENOSPC on the
//! host's behalf, between tests as much as during them. When the cell ends (and on every
//! exit path that drops it) what the share holds is copied onto the disk under the same
//! folder and the tmpfs goes. Mounting needs root; without it the engine falls back to
//! watching the folder's size (`engine::guest_tests`), and says so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Most files and folders a results share may hold (each test writes a handful; the
/// sanitising walk keeps as many).
pub const INODES: u64 = 10_000;

/// A mounted results share; unmounted, its contents kept, when dropped.
#[derive(Debug)]
pub struct ResultsMount {
    dir: PathBuf,
    mounted: bool,
}

impl ResultsMount {
    /// Mount a tmpfs of `bytes` and `inodes` on `dir` (created if needed, empty).
    pub fn mount(dir: &Path, bytes: u64, inodes: u64) -> Result<ResultsMount, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root: a quota mount needs CAP_SYS_ADMIN".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = std::fs::metadata(dir)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o755);
        use nix::mount::MsFlags;
        nix::mount::mount(
            Some("kmatrix-results"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("size={},nr_inodes={inodes},mode={mode:o}", bytes.max(4096)).as_str()),
        )
        .map_err(|e| format!("mount tmpfs on {}: {e}", dir.display()))?;
        Ok(ResultsMount {
            dir: dir.to_owned(),
            mounted: true,
        })
    }

    /// Whether the guest filled the share (bytes or files): what to say if it did.
    pub fn full(&self) -> Option<String> {
        let st = nix::sys::statvfs::statvfs(&self.dir).ok()?;
        let (free_files, free_blocks) = (st.files_free(), st.blocks_free());
        let used_files = st.files().saturating_sub(free_files);
        let used_bytes = st.blocks().saturating_sub(free_blocks) * st.fragment_size();
        // A share within a few blocks of its size is full for any real write.
        (free_files == 0 || free_blocks <= 2).then(|| {
            format!(
                "the results share was full ({used_files} files and folders, {used_bytes} bytes): the guest's writes past it failed (ENOSPC)"
            )
        })
    }

    /// Copy what the share holds to the disk under the same folder and unmount. Only
    /// folders and regular files are copied (the share was sanitised after each boot;
    /// anything else is left behind with the tmpfs).
    pub fn keep(&mut self) -> std::io::Result<()> {
        if !self.mounted {
            return Ok(());
        }
        let parent = self.dir.parent().unwrap_or(Path::new("/"));
        let staging = tempfile::Builder::new()
            .prefix(".results-kept.")
            .tempdir_in(parent)?;
        copy_plain(&self.dir, staging.path())?;
        nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH)
            .map_err(std::io::Error::from)?;
        self.mounted = false;
        // The mount point is an empty folder again: the kept copy takes its place.
        let staging = staging.keep();
        std::fs::remove_dir(&self.dir)?;
        std::fs::rename(&staging, &self.dir)
    }
}

impl Drop for ResultsMount {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = self.keep() {
                eprintln!(
                    "kmatrix: could not keep the results share {}: {e}",
                    self.dir.display()
                );
                let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Folders and regular files of `from` into `to`, never following a link.
fn copy_plain(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut stack = vec![(from.to_owned(), to.to_owned())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst)?;
        for e in std::fs::read_dir(&src)?.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let target = dst.join(e.file_name());
            if ft.is_dir() {
                stack.push((e.path(), target));
            } else if ft.is_file() {
                std::fs::copy(e.path(), &target)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share refuses what is past its limits, and its contents outlive the mount.
    #[test]
    fn a_quota_mount_stops_a_writer_and_keeps_what_was_written() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "SKIP: a_quota_mount_stops_a_writer_and_keeps_what_was_written needs root (mount)"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("results");
        let mut m = ResultsMount::mount(&dir, 64 << 10, 32).unwrap();
        std::fs::write(dir.join("kept.ktap"), "TAP version 13\n").unwrap();
        let big = std::fs::write(dir.join("big"), vec![0u8; 1 << 20]);
        assert_eq!(big.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        let mut made = 0;
        for i in 0..1000 {
            if std::fs::write(dir.join(format!("e{i}")), "").is_err() {
                break;
            }
            made += 1;
        }
        assert!(
            made < 40,
            "the inode limit stopped the empty files at {made}"
        );
        m.keep().unwrap();
        let mounted = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounted.contains(dir.to_str().unwrap()));
        assert_eq!(
            std::fs::read_to_string(dir.join("kept.ktap")).unwrap(),
            "TAP version 13\n"
        );
    }
}
