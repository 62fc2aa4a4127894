//! What is wrong with a spec, and the one naming rule every spec name follows.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}{}: `{key}`: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
}

/// One rule for every spec name that becomes part of a path, a cell id or a command line
/// (configs, patchsets, tests): letters, digits, `-`, `_` and `.`, not starting with `.`
/// or `-` (so never `..`, a hidden file or an option).
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{name}` may use only letters, digits, `-`, `_` and `.`, not start with `.` or `-`, and be at most 64 long (it becomes part of a path and a cell id)"
        ))
    }
}
