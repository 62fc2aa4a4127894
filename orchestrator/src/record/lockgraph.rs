//! A patched cell's lock graph compared with its base cell's, as results.json records it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a patched cell's lock graph has that its base cell's does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The base cell compared with.
    pub base: String,
    pub new_classes: Vec<String>,
    /// New edges into locks base does not take under many others: first the
    /// `series_edges_total` that touch a lock named after the series' code, then those
    /// touching a class new in this cell, then the rest.
    pub new_edges: Vec<(String, String)>,
    #[serde(default)]
    pub series_edges_total: usize,
    /// Tests this cell ran and its base cell did not: their locks are new edges too.
    #[serde(default)]
    pub tests_not_in_base: Vec<String>,
    /// How many of each there were (the lists keep the first ones); `new_edges_total`
    /// counts the timing edges too.
    pub new_classes_total: usize,
    pub new_edges_total: usize,
    /// New edges into widely nested locks (the run queue, timers, RCU: which of them a
    /// boot takes depends on timing, not on the series).
    #[serde(default)]
    pub timing_edges: Vec<(String, String)>,
    #[serde(default)]
    pub timing_edges_total: usize,
    /// Per shown new edge (`"A -> B"`), the shortest lock chain that made it, outermost
    /// lock first, with its irq context (from `/proc/lockdep_chains`).
    #[serde(default)]
    pub contexts: BTreeMap<String, String>,
    /// Locks the series declares that lockdep never saw taken.
    pub never_acquired: Vec<String>,
    /// New edges A -> B for which B already led back to A in the union of both graphs:
    /// each cycle as the list of classes, A first.
    pub cycles: Vec<Vec<String>>,
}

/// How `Diff::contexts` names an edge.
pub fn edge_key(a: &str, b: &str) -> String {
    format!("{a} -> {b}")
}

impl Diff {
    /// The lock chain that made the shown edge `a -> b`, if lockdep kept one.
    pub fn context(&self, a: &str, b: &str) -> Option<&str> {
        self.contexts.get(&edge_key(a, b)).map(String::as_str)
    }

    /// One line for the outputs.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "lock graph vs {}: {} new class(es), {} new edge(s)",
            self.base, self.new_classes_total, self.new_edges_total
        );
        if self.timing_edges_total > 0 {
            s.push_str(&format!(
                " ({} into scheduler/timer-like locks, timing)",
                self.timing_edges_total
            ));
        }
        s.push_str(&format!(
            "; {} touch a lock named after the series' code",
            self.series_edges_total
        ));
        if !self.tests_not_in_base.is_empty() {
            s.push_str(&format!(
                "; tests base did not run: {}",
                self.tests_not_in_base.join(", ")
            ));
        }
        if !self.never_acquired.is_empty() {
            s.push_str(&format!(
                "; never acquired: {}",
                self.never_acquired.join(", ")
            ));
        }
        if !self.cycles.is_empty() {
            s.push_str(&format!(
                "; {} new edge(s) close a cycle",
                self.cycles.len()
            ));
        }
        s
    }
}
