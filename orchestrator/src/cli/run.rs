//! `kmatrix run` and `kmatrix build`: the selected cells, with `--resume` reusing the
//! cells of the latest run whose inputs are unchanged.

use crate::cli::args::Selection;
use crate::cli::error::CliError;
use crate::cli::select::load;
use crate::cli::session::{meta, point_latest, Finished, Session, Sinks, Start};
use crate::cli::signals::on_signals;
use crate::engine::RunOptions;
use crate::host::cache::Cache;
use crate::record::plan::{Cell, Plan};
use std::path::{Path, PathBuf};

pub async fn run(
    sel: Selection,
    mut opts: RunOptions,
    runs_dir: Option<PathBuf>,
    resume: bool,
) -> Result<i32, CliError> {
    let cache = Cache::from_env();
    let plan = load(&sel, &cache).await?;
    let runs = runs_dir.unwrap_or_else(|| plan.root.join("runs"));
    if opts.jobs == 0 {
        opts.jobs = host_jobs(&plan);
    }
    // The last run's cells say how long their boots and tests took (the ETA).
    if let Ok((_, cells)) = crate::report::load_results(&runs.join("latest")) {
        opts.last_run = cells;
    }
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
    let run_dir = crate::host::rundir::unique_dir(&runs, &crate::record::fmt::timestamp())?;
    if !opts.build_only {
        check_socket_room(&run_dir, &plan.cells)?;
    }
    if let Some(k) = &plan.known_issues {
        // The run's outputs are judged with this list, also when re-rendered later.
        crate::spec::known::keep_copy(k, &run_dir).map_err(|error| CliError::Write {
            error,
            hint: "pass a writable --runs-dir",
        })?;
    }
    point_latest(&runs, &run_dir);
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    on_signals(cancel_tx);
    let session = Session::start(Start {
        meta: meta(&plan, sel.shard),
        plan,
        cache,
        opts,
        run_dir: run_dir.clone(),
        sinks: Sinks::Run { matrix: true },
        cancel,
    });
    let Finished { cells, write_error } = session.run().await.map_err(CliError::Internal)?;
    // The matrix above is complete even when the files are not: say which one failed.
    if let Some(error) = write_error {
        return Err(CliError::Write {
            error,
            hint: "the cells' logs are kept there; free space or pass another --runs-dir",
        });
    }
    println!(
        "results: {}",
        crate::record::fmt::display_rel(&run_dir.join("results.json"))
    );
    Ok(crate::record::verdict::exit_code(
        &cells.iter().map(|c| c.verdict).collect::<Vec<_>>(),
    ))
}

/// `--resume`: the earlier cells that stand for this run's, those whose verdict is final
/// and whose inputs (the tree, every patch, fragment, test, setting) are unchanged. Says
/// which cells run again and why.
async fn resumable(
    plan: &Plan,
    cache: &Cache,
    opts: &RunOptions,
    earlier: Vec<crate::record::result::CellResult>,
) -> Vec<crate::record::result::CellResult> {
    let say = |m: String| eprintln!("kmatrix: {}", crate::record::fmt::visible(&m));
    let mode = opts.mode();
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
        let _lock = crate::host::cache::lock(
            &cache.dir(".prepare.lock"),
            "the shared cache steps",
            std::time::Duration::from_secs(3600),
            &say,
        )
        .await
        .map_err(|e| crate::record::fmt::chain(&e))?;
        crate::prepare::source::prepare(&plan.source, cache)
            .await
            .map_err(|e| crate::record::fmt::chain(&e))
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
        let inputs = crate::prepare::identity::of(plan, cell, cache, &tree, mode)
            .await
            .map(|id| id.inputs)
            .map_err(|e| crate::record::fmt::chain(&e));
        let verdict = match inputs {
            Ok(now) => crate::prepare::identity::reusable(earlier, &now),
            Err(e) => Err(format!("its inputs cannot be read ({e})")),
        };
        match verdict {
            Ok(()) => reuse.push(earlier.clone()),
            Err(why) => say(format!("{} runs again: {why}", cell.id())),
        }
    }
    reuse
}

/// Cells at a time when `--jobs` is not given (`record::schedule::default_jobs`), said
/// once with the facts it came from.
fn host_jobs(plan: &Plan) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| crate::cli::doctor::parse_meminfo(&t).0)
        .unwrap_or(0);
    let jobs = crate::record::schedule::default_jobs(cores, memory, plan.vm.memory_mib);
    eprintln!(
        "kmatrix: {jobs} cell(s) at a time ({cores} core(s), {} GiB: cores / 4, at most memory / (guest {} MiB + 1 GiB); --jobs N to change)",
        memory / 1024,
        plan.vm.memory_mib
    );
    jobs
}

/// Every selected cell's folder leaves room for the VM's sockets, or the run stops here,
/// before any build, its still empty folder removed.
pub fn check_socket_room(run_dir: &Path, cells: &[Cell]) -> Result<(), CliError> {
    let too_long = cells
        .iter()
        .find_map(|c| crate::vm::socket_too_long(&run_dir.join(c.rel_dir())));
    match too_long {
        None => Ok(()),
        Some((path, len)) => {
            let _ = std::fs::remove_dir(run_dir);
            Err(CliError::SocketPath { path, len })
        }
    }
}
