//! What a cell is expected to cost, in seconds, from what is known before it runs: its
//! kernel (cached, or a build of so many objects), its boots and tests (measured in the
//! last run, else modelled from the spec's tests), and the rates this run measures as it
//! goes (seconds per compiled object, guest time against the model). The run's ETA is
//! `record::schedule::simulate` over these.

use crate::record::plan::{Accel, Arch, Cell, Plan};

/// A cell's kernel step as expected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KernelExpect {
    /// From the cache: no make.
    Cached,
    /// A build compiling about this many objects (`cold`: a whole config).
    Build { objects: u64, cold: bool },
    /// Not known (the probe failed): a cold build is the pessimistic side.
    Unknown,
}

/// Where a cell's guest time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestFrom {
    /// The same cell's boots and tests in the last run.
    LastRun,
    /// The spec's tests and the boot model ([`guest_model`]).
    Model,
    /// No guest (`kmatrix build`).
    None,
}

/// What the run expects of one cell before it runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellExpect {
    pub kernel: KernelExpect,
    pub guest_secs: f64,
    pub guest_from: GuestFrom,
}

/// Rates to turn objects and modelled guest seconds into time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Wall seconds per compiled object in make's main build.
    pub per_object: f64,
    /// Wall seconds a build spends outside compiling objects (config, link, modules).
    pub build_fixed: f64,
    /// Real guest time over modelled guest time.
    pub guest_factor: f64,
}

/// Objects a cold build compiles when nothing better is known (the project's x86_64
/// configs: ~1350; an arm64 config somewhat more).
pub fn prior_cold_objects(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 1350,
        Arch::Arm64 => 1500,
    }
}

/// The share of a cold build an incremental one recompiles when the slot has no count of
/// its own: the project's series touch headers most objects include (870 of 1350).
pub const PRIOR_INCREMENTAL_SHARE: f64 = 0.65;

/// The rates before the run has measured anything, as a range (fast, slow) for `cores`:
/// a cold build of 1356 objects took 294 s with both cores of an idle 2-core machine
/// (0.2 s per object); with other builds beside it, 1027 s (0.75 s), and incremental
/// builds of ~870 objects 966-1452 s (1.1-1.7 s).
pub fn prior_rates(cores: usize) -> (Rates, Rates) {
    let cores = cores.max(1) as f64;
    (
        Rates {
            per_object: 0.3 / cores,
            build_fixed: 40.0,
            guest_factor: 0.85,
        },
        Rates {
            per_object: 3.2 / cores,
            build_fixed: 120.0,
            guest_factor: 1.5,
        },
    )
}

/// Seconds of a kernel step.
pub fn kernel_secs(k: KernelExpect, arch: Arch, r: &Rates) -> f64 {
    match k {
        KernelExpect::Cached => 2.0,
        KernelExpect::Build { objects, .. } => r.build_fixed + objects as f64 * r.per_object,
        KernelExpect::Unknown => r.build_fixed + prior_cold_objects(arch) as f64 * r.per_object,
    }
}

/// Seconds of a cell's guest part (boots, tests, liveness, judging).
pub fn guest_secs(e: &CellExpect, r: &Rates) -> f64 {
    match e.guest_from {
        GuestFrom::LastRun => e.guest_secs,
        GuestFrom::Model => e.guest_secs * r.guest_factor,
        GuestFrom::None => 0.0,
    }
}

/// A cell's guest part modelled from the spec: a boot to SSH and the liveness step under
/// TCG (~12 s on x86_64: a warm cell took 108.8 s for 96 s of tests), every test that
/// applies for its duration plus ~0.5 s around it, each selftest ~3 s (their own
/// durations are short but for `proc-maps-race`, 30 s; bench/RESULTS.md).
pub fn guest_model(plan: &Plan, cell: &Cell) -> f64 {
    let slow = f64::from(Accel::Tcg.slowdown(cell.arch)) / 4.0;
    let tests: f64 = plan
        .tests
        .iter()
        .filter(|t| t.applies_to(cell))
        .map(|t| t.duration.as_secs_f64() + 0.5 * slow)
        .sum();
    12.0 * slow + tests + plan.selftests.len() as f64 * 3.0 * slow
}

/// The cell's guest time in `last` (an earlier run's results): from its boot to its end,
/// when it booted and was not cut short.
pub fn guest_in(last: &crate::record::result::CellResult) -> Option<f64> {
    use crate::record::phase::Phase;
    use crate::record::verdict::Verdict;
    if matches!(last.verdict, Verdict::Interrupted | Verdict::InfraError) {
        return None;
    }
    let start = last.phases.first()?.at;
    let boot = last.phases.iter().find(|p| p.phase == Phase::Boot)?.at;
    let guest = start + last.seconds - boot;
    (guest > 0.0 && guest.is_finite()).then_some(guest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_and_guest_seconds_follow_the_rates() {
        let r = Rates {
            per_object: 0.2,
            build_fixed: 40.0,
            guest_factor: 1.5,
        };
        let b = KernelExpect::Build {
            objects: 1000,
            cold: true,
        };
        assert_eq!(kernel_secs(b, Arch::X86_64, &r), 240.0);
        assert_eq!(kernel_secs(KernelExpect::Cached, Arch::X86_64, &r), 2.0);
        let e = |from| CellExpect {
            kernel: b,
            guest_secs: 100.0,
            guest_from: from,
        };
        assert_eq!(guest_secs(&e(GuestFrom::Model), &r), 150.0);
        assert_eq!(guest_secs(&e(GuestFrom::LastRun), &r), 100.0, "measured");
        assert_eq!(guest_secs(&e(GuestFrom::None), &r), 0.0);
    }

    #[test]
    fn the_prior_range_holds_both_measured_builds() {
        // 2 cores: 294 s / 1356 objects idle; loaded, 1027 s / 1356 and 1452 s / 872.
        let (fast, slow) = prior_rates(2);
        let k = |o| KernelExpect::Build {
            objects: o,
            cold: true,
        };
        assert!(kernel_secs(k(1356), Arch::X86_64, &fast) <= 294.0);
        assert!(kernel_secs(k(1356), Arch::X86_64, &slow) >= 1027.0);
        assert!(kernel_secs(k(872), Arch::X86_64, &slow) >= 1452.0);
    }
}
