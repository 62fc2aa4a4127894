//! A cell's input identity as results.json records it (computed in
//! `prepare::identity`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Inputs {
    /// One hash over every part.
    pub identity: String,
    /// Each input by name and its content: `tree`, `kernel` (the kernel key), `base
    /// config`, `patch <file>`, `fragment <file>`, `test <name>` (program, duration,
    /// timeout, expectations, module), `vm`, `limits`, `init`, `run`, and the order of
    /// the patches, fragments and tests.
    pub parts: BTreeMap<String, String>,
}
