//! `kmatrix report`: every output rendered again from a run folder, or the run as a
//! KCIDB document.

use crate::cli::error::CliError;
use crate::record::verdict::exit;
use std::path::Path;

/// Re-render every output of a run folder; print its matrix.
pub fn render(run_dir: &Path) -> Result<i32, CliError> {
    let (spec, cells) = crate::report::load_results(run_dir).map_err(|source| CliError::Io {
        path: run_dir.to_owned(),
        source,
    })?;
    crate::report::write_results(run_dir, &spec, &cells).map_err(|error| CliError::Write {
        error,
        hint: "the files already there are unchanged; free space and rerun",
    })?;
    println!("{}", crate::report::matrix(&cells));
    Ok(crate::record::verdict::exit_code(
        &cells.iter().map(|c| c.verdict).collect::<Vec<_>>(),
    ))
}

/// `kmatrix report --kcidb`: the document on stdout, for `> file` or `| kcidb-submit`.
/// Exit 0 once it is printed: the verdicts are in the document.
pub fn kcidb(run_dir: &Path, origin: &str, url: Option<String>) -> Result<i32, CliError> {
    let io = |source| CliError::Io {
        path: run_dir.to_owned(),
        source,
    };
    // `runs/latest` names the run by the folder it points to.
    let dir = std::fs::canonicalize(run_dir).map_err(io)?;
    let (meta, cells) = crate::report::load_results(&dir).map_err(io)?;
    let mut opts = crate::report::kcidb::Options::new(origin);
    opts.url = url;
    // The series' patches for the patchset hash, when the spec is still the run's.
    match crate::spec::load(&meta.spec) {
        Ok(plan) if plan.spec_hash == meta.spec_hash => {
            for c in &plan.cells {
                opts.patchsets
                    .insert(c.patchset.clone(), c.series(&plan).cloned().collect());
            }
        }
        _ => eprintln!(
            "kmatrix: {} is not the run's spec any more: checkouts without patchset_hash",
            meta.spec.display()
        ),
    }
    let doc = crate::report::kcidb::render(&meta, &cells, &dir, &opts)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| CliError::Internal(e.to_string()))?
    );
    Ok(exit::PASS)
}
