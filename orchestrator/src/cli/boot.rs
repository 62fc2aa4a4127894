//! `kmatrix boot CELL [-- COMMAND...]`: one cell's kernel booted for a developer, a
//! command run in it or an interactive shell; the VM stopped afterwards.

use crate::cli::error::CliError;
use crate::cli::select::target;
use crate::cli::session::{meta, Session, Sinks, Start};
use crate::cli::signals::on_signals;
use crate::engine::RunOptions;
use crate::host::cache::Cache;
use crate::record::verdict::exit;
use std::path::{Path, PathBuf};

/// What `kmatrix boot` was asked.
pub struct Args<'a> {
    pub cell: &'a str,
    pub spec: &'a Path,
    pub tree: Option<&'a Path>,
    pub series: Option<&'a str>,
    pub runs_dir: Option<PathBuf>,
    pub command: &'a [String],
}

pub async fn boot(a: Args<'_>) -> Result<i32, CliError> {
    let target = target(a.tree, a.series).await?;
    let mut plan = crate::spec::load_for(a.spec, &target)?;
    crate::prepare::series::resolve(&mut plan, &Cache::from_env()).await?;
    let Some(c) = plan.cells.iter().find(|c| c.id() == a.cell).cloned() else {
        return Err(CliError::NoCells(vec![a.cell.to_string()]));
    };
    let runs = a.runs_dir.unwrap_or_else(|| plan.root.join("runs"));
    let run_dir = crate::host::rundir::unique_dir(
        &runs,
        &format!("boot-{}", crate::record::fmt::timestamp()),
    )?;
    crate::cli::run::check_socket_room(&run_dir, std::slice::from_ref(&c))?;
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    on_signals(cancel_tx);
    let session = Session::start(Start {
        meta: meta(&plan, None),
        plan,
        cache: Cache::from_env(),
        opts: RunOptions::default(),
        run_dir,
        sinks: Sinks::Shell,
        cancel: cancel.clone(),
    });
    let cmd = (!a.command.is_empty()).then(|| crate::host::guest::argv_command(a.command));
    let mut cancel = cancel;
    tokio::select! {
        r = session.boot_shell(&c, cmd) => match r {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("kmatrix: {}", crate::record::fmt::visible(&e));
                Ok(exit::FINDINGS)
            }
        },
        _ = cancel.wait_for(|c| *c) => Ok(exit::INTERRUPTED),
    }
}
