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

impl Target {
    /// Into the spec's hash: another tree or branch is another matrix.
    pub fn hash_into(&self, h: &mut crate::host::cache::Hasher) {
        match self {
            Target::Spec => {
                h.field(b"spec");
            }
            Target::Tree(p) => {
                h.field(b"tree").field(p.as_os_str().as_encoded_bytes());
            }
            Target::Branch { repo, base, range } => {
                h.field(b"branch")
                    .field(repo.as_os_str().as_encoded_bytes())
                    .field(base.as_bytes())
                    .field(range.as_bytes());
            }
        }
    }
}
