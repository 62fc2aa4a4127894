//! The guest tests of a cell: each runs over SSH between two markers on the kernel log,
//! its output streamed (bounded) to `tests/<name>.ktap`, while the console task says
//! whether the kernel reported something that ends it: a hang report ends it at once, a
//! fatal one (oops, BUG, panic) after a grace period, and the tests after a fatal report
//! get a fresh boot (at most `MAX_BOOTS`).

use super::boot::{fill_share, BootPlan, BootSession};
use super::prepare::Prepared;
use super::run::{CellRun, MAX_BOOTS};
use super::shared::Stop;
use crate::console::{watcher::Watcher, Kind};
use crate::host::guest::{self, Exec};
use crate::judge::decide::{ends_the_boot, is_fatal, is_hang};
use crate::record::phase::Phase;
use crate::record::plan::TestSpec;
use crate::record::result::{Overlap, TestOutcome, TestResult};
use crate::record::verdict::Verdict;
use crate::vm::console::Budget;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a test cannot run in this cell: its selftest did not build against the tree's
/// headers, or its module did not build against the kernel (modpost's or the
/// compiler's words); there is nothing to run or load.
fn cannot_run(t: &TestSpec, p: &Prepared) -> Option<String> {
    if let Some(Err(why)) = t
        .selftest
        .as_ref()
        .and_then(|s| p.selftests.programs.get(s))
    {
        return Some(format!("selftest did not build: {why}"));
    }
    t.module_name()
        .and_then(|n| p.kernel.modules.iter().find(|m| m.name == n))
        .filter(|m| m.ko.is_none())
        .map(module_failure)
}

/// What the cell does after a test.
enum After {
    Next,
    /// The kernel is damaged (oops, BUG, panic; or the guest died): later tests need a
    /// fresh boot.
    Fatal,
    /// A hang: the cell is over after forensics.
    Hang,
    /// The host failed (a share daemon died, QEMU was killed from outside).
    Infra(Stop),
}

/// What the watch of a running test has seen so far.
struct Watch {
    /// Console line where the test began.
    from: usize,
    /// Raised to end the test (the SSH thread gives up on it).
    abandon: Arc<AtomicBool>,
    fatal_since: Option<Instant>,
    /// The title of a hang report that ended the test.
    hang: Option<String>,
    /// Why the results share was over its limit.
    flood: Option<String>,
    ticks: u32,
    /// A control's expected hang was seen: who held what then (asked once).
    holders: Option<Option<String>>,
}

impl Watch {
    /// How a test the watch abandoned ended, and what the cell does next.
    fn abandoned(&self) -> (TestOutcome, After) {
        if let Some(msg) = &self.flood {
            return (
                TestOutcome::Abandoned {
                    message: msg.clone(),
                },
                After::Fatal,
            );
        }
        match &self.hang {
            Some(title) => (
                TestOutcome::Abandoned {
                    message: format!("abandoned after a hang report ({title})"),
                },
                After::Hang,
            ),
            None => (
                TestOutcome::Abandoned {
                    message: "abandoned after a fatal kernel report".into(),
                },
                After::Fatal,
            ),
        }
    }
}

/// How the tests of one boot ended.
enum Ended {
    /// Every test given ran.
    All,
    /// The first `n` ran, then the kernel was damaged.
    Fatal(usize),
    /// No more tests in this cell.
    Over,
}

/// Kinds after which the kernel is damaged (lockdep and hung-task reports are not
/// fatal: tests go on after them).
/// How long a test may go on after a fatal report before it is abandoned (it can die
/// holding locks and never return).
const FATAL_GRACE: Duration = Duration::from_secs(15);

impl<'a> CellRun<'a> {
    /// Every applicable test, across as many boots as fatal reports need.
    pub async fn boot_and_test(&mut self, p: &Prepared) -> Result<(), Stop> {
        let results = self.dir.join("results");
        std::fs::create_dir_all(&results)
            .map_err(|e| Stop::infra(format!("{}: {e}", results.display())))?;
        // The share on a filesystem of its own, sized by the cell's limit (kept on disk
        // when this returns, however it returns).
        self.quota = match crate::host::quota::ResultsMount::mount(
            &results,
            self.sh.plan.limits.results_bytes,
            crate::host::quota::INODES,
        ) {
            Ok(m) => Some(m),
            Err(why) => {
                self.note(format!(
                    "results share without a quota mount ({why}); its size is watched instead"
                ));
                None
            }
        };
        std::fs::create_dir_all(self.dir.join("tests"))
            .map_err(|e| Stop::infra(format!("{}: {e}", self.dir.display())))?;
        let selftests: Vec<TestSpec> = self
            .sh
            .plan
            .selftests
            .iter()
            .map(|s| s.as_test(self.sh.plan.selftest_timeout))
            .collect();
        let all = self.tests_in_order(p, &selftests)?;
        self.facts = super::liveness::facts(p);
        let budget = Budget::new(self.sh.plan.limits.console_bytes);
        let mut done = 0;
        let mut boot = 1;
        let mut offset = 0;
        loop {
            let preamble = (boot > 1).then(|| {
                format!(
                    "\nkmatrix: boot {boot}, a fresh kernel for the tests after {}\n",
                    all[done - 1].name
                )
            });
            self.result
                .boot_lines
                .push(offset + if boot > 1 { 2 } else { 1 });
            let plan = BootPlan {
                n: boot,
                preamble,
                offset,
                budget: budget.clone(),
            };
            let mut s = match self.boot(p, plan).await {
                Ok(s) => s,
                Err((stop, w)) => {
                    if let Some(w) = w {
                        self.absorb(w);
                    }
                    return Err(disk_full_is_infra(stop, &self.dir));
                }
            };
            let ended = self.drive(&mut s, p, &all[done..]).await;
            let w = s.shutdown(Duration::from_secs(10)).await;
            offset = w.line();
            self.absorb(w);
            self.keep_share(&results);
            match ended {
                Ok(Ended::Fatal(n)) if done + n < all.len() && boot < MAX_BOOTS => {
                    self.note(format!(
                        "rebooting for the {} test(s) after {}",
                        all.len() - done - n,
                        all[done + n - 1].name
                    ));
                    done += n;
                    boot += 1;
                }
                Ok(_) => return Ok(()),
                Err(stop) => return Err(stop),
            }
        }
    }

    /// What one boot's console showed becomes the cell's: findings, where each test
    /// started, and what was not kept.
    fn absorb(&mut self, w: Watcher) {
        if let Some(span) = w
            .spans
            .iter()
            .find(|s| s.test == crate::record::result::LIVENESS)
        {
            self.liveness_line = Some(span.start);
        }
        for span in &w.spans {
            if let Some(t) = self
                .result
                .tests
                .iter_mut()
                .rev()
                .find(|t| t.name == span.test && t.console_line.is_none())
            {
                t.console_line = Some(span.start);
                // The latest: children a test kills on purpose fault before it.
                t.user_fault = w
                    .user_faults
                    .iter()
                    .rfind(|(during, _)| during.as_deref() == Some(span.test.as_str()))
                    .map(|(_, text)| text.clone());
            }
        }
        for (title, n) in &w.dropped {
            *self.result.dropped.entry(title.clone()).or_default() += n;
        }
        if w.truncated
            && !self
                .result
                .notes
                .iter()
                .any(|n| n.contains("console.log was truncated"))
        {
            self.result.notes.push(format!(
                "console.log was truncated at the console limit of {} bytes (every byte was still parsed)",
                self.sh.plan.limits.console_bytes
            ));
        }
        self.result.findings.extend(w.findings);
    }

    /// Run `tests` in order in this boot, then ask the guest to power off.
    async fn drive(
        &mut self,
        s: &mut BootSession,
        p: &Prepared,
        tests: &[&TestSpec],
    ) -> Result<Ended, Stop> {
        let mut before = vmstat(&s.ssh).await;
        if self.result.vmstat_before.is_empty() {
            self.result.vmstat_before = before.clone();
        }
        for (i, t) in tests.iter().enumerate() {
            if let Some(message) = cannot_run(t, p) {
                self.result
                    .tests
                    .push(TestResult::new(&t.name, TestOutcome::NotRun { message }));
                continue;
            }
            let amp = match self.amplify_before(s, p, t).await {
                Ok(a) => a,
                Err(message) => {
                    self.result
                        .tests
                        .push(TestResult::new(&t.name, TestOutcome::NotRun { message }));
                    continue;
                }
            };
            self.coverage_before(s).await;
            // The boot's last test gives the liveness step its head start.
            let arm = (i + 1 == tests.len()).then(|| self.arm(p, t)).flatten();
            let (mut result, after, counted) = self.run_test(s, t, arm).await;
            if s.vm.qemu.try_wait().is_none() && !matches!(after, After::Infra(_)) {
                self.coverage_after(s, &t.name).await;
            }
            if let Some(a) = &amp {
                result.amplify = Some(if s.vm.qemu.try_wait().is_none() {
                    crate::prepare::amplify::stop(&s.ssh, a, matches!(after, After::Next)).await
                } else {
                    a.result(Err("the guest was gone after the test".into()))
                });
            }
            if matches!(after, After::Next) {
                let now = match counted {
                    Some(now) => now,
                    None => vmstat(&s.ssh).await,
                };
                result.vmstat_delta = crate::parse::vmstat::vmstat_delta(&before, &now);
                before = now;
            }
            // A test that hung, or that a fatal report left stuck: the dumps say who
            // holds what.
            let hung = matches!(after, After::Hang)
                || (matches!(after, After::Fatal)
                    && matches!(result.outcome, TestOutcome::Abandoned { .. }));
            self.result.tests.push(result);
            if hung && s.vm.qemu.try_wait().is_none() {
                // After an oops the dumps still show who is stuck on the locks it left held.
                let what = if matches!(after, After::Fatal) {
                    "a fatal kernel report"
                } else {
                    "a hang"
                };
                let f = self.forensics(s, what).await;
                self.result.forensics = Some(match self.result.forensics.take() {
                    Some(before) => format!("{before}\n{f}"),
                    None => f,
                });
            }
            match after {
                After::Next => {}
                After::Fatal => return Ok(Ended::Fatal(i + 1)),
                After::Hang => return Ok(Ended::Over),
                After::Infra(stop) => return Err(stop),
            }
        }
        self.result.vmstat_after = before;
        // The liveness step's last command powers the guest off too (one round trip); it
        // saves the lock graph as it goes, else it is read here.
        let off = "sync; umount /results; reboot -f";
        if !self.liveness(s, p, off).await {
            self.save_lock_graph(s).await;
            let ssh = s.ssh.clone();
            let _ = tokio::task::spawn_blocking(move || guest::fire(&ssh, off)).await;
        }
        Ok(Ended::All)
    }

    /// One test, watching the console and the share daemons while it runs; with the
    /// guest's per-VMA lock counters read right after it, when they could be.
    async fn run_test(
        &mut self,
        s: &mut BootSession,
        t: &TestSpec,
        arm: Option<String>,
    ) -> (TestResult, After, Option<BTreeMap<String, u64>>) {
        self.phase(Phase::Test, t.name.clone());
        let out = self.dir.join("tests").join(format!("{}.ktap", t.name));
        // Timeouts are written for TCG on x86_64; slower setups get more.
        let timeout = t.timeout * s.vm.spec.accel.slowdown(self.cell.arch).max(4) / 4;
        let mut w = Watch {
            from: s.console.with(|w| w.line()),
            abandon: Arc::new(AtomicBool::new(false)),
            fatal_since: None,
            hang: None,
            flood: None,
            ticks: 0,
            holders: None,
        };
        let start = Instant::now();
        let mut task = self.spawn_exec(s, t, &out, timeout, &w.abandon, arm);
        let run = loop {
            tokio::select! {
                r = &mut task => break r,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            if let Some(stop) = self.watch(s, t, &mut w).await {
                // The host failed under the test: what it wrote so far is kept.
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut task).await;
                let mut r = TestResult::new(
                    &t.name,
                    TestOutcome::Abandoned {
                        message: "abandoned: virtiofsd exited".into(),
                    },
                );
                r.ktap = read_ktap(&out);
                r.seconds = start.elapsed().as_secs_f64();
                return (r, After::Infra(stop), None);
            }
        };
        if let Some(Some(h)) = w.holders.take() {
            self.result.forensics = Some(h);
        }
        let counted = self.end_marker(s, &t.name).await;
        let mut r = TestResult::new(&t.name, TestOutcome::Exited { status: -1 });
        // One read of the test's output for its cases, overlap and perf lines.
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        r.ktap = crate::parse::ktap::parse(&text);
        r.overlap = Overlap::from_ktap(&text);
        r.perf = crate::record::perf::from_ktap(&text);
        r.seconds = start.elapsed().as_secs_f64();
        let after;
        (r.outcome, after) = match run {
            Ok(Ok(x)) => (
                TestOutcome::Exited {
                    status: x.exit_status,
                },
                if w.fatal_since.is_some() {
                    After::Fatal
                } else {
                    After::Next
                },
            ),
            Ok(Err(guest::SshError::Timeout { .. })) => (
                TestOutcome::TimedOut {
                    message: format!("overran its timeout of {}s", timeout.as_secs()),
                },
                After::Hang,
            ),
            Ok(Err(guest::SshError::Abandoned { .. })) => w.abandoned(),
            Ok(Err(e)) => self.ssh_lost(s, t, e).await,
            Err(e) => (
                TestOutcome::HostError {
                    message: format!("ssh thread: {e}"),
                },
                After::Hang,
            ),
        };
        (r, after, counted)
    }

    /// The cell's tests in the order they run, the share filled with their programs. The
    /// kernel's selftests run after the spec's tests without positive controls and before
    /// those with: a control may turn lockdep off for the rest of the boot.
    fn tests_in_order<'t>(
        &self,
        p: &Prepared,
        selftests: &'t [TestSpec],
    ) -> Result<Vec<&'t TestSpec>, Stop>
    where
        'a: 't,
    {
        let spec: Vec<&TestSpec> = self
            .sh
            .plan
            .tests
            .iter()
            .filter(|t| t.applies_to(self.cell))
            .collect();
        fill_share(&self.dir.join("share"), p, &spec)?;
        Ok(spec
            .iter()
            .copied()
            .filter(|t| t.expect.is_empty())
            .chain(selftests.iter())
            .chain(spec.iter().copied().filter(|t| !t.expect.is_empty()))
            .collect())
    }

    /// After a boot: what the guest left in its share made safe to keep, and each
    /// test's KTAP as it wrote it there (a regular file: the sanitising removed links),
    /// next to what came back over SSH.
    fn keep_share(&mut self, results: &std::path::Path) {
        if let Some(why) = self.quota.as_ref().and_then(|q| q.full()) {
            self.result.notes.push(why);
        }
        let kept =
            crate::host::sanitize::results_folder(results, self.sh.plan.limits.results_bytes);
        self.result.notes.extend(kept.notes);
        for t in &mut self.result.tests {
            let f = results.join(format!("{}.ktap", t.name));
            let regular = std::fs::symlink_metadata(&f).is_ok_and(|m| m.is_file());
            if t.result_file.is_none() && regular {
                t.result_file = Some(f);
            }
        }
    }

    /// Race amplification (`amplify:`): the probes placed before the test (their
    /// counters are read after it); `Err` says why the test cannot run amplified.
    async fn amplify_before(
        &mut self,
        s: &BootSession,
        p: &Prepared,
        t: &TestSpec,
    ) -> Result<Option<crate::prepare::amplify::Setup>, String> {
        let Some(a) = t.amplified_in(self.cell) else {
            return Ok(None);
        };
        let Some(setup) =
            crate::prepare::amplify::Setup::new(self.cell, &self.sh.plan, a, &t.name, &self.dir)
        else {
            self.result.notes.push(format!("{} ran without amplification: the series changes no function and `amplify.functions` names none", t.name));
            return Ok(None);
        };
        crate::prepare::amplify::start(&s.ssh, &setup, &p.kernel.modules)
            .await
            .map_err(|why| format!("not amplified: {why}"))?;
        Ok(Some(setup))
    }

    /// The test's end marker, in a command of its own (a fresh nonce, made now); not when
    /// the guest is gone or SSH does not answer in time (the test's span stays open). The
    /// same command reads the per-VMA lock counters (one SSH round trip per test fewer);
    /// `None` when it did not answer.
    async fn end_marker(&self, s: &mut BootSession, test: &str) -> Option<BTreeMap<String, u64>> {
        if s.vm.qemu.try_wait().is_some() {
            return None;
        }
        let end = s.console.with_mut(|w| w.expect_marker("end", test));
        let (ssh, cmd) = (
            s.ssh.clone(),
            format!("echo {} > /dev/kmsg; {VMSTAT}", guest::shell_quote(&end)),
        );
        let r = tokio::task::spawn_blocking(move || {
            guest::exec(&ssh, &cmd, Exec::quick(Duration::from_secs(10)))
        })
        .await
        .ok()?
        .ok()?;
        Some(crate::parse::vmstat::parse_vmstat(&r.output))
    }

    /// The test's program over SSH on a blocking thread, its output streamed to `out`.
    fn spawn_exec(
        &self,
        s: &BootSession,
        t: &TestSpec,
        out: &std::path::Path,
        timeout: Duration,
        abandon: &Arc<AtomicBool>,
        arm: Option<String>,
    ) -> tokio::task::JoinHandle<Result<guest::ExecResult, guest::SshError>> {
        let start = s.console.with_mut(|w| w.expect_marker("start", &t.name));
        let cmd = command(t, &start);
        let (ssh, cmd, out, flag) = (
            s.ssh.clone(),
            match arm {
                Some(a) => super::liveness::with_arm(&cmd, &a),
                None => cmd,
            },
            out.to_owned(),
            abandon.clone(),
        );
        let limit = self.sh.plan.limits.test_output_bytes;
        tokio::task::spawn_blocking(move || {
            guest::exec(
                &ssh,
                &cmd,
                Exec {
                    timeout,
                    out: Some(&out),
                    out_limit: limit,
                    keep: 0,
                    abandon: Some(&flag),
                },
            )
        })
    }

    /// One look at a running test (every 200 ms): the results share's size, the share
    /// daemons, the kernel's reports since the test began. Raises the abandon flag when
    /// the test must end; returns the host's failure when a share daemon died.
    async fn watch(&self, s: &mut BootSession, t: &TestSpec, w: &mut Watch) -> Option<Stop> {
        w.ticks += 1;
        // The share is on the host's disk: a guest that writes without end is stopped,
        // not allowed to fill it.
        let limit = self.sh.plan.limits.results_bytes;
        if self.quota.is_none()
            && w.ticks % 5 == 0
            && w.flood.is_none()
            && folder_bytes(&self.dir.join("results")) > limit
        {
            let msg = format!(
                "the guest wrote more than the results limit of {limit} bytes into results/"
            );
            self.note(format!("{msg}; ending the test"));
            w.flood = Some(msg);
            w.abandon.store(true, Ordering::Relaxed);
        }
        // Without virtiofsd the guest's file I/O to its shares blocks for good: the
        // host's fault, and no later test could be judged.
        if let Some((tag, st, tail)) = s.shares.exited().await {
            w.abandon.store(true, Ordering::Relaxed);
            return Some(
                Stop::infra(format!(
                    "virtiofsd ({tag} share) exited ({st}) during {}, not by the guest",
                    t.name
                ))
                .details(
                    tail.lines()
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("virtiofsd| {l}"))
                        .collect(),
                ),
            );
        }
        let (fatal, hang_title) = s.console.with(|c| reports_since(c, w.from));
        if w.fatal_since.is_none() && fatal {
            self.note(format!("kernel reported a fatal error during {}", t.name));
            w.fatal_since = Some(Instant::now());
        }
        let expects_hang = t.expect.iter().any(|e| e.kind == Kind::HungTask);
        if expects_hang && w.holders.is_none() && super::forensics::hang_reported(s, w.from) {
            w.holders = Some(self.holders_snapshot(s, &t.name).await);
        }
        if let Some(title) = hang_title.filter(|_| !expects_hang && w.hang.is_none()) {
            // The kernel already said what is stuck: waiting out the test's deadline
            // would only cost time.
            self.note(format!(
                "hang report during {}: {title}; ending the test",
                t.name
            ));
            w.hang = Some(title);
            w.abandon.store(true, Ordering::Relaxed);
        }
        if w.fatal_since.is_some_and(|f| f.elapsed() > FATAL_GRACE) {
            w.abandon.store(true, Ordering::Relaxed);
        }
        None
    }

    /// The SSH connection broke during a test: QEMU gone by itself (panic, reboot), killed
    /// from outside (the host's problem), or still running with the guest not answering.
    async fn ssh_lost(
        &self,
        s: &mut BootSession,
        t: &TestSpec,
        e: guest::SshError,
    ) -> (TestOutcome, After) {
        // The connection can drop a moment before QEMU's exit is visible.
        let status = match s.vm.qemu.try_wait() {
            Some(st) => Some(st),
            None => tokio::time::timeout(Duration::from_secs(2), s.vm.qemu.wait())
                .await
                .ok()
                .and_then(|r| r.ok()),
        };
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.and_then(|st| st.signal()) {
            let stop = Stop::infra(format!(
                "QEMU was killed by signal {sig} during {} (not by the guest)",
                t.name
            ));
            return (
                TestOutcome::HostError {
                    message: format!("QEMU was killed by signal {sig}"),
                },
                After::Infra(stop),
            );
        }
        match status {
            // panic=-1 and -no-reboot: a panicking guest ends QEMU by itself.
            Some(_) if s.console.with(|w| w.panicked) => (
                TestOutcome::GuestDied {
                    message: "the kernel panicked during the test (QEMU exited by itself)".into(),
                },
                After::Fatal,
            ),
            Some(_) => (
                TestOutcome::GuestDied {
                    message: format!("guest died during the test ({e})"),
                },
                After::Fatal,
            ),
            None => (
                TestOutcome::Unresponsive {
                    message: format!("the guest stopped answering SSH during the test ({e})"),
                },
                After::Hang,
            ),
        }
    }
}

/// Since console line `from`: was there a fatal report, and the title of a hang report
/// (an open one has no title yet: its kind's name stands in).
fn reports_since(w: &Watcher, from: usize) -> (bool, Option<String>) {
    let recent = w.findings.iter().filter(|f| f.line > from);
    let mut fatal = false;
    let mut hang = None;
    for f in recent {
        fatal |= ends_the_boot(f);
        if hang.is_none() && is_hang(f.kind) {
            hang = Some(f.title.clone());
        }
    }
    for k in w.open_kinds() {
        fatal |= is_fatal(k);
        if hang.is_none() && is_hang(k) {
            hang = Some(format!("a {k:?} report"));
        }
    }
    (fatal, hang)
}

/// Bytes of regular files under `dir` (the results share; never follows links).
fn folder_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Where a test's program runs from: a copy in the guest's tmpfs, not the read-only
/// share. Programs executed from the virtiofs share crashed at start-up after tests that
/// move or reclaim page cache (NUMA migration, binder's shrinker through drop_caches):
/// 2 of 4 boots, none in 8 when run from a copy (bench/RESULTS.md). The share carries the
/// programs; it is not what the tests test.
const RUN_DIR: &str = "/tmp/kmatrix-bin";

/// The guest command of a test: its start marker on the kernel log (so findings can be
/// placed in it), then the program, copied out of the share and run with its arguments
/// quoted for the guest's shell. The end marker is written by a command of its own once
/// the test is over: its nonce does not exist while the test runs, so the test cannot
/// forge it.
fn command(t: &TestSpec, start: &str) -> String {
    let marker = format!("echo {} > /dev/kmsg", guest::shell_quote(start));
    // Test names are plain names (spec validation), so they are safe in a path.
    let copy = |from: &str| {
        format!(
            "mkdir -p {RUN_DIR} && cp /tests/{from} {RUN_DIR}/{name}",
            name = t.name
        )
    };
    if let Some(s) = &t.selftest {
        // As kselftest runs them: from a scratch folder, no arguments.
        return format!(
            "{marker}; {} && cd /tmp && {RUN_DIR}/{}",
            copy(&s.file()),
            t.name
        );
    }
    let args: Vec<String> = t.args.iter().map(|a| guest::shell_quote(a)).collect();
    format!(
        "{marker}; {} && {RUN_DIR}/{name} {secs} /results/{name}.ktap {args}",
        copy(&t.name),
        name = t.name,
        secs = t.duration.as_secs().max(1),
        args = args.join(" "),
    )
}

fn read_ktap(path: &std::path::Path) -> crate::parse::ktap::Report {
    crate::parse::ktap::parse(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Per-VMA-lock counters (CONFIG_PER_VMA_LOCK_STATS): evidence that the stress really
/// went through the per-VMA-lock paths. Empty without them (pvl-off).
/// The guest command that prints the per-VMA lock counters.
const VMSTAT: &str = "grep ^vma_lock /proc/vmstat";

async fn vmstat(ssh: &Arc<ssh2::Session>) -> BTreeMap<String, u64> {
    let s = ssh.clone();
    tokio::task::spawn_blocking(move || {
        guest::exec(&s, VMSTAT, Exec::quick(Duration::from_secs(20)))
    })
    .await
    .ok()
    .and_then(|r| r.ok())
    .map(|r| crate::parse::vmstat::parse_vmstat(&r.output))
    .unwrap_or_default()
}

/// A module build failure as one line, modpost's `undefined!` explained.
fn module_failure(m: &crate::prepare::build::ModuleBuild) -> String {
    let first = m.errors.first().cloned().unwrap_or_default();
    let hint = if first.contains("undefined!") {
        " (the kernel does not export that symbol to modules)"
    } else {
        ""
    };
    format!(
        "module {}.ko did not build against this kernel: {first}{hint}",
        m.name
    )
}

/// QEMU drops console output it cannot write: a guest that "never booted" on a full
/// disk is the host's problem, not the kernel's.
fn disk_full_is_infra(stop: Stop, dir: &std::path::Path) -> Stop {
    let full = nix::sys::statvfs::statvfs(dir)
        .map(|st| st.blocks_available() * st.fragment_size() < 1 << 20)
        .unwrap_or(false);
    if stop.verdict == Verdict::BootFail && full {
        Stop::infra(format!(
            "{}; the disk holding {} is full, so the console could not be written",
            stop.reason,
            dir.display()
        ))
        .details(stop.details)
    } else {
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_command_marks_the_kernel_log_and_quotes_arguments() {
        let t = TestSpec {
            name: "faults_vs_writers".into(),
            source: "x.c".into(),
            module: None,
            args: vec!["a b".into(), "$(reboot)".into()],
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            patchsets: None,
            configs: None,
            arches: None,
            expect: vec![],
            selftest: None,
            amplify: None,
        };
        let c = command(&t, "kmatrix-test[n1]: start faults_vs_writers");
        assert_eq!(c, "echo 'kmatrix-test[n1]: start faults_vs_writers' > /dev/kmsg; mkdir -p /tmp/kmatrix-bin && cp /tests/faults_vs_writers /tmp/kmatrix-bin/faults_vs_writers && /tmp/kmatrix-bin/faults_vs_writers 10 /results/faults_vs_writers.ktap 'a b' '$(reboot)'");
        assert!(
            !c.contains("end"),
            "the end marker is written apart, after the test"
        );
    }
}
