//! The verdict of a cell, what it means to the reader (its category), and the documented
//! exit codes that follow from the verdicts of a run.

use serde::{Deserialize, Serialize};

/// Documented exit codes (README "Exit codes").
pub mod exit {
    pub const PASS: i32 = 0;
    pub const FINDINGS: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INFRA: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "HANG")]
    Hang,
    #[serde(rename = "BOOT-FAIL")]
    BootFail,
    #[serde(rename = "BUILD-FAIL")]
    BuildFail,
    #[serde(rename = "PATCH-FAIL")]
    PatchFail,
    #[serde(rename = "CONFIG-MISMATCH")]
    ConfigMismatch,
    #[serde(rename = "INFRA-ERROR")]
    InfraError,
    #[serde(rename = "INCONCLUSIVE")]
    Inconclusive,
    /// The config builds none of the lines the series changes: nothing of the series
    /// could run, so the cell was not booted.
    #[serde(rename = "UNTESTED")]
    Untested,
    #[serde(rename = "INTERRUPTED")]
    Interrupted,
}

/// What a verdict means to the person reading it; drives the exit code, the terminal
/// colour and the HTML class, so the three never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Pass,
    /// The kernel or the series is at fault (exit 1).
    Failed,
    /// Nothing wrong was seen, but the result cannot be trusted (exit 1).
    Doubtful,
    /// The host or kmatrix is at fault (exit 3).
    Infra,
    /// The run was cut short (exit 130).
    Interrupted,
}

impl Verdict {
    pub const ALL: [Verdict; 11] = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Hang,
        Verdict::BootFail,
        Verdict::BuildFail,
        Verdict::PatchFail,
        Verdict::ConfigMismatch,
        Verdict::InfraError,
        Verdict::Inconclusive,
        Verdict::Untested,
        Verdict::Interrupted,
    ];

    /// A verdict about the kernel (not about the run being cut short or the host).
    pub fn is_final(self) -> bool {
        !matches!(self.category(), Category::Infra | Category::Interrupted)
    }

    pub fn category(self) -> Category {
        match self {
            Verdict::Pass => Category::Pass,
            Verdict::Fail
            | Verdict::Hang
            | Verdict::BootFail
            | Verdict::BuildFail
            | Verdict::PatchFail
            | Verdict::ConfigMismatch => Category::Failed,
            Verdict::Inconclusive | Verdict::Untested => Category::Doubtful,
            Verdict::InfraError => Category::Infra,
            Verdict::Interrupted => Category::Interrupted,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Hang => "HANG",
            Verdict::BootFail => "BOOT-FAIL",
            Verdict::BuildFail => "BUILD-FAIL",
            Verdict::PatchFail => "PATCH-FAIL",
            Verdict::ConfigMismatch => "CONFIG-MISMATCH",
            Verdict::InfraError => "INFRA-ERROR",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Untested => "UNTESTED",
            Verdict::Interrupted => "INTERRUPTED",
        }
    }

    /// How much a verdict says about the kernel, for combining repeated boots: the
    /// worst boot is the cell's.
    pub fn severity(self) -> Severity {
        match self {
            Verdict::Fail => Severity::Failed,
            Verdict::Hang => Severity::Hung,
            Verdict::BootFail => Severity::DidNotBoot,
            Verdict::Inconclusive => Severity::Doubtful,
            Verdict::InfraError => Severity::HostFailed,
            Verdict::Interrupted => Severity::CutShort,
            Verdict::BuildFail
            | Verdict::PatchFail
            | Verdict::ConfigMismatch
            | Verdict::Untested => Severity::NotBuilt,
            Verdict::Pass => Severity::Passed,
        }
    }
}

/// A verdict's weight when boots of one cell are combined, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Passed,
    /// The boots of one cell share its kernel, so this never meets a booted verdict.
    NotBuilt,
    CutShort,
    HostFailed,
    Doubtful,
    DidNotBoot,
    Hung,
    Failed,
}

/// The exit code of a finished run (documented in README): the worst category wins,
/// interruption first, then the host, then findings.
pub fn exit_code(verdicts: &[Verdict]) -> i32 {
    let worst = |c: Category| verdicts.iter().any(|v| v.category() == c);
    if worst(Category::Interrupted) {
        exit::INTERRUPTED
    } else if worst(Category::Infra) {
        exit::INFRA
    } else if verdicts.is_empty() || !verdicts.iter().all(|v| *v == Verdict::Pass) {
        // No cell at all is never "all passed".
        exit::FINDINGS
    } else {
        exit::PASS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_drive_the_exit_code() {
        assert_eq!(exit_code(&[Verdict::Pass]), 0);
        assert_eq!(exit_code(&[]), 1, "no cell is not a pass");
        assert_eq!(exit_code(&[Verdict::Pass, Verdict::Inconclusive]), 1);
        assert_eq!(exit_code(&[Verdict::Fail, Verdict::InfraError]), 3);
        assert_eq!(exit_code(&[Verdict::InfraError, Verdict::Interrupted]), 130);
        for v in Verdict::ALL {
            assert_eq!(
                v.is_final(),
                !matches!(v, Verdict::InfraError | Verdict::Interrupted)
            );
        }
    }
}
