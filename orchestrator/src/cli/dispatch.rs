//! Each command of the command line to the function that does it.

use crate::cli::args::{Cli, Command};
use crate::cli::error::CliError;
use crate::engine::RunOptions;
use crate::host::cache::Cache;

pub async fn main(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Plan { sel } => crate::cli::plan::plan(&sel).await,
        Command::Merge { out, runs } => crate::cli::merge::merge(&out, &runs),
        Command::Bisect {
            cell,
            spec,
            title,
            repeat,
            runs_dir,
            prefix,
        } => {
            let args = crate::cli::bisect::Args {
                cell,
                spec,
                title,
                repeat,
                runs_dir,
                prefix,
            };
            bisect(args).await
        }
        Command::BisectNew {
            run,
            spec,
            max,
            runs_dir,
        } => {
            let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
            crate::cli::signals::on_signals(cancel_tx);
            let args = crate::cli::bisect_new::Args {
                run,
                spec,
                max,
                runs_dir,
            };
            crate::cli::bisect_new::run(args, cancel).await
        }
        Command::Compare {
            old_run,
            new_run,
            known,
        } => Ok(crate::cli::compare::run(
            &old_run,
            &new_run,
            known.as_deref(),
        )?),
        Command::Doctor { spec } => Ok(crate::cli::doctor::run(spec.as_deref()).await),
        Command::Boot {
            cell,
            spec,
            tree,
            series,
            runs_dir,
            command,
        } => {
            crate::cli::boot::boot(crate::cli::boot::Args {
                cell: &cell,
                spec: &spec,
                tree: tree.as_deref(),
                series: series.as_deref(),
                runs_dir,
                command: &command,
            })
            .await
        }
        Command::Report {
            run_dir,
            kcidb: true,
            kcidb_origin,
            kcidb_url,
            kcidb_spec,
        } => crate::cli::report::kcidb(&run_dir, &kcidb_origin, kcidb_url, kcidb_spec.as_deref()),
        Command::Report { run_dir, .. } => crate::cli::report::render(&run_dir),
        Command::B4Check {
            spec,
            only,
            runs_dir,
        } => Ok(crate::cli::b4::main(crate::cli::b4::Args {
            spec,
            only,
            runs_dir,
        })
        .await),
        Command::Mcp { spec, runs_dir } => {
            Ok(crate::cli::mcp::main(crate::cli::mcp::Args { spec, runs_dir }).await)
        }
        Command::Parse {
            log,
            json,
            vmlinux,
            tool_prefix,
        } => crate::cli::parse::parse(&log, json, vmlinux.as_deref(), &tool_prefix),
        Command::Run {
            sel,
            rebuild,
            runs_dir,
            resume,
            repeat,
            jobs,
        } => {
            let opts = options(rebuild, false, repeat, jobs);
            crate::cli::run::run(sel, opts, runs_dir, resume).await
        }
        Command::Build {
            sel,
            rebuild,
            runs_dir,
            jobs,
        } => crate::cli::run::run(sel, options(rebuild, true, 1, jobs), runs_dir, false).await,
    }
}

/// `jobs` 0 when not given: `run` sizes it from the host.
fn options(rebuild: bool, build_only: bool, repeat: u32, jobs: Option<u32>) -> RunOptions {
    RunOptions {
        rebuild,
        build_only,
        resume: Vec::new(),
        repeat,
        jobs: jobs.unwrap_or(0) as usize,
        last_run: Vec::new(),
    }
}

/// `kmatrix bisect`: git-range patchsets resolve to their commits' patches, as for `run`.
async fn bisect(args: crate::cli::bisect::Args) -> Result<i32, CliError> {
    let mut plan = crate::spec::load(&args.spec)?;
    crate::prepare::series::resolve(&mut plan, &Cache::from_env()).await?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    crate::cli::signals::on_signals(cancel_tx);
    Ok(crate::cli::bisect::run(plan, args, cancel_rx).await?)
}
