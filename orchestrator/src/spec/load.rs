//! Reading a spec: YAML into the raw structs, then validated into a plan.

use crate::record::plan::Plan;
use crate::spec::error::SpecError;
use crate::spec::target::Target;
use crate::spec::{raw, validate};
use std::path::Path;

/// Load and validate a spec file. A git range patchset is not exported yet:
/// `series::resolve` does that (it runs git).
pub fn load(path: &Path) -> Result<Plan, SpecError> {
    load_for(path, &Target::Spec)
}

/// Load a spec file for a target (`--tree`, `--series`).
pub fn load_for(path: &Path, target: &Target) -> Result<Plan, SpecError> {
    let text =
        crate::host::runfile::read_given_string(path, crate::spec::bounds::SPEC_BYTES, "the spec")
            .map_err(|source| SpecError::Read {
                path: path.to_owned(),
                source,
            })?;
    parse_for(path, &text, target)
}

/// Parse and validate spec text; `path` names the file in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Plan, SpecError> {
    parse_for(path, text, &Target::Spec)
}

/// Parse spec text for a target.
pub fn parse_for(path: &Path, text: &str, target: &Target) -> Result<Plan, SpecError> {
    let mut raw: raw::RawSpec = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        // The library's message can carry a rendered snippet; keep its first line.
        let message = e.to_string().lines().next().unwrap_or_default().to_string();
        SpecError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })?;
    let mut h = crate::host::cache::Hasher::new("spec");
    h.field(text.as_bytes());
    if *target != Target::Spec {
        // Another tree or branch is another matrix: shards of both must not merge.
        target.hash_into(&mut h);
    }
    validate::retarget(&mut raw, target);
    let mut plan = validate::validate(path, text, raw)?;
    plan.spec_hash = h.finish();
    Ok(plan)
}
