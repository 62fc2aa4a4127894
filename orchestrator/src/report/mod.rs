//! Reporters: progress on the terminal (indicatif on a TTY, timestamped lines otherwise),
//! `results.json` rewritten atomically as each cell finishes, and the final matrix.

pub mod html;
pub mod junit;
pub mod markdown;

use crate::events::Event;
use crate::verdict::{CellResult, Verdict};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Version of the `results.json` layout (documented in README).
pub const SCHEMA_VERSION: u32 = 1;

/// What identifies a run besides its cells.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunMeta {
    pub spec: PathBuf,
    #[serde(default)]
    pub spec_hash: String,
    /// `K/N` when this run is one shard of the matrix.
    #[serde(default)]
    pub shard: Option<String>,
}

#[derive(serde::Serialize)]
struct ResultsFile<'a> {
    schema: u32,
    #[serde(flatten)]
    meta: &'a RunMeta,
    run_dir: &'a Path,
    cells: &'a [CellResult],
}

#[derive(serde::Deserialize)]
struct LoadedResults {
    schema: u32,
    #[serde(flatten)]
    meta: RunMeta,
    cells: Vec<CellResult>,
}

/// Read a run directory's results.json back (for `kmatrix report`, resume, merge).
pub fn load_results(run_dir: &Path) -> std::io::Result<(RunMeta, Vec<CellResult>)> {
    let path = run_dir.join("results.json");
    let text = std::fs::read_to_string(&path)?;
    let r: LoadedResults = serde_json::from_str(&text)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
    if r.schema != SCHEMA_VERSION {
        return Err(std::io::Error::other(format!(
            "{}: schema {} but this kmatrix reads schema {SCHEMA_VERSION}",
            path.display(),
            r.schema
        )));
    }
    Ok((r.meta, r.cells))
}

/// Write every result file of a run: results.json, junit.xml, summary.md, report.html,
/// matrix.txt; each atomically, so an interrupted run keeps a consistent set.
pub fn write_results(run_dir: &Path, meta: &RunMeta, cells: &[CellResult]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(&ResultsFile {
        schema: SCHEMA_VERSION,
        meta,
        run_dir,
        cells,
    })
    .map_err(std::io::Error::other)?;
    // The error names the file: with a full disk, which one failed is the first question.
    let w = |name: &str, bytes: &[u8]| {
        let path = run_dir.join(name);
        crate::cache::write_atomic(&path, bytes).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })
    };
    w("results.json", &json)?;
    w("junit.xml", junit::render(cells).as_bytes())?;
    w("summary.md", markdown::render(cells).as_bytes())?;
    let title = format!("kmatrix: {}", meta.spec.display());
    w("report.html", html::render(cells, &title).as_bytes())?;
    w("matrix.txt", matrix(cells).as_bytes())
}

/// Consume events until the run ends; returns the finished cells in order and the error
/// of the last result write, if it failed (the files on disk are then incomplete).
pub async fn reporter(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    meta: RunMeta,
) -> (Vec<CellResult>, Option<std::io::Error>) {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let start = Instant::now();
    let mut run_dir = PathBuf::new();
    let mut done: Vec<CellResult> = Vec::new();
    let mut write_error = None;
    let line = |msg: String| {
        let t = start.elapsed().as_secs();
        eprintln!("[{:>3}:{:02}] {msg}", t / 60, t % 60);
    };
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::RunStarted { cells, run_dir: d } => {
                line(format!("run {}: {cells} cell(s)", d.display()));
                run_dir = d;
            }
            Event::CellStarted { id } => {
                if tty {
                    let pb = multi.add(ProgressBar::new_spinner());
                    pb.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    pb.set_prefix(id.clone());
                    pb.enable_steady_tick(std::time::Duration::from_millis(200));
                    bars.insert(id, pb);
                } else {
                    line(format!("{id}: started"));
                }
            }
            Event::Phase { id, phase, detail } => {
                let msg = if detail.is_empty() {
                    phase.label().to_string()
                } else {
                    format!("{}: {detail}", phase.label())
                };
                match bars.get(&id) {
                    Some(pb) => pb.set_message(msg),
                    None => line(format!("{id}: {msg}")),
                }
            }
            Event::Note { id, message } => match bars.get(&id) {
                Some(pb) => pb.println(format!("{id}: {message}")),
                None => line(format!("{id}: {message}")),
            },
            Event::CellFinished { result } => {
                let msg = format!(
                    "{} {}{}",
                    result.id,
                    result.verdict.label(),
                    result
                        .reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
                if let Some(pb) = bars.remove(&result.id) {
                    pb.finish_with_message(result.verdict.label());
                }
                line(msg);
                done.push(*result);
                // Each write replaces every file, so only the last one decides.
                write_error = write_results(&run_dir, &meta, &done).err();
                if let Some(e) = &write_error {
                    line(e.to_string());
                }
            }
            Event::RunFinished => break,
        }
    }
    (done, write_error)
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
            .entry((c.arch.clone(), c.config.clone()))
            .or_default()
            .insert(&c.patchset, c);
    }
    g
}

/// The result matrix: rows arch/config, columns patchsets; then the details per cell.
pub fn matrix(cells: &[CellResult]) -> String {
    let Grid { patchsets, rows } = grid(cells);
    let cell_text = |c: &CellResult| {
        let expected = c.expected_by.iter().filter(|e| e.is_some()).count();
        let n = c.findings.len().saturating_sub(expected);
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
    };
    let head: Vec<String> = std::iter::once("arch/config".to_string())
        .chain(patchsets.iter().map(|p| p.to_string()))
        .collect();
    let mut table: Vec<Vec<String>> = vec![head];
    for ((arch, config), by_ps) in &rows {
        let mut r = vec![format!("{arch}/{config}")];
        for p in &patchsets {
            r.push(
                by_ps
                    .get(p)
                    .map(|c| cell_text(c))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        table.push(r);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (ri, r) in table.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{s:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if ri == 0 {
            out.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            out.push('\n');
        }
    }
    for c in cells {
        out.push('\n');
        out.push_str(&format!("{}: {}", c.id, c.verdict.label()));
        if let Some(r) = &c.reason {
            out.push_str(&format!(" - {r}"));
        }
        out.push('\n');
        if let Some(a) = &c.accel {
            let note = c
                .accel_note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            out.push_str(&format!("  accel: {a}{note}\n"));
        }
        for d in &c.details {
            out.push_str(&format!("  {d}\n"));
        }
        if let Some(f) = &c.forensics {
            out.push_str(&format!("  forensics: {f} (see console.log)\n"));
        }
        if !c.vmstat_after.is_empty() {
            let delta = |k: &str| {
                c.vmstat_after.get(k).copied().unwrap_or(0)
                    - c.vmstat_before
                        .get(k)
                        .copied()
                        .unwrap_or(0)
                        .min(c.vmstat_after.get(k).copied().unwrap_or(0))
            };
            out.push_str(&format!(
                "  per-VMA locks during tests: {} faults under VMA lock, {} retries, {} aborts, {} misses\n",
                delta("vma_lock_success"),
                delta("vma_lock_retry"),
                delta("vma_lock_abort"),
                delta("vma_lock_miss")
            ));
        }
        for t in &c.tests {
            let cases = &t.ktap.cases;
            let ok = cases
                .iter()
                .filter(|x| x.status == crate::ktap::Status::Ok)
                .count();
            out.push_str(&format!(
                "  test {}: {} ({ok}/{} ok, {} skipped, {:.0}s){}\n",
                t.name,
                if t.passed() { "ok" } else { "FAILED" },
                cases.len(),
                t.ktap.skipped().count(),
                t.seconds,
                t.result_file
                    .as_ref()
                    .map(|_| ", result file back via virtiofs")
                    .unwrap_or_default()
            ));
        }
        for (i, f) in c.findings.iter().enumerate() {
            let note = match c.expected_by.get(i) {
                Some(Some(t)) => format!(" (expected: positive control of {t})"),
                _ if c.in_baseline.contains(&f.title) => " (also in baseline)".to_string(),
                _ => String::new(),
            };
            let rate = match c.finding_rates.get(&f.title) {
                Some(k) if c.repeats > 1 => format!(" in {k}/{} boots", c.repeats),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  report: {} [{:?}] at console line {}{rate}{note}\n",
                f.title, f.kind, f.line
            ));
        }
        for ctl in c.controls.iter().filter(|c| !c.fired) {
            out.push_str(&format!(
                "  control of {} stayed silent: expected a {:?} report\n",
                ctl.test, ctl.expect.kind
            ));
        }
        out.push_str(&format!("  dir: {}\n", c.dir.display()));
    }
    out
}

/// The matrix text with verdicts in colour, for a terminal (files stay plain).
pub fn colorize(text: &str) -> String {
    const LABELS: &[(&str, &str)] = &[
        ("CONFIG-MISMATCH", "33"),
        ("INFRA-ERROR", "35"),
        ("INCONCLUSIVE", "33"),
        ("INTERRUPTED", "35"),
        ("BUILD-FAIL", "31"),
        ("PATCH-FAIL", "31"),
        ("BOOT-FAIL", "31"),
        ("PASS", "32"),
        ("FAIL", "31;1"),
        ("HANG", "31;1"),
    ];
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (label, code) in LABELS {
            if let Some(after) = rest.strip_prefix(label) {
                // Whole words only: FAIL inside BUILD-FAIL was matched as BUILD-FAIL.
                let prev_ok = !out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '-');
                let next_ok = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-');
                if prev_ok && next_ok {
                    out.push_str(&format!("\x1b[{code}m{label}\x1b[0m"));
                    rest = after;
                    continue 'outer;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// Exit code for a finished run (documented in README).
pub fn exit_code(cells: &[CellResult]) -> i32 {
    if cells.iter().any(|c| c.verdict == Verdict::Interrupted) {
        130
    } else if cells.iter().any(|c| c.verdict == Verdict::InfraError) {
        3
    } else if cells.iter().all(|c| c.verdict == Verdict::Pass) {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod colour_tests {
    use super::colorize;

    #[test]
    fn verdicts_are_coloured_as_whole_words() {
        let c =
            colorize("x86_64/pvl-off  BUILD-FAIL  PASS (2 expected)  FAIL (1 report)\nPASSWORD");
        assert!(c.contains("\x1b[31mBUILD-FAIL\x1b[0m"));
        assert!(c.contains("\x1b[32mPASS\x1b[0m (2 expected)"));
        assert!(c.contains("\x1b[31;1mFAIL\x1b[0m (1 report)"));
        assert!(c.ends_with("PASSWORD"), "not inside words");
    }
}
