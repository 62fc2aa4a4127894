//! Series coverage: which of the lines a patch series adds the cell's config built, and
//! which of them each test ran. See README.md beside this file for the mechanism, the
//! calls the engine makes and what they cost.
//!
//! - [`Series`] (from the patches): the added lines in post-series numbering
//!   ([`lines`]), the objects to profile and the `make` variables that profile them
//!   ([`kbuild`]), the guest commands around a test ([`guest`]).
//! - [`compile_map`] (after the build, while the slot holds the tree and the objects):
//!   per added line, built or not and why ([`kbuild::why_not_built`], [`cond`]), code or
//!   not (gcov on the build's notes, [`gcov`]); the notes are kept beside the kernel.
//! - [`measure`] (after each test): the counts of the added lines from the counters the
//!   guest copied; [`report`] puts the tests together into a [`SeriesCoverage`].

pub mod cond;
pub mod gcov;
pub mod guest;
pub mod kbuild;
pub mod lines;

pub use crate::record::coverage::{
    Built, FileCoverage, FunctionCoverage, LineCoverage, LineStatus, Reach, SeriesCoverage,
};

use crate::record::plan::Arch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("gcov on {object}'s notes")]
    Gcov {
        object: String,
        #[source]
        source: gcov::GcovError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CoverageError + '_ {
    move |source| CoverageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An added line's text as recorded (the series is hostile: bounded).
const TEXT_CHARS: usize = 160;
/// A source file larger than this is not scanned for `#if`s.
const MAX_SOURCE: u64 = 8 << 20;

/// A cell's series, as coverage needs it.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub files: Vec<lines::Changed>,
}

impl Series {
    /// From the texts of the series' patches (without the harness), in order.
    pub fn new(patches: &[String]) -> Series {
        Series {
            files: lines::changed(patches),
        }
    }

    /// From the series' patch files (unreadable ones count as empty: the build that
    /// applies them says why).
    pub fn read<'a>(patches: impl IntoIterator<Item = &'a PathBuf>) -> Series {
        let texts: Vec<String> = patches
            .into_iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        Series::new(&texts)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The objects of the C files the series changes (`net/ipv4/tcp.c` ->
    /// `net/ipv4/tcp.o`), plain paths only.
    pub fn objects(&self) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|f| f.path.strip_suffix(".c"))
            .map(|stem| format!("{stem}.o"))
            .filter(|o| kbuild::plain_path(o))
            .collect()
    }

    /// The objects to profile: [`Series::objects`] but those their folder keeps out
    /// of profiling.
    pub fn profiled(&self, tree: &Path) -> Vec<String> {
        self.objects()
            .into_iter()
            .filter(|o| !kbuild::profiling_excluded(tree, o))
            .collect()
    }

    /// `make` variables for the kernel build (harmless without `CONFIG_GCOV_KERNEL`).
    pub fn make_vars(&self, tree: &Path) -> Vec<String> {
        kbuild::make_vars(&self.profiled(tree))
    }

    /// The guest command after a test (see [`guest::after_test`]).
    pub fn after_test(&self, test: &str) -> Option<String> {
        guest::after_test(test, &self.objects())
    }
}

/// One added line as the build compiled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapLine {
    pub line: usize,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    pub status: LineStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapFile {
    pub path: String,
    pub built: Built,
    pub lines: Vec<MapLine>,
    /// The functions the series changes in this file.
    pub functions: Vec<String>,
}

/// The series as one build compiled it: kept beside the kernel (`coverage/map.json`,
/// with the profiled objects' notes under `coverage/notes/`), so a cached kernel can be
/// measured without its build tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Map {
    pub arch: Arch,
    pub files: Vec<MapFile>,
    /// Objects compiled with profiling whose notes are kept.
    pub profiled: Vec<String>,
    /// Per changed file, the changed functions gcov has a record of (in some profiled
    /// object: a header's inline function in each object that expands it).
    pub recorded: BTreeMap<String, Vec<String>>,
}

/// The map's file in a kernel's coverage folder.
pub const MAP_FILE: &str = "map.json";

impl Map {
    /// Whether the config builds any of the series (else the cell need not boot).
    pub fn builds_anything(&self) -> bool {
        report(self, &[]).reach != Reach::NothingBuilt
    }

    pub fn load(dir: &Path) -> Result<Map, CoverageError> {
        let p = dir.join(MAP_FILE);
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        serde_json::from_str(&text).map_err(|source| CoverageError::Json { path: p, source })
    }

    fn notes(dir: &Path, object: &str) -> PathBuf {
        dir.join("notes").join(object).with_extension("gcno")
    }
}

/// After the build, in the slot (`tree`, `objdir`) with the final `.config` text: the
/// map of the series' lines, written with the profiled objects' notes to `out` (the
/// kernel's `coverage/` folder in the cache entry being staged).
pub async fn compile_map(
    series: &Series,
    tree: &Path,
    objdir: &Path,
    arch: Arch,
    config: &str,
    out: &Path,
) -> Result<Map, CoverageError> {
    let syms = crate::parse::kconfig::parse(config);
    let gcov_kernel = syms.get("GCOV_KERNEL").map(String::as_str) == Some("y");
    let srcarch = arch.srcarch();
    std::fs::create_dir_all(out).map_err(io(out))?;
    // Which file is compiled, and how.
    let mut files: Vec<MapFile> = Vec::new();
    let mut profiled: Vec<String> = Vec::new();
    for f in &series.files {
        let built = if let Some(stem) = f.path.strip_suffix(".c") {
            let object = format!("{stem}.o");
            let o = objdir.join(&object);
            let gcno = objdir.join(format!("{stem}.gcno"));
            // The notes belong to the object only if the object is instrumented: one
            // compiled later without profiling leaves older notes behind. Not by
            // timestamps: gcc writes the notes before it assembles, and a large file on a
            // busy machine (mm/memory.c) took more than 5 s between the two.
            let fresh = gcno.is_file() && instrumented(&o);
            // Kbuild's lines with the final config first: a slot's object folder keeps
            // objects of earlier configs (mm/mempolicy.o from a NUMA kernel).
            let not_built = kbuild::why_not_built(tree, &object, srcarch, &syms)
                .filter(|_| !kbuild::linked(objdir, &object));
            if !kbuild::plain_path(&object) {
                Built::NotBuilt {
                    object,
                    why: "its path is not one kmatrix names".into(),
                }
            } else if let Some(why) = not_built {
                Built::NotBuilt { object, why }
            } else if fresh && gcov_kernel {
                let dst = Map::notes(out, &object);
                if let Some(p) = dst.parent() {
                    std::fs::create_dir_all(p).map_err(io(p))?;
                }
                std::fs::copy(&gcno, &dst).map_err(io(&gcno))?;
                profiled.push(object.clone());
                Built::Profiled { object }
            } else if o.is_file() {
                let why = if !gcov_kernel {
                    "the kernel has no CONFIG_GCOV_KERNEL".to_string()
                } else if kbuild::profiling_excluded(tree, &object) {
                    "its Makefile keeps it out of gcov profiling".to_string()
                } else {
                    "built without profiling".to_string()
                };
                Built::NotProfiled { object, why }
            } else {
                Built::NotBuilt {
                    object,
                    why: "not built in this config".into(),
                }
            }
        } else if f.path.ends_with(".h") {
            let (t, o, p) = (tree.to_owned(), objdir.to_owned(), vec![f.path.clone()]);
            let n = tokio::task::spawn_blocking(move || {
                crate::prepare::build::objects::dependents(&t, &o, &p)
            })
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
            Built::Header { included_by: n }
        } else {
            Built::NotC
        };
        files.push(MapFile {
            path: f.path.clone(),
            built,
            lines: vec![],
            functions: f.functions.clone(),
        });
    }
    // Which lines have code: every profiled object's notes, for every changed file (a
    // header's inline code is counted in the objects that expand it).
    let gcov = gcov::program(arch.cross_prefix());
    let mut code: BTreeMap<String, BTreeMap<usize, u64>> = BTreeMap::new();
    let mut recorded: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in &profiled {
        let counts = gcov::run(&gcov, &Map::notes(out, object), None)
            .await
            .map_err(|source| CoverageError::Gcov {
                object: object.clone(),
                source,
            })?;
        for (compiled, c) in counts {
            let Some(f) = series
                .files
                .iter()
                .find(|f| gcov::same_file(&compiled, &f.path))
            else {
                continue;
            };
            let e = code.entry(f.path.clone()).or_default();
            e.extend(c.lines.iter().map(|(l, n)| (*l, *n)));
            for func in c.functions {
                let r = recorded.entry(f.path.clone()).or_default();
                if f.functions.contains(&func.name) && !r.contains(&func.name) {
                    r.push(func.name);
                }
            }
        }
    }
    // Each added line: built, under a false `#if`, with code or not.
    for (mf, f) in files.iter_mut().zip(&series.files) {
        let disabled = match mf.built {
            Built::NotBuilt { .. } | Built::NotC | Built::Header { included_by: 0 } => vec![],
            _ => {
                let p = tree.join(&f.path);
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_file() && m.len() <= MAX_SOURCE => {
                        let text = std::fs::read(&p).map_err(io(&p))?;
                        cond::disabled_lines(&String::from_utf8_lossy(&text), &syms)
                    }
                    _ => vec![],
                }
            }
        };
        let has_code = code.get(&f.path);
        mf.lines = f
            .added
            .iter()
            .map(|a| {
                let status = match &mf.built {
                    Built::NotBuilt { .. } | Built::Header { included_by: 0 } => {
                        LineStatus::NotBuilt
                    }
                    Built::NotC => LineStatus::NotMeasurable {
                        why: "not C".into(),
                    },
                    _ => match disabled.get(a.line - 1).cloned().flatten() {
                        Some(d) => LineStatus::Disabled {
                            directive: d.directive,
                            at: d.line,
                        },
                        None if has_code.is_some_and(|c| c.contains_key(&a.line)) => {
                            LineStatus::Code
                        }
                        None => match &mf.built {
                            Built::Profiled { .. } => LineStatus::NoCode,
                            Built::NotProfiled { why, .. } => {
                                LineStatus::NotMeasurable { why: why.clone() }
                            }
                            // A header's line outside any function has no code of its
                            // own; inside one, it is code nobody profiled expands.
                            _ if a.function.is_some() => LineStatus::NotMeasurable {
                                why: "inline code no profiled object expands".into(),
                            },
                            _ => LineStatus::NoCode,
                        },
                    },
                };
                MapLine {
                    line: a.line,
                    text: a.text.chars().take(TEXT_CHARS).collect(),
                    function: a.function.clone(),
                    status,
                }
            })
            .collect();
    }
    let map = Map {
        arch,
        files,
        profiled,
        recorded,
    };
    let p = out.join(MAP_FILE);
    let json = serde_json::to_vec_pretty(&map).map_err(|source| CoverageError::Json {
        path: p.clone(),
        source,
    })?;
    crate::host::cache::write_atomic(&p, &json).map_err(io(&p))?;
    Ok(map)
}

/// One test's counts of the added lines and changed functions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCounts {
    pub test: String,
    /// Per file, per added line with code: its count.
    pub lines: BTreeMap<String, BTreeMap<usize, u64>>,
    /// Per file, gcov's call count of each changed function it has a record of.
    pub functions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Why some counters are missing (the guest copied none for an object, gcov failed).
    pub missing: Vec<String>,
}

/// After a test: the counts from the counters the guest copied to
/// `counters` (`<results>/coverage/<test>/`), with the map and notes in `dir` (the
/// kernel's `coverage/` folder).
pub async fn measure(map: &Map, dir: &Path, test: &str, counters: &Path) -> TestCounts {
    let mut t = TestCounts {
        test: test.to_string(),
        ..TestCounts::default()
    };
    let gcov = gcov::program(map.arch.cross_prefix());
    for object in &map.profiled {
        let gcda = counters.join(object).with_extension("gcda");
        if !gcda.is_file() {
            t.missing.push(format!("{test}: no counters for {object}"));
            continue;
        }
        let counts = match gcov::run(&gcov, &Map::notes(dir, object), Some(&gcda)).await {
            Ok(c) => c,
            Err(e) => {
                t.missing.push(format!("{test}: {object}: {e}"));
                continue;
            }
        };
        for (compiled, c) in counts {
            let Some(f) = map
                .files
                .iter()
                .find(|f| gcov::same_file(&compiled, &f.path))
            else {
                continue;
            };
            let e = t.lines.entry(f.path.clone()).or_default();
            for l in f.lines.iter().filter(|l| l.status == LineStatus::Code) {
                if let Some(n) = c.lines.get(&l.line) {
                    *e.entry(l.line).or_default() += n;
                }
            }
            for func in c.functions {
                if f.functions.contains(&func.name) {
                    *t.functions
                        .entry(f.path.clone())
                        .or_default()
                        .entry(func.name)
                        .or_default() += func.calls;
                }
            }
        }
    }
    t
}

/// The cell's series coverage from the map and each test's counts (in test order).
pub fn report(map: &Map, tests: &[TestCounts]) -> SeriesCoverage {
    let files: Vec<FileCoverage> = map
        .files
        .iter()
        .map(|f| FileCoverage {
            path: f.path.clone(),
            built: f.built.clone(),
            lines: f
                .lines
                .iter()
                .map(|l| LineCoverage {
                    line: l.line,
                    text: l.text.clone(),
                    function: l.function.clone(),
                    status: l.status.clone(),
                    hits: if l.status == LineStatus::Code {
                        tests
                            .iter()
                            .map(|t| {
                                t.lines
                                    .get(&f.path)
                                    .and_then(|m| m.get(&l.line))
                                    .copied()
                                    .unwrap_or(0)
                            })
                            .collect()
                    } else {
                        vec![]
                    },
                })
                .collect(),
        })
        .collect();
    let mut functions = Vec::new();
    for (f, fc) in map.files.iter().zip(&files) {
        for name in &f.functions {
            let own: Vec<&LineCoverage> = fc
                .lines
                .iter()
                .filter(|l| l.function.as_deref() == Some(name) && l.status == LineStatus::Code)
                .collect();
            let recorded = map.recorded.get(&f.path).is_some_and(|r| r.contains(name));
            // gcov's call count where it has one (a function changed only by removals
            // has no added line); else the busiest of its added lines.
            let calls = tests
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let by_lines = own.iter().map(|l| l.hits[i]).max().unwrap_or(0);
                    match t.functions.get(&f.path).and_then(|m| m.get(name)) {
                        Some(c) if recorded => (*c).max(u64::from(by_lines > 0)),
                        _ => by_lines,
                    }
                })
                .collect();
            functions.push(FunctionCoverage {
                name: name.clone(),
                file: f.path.clone(),
                measurable: recorded || !own.is_empty(),
                calls,
            });
        }
    }
    let mut c = SeriesCoverage {
        reach: Reach::NotMeasured,
        summary: String::new(),
        lines_added: 0,
        lines_measurable: 0,
        lines_ran: 0,
        tests: tests.iter().map(|t| t.test.clone()).collect(),
        files,
        functions,
        notes: tests.iter().flat_map(|t| t.missing.clone()).collect(),
    };
    c.conclude();
    c
}

/// Copy a kernel's `coverage/` folder (map and notes) into a cell's folder: regular
/// files and folders only; nothing to do when the kernel has none.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(from) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let t = e.file_type()?;
        let dst = to.join(e.file_name());
        if t.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else if t.is_file() {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

/// Whether a compiled object carries gcov's instrumentation: a profiled object calls
/// `__gcov_init` from its constructor, an unprofiled one never names it. Objects larger
/// than 256 MiB are taken as not instrumented (none of the kernel's is near that).
fn instrumented(object: &Path) -> bool {
    const NEEDLE: &[u8] = b"__gcov_init";
    match std::fs::metadata(object) {
        Ok(m) if m.is_file() && m.len() <= 256 << 20 => {}
        _ => return false,
    }
    std::fs::read(object).is_ok_and(|b| b.windows(NEEDLE.len()).any(|w| w == NEEDLE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// An object is profiled when gcc instrumented it, however long its compile took
    /// after writing the notes; recompiled without profiling, older notes do not count.
    #[test]
    fn an_object_is_profiled_when_instrumented_not_by_the_notes_age() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("x.c");
        std::fs::write(&c, "int f(int a) { return a > 3 ? a * 2 : a; }\n").unwrap();
        let o = d.path().join("x.o");
        let cc = |extra: &[&str]| {
            let st = Command::new("gcc")
                .args(extra)
                .args(["-O2", "-c", "-o"])
                .arg(&o)
                .arg(&c)
                .status()
                .unwrap();
            assert!(st.success());
        };
        cc(&["-fprofile-arcs", "-ftest-coverage"]);
        assert!(d.path().join("x.gcno").is_file());
        assert!(instrumented(&o));
        cc(&[]);
        assert!(!instrumented(&o), "recompiled without profiling");
        assert!(!instrumented(&d.path().join("missing.o")));
    }

    /// The whole host side on a real compiler and gcov: a C file as a series adds it,
    /// compiled with profiling the way Kbuild does (from the object folder, `-o
    /// dir/x.o`), mapped, run once, measured.
    #[tokio::test]
    async fn map_and_measure_with_the_hosts_gcc_and_gcov() {
        let d = tempfile::tempdir().unwrap();
        let (tree, objdir, out) = (
            d.path().join("tree"),
            d.path().join("obj"),
            d.path().join("cov"),
        );
        let src = "\
int f(int a)
{
\tif (a > 3)
\t\treturn a * 2;
#ifdef CONFIG_NOPE
\treturn 7;
#endif
\treturn a;
}
int g(void) { return 1; }
int main(int argc, char **argv) { (void)argv; return f(argc) - argc; }
";
        std::fs::create_dir_all(tree.join("mm")).unwrap();
        std::fs::create_dir_all(objdir.join("mm")).unwrap();
        std::fs::write(tree.join("mm/a.c"), src).unwrap();
        // Kbuild's lines say the config builds it.
        std::fs::write(tree.join("Makefile"), "").unwrap();
        std::fs::write(tree.join("mm/Makefile"), "obj-y += a.o\n").unwrap();
        let mut patch = String::from("--- /dev/null\n+++ b/mm/a.c\n@@ -0,0 +1,11 @@\n");
        for l in src.lines() {
            patch.push_str(&format!("+{l}\n"));
        }
        let series = Series::new(&[patch]);
        assert_eq!(series.objects(), ["mm/a.o"]);
        let cc = |args: &[&str]| {
            let s = Command::new("gcc")
                .args(args)
                .current_dir(&objdir)
                .status()
                .unwrap();
            assert!(s.success(), "gcc {args:?}");
        };
        let source = tree.join("mm/a.c").display().to_string();
        cc(&[
            "-O0",
            "-fprofile-arcs",
            "-ftest-coverage",
            "-c",
            &source,
            "-o",
            "mm/a.o",
        ]);
        cc(&["-fprofile-arcs", "mm/a.o", "-o", "a.out"]);
        let map = compile_map(
            &series,
            &tree,
            &objdir,
            Arch::X86_64,
            "CONFIG_GCOV_KERNEL=y\n",
            &out,
        )
        .await
        .unwrap();
        assert_eq!(map.profiled, ["mm/a.o"]);
        assert_eq!(Map::load(&out).unwrap(), map);
        let status = |n: usize| map.files[0].lines[n - 1].status.clone();
        assert_eq!(status(3), LineStatus::Code);
        assert_eq!(status(2), LineStatus::NoCode);
        assert_eq!(
            status(6),
            LineStatus::Disabled {
                directive: "#ifdef CONFIG_NOPE".into(),
                at: 5
            }
        );
        assert!(map.builds_anything());
        // One run with argc 1: f's `a > 3` branch and g never run.
        assert!(Command::new(objdir.join("a.out"))
            .status()
            .unwrap()
            .success());
        let counters = d.path().join("results/coverage/t1");
        std::fs::create_dir_all(counters.join("mm")).unwrap();
        std::fs::copy(objdir.join("mm/a.gcda"), counters.join("mm/a.gcda")).unwrap();
        let t1 = measure(&map, &out, "t1", &counters).await;
        let t2 = measure(&map, &out, "t2", &d.path().join("results/coverage/t2")).await;
        assert_eq!(t2.missing, ["t2: no counters for mm/a.o"]);
        let r = report(&map, &[t1, t2]);
        let hits = |n: usize| r.files[0].lines[n - 1].hits.clone();
        assert_eq!(hits(3), [1, 0]);
        assert_eq!(hits(4), [0, 0]);
        assert_eq!(hits(8), [1, 0]);
        let g = r.functions.iter().find(|f| f.name == "g").unwrap();
        assert_eq!(g.calls, [0, 0]);
        let f = r.functions.iter().find(|f| f.name == "f").unwrap();
        assert_eq!(f.calls, [1, 0]);
        assert_eq!(r.reach, Reach::NeverRan);
        assert!(
            r.summary.contains(
                ", in tests t1; functions never run: g; never ran: mm/a.c:4 (f), mm/a.c:10 (g)"
            ),
            "{}",
            r.summary
        );
    }
}
