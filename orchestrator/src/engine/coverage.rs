//! Series coverage in a cell's run (`prepare::coverage` does the work): after the
//! kernel is there, the map of what the config built of the series (a config that
//! builds none of it is UNTESTED, not booted); around each test, the guest's counters
//! zeroed and copied back; after the last, the counts measured into the cell's result.

use super::boot::BootSession;
use super::run::{CellCoverage, CellRun};
use super::shared::Stop;
use crate::host::guest;
use crate::prepare::coverage::{self, Map, Series};
use crate::record::verdict::Verdict;
use std::time::Duration;

/// How long a coverage command in the guest may take.
const QUICK: Duration = Duration::from_secs(30);

impl CellRun<'_> {
    /// After the kernel: the series' map; a config that builds none of the series
    /// stops the cell as UNTESTED with the reason (the option a file needs).
    pub fn coverage_map(&mut self) -> Result<(), Stop> {
        let series = Series::read(self.cell.series(&self.sh.plan));
        if series.is_empty() {
            return Ok(());
        }
        let dir = self.dir.join("coverage");
        let map = match Map::load(&dir) {
            Ok(m) => m,
            Err(e) => {
                // A kernel built before kmatrix mapped coverage, or a map that failed:
                // the cell runs, without a coverage claim.
                self.result
                    .notes
                    .push(format!("no series coverage for this kernel: {e}"));
                return Ok(());
            }
        };
        let nothing = coverage::report(&map, &[]);
        if !map.builds_anything() {
            let why = nothing.summary.clone();
            self.result.series_coverage = Some(nothing);
            return Err(Stop::new(Verdict::Untested, why));
        }
        self.coverage = Some(CellCoverage {
            series,
            map,
            dir,
            counts: Vec::new(),
            unmeasurable: None,
        });
        Ok(())
    }

    /// Before a test: the guest's gcov counters zeroed, so the test's are its own.
    pub async fn coverage_before(&mut self, s: &BootSession) {
        let Some(c) = &self.coverage else { return };
        if c.map.profiled.is_empty() || c.unmeasurable.is_some() {
            return;
        }
        // The first boot's own run of the series (an initcall it changes) before the
        // first reset: counted as `(boot)`, or a boot-time change would never have run.
        if c.counts.is_empty() {
            self.coverage_after(s, coverage::guest::BOOT).await;
        }
        if let Err(e) = guest::quick(&s.ssh, coverage::guest::before_test(), QUICK).await {
            let why = format!(
                "series coverage not measured: the guest's gcov counters cannot be reset ({e})"
            );
            self.note(why.clone());
            if let Some(c) = &mut self.coverage {
                c.unmeasurable = Some(why);
            }
        }
    }

    /// After a test (the guest alive): its counters copied to the results share, then
    /// measured against the kernel's notes.
    pub async fn coverage_after(&mut self, s: &BootSession, test: &str) {
        let Some(c) = &self.coverage else { return };
        if c.map.profiled.is_empty() || c.unmeasurable.is_some() {
            return;
        }
        let Some(cmd) = c.series.after_test(test) else {
            return;
        };
        let copied = guest::quick(&s.ssh, cmd, QUICK).await;
        let counters = self
            .dir
            .join("results")
            .join(coverage::guest::RESULTS_DIR)
            .join(test);
        let mut counts = coverage::measure(&c.map, &c.dir, test, &counters).await;
        if let Err(e) = copied {
            counts
                .missing
                .push(format!("{test}: the counters were not copied ({e})"));
        }
        if let Some(c) = &mut self.coverage {
            c.counts.push(counts);
        }
    }

    /// The cell's series coverage from every test measured (before it is judged).
    pub fn coverage_report(&mut self) {
        if let Some(c) = &self.coverage {
            let mut r = coverage::report(&c.map, &c.counts);
            r.notes.extend(c.unmeasurable.iter().cloned());
            self.result.series_coverage = Some(r);
        }
    }
}
