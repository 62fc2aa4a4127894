//! A patched cell's lock graph compared with its base cell's, as results.json records it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a patched cell's lock graph has that its base cell's does not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The base cell compared with.
    pub base: String,
    pub new_classes: Vec<String>,
    /// The new edges shown: into locks base does not take under many others, not
    /// noise, and touching a lock named after the series' code or stable; first the
    /// `series_edges_total` that touch the series' code, then those touching a class
    /// new in this cell, then the rest.
    pub new_edges: Vec<(String, String)>,
    #[serde(default)]
    pub series_edges_total: usize,
    /// Tests this cell ran and its base cell did not: their locks are new edges too.
    #[serde(default)]
    pub tests_not_in_base: Vec<String>,
    /// How many of each there were (the lists keep the first ones); `new_edges_total`
    /// counts every edge base did not take: shown, timing, noise and unconfirmed.
    pub new_classes_total: usize,
    pub new_edges_total: usize,
    /// New edges into widely nested locks (the run queue, timers, RCU: which of them a
    /// boot takes depends on timing, not on the series).
    #[serde(default)]
    pub timing_edges: Vec<(String, String)>,
    #[serde(default)]
    pub timing_edges_total: usize,
    /// New edges learnt as noise for the base kernel (they came and went between its
    /// boots), or every difference when the patched cell runs the same kernel.
    #[serde(default)]
    pub noise_edges_total: usize,
    /// New edges neither stable (taken in every boot of this cell; one boot cannot
    /// tell) nor touching a lock named after the series' code: not shown as new.
    #[serde(default)]
    pub unconfirmed_edges: Vec<(String, String)>,
    #[serde(default)]
    pub unconfirmed_edges_total: usize,
    /// How many boots each side is the union of.
    #[serde(default)]
    pub base_boots: u32,
    #[serde(default)]
    pub cell_boots: u32,
    /// The cell's kernel is its base's (same kernel key).
    #[serde(default)]
    pub same_kernel: bool,
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

    /// How many new edges are shown (the others are counted apart).
    pub fn shown_edges_total(&self) -> usize {
        self.new_edges_total
            .saturating_sub(self.timing_edges_total)
            .saturating_sub(self.noise_edges_total)
            .saturating_sub(self.unconfirmed_edges_total)
    }

    /// One line for the outputs.
    pub fn summary(&self) -> String {
        let boots = |n: u32| {
            if n > 1 {
                format!(" ({n} boots)")
            } else {
                String::new()
            }
        };
        let mut s = format!("lock graph vs {}{}", self.base, boots(self.base_boots));
        if self.same_kernel {
            s.push_str(&format!(
                ": the same kernel, so 0 new edge(s) ({} difference(s) between boots, learnt as noise for this kernel)",
                self.noise_edges_total
            ));
        } else {
            s.push_str(&format!(
                ": {} new class(es), {} new edge(s)",
                self.new_classes_total,
                self.shown_edges_total()
            ));
            let mut apart = Vec::new();
            if self.timing_edges_total > 0 {
                apart.push(format!(
                    "{} into scheduler/timer-like locks, timing",
                    self.timing_edges_total
                ));
            }
            if self.noise_edges_total > 0 {
                apart.push(format!(
                    "{} noise, seen to vary between boots of the base kernel",
                    self.noise_edges_total
                ));
            }
            if self.unconfirmed_edges_total > 0 {
                apart.push(format!(
                    "{} neither the series' nor in every boot{}",
                    self.unconfirmed_edges_total,
                    boots(self.cell_boots)
                ));
            }
            if !apart.is_empty() {
                s.push_str(&format!(
                    " (of {} not in base: {})",
                    self.new_edges_total,
                    apart.join(", ")
                ));
            }
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
