//! The lock graph's noise, learnt per base kernel: two boots of one kernel never take
//! exactly the same lock dependencies (which lock an interrupt, a wakeup or a worker
//! found held depends on timing), so an edge the patched cell took and its base cell
//! did not is no evidence by itself. Edges seen to come and go between boots of a base
//! kernel (its `--repeat` boots, or a patched cell that runs the very same kernel) are
//! kept in `<cache>/lockgraph-noise/<kernel key>.json` and never shown as new against
//! that kernel again.
//!
//! Concurrent runs may each add to one file: each merges what is there before writing
//! it whole (atomically); a learnt edge lost to a race is learnt again.

use crate::judge::lockgraph::Edge;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The folder of the cache the files live in.
pub const DIR: &str = "lockgraph-noise";
/// Most edges kept per kernel (lockdep's own table holds 32768 by default).
const MAX_EDGES: usize = 65_536;
/// The most of a noise file read.
const FILE_CAP: u64 = 16 << 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct File {
    kernel_key: String,
    edges: BTreeSet<Edge>,
}

/// The noise file of the kernel `key` under the cache `root`; None for a key that is
/// not a plain name (kernel keys are hex).
pub fn path(root: &Path, key: &str) -> Option<PathBuf> {
    let plain = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| root.join(DIR).join(format!("{key}.json")))
}

/// The edges learnt so far (none when the file is missing or unreadable).
pub fn load(path: &Path) -> BTreeSet<Edge> {
    crate::host::runfile::read_given_string(path, FILE_CAP, "a lock graph noise file")
        .ok()
        .and_then(|t| serde_json::from_str::<File>(&t).ok())
        .map(|f| f.edges)
        .unwrap_or_default()
}

/// Add `learnt` to the file of kernel `key` at `path`; how many edges it now holds.
pub fn add(path: &Path, key: &str, learnt: &BTreeSet<Edge>) -> std::io::Result<usize> {
    let mut edges = load(path);
    for e in learnt {
        if edges.len() >= MAX_EDGES {
            break;
        }
        edges.insert(e.clone());
    }
    let f = File {
        kernel_key: key.to_string(),
        edges,
    };
    let json = serde_json::to_vec_pretty(&f).map_err(std::io::Error::other)?;
    crate::host::cache::write_atomic(path, &json)?;
    Ok(f.edges.len())
}

/// `/proc/lockdep` of every boot of a cell folder: each `repeat-N/lockdep.txt` when
/// the cell repeated (its own copy is one of them), else its own.
pub fn boot_files(dir: &Path, cap: u64) -> Vec<String> {
    // A run folder is untrusted: no link followed, a regular file under the cap.
    let read = |d: &Path| crate::host::runfile::read_string(d, "lockdep.txt", cap).ok();
    let mut repeats: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e
                .file_name()
                .to_str()?
                .strip_prefix("repeat-")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    repeats.sort();
    let boots: Vec<String> = repeats.iter().filter_map(|(_, d)| read(d)).collect();
    if boots.is_empty() {
        read(dir).into_iter().collect()
    } else {
        boots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learnt_edges_are_merged_into_the_kernels_file() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(path(d.path(), "../x"), None);
        let p = path(d.path(), "abc123").unwrap();
        assert!(load(&p).is_empty());
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            add(&p, "abc123", &BTreeSet::from([e("a", "b")])).unwrap(),
            1
        );
        assert_eq!(
            add(&p, "abc123", &BTreeSet::from([e("a", "b"), e("c", "d")])).unwrap(),
            2
        );
        assert_eq!(load(&p), BTreeSet::from([e("a", "b"), e("c", "d")]));
    }

    #[test]
    fn every_boot_of_a_repeated_cell_is_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("lockdep.txt"), "own").unwrap();
        assert_eq!(boot_files(d.path(), 1 << 20), ["own"]);
        for i in [2, 1] {
            let r = d.path().join(format!("repeat-{i}"));
            std::fs::create_dir(&r).unwrap();
            std::fs::write(r.join("lockdep.txt"), format!("boot {i}")).unwrap();
        }
        assert_eq!(boot_files(d.path(), 1 << 20), ["boot 1", "boot 2"]);
    }
}
