//! `kmatrix parse LOG`: the kernel reports in a console log, in bounded memory whatever
//! the log (a flood of distinct reports included): findings are taken as the parser
//! completes them, the first few of each title kept, the rest counted.

use crate::cli::error::CliError;
use crate::record::finding::Finding;
use crate::record::fmt::visible_line;
use crate::record::verdict::exit;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Reports of one title listed in full; the rest are counted.
const PER_TITLE: usize = 10;
/// Distinct titles followed; reports of further titles are counted together.
const MAX_TITLES: usize = 10_000;
/// Bytes of findings kept (report text, console context, frames): past it, every report
/// is only counted.
const MAX_KEPT_BYTES: usize = 64 << 20;

/// What `kmatrix parse` keeps of a log's findings.
#[derive(Debug, Default)]
struct Kept {
    /// Findings listed in full, in the order they completed.
    findings: Vec<Finding>,
    /// Per title (index into `titles`): reports seen, and listed.
    titles: Vec<Title>,
    index: HashMap<String, usize>,
    bytes: usize,
    /// Reports of titles past `MAX_TITLES`, and how many such titles (to the first
    /// `MAX_TITLES` of them: counting them all would grow as they do).
    unlisted_reports: u64,
    unlisted_titles: HashSet<String>,
    caps: Caps,
}

#[derive(Debug, Clone, Copy)]
struct Caps {
    per_title: usize,
    titles: usize,
    bytes: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            per_title: PER_TITLE,
            titles: MAX_TITLES,
            bytes: MAX_KEPT_BYTES,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Title {
    title: String,
    kind: crate::record::finding::Kind,
    count: u64,
    listed: usize,
}

/// About what a finding costs to keep.
fn size(f: &Finding) -> usize {
    256 + f.title.len()
        + f.report.len()
        + f.context.iter().map(|l| l.len() + 24).sum::<usize>()
        + f.trace
            .iter()
            .map(|t| 64 + t.function.len() + t.source.as_ref().map_or(0, String::len))
            .sum::<usize>()
}

impl Kept {
    fn add(&mut self, f: Finding) {
        let i = match self.index.get(&f.title) {
            Some(&i) => i,
            None if self.titles.len() < self.caps.titles => {
                self.index.insert(f.title.clone(), self.titles.len());
                self.titles.push(Title {
                    title: f.title.clone(),
                    kind: f.kind,
                    count: 0,
                    listed: 0,
                });
                self.titles.len() - 1
            }
            None => {
                self.unlisted_reports += 1;
                if self.unlisted_titles.len() < self.caps.titles {
                    self.unlisted_titles.insert(f.title);
                }
                return;
            }
        };
        let t = &mut self.titles[i];
        t.count += 1;
        let cost = size(&f);
        if t.listed < self.caps.per_title && self.bytes + cost <= self.caps.bytes {
            t.listed += 1;
            self.bytes += cost;
            self.findings.push(f);
        }
    }

    /// Titles with reports not listed.
    fn repeats(&self) -> Vec<&Title> {
        self.titles
            .iter()
            .filter(|t| t.count > t.listed as u64)
            .collect()
    }
}

pub fn parse(
    log: &Path,
    json: bool,
    vmlinux: Option<&Path>,
    tool_prefix: &str,
) -> Result<i32, CliError> {
    let io = |source| CliError::Io {
        path: log.to_owned(),
        source,
    };
    let f = std::fs::File::open(log).map_err(io)?;
    let mut kept = Kept::default();
    crate::console::parse_each(std::io::BufReader::new(f), |f| kept.add(f)).map_err(io)?;
    kept.findings.sort_by_key(|f| f.line);
    if let Some(v) = vmlinux {
        if let Err(e) = crate::console::symbolize(&mut kept.findings, v, tool_prefix) {
            eprintln!("kmatrix: cannot symbolise with {}: {e}", v.display());
        }
    }
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let written = if json {
        write_json(&mut out, &kept)
    } else {
        write_text(&mut out, &kept)
    };
    written
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| CliError::Io {
            path: "stdout".into(),
            source: e,
        })?;
    Ok(exit::PASS)
}

/// `{"findings": [...]}`, and what was not listed when anything was not: `repeats` (per
/// title: reports seen and listed) and `unlisted` (reports of titles past the cap).
fn write_json(out: &mut impl std::io::Write, k: &Kept) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        findings: &'a [Finding],
        #[serde(skip_serializing_if = "Vec::is_empty")]
        repeats: Vec<&'a Title>,
        #[serde(skip_serializing_if = "Option::is_none")]
        unlisted: Option<Unlisted>,
    }
    #[derive(serde::Serialize)]
    struct Unlisted {
        reports: u64,
        titles: usize,
    }
    let doc = Doc {
        findings: &k.findings,
        repeats: k.repeats(),
        unlisted: (k.unlisted_reports > 0).then_some(Unlisted {
            reports: k.unlisted_reports,
            titles: k.unlisted_titles.len(),
        }),
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(std::io::Error::other)?;
    writeln!(out)
}

fn write_text(out: &mut impl std::io::Write, k: &Kept) -> std::io::Result<()> {
    for f in &k.findings {
        writeln!(out, "{}: {} [{:?}]", f.line, visible_line(&f.title), f.kind)?;
    }
    for t in k.repeats() {
        writeln!(
            out,
            "{}: {} reports, the first {} listed",
            visible_line(&t.title),
            t.count,
            t.listed
        )?;
    }
    if k.unlisted_reports > 0 {
        writeln!(
            out,
            "{} more report(s) of {}{} other title(s), not listed (more than {} titles)",
            k.unlisted_reports,
            k.unlisted_titles.len(),
            if k.unlisted_titles.len() >= k.caps.titles {
                "+"
            } else {
                ""
            },
            k.caps.titles
        )?;
    }
    if k.findings.is_empty() && k.unlisted_reports == 0 {
        writeln!(out, "no kernel reports")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::finding::Kind;

    fn f(title: &str, line: usize, report: usize) -> Finding {
        Finding {
            kind: Kind::Warning,
            title: title.into(),
            line,
            report: "x".repeat(report),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_of_each_title_are_kept_and_the_rest_counted() {
        let mut k = Kept {
            caps: Caps {
                per_title: 2,
                titles: 3,
                bytes: 10_000,
            },
            ..Kept::default()
        };
        for i in 0..5 {
            k.add(f("a", i, 10));
        }
        k.add(f("b", 10, 10));
        k.add(f("c", 11, 10));
        // Past the title cap: counted, not kept.
        for i in 0..4 {
            k.add(f(&format!("d{i}"), 20 + i, 10));
        }
        let listed: Vec<(&str, usize)> = k
            .findings
            .iter()
            .map(|f| (f.title.as_str(), f.line))
            .collect();
        assert_eq!(listed, [("a", 0), ("a", 1), ("b", 10), ("c", 11)]);
        let rep: Vec<(&str, u64, usize)> = k
            .repeats()
            .iter()
            .map(|t| (t.title.as_str(), t.count, t.listed))
            .collect();
        assert_eq!(rep, [("a", 5, 2)]);
        assert_eq!((k.unlisted_reports, k.unlisted_titles.len()), (4, 3));

        let mut text = Vec::new();
        write_text(&mut text, &k).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("a: 5 reports, the first 2 listed"), "{text}");
        assert!(
            text.contains("4 more report(s) of 3+ other title(s), not listed (more than 3 titles)"),
            "{text}"
        );
        let mut json = Vec::new();
        write_json(&mut json, &k).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["findings"].as_array().unwrap().len(), 4);
        assert_eq!(v["repeats"][0]["count"], 5);
        assert_eq!(v["unlisted"]["reports"], 4);
    }

    #[test]
    fn kept_bytes_are_capped_and_every_report_still_counted() {
        let mut k = Kept {
            caps: Caps {
                per_title: 1000,
                titles: 1000,
                bytes: 10_000,
            },
            ..Kept::default()
        };
        for i in 0..100 {
            k.add(f(&format!("t{i}"), i, 1000));
        }
        assert!(k.bytes <= 10_000);
        assert_eq!(k.findings.len(), 7, "1256+ bytes each");
        assert_eq!(k.titles.iter().map(|t| t.count).sum::<u64>(), 100);
        assert_eq!(k.repeats().len(), 93);
    }

    #[test]
    fn an_ordinary_log_is_listed_whole_as_before() {
        let mut k = Kept::default();
        for i in 0..3 {
            k.add(f("a", i, 100));
        }
        let mut json = Vec::new();
        write_json(&mut json, &k).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["findings"]
        );
        let mut text = Vec::new();
        write_text(&mut text, &k).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "0: a [Warning]\n1: a [Warning]\n2: a [Warning]\n"
        );
    }
}
