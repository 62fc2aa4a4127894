//! Golden tests for the console parser: every `tests/data/console/<name>.log` is parsed
//! and compared with `<name>.expected.json`. `KMATRIX_BLESS=1 cargo test --test
//! console_golden` rewrites the expected files. The report text is trimmed to its first
//! line and a line count to keep the expectations reviewable.

use std::collections::HashMap;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use kmatrix::console::{self, Finding, Kind, Parser};
use serde_json::{json, Value};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/console")
}

fn logs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

fn reviewable(findings: &[Finding]) -> Value {
    let mut v = console::findings_json(findings);
    for (f, j) in findings.iter().zip(v["findings"].as_array_mut().unwrap()) {
        let o = j.as_object_mut().unwrap();
        o.remove("report");
        o.insert(
            "report_first_line".into(),
            json!(f.report.lines().next().unwrap_or("")),
        );
        o.insert("report_lines".into(), json!(f.report.lines().count()));
        // Keep traces short: function names only.
        let names: Vec<&str> = f.trace.iter().map(|fr| fr.function.as_str()).collect();
        o.insert("trace".into(), json!(names));
    }
    v
}

fn parse_bytes(data: &[u8]) -> Vec<Finding> {
    console::parse(Cursor::new(data)).unwrap()
}

#[test]
fn golden() {
    let bless = std::env::var_os("KMATRIX_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for log in logs() {
        let data = fs::read(&log).unwrap();
        let got = reviewable(&parse_bytes(&data));
        let exp_path = log.with_extension("expected.json");
        if bless {
            fs::write(
                &exp_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let Ok(text) = fs::read_to_string(&exp_path) else {
            failures.push(format!(
                "{}: missing expected file (run with KMATRIX_BLESS=1)",
                log.display()
            ));
            continue;
        };
        // Text, not parsed values: serde_json's default float parsing does not round-trip
        // every timestamp exactly.
        if text.trim_end() != serde_json::to_string_pretty(&got).unwrap() {
            failures.push(format!(
                "{}: mismatch\n--- expected\n{}\n--- got\n{}",
                log.display(),
                text,
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Feeding line by line gives the same findings as `parse`.
#[test]
fn streaming_matches_parse() {
    for log in logs() {
        let data = fs::read(&log).unwrap();
        let mut p = Parser::new();
        let mut got = Vec::new();
        for line in data.split(|&b| b == b'\n') {
            got.extend(p.feed(line));
        }
        got.extend(p.finish());
        got.sort_by_key(|f| f.line);
        let want = parse_bytes(&data);
        assert_eq!(got.len(), want.len(), "{}", log.display());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.title, w.title);
        }
    }
}

fn titles(data: &[u8]) -> Vec<(Kind, String, bool)> {
    parse_bytes(data)
        .into_iter()
        .map(|f| (f.kind, f.title, f.corrupted))
        .collect()
}

#[test]
fn interleaved_cpus() {
    let data = fs::read(data_dir().join("interleaved_cpus.log")).unwrap();
    let t = titles(&data);
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(t.iter().all(|(_, _, c)| !c), "{t:?}");
}

#[test]
fn cut_by_reboot() {
    let data = fs::read(data_dir().join("cut_by_reboot.log")).unwrap();
    let t = titles(&data);
    assert!(t[0].2, "first report must be marked corrupted: {t:?}");
}

#[test]
fn second_report_right_after_first() {
    let data = fs::read(data_dir().join("x86_warning_then_sleep.log")).unwrap();
    let t = titles(&data);
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0].0, Kind::Warning);
    assert_eq!(t[1].0, Kind::SleepInAtomic);
}

#[test]
fn non_utf8_bytes() {
    let data = fs::read(data_dir().join("non_utf8.log")).unwrap();
    assert!(
        std::str::from_utf8(&data).is_err(),
        "fixture must contain invalid UTF-8"
    );
    let t = titles(&data);
    assert_eq!(t.len(), 1, "{t:?}");
}

#[test]
fn boot_without_reports() {
    let data = fs::read(data_dir().join("clean_boot.log")).unwrap();
    assert!(parse_bytes(&data).is_empty());
}

#[test]
fn dedup_merges_repeated_titles() {
    let data = fs::read(data_dir().join("x86_hung_task_rwsem.log")).unwrap();
    let f = parse_bytes(&data);
    let d = console::dedup(&f);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, 2);
}

/// Small deterministic generator (xorshift64*), no dependency needed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutates real logs (drop, duplicate, swap, truncate, splice lines, inject random and
/// invalid bytes, interleave logs) and checks the parser never panics and stays sane.
#[test]
fn randomized_never_panics() {
    let corpus: Vec<Vec<u8>> = logs().iter().map(|p| fs::read(p).unwrap()).collect();
    let seed = std::env::var("KMATRIX_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    let iterations: usize = std::env::var("KMATRIX_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut rng = Rng(seed);
    for it in 0..iterations {
        let a = &corpus[rng.below(corpus.len())];
        let b = &corpus[rng.below(corpus.len())];
        let mut lines: Vec<Vec<u8>> = a.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
        let other: Vec<Vec<u8>> = b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
        for _ in 0..1 + rng.below(20) {
            let n = lines.len();
            let i = rng.below(n);
            match rng.below(9) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                2 => {
                    let j = rng.below(n);
                    lines.swap(i, j);
                }
                3 => {
                    let cut = rng.below(lines[i].len() + 1);
                    lines[i].truncate(cut);
                }
                4 => {
                    let pos = rng.below(lines[i].len() + 1);
                    let junk: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                    lines[i].splice(pos..pos, junk);
                }
                5 => {
                    let l = other[rng.below(other.len())].clone();
                    lines.insert(i, l);
                }
                6 => {
                    // Interleave a chunk of the other log line by line.
                    let start = rng.below(other.len());
                    for (k, l) in other.iter().skip(start).take(30).enumerate() {
                        let at = (i + 2 * k).min(lines.len());
                        lines.insert(at, l.clone());
                    }
                }
                7 => {
                    for b in lines[i].iter_mut() {
                        if rng.below(10) == 0 {
                            *b = 0x80 | (rng.next() as u8);
                        }
                    }
                }
                _ => {
                    let l = lines[i].len();
                    if l > 0 {
                        let pos = rng.below(l);
                        const BYTES: &[u8] = b"[]<>:+/? \r\0x";
                        lines[i][pos] = BYTES[rng.below(BYTES.len())];
                    }
                }
            }
            if lines.is_empty() {
                lines.push(Vec::new());
            }
        }
        let data = lines.join(&b'\n');
        let nlines = data.split(|&c| c == b'\n').count();
        let found = parse_bytes(&data);
        for f in &found {
            assert!(
                f.line >= 1 && f.line <= nlines,
                "iteration {it}: line {}",
                f.line
            );
            assert!(!f.title.is_empty(), "iteration {it}");
        }
        // Raw random bytes too.
        let noise: Vec<u8> = (0..rng.below(4096)).map(|_| rng.next() as u8).collect();
        let _ = parse_bytes(&noise);
        let _ = console::dedup(&found);
        let _ = console::findings_json(&found);
    }
}

/// With the seed v2 series' changed functions preferred, the real v2 oops is titled after
/// the function the series adds (it calls `vma_start_read_locked()` with a NULL VMA), not
/// after the unchanged helper the fault is in.
#[test]
fn series_aware_titles_name_the_changed_function() {
    let patch = fs::read_to_string(data_dir().join("series/v2.patch")).unwrap();
    let changed = console::changed_functions(&patch);
    assert_eq!(changed, ["vma_start_read_unlocked", "find_tcp_vma"]);
    for log in [
        "real_x86_v2_tcp_zerocopy_null_deref.log",
        "real_arm64_v2_tcp_zerocopy_null_deref.log",
    ] {
        let data = fs::read(data_dir().join(log)).unwrap();
        let plain = parse_bytes(&data);
        assert_eq!(
            plain[0].title,
            "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_locked_nested",
            "{log}"
        );
        let aware = console::parse_with(Cursor::new(&data), &changed).unwrap();
        assert_eq!(aware.len(), plain.len(), "{log}");
        assert_eq!(
            aware[0].title,
            "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked",
            "{log}"
        );
    }
}

/// The same bug gives the same titles on x86_64 and arm64 (RIP vs pc, `__x64_sys_*` vs
/// `__arm64_sys_*`, entry code), in the real logs of both arches.
#[test]
fn same_bug_same_titles_on_both_arches() {
    for (x86, arm64) in [
        (
            "real_x86_v2_tcp_zerocopy_null_deref.log",
            "real_arm64_v2_tcp_zerocopy_null_deref.log",
        ),
        (
            "real_x86_v2_two_boots_tcp_and_probe_null_deref.log",
            "real_arm64_v2_two_boots_tcp_and_probe_null_deref.log",
        ),
        ("x86_hung_task_rwsem.log", "arm64_hung_task_rwsem.log"),
        ("x86_null_deref_vma.log", "arm64_null_deref_vma.log"),
    ] {
        let t = |name: &str| -> Vec<String> {
            let data = fs::read(data_dir().join(name)).unwrap();
            let mut v: Vec<String> = parse_bytes(&data).into_iter().map(|f| f.title).collect();
            v.dedup();
            v
        };
        assert_eq!(t(x86), t(arm64), "{x86} vs {arm64}");
    }
}

/// The function a finding's title names (`... in X`), if any.
fn title_function(f: &Finding) -> Option<&str> {
    let frame = f.frame.as_deref()?;
    let named =
        f.title.ends_with(&format!(" in {frame}")) || f.title.contains(&format!(" in {frame} / "));
    named.then_some(frame)
}

/// One reference report: (log, head line, kind, function in the title).
type RefReport = (String, usize, Kind, Option<String>);

fn reference() -> (Vec<RefReport>, Vec<String>) {
    let text = fs::read_to_string(data_dir().join("reference.tsv")).unwrap();
    let mut reports = Vec::new();
    let mut clean = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.starts_with('#') || l.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = l.split('\t').collect();
        match cols.as_slice() {
            [log, "clean"] => clean.push(log.to_string()),
            [log, line, kind, func] => {
                let kind: Kind = serde_json::from_value(json!(kind))
                    .unwrap_or_else(|_| panic!("reference.tsv:{}: kind {kind}", n + 1));
                let func = (*func != "-").then(|| func.to_string());
                reports.push((log.to_string(), line.parse().unwrap(), kind, func));
            }
            _ => panic!("reference.tsv:{}: malformed", n + 1),
        }
    }
    (reports, clean)
}

/// The corpus figures of issue 19 on the project's own logs, against the hand-checked
/// reference: detection (a finding starts on the report's head line), kind (and its kind
/// is right), frame (and its title names the reference's function, or none when the
/// reference has none), and false positives (findings no reference report accounts
/// for; in the clean logs, the issue allows at most 3 in 35). Printed with
/// `--nocapture`; fails below the goals (97%, 95%, 85%).
#[test]
fn corpus_figures() {
    let (reports, clean) = reference();
    let mut by_log: HashMap<String, Vec<Finding>> = HashMap::new();
    for log in logs() {
        let name = log.file_name().unwrap().to_string_lossy().into_owned();
        by_log.insert(name, parse_bytes(&fs::read(&log).unwrap()));
    }
    for log in by_log.keys() {
        assert!(
            clean.contains(log) || reports.iter().any(|r| &r.0 == log),
            "{log} is not in reference.tsv"
        );
    }
    let (mut detected, mut kind_ok, mut frame_ok) = (0, 0, 0);
    let mut misses = Vec::new();
    for (log, line, kind, func) in &reports {
        let Some(f) = by_log[log].iter().find(|f| f.line == *line) else {
            misses.push(format!("{log}:{line}: not detected"));
            continue;
        };
        detected += 1;
        if f.kind == *kind {
            kind_ok += 1;
        } else {
            misses.push(format!("{log}:{line}: kind {:?}, want {kind:?}", f.kind));
        }
        if title_function(f) == func.as_deref() {
            frame_ok += 1;
        } else {
            misses.push(format!(
                "{log}:{line}: `{}`, want function {func:?}",
                f.title
            ));
        }
    }
    let mut extra = Vec::new();
    for (log, fs) in &by_log {
        for f in fs {
            if !reports.iter().any(|r| &r.0 == log && r.1 == f.line) {
                extra.push(format!("{log}:{}: `{}`", f.line, f.title));
            }
        }
    }
    extra.sort();
    let clean_fp = clean.iter().map(|l| by_log[l].len()).sum::<usize>();
    let n = reports.len() as f64;
    let pct = |k: usize| 100.0 * k as f64 / n;
    eprintln!(
        "corpus: {} logs, {} reports, {} clean logs\n  detected {:.1}% ({detected}), right kind {:.1}% ({kind_ok}), title function agrees {:.1}% ({frame_ok})\n  findings not in the reference: {} ({clean_fp} in clean logs)\n{}",
        by_log.len(),
        reports.len(),
        clean.len(),
        pct(detected),
        pct(kind_ok),
        pct(frame_ok),
        extra.len(),
        misses.iter().chain(&extra).map(|m| format!("  {m}\n")).collect::<String>()
    );
    assert!(pct(detected) >= 97.0, "detection below 97%");
    assert!(pct(kind_ok) >= 95.0, "kind accuracy below 95%");
    assert!(pct(frame_ok) >= 85.0, "frame agreement below 85%");
    assert!(clean_fp <= 3, "{clean_fp} false positives in clean logs");
}

/// Titles carry nothing that changes between runs (addresses, pids, counts, CPU
/// numbers), so the same bug deduplicates across cells, repeats and nights.
#[test]
fn titles_carry_no_run_specific_numbers() {
    for log in logs() {
        for f in parse_bytes(&fs::read(&log).unwrap()) {
            let bad = f
                .title
                .split([' ', ',', ':', '(', ')', '/', '[', ']'])
                .find(|w| {
                    w.starts_with("0x")
                        || (!w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
                        || (w.len() >= 8 && w.bytes().all(|b| b.is_ascii_hexdigit()))
                        || w.contains('#')
                });
            assert!(
                bad.is_none(),
                "{}: `{}` carries `{bad:?}`",
                log.display(),
                f.title
            );
        }
    }
}
