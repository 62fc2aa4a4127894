//! Console parser against a reference corpus: syzkaller's Linux report test data
//! (`pkg/report/testdata/linux/report/*`), real console logs each headed by the title
//! syzkaller's own parser gives it (`TITLE:`, with `ALT:`, `CORRUPTED:` ...; no header
//! means the log holds no report).
//!
//! `cargo run --release --example parser_agreement -- DIR [-v]` parses every file of DIR
//! with kmatrix's parser and prints, per report family (from the reference title):
//! detection (kmatrix finds a report), kind (the first finding's kind fits the family)
//! and function agreement (the function in kmatrix's title is the one in syzkaller's,
//! over the reports whose reference title names one), plus findings in the logs without
//! a report (false positives). `-v` lists every disagreement. Syzkaller's own rules are
//! not used here: only its expected titles.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use kmatrix::console::{self, Finding, Kind};

/// One corpus file: its reference header and console text.
struct Case {
    name: String,
    title: Option<String>,
    alt: Vec<String>,
    log: Vec<u8>,
}

fn read_case(path: &Path) -> Case {
    let data = std::fs::read(path).expect("read corpus file");
    let data: Vec<u8> = data.into_iter().filter(|&b| b != b'\r').collect();
    let mut title = None;
    let mut alt = Vec::new();
    let mut lines = data.split(|&b| b == b'\n');
    // Header lines up to the first empty line (`#` lines are comments).
    for l in lines.by_ref() {
        if l.is_empty() {
            break;
        }
        let s = String::from_utf8_lossy(l);
        if let Some(t) = s.strip_prefix("TITLE: ") {
            title = Some(t.to_string());
        } else if let Some(t) = s.strip_prefix("ALT: ") {
            alt.push(t.to_string());
        }
    }
    // The log, up to an optional `REPORT:` section (the expected report text).
    let mut log = Vec::new();
    let mut prev_empty = false;
    for l in lines {
        if prev_empty && l == b"REPORT:" {
            break;
        }
        log.extend_from_slice(l);
        log.push(b'\n');
        prev_empty = l.is_empty();
    }
    Case {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        title,
        alt,
        log,
    }
}

/// The report family of a reference title and the kmatrix kinds that fit it; None for
/// what is not a kernel report (syzkaller's own failures, other OSes' runtimes).
fn family(title: &str) -> Option<(&'static str, &'static [Kind])> {
    use Kind::*;
    let t = title;
    let starts = |p: &str| t.starts_with(p);
    let has = |p: &str| t.contains(p);
    if [
        "SYZFAIL",
        "SYZFATAL",
        "go runtime",
        "trusty:",
        "unexpected kernel reboot",
    ]
    .iter()
    .any(|p| t.starts_with(p))
    {
        return None;
    }
    if t.ends_with(": corrupted") || t == "BUG: corrupted" {
        return Some((
            "corrupted",
            &[
                Lockdep,
                HungTask,
                NullDeref,
                PagingFault,
                Gpf,
                Bug,
                Warning,
                Kasan,
                Kfence,
                Kmsan,
                Kcsan,
                Ubsan,
                Kmemleak,
                RcuStall,
                SoftLockup,
                HardLockup,
                SleepInAtomic,
                Panic,
                Other,
            ],
        ));
    }
    Some(if starts("KASAN:") {
        ("KASAN", &[Kasan])
    } else if starts("KMSAN:") {
        ("KMSAN", &[Kmsan])
    } else if starts("KCSAN:") {
        ("KCSAN", &[Kcsan])
    } else if starts("KFENCE:") {
        ("KFENCE", &[Kfence])
    } else if starts("UBSAN:") {
        ("UBSAN", &[Ubsan])
    } else if starts("memory leak") {
        ("memory leak", &[Kmemleak])
    } else if starts("INFO: rcu detected stall") {
        ("rcu stall", &[RcuStall])
    } else if starts("BUG: soft lockup") {
        ("soft lockup", &[SoftLockup])
    } else if starts("INFO: task hung") || starts("INFO: task can't die") {
        ("hung task", &[HungTask])
    } else if has("locking dependency") || has("lock inversion") || has("lock order detected") {
        ("lockdep", &[Lockdep])
    } else if starts("WARNING: locking bug") {
        // lockdep.c's own WARN_ONs; arm64 prints `BUG: Invalid wait context` as this.
        ("lockdep", &[Lockdep, Warning])
    } else if starts("possible deadlock")
        || starts("inconsistent lock state")
        || has("bad unlock balance")
        || has("suspicious RCU usage")
        || has("held lock freed")
        || has("still has locks held")
        || has("register non-static key")
        || has("nested lock was not taken")
        || starts("BUG: spinlock")
        || starts("BUG: rwlock")
        || has("lock held when returning")
        || starts("BUG: MAX_")
        || starts("BUG: workqueue leaked")
    {
        ("lockdep", &[Lockdep])
    } else if starts("BUG: sleeping function")
        || starts("BUG: scheduling while atomic")
        || starts("BUG: using ")
    {
        ("sleep in atomic", &[SleepInAtomic])
    } else if starts("BUG: unable to handle kernel NULL") {
        ("paging/NULL", &[NullDeref, PagingFault])
    } else if starts("BUG: unable to handle kernel") {
        ("paging/NULL", &[PagingFault, NullDeref])
    } else if starts("general protection fault") {
        ("gpf", &[Gpf])
    } else if starts("kernel BUG") || starts("BUG: corrupted list") || starts("BUG: bad usercopy") {
        ("kernel BUG", &[Bug])
    } else if starts("WARNING") {
        ("WARNING", &[Warning])
    } else if starts("kernel panic") || starts("PANIC:") || starts("kernel stack overflow") {
        ("panic", &[Panic, Other])
    } else if starts("BUG:") {
        ("other BUG", &[Other])
    } else {
        ("other", &[Other, Panic])
    })
}

/// A syscall's entry by any of its per-arch and historical names (`__x64_sys_rmdir`,
/// `SyS_rmdir`, `sys_rmdir`, `__do_sys_rmdir`, `ksys_rmdir` → `rmdir`), compiler
/// suffixes dropped: both titles are compared by this name.
fn canon(f: &str) -> String {
    let f = f.split_whitespace().next().unwrap_or("");
    let mut f = match f.find('.') {
        Some(i) if i > 0 => &f[..i],
        _ => f,
    };
    const PREFIXES: &[&str] = &[
        "__x64_", "__ia32_", "__arm64_", "__se_", "__do_", "compat_", "SYSC_", "SyS_", "____sys_",
        "___sys_", "__sys_", "sys_", "ksys_",
    ];
    loop {
        let before = f;
        for p in PREFIXES {
            if let Some(r) = f.strip_prefix(p) {
                if !r.is_empty() {
                    f = r;
                }
            }
        }
        if f == before {
            break;
        }
    }
    f.to_string()
}

enum RefFunc {
    /// The title names no function (`kernel panic: Attempted to kill init!`).
    None,
    /// Syzkaller found no usable frame (`... in corrupted`).
    Corrupted,
    Named(String),
}

fn title_func(title: &str) -> RefFunc {
    let Some((_, f)) = title.rsplit_once(" in ") else {
        return RefFunc::None;
    };
    if f.starts_with("corrupted") {
        return RefFunc::Corrupted;
    }
    if f.contains(" / ") {
        let names: Vec<String> = f.split(" / ").map(canon).collect();
        return RefFunc::Named(names.join(" / "));
    }
    // `aiptek_open/usb_submit_urb`: the caller is the function.
    let f = f.split('/').next().unwrap_or(f);
    let c = canon(f);
    if c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return RefFunc::None;
    }
    RefFunc::Named(c)
}

/// The function kmatrix's title names, if any.
fn kmatrix_func(f: &Finding) -> Option<String> {
    if f.kind == Kind::Kcsan {
        return match title_func(&f.title) {
            RefFunc::Named(n) => Some(n),
            _ => None,
        };
    }
    let frame = f.frame.as_deref()?;
    f.title
        .contains(&format!(" in {frame}"))
        .then(|| canon(frame))
}

#[derive(Default)]
struct Row {
    reports: usize,
    detected: usize,
    kind_ok: usize,
    named: usize,
    agree: usize,
    agree_alt: usize,
    ref_corrupted: usize,
    ref_none: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let dir = args
        .first()
        .filter(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .expect("usage: parser_agreement DIR [-v | --show NAME...]");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        (n.parse::<u64>().unwrap_or(u64::MAX), n)
    });
    // `--show NAME...`: the findings of these files, trace included.
    if let Some(i) = args.iter().position(|a| a == "--show") {
        for name in &args[i + 1..] {
            let case = read_case(&dir.join(name));
            println!("== {name}: want `{}`", case.title.as_deref().unwrap_or("-"));
            for f in console::parse(Cursor::new(&case.log)).expect("parse") {
                let trace: Vec<&str> = f.trace.iter().map(|t| t.function.as_str()).collect();
                println!(
                    "  {}: `{}`{} {:?}",
                    f.line,
                    f.title,
                    if f.corrupted { " corrupted" } else { "" },
                    trace
                );
            }
        }
        return;
    }
    let mut rows: BTreeMap<&'static str, Row> = BTreeMap::new();
    let (mut clean, mut fp, mut skipped) = (0, 0, 0);
    let mut notes: Vec<String> = Vec::new();
    for p in &files {
        let case = read_case(p);
        let findings = console::parse(Cursor::new(&case.log)).expect("parse");
        let Some(title) = &case.title else {
            clean += 1;
            fp += findings.len();
            for f in &findings {
                notes.push(format!("{}: false positive `{}`", case.name, f.title));
            }
            continue;
        };
        let Some((fam, kinds)) = family(title) else {
            skipped += 1;
            continue;
        };
        let row = rows.entry(fam).or_default();
        row.reports += 1;
        // Every report whose reference names a function counts, detected or not.
        let want = title_func(title);
        match &want {
            RefFunc::None => row.ref_none += 1,
            RefFunc::Corrupted => row.ref_corrupted += 1,
            RefFunc::Named(_) => row.named += 1,
        }
        let Some(f) = findings.first() else {
            notes.push(format!(
                "{}: [{fam}] not detected (want `{title}`)",
                case.name
            ));
            continue;
        };
        row.detected += 1;
        if kinds.contains(&f.kind) {
            row.kind_ok += 1;
        } else {
            notes.push(format!(
                "{}: [{fam}] kind {:?} `{}` (want `{title}`)",
                case.name, f.kind, f.title
            ));
        }
        let got = kmatrix_func(f);
        if let RefFunc::Named(want) = want {
            if got.as_deref() == Some(want.as_str()) {
                row.agree += 1;
                row.agree_alt += 1;
            } else {
                let alt_ok = case.alt.iter().any(|a| {
                    matches!(title_func(a), RefFunc::Named(w) if got.as_deref() == Some(w.as_str()))
                });
                if alt_ok {
                    row.agree_alt += 1;
                }
                notes.push(format!(
                    "{}: [{fam}] function {} in `{}`{} (want {want}: `{title}`){}",
                    case.name,
                    got.as_deref().unwrap_or("-"),
                    f.title,
                    if f.corrupted { " corrupted" } else { "" },
                    if alt_ok { " [an ALT title agrees]" } else { "" }
                ));
            }
        }
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            "   -  ".to_string()
        } else {
            format!("{:5.1}%", 100.0 * a as f64 / b as f64)
        }
    };
    println!(
        "{:<16} {:>7} {:>9} {:>7} {:>17} {:>9} {:>10} {:>7}",
        "family",
        "reports",
        "detected",
        "kind",
        "function agrees",
        "(w/ ALT)",
        "ref corr.",
        "ref -"
    );
    let mut tot = Row::default();
    for (fam, r) in &rows {
        println!(
            "{:<16} {:>7} {:>9} {:>7} {:>8} {:>8} {:>9} {:>10} {:>7}",
            fam,
            r.reports,
            pct(r.detected, r.reports),
            pct(r.kind_ok, r.reports),
            format!("{}/{}", r.agree, r.named),
            pct(r.agree, r.named),
            pct(r.agree_alt, r.named),
            r.ref_corrupted,
            r.ref_none
        );
        tot.reports += r.reports;
        tot.detected += r.detected;
        tot.kind_ok += r.kind_ok;
        tot.named += r.named;
        tot.agree += r.agree;
        tot.agree_alt += r.agree_alt;
        tot.ref_corrupted += r.ref_corrupted;
        tot.ref_none += r.ref_none;
    }
    println!(
        "{:<16} {:>7} {:>9} {:>7} {:>8} {:>8} {:>9} {:>10} {:>7}",
        "all",
        tot.reports,
        pct(tot.detected, tot.reports),
        pct(tot.kind_ok, tot.reports),
        format!("{}/{}", tot.agree, tot.named),
        pct(tot.agree, tot.named),
        pct(tot.agree_alt, tot.named),
        tot.ref_corrupted,
        tot.ref_none
    );
    println!(
        "logs without a report: {clean}, findings in them (false positives): {fp}; \
         not kernel reports (skipped): {skipped}"
    );
    if verbose {
        for n in &notes {
            println!("  {n}");
        }
    }
}
