//! Evidence rules: what the kernel has (from its config), whether the detectors were
//! proven alive, and whether the stress reached the per-VMA-lock path it is about.

use crate::record::finding::Kind;
use crate::record::result::{
    Control, ControlState, Detector, Detectors, TestOutcome, TestResult, LIVENESS,
};
use std::collections::BTreeMap;

/// What the kernel has, from its final `.config`, that the evidence rules depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelFacts {
    pub lockdep: bool,
    pub hung_task: bool,
    pub per_vma_lock: bool,
    pub per_vma_lock_stats: bool,
}

impl KernelFacts {
    pub fn from_config(config: &str) -> KernelFacts {
        let c = crate::parse::kconfig::parse(config);
        let on = |s: &str| c.get(s).is_some_and(|v| v == "y");
        KernelFacts {
            lockdep: on("PROVE_LOCKING") || on("LOCKDEP"),
            hung_task: on("DETECT_HUNG_TASK"),
            per_vma_lock: on("PER_VMA_LOCK"),
            per_vma_lock_stats: on("PER_VMA_LOCK_STATS"),
        }
    }
}

/// The detectors' state from the liveness controls (`None`: the step did not run, and
/// `skipped` says why).
pub fn detectors(controls: &[Control], facts: KernelFacts, skipped: Option<&str>) -> Detectors {
    let one = |built: bool, kind: Kind| {
        if !built {
            return Detector::NotBuilt;
        }
        if let Some(why) = skipped {
            return Detector::NotChecked {
                why: why.to_string(),
            };
        }
        match controls
            .iter()
            .find(|c| c.test == LIVENESS && c.expect.kind == kind)
            .map(|c| &c.state)
        {
            Some(ControlState::Fired { .. }) => Detector::Alive,
            Some(ControlState::NotJudged { why }) => Detector::Dead { why: why.clone() },
            Some(ControlState::Silent) => Detector::Dead {
                why: "its tagged liveness report did not come".into(),
            },
            None => Detector::NotChecked {
                why: "no liveness step".into(),
            },
        }
    };
    Detectors {
        lockdep: one(facts.lockdep, Kind::Lockdep),
        hung_task: one(facts.hung_task, Kind::HungTask),
    }
}

/// The stress programs' claim checked against the kernel's own counters: with per-VMA
/// lock statistics built, a stress test (one that prints overlap evidence) whose run left
/// `vma_lock_success` unchanged did not exercise the path it is about. Returns the
/// cell-level contradiction when a kernel built without per-VMA locks shows their
/// counters (the kernel that ran is not the one configured).
pub fn check_evidence(
    tests: &mut [TestResult],
    facts: KernelFacts,
    before: &BTreeMap<String, u64>,
) -> Option<String> {
    if !facts.per_vma_lock && !before.is_empty() {
        return Some(
            "per-VMA lock counters in /proc/vmstat of a kernel configured without CONFIG_PER_VMA_LOCK"
                .into(),
        );
    }
    if facts.per_vma_lock && facts.per_vma_lock_stats {
        for t in tests.iter_mut() {
            let stress = t.overlap.is_some();
            let ran = matches!(t.outcome, TestOutcome::Exited { .. });
            if stress && ran && t.vmstat_delta.get("vma_lock_success").copied().unwrap_or(0) == 0 {
                t.evidence = Some(
                    "not ok: per-VMA lock path not exercised (vma_lock_success did not move)"
                        .into(),
                );
            }
        }
    }
    None
}
