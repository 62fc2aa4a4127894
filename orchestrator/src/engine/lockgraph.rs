//! lockdep's dependency graph and lock chains after the stress, kept in the cell folder
//! for the comparison with the base cell. When the liveness step runs, the host reads
//! them while the step waits for the hung-task detector, off the cell's critical path
//! (two round trips and the guest's ~0.3 s of printing them under emulation). By then
//! the step's module has added its two classes and lockdep, having reported their
//! inversion, has turned itself off: the graph is frozen, and what the module added is
//! taken out (`without_liveness`), so every cell keeps the graph its tests left plus the
//! module loading path, the same in base and patched cells. Without the step the files
//! are read at once.

use super::boot::BootSession;
use super::run::CellRun;
use crate::host::guest::{self, Exec, ExecResult};
use crate::record::result::LIVENESS_TAG;
use std::sync::Arc;
use std::time::Duration;

/// The most of each lockdep file a guest may hand over (the real ones here: ~0.1 MiB).
const KEEP: usize = 32 << 20;

/// Each file: the guest's /proc file and the cell file.
const FILES: [(&str, &str); 2] = [
    ("/proc/lockdep", "lockdep.txt"),
    ("/proc/lockdep_chains", "lockdep_chains.txt"),
];

/// What `fetch` got per file: the guest file's name, the cell file's, the command's result.
pub type Fetched = Vec<(&'static str, &'static str, Result<ExecResult, String>)>;

/// Read both files over SSH (blocking).
pub fn fetch(ssh: &ssh2::Session) -> Fetched {
    FILES
        .iter()
        .map(|&(file, name)| {
            let got = guest::exec(
                ssh,
                &format!("cat {file}"),
                Exec {
                    keep: KEEP,
                    ..Exec::quick(Duration::from_secs(60))
                },
            )
            .map_err(|e| e.to_string());
            (file, name, got)
        })
        .collect()
}

/// `fetch` on a blocking thread.
pub fn spawn_fetch(ssh: &Arc<ssh2::Session>) -> tokio::task::JoinHandle<Fetched> {
    let ssh = ssh.clone();
    tokio::task::spawn_blocking(move || fetch(&ssh))
}

/// A lockdep file without what the liveness module added: its classes' entries of
/// `/proc/lockdep` (a class line and its ` -> ` dependencies, a blank line after each)
/// and the dependencies on them, and every chain of `/proc/lockdep_chains` (blocks
/// separated by blank lines) that holds one of them.
pub fn without_liveness(text: &str) -> String {
    let tagged = |l: &str| l.contains(LIVENESS_TAG);
    let mut out = String::with_capacity(text.len());
    for block in text.split_inclusive("\n\n") {
        let head = block.lines().find(|l| !l.starts_with("all lock "));
        let chain = head.is_some_and(|l| l.starts_with("irq_context:"));
        if head.is_some_and(tagged) || (chain && block.lines().any(tagged)) {
            // The file's title line, when it heads a dropped block, stays.
            if let Some(title) = block.lines().next().filter(|l| l.starts_with("all lock ")) {
                out.push_str(title);
                out.push('\n');
            }
            continue;
        }
        for l in block.split_inclusive('\n') {
            if !tagged(l) {
                out.push_str(l);
            }
        }
    }
    out
}

impl CellRun<'_> {
    /// Read the graph from /proc now (no liveness step to overlap with).
    pub async fn save_lock_graph(&mut self, s: &BootSession) {
        if !self.facts.lockdep {
            return;
        }
        if let Ok(got) = spawn_fetch(&s.ssh).await {
            self.store_lock_graph(got, false);
        }
    }

    /// Write what was fetched into the cell folder (`after_liveness`: without what the
    /// module added); a file larger than `KEEP` is cut, and the cut said in the notes.
    pub fn store_lock_graph(&mut self, got: Fetched, after_liveness: bool) {
        for (file, name, r) in got {
            let Ok(r) = r else { continue };
            if r.exit_status == 0 {
                let text = if after_liveness {
                    without_liveness(&r.output)
                } else {
                    r.output
                };
                let _ = crate::host::cache::write_atomic(&self.dir.join(name), text.as_bytes());
            }
            if r.bytes > KEEP as u64 {
                // The guest's file, however big: its first part is what is compared.
                let n = format!(
                    "the guest's {file} was larger than {} MiB: only its first part was kept, \
                     so the lock graph compared with base is partial",
                    KEEP >> 20
                );
                self.note(n.clone());
                self.result.notes.push(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_liveness_classes_leave_both_files() {
        let lockdep = "all lock classes:\n\
            01 FD:    2 BD:    1 +.+.: cpu_hotplug_lock\n -> [02] text_mutex\n -> [aa] kmatrix_liveness_a\n\n\
            aa FD:    1 BD:    1 +.+.: kmatrix_liveness_a\n -> [bb] kmatrix_liveness_b\n\n\
            bb FD:    0 BD:    2 +.+.: kmatrix_liveness_b\n\n\
            02 FD:    0 BD:    2 +.+.: text_mutex\n\n";
        assert_eq!(
            without_liveness(lockdep),
            "all lock classes:\n\
             01 FD:    2 BD:    1 +.+.: cpu_hotplug_lock\n -> [02] text_mutex\n\n\
             02 FD:    0 BD:    2 +.+.: text_mutex\n\n"
        );
        let chains = "all lock chains:\nirq_context: 0\n[aa] kmatrix_liveness_a\n\n\
            irq_context: 0\n[01] cpu_hotplug_lock\n\n\
            irq_context: 0\n[01] cpu_hotplug_lock\n[bb] kmatrix_liveness_b\n\n\
            irq_context: 0\n[02] text_mutex\n\n";
        assert_eq!(
            without_liveness(chains),
            "all lock chains:\nirq_context: 0\n[01] cpu_hotplug_lock\n\n\
             irq_context: 0\n[02] text_mutex\n\n"
        );
        // A graph the module never touched is kept byte for byte.
        let plain = "all lock classes:\n01 FD:    1 BD:    1 +.+.: a\n -> [02] b\n\n";
        assert_eq!(without_liveness(plain), plain);
    }
}
