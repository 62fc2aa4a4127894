//! Reporters: sinks of the engine's one event stream. The terminal (progress bars on a
//! TTY, timestamped lines otherwise; `kmatrix boot` uses it too), `results.json`
//! rewritten atomically as each cell finishes, and `junit.xml`, `summary.md`,
//! `report.html` and `matrix.txt` written when the run ends (also after Ctrl-C).

pub mod html;
pub mod junit;
pub mod kcidb;
pub mod markdown;
pub mod results;
pub mod terminal;
pub mod text;

pub use results::{load_results, RunMeta, SCHEMA_VERSION};
pub use text::matrix;

use crate::record::events::Event;
use crate::record::result::CellResult;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the sinks share: the run's identity and the cells finished so far.
pub struct RunState {
    pub meta: RunMeta,
    pub run_dir: PathBuf,
    pub cells: Vec<CellResult>,
    /// The patchset findings are compared against (`baseline:`), marked at the end.
    pub baseline: Option<String>,
}

/// One consumer of the event stream.
pub trait Sink: Send {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()>;
}

/// `results.json` after every cell: what a killed run leaves behind. Each cell is
/// rendered once, when it finishes.
#[derive(Default)]
pub struct ResultsJson {
    rendered: Vec<String>,
}

impl Sink for ResultsJson {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()> {
        match e {
            Event::CellFinished { result } => {
                self.rendered.push(results::render_cell(result));
                results::write_rendered(&run.run_dir, &run.meta, &self.rendered)
            }
            _ => Ok(()),
        }
    }
}

/// Every file, once the run is over (finished or interrupted).
pub struct FinalReports;

impl Sink for FinalReports {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()> {
        match e {
            Event::RunFinished => write_results(&run.run_dir, &run.meta, &run.cells),
            _ => Ok(()),
        }
    }
}

/// Write every result file of a run: results.json, junit.xml, summary.md, report.html,
/// matrix.txt; each atomically, so an interrupted run keeps a consistent set. The run
/// folder's own known-issues list (`known-issues.yaml`) marks known findings, and a
/// comparison `kmatrix compare` left there (`compare.json`) goes on top of summary.md
/// and report.html.
pub fn write_results(run_dir: &Path, meta: &RunMeta, cells: &[CellResult]) -> std::io::Result<()> {
    let known = crate::spec::known::KnownIssues::of_run(run_dir)?;
    let compare = crate::judge::compare::of_run(run_dir);
    results::write(run_dir, meta, cells)?;
    crate::host::rundir::write(
        run_dir,
        "junit.xml",
        junit::render_with(cells, &known).as_bytes(),
    )?;
    crate::host::rundir::write(
        run_dir,
        "summary.md",
        markdown::render_with(cells, &known, compare.as_ref()).as_bytes(),
    )?;
    let title = format!("kmatrix: {}", meta.spec.display());
    crate::host::rundir::write(
        run_dir,
        "report.html",
        html::render_with(cells, &title, run_dir, &known, compare.as_ref()).as_bytes(),
    )?;
    crate::host::rundir::write(
        run_dir,
        "matrix.txt",
        text::matrix_with(cells, &known).as_bytes(),
    )
}

/// Drive the sinks until the run ends; returns the finished cells in order and the last
/// error a sink met writing (the files on disk are then incomplete).
pub async fn reporter(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    mut run: RunState,
    mut sinks: Vec<Box<dyn Sink>>,
) -> (Vec<CellResult>, Option<std::io::Error>) {
    let mut write_error = None;
    while let Some(ev) = rx.recv().await {
        match &ev {
            Event::RunStarted { run_dir, .. } => run.run_dir = run_dir.clone(),
            Event::CellFinished { result } => run.cells.push((**result).clone()),
            Event::RunFinished => {
                if let Some(b) = run.baseline.clone() {
                    crate::judge::mark_baseline(&mut run.cells, &b);
                }
            }
            _ => {}
        }
        let mut this_event = None;
        for s in sinks.iter_mut() {
            if let Err(e) = s.event(&ev, &run) {
                this_event = Some(e);
            }
        }
        // Each write replaces whole files, so the latest outcome decides.
        if matches!(ev, Event::CellFinished { .. } | Event::RunFinished) {
            if let Some(e) = &this_event {
                terminal::line(&format!("{e}"));
            }
            write_error = this_event;
        }
        if matches!(ev, Event::RunFinished) {
            break;
        }
    }
    (run.cells, write_error)
}

/// Cells laid out as the matrix: rows (arch, config), columns patchsets in spec order.
pub struct Grid<'a> {
    pub patchsets: Vec<&'a str>,
    pub rows: BTreeMap<(String, String), BTreeMap<&'a str, &'a CellResult>>,
}

pub fn grid(cells: &[CellResult]) -> Grid<'_> {
    let mut g = Grid {
        patchsets: Vec::new(),
        rows: BTreeMap::new(),
    };
    for c in cells {
        if !g.patchsets.contains(&c.patchset.as_str()) {
            g.patchsets.push(&c.patchset);
        }
        g.rows
            .entry((c.arch.name().to_string(), c.config.clone()))
            .or_default()
            .insert(&c.patchset, c);
    }
    g
}

/// The short text of a cell in the matrix: `FAIL (2 reports, 3 expected)`. The liveness
/// step's reports are not counted here: the detectors line says what they proved.
pub fn cell_summary(c: &CellResult) -> String {
    let expected = c
        .findings
        .iter()
        .filter(|f| {
            f.expected_by
                .as_ref()
                .is_some_and(|t| t != crate::record::result::LIVENESS)
        })
        .count();
    let n = c.real_findings().count();
    let mut parts = Vec::new();
    if n > 0 {
        parts.push(format!("{n} report{}", if n == 1 { "" } else { "s" }));
    }
    if expected > 0 {
        parts.push(format!("{expected} expected"));
    }
    if parts.is_empty() {
        c.verdict.label().to_string()
    } else {
        format!("{} ({})", c.verdict.label(), parts.join(", "))
    }
}

/// The line every output shows for a cell whose tests ran amplified.
pub fn amplify_summary(c: &CellResult) -> Option<String> {
    let parts: Vec<String> = c
        .tests
        .iter()
        .filter_map(|t| Some(format!("{}: {}", t.name, t.amplify.as_ref()?.summary())))
        .collect();
    (!parts.is_empty()).then(|| format!("amplified: {}", parts.join("; ")))
}
