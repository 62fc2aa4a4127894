//! The host's `gcov` (the arch's: `aarch64-linux-gnu-gcov` for arm64 kernels, of the
//! same gcc as the kernel's compiler) in JSON mode, on one object's notes (`.gcno`, from
//! the build) and, for a test, the counters the guest copied out of
//! `/sys/kernel/debug/gcov` (`.gcda`). Without counters, gcov reports every line that
//! has code with a count of 0: that is how the build's executable lines are known.

use crate::host::proc::{self, ProcSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A counters file larger than this is not the guest's honest output.
pub const MAX_GCDA: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GcovError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes, more than a counters file can be")]
    TooLarge { path: String, size: u64 },
    #[error(transparent)]
    Run(#[from] proc::ProcError),
    #[error("gcov's JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// gcov's JSON (format 1 and 2; only what kmatrix reads).
#[derive(Debug, Deserialize)]
struct Output {
    #[serde(default)]
    files: Vec<RawFile>,
}

#[derive(Debug, Deserialize)]
struct RawFile {
    file: String,
    #[serde(default)]
    lines: Vec<RawLine>,
    #[serde(default)]
    functions: Vec<RawFunction>,
}

#[derive(Debug, Deserialize)]
struct RawLine {
    line_number: usize,
    count: u64,
}

#[derive(Debug, Deserialize)]
struct RawFunction {
    name: String,
    start_line: usize,
    end_line: usize,
    execution_count: u64,
}

/// One source file as an object's notes see it: the count of each line with code (a
/// line shared by several functions, an inline one expanded twice, counts once per
/// copy, summed), and the functions defined in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceCounts {
    pub lines: BTreeMap<usize, u64>,
    pub functions: Vec<Function>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub start: usize,
    pub end: usize,
    pub calls: u64,
}

/// gcov's JSON for one object -> its source files by the path the compiler used.
pub fn parse(json: &str) -> Result<BTreeMap<String, SourceCounts>, GcovError> {
    let mut out: BTreeMap<String, SourceCounts> = BTreeMap::new();
    // `--stdout` prints one document per data file; kmatrix gives one, but a document
    // per line is read all the same.
    for doc in serde_json::Deserializer::from_str(json).into_iter::<Output>() {
        for f in doc?.files {
            let e = out.entry(f.file).or_default();
            for l in f.lines {
                *e.lines.entry(l.line_number).or_default() += l.count;
            }
            for func in f.functions {
                e.functions.push(Function {
                    name: func.name,
                    start: func.start_line,
                    end: func.end_line,
                    calls: func.execution_count,
                });
            }
        }
    }
    Ok(out)
}

/// Whether the compiler's path for a source file (absolute in an `O=` build, or
/// relative) is the tree's `rel`.
pub fn same_file(compiled: &str, rel: &str) -> bool {
    compiled == rel
        || compiled
            .strip_suffix(rel)
            .is_some_and(|head| head.ends_with('/'))
}

/// The gcov program for kernels of a cross prefix (`""` or `aarch64-linux-gnu-`).
pub fn program(cross_prefix: &str) -> String {
    format!("{cross_prefix}gcov")
}

/// Run `gcov` on one object's notes and (for a test) its counters, in a private folder
/// (gcov wants them side by side under one name). The counters come from the guest:
/// bounded, and read only as a regular file.
pub async fn run(
    gcov: &str,
    notes: &Path,
    counters: Option<&Path>,
) -> Result<BTreeMap<String, SourceCounts>, GcovError> {
    let dir = tempfile::tempdir().map_err(|source| GcovError::Io {
        path: "temporary folder".into(),
        source,
    })?;
    let copy = |from: &Path, to: &str| -> Result<(), GcovError> {
        let io = |source| GcovError::Io {
            path: from.display().to_string(),
            source,
        };
        let meta = std::fs::symlink_metadata(from).map_err(io)?;
        if !meta.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        if meta.len() > MAX_GCDA {
            return Err(GcovError::TooLarge {
                path: from.display().to_string(),
                size: meta.len(),
            });
        }
        std::fs::copy(from, dir.path().join(to)).map_err(io)?;
        Ok(())
    };
    copy(notes, "o.gcno")?;
    if let Some(c) = counters {
        copy(c, "o.gcda")?;
    }
    // Without counters gcov says so on stderr ("assuming not executed") and goes on.
    let json = proc::output(
        &ProcSpec::new(gcov)
            .arg("--json-format")
            .arg("--stdout")
            .arg("o.gcda")
            .cwd(dir.path())
            .timeout(Duration::from_secs(120)),
    )
    .await?;
    parse(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_lines_are_summed_and_functions_kept() {
        // From gcc 12's gcov on a file whose inline function was expanded in main.
        let json = r#"{"gcc_version": "12.2.0", "files": [{"lines": [{"branches": [], "count": 0, "line_number": 2, "unexecuted_block": true}, {"branches": [], "count": 0, "line_number": 6, "unexecuted_block": true, "function_name": "f"}, {"branches": [], "count": 5, "line_number": 6, "unexecuted_block": false, "function_name": "main"}, {"branches": [], "count": 6, "line_number": 12, "unexecuted_block": false, "function_name": "main"}], "functions": [{"blocks": 3, "end_column": 1, "start_line": 3, "name": "f", "blocks_executed": 0, "execution_count": 0, "demangled_name": "f", "start_column": 5, "end_line": 11}], "file": "../t.c"}], "format_version": "1", "current_working_directory": "/tmp/gc/obj", "data_file": "t.gcda"}"#;
        let p = parse(json).unwrap();
        let t = &p["../t.c"];
        assert_eq!(
            t.lines.iter().map(|(l, c)| (*l, *c)).collect::<Vec<_>>(),
            [(2, 0), (6, 5), (12, 6)]
        );
        assert_eq!(
            t.functions,
            [Function {
                name: "f".into(),
                start: 3,
                end: 11,
                calls: 0
            }]
        );
    }

    #[test]
    fn paths_match_by_whole_components() {
        assert!(same_file("/s/tree/mm/mmap_lock.c", "mm/mmap_lock.c"));
        assert!(same_file("mm/mmap_lock.c", "mm/mmap_lock.c"));
        assert!(!same_file("/s/tree/xmm/mmap_lock.c", "mm/mmap_lock.c"));
        assert!(!same_file("/s/tree/mm/mmap_lock.c.orig", "mm/mmap_lock.c"));
    }
}
