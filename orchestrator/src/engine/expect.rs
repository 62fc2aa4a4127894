//! What the run knows of each cell before it runs, for the ETA (`record::eta`): whether
//! its kernel is in the cache (the same identity the cell will compute), else how many
//! objects its build compiles (the slot's own counts: a slot's first build of the run is
//! cold unless the slot holds a kernel, the next ones incremental), and its guest time
//! (this cell in the last run, else the model of its tests).

use super::shared::Shared;
use crate::prepare::build::{self, Slot, SlotFacts};
use crate::record::eta::{self, CellExpect, GuestFrom, KernelExpect};
use crate::record::plan::CellId;
use std::collections::HashMap;

/// The expectation of every cell of the plan that is to run (not reused), in plan order.
pub(super) async fn probe(sh: &Shared) -> Vec<(CellId, CellExpect)> {
    let plan = &sh.plan;
    // The tree the cells need anyway (fetched once; the first cell waits for the same).
    let tree = sh.source_tree(|_| {}).await.ok();
    let mut slots: HashMap<String, SlotFacts> = HashMap::new();
    let mut out = Vec::new();
    for cell in &plan.cells {
        if sh.opts.resume.iter().any(|r| r.id == cell.id()) {
            continue;
        }
        let last = sh
            .opts
            .last_run
            .iter()
            .find(|r| r.id == cell.id())
            .and_then(eta::guest_in);
        let (guest_secs, guest_from) = match (sh.opts.build_only, last) {
            (true, _) => (0.0, GuestFrom::None),
            (false, Some(s)) => (s, GuestFrom::LastRun),
            (false, None) => (eta::guest_model(plan, cell), GuestFrom::Model),
        };
        let kernel = match &tree {
            None => KernelExpect::Unknown,
            Some(tree) => {
                let id = crate::prepare::identity::of(plan, cell, &sh.cache, tree, sh.opts.mode())
                    .await
                    .ok();
                let cached = !sh.opts.rebuild
                    && id.is_some_and(|id| {
                        build::cached(&sh.cache, &id.kernel_key, &id.modules).is_some()
                    });
                if cached {
                    KernelExpect::Cached
                } else {
                    let name = format!("{}-{}", cell.arch.name(), cell.config);
                    let facts = slots
                        .entry(name.clone())
                        .or_insert_with(|| Slot::peek(&sh.cache, tree, &name));
                    let cold = facts
                        .counts
                        .cold
                        .unwrap_or_else(|| eta::prior_cold_objects(cell.arch));
                    let k = if facts.built {
                        KernelExpect::Build {
                            objects: facts
                                .counts
                                .incremental
                                .unwrap_or((cold as f64 * eta::PRIOR_INCREMENTAL_SHARE) as u64),
                            cold: false,
                        }
                    } else {
                        KernelExpect::Build {
                            objects: cold,
                            cold: true,
                        }
                    };
                    // This build leaves a kernel in the slot: the next one is incremental.
                    facts.built = true;
                    k
                }
            }
        };
        out.push((
            cell.id(),
            CellExpect {
                kernel,
                guest_secs,
                guest_from,
            },
        ));
    }
    out
}
