//! `kmatrix boot`: one cell's kernel booted for a developer, a command run in it over
//! SSH or an interactive shell, and the VM stopped afterwards.

use super::boot::{fill_share, BootPlan};
use super::run::CellRun;
use super::shared::Shared;
use crate::host::guest::{self, Exec, Target};
use crate::record::plan::Cell;
use crate::vm::console::Budget;
use std::path::Path;
use std::time::Duration;

pub(super) async fn boot_shell(
    sh: &Shared,
    cell: &Cell,
    command: Option<String>,
) -> Result<i32, String> {
    let mut run = CellRun::new(sh, cell);
    let said = |s: super::shared::Stop| {
        format!(
            "{}: {}\n{}",
            s.verdict.label(),
            s.reason,
            s.details.join("\n")
        )
    };
    std::fs::create_dir_all(run.dir.join("results")).map_err(|e| e.to_string())?;
    let p = match run.prepare().await {
        Ok(Some(p)) => p,
        Ok(None) => return Err("build-only run".into()),
        Err(stop) => return Err(said(stop)),
    };
    let tests: Vec<_> = sh
        .plan
        .tests
        .iter()
        .filter(|t| t.applies_to(cell))
        .collect();
    fill_share(&run.dir.join("share"), &p, &tests).map_err(said)?;
    let plan = BootPlan {
        n: 1,
        preamble: None,
        offset: 0,
        budget: Budget::new(sh.plan.limits.console_bytes),
    };
    let s = run.boot(&p, plan).await.map_err(|(stop, _)| said(stop))?;
    let outcome = match command {
        Some(cmd) => {
            let ssh = s.ssh.clone();
            tokio::task::spawn_blocking(move || {
                guest::exec(
                    &ssh,
                    &cmd,
                    Exec {
                        keep: 16 << 20,
                        ..Exec::quick(Duration::from_secs(24 * 3600))
                    },
                )
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map(|r| {
                // The guest's output is data: its control characters are shown, not obeyed.
                print!("{}", crate::record::fmt::visible(&r.output));
                r.exit_status
            })
        }
        None => interactive_ssh(&s.target, &run.dir).await,
    };
    eprintln!(
        "kmatrix: console log: {}",
        run.dir.join("console.log").display()
    );
    let _ = s.shutdown(Duration::from_secs(1)).await;
    // What the guest left in its share is data, never privilege.
    let kept = crate::host::sanitize::results_folder(
        &run.dir.join("results"),
        sh.plan.limits.results_bytes,
    );
    for n in kept.notes {
        eprintln!("kmatrix: {}", crate::record::fmt::visible(&n));
    }
    outcome
}

/// Hand the terminal to OpenSSH's client, pinned to the guest's host key.
async fn interactive_ssh(t: &Target, dir: &Path) -> Result<i32, String> {
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} ssh-ed25519 {}\n", t.addr.port(), t.host_key),
    )
    .map_err(|e| e.to_string())?;
    eprintln!("kmatrix: guest is up; exit the shell to stop it");
    let status = tokio::process::Command::new("ssh")
        .arg("-i")
        .arg(&t.key)
        .arg("-p")
        .arg(t.addr.port().to_string())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "root@127.0.0.1"])
        .status()
        .await
        .map_err(|e| format!("cannot start ssh: {e}"))?;
    Ok(status.code().unwrap_or(1))
}
