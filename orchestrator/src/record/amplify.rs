//! Race amplification of a test as results.json records it: the settings, the probes
//! the guest module placed, and what they did.

use serde::{Deserialize, Serialize};

/// Where a probe sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// Entry of a function the series changes.
    Target,
    /// A lock operation, delayed only when called from inside a target.
    Lockop,
}

/// One probe the module placed, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStats {
    pub name: String,
    pub kind: ProbeKind,
    /// Calls that could be delayed (a lock operation's: those inside a target).
    pub hits: u64,
    /// Calls that were delayed (a random delay can be 0).
    pub delayed: u64,
    /// Microseconds of delay in all.
    pub delay_us: u64,
    /// A lock operation's calls, inside a target or not.
    pub seen: u64,
    /// Calls a target's kretprobe had no instance left for (not delayed).
    pub missed: u64,
    /// Reschedules asked for after a delay.
    #[serde(default)]
    pub resched: u64,
}

/// A name the module could not probe, and the kernel's errno.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    pub name: String,
    pub kind: ProbeKind,
    pub errno: i32,
}

impl Missing {
    /// What the errno means for a probe.
    pub fn why(&self) -> &'static str {
        match self.errno {
            -2 => "not a symbol: inlined, or not built",
            -22 => "cannot be probed (kprobes' blacklist, or not a function entry)",
            -38 | -95 => "the kernel has no kprobes",
            -16 | -17 => "already probed",
            _ => "could not be probed",
        }
    }
}

/// A test's amplification as results.json records it: the settings, what was asked
/// for, and the module's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amplified {
    pub delay_us: u32,
    pub percent: u32,
    /// A reschedule was asked for after each delay.
    #[serde(default)]
    pub preempt: bool,
    pub seed: u64,
    pub targets: Vec<String>,
    pub lock_ops: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    pub probes: Vec<ProbeStats>,
    pub missing: Vec<Missing>,
    /// The guest's online CPUs: with one, the other side of a race cannot run while a
    /// non-preemptible section is delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Why the counters are missing or incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Amplified {
    pub fn hits(&self) -> u64 {
        self.probes.iter().map(|p| p.hits).sum()
    }
    pub fn delay_us_total(&self) -> u64 {
        self.probes.iter().map(|p| p.delay_us).sum()
    }

    /// One line: the settings, the probes and their effect, what could not be probed.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "delays 0-{} us{}{}, seed {}: ",
            self.delay_us,
            if self.percent < 100 {
                format!(" at {}% of calls", self.percent)
            } else {
                String::new()
            },
            if self.preempt { " + reschedule" } else { "" },
            self.seed
        );
        let placed: Vec<String> = self
            .probes
            .iter()
            .map(|p| format!("{} {}", p.name, p.hits))
            .collect();
        s.push_str(&format!(
            "{} probe(s), {} hits, {} delayed, {:.1} ms in all ({})",
            self.probes.len(),
            self.hits(),
            self.probes.iter().map(|p| p.delayed).sum::<u64>(),
            self.delay_us_total() as f64 / 1000.0,
            placed.join(", ")
        ));
        if !self.missing.is_empty() {
            let m: Vec<String> = self
                .missing
                .iter()
                .map(|m| format!("{} ({})", m.name, m.why()))
                .collect();
            s.push_str(&format!("; not probed: {}", m.join(", ")));
        }
        if self.cpus == Some(1) {
            s.push_str("; the guest had one CPU: nothing else ran during a non-preemptible delay");
        }
        if !self.left_out.is_empty() {
            s.push_str(&format!(
                "; left out (too many names): {}",
                self.left_out.join(", ")
            ));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("; counters: {e}"));
        }
        s
    }
}
