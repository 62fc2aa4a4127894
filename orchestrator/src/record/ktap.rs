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
}
