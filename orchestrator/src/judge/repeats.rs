//! `--repeat N`: N boots of one cell folded into its result.

use crate::record::result::CellResult;
use std::path::PathBuf;

/// Fold N repeated boots of one cell into its result: the worst verdict (its reason and
/// evidence), every distinct finding once, and per finding how many boots showed it.
/// Returns the folder of the boot the cell reports (the worst one).
pub fn combine_repeats(into: &mut CellResult, runs: Vec<CellResult>) -> Option<PathBuf> {
    into.repeats = runs.len() as u32;
    let worst = runs.iter().max_by_key(|r| r.verdict.severity())?;
    into.verdict = worst.verdict;
    into.reason = worst.reason.clone().map(|r| {
        let times = runs.iter().filter(|x| x.verdict == worst.verdict).count();
        format!("{r} ({times}/{} boots)", runs.len())
    });
    into.details = worst.details.clone();
    into.accel = worst.accel;
    into.accel_note = worst.accel_note.clone();
    into.tests = worst.tests.clone();
    into.controls = worst.controls.clone();
    into.vmstat_before = worst.vmstat_before.clone();
    into.vmstat_after = worst.vmstat_after.clone();
    into.forensics = worst.forensics.clone();
    into.detectors = worst.detectors.clone();
    into.series_coverage = worst.series_coverage.clone();
    into.ssh_ready_secs = worst.ssh_ready_secs;
    into.kernel_init_secs = worst.kernel_init_secs;
    into.guest_cpus = worst.guest_cpus;
    // The cell booted if its reported boot did (attribution counts booted cells).
    into.boot_lines = worst.boot_lines.clone();
    into.perf_boots = runs.iter().flat_map(crate::judge::perf::boots).collect();
    for r in &runs {
        into.notes.extend(r.notes.iter().cloned());
        // Each boot's phases follow the shared ones (source to image) on the timeline.
        into.phases.extend(r.phases.iter().cloned());
        let mut seen = std::collections::BTreeSet::new();
        for f in &r.findings {
            if seen.insert(f.title.clone()) {
                *into.finding_rates.entry(f.title.clone()).or_default() += 1;
            }
            if !into.findings.iter().any(|g| g.title == f.title) {
                into.findings.push(f.clone());
            }
        }
    }
    into.notes.dedup();
    Some(worst.dir.clone())
}
