//! The engine: takes each cell through its phases and emits events; the only place that
//! sequences processes (async). Decisions are in the synchronous modules it calls
//! (`verdict`, `console`, `kconfig`, the argument builders).
//!
//! - `mod.rs`: the matrix loop, `--resume`, cancellation, what every cell shares.
//! - `cell.rs`: one cell's run ([`cell::CellRun`]): its phases in order, `--repeat`, and
//!   the one place its outcome becomes a [`CellResult`].
//! - `prepare.rs`: source, patch and build (in the slot) and image -> [`prepare::Prepared`].
//! - `boot.rs`: a [`boot::BootSession`]: the VM, its shares, its console, SSH; KVM
//!   fallback.
//! - `tests.rs`: one guest test -> a [`TestOutcome`](crate::record::result::TestOutcome).
//! - `forensics.rs`: sysrq dumps after a hang or a fatal report.
//! - `shell.rs`: `kmatrix boot`.

mod boot;
mod cell;
mod coverage;
mod expect;
mod forensics;
mod guest_tests;
mod liveness;
mod lockgraph;
mod matrix;
mod prepare;
mod run;
mod shared;
mod shell;

pub use matrix::Engine;
pub use shared::{Overrides, RunOptions, Stop};

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod scaling_sim;
