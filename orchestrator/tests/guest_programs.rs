//! The guest programs on the host: every `guest-tests/*.c` builds static with the flags
//! kmatrix uses (`-Werror`), ktap.h's overlap evidence behaves as documented (a starved
//! kind is `not ok`, work after the first kind stopped does not count), and, with
//! `--include-ignored`, every stress program runs for a few seconds on all CPUs and on
//! one, and prints a complete KTAP plan with one `kmatrix-overlap` line whose kinds all
//! did work. The THP programs also run as a kernel without THP would see them
//! (`selftest/no_thp.c`): every THP case SKIPs with the kernel's answers, the rest runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const CFLAGS: &[&str] = &["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread"];

/// The stress programs and the thread kinds each must report.
const STRESS: &[(&str, &[&str])] = &[
    (
        "faults_vs_writers",
        &[
            "fault_anon",
            "fault_shm",
            "mprotect",
            "mmap",
            "mremap",
            "proc",
        ],
    ),
    (
        "remote_vs_writers",
        &["reader_pvr", "reader_mem", "child_mprotect", "child_churn"],
    ),
    (
        "uffd_vs_writers",
        &["fault", "writer_copy", "writer_move", "handler"],
    ),
    (
        "tcp_zerocopy_vs_writers",
        &["sender", "receiver", "mprotect_half", "mmap", "whole"],
    ),
    (
        "fork_vs_faults",
        &[
            "stamp_anon",
            "stamp_shm",
            "fork",
            "toggle",
            "remote",
            "order",
        ],
    ),
    ("replace_vs_faults", &["fault", "remap", "advise"]),
    ("maps_consistency", &["split", "remap", "reader", "query"]),
    (
        "binder_vs_writers",
        &[
            "client",
            "server",
            "client_vma",
            "server_vma",
            "churn",
            "shrink",
        ],
    ),
    (
        "mempolicy_vs_faults",
        &[
            "fault_anon",
            "fault_shm",
            "mbind",
            "migrate",
            "split",
            "query",
        ],
    ),
    (
        "collapse_vs_faults",
        &["fault_anon", "fault_shm", "collapse", "unmap"],
    ),
    (
        "vma_users_vs_writers",
        &[
            "writer",
            "uffd_move",
            "uffd_wp",
            "uffd_remove",
            "file",
            "mlock",
            "clear_refs",
            "stack",
            "proc",
            "gup",
            "thp",
        ],
    ),
];

fn guest_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-tests")
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Build `src` into `out` with `cc`; the compiler's own words on failure.
fn build(cc: &str, src: &Path, out: &Path) -> Result<(), String> {
    let o = Command::new(cc)
        .args(CFLAGS)
        .arg("-o")
        .arg(out)
        .arg(src)
        .output()
        .map_err(|e| format!("{cc}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cc} {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn sources() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [guest_tests(), guest_tests().join("selftest")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "c") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// The parsed `# kmatrix-overlap: window=S.mmm kind=ops ...` line.
#[derive(Debug)]
struct Overlap {
    window: f64,
    kinds: Vec<(String, u64)>,
}

/// Exactly one overlap line, in the documented shape, or why not.
fn overlap(ktap: &str) -> Result<Overlap, String> {
    let lines: Vec<&str> = ktap
        .lines()
        .filter_map(|l| l.strip_prefix("# kmatrix-overlap: "))
        .collect();
    let [line] = lines[..] else {
        return Err(format!("{} overlap lines in:\n{ktap}", lines.len()));
    };
    let mut words = line.split(' ');
    let window = words
        .next()
        .and_then(|w| w.strip_prefix("window="))
        .filter(|w| w.split_once('.').is_some_and(|(_, frac)| frac.len() == 3))
        .and_then(|w| w.parse::<f64>().ok())
        .ok_or_else(|| format!("no window=<s.mmm> first: {line}"))?;
    let mut kinds = Vec::new();
    for w in words {
        let (k, n) = w
            .split_once('=')
            .ok_or_else(|| format!("'{w}' is not kind=ops: {line}"))?;
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("kind '{k}' is not [a-z0-9_]+: {line}"));
        }
        let n = n
            .parse::<u64>()
            .map_err(|_| format!("ops '{n}' is not a u64: {line}"))?;
        kinds.push((k.to_string(), n));
    }
    if kinds.is_empty() || kinds.len() > 16 {
        return Err(format!("{} kinds: {line}", kinds.len()));
    }
    Ok(Overlap { window, kinds })
}

/// `1..N` and N result lines numbered 1..N.
fn plan_complete(ktap: &str) -> Result<(), String> {
    let planned: usize = ktap
        .lines()
        .find_map(|l| l.strip_prefix("1.."))
        .and_then(|n| n.parse().ok())
        .ok_or("no plan line")?;
    let numbers: Vec<usize> = ktap
        .lines()
        .filter_map(|l| l.strip_prefix("not ok ").or_else(|| l.strip_prefix("ok ")))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    if numbers != (1..=planned).collect::<Vec<_>>() {
        return Err(format!("plan 1..{planned} but results {numbers:?}"));
    }
    Ok(())
}

fn selftest(scenario: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("ktap_overlap");
    build("gcc", &guest_tests().join("selftest/ktap_overlap.c"), &exe).unwrap();
    let o = Command::new(&exe).args([scenario, "0.5"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    plan_complete(&out).unwrap();
    assert!(
        out.contains("ok 1 run ended within duration + overtime"),
        "{out}"
    );
    out
}

#[test]
fn every_guest_program_builds_static_with_werror() {
    let dir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    let mut ccs = vec!["gcc"];
    // The cross compiler is what kmatrix uses for arm64 guests; setup-host installs it.
    if have("aarch64-linux-gnu-gcc") {
        ccs.push("aarch64-linux-gnu-gcc");
    } else {
        eprintln!("aarch64-linux-gnu-gcc not installed: arm64 builds not checked");
    }
    for cc in ccs {
        for src in sources() {
            let out = dir.path().join(format!(
                "{}-{cc}",
                src.file_stem().unwrap().to_string_lossy()
            ));
            if let Err(e) = build(cc, &src, &out) {
                failed.push(e);
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn overlap_both_kinds_running_all_the_time_is_ok() {
    let out = selftest("both");
    let ov = overlap(&out).unwrap();
    assert!(ov.window > 0.3, "{out}");
    assert!(ov.kinds.iter().all(|(_, n)| *n > 0), "{out}");
    assert!(
        out.contains("ok 2 busy overlapped the other kinds\n"),
        "{out}"
    );
    assert!(
        out.contains("ok 3 other overlapped the other kinds\n"),
        "{out}"
    );
}

#[test]
fn overlap_a_kind_that_starts_after_the_other_stopped_has_none() {
    let out = selftest("late");
    let ov = overlap(&out).unwrap();
    assert_eq!(ov.window, 0.0, "{out}");
    assert!(
        out.contains("not ok 2 busy overlapped the other kinds # none\n"),
        "{out}"
    );
    assert!(
        out.contains("not ok 3 other overlapped the other kinds # none\n"),
        "{out}"
    );
}

#[test]
fn overlap_keep_going_waits_for_a_starved_kind_while_the_others_run() {
    let out = selftest("catchup");
    let ov = overlap(&out).unwrap();
    assert!(ov.kinds.iter().all(|(_, n)| *n > 0), "{out}");
    assert!(
        out.contains("ok 3 other overlapped the other kinds\n"),
        "{out}"
    );
}

#[test]
fn overlap_work_after_the_first_kind_stopped_does_not_count() {
    let out = selftest("nocatchup");
    assert!(
        out.contains("ok 2 busy overlapped the other kinds\n"),
        "{out}"
    );
    assert!(
        out.contains("not ok 3 other overlapped the other kinds # none\n"),
        "{out}"
    );
    let ov = overlap(&out).unwrap();
    assert_eq!(ov.kinds[1], ("other".to_string(), 0), "{out}");
}

#[test]
fn overlap_line_parser_rejects_malformed_lines() {
    assert!(overlap("# kmatrix-overlap: window=1.5 a=1\n").is_err());
    assert!(overlap("# kmatrix-overlap: window=1.500 A=1\n").is_err());
    assert!(overlap("# kmatrix-overlap: window=1.500 a=-1\n").is_err());
    assert!(overlap("# kmatrix-overlap: window=1.500\n").is_err());
    assert!(overlap("no line\n").is_err());
    let ov = overlap("# kmatrix-overlap: window=1.500 a_1=0 b=18446744073709551615\n").unwrap();
    assert_eq!(ov.kinds.len(), 2);
}

/// The reason, when every case is `ok N ... # SKIP <reason>` with one and the same
/// reason and there is no overlap line: the program found its kernel feature missing
/// (binder on a host kernel without binderfs).
fn skipped_whole(ktap: &str) -> Option<String> {
    let mut reason: Option<&str> = None;
    for l in ktap.lines() {
        if l.starts_with("# kmatrix-overlap:") || l.starts_with("not ok ") {
            return None;
        }
        if let Some(rest) = l.strip_prefix("ok ") {
            let r = rest.split_once(" # SKIP ")?.1;
            if reason.is_some_and(|x| x != r) {
                return None;
            }
            reason = Some(r);
        }
    }
    reason.map(str::to_string)
}

#[test]
fn a_whole_skip_is_told_apart_from_a_partial_one() {
    let all = "TAP version 13\n1..2\nok 1 a # SKIP no binderfs\nok 2 b # SKIP no binderfs\n";
    assert_eq!(skipped_whole(all).as_deref(), Some("no binderfs"));
    let partial = "1..2\nok 1 a\nok 2 b # SKIP no binderfs\n";
    assert_eq!(skipped_whole(partial), None);
    let mixed = "1..2\nok 1 a # SKIP x\nok 2 b # SKIP y\n";
    assert_eq!(skipped_whole(mixed), None);
    let ran = "1..1\n# kmatrix-overlap: window=1.000 a=1\nok 1 a # SKIP x\n";
    assert_eq!(skipped_whole(ran), None);
}

/// Run one stress program for `secs`, optionally pinned to CPU 0; its KTAP text.
fn run_stress(name: &str, exe: &Path, secs: &str, one_cpu: bool, dir: &Path) -> String {
    let result = dir.join(format!("{name}-{one_cpu}.ktap"));
    let mut cmd = if one_cpu {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let started = std::time::Instant::now();
    let o = cmd.arg(secs).arg(&result).output().unwrap();
    let took = started.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let limit = secs.parse::<f64>().unwrap() + 4.0; // the watchdog's grace
    assert!(
        took < limit,
        "{name}: {took:.1} s for a {secs} s run\n{out}"
    );
    assert!(
        o.status.success(),
        "{name} (one cpu: {one_cpu}): {:?}\n{out}",
        o.status
    );
    assert_eq!(
        std::fs::read_to_string(&result).unwrap(),
        out,
        "{name}: result file"
    );
    out
}

#[test]
#[ignore = "runs every stress program for 2 s on all CPUs and on one (about 40 s)"]
fn stress_programs_report_overlap_for_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    for (name, kinds) in STRESS {
        let exe = dir.path().join(name);
        build("gcc", &guest_tests().join(format!("{name}.c")), &exe).unwrap();
        for one_cpu in [false, true] {
            let out = run_stress(name, &exe, "2", one_cpu, dir.path());
            plan_complete(&out).unwrap_or_else(|e| panic!("{name}: {e}\n{out}"));
            if let Some(why) = skipped_whole(&out) {
                // Said where it shows, as the other skips here: the host kernel lacks
                // what the program drives; the guests have it.
                let _ = writeln!(
                    std::io::stderr(),
                    "{name}: SKIPPED on this host ({why}); it runs in the guests"
                );
                break;
            }
            assert!(!out.contains("\nnot ok "), "{name}:\n{out}");
            let ov = overlap(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
            let got: Vec<&str> = ov.kinds.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(&got, kinds, "{name}:\n{out}");
            for (k, n) in &ov.kinds {
                assert!(*n > 0, "{name}: kind {k} has no overlapped ops\n{out}");
                assert!(
                    out.contains(&format!(" {k} overlapped the other kinds\n")),
                    "{name}: no result for kind {k}\n{out}"
                );
            }
        }
    }
}

/// What a kernel without `CONFIG_TRANSPARENT_HUGEPAGE` (the default configs) answers, as
/// the programs quote it in their SKIPs.
const NO_THP: &str = "no transparent hugepages: MADV_HUGEPAGE: EINVAL, no /sys/kernel/mm/transparent_hugepage (ENOENT): CONFIG_TRANSPARENT_HUGEPAGE off";

/// Run `name` for `secs` through `selftest/no_thp` (a private mount namespace with no THP
/// sysfs, a seccomp filter answering THP advice with EINVAL: a kernel without THP as the
/// program sees it). `None`, said on stderr, when this host cannot set that up.
fn run_without_thp(name: &str, secs: &str) -> Option<(String, std::process::ExitStatus)> {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("no_thp");
    let exe = dir.path().join(name);
    let result = dir.path().join(format!("{name}.ktap"));
    build("gcc", &guest_tests().join("selftest/no_thp.c"), &wrapper).unwrap();
    build("gcc", &guest_tests().join(format!("{name}.c")), &exe).unwrap();
    let o = Command::new(&wrapper)
        .arg(&exe)
        .arg(secs)
        .arg(&result)
        .output()
        .unwrap();
    if o.status.code() == Some(125) {
        let _ = writeln!(
            std::io::stderr(),
            "{name} without THP: SKIPPED, this host cannot hide THP: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return None;
    }
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        std::fs::read_to_string(&result).unwrap_or_default(),
        out,
        "{name}: result file"
    );
    Some((out, o.status))
}

#[test]
fn without_thp_collapse_vs_faults_skips_every_case_with_the_kernels_reason() {
    let Some((out, status)) = run_without_thp("collapse_vs_faults", "2") else {
        return;
    };
    assert!(status.success(), "{status:?}\n{out}");
    plan_complete(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let results: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("not ok "))
        .collect();
    assert_eq!(results.len(), 9, "{out}");
    for l in &results {
        assert!(
            l.starts_with("ok ") && l.ends_with(&format!(" # SKIP {NO_THP}")),
            "{l}\n{out}"
        );
    }
    assert!(!out.contains("kmatrix-overlap"), "nothing ran: {out}");
    // kmatrix reads it as a pass that checked nothing, with that reason.
    let r = kmatrix::parse::ktap::parse(&out);
    assert!(r.passed(), "{out}");
    assert_eq!(r.skip_reason().as_deref(), Some(NO_THP));
}

#[test]
#[ignore = "runs vma_users_vs_writers for 2 s as a kernel without THP would"]
fn without_thp_vma_users_skips_its_thp_cases_and_runs_the_rest() {
    let Some((out, status)) = run_without_thp("vma_users_vs_writers", "2") else {
        return;
    };
    assert!(status.success(), "{status:?}\n{out}");
    plan_complete(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(!out.contains("\nnot ok "), "{out}");
    for case in ["thp_collapse: ", "thp_split: ", "thp_move: "] {
        let l = out
            .lines()
            .find(|l| l.starts_with("ok ") && l.contains(case))
            .unwrap_or_else(|| panic!("no result for {case}\n{out}"));
        assert!(l.ends_with(&format!(" # SKIP {NO_THP}")), "{l}");
    }
    assert!(
        out.contains(&format!(
            " thp overlapped the other kinds # SKIP nothing it drives is available ({NO_THP})\n"
        )),
        "{out}"
    );
    // Everything else ran and overlapped, as with THP.
    let ov = overlap(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let got: Vec<&str> = ov.kinds.iter().map(|(k, _)| k.as_str()).collect();
    let want: Vec<&str> = STRESS
        .iter()
        .find(|(n, _)| *n == "vma_users_vs_writers")
        .unwrap()
        .1
        .iter()
        .copied()
        .filter(|k| *k != "thp")
        .collect();
    assert_eq!(got, want, "{out}");
    assert!(ov.kinds.iter().all(|(_, n)| *n > 0), "{out}");
    let r = kmatrix::parse::ktap::parse(&out);
    assert!(r.passed() && r.skip_reason().is_none(), "{out}");
}
