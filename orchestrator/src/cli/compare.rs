//! `kmatrix compare OLD_RUN NEW_RUN`: load both runs, compare them (`judge::compare`),
//! print the comparison, keep it in the new run and re-render that run's outputs.

use crate::judge::compare::{compare, write};
use crate::spec::known::{self, KnownIssues};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cannot read the run {path}: {source}; give a run folder (one with results.json)")]
    Load {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Known(#[from] known::KnownError),
    #[error("cannot write the comparison into {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CompareError {
    /// Exit code: a folder that is not a run, or a bad list, is the caller's to fix.
    pub fn exit_code(&self) -> i32 {
        match self {
            CompareError::Write { .. } => crate::record::verdict::exit::INFRA,
            _ => crate::record::verdict::exit::USAGE,
        }
    }
}

/// `kmatrix compare`: load both runs, compare, print, write `compare.json` into the new
/// run and re-render its outputs (the comparison on top). `known_file` replaces the new
/// run's own list for the comparison (the run's outputs keep theirs). Returns the exit
/// code.
pub fn run(old_dir: &Path, new_dir: &Path, known_file: Option<&Path>) -> Result<i32, CompareError> {
    let load = |dir: &Path| {
        crate::report::load_results(dir).map_err(|source| CompareError::Load {
            path: dir.to_owned(),
            source,
        })
    };
    let (_, old) = load(old_dir)?;
    let (meta, new) = load(new_dir)?;
    let known = match known_file {
        Some(f) => KnownIssues::load(f)?,
        None => KnownIssues::of_run(new_dir).map_err(|source| CompareError::Load {
            path: new_dir.join(known::FILE),
            source,
        })?,
    };
    let cmp = compare(old_dir, &old, new_dir, &new, &known);
    print!("{}", crate::report::text::comparison(&cmp));
    let werr = |source| CompareError::Write {
        path: new_dir.to_owned(),
        source,
    };
    write(new_dir, &cmp).map_err(werr)?;
    crate::report::write_results(new_dir, &meta, &new).map_err(werr)?;
    Ok(cmp.exit_code())
}
