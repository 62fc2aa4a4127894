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
        .args(ssh_args(t, &known))
        // No agent to offer or forward, whatever the user's environment holds.
        .env_remove("SSH_AUTH_SOCK")
        .status()
        .await
        .map_err(|e| format!("cannot start ssh: {e}"))?;
    Ok(status.code().unwrap_or(1))
}

/// ssh's arguments: none of the user's own configuration (`-F /dev/null`: a
/// `ForwardAgent yes` or a `ProxyCommand` there must not reach the guest), no agent or X11
/// forwarding, only kmatrix's key, and the guest's host key pinned (and only it).
fn ssh_args(t: &Target, known: &Path) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    for s in [
        "-F",
        "/dev/null",
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
    ] {
        push(s);
    }
    push("-i");
    a.push(t.key.clone().into());
    a.push("-p".into());
    a.push(t.addr.port().to_string().into());
    a.push("-o".into());
    a.push(format!("UserKnownHostsFile={}", known.display()).into());
    a.push("root@127.0.0.1".into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_ignores_the_users_config_forwards_nothing_and_pins_the_host_key() {
        let t = Target {
            addr: "127.0.0.1:10022".parse().unwrap(),
            host_key: "AAAAC3Nza".into(),
            key: "/run/k/id_ed25519".into(),
            public: "/run/k/id_ed25519.pub".into(),
        };
        let args: Vec<String> = ssh_args(&t, Path::new("/run/r/known_hosts"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args.join(" "),
            "-F /dev/null -o ForwardAgent=no -o ForwardX11=no -o IdentitiesOnly=yes \
             -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null \
             -i /run/k/id_ed25519 -p 10022 -o UserKnownHostsFile=/run/r/known_hosts root@127.0.0.1"
        );
    }
}
