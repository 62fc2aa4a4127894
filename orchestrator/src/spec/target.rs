//! What a run tests: the spec, or a developer's tree or branch in its place.

use std::path::PathBuf;

/// What a run tests: the spec as written, or a developer's tree or branch in place of the
/// spec's source and patchsets (`kmatrix run --tree PATH [--series RANGE]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    Spec,
    /// The tree as it is on disk, uncommitted changes included: one patchset, `tree`.
    Tree(PathBuf),
    /// A branch: the range's base commit of `repo` as the source; patchsets `base` (the
    /// base alone, the baseline) and `series` (the range's commits, one patch each).
    Branch {
        repo: PathBuf,
        base: String,
        range: String,
    },
}
