//! Every result file of a run, written from its cells.

use crate::record::result::CellResult;
use crate::report::results::RunMeta;
use std::path::Path;

/// Write every result file of a run: results.json, junit.xml, summary.md, report.html,
/// matrix.txt; each atomically, so an interrupted run keeps a consistent set. The run
/// folder's own known-issues list (`known-issues.yaml`) marks known findings, and a
/// comparison `kmatrix compare` left there (`compare.json`) goes on top of summary.md
/// and report.html.
pub fn write_results(run_dir: &Path, meta: &RunMeta, cells: &[CellResult]) -> std::io::Result<()> {
    let known = crate::spec::known::KnownIssues::of_run(run_dir)?;
    let compare = crate::judge::compare::of_run(run_dir)?;
    crate::report::results::write(run_dir, meta, cells)?;
    crate::host::rundir::write(
        run_dir,
        "junit.xml",
        crate::report::junit::render_with(cells, &known).as_bytes(),
    )?;
    crate::host::rundir::write(
        run_dir,
        "summary.md",
        crate::report::markdown::render_with(cells, &known, compare.as_ref()).as_bytes(),
    )?;
    let title = format!("kmatrix: {}", meta.spec.display());
    crate::host::rundir::write(
        run_dir,
        "report.html",
        crate::report::html::render_with(cells, &title, run_dir, &known, compare.as_ref())
            .as_bytes(),
    )?;
    crate::host::rundir::write(
        run_dir,
        "matrix.txt",
        crate::report::text::matrix_with(cells, &known).as_bytes(),
    )
}
