//! Forensics after a hang or a fatal report: ask the kernel for blocked tasks (sysrq
//! w), every task (t) and all-CPU backtraces (l), over a fresh SSH session or, when SSH
//! is dead, as BREAKs on the serial console; then give its detectors a bounded moment
//! to print. The dumps land in console.log.

use super::boot::BootSession;
use super::run::CellRun;
use crate::host::guest::{self, Exec};
use std::time::{Duration, Instant};

impl CellRun<'_> {
    /// Returns what was done, for the cell's result.
    pub async fn forensics(&self, s: &mut BootSession, after: &str) -> String {
        self.note(format!(
            "collecting forensics after {after} (sysrq w, t, l)"
        ));
        let t = s.target.clone();
        let done = tokio::task::spawn_blocking(move || {
            let ssh = guest::connect(&t, Duration::from_secs(10))?;
            guest::exec(
                &ssh,
                "for k in w t l; do echo $k > /proc/sysrq-trigger; done",
                Exec::quick(Duration::from_secs(30)),
            )
        })
        .await;
        let ssh_error = match done {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("ssh thread failed: {e}")),
        };
        let how = match ssh_error {
            None => "sysrq w, t and l over ssh".to_string(),
            Some(e) => {
                self.note(format!(
                    "ssh unreachable ({e}); sysrq over the serial console"
                ));
                match s.console.sysrq(b"wtl", Duration::from_secs(30)).await {
                    Ok(()) => format!("sysrq w, t and l over the serial console (ssh unreachable: {e})"),
                    Err(se) => format!(
                        "no sysrq: ssh unreachable ({e}), serial console failed ({se}); console only"
                    ),
                }
            }
        };
        // The hung-task detector and the sysrq dumps print asynchronously.
        let wait = self
            .sh
            .plan
            .vm
            .hung_task_timeout
            .min(Duration::from_secs(15));
        let until = Instant::now() + wait;
        while Instant::now() < until && s.vm.qemu.try_wait().is_none() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        how
    }
}
