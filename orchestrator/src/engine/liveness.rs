//! The liveness step, after the last test of every booted cell, for any spec: prove that
//! lockdep and the hung-task detector still work. A tiny module built against each
//! kernel (`guest-tests/modules/kmatrix_live`, embedded in kmatrix) provokes one tagged
//! lockdep report and one tagged hung-task report; the hung-task timeout is lowered for
//! the step and restored after it. Both reports are controls, never findings.
//!
//! The detector reports a task only at its second look at it, a timeout after the
//! first. So the module's kthread is started during the boot's last test (`arm`), a few
//! seconds before its expected end, held a second less than the spec's timeout (never
//! reported while the test runs), and the detector is made to look every 3 s meanwhile.
//! After the test, lowering the timeout to its least (1 s) wakes the detector, which has
//! seen the kthread already and reports it at once (or at its next look, within a second):
//! the step then costs about a quarter second instead of one, and the lock graph is
//! fetched meanwhile (`lockgraph`). Without that head start (a short or unarmed last
//! test, a hold that ran out) the module starts a kthread then, and the report comes a
//! second later. The timeout is lowered only after the last test: while tests run, a
//! second would report tasks that are merely slow under emulation.

use super::boot::BootSession;
use super::lockgraph;
use super::prepare::Prepared;
use super::run::CellRun;
use crate::console::Kind;
use crate::host::guest::{self, Exec};
use crate::judge::KernelFacts;
use crate::record::phase::Phase;
use crate::record::plan::TestSpec;
use crate::record::result::{LIVENESS, LIVENESS_TAG};
use std::time::{Duration, Instant};

/// The module's name (`kmatrix_live.ko`).
const MODULE: &str = crate::prepare::modules::LIVENESS.name;

/// The hung-task timeout during the step (seconds, the least the kernel takes), and how
/// long the module's kthread stays blocked: long enough for the detector to look twice
/// even when emulation delays its looks.
const HUNG_SECS: u32 = 1;
const HOLD_SECS: u32 = 12;

/// While armed, the detector looks every `ARM_LOOK_SECS` (the spec's timeout still
/// applies); the kthread is started `ARM_LEAD_MIN` or more before the last test's
/// expected end, so the detector has seen it at least a second before the test ends.
const ARM_LOOK_SECS: u32 = 3;
const ARM_LEAD_MIN: u64 = ARM_LOOK_SECS as u64 + 2;
/// The armed kthread's hold ends this long after the test's expected end: room for a
/// test that overruns a little and the commands between it and the step.
const ARM_AFTER_END: u64 = 4;
/// The step takes the fast path only when the kthread stays blocked this much longer.
const ARM_LEFT_MS: u32 = 2000;
/// Where the guest keeps the detector's settings the step changes.
const SAVED_TIMEOUT: &str = "/tmp/kmatrix-hung";
const SAVED_INTERVAL: &str = "/tmp/kmatrix-hung-interval";
const SYSCTL: &str = "/proc/sys/kernel";

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
            "cat {SAVED_TIMEOUT} > {SYSCTL}/hung_task_timeout_secs; \
             [ -f {SAVED_INTERVAL} ] && cat {SAVED_INTERVAL} > {SYSCTL}/hung_task_check_interval_secs; \
             echo {} > /dev/kmsg; {then}",
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

    /// The guest command that arms the step during `t`, the boot's last test (run in
    /// the background of its command, killed when it ends): `None` when the step would
    /// not run, or the spec's hung-task timeout leaves no room for a head start.
    pub fn arm(&self, p: &Prepared, t: &TestSpec) -> Option<String> {
        if !self.facts.hung_task
            || !p
                .kernel
                .modules
                .iter()
                .any(|m| m.name == MODULE && m.ko.is_some())
        {
            return None;
        }
        let expected = match &t.selftest {
            Some(s) => s.expected(),
            None => t.duration,
        };
        arm_command(expected, self.sh.plan.vm.hung_task_timeout)
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

/// The arming command for a last test expected to run `expected` under the spec's
/// hung-task `timeout`: after a delay, the module loaded with only its kthread, held a
/// second less than the timeout, and the detector's look interval saved and shortened.
fn arm_command(expected: Duration, timeout: Duration) -> Option<String> {
    let hold = timeout.as_secs().checked_sub(1)?;
    let lead = hold.checked_sub(ARM_AFTER_END)?;
    if lead < ARM_LEAD_MIN {
        return None;
    }
    let delay = expected.as_secs().saturating_sub(lead);
    // Only under the timeout the hold was sized for (a test may have changed it); writing
    // it again, unchanged, wakes the detector into the shorter interval.
    let secs = timeout.as_secs();
    Some(format!(
        "(sleep {delay}; [ \"$(cat {SYSCTL}/hung_task_timeout_secs)\" = {secs} ] && \
         cat {SYSCTL}/hung_task_check_interval_secs > {SAVED_INTERVAL} && \
         insmod /tests/{MODULE}.ko mode=hung hold_secs={hold} && \
         echo {ARM_LOOK_SECS} > {SYSCTL}/hung_task_check_interval_secs && \
         echo {secs} > {SYSCTL}/hung_task_timeout_secs) \
         </dev/null >/dev/null 2>&1"
    ))
}

/// A test's command with the arming command in its background, stopped when the test
/// ends (a test that ends early is not followed by a late arming); the test's status
/// is the command's.
pub fn with_arm(command: &str, arm: &str) -> String {
    format!("{arm} & kmatrix_arm=$!; {command}; rc=$?; kill $kmatrix_arm 2>/dev/null; exit $rc")
}

/// The step's first guest command: its start marker, the hung-task settings saved, a
/// blocked kthread made sure of (the armed one when it stays blocked long enough to be
/// reported, else a new one, the module loaded now when it was not armed), lockdep's
/// report provoked, and only then (when all that worked) the timeout lowered. lockdep's
/// report always comes from a write to the module's parameter, so every cell's lock
/// graph has the same path in it, armed or not.
fn begin_command(start: &str) -> String {
    let param = format!("/sys/module/{MODULE}/parameters");
    format!(
        "echo {} > /dev/kmsg; old=$(cat {SYSCTL}/hung_task_timeout_secs); echo $old > {SAVED_TIMEOUT}; \
         [ \"$(cat {SYSCTL}/hung_task_warnings)\" = 0 ] && echo 1 > {SYSCTL}/hung_task_warnings; \
         if [ -e {param}/left_ms ]; then \
           [ \"$(cat {param}/left_ms)\" -ge {ARM_LEFT_MS} ] || echo hung > {param}/provoke; \
         else insmod /tests/{MODULE}.ko mode=hung hold_secs={HOLD_SECS}; fi && \
         echo lockdep > {param}/provoke && \
         echo {HUNG_SECS} > {SYSCTL}/hung_task_timeout_secs",
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
    fn the_timeout_is_lowered_only_after_both_reports_were_provoked() {
        let c = begin_command("kmatrix-test[n]: start liveness");
        let param = "/sys/module/kmatrix_live/parameters";
        let insmod = c.find("insmod /tests/kmatrix_live.ko mode=hung").unwrap();
        let rearm = c.find(&format!("echo hung > {param}/provoke")).unwrap();
        let lockdep = c.find(&format!("echo lockdep > {param}/provoke")).unwrap();
        let lower = c
            .find(&format!(
                "echo {HUNG_SECS} > /proc/sys/kernel/hung_task_timeout_secs"
            ))
            .unwrap();
        assert!(
            insmod < lockdep && rearm < lockdep && lockdep < lower,
            "{c}"
        );
        // A module that does not load, or a report not provoked, leaves the timeout as
        // it was.
        assert!(c[insmod..lower].contains("fi && "), "{c}");
        assert!(c[lockdep..lower].contains(" && "), "{c}");
        // The old value is saved before anything changes it.
        assert!(c.find("> /tmp/kmatrix-hung;").unwrap() < rearm, "{c}");
        // The armed kthread is trusted only with time left on its hold.
        assert!(
            c.contains(&format!("-ge {ARM_LEFT_MS} ] || echo hung")),
            "{c}"
        );
    }

    #[test]
    fn the_arming_starts_so_the_hold_ends_after_the_test_and_never_reaches_the_timeout() {
        let ten = Duration::from_secs(10);
        // 8-s test, 10-s timeout: held 9 s from 3 s in, so 4 s past its end.
        let c = arm_command(Duration::from_secs(8), ten).unwrap();
        assert!(c.starts_with("(sleep 3;"), "{c}");
        assert!(c.contains("mode=hung hold_secs=9 "), "{c}");
        // The interval is saved before it changes, and the detector woken into it.
        let saved = c.find("> /tmp/kmatrix-hung-interval").unwrap();
        let set = c
            .find("echo 3 > /proc/sys/kernel/hung_task_check_interval_secs")
            .unwrap();
        assert!(
            saved < set && c[set..].contains("echo 10 > /proc/sys/kernel/hung_task_timeout_secs")
        );
        // Not when a test changed the timeout the hold was sized for.
        assert!(
            c.find("= 10 ] &&").unwrap() < c.find("insmod").unwrap(),
            "{c}"
        );
        assert!(c.ends_with("</dev/null >/dev/null 2>&1"), "{c}");
        // A long selftest is armed late, a short test at once.
        assert!(arm_command(Duration::from_secs(30), ten)
            .unwrap()
            .starts_with("(sleep 25;"));
        assert!(arm_command(Duration::from_secs(2), ten)
            .unwrap()
            .starts_with("(sleep 0;"));
        // A big timeout holds longer, from the start.
        let c = arm_command(Duration::from_secs(8), Duration::from_secs(120)).unwrap();
        assert!(
            c.starts_with("(sleep 0;") && c.contains("hold_secs=119 "),
            "{c}"
        );
        // Too short a timeout for a head start: the step provokes both reports itself.
        assert_eq!(
            arm_command(Duration::from_secs(8), Duration::from_secs(9)),
            None
        );
        assert_eq!(
            arm_command(Duration::from_secs(8), Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn an_armed_test_keeps_its_status_and_a_test_that_ended_is_not_armed_late() {
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("late");
        let arm = format!("(sleep 1; touch {})", late.display());
        let sh = |cmd: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .status()
                .unwrap()
        };
        // Killed by a signal: the status a shell gives it, as without the arming.
        let st = sh(&with_arm("sh -c 'kill -SEGV $$'", &arm));
        assert_eq!(st.code(), Some(139));
        assert_eq!(sh(&with_arm("sh -c 'exit 3'", &arm)).code(), Some(3));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!late.exists(), "armed after the test ended");
        // A test that runs past the delay is armed.
        assert!(sh(&with_arm("sleep 2", &arm)).success());
        assert!(late.exists());
    }
}
