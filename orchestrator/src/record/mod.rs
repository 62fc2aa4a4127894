//! The records every layer shares, as plain data: the plan of a run, a cell's result,
//! verdicts and exit codes, the event stream, and the formatting rules of every output.
//! Imports nothing of the project.

pub mod amplify;
pub mod bisect;
pub mod coverage;
pub mod eta;
pub mod events;
pub mod finding;
pub mod fmt;
pub mod inputs;
pub mod ktap;
pub mod lockgraph;
pub mod perf;
pub mod phase;
pub mod plan;
pub mod result;
pub mod schedule;
pub mod shard;
pub mod verdict;
