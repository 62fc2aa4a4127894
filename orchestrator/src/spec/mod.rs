//! The YAML matrix spec: raw serde structs (`raw`), then `validate` into a typed
//! [`Plan`](crate::record::plan::Plan).
//!
//! Two stages so that serde reports syntax, unknown keys and unknown enum values with a
//! line and column, and our own checks report semantic problems with the key path (and
//! its line when found). `spec` depends on `plan`, never the reverse.

mod bounds;
mod error;
pub mod known;
mod load;
mod raw;
mod target;
mod validate;

pub use error::SpecError;
pub use load::{load, load_for, parse, parse_for};
pub use raw::{parse_duration, parse_size};
pub use target::Target;
pub use validate::{BASE_PATCHSET, SERIES_PATCHSET, TREE_PATCHSET};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::plan::AccelChoice;
    use std::time::Duration;

    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("kconfigs")).unwrap();
        std::fs::create_dir_all(d.path().join("guest-tests")).unwrap();
        for f in ["guest", "lockdep", "x86_64", "pvl-on", "pvl-off"] {
            std::fs::write(d.path().join(format!("kconfigs/{f}.config")), "").unwrap();
        }
        std::fs::write(d.path().join("guest-tests/faults_vs_writers.c"), "").unwrap();
        d
    }

    const GOOD: &str = "\
source:
  debian-package: linux-source-7.3
fragments: [guest, lockdep]
arches: [x86_64, arm64]
configs:
  pvl-on: [pvl-on]
  pvl-off: [pvl-off]
patchsets:
  base: []
tests:
  - name: faults_vs_writers
    duration: 20s
    timeout: 2m
vm:
  accel: tcg
  memory: 1G
";

    fn err(text: &str) -> String {
        let d = project();
        parse(&d.path().join("kmatrix.yaml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn expands_cells_arch_config_patchset_with_stable_ids() {
        let d = project();
        let plan = parse(&d.path().join("kmatrix.yaml"), GOOD).unwrap();
        let ids: Vec<String> = plan.cells.iter().map(|c| c.id().into()).collect();
        assert_eq!(
            ids,
            [
                "x86_64/pvl-off/base",
                "x86_64/pvl-on/base",
                "arm64/pvl-off/base",
                "arm64/pvl-on/base"
            ]
        );
        // Common fragments first, then the arch's, then the config's own: later wins.
        let names: Vec<String> = plan.cells[1]
            .fragments
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "guest.config",
                "lockdep.config",
                "x86_64.config",
                "pvl-on.config"
            ]
        );
        assert_eq!(plan.tests[0].duration, Duration::from_secs(20));
        assert_eq!(plan.vm.accel, AccelChoice::Tcg);
        assert_eq!(plan.vm.memory_mib, 1024);
        assert_eq!(plan.limits.console_bytes, 64 << 20, "default cap");
    }

    #[test]
    fn numa_nodes_default_to_one_and_are_bounded() {
        let d = project();
        let plan = parse(&d.path().join("kmatrix.yaml"), GOOD).unwrap();
        assert_eq!(plan.vm.numa_nodes, 1);
        let two = GOOD.replace("  memory: 1G", "  memory: 1G\n  numa-nodes: 2");
        let plan = parse(&d.path().join("kmatrix.yaml"), &two).unwrap();
        assert_eq!(plan.vm.numa_nodes, 2);
        for bad in ["0", "9", "3"] {
            let msg = err(&GOOD.replace(
                "  memory: 1G",
                &format!("  memory: 1G\n  numa-nodes: {bad}"),
            ));
            assert!(msg.contains("vm.numa-nodes"), "{msg}");
        }
        let msg = err(&GOOD.replace("  memory: 1G", "  memory: 128M\n  numa-nodes: 4"));
        assert!(msg.contains("64M"), "{msg}");
    }

    #[test]
    fn unknown_key_is_a_syntax_error_with_line() {
        let msg = err(&GOOD.replace("  memory: 1G", "  memory: 1G\n  memroy: 2G"));
        assert!(msg.contains("kmatrix.yaml:17"), "{msg}");
        assert!(msg.contains("memroy"), "{msg}");
    }

    #[test]
    fn unknown_arch_names_line_and_value() {
        let msg = err(&GOOD.replace("[x86_64, arm64]", "[x86_64, riscv]"));
        assert!(msg.contains("kmatrix.yaml:4:"), "{msg}");
        assert!(msg.contains("riscv"), "{msg}");
        assert!(msg.contains("x86_64") && msg.contains("arm64"), "{msg}");
    }

    #[test]
    fn arch_listed_twice_and_aarch64_alias() {
        let msg = err(&GOOD.replace("[x86_64, arm64]", "[arm64, aarch64]"));
        assert!(msg.contains("`arches`") && msg.contains("twice"), "{msg}");
    }

    #[test]
    fn unknown_report_kind_and_accel_name_the_line() {
        let text = GOOD.replace(
            "    timeout: 2m\n",
            "    timeout: 2m\n    expect: [{ kind: lockdeep }]\n",
        );
        let msg = err(&text);
        assert!(
            msg.contains("kmatrix.yaml:14:") && msg.contains("lockdeep"),
            "{msg}"
        );
        let msg = err(&GOOD.replace("accel: tcg", "accel: hvf"));
        assert!(
            msg.contains("kmatrix.yaml:15:") && msg.contains("hvf"),
            "{msg}"
        );
    }

    #[test]
    fn missing_fragment_names_the_expected_file() {
        let msg = err(&GOOD.replace("pvl-off: [pvl-off]", "pvl-off: [pvl-of]"));
        assert!(msg.contains("`configs.pvl-off`"), "{msg}");
        assert!(msg.contains("pvl-of.config"), "{msg}");
        assert!(msg.contains(":7:"), "{msg}");
    }

    #[test]
    fn missing_patch_and_test_source_are_errors() {
        let msg = err(&GOOD.replace("base: []", "base: []\n  v2: [patches/nope.patch]"));
        assert!(
            msg.contains("`patchsets.v2`") && msg.contains("nope.patch"),
            "{msg}"
        );
        let msg = err(&GOOD.replace("name: faults_vs_writers", "name: nosuch"));
        assert!(
            msg.contains("`tests[0]`") && msg.contains("nosuch.c"),
            "{msg}"
        );
    }

    #[test]
    fn names_that_would_leave_their_folder_are_refused() {
        for bad in ["/etc/passwd", "../up", "..", ".hidden", "-rf", "a b"] {
            let msg = err(&GOOD.replace("name: faults_vs_writers", &format!("name: '{bad}'")));
            assert!(
                msg.contains("`tests[0]`") && msg.contains("may use only"),
                "{bad}: {msg}"
            );
            let msg = err(&GOOD.replace("  base: []", &format!("  '{bad}': []")));
            assert!(
                msg.contains("patchsets") && msg.contains("may use only"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn durations_must_make_sense() {
        let msg = err(&GOOD.replace("timeout: 2m", "timeout: 10s"));
        assert!(msg.contains("must exceed duration"), "{msg}");
        let msg = err(&GOOD.replace("timeout: 2m", "timeout: soon"));
        assert!(
            msg.contains("kmatrix.yaml:13:") && msg.contains("soon"),
            "{msg}"
        );
    }
}
