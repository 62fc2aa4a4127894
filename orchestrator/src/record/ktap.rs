//! KTAP / TAP 13 output of the guest tests: `TAP version 13`, `1..N`, `ok N desc`,
//! `not ok N desc`, `ok N desc # SKIP reason`, `# diagnostics`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    NotOk,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub number: u32,
    pub description: String,
    pub status: Status,
    /// The directive's reason (`# SKIP reason`), if any.
    pub reason: Option<String>,
    /// The `# ` diagnostic lines printed just before this case's result line (the last
    /// few, bounded): a failing check's evidence, e.g. its first finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diag: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// A `TAP version` / `KTAP version` header was seen.
    pub header: bool,
    pub planned: Option<u32>,
    pub cases: Vec<Case>,
    /// `1..0 # SKIP reason`: the whole program skipped, and why (kselftest's way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_all: Option<String>,
}

impl Report {
    /// Every planned case reported, none `not ok`, and there was at least one (or the
    /// program said why it skipped everything).
    pub fn passed(&self) -> bool {
        self.complete()
            && (!self.cases.is_empty() || self.skip_all.is_some())
            && self.failed().next().is_none()
    }
    pub fn complete(&self) -> bool {
        self.header && self.planned == Some(self.cases.len() as u32)
    }
    pub fn failed(&self) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(|c| c.status == Status::NotOk)
    }
    pub fn skipped(&self) -> impl Iterator<Item = &Case> {
        self.cases.iter().filter(|c| c.status == Status::Skip)
    }
    /// Why a passing program checked nothing: `1..0 # SKIP reason`, or every case
    /// `# SKIP` (its distinct reasons, the first one and how many others). `None` when a
    /// case ran or the run did not pass. Bounded: the text is the guest's.
    pub fn skip_reason(&self) -> Option<String> {
        const REASON_CHARS: usize = 300;
        if !self.passed() {
            return None;
        }
        let reason = if let Some(r) = &self.skip_all {
            r.clone()
        } else {
            if self.cases.iter().any(|c| c.status != Status::Skip) {
                return None;
            }
            let mut reasons: Vec<&str> = Vec::new();
            for c in &self.cases {
                let r = c.reason.as_deref().filter(|r| !r.is_empty());
                let r = r.unwrap_or("no reason given");
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
            match reasons.len() {
                1 => reasons[0].to_string(),
                n => format!(
                    "{} (and {} other reason{})",
                    reasons[0],
                    n - 1,
                    if n == 2 { "" } else { "s" }
                ),
            }
        };
        Some(reason.chars().take(REASON_CHARS).collect())
    }
}
