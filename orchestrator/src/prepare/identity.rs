//! A cell's input identity: every input that decides what the cell builds and runs, each
//! by content, and one hash over all of them. It is recorded in results.json beside the
//! kernel key; `--resume` reuses a finished cell only when its identity is unchanged, and
//! otherwise names the inputs that changed ("patch patches/v3/0002-... changed").

use crate::host::cache::{Cache, Hasher};
use crate::prepare::build::ModuleSource;
use crate::record::inputs::Inputs;
use crate::record::plan::{Cell, Plan, TestSpec};
use crate::record::result::CellResult;
use std::collections::BTreeMap;
use std::path::Path;

/// The guest's PID 1 as kmatrix embeds it in every initramfs.
const INIT: &str = include_str!("../../../images/init");

/// Bump when the meaning of a part changes (every cell then reruns once).
const VERSION: &str = "cell-inputs-v2";

/// How the cells of a run run, besides the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub build_only: bool,
    pub repeat: u32,
}

impl Mode {
    fn describe(self) -> String {
        if self.build_only {
            "build only".into()
        } else {
            format!("boot and test x{}", self.repeat.max(1))
        }
    }
}

/// Why a cell's identity could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] crate::prepare::build::BuildError),
}

/// What identifies a cell: the modules built against its kernel, the kernel's cache key
/// and every input. The one function the engine records and `--resume` compares with.
pub struct Identity {
    pub modules: Vec<ModuleSource>,
    pub kernel_key: String,
    pub inputs: Inputs,
}

pub async fn of(
    plan: &Plan,
    cell: &Cell,
    cache: &Cache,
    tree: &crate::prepare::source::Tree,
    mode: Mode,
) -> Result<Identity, IdentityError> {
    let modules = modules(plan, cell, cache)?;
    let kernel_key = crate::prepare::build::cache_key(cell, tree, &modules).await?;
    let inputs = of_cell(plan, cell, &tree.id, &kernel_key, mode)?;
    Ok(Identity {
        modules,
        kernel_key,
        inputs,
    })
}

/// The out-of-tree modules built against a cell's kernel: the tests' own and the
/// liveness step's (part of the kernel key, so the engine and `--resume` agree).
pub fn modules(plan: &Plan, cell: &Cell, cache: &Cache) -> std::io::Result<Vec<ModuleSource>> {
    let mut v: Vec<ModuleSource> = plan
        .tests
        .iter()
        .filter(|t| t.applies_to(cell))
        .filter_map(|t| Some((t.module_name()?, t.module.clone()?)))
        .collect();
    v.push(crate::prepare::modules::LIVENESS.source(cache)?);
    if plan.tests.iter().any(|t| t.amplified_in(cell).is_some()) {
        v.push(crate::prepare::modules::AMPLIFY.source(cache)?);
    }
    Ok(v)
}

fn digest(bytes: &[u8]) -> String {
    let mut h = Hasher::new("part");
    h.field(bytes);
    h.finish()
}

fn read(p: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
}

/// A file's name in the parts: relative to the spec's folder, or (an exported git range
/// in the cache, whose folder is named by commit ids) its own name.
fn name_of(plan: &Plan, p: &Path, parts: &BTreeMap<String, String>, kind: &str) -> String {
    let base = match p.strip_prefix(&plan.root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string()),
    };
    let mut name = format!("{kind} {base}");
    let mut n = 2;
    while parts.contains_key(&name) {
        name = format!("{kind} {base} ({n})");
        n += 1;
    }
    name
}

/// Every input of a cell. `tree_id` is the tree's content identity and `kernel_key` the
/// kernel's cache key (which also covers the compiler, the modules and the recipe).
pub fn of_cell(
    plan: &Plan,
    cell: &Cell,
    tree_id: &str,
    kernel_key: &str,
    mode: Mode,
) -> std::io::Result<Inputs> {
    let mut parts = BTreeMap::new();
    parts.insert("tree".to_string(), tree_id.to_string());
    parts.insert("kernel".to_string(), kernel_key.to_string());
    parts.insert("base config".to_string(), cell.base_config.clone());
    let mut order = Hasher::new("order");
    for p in &cell.patches {
        let name = name_of(plan, p, &parts, "patch");
        order.field(name.as_bytes());
        parts.insert(name, digest(&read(p)?));
    }
    parts.insert("order: patches".to_string(), order.finish());
    let mut order = Hasher::new("order");
    for f in &cell.fragments {
        let name = name_of(plan, f, &parts, "fragment");
        order.field(name.as_bytes());
        parts.insert(name, digest(&read(f)?));
    }
    parts.insert("order: fragments".to_string(), order.finish());
    let mut order = Hasher::new("order");
    for t in plan.tests.iter().filter(|t| t.applies_to(cell)) {
        let mut h = Hasher::new("test");
        // A test without a program of its own (built from the tree) is named by the rest.
        if !t.source.as_os_str().is_empty() {
            h.field(&read(&t.source)?);
        }
        // The shared headers beside the sources (ktap.h, ...) are part of every program.
        for header in crate::prepare::image::headers_beside(&t.source) {
            h.field(header.file_name().unwrap_or_default().as_encoded_bytes());
            h.field(&read(&header)?);
        }
        h.field(&test_settings(plan, t));
        if let Some(dir) = &t.module {
            for f in crate::host::rundir::files_in(dir)? {
                h.field(f.file_name().unwrap_or_default().as_encoded_bytes());
                h.field(&read(&f)?);
            }
        }
        order.field(t.name.as_bytes());
        parts.insert(format!("test {}", t.name), h.finish());
    }
    parts.insert("order: tests".to_string(), order.finish());
    parts.insert("vm".to_string(), digest(&json(&plan.vm)));
    parts.insert("limits".to_string(), digest(&json(&plan.limits)));
    // The kernel selftests the cell runs (built from the tree, whose identity is above).
    parts.insert(
        "selftests".to_string(),
        digest(&json(&(&plan.selftests, plan.selftest_timeout))),
    );
    let mut h = Hasher::new("init");
    h.field(INIT.as_bytes());
    for p in crate::prepare::image::PACKAGES {
        h.field(p.as_bytes());
    }
    parts.insert("init".to_string(), h.finish());
    parts.insert("run".to_string(), mode.describe());
    let mut h = Hasher::new(VERSION);
    for (k, v) in &parts {
        h.field(k.as_bytes()).field(v.as_bytes());
    }
    Ok(Inputs {
        identity: h.finish(),
        parts,
    })
}

/// A setting as identity input: its serialised form, so a field added later counts
/// without being listed here.
fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Every setting of a test, serialised whole; its files by their path under the spec's
/// folder (their content is hashed apart), so a moved checkout keeps its identity.
fn test_settings(plan: &Plan, t: &TestSpec) -> Vec<u8> {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    let rel = |p: &Path| {
        p.strip_prefix(&plan.root)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("source".into(), rel(&t.source).into());
        o.insert("module".into(), t.module.as_deref().map(rel).into());
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What differs between two identities, in words.
pub fn changes(old: &Inputs, new: &Inputs) -> Vec<String> {
    let mut v = Vec::new();
    let kernel_side = |k: &str| {
        k == "tree"
            || k == "base config"
            || k == "order: patches"
            || k == "order: fragments"
            || k.starts_with("patch ")
            || k.starts_with("fragment ")
    };
    let mut explained = false;
    let keys: std::collections::BTreeSet<&String> =
        old.parts.keys().chain(new.parts.keys()).collect();
    for k in keys {
        let line = match (old.parts.get(k), new.parts.get(k)) {
            (Some(a), Some(b)) if a == b => continue,
            // The kernel key follows from the rest; alone, it is the compiler or recipe.
            (Some(_), Some(_)) if k == "kernel" => continue,
            (Some(a), Some(b)) if k == "run" => format!("the run changed from {a} to {b}"),
            (Some(_), Some(_)) => match k.as_str() {
                "tree" => "the kernel tree changed".to_string(),
                "vm" => "the vm settings changed".to_string(),
                "limits" => "the limits changed".to_string(),
                "selftests" => "the kernel selftests to run changed".to_string(),
                "init" => "the guest image changed".to_string(),
                "order: patches" => "the order of the patches changed".to_string(),
                "order: fragments" => "the order of the fragments changed".to_string(),
                "order: tests" => "the order of the tests changed".to_string(),
                _ => format!("{k} changed"),
            },
            (None, Some(_)) => format!("{k} added"),
            (Some(_), None) => format!("{k} removed"),
            (None, None) => continue,
        };
        explained |= kernel_side(k);
        v.push(line);
    }
    if !explained && old.parts.get("kernel") != new.parts.get("kernel") {
        v.push("the kernel key changed (another compiler or build recipe)".into());
    }
    // Order lines add nothing when a part was added or removed.
    if v.iter()
        .any(|l| l.ends_with(" added") || l.ends_with(" removed"))
    {
        v.retain(|l| !l.starts_with("the order of"));
    }
    v
}

/// `--resume`: `Ok` when the earlier result of a cell can stand for a cell with these
/// inputs; otherwise why it runs again.
pub fn reusable(old: &CellResult, new: &Inputs) -> Result<(), String> {
    if !old.verdict.is_final() {
        return Err(format!("its verdict {} is not final", old.verdict.label()));
    }
    let Some(before) = &old.inputs else {
        return Err("the earlier run recorded no input identity (an older kmatrix)".into());
    };
    if before.identity == new.identity {
        return Ok(());
    }
    let c = changes(before, new);
    Err(if c.is_empty() {
        "its inputs changed".into()
    } else {
        c.join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::plan::{Arch, Limits, SourceSpec, TestSpec, VmSettings};
    use std::time::Duration;

    fn plan(root: &Path) -> Plan {
        std::fs::create_dir_all(root.join("patches")).unwrap();
        std::fs::create_dir_all(root.join("kconfigs")).unwrap();
        std::fs::create_dir_all(root.join("guest-tests")).unwrap();
        std::fs::write(root.join("patches/0001-a.patch"), "a").unwrap();
        std::fs::write(root.join("patches/0002-b.patch"), "b").unwrap();
        std::fs::write(root.join("kconfigs/guest.config"), "CONFIG_X=y\n").unwrap();
        std::fs::write(root.join("guest-tests/stress.c"), "int main(){}").unwrap();
        let mut cell = crate::record::plan::tests::cell(Arch::X86_64, "pvl-on", "v3");
        cell.patches = vec![
            root.join("patches/0001-a.patch"),
            root.join("patches/0002-b.patch"),
        ];
        cell.fragments = vec![root.join("kconfigs/guest.config")];
        Plan {
            spec_path: root.join("kmatrix.yaml"),
            spec_hash: String::new(),
            root: root.to_owned(),
            source: SourceSpec::Path(root.to_owned()),
            cells: vec![cell],
            tests: vec![TestSpec {
                name: "stress".into(),
                source: root.join("guest-tests/stress.c"),
                module: None,
                args: vec![],
                duration: Duration::from_secs(10),
                timeout: Duration::from_secs(60),
                patchsets: None,
                configs: None,
                arches: None,
                expect: vec![],
                selftest: None,
                amplify: None,
            }],
            vm: VmSettings {
                accel: Default::default(),
                memory_mib: 1024,
                cpus: 2,
                numa_nodes: 1,
                boot_timeout: Duration::from_secs(180),
                hung_task_timeout: Duration::from_secs(10),
            },
            limits: Limits::default(),
            harness: vec![],
            selftests: vec![],
            selftest_timeout: Duration::from_secs(60),
            known_issues: None,
            baseline: None,
            jobs: 1,
            subjects: BTreeMap::new(),
            ranges: vec![],
        }
    }

    const RUN: Mode = Mode {
        build_only: false,
        repeat: 1,
    };

    fn inputs(p: &Plan) -> Inputs {
        of_cell(p, &p.cells[0], "tree-1", "key-1", RUN).unwrap()
    }

    #[test]
    fn every_input_that_decides_a_cell_changes_its_identity_and_is_named() {
        let d = tempfile::tempdir().unwrap();
        let mut p = plan(d.path());
        let first = inputs(&p);
        assert_eq!(first, inputs(&p), "stable");
        let why = |p: &Plan| changes(&first, &inputs(p));

        std::fs::write(d.path().join("patches/0002-b.patch"), "b2").unwrap();
        assert_eq!(why(&p), ["patch patches/0002-b.patch changed"]);
        std::fs::write(d.path().join("patches/0002-b.patch"), "b").unwrap();

        std::fs::write(d.path().join("kconfigs/guest.config"), "CONFIG_X=n\n").unwrap();
        assert_eq!(why(&p), ["fragment kconfigs/guest.config changed"]);
        std::fs::write(d.path().join("kconfigs/guest.config"), "CONFIG_X=y\n").unwrap();

        std::fs::write(
            d.path().join("guest-tests/stress.c"),
            "int main(){return 1;}",
        )
        .unwrap();
        assert_eq!(why(&p), ["test stress changed"]);
        std::fs::write(d.path().join("guest-tests/stress.c"), "int main(){}").unwrap();

        p.tests[0].duration = Duration::from_secs(20);
        assert_eq!(why(&p), ["test stress changed"]);
        p.tests[0].duration = Duration::from_secs(10);
        p.vm.cpus = 4;
        assert_eq!(why(&p), ["the vm settings changed"]);
        p.vm.cpus = 2;
        p.limits.console_bytes = 1 << 20;
        assert_eq!(why(&p), ["the limits changed"]);
        p.limits = Limits::default();

        p.cells[0].patches.reverse();
        assert_eq!(why(&p), ["the order of the patches changed"]);
        p.cells[0].patches.reverse();
        p.cells[0].patches.pop();
        assert_eq!(why(&p), ["patch patches/0002-b.patch removed"]);
        let mut p = plan(d.path());
        let q = of_cell(&p, &p.cells[0], "tree-2", "key-2", RUN).unwrap();
        assert_eq!(changes(&first, &q), ["the kernel tree changed"]);
        let q = of_cell(&p, &p.cells[0], "tree-1", "key-2", RUN).unwrap();
        assert_eq!(
            changes(&first, &q),
            ["the kernel key changed (another compiler or build recipe)"]
        );
        let build = Mode {
            build_only: true,
            repeat: 1,
        };
        let q = of_cell(&p, &p.cells[0], "tree-1", "key-1", build).unwrap();
        assert_eq!(
            changes(&first, &q),
            ["the run changed from boot and test x1 to build only"]
        );
        p.tests.clear();
        assert_eq!(changes(&first, &inputs(&p)), ["test stress removed"]);
    }

    #[test]
    fn only_a_final_verdict_with_the_same_identity_is_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = plan(d.path());
        let now = inputs(&p);
        let mut old = CellResult::new(&p.cells[0], d.path().join("old"));
        old.verdict = crate::record::verdict::Verdict::PatchFail;
        let e = reusable(&old, &now).unwrap_err();
        assert!(e.contains("no input identity"), "{e}");
        old.inputs = Some(now.clone());
        assert_eq!(reusable(&old, &now), Ok(()));
        old.verdict = crate::record::verdict::Verdict::InfraError;
        assert!(reusable(&old, &now).unwrap_err().contains("not final"));
        old.verdict = crate::record::verdict::Verdict::Pass;
        std::fs::write(d.path().join("patches/0001-a.patch"), "a2").unwrap();
        assert_eq!(
            reusable(&old, &inputs(&p)),
            Err("patch patches/0001-a.patch changed".into())
        );
    }

    /// Every field of a test decides what the cell runs. The destructuring below lists
    /// them all: a field added to `TestSpec` does not compile here until it gets a change
    /// that must move the identity.
    #[test]
    fn every_field_of_a_test_is_part_of_the_identity() {
        use crate::record::plan::{Amplify, Expectation, Selftest};
        let d = tempfile::tempdir().unwrap();
        let p = plan(d.path());
        let first = inputs(&p);
        let TestSpec {
            name: _,
            source: _,
            module: _,
            args: _,
            duration: _,
            timeout: _,
            patchsets: _,
            configs: _,
            arches: _,
            expect: _,
            selftest: _,
            amplify: _,
        } = &p.tests[0];
        std::fs::create_dir_all(d.path().join("guest-tests/other")).unwrap();
        type Change = Box<dyn Fn(&mut TestSpec)>;
        let changes: Vec<(&str, Change)> = vec![
            ("name", Box::new(|t| t.name = "stress2".into())),
            (
                "source",
                Box::new(|t| t.source = t.source.with_file_name("other.c")),
            ),
            (
                "module",
                Box::new(|t| t.module = Some(t.source.with_file_name("other"))),
            ),
            ("args", Box::new(|t| t.args = vec!["-x".into()])),
            (
                "duration",
                Box::new(|t| t.duration = Duration::from_secs(11)),
            ),
            ("timeout", Box::new(|t| t.timeout = Duration::from_secs(61))),
            (
                "patchsets",
                Box::new(|t| t.patchsets = Some(vec!["v3".into()])),
            ),
            (
                "configs",
                Box::new(|t| t.configs = Some(vec!["pvl-on".into()])),
            ),
            ("arches", Box::new(|t| t.arches = Some(vec![Arch::X86_64]))),
            (
                "expect",
                Box::new(|t| {
                    t.expect = vec![Expectation {
                        kind: crate::record::finding::Kind::Lockdep,
                        title: None,
                    }]
                }),
            ),
            (
                "selftest",
                Box::new(|t| {
                    t.selftest = Some(Selftest {
                        suite: "mm".into(),
                        name: "merge".into(),
                    })
                }),
            ),
            (
                "amplify",
                Box::new(|t| {
                    t.amplify = Some(Amplify {
                        delay_us: 100,
                        percent: 100,
                        preempt: false,
                        seed: None,
                        functions: vec![],
                        lock_ops: vec![],
                        configs: None,
                        patchsets: None,
                        arches: None,
                    })
                }),
            ),
        ];
        std::fs::write(d.path().join("guest-tests/other.c"), "int main(){}").unwrap();
        for (field, change) in changes {
            let mut q = p.clone();
            change(&mut q.tests[0]);
            assert_ne!(
                inputs(&q).identity,
                first.identity,
                "changing the test's `{field}` must change the cell's identity"
            );
        }
    }

    /// `--resume` runs a cell again when one of its tests' `amplify:` settings changed
    /// (issue #27: it used to hash only args, duration, timeout and expectations).
    #[test]
    fn resume_reruns_a_cell_whose_amplify_settings_changed() {
        use crate::record::plan::Amplify;
        let d = tempfile::tempdir().unwrap();
        let mut p = plan(d.path());
        let amp = Amplify {
            delay_us: 100,
            percent: 100,
            preempt: false,
            seed: None,
            functions: vec![],
            lock_ops: vec![],
            configs: None,
            patchsets: None,
            arches: None,
        };
        p.tests[0].amplify = Some(amp.clone());
        let mut earlier = CellResult::new(&p.cells[0], d.path().join("r"));
        earlier.verdict = crate::record::verdict::Verdict::Pass;
        earlier.inputs = Some(inputs(&p));
        assert_eq!(reusable(&earlier, &inputs(&p)), Ok(()));
        for change in [
            Amplify {
                delay_us: 500,
                ..amp.clone()
            },
            Amplify {
                preempt: true,
                ..amp.clone()
            },
            Amplify {
                seed: Some(7),
                ..amp.clone()
            },
            Amplify {
                functions: vec!["vma_start_read".into()],
                ..amp.clone()
            },
        ] {
            p.tests[0].amplify = Some(change);
            assert_eq!(
                reusable(&earlier, &inputs(&p)),
                Err("test stress changed".to_string())
            );
        }
    }
}
