//! Performance samples and a patched cell's A/B against its base cell.
//!
//! A guest program prints one machine line per metric, one rate per short window,
//! higher is better: `# kmatrix-perf: fault_private ops/s 81234.5 80950.1 ...`
//! (`guest-tests/perf_faults.c`). A cell keeps them per boot; `judge::perf` compares
//! the boots of a patched cell with its base cell's.

use crate::record::plan::Accel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One boot's samples: metric -> its windows' rates (ops/s).
pub type BootSamples = BTreeMap<String, Vec<f64>>;

/// Bounds on what a guest may hand us (it is hostile).
const MAX_METRICS: usize = 32;
const MAX_WINDOWS: usize = 64;
const MAX_NAME: usize = 40;
const MAX_RATE: f64 = 1e12;

/// The perf lines of one test's KTAP output; malformed lines and values are dropped.
pub fn from_ktap(text: &str) -> BootSamples {
    let mut out = BootSamples::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# kmatrix-perf:") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some("ops/s")) = (words.next(), words.next()) else {
            continue;
        };
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid || (out.len() == MAX_METRICS && !out.contains_key(name)) {
            continue;
        }
        let rates: Vec<f64> = words
            .filter_map(|w| w.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0 && *v <= MAX_RATE)
            .take(MAX_WINDOWS)
            .collect();
        if !rates.is_empty() {
            out.insert(name.to_string(), rates);
        }
    }
    out
}

/// What the interval says about one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    Faster,
    Slower,
    /// The interval holds 1 (or the difference is below the noise floor).
    NoDifference,
    /// Too few boots on a side for an interval that means anything.
    TooFewBoots,
}

impl Call {
    pub fn label(self) -> &'static str {
        match self {
            Call::Faster => "faster",
            Call::Slower => "slower",
            Call::NoDifference => "no difference",
            Call::TooFewBoots => "too few boots",
        }
    }
}

/// One metric of the A/B: medians of both sides, their ratio (cell / base, above 1 is
/// faster) and its 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub metric: String,
    pub base_median: f64,
    pub cell_median: f64,
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
    pub call: Call,
}

/// A patched cell's performance against its base cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfAb {
    /// The base cell's id.
    pub base: String,
    /// Where the figures come from (TCG timing is not KVM timing).
    pub accel: Option<Accel>,
    pub base_boots: usize,
    pub cell_boots: usize,
    pub rows: Vec<Row>,
    /// Set when the host's own speed (the `cpu` control) differed between the sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_note: Option<String>,
    /// Objects this cell's kernel profiles with gcov (series coverage) and base's does
    /// not: their code runs slower here for a reason that is not the series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiled_here_only: Vec<String>,
}

impl PerfAb {
    /// One line: what moved, on which accelerator, with how many boots.
    pub fn summary(&self) -> String {
        let accel = self.accel.map_or("unknown accelerator", |a| a.name());
        let moved: Vec<String> = self
            .rows
            .iter()
            .filter(|r| matches!(r.call, Call::Faster | Call::Slower))
            .map(|r| format!("{} {} {}", r.metric, r.call.label(), r.figure()))
            .collect();
        let verdict = if self.rows.iter().all(|r| r.call == Call::TooFewBoots) {
            // Intervals over one boot's windows leave out how boots differ: no call.
            let all: Vec<String> = self
                .rows
                .iter()
                .map(|r| format!("{} {}", r.metric, r.figure()))
                .collect();
            format!(
                "{} (windows of {} boot(s); no call below 3 boots a side, --repeat 5)",
                all.join(", "),
                self.base_boots.min(self.cell_boots)
            )
        } else if moved.is_empty() {
            "no difference at this N".to_string()
        } else {
            moved.join(", ")
        };
        let mut s = format!(
            "performance vs {} ({accel}, {}+{} boots): {verdict}",
            self.base, self.base_boots, self.cell_boots
        );
        if let Some(n) = &self.host_note {
            s.push_str(&format!("; {n}"));
        }
        if !self.profiled_here_only.is_empty() {
            s.push_str(&format!(
                "; profiled by gcov here, not in base: {} (a slowdown there is partly gcov's; \
                 a spec without the gcov fragment compares without it)",
                self.profiled_here_only.join(", ")
            ));
        }
        s
    }
}

impl Row {
    /// `0.71x [0.66, 0.77]`
    pub fn figure(&self) -> String {
        format!("{:.2}x [{:.2}, {:.2}]", self.ratio, self.low, self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_lines_are_parsed_and_bounded() {
        let s = from_ktap(
            "TAP version 13\n# kmatrix-perf: fault_private ops/s 10.5 11 nan -3 inf 12\n# kmatrix-perf: Bad-Name ops/s 1\n# kmatrix-perf: cpu ops/s\n# kmatrix-perf: x per/s 1\nok 1 a\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s["fault_private"], [10.5, 11.0, 12.0]);
        let many: String = (0..100)
            .map(|i| format!("# kmatrix-perf: m{i} ops/s 1\n"))
            .collect();
        assert_eq!(from_ktap(&many).len(), MAX_METRICS);
        let wide = format!("# kmatrix-perf: w ops/s {}\n", "1 ".repeat(1000));
        assert_eq!(from_ktap(&wide)["w"].len(), MAX_WINDOWS);
    }
}
