//! Series coverage as results.json records it: per changed file and added line whether
//! the config built it (and why not), whether it has code, and its count in each test;
//! per changed function whether it ran; one line that says it all.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// How the build treated a file the series changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Built {
    /// Compiled with gcov profiling: its lines are measured.
    Profiled { object: String },
    /// Compiled, but without profiling (`why`: its Makefile keeps it out, the kernel has
    /// no gcov).
    NotProfiled { object: String, why: String },
    /// Not compiled in this config; `why` as Kbuild says it (`needs CONFIG_NUMA`).
    NotBuilt { object: String, why: String },
    /// A header: `included_by` built objects include it (0: none does, so nothing of
    /// it is built); its lines are measured where profiled objects expand them.
    Header { included_by: u64 },
    /// Neither C nor a header (Kconfig, Makefile, assembly, docs).
    NotC,
}

/// What one added line is in this build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LineStatus {
    /// Compiled to code in a profiled object: its counts are measured.
    Code,
    /// Compiled, no code of its own (a declaration, a comment, a brace, or code the
    /// compiler removed).
    NoCode,
    /// Dropped by the preprocessor: `directive` (at line `at`) is false in this config.
    Disabled { directive: String, at: usize },
    /// Its file is not compiled in this config.
    NotBuilt,
    /// Compiled, but no profiled object has code for it (`why`).
    NotMeasurable { why: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCoverage {
    pub line: usize,
    /// The added text (bounded), for a report of the diff.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    pub status: LineStatus,
    /// The count in each test of [`SeriesCoverage::tests`] (same order); empty unless
    /// the line is `code`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hits: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCoverage {
    pub path: String,
    pub built: Built,
    pub lines: Vec<LineCoverage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCoverage {
    pub name: String,
    pub file: String,
    /// Whether anything measures it: gcov's count of its calls, or a changed line of
    /// it with code.
    pub measurable: bool,
    /// The calls in each test (gcov's function count; without a function record, the
    /// highest count of its changed lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<u64>,
}

/// How far the tests reached into the series, from nothing built to every line run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// No added line, and no changed function, is compiled in this config.
    NothingBuilt,
    /// Compiled, but no added line can be counted (declarations and comments only,
    /// inline code no profiled object expands, objects kept out of profiling).
    NotMeasurable,
    /// Measurable, but no test's counters came back.
    NotMeasured,
    /// A changed function (or, without functions, every measurable line) never ran.
    NeverRan,
    /// Every changed function ran, not every line.
    PartlyRan,
    AllRan,
}

/// One cell's series coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesCoverage {
    pub reach: Reach,
    /// `series coverage: 7 of 9 changed lines ran, in tests ...; never ran: ...`.
    pub summary: String,
    /// Added lines in all, with code (measurable), and of those, run by some test.
    pub lines_added: usize,
    pub lines_measurable: usize,
    pub lines_ran: usize,
    /// The tests measured, in order; counts are given in this order.
    pub tests: Vec<String>,
    pub files: Vec<FileCoverage>,
    pub functions: Vec<FunctionCoverage>,
    /// What kept a test's counters out (`vma_probe: no counters for mm/mmap_lock.o`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Ranges shown before "and N more".
const SHOWN: usize = 6;

impl SeriesCoverage {
    /// Fill in `reach`, the counts and `summary` from the files, functions and tests.
    pub fn conclude(&mut self) {
        let code = |l: &LineCoverage| l.status == LineStatus::Code;
        let ran = |l: &LineCoverage| l.hits.iter().any(|h| *h > 0);
        self.lines_added = self.files.iter().map(|f| f.lines.len()).sum();
        self.lines_measurable = self.lines().filter(|l| code(l)).count();
        self.lines_ran = self.lines().filter(|l| code(l) && ran(l)).count();
        let built_any = self.files.iter().any(|f| {
            f.lines.iter().any(|l| {
                matches!(
                    l.status,
                    LineStatus::Code | LineStatus::NoCode | LineStatus::NotMeasurable { .. }
                )
            })
        }) || self.functions.iter().any(|f| f.measurable);
        let measured = !self.tests.is_empty();
        let fn_never: Vec<&FunctionCoverage> = self
            .functions
            .iter()
            .filter(|f| f.measurable && measured && f.calls.iter().all(|c| *c == 0))
            .collect();
        self.reach = if !built_any {
            Reach::NothingBuilt
        } else if self.lines_measurable == 0 && !self.functions.iter().any(|f| f.measurable) {
            Reach::NotMeasurable
        } else if !measured {
            Reach::NotMeasured
        } else if !fn_never.is_empty() || (self.lines_measurable > 0 && self.lines_ran == 0) {
            Reach::NeverRan
        } else if self.lines_ran < self.lines_measurable {
            Reach::PartlyRan
        } else {
            Reach::AllRan
        };
        self.summary = match self.reach {
            Reach::NothingBuilt => format!(
                "the series changes nothing this config builds: {}",
                self.why_nothing_built()
            ),
            Reach::NotMeasurable => format!(
                "series coverage: no changed line can be measured in this config: {}",
                self.why_not_measurable()
            ),
            Reach::NotMeasured => format!(
                "series coverage: not measured ({} changed lines with code, no test's counters)",
                self.lines_measurable
            ),
            _ => {
                let mut s = if self.lines_measurable == 0 {
                    // The config compiled the changed lines away (a branch it makes dead):
                    // only the changed functions' calls say what ran.
                    let called: Vec<&str> = self
                        .functions
                        .iter()
                        .filter(|f| f.measurable && f.calls.iter().any(|c| *c > 0))
                        .map(|f| f.name.as_str())
                        .collect();
                    format!(
                        "series coverage: no changed line has code in this config; changed functions run: {}",
                        if called.is_empty() { "none".to_string() } else { called.join(", ") }
                    )
                } else {
                    format!(
                        "series coverage: {} of {} changed lines ran",
                        self.lines_ran, self.lines_measurable
                    )
                };
                let ran_in: Vec<&str> = self
                    .tests
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| {
                        self.lines()
                            .any(|l| code(l) && l.hits.get(*i).is_some_and(|h| *h > 0))
                            || self
                                .functions
                                .iter()
                                .any(|f| f.calls.get(*i).is_some_and(|c| *c > 0))
                    })
                    .map(|(_, t)| t.as_str())
                    .collect();
                if !ran_in.is_empty() {
                    let _ = write!(s, ", in tests {}", ran_in.join(", "));
                }
                if !fn_never.is_empty() {
                    let names: Vec<&str> = fn_never.iter().map(|f| f.name.as_str()).collect();
                    let _ = write!(s, "; functions never run: {}", names.join(", "));
                }
                let never = self.never_ran();
                if !never.is_empty() {
                    let _ = write!(s, "; never ran: {never}");
                }
                s
            }
        };
    }

    fn lines(&self) -> impl Iterator<Item = &LineCoverage> {
        self.files.iter().flat_map(|f| &f.lines)
    }

    /// `mm/mmap_lock.c:362-364 (vma_start_read_unlocked), ...`: runs of measurable lines
    /// no test ran (lines without code in between do not break a run; a line that ran
    /// does).
    pub fn never_ran(&self) -> String {
        let mut ranges: Vec<String> = Vec::new();
        for f in &self.files {
            let mut run: Option<(usize, usize, Option<&str>)> = None;
            let mut flush = |run: &mut Option<(usize, usize, Option<&str>)>| {
                if let Some((a, b, func)) = run.take() {
                    let mut r = if a == b {
                        format!("{}:{a}", f.path)
                    } else {
                        format!("{}:{a}-{b}", f.path)
                    };
                    if let Some(func) = func {
                        let _ = write!(r, " ({func})");
                    }
                    ranges.push(r);
                }
            };
            for l in &f.lines {
                if l.status != LineStatus::Code {
                    continue;
                }
                if l.hits.iter().any(|h| *h > 0) {
                    flush(&mut run);
                    continue;
                }
                let func = l.function.as_deref();
                run = match run {
                    Some((a, _, rf)) if rf == func => Some((a, l.line, rf)),
                    Some(_) => {
                        flush(&mut run);
                        Some((l.line, l.line, func))
                    }
                    None => Some((l.line, l.line, func)),
                };
            }
            flush(&mut run);
        }
        shorten(ranges)
    }

    fn why_nothing_built(&self) -> String {
        let mut why: Vec<String> = Vec::new();
        for f in &self.files {
            match &f.built {
                Built::NotBuilt { why: w, .. } => why.push(format!("{} {w}", f.path)),
                Built::Header { included_by: 0 } => {
                    why.push(format!("{}: no object of this config includes it", f.path))
                }
                Built::NotC => {}
                _ => {
                    // Compiled, but every added line is under a false `#if`.
                    let mut seen: Vec<(&str, usize)> = Vec::new();
                    for l in &f.lines {
                        if let LineStatus::Disabled { directive, at } = &l.status {
                            if !seen.contains(&(directive.as_str(), *at)) {
                                seen.push((directive, *at));
                                why.push(format!(
                                    "{}:{} is under `{directive}` (line {at})",
                                    f.path, l.line
                                ));
                            }
                        }
                    }
                }
            }
        }
        if why.is_empty() {
            why.push("it changes no C code".into());
        }
        shorten(why)
    }

    fn why_not_measurable(&self) -> String {
        let mut why: Vec<String> = Vec::new();
        for f in &self.files {
            if let Built::NotProfiled { why: w, .. } = &f.built {
                why.push(format!("{}: {w}", f.path));
                continue;
            }
            let mut reasons: Vec<&str> = Vec::new();
            for l in &f.lines {
                let r = match &l.status {
                    LineStatus::NotMeasurable { why } => why.as_str(),
                    LineStatus::NoCode => "no code",
                    _ => continue,
                };
                if !reasons.contains(&r) {
                    reasons.push(r);
                }
            }
            if !reasons.is_empty() {
                why.push(format!("{}: {}", f.path, reasons.join(", ")));
            }
        }
        shorten(why)
    }
}

fn shorten(mut items: Vec<String>) -> String {
    if items.len() > SHOWN {
        let more = items.len() - SHOWN;
        items.truncate(SHOWN);
        items.push(format!("and {more} more"));
    }
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, func: Option<&str>, status: LineStatus, hits: &[u64]) -> LineCoverage {
        LineCoverage {
            line: n,
            text: String::new(),
            function: func.map(str::to_string),
            status,
            hits: hits.to_vec(),
        }
    }

    fn cov(
        files: Vec<FileCoverage>,
        functions: Vec<FunctionCoverage>,
        tests: &[&str],
    ) -> SeriesCoverage {
        let mut c = SeriesCoverage {
            reach: Reach::NotMeasured,
            summary: String::new(),
            lines_added: 0,
            lines_measurable: 0,
            lines_ran: 0,
            tests: tests.iter().map(|t| t.to_string()).collect(),
            files,
            functions,
            notes: vec![],
        };
        c.conclude();
        c
    }

    fn func(name: &str, calls: &[u64]) -> FunctionCoverage {
        FunctionCoverage {
            name: name.into(),
            file: "mm/mmap_lock.c".into(),
            measurable: true,
            calls: calls.to_vec(),
        }
    }

    const F: Option<&str> = Some("vma_start_read_unlocked");

    #[test]
    fn partly_ran_names_the_tests_and_the_lines_that_never_ran() {
        use LineStatus::*;
        let files = vec![FileCoverage {
            path: "mm/mmap_lock.c".into(),
            built: Built::Profiled {
                object: "mm/mmap_lock.o".into(),
            },
            lines: vec![
                line(359, F, Code, &[0, 40]),
                line(360, F, Code, &[0, 40]),
                line(361, F, NoCode, &[]),
                line(362, F, Code, &[0, 0]),
                line(363, F, NoCode, &[]),
                line(364, F, Code, &[0, 0]),
                line(365, F, Code, &[0, 3]),
                line(366, F, Code, &[0, 0]),
            ],
        }];
        let c = cov(
            files,
            vec![func("vma_start_read_unlocked", &[0, 40])],
            &["faults", "vma_probe"],
        );
        assert_eq!(c.reach, Reach::PartlyRan);
        assert_eq!((c.lines_added, c.lines_measurable, c.lines_ran), (8, 6, 3));
        assert_eq!(
            c.summary,
            "series coverage: 3 of 6 changed lines ran, in tests vma_probe; never ran: mm/mmap_lock.c:362-364 (vma_start_read_unlocked), mm/mmap_lock.c:366 (vma_start_read_unlocked)"
        );
    }

    #[test]
    fn a_function_no_test_calls_is_never_ran() {
        use LineStatus::*;
        let files = vec![FileCoverage {
            path: "net/ipv4/tcp.c".into(),
            built: Built::Profiled {
                object: "net/ipv4/tcp.o".into(),
            },
            lines: vec![line(2177, Some("find_tcp_vma"), Code, &[0])],
        }];
        let mut f = func("find_tcp_vma", &[0]);
        f.file = "net/ipv4/tcp.c".into();
        let c = cov(files, vec![f], &["faults"]);
        assert_eq!(c.reach, Reach::NeverRan);
        assert_eq!(
            c.summary,
            "series coverage: 0 of 1 changed lines ran; functions never run: find_tcp_vma; never ran: net/ipv4/tcp.c:2177 (find_tcp_vma)"
        );
    }

    #[test]
    fn lines_the_config_compiles_away_are_told_by_the_functions_that_ran() {
        use LineStatus::*;
        // pvl-off v3: `if (IS_ENABLED(CONFIG_PER_VMA_LOCK))` is dead, its lines have no
        // code, yet the changed function runs.
        let files = vec![FileCoverage {
            path: "drivers/android/binder_alloc.c".into(),
            built: Built::Profiled {
                object: "drivers/android/binder_alloc.o".into(),
            },
            lines: vec![line(263, Some("binder_page_insert"), NoCode, &[])],
        }];
        let mut f = func("binder_page_insert", &[0, 6294]);
        f.file = "drivers/android/binder_alloc.c".into();
        let c = cov(files, vec![f], &["faults", "binder"]);
        assert_eq!(c.reach, Reach::AllRan);
        assert_eq!(
            c.summary,
            "series coverage: no changed line has code in this config; changed functions run: binder_page_insert, in tests binder"
        );
    }

    #[test]
    fn nothing_built_says_which_option_or_directive() {
        use LineStatus::*;
        let files = vec![
            FileCoverage {
                path: "mm/mempolicy.c".into(),
                built: Built::NotBuilt {
                    object: "mm/mempolicy.o".into(),
                    why: "needs CONFIG_NUMA".into(),
                },
                lines: vec![line(10, None, NotBuilt, &[])],
            },
            FileCoverage {
                path: "mm/mmap_lock.c".into(),
                built: Built::Profiled {
                    object: "mm/mmap_lock.o".into(),
                },
                lines: vec![
                    line(
                        344,
                        None,
                        Disabled {
                            directive: "#ifdef CONFIG_PER_VMA_LOCK".into(),
                            at: 48,
                        },
                        &[],
                    ),
                    line(
                        345,
                        None,
                        Disabled {
                            directive: "#ifdef CONFIG_PER_VMA_LOCK".into(),
                            at: 48,
                        },
                        &[],
                    ),
                ],
            },
            FileCoverage {
                path: "mm/Kconfig".into(),
                built: Built::NotC,
                lines: vec![],
            },
        ];
        let c = cov(files, vec![], &["faults"]);
        assert_eq!(c.reach, Reach::NothingBuilt);
        assert_eq!(
            c.summary,
            "the series changes nothing this config builds: mm/mempolicy.c needs CONFIG_NUMA, mm/mmap_lock.c:344 is under `#ifdef CONFIG_PER_VMA_LOCK` (line 48)"
        );
    }

    #[test]
    fn built_but_not_measurable_and_not_measured() {
        use LineStatus::*;
        let header = FileCoverage {
            path: "include/linux/mmap_lock.h".into(),
            built: Built::Header { included_by: 900 },
            lines: vec![
                line(262, None, NoCode, &[]),
                line(
                    526,
                    Some("vma_start_read_unlocked"),
                    NotMeasurable {
                        why: "inline code no profiled object expands".into(),
                    },
                    &[],
                ),
            ],
        };
        let c = cov(vec![header.clone()], vec![], &["faults"]);
        assert_eq!(c.reach, Reach::NotMeasurable);
        assert_eq!(
            c.summary,
            "series coverage: no changed line can be measured in this config: include/linux/mmap_lock.h: no code, inline code no profiled object expands"
        );
        let mut code = header;
        code.lines[0].status = Code;
        let c = cov(vec![code], vec![], &[]);
        assert_eq!(c.reach, Reach::NotMeasured);
        assert_eq!(
            c.summary,
            "series coverage: not measured (1 changed lines with code, no test's counters)"
        );
    }

    #[test]
    fn all_ran_and_long_lists_are_cut() {
        use LineStatus::*;
        let lines: Vec<LineCoverage> = (1..=20)
            .map(|n| line(n * 10, Some("f"), Code, &[u64::from(n % 2 == 0)]))
            .collect();
        let files = vec![FileCoverage {
            path: "a.c".into(),
            built: Built::Profiled {
                object: "a.o".into(),
            },
            lines,
        }];
        let c = cov(files.clone(), vec![func("f", &[1])], &["t"]);
        assert_eq!(c.reach, Reach::PartlyRan);
        assert!(
            c.summary.ends_with("a.c:110 (f), and 4 more"),
            "{}",
            c.summary
        );
        let mut all = files;
        all[0].lines.iter_mut().for_each(|l| l.hits = vec![2]);
        let c = cov(all, vec![func("f", &[1])], &["t"]);
        assert_eq!(c.reach, Reach::AllRan);
        assert_eq!(
            c.summary,
            "series coverage: 20 of 20 changed lines ran, in tests t"
        );
    }
}
