//! One cell's run: prepare, then boot and test (once, or `--repeat N` times on fresh
//! boots), then the verdict. The phases return `Result<_, Stop>`; the facts they gather
//! go into the cell's result as they are found, and [`CellRun::finish`] is the one
//! place a stop becomes the cell's verdict.

use super::prepare::Prepared;
use super::run::{CellRun, MAX_BOOTS};
use super::shared::Stop;
use crate::record::result::CellResult;
use crate::record::verdict::Verdict;
use std::time::Instant;

impl<'a> CellRun<'a> {
    /// The whole cell, cancellable at any await: the VM goes with the future, and what
    /// its console already said is still read.
    pub async fn run(mut self) -> CellResult {
        let start = Instant::now();
        let outcome = if self.sh.cancelled() {
            Err(Stop::new(
                Verdict::Interrupted,
                "run interrupted before this cell started",
            ))
        } else {
            let mut cancel = self.sh.cancel.clone();
            tokio::select! {
                r = self.phases() => r,
                _ = cancel.wait_for(|c| *c) => Err(Stop::cut_short()),
            }
        };
        let mut result = self.finish(outcome);
        result.seconds = start.elapsed().as_secs_f64();
        result
    }

    async fn phases(&mut self) -> Result<(), Stop> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Stop::infra(format!("{}: {e}", self.dir.display())))?;
        write_repro(self);
        let Some(prepared) = self.prepare().await? else {
            self.result.verdict = Verdict::Pass;
            self.result.reason = Some("built (build only)".into());
            return Ok(());
        };
        let n = self.sh.opts.repeat.max(1);
        if n == 1 {
            return self.attempt(&prepared).await;
        }
        // --repeat: fresh boots, each in its own folder; the cell reports the worst
        // verdict and how often each finding appeared.
        let mut runs = Vec::new();
        for i in 1..=n {
            self.note(format!("repeat {i}/{n}"));
            let mut sub = CellRun::new(self.sh, self.cell);
            sub.dir = self.dir.join(format!("repeat-{i}"));
            sub.result = CellResult::new(self.cell, sub.dir.clone());
            sub.result.source_id = self.result.source_id.clone();
            let out = sub.attempt(&prepared).await;
            runs.push(sub.finish(out));
        }
        // The reported boot's lock graph is the cell's, for the comparison with base.
        if let Some(worst) = crate::judge::combine_repeats(&mut self.result, runs) {
            for f in ["lockdep.txt", "lockdep_chains.txt"] {
                if worst.join(f).is_file() {
                    let _ = std::fs::copy(worst.join(f), self.dir.join(f));
                }
            }
        }
        Ok(())
    }

    /// Boot and test once, then judge.
    async fn attempt(&mut self, p: &Prepared) -> Result<(), Stop> {
        // Every wait inside has its own limit; this one bounds them all, whatever the
        // guest does.
        let limit = self.guest_deadline();
        let ran = match tokio::time::timeout(limit, self.boot_and_test(p)).await {
            Ok(r) => r,
            Err(_) => Err(Stop::infra(format!(
                "the boots and tests overran the cell's deadline of {}s (from the spec's boot and test timeouts); stopped",
                limit.as_secs()
            ))),
        };
        self.judge(ran)
    }

    /// The longest the boots and tests of this cell may take: every boot at its timeout,
    /// every test at its (emulation-scaled) timeout with room for what kmatrix does
    /// around it (amplification, counters, forensics), the liveness step, a margin.
    fn guest_deadline(&self) -> std::time::Duration {
        use std::time::Duration;
        let plan = &self.sh.plan;
        // KVM can fall back to TCG mid-cell: the slower factor holds.
        let scale = crate::record::plan::Accel::Tcg
            .slowdown(self.cell.arch)
            .max(4)
            / 4;
        let each = |limit: Duration, around: u64| {
            limit
                .saturating_mul(scale)
                .saturating_add(Duration::from_secs(around))
        };
        let boots = each(plan.vm.boot_timeout, 60).saturating_mul(MAX_BOOTS);
        plan.tests
            .iter()
            .filter(|t| t.applies_to(self.cell))
            .map(|t| each(t.timeout, 150))
            .chain(
                plan.selftests
                    .iter()
                    .map(|_| each(plan.selftest_timeout, 60)),
            )
            .fold(boots, Duration::saturating_add)
            .saturating_add(Duration::from_secs(600))
    }

    /// The verdict from what was collected (`judge::cell`); an early stop keeps its
    /// own verdict, but the findings and controls are recorded either way.
    fn judge(&mut self, ran: Result<(), Stop>) -> Result<(), Stop> {
        self.coverage_report();
        let facts = crate::judge::cell::Facts {
            tests: &self.sh.plan.tests,
            kernel: self.facts,
            liveness_line: self.liveness_line,
            liveness_skipped: self.liveness_skipped.as_deref(),
            completed: ran.is_ok(),
        };
        let judged = crate::judge::cell::judge(&mut self.result, &facts);
        let _ = crate::host::cache::write_atomic(
            &self.dir.join("findings.json"),
            serde_json::to_string_pretty(&crate::console::findings_json(&self.result.findings))
                .unwrap_or_default()
                .as_bytes(),
        );
        ran?;
        if let Some((v, why)) = judged {
            self.result.verdict = v;
            self.result.reason = why;
        }
        Ok(())
    }

    /// The one place a stop meets the facts: the cell's verdict and reason.
    fn finish(mut self, outcome: Result<(), Stop>) -> CellResult {
        // This run's phases come first: with --repeat the boots' own follow them.
        if let Ok(mut p) = self.phases.lock() {
            p.append(&mut self.result.phases);
            self.result.phases = std::mem::take(&mut *p);
        }
        if let Err(stop) = outcome {
            let mut reason = stop.reason;
            if stop.verdict == Verdict::Interrupted {
                let at = self.sh.phase_of(&self.cell.id());
                if let (true, Some(at)) = (stop.cut_short, at) {
                    reason = format!("{reason} during {}", at.describe());
                }
                self.collect_after_interrupt();
            }
            self.result.verdict = stop.verdict;
            self.result.reason = Some(reason);
            self.result.details.extend(stop.details);
        }
        self.result
    }

    /// An interrupted cell's VM went with its future; its console log (bounded) is read
    /// once for the reports it holds.
    fn collect_after_interrupt(&mut self) {
        if !self.result.findings.is_empty() {
            return;
        }
        if let Ok(f) = std::fs::File::open(self.dir.join("console.log")) {
            self.result.findings =
                crate::console::parse(std::io::BufReader::new(f)).unwrap_or_default();
        }
    }
}

/// One line that reproduces this cell alone.
fn write_repro(c: &CellRun) {
    let line = format!(
        "kmatrix run --spec {} --only '{}'\n",
        c.sh.plan.spec_path.display(),
        c.cell.id()
    );
    let _ = std::fs::write(c.dir.join("repro.txt"), line);
}
