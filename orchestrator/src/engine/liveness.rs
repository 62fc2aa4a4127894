//! The liveness step, after the last test of every booted cell, for any spec: prove that
//! lockdep and the hung-task detector still work. A tiny module built against each
//! kernel (`guest-tests/modules/kmatrix_live`, embedded in kmatrix) provokes one tagged
//! lockdep report and one tagged hung-task report; the hung-task timeout is lowered for
//! the step and restored after it. Both reports are controls, never findings.
//!
//! The step costs about one second, and the lock graph is fetched meanwhile
//! (`lockgraph`): the module is loaded before the timeout is lowered, and writing the
//! timeout wakes the detector, whose first look (at once) finds the blocked kthread and
//! whose second (a timeout later) reports it. The timeout is lowered
//! only after the last test: while tests run, a second would report tasks that are merely
//! slow under emulation.

use super::boot::BootSession;
use super::lockgraph;
use super::prepare::Prepared;
use super::run::CellRun;
use crate::console::Kind;
use crate::host::guest::{self, Exec};
use crate::judge::KernelFacts;
use crate::record::phase::Phase;
use crate::record::result::{LIVENESS, LIVENESS_TAG};
use std::time::{Duration, Instant};

/// The module's name (`kmatrix_live.ko`).
const MODULE: &str = crate::prepare::modules::LIVENESS.name;

/// The hung-task timeout during the step (seconds, the least the kernel takes), and how
/// long the module's kthread stays blocked: long enough for the detector to look twice
/// even when emulation delays its looks.
const HUNG_SECS: u32 = 1;
const HOLD_SECS: u32 = 12;

impl CellRun<'_> {
    /// Run the step in this boot (all tests done). What it finds is judged with the
    /// rest of the cell's findings; `liveness_skipped` says why when it cannot run.
    /// `then` is the guest's last command, run after the step's end marker when the step
    /// ran: true when it was sent.
    pub async fn liveness(&mut self, s: &mut BootSession, p: &Prepared, then: &str) -> bool {
        if !self.facts.lockdep && !self.facts.hung_task {
            return false;
        }
        let Some(m) = p.kernel.modules.iter().find(|m| m.name == MODULE) else {
            self.liveness_skipped = Some("no liveness module for this kernel".into());
            return false;
        };
        if m.ko.is_none() {
            self.liveness_skipped = Some(format!(
                "the liveness module did not build: {}",
                m.errors.first().cloned().unwrap_or_default()
            ));
            return false;
        }
        self.phase(Phase::Test, "liveness (lockdep, hung-task)");
        let start = Instant::now();
        let from = s.console.with(|w| w.line());
        let begin = begin_command(&s.console.with_mut(|w| w.expect_marker("start", LIVENESS)));
        if let Err(e) = self.guest(s, begin).await {
            self.liveness_skipped = Some(format!("could not load the liveness module: {e}"));
            return false;
        }
        // The lock graph, frozen by the module's lockdep report, is read while the
        // detector takes its second look.
        let graph = self.facts.lockdep.then(|| lockgraph::spawn_fetch(&s.ssh));
        // lockdep's report came with the module; the hung-task report comes one lowered
        // timeout after the look its write caused. The wait ends at the report's first
        // line. Under emulation everything takes longer.
        let slow = s.vm.spec.accel.slowdown(self.cell.arch).max(4) / 4;
        let until = Instant::now() + Duration::from_secs(30 * slow as u64);
        while Instant::now() < until && s.vm.qemu.try_wait().is_none() {
            let seen = s.console.with(|w| {
                w.findings.iter().any(|f| {
                    f.line > from && f.kind == Kind::HungTask && f.report.contains(LIVENESS_TAG)
                }) || w.open_kinds().contains(&Kind::HungTask)
            });
            if seen {
                break;
            }
            s.console.changed(Duration::from_millis(500)).await;
        }
        if let Some(g) = graph {
            if let Ok(got) = g.await {
                self.store_lock_graph(got, true);
            }
        }
        let end = format!(
            "cat /tmp/kmatrix-hung > /proc/sys/kernel/hung_task_timeout_secs; echo {} > /dev/kmsg; {then}",
            guest::shell_quote(&s.console.with_mut(|w| w.expect_marker("end", LIVENESS)))
        );
        self.note(format!(
            "liveness step took {:.1}s",
            start.elapsed().as_secs_f64()
        ));
        let ssh = s.ssh.clone();
        let _ = tokio::task::spawn_blocking(move || guest::fire(&ssh, &end)).await;
        true
    }

    async fn guest(&self, s: &BootSession, cmd: String) -> Result<(), String> {
        let ssh = s.ssh.clone();
        let r = tokio::task::spawn_blocking(move || {
            guest::exec(&ssh, &cmd, Exec::quick(Duration::from_secs(60)))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if r.exit_status == 0 {
            Ok(())
        } else {
            Err(format!("exit {}: {}", r.exit_status, r.output.trim()))
        }
    }
}

/// The step's first guest command: its start marker, the hung-task settings saved, the
/// module loaded, and only then (when it loaded) the timeout lowered.
fn begin_command(start: &str) -> String {
    format!(
        "echo {} > /dev/kmsg; old=$(cat /proc/sys/kernel/hung_task_timeout_secs); echo $old > /tmp/kmatrix-hung; \
         [ \"$(cat /proc/sys/kernel/hung_task_warnings)\" = 0 ] && echo 1 > /proc/sys/kernel/hung_task_warnings; \
         insmod /tests/{MODULE}.ko mode=all hold_secs={HOLD_SECS} && \
         echo {HUNG_SECS} > /proc/sys/kernel/hung_task_timeout_secs",
        guest::shell_quote(start)
    )
}

/// The kernel's facts from its final config.
pub fn facts(p: &Prepared) -> KernelFacts {
    KernelFacts::from_config(&std::fs::read_to_string(&p.kernel.config).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_is_lowered_only_after_the_module_loaded() {
        let c = begin_command("kmatrix-test[n]: start liveness");
        let insmod = c.find("insmod /tests/kmatrix_live.ko mode=all").unwrap();
        let lower = c
            .find(&format!(
                "echo {HUNG_SECS} > /proc/sys/kernel/hung_task_timeout_secs"
            ))
            .unwrap();
        assert!(insmod < lower, "{c}");
        // A module that does not load leaves the timeout as it was.
        assert!(c[insmod..lower].contains("&&"), "{c}");
        // The old value is saved before anything changes it.
        assert!(c.find("> /tmp/kmatrix-hung").unwrap() < insmod, "{c}");
    }
}
