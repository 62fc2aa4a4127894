//! `kmatrix mcp`: a Model Context Protocol server on stdin/stdout (the official Rust SDK,
//! `rmcp`), so that a review agent can ask what kmatrix would build, start a run, and
//! read what came back. Read-only except `run`: `plan` loads the spec, `results`, `cell`
//! and `compare` read run folders and write nothing (`compare` does not write
//! compare.json, unlike `kmatrix compare`). `run` starts `kmatrix run` as a child, in
//! a folder of its own under the runs folder (`mcp-<time>/`), its output in a log
//! there (stdout is the protocol's), and returns at once; `results` says whether it
//! still runs and shows the cells finished so far. One run at a time per server.
//!
//! Everything a guest or a series wrote is shown through `report::visible` and bounded.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerInfo};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

use crate::record::fmt::visible;
use crate::record::result::CellResult;

/// A kernel report's text and a console excerpt: enough to read, never the whole log.
const REPORT_MAX: usize = 16 << 10;
const CONSOLE_LINES_DEFAULT: usize = 60;
const CONSOLE_LINES_MAX: usize = 400;
const LINE_MAX: usize = 512;

pub struct Args {
    pub spec: PathBuf,
    pub runs_dir: Option<PathBuf>,
}

/// Serve until the client closes stdin.
pub async fn main(args: Args) -> i32 {
    let spec = match std::path::absolute(&args.spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kmatrix: mcp: --spec {}: {e}", args.spec.display());
            return crate::record::verdict::exit::USAGE;
        }
    };
    let runs = args.runs_dir.unwrap_or_else(|| {
        spec.parent()
            .map(|p| p.join("runs"))
            .unwrap_or_else(|| PathBuf::from("runs"))
    });
    let server = Server::new(spec, runs);
    let running = match server.clone().serve(rmcp::transport::stdio()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kmatrix: mcp: cannot start the server: {e}");
            return crate::record::verdict::exit::INFRA;
        }
    };
    let quit = running.waiting().await;
    // A run still going when the client leaves is stopped as Ctrl-C stops it (its
    // results so far are written), not left behind.
    server.stop_run().await;
    match quit {
        Ok(_) => crate::record::verdict::exit::PASS,
        Err(e) => {
            eprintln!("kmatrix: mcp: {e}");
            crate::record::verdict::exit::INFRA
        }
    }
}

/// The run this server started.
struct Started {
    /// `<runs>/mcp-<time>`: the run itself is `<folder>/latest`.
    folder: PathBuf,
    child: tokio::process::Child,
    exit: Option<i32>,
}

#[derive(Clone)]
pub struct Server {
    spec: PathBuf,
    runs: PathBuf,
    started: Arc<Mutex<Option<Started>>>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct PlanArgs {
    /// Only cells whose id (arch/config/patchset) matches one of these globs, e.g.
    /// `x86_64/*` (the quick profile). All cells when absent.
    #[serde(default)]
    pub only: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunArgs {
    /// The cells to run: globs over cell ids, e.g. `x86_64/pvl-on/*`. Required: a whole
    /// matrix takes hours; `plan` lists the ids.
    pub only: Vec<String>,
    /// Boot and test every cell this many times (fresh boots); default 1.
    #[serde(default)]
    pub repeat: Option<u32>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct RunRef {
    /// A run folder (one with results.json): a path, absolute or relative to the runs
    /// folder. Default: the run this server started, else the runs folder's `latest`.
    #[serde(default)]
    pub run: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CellArgs {
    /// The cell id, e.g. `x86_64/pvl-on/v2`.
    pub cell: String,
    /// The run folder, as for `results`.
    #[serde(default)]
    pub run: Option<String>,
    /// How many lines of the end of the cell's console to include (default 60, at most
    /// 400).
    #[serde(default)]
    pub console_lines: Option<usize>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CompareArgs {
    /// The earlier run folder.
    pub old: String,
    /// The later run folder (its known-issues list judges "known").
    pub new: String,
}

#[tool_router]
impl Server {
    pub fn new(spec: PathBuf, runs: PathBuf) -> Server {
        Server {
            spec,
            runs,
            started: Arc::new(Mutex::new(None)),
            tool_router: Self::tool_router(),
        }
    }

    /// The cells the spec expands to (arch/config/patchset) with each one's base config,
    /// fragments and patches, and the guest tests. Builds nothing.
    #[tool(annotations(read_only_hint = true))]
    async fn plan(&self, Parameters(a): Parameters<PlanArgs>) -> Result<String, String> {
        let mut plan = crate::spec::load(&self.spec).map_err(|e| e.to_string())?;
        crate::prepare::series::resolve(&mut plan, &crate::host::cache::Cache::from_env())
            .await
            .map_err(|e| e.to_string())?;
        let set = globs(&a.only)?;
        let cells: Vec<Value> = plan
            .cells
            .iter()
            .filter(|c| a.only.is_empty() || set.is_match(c.id()))
            .map(|c| {
                json!({
                    "id": c.id(),
                    "base_config": c.base_config,
                    "fragments": c.fragments.iter()
                        .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
                        .collect::<Vec<_>>(),
                    "patches": c.patches.len(),
                    "subjects": c.subjects(&plan).iter().map(|s| visible(s)).collect::<Vec<_>>(),
                })
            })
            .collect();
        if cells.is_empty() {
            return Err(format!("--only {:?} selects no cell", a.only));
        }
        pretty(&json!({
            "spec": self.spec,
            "cells": cells,
            "tests": plan.tests.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        }))
    }

    /// Start `kmatrix run --only ...` (build, boot and test those cells) and return at
    /// once; `results` shows its progress and verdicts. Heavy: kernel builds take
    /// minutes each. One run at a time.
    #[tool(annotations(read_only_hint = false, destructive_hint = false))]
    async fn run(&self, Parameters(a): Parameters<RunArgs>) -> Result<String, String> {
        if a.only.is_empty() {
            return Err("give `only`: the cells to run (`plan` lists them)".into());
        }
        globs(&a.only)?;
        let mut started = self.started.lock().await;
        if let Some(s) = started.as_mut() {
            if s.exit.is_none() {
                if let Ok(Some(st)) = s.child.try_wait() {
                    s.exit = st.code();
                } else {
                    return Err(format!(
                        "a run is still going in {}; `results` shows it",
                        s.folder.display()
                    ));
                }
            }
        }
        let folder = crate::host::rundir::unique_dir(
            &self.runs,
            &format!("mcp-{}", crate::record::fmt::timestamp()),
        )
        .map_err(|e| e.to_string())?;
        let log_path = folder.join("kmatrix.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("run")
            .arg("--spec")
            .arg(&self.spec)
            .arg("--runs-dir")
            .arg(&folder)
            .arg("--repeat")
            .arg(a.repeat.unwrap_or(1).max(1).to_string());
        for o in &a.only {
            cmd.arg("--only").arg(o);
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start kmatrix run: {e}"))?;
        *started = Some(Started {
            folder: folder.clone(),
            child,
            exit: None,
        });
        pretty(&json!({
            "started": true,
            "folder": folder,
            "log": log_path,
            "only": a.only,
            "next": "call `results` (no arguments) to follow it",
        }))
    }

    /// A run's verdicts: per cell its verdict, why, the kernel's reports by title and
    /// each test's outcome; the printed matrix; for the run this server started,
    /// whether it is still going (then the cells finished so far) and its log's end.
    #[tool(annotations(read_only_hint = true))]
    async fn results(&self, Parameters(a): Parameters<RunRef>) -> Result<String, String> {
        let (dir, progress) = self.resolve(a.run.as_deref()).await?;
        let mut out = json!({ "run": dir });
        if let Some(p) = progress {
            out["running"] = json!(p.exit.is_none());
            out["exit_code"] = json!(p.exit);
            out["log_tail"] = json!(p.log_tail);
        }
        match crate::report::load_results(&dir) {
            Ok((_, cells)) => {
                out["cells"] = cells.iter().map(cell_summary).collect();
                out["matrix"] = json!(visible(&crate::report::matrix(&cells)));
            }
            Err(e) if out.get("running") == Some(&json!(true)) => {
                out["cells"] = json!([]);
                out["note"] = json!(format!("no results yet ({e})"));
            }
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
        pretty(&out)
    }

    /// One cell of a run in depth: its verdict and details, every kernel report (title,
    /// kind, console line, the test it came in, the control that expected it, the
    /// report's text and the console lines before it) and the end of its console.
    #[tool(annotations(read_only_hint = true))]
    async fn cell(&self, Parameters(a): Parameters<CellArgs>) -> Result<String, String> {
        let (dir, _) = self.resolve(a.run.as_deref()).await?;
        let (_, cells) =
            crate::report::load_results(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let c = cells.iter().find(|c| c.id == a.cell).ok_or_else(|| {
            format!(
                "no cell {} in {}; its cells: {}",
                visible(&a.cell),
                dir.display(),
                cells
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        // The cell's folder from its id (the names a spec allows), never from the file.
        let folder = dir.join(&c.id);
        let n = a
            .console_lines
            .unwrap_or(CONSOLE_LINES_DEFAULT)
            .min(CONSOLE_LINES_MAX);
        let findings: Vec<Value> = c
            .findings
            .iter()
            .map(|f| {
                json!({
                    "title": visible(&f.title),
                    "kind": f.kind,
                    "console_line": f.line,
                    "during": f.during.as_deref().map(visible),
                    "expected_by": f.expected_by,
                    "report": bounded(&visible(&f.report), REPORT_MAX),
                    "console_before": f.context.iter().map(|l| line(l)).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut out = cell_summary(c);
        out["details"] = c.details.iter().map(|d| json!(line(d))).collect();
        out["notes"] = c.notes.iter().map(|d| json!(line(d))).collect();
        out["findings"] = json!(findings);
        out["console_tail"] = json!(tail(&dir, &Path::new(c.id.as_str()).join("console.log"), n));
        out["folder"] = json!(folder);
        pretty(&out)
    }

    /// What changed from one run to another, per cell: kernel reports new, known, still
    /// failing, flaky, fixed; verdict changes; known issues maybe fixed. Writes nothing.
    #[tool(annotations(read_only_hint = true))]
    async fn compare(&self, Parameters(a): Parameters<CompareArgs>) -> Result<String, String> {
        let old = self.run_path(&a.old);
        let new = self.run_path(&a.new);
        let load =
            |d: &Path| crate::report::load_results(d).map_err(|e| format!("{}: {e}", d.display()));
        let (_, o) = load(&old)?;
        let (_, n) = load(&new)?;
        let known = crate::spec::known::KnownIssues::of_run(&new).map_err(|e| e.to_string())?;
        let cmp = crate::judge::compare::compare(&old, &o, &new, &n, &known);
        pretty(&json!({
            "text": visible(&crate::report::text::comparison(&cmp)),
            "new": cmp.has_new(),
            "comparison": cmp,
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerInfo {
        ServerInfo::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "kmatrix builds patched Linux kernels across a config matrix, boots each in QEMU, \
             stresses them and judges the console. `plan` lists the cells; `run` starts a run \
             of some cells (heavy: minutes per kernel) and returns; `results` follows it and \
             shows verdicts; `cell` shows one cell's kernel reports and console; `compare` \
             tells what changed between two runs. Only `run` changes anything.",
        )
    }
}

struct Progress {
    exit: Option<i32>,
    log_tail: Vec<String>,
}

impl Server {
    fn run_path(&self, r: &str) -> PathBuf {
        let p = Path::new(r);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.runs.join(p)
        }
    }

    /// The run folder a tool means, and the progress of this server's own run if it is
    /// that one.
    async fn resolve(&self, run: Option<&str>) -> Result<(PathBuf, Option<Progress>), String> {
        if let Some(r) = run {
            return Ok((self.run_path(r), None));
        }
        let mut started = self.started.lock().await;
        if let Some(s) = started.as_mut() {
            if s.exit.is_none() {
                if let Ok(Some(st)) = s.child.try_wait() {
                    s.exit = Some(st.code().unwrap_or(crate::record::verdict::exit::INFRA));
                }
            }
            let log_tail = tail(&s.folder, Path::new("kmatrix.log"), 15);
            let dir = std::fs::canonicalize(s.folder.join("latest"))
                .unwrap_or_else(|_| s.folder.join("latest"));
            return Ok((
                dir,
                Some(Progress {
                    exit: s.exit,
                    log_tail,
                }),
            ));
        }
        let latest = self.runs.join("latest");
        std::fs::canonicalize(&latest)
            .map(|d| (d, None))
            .map_err(|e| format!("no run yet: {} ({e}); give `run`", latest.display()))
    }

    /// Stop this server's run, if one is going: SIGINT, as Ctrl-C (results written).
    async fn stop_run(&self) {
        let mut started = self.started.lock().await;
        if let Some(s) = started.as_mut() {
            if s.exit.is_none() {
                if let Some(pid) = s.child.id() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(60), s.child.wait()).await;
            }
        }
    }
}

fn cell_summary(c: &CellResult) -> Value {
    let mut titles: Vec<String> = Vec::new();
    for f in c.real_findings() {
        let t = visible(&f.title);
        if !titles.contains(&t) {
            titles.push(t);
        }
    }
    json!({
        "id": c.id,
        "verdict": c.verdict.label(),
        "reason": c.reason.as_deref().map(line),
        "reports": titles,
        "expected_reports": c.expected_count(),
        "tests": c.tests.iter().map(|t| json!({
            "name": t.name,
            "outcome": match &t.outcome {
                crate::record::result::TestOutcome::Exited { status } => format!("exited {status}"),
                o => line(o.message().unwrap_or("")),
            },
            "seconds": t.seconds,
        })).collect::<Vec<_>>(),
        "accel": c.accel,
        "seconds": c.seconds,
    })
}

fn globs(only: &[String]) -> Result<globset::GlobSet, String> {
    let mut b = globset::GlobSetBuilder::new();
    for g in only {
        b.add(globset::Glob::new(g).map_err(|e| format!("`{g}`: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

/// The last `n` lines of a file of a run folder, each bounded and made visible; reads at
/// most the last megabyte (a console can be 64 MB), and only a regular file reached
/// without a link (`host::runfile`: the folder may come from anywhere).
fn tail(dir: &Path, rel: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = crate::host::runfile::open(dir, rel, crate::host::runfile::CONSOLE_MAX) else {
        return vec![];
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(1 << 20)));
    let mut buf = Vec::new();
    let _ = f.take(1 << 20).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| line(l))
        .collect()
}

fn line(s: &str) -> String {
    bounded(&visible(s).replace('\n', " "), LINE_MAX)
}

fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ...", &s[..end])
}

fn pretty(v: &Value) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| e.to_string())
}
