//! The out-of-tree modules kmatrix ships inside its binary, built against every kernel
//! that needs them whatever the spec: the liveness step's and race amplification's.

use crate::host::cache::Cache;
use crate::prepare::build::ModuleSource;

/// A module whose source is compiled into kmatrix.
pub struct Embedded {
    /// The module's name (`<name>.ko`).
    pub name: &'static str,
    /// Its folder in the cache.
    folder: &'static str,
    kbuild: &'static str,
    source: &'static str,
}

impl Embedded {
    /// The module's source, written once into the cache.
    pub fn source(&self, cache: &Cache) -> std::io::Result<ModuleSource> {
        cache.embedded_module(self.folder, self.name, self.kbuild, self.source)
    }
}

/// `kmatrix_live`: one tagged lockdep report and one tagged hung-task report, proving
/// both detectors alive at the end of a cell.
pub const LIVENESS: Embedded = Embedded {
    name: "kmatrix_live",
    folder: "liveness",
    kbuild: include_str!("../../../guest-tests/modules/kmatrix_live/Kbuild"),
    source: include_str!("../../../guest-tests/modules/kmatrix_live/kmatrix_live.c"),
};

/// `kmatrix_amplify`: random delays at the functions a series changes.
pub const AMPLIFY: Embedded = Embedded {
    name: "kmatrix_amplify",
    folder: "amplify",
    kbuild: include_str!("../../../guest-tests/modules/kmatrix_amplify/Kbuild"),
    source: include_str!("../../../guest-tests/modules/kmatrix_amplify/kmatrix_amplify.c"),
};
