//! Command line: `kmatrix run | build | boot | plan | merge | report | doctor | parse |
//! bisect | compare`, and what each does at the top level.

use crate::cache::Cache;
use crate::cli_args::parse_shard;
pub use crate::cli_args::{Cli, Command, Selection};
use crate::engine::{Engine, RunOptions};
use crate::plan::Plan;
use std::path::{Path, PathBuf};

/// Documented exit codes (README "Exit codes").
pub mod exit {
    pub const PASS: i32 = 0;
    pub const FINDINGS: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INFRA: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    Bisect(#[from] crate::bisect::BisectError),
    #[error(transparent)]
    Compare(#[from] crate::compare::CompareError),
    #[error("--only `{0}`: {1}")]
    Glob(String, String),
    #[error("--only {0:?} selects no cell; `kmatrix plan` lists the cell ids")]
    NoCells(Vec<String>),
    #[error("cannot merge: {0}")]
    Merge(String),
    #[error(transparent)]
    Kcidb(#[from] crate::report::kcidb::KcidbError),
    #[error("--tree {}: {why}", path.display())]
    Tree { path: PathBuf, why: String },
    #[error(transparent)]
    Series(Box<crate::series::SeriesError>),
    /// kmatrix itself failed (a task panicked): exit 3, never a silent pass.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the run folder {path}: {source}; pass a writable --runs-dir")]
    RunDir {
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

impl From<crate::series::SeriesError> for CliError {
    fn from(e: crate::series::SeriesError) -> Self {
        CliError::Series(Box::new(e))
    }
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Bisect(e) => e.exit_code(),
            CliError::Compare(e) => e.exit_code(),
            CliError::Io { .. }
            | CliError::RunDir { .. }
            | CliError::Write { .. }
            | CliError::Internal(_) => exit::INFRA,
            CliError::Series(e) if !e.is_usage() => exit::INFRA,
            _ => exit::USAGE,
        }
    }
}

/// What the selection tests: the spec, or `--tree` (with `--series`, the range pinned to
/// commit ids, so the run tests one thing even if the branch moves meanwhile).
async fn target(
    tree: Option<&Path>,
    series: Option<&str>,
) -> Result<crate::spec::Target, CliError> {
    use crate::spec::Target;
    let Some(tree) = tree else {
        return Ok(Target::Spec);
    };
    let bad = |why: String| CliError::Tree {
        path: tree.to_owned(),
        why,
    };
    let path = std::path::absolute(tree).map_err(|e| bad(e.to_string()))?;
    if !path.join("Makefile").is_file() {
        return Err(bad(
            "not a kernel tree (no Makefile): give the top folder of a kernel source tree".into(),
        ));
    }
    let Some(range) = series else {
        return Ok(Target::Tree(path));
    };
    let c = crate::series::commits(&path, range, &format!("--series {range}")).await?;
    Ok(Target::Branch {
        repo: path,
        base: c.base.clone(),
        range: c.pinned(),
    })
}

/// The plan of a selection, git ranges exported.
async fn load(sel: &Selection, cache: &Cache) -> Result<Plan, CliError> {
    let target = target(sel.tree.as_deref(), sel.series.as_deref()).await?;
    let mut plan = crate::spec::load_for(&sel.spec, &target)?;
    crate::series::resolve(&mut plan, cache).await?;
    if !sel.only.is_empty() {
        let mut b = globset::GlobSetBuilder::new();
        for g in &sel.only {
            b.add(globset::Glob::new(g).map_err(|e| CliError::Glob(g.clone(), e.to_string()))?);
        }
        let set = b
            .build()
            .map_err(|e| CliError::Glob(sel.only.join(","), e.to_string()))?;
        plan.cells.retain(|c| set.is_match(c.id()));
        if plan.cells.is_empty() {
            return Err(CliError::NoCells(sel.only.clone()));
        }
    }
    if let Some((k, n)) = sel.shard {
        plan.cells = crate::plan::shard(&plan.cells, &plan.tests, k, n);
    }
    Ok(plan)
}

pub async fn main(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Plan { sel } => {
            let plan = load(&sel, &Cache::from_env()).await?;
            for c in &plan.cells {
                let frags: Vec<String> = c
                    .fragments
                    .iter()
                    .map(|f| {
                        f.file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    })
                    .collect();
                println!(
                    "{:<28} {} + [{}], {} patch(es)",
                    c.id(),
                    c.base_config,
                    frags.join(", "),
                    c.patches.len()
                );
                for s in c.subjects(&plan) {
                    println!("{:<28}   {}", "", crate::report::visible(&s));
                }
            }
            println!(
                "{} cell(s); tests: {}",
                plan.cells.len(),
                plan.tests
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(exit::PASS)
        }
        Command::Merge { out, runs } => merge(&out, &runs),
        Command::Bisect {
            cell,
            spec,
            title,
            repeat,
            runs_dir,
            prefix,
        } => {
            // Git-range patchsets resolve to their commits' patches, as for `run`.
            let mut plan = crate::spec::load(&spec)?;
            crate::series::resolve(&mut plan, &Cache::from_env()).await?;
            let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
            on_signals(cancel_tx);
            let args = crate::bisect::Args {
                cell,
                spec,
                title,
                repeat,
                runs_dir,
                prefix,
            };
            Ok(crate::bisect::run(plan, args, cancel_rx).await?)
        }
        Command::Compare {
            old_run,
            new_run,
            known,
        } => Ok(crate::compare::run(&old_run, &new_run, known.as_deref())?),
        Command::B4Check {
            spec,
            only,
            runs_dir,
        } => Ok(crate::b4::main(crate::b4::Args {
            spec,
            only,
            runs_dir,
        })
        .await),
        Command::Mcp { spec, runs_dir } => {
            Ok(crate::mcp::main(crate::mcp::Args { spec, runs_dir }).await)
        }
        Command::Doctor { spec } => Ok(crate::doctor::run(spec.as_deref()).await),
        Command::Boot {
            cell,
            spec,
            tree,
            series,
            runs_dir,
            command,
        } => {
            let target = target(tree.as_deref(), series.as_deref()).await?;
            let mut plan = crate::spec::load_for(&spec, &target)?;
            crate::series::resolve(&mut plan, &Cache::from_env()).await?;
            let Some(c) = plan.cells.iter().find(|c| c.id() == cell).cloned() else {
                return Err(CliError::NoCells(vec![cell]));
            };
            let runs = runs_dir.unwrap_or_else(|| plan.root.join("runs"));
            let run_dir = unique_dir(&runs, &format!("boot-{}", timestamp()))?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
            on_signals(cancel_tx);
            // Progress as plain lines: the terminal belongs to the shell afterwards.
            let state = crate::report::RunState {
                meta: crate::report::RunMeta {
                    spec: plan.spec_path.clone(),
                    spec_hash: plan.spec_hash.clone(),
                    shard: None,
                },
                run_dir: run_dir.clone(),
                cells: vec![],
                baseline: None,
            };
            let sinks: Vec<Box<dyn crate::report::Sink>> = vec![Box::new(
                crate::report::terminal::Terminal::new(true, false),
            )];
            tokio::spawn(crate::report::reporter(rx, state, sinks));
            let engine = Engine::new(
                plan,
                Cache::from_env(),
                RunOptions::default(),
                run_dir,
                tx,
                cancel_rx.clone(),
            );
            let cmd = (!command.is_empty()).then(|| crate::guest::argv_command(&command));
            let mut cancel = cancel_rx;
            tokio::select! {
                r = engine.boot_shell(&c, cmd) => match r {
                    Ok(code) => Ok(code),
                    Err(e) => {
                        eprintln!("kmatrix: {}", crate::report::visible(&e));
                        Ok(exit::FINDINGS)
                    }
                },
                _ = cancel.wait_for(|c| *c) => Ok(exit::INTERRUPTED),
            }
        }
        Command::Report {
            run_dir,
            kcidb: true,
            kcidb_origin,
            kcidb_url,
        } => kcidb(&run_dir, &kcidb_origin, kcidb_url),
        Command::Report { run_dir, .. } => {
            let (spec, cells) =
                crate::report::load_results(&run_dir).map_err(|source| CliError::Io {
                    path: run_dir.clone(),
                    source,
                })?;
            crate::report::write_results(&run_dir, &spec, &cells).map_err(|error| {
                CliError::Write {
                    error,
                    hint: "the files already there are unchanged; free space and rerun",
                }
            })?;
            println!("{}", crate::report::matrix(&cells));
            Ok(crate::verdict::exit_code(&cells))
        }
        Command::Parse {
            log,
            json,
            vmlinux,
            tool_prefix,
        } => {
            let f = std::fs::File::open(&log).map_err(|source| CliError::Io {
                path: log.clone(),
                source,
            })?;
            let mut findings =
                crate::console::parse(std::io::BufReader::new(f)).map_err(|source| {
                    CliError::Io {
                        path: log.clone(),
                        source,
                    }
                })?;
            if let Some(v) = &vmlinux {
                if let Err(e) = crate::console::symbolize(&mut findings, v, &tool_prefix) {
                    eprintln!("kmatrix: cannot symbolise with {}: {e}", v.display());
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::console::findings_json(&findings))
                        .unwrap_or_default()
                );
            } else {
                for f in &findings {
                    println!("{}: {} [{:?}]", f.line, f.title, f.kind);
                }
                if findings.is_empty() {
                    println!("no kernel reports");
                }
            }
            Ok(exit::PASS)
        }
        Command::Run {
            sel,
            rebuild,
            runs_dir,
            resume,
            repeat,
        } => {
            run(
                sel,
                RunOptions {
                    rebuild,
                    build_only: false,
                    resume: Vec::new(),
                    repeat,
                },
                runs_dir,
                resume,
            )
            .await
        }
        Command::Build {
            sel,
            rebuild,
            runs_dir,
        } => {
            run(
                sel,
                RunOptions {
                    rebuild,
                    build_only: true,
                    resume: Vec::new(),
                    repeat: 1,
                },
                runs_dir,
                false,
            )
            .await
        }
    }
}

/// `kmatrix report --kcidb`: the document on stdout, for `> file` or `| kcidb-submit`.
/// Exit 0 once it is printed: the verdicts are in the document.
fn kcidb(run_dir: &Path, origin: &str, url: Option<String>) -> Result<i32, CliError> {
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

async fn run(
    sel: Selection,
    mut opts: RunOptions,
    runs_dir: Option<PathBuf>,
    resume: bool,
) -> Result<i32, CliError> {
    let cache = Cache::from_env();
    let plan = load(&sel, &cache).await?;
    let runs = runs_dir.unwrap_or_else(|| plan.root.join("runs"));
    if resume {
        let latest = runs.join("latest");
        match crate::report::load_results(&latest) {
            Ok((_, cells)) => {
                opts.resume = resumable(&plan, &cache, &opts, cells).await;
                eprintln!(
                    "kmatrix: resuming {}: {} finished cell(s) reused",
                    latest.display(),
                    opts.resume.len()
                );
            }
            Err(e) => eprintln!("kmatrix: --resume: nothing to resume ({e}); running everything"),
        }
    }
    let run_dir = unique_dir(&runs, &timestamp())?;
    if let Some(k) = &plan.known_issues {
        // The run's outputs are judged with this list, also when re-rendered later.
        crate::known::keep_copy(k, &run_dir).map_err(|error| CliError::Write {
            error,
            hint: "pass a writable --runs-dir",
        })?;
    }
    let latest = runs.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(run_dir.file_name().unwrap_or_default(), &latest);

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    on_signals(cancel_tx);
    let meta = crate::report::RunMeta {
        spec: plan.spec_path.clone(),
        spec_hash: plan.spec_hash.clone(),
        shard: sel.shard.map(|(k, n)| format!("{k}/{n}")),
    };
    let state = crate::report::RunState {
        meta,
        run_dir: run_dir.clone(),
        cells: vec![],
        baseline: plan.baseline.clone(),
    };
    let sinks: Vec<Box<dyn crate::report::Sink>> = vec![
        Box::new(crate::report::terminal::Terminal::new(false, true)),
        Box::new(crate::report::ResultsJson::default()),
        Box::new(crate::report::FinalReports),
    ];
    let reporter = tokio::spawn(crate::report::reporter(rx, state, sinks));
    let engine = Engine::new(plan, cache, opts, run_dir.clone(), tx, cancel_rx);
    // A panic in any task is kmatrix's own failure: exit 3 with its message, never a
    // run that "passed" with no cells.
    let ran = tokio::spawn(engine.run()).await;
    let (cells, write_error) = reporter
        .await
        .map_err(|e| CliError::Internal(format!("the reporter failed: {e}")))?;
    ran.map_err(|e| CliError::Internal(format!("the engine failed: {e}")))?;
    // The matrix above is complete even when the files are not: say which one failed.
    if let Some(error) = write_error {
        return Err(CliError::Write {
            error,
            hint: "the cells' logs are kept there; free space or pass another --runs-dir",
        });
    }
    println!("results: {}", display_rel(&run_dir.join("results.json")));
    Ok(crate::verdict::exit_code(&cells))
}

/// `--resume`: the earlier cells that stand for this run's, those whose verdict is final
/// and whose inputs (the tree, every patch, fragment, test, setting) are unchanged. Says
/// which cells run again and why.
async fn resumable(
    plan: &Plan,
    cache: &Cache,
    opts: &RunOptions,
    earlier: Vec<crate::verdict::CellResult>,
) -> Vec<crate::verdict::CellResult> {
    let say = |m: String| eprintln!("kmatrix: {}", crate::report::visible(&m));
    let mode = crate::identity::Mode {
        build_only: opts.build_only,
        repeat: opts.repeat,
    };
    let mut missing = Vec::new();
    let mut candidates = Vec::new();
    for cell in &plan.cells {
        match earlier.iter().find(|r| r.id == cell.id()) {
            Some(r) => candidates.push((cell, r)),
            None => missing.push(cell.id()),
        }
    }
    if !missing.is_empty() {
        say(format!(
            "{} cell(s) not finished in the earlier run: {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    if candidates.is_empty() {
        return vec![];
    }
    // The same tree identity the engine computes (a developer's tree: its git state or
    // a stat walk), under the lock the engine's source step holds.
    let tree = async {
        let _lock = crate::cache::lock(
            &cache.dir(".prepare.lock"),
            "the shared cache steps",
            std::time::Duration::from_secs(3600),
            &say,
        )
        .await
        .map_err(|e| crate::engine::chain(&e))?;
        crate::source::prepare(&plan.source, cache)
            .await
            .map_err(|e| crate::engine::chain(&e))
    }
    .await;
    let tree = match tree {
        Ok(t) => t,
        Err(e) => {
            say(format!(
                "--resume: cannot identify the kernel tree ({e}); running everything"
            ));
            return vec![];
        }
    };
    let mut reuse = Vec::new();
    for (cell, earlier) in candidates {
        let inputs = async {
            let modules = crate::identity::modules(plan, cell, cache).map_err(|e| e.to_string())?;
            let key = crate::build::cache_key(cell, &tree, &modules)
                .await
                .map_err(|e| crate::engine::chain(&e))?;
            crate::identity::of_cell(plan, cell, &tree.id, &key, mode).map_err(|e| e.to_string())
        }
        .await;
        let verdict = match inputs {
            Ok(now) => crate::identity::reusable(earlier, &now),
            Err(e) => Err(format!("its inputs cannot be read ({e})")),
        };
        match verdict {
            Ok(()) => reuse.push(earlier.clone()),
            Err(why) => say(format!("{} runs again: {why}", cell.id())),
        }
    }
    reuse
}

/// A new folder `<runs>/<name>`, unique even for two invocations in the same second
/// (e.g. shards, or two `kmatrix boot`s): create_dir is atomic. Private to the invoking
/// user: it holds what guests wrote.
pub(crate) fn unique_dir(runs: &Path, name: &str) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::create_dir_all(runs).map_err(|source| CliError::RunDir {
        path: runs.to_owned(),
        source,
    })?;
    let mut dir = runs.join(name);
    let mut n = 1;
    loop {
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                dir = runs.join(format!("{name}-{n}"));
            }
            Err(source) => return Err(CliError::RunDir { path: dir, source }),
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP: the first stops scheduling, shuts VMs down and still
/// writes results; the second kills every process group kmatrix started and leaves.
pub fn on_signals(cancel: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ];
    let mut streams: Vec<_> = kinds.iter().filter_map(|k| signal(*k).ok()).collect();
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let any = futures_like_select(&mut streams).await;
            if !any {
                return;
            }
            seen += 1;
            if seen == 1 {
                eprintln!("kmatrix: interrupted; stopping (again to kill everything)");
                let _ = cancel.send(true);
            } else {
                crate::proc::kill_all();
                std::process::exit(exit::INTERRUPTED);
            }
        }
    });
}

/// Wait for the first of several signal streams (false if all ended).
async fn futures_like_select(streams: &mut [tokio::signal::unix::Signal]) -> bool {
    use std::future::poll_fn;
    use std::task::Poll;
    poll_fn(|cx| {
        let mut open = false;
        for s in streams.iter_mut() {
            match s.poll_recv(cx) {
                Poll::Ready(Some(())) => return Poll::Ready(true),
                Poll::Ready(None) => {}
                Poll::Pending => open = true,
            }
        }
        if open {
            Poll::Pending
        } else {
            Poll::Ready(false)
        }
    })
    .await
}

/// Join shard run directories: same spec, same kernel source, no cell twice.
fn merge(out: &Path, runs: &[PathBuf]) -> Result<i32, CliError> {
    let mut meta: Option<crate::report::RunMeta> = None;
    let mut source: Option<String> = None;
    let mut cells: Vec<crate::verdict::CellResult> = Vec::new();
    let mut shards: Vec<Option<String>> = Vec::new();
    for r in runs {
        let (m, cs) = crate::report::load_results(r).map_err(|source| CliError::Io {
            path: r.clone(),
            source,
        })?;
        shards.push(m.shard.clone());
        match &meta {
            None => meta = Some(m),
            Some(first) if first.spec_hash != m.spec_hash => {
                return Err(CliError::Merge(format!(
                    "{} ran a different spec ({}) than {} ({})",
                    r.display(),
                    m.spec_hash,
                    runs[0].display(),
                    first.spec_hash
                )))
            }
            Some(_) => {}
        }
        for c in cs {
            if let Some(id) = &c.source_id {
                match &source {
                    Some(s) if s != id => {
                        return Err(CliError::Merge(format!(
                            "{} built from kernel source {id}, others from {s}",
                            r.display()
                        )))
                    }
                    _ => source = Some(id.clone()),
                }
            }
            if cells.iter().any(|x| x.id == c.id) {
                return Err(CliError::Merge(format!(
                    "cell {} appears in more than one run",
                    c.id
                )));
            }
            cells.push(c);
        }
    }
    let mut meta = meta.ok_or_else(|| CliError::Merge("no runs given".into()))?;
    shards_cover(&shards).map_err(CliError::Merge)?;
    meta.shard = None;
    std::fs::create_dir_all(out).map_err(|source| CliError::Io {
        path: out.to_owned(),
        source,
    })?;
    // The shards ran one spec, so one known-issues list: keep it with the merged run.
    if let Some(k) = runs
        .iter()
        .map(|r| r.join(crate::known::FILE))
        .find(|k| k.is_file())
    {
        crate::known::keep_copy(&k, out).map_err(|error| CliError::Write {
            error,
            hint: "free space or pass another --out",
        })?;
    }
    crate::report::write_results(out, &meta, &cells).map_err(|error| CliError::Write {
        error,
        hint: "free space or pass another --out",
    })?;
    println!("{}", crate::report::matrix(&cells));
    Ok(crate::verdict::exit_code(&cells))
}

/// Shards merged must be exactly 1..N of one N (a report that looks complete but lacks a
/// shard would hide its cells). Runs that were not shards merge as they are.
fn shards_cover(shards: &[Option<String>]) -> Result<(), String> {
    let parsed: Vec<(usize, usize)> = shards
        .iter()
        .flatten()
        .map(|s| parse_shard(s))
        .collect::<Result<_, _>>()?;
    if parsed.is_empty() {
        return Ok(());
    }
    if parsed.len() != shards.len() {
        return Err("some runs are shards and some are not".into());
    }
    let n = parsed[0].1;
    if parsed.iter().any(|(_, m)| *m != n) {
        return Err("the runs are shards of different splits (K/N with different N)".into());
    }
    let mut have: Vec<usize> = parsed.iter().map(|(k, _)| *k).collect();
    have.sort();
    if let Some(w) = have.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("shard {}/{n} is given twice", w[0]));
    }
    let missing: Vec<String> = (1..=n)
        .filter(|k| !have.contains(k))
        .map(|k| format!("{k}/{n}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "shard(s) {} missing: pass the run folder of every shard",
            missing.join(", ")
        ))
    }
}

pub(crate) fn display_rel(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

/// UTC `YYYYmmdd-HHMMSS` for run directory names.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil-from-days (proleptic Gregorian), as in Howard Hinnant's date algorithms.
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_shards_must_cover_one_to_n() {
        let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert!(shards_cover(&s(&["1/3", "3/3", "2/3"])).is_ok());
        let e = shards_cover(&s(&["1/3", "3/3"])).unwrap_err();
        assert!(e.contains("2/3 missing"), "{e}");
        assert!(shards_cover(&s(&["1/2", "1/2"]))
            .unwrap_err()
            .contains("twice"));
        assert!(shards_cover(&s(&["1/2", "2/3"])).is_err());
        assert!(shards_cover(&[None, None]).is_ok(), "plain runs");
        assert!(shards_cover(&[Some("1/2".into()), None]).is_err());
    }
}
