//! What can go wrong at the top, and the documented exit code of each.

use crate::record::verdict::exit;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Bisect(#[from] crate::cli::bisect::BisectError),
    #[error(transparent)]
    Compare(#[from] crate::cli::compare::CompareError),
    #[error("--only `{0}`: {1}")]
    Glob(String, String),
    #[error("--only {0:?} selects no cell; `kmatrix plan` lists the cell ids")]
    NoCells(Vec<String>),
    #[error("cannot merge: {0}")]
    Merge(String),
    /// Arguments that do not go together, said in full.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Kcidb(#[from] crate::report::kcidb::KcidbError),
    #[error("--tree {}: {why}", path.display())]
    Tree { path: PathBuf, why: String },
    #[error(transparent)]
    Series(Box<crate::prepare::series::SeriesError>),
    /// kmatrix itself failed (a task panicked): exit 3, never a silent pass.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    RunDir(#[from] crate::host::rundir::RunDirError),
    /// A cell folder whose path leaves no room for the VM's sockets: said before any build.
    #[error(
        "the run folder's path is too long for the VM's sockets: {} would be {len} bytes, a UNIX socket's path holds at most {}; pass a shorter --runs-dir",
        path.display(),
        crate::vm::SOCKET_PATH_MAX
    )]
    SocketPath { path: PathBuf, len: usize },
    /// A run folder given to read (report, merge) that is not one kmatrix wrote, or a
    /// file in it refused as untrusted input: the source names the file and why.
    #[error("cannot use the run folder {}", path.display())]
    RunFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A result file could not be written (disk full, read-only): the error names it.
    #[error("{error}; {hint}")]
    Write {
        error: std::io::Error,
        hint: &'static str,
    },
}

impl From<crate::prepare::series::SeriesError> for CliError {
    fn from(e: crate::prepare::series::SeriesError) -> Self {
        CliError::Series(Box::new(e))
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Bisect(e) => e.exit_code(),
            CliError::Compare(e) => e.exit_code(),
            CliError::Io { .. }
            | CliError::RunDir(_)
            | CliError::Write { .. }
            | CliError::Internal(_) => exit::INFRA,
            CliError::Series(e) if !e.is_usage() => exit::INFRA,
            _ => exit::USAGE,
        }
    }
}
