//! `kmatrix report`: every output rendered again from a run folder, or the run as a
//! KCIDB document.

use crate::cli::error::CliError;
use crate::record::verdict::exit;
use std::path::Path;

/// Re-render every output of a run folder; print its matrix.
pub fn render(run_dir: &Path) -> Result<i32, CliError> {
    let bad = |source| CliError::RunFolder {
        path: run_dir.to_owned(),
        source,
    };
    let (spec, cells) = crate::report::load_results(run_dir).map_err(bad)?;
    // What the outputs are rendered with, checked before any is rewritten.
    crate::spec::known::KnownIssues::of_run(run_dir).map_err(bad)?;
    crate::judge::compare::of_run(run_dir).map_err(bad)?;
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
/// Exit 0 once it is printed: the verdicts are in the document. The checkouts' patchset
/// hashes need the run's spec (`--kcidb-spec`): the spec path results.json names is never
/// opened, since the run folder may come from anywhere.
pub fn kcidb(
    run_dir: &Path,
    origin: &str,
    url: Option<String>,
    spec: Option<&Path>,
) -> Result<i32, CliError> {
    // `runs/latest` names the run by the folder it points to.
    let dir = std::fs::canonicalize(run_dir).map_err(|source| CliError::RunFolder {
        path: run_dir.to_owned(),
        source,
    })?;
    let (meta, cells) =
        crate::report::load_results(&dir).map_err(|source| CliError::RunFolder {
            path: run_dir.to_owned(),
            source,
        })?;
    let mut opts = crate::report::kcidb::Options::new(origin);
    opts.url = url;
    // The series' patches for the patchset hash, when the spec given is the run's.
    if let Some(spec) = spec {
        let plan = crate::spec::load(spec)?;
        if plan.spec_hash != meta.spec_hash {
            return Err(CliError::Usage(format!(
                "--kcidb-spec {} is not the spec {} ran (its hash differs): give the spec the run was made with",
                spec.display(),
                run_dir.display()
            )));
        }
        for c in &plan.cells {
            opts.patchsets
                .insert(c.patchset.clone(), c.series(&plan).cloned().collect());
        }
    }
    let doc = crate::report::kcidb::render(&meta, &cells, &dir, &opts)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).map_err(|e| CliError::Internal(e.to_string()))?
    );
    Ok(exit::PASS)
}
