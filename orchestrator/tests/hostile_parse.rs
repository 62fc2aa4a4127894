//! `kmatrix parse` in bounded memory (issue #30): a log of distinct WARNINGs, a new title
//! each, used to be kept whole (190 MB took 540 MB, 1.4 GB with `--json`). Here 30 MB of
//! them (about 100 000 reports) must stay under a fixed peak RSS in both modes, with the
//! reports past the caps counted. `bench/parse-memory` measures the same at 200 MB.

use std::io::Write;
use std::process::{Command, Stdio};

/// Far above what the bounded parse needs (about 40 MB for a debug build), far below
/// what keeping every report took (160 MB, 420 MB with `--json`, for this log).
const PEAK_MAX_KIB: i64 = 128 * 1024;

fn log(path: &std::path::Path, bytes: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut n, mut size) = (0usize, 0usize);
    while size < bytes {
        let t = format!("[{:6}.{:06}] ", n / 1000, n % 1_000_000);
        let s = format!(
            "{t}------------[ cut here ]------------\n\
             {t}WARNING: CPU: 0 PID: 1 at mm/f{n}.c:10 hostile_fn_{n}+0x10/0x20\n\
             {t}RIP: 0010:hostile_fn_{n}+0x10/0x20\n\
             {t}Call Trace:\n{t} <TASK>\n{t} caller_{n}+0x5/0x10\n{t} </TASK>\n\
             {t}---[ end trace 0000000000000000 ]---\n"
        );
        w.write_all(s.as_bytes()).unwrap();
        size += s.len();
        n += 1;
    }
    w.flush().unwrap();
}

/// Run kmatrix; its exit code and its own peak RSS in KiB: VmHWM (the high-water mark,
/// which only grows) read every 10 ms until it exits.
fn run(args: &[&std::ffi::OsStr], out: &std::path::Path) -> (i32, i64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        }) {
            peak = peak.max(hwm);
        }
        if let Some(s) = child.try_wait().unwrap() {
            return (s.code().unwrap_or(-1), peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_flood_of_distinct_reports_is_parsed_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("console.log");
    log(&path, 30_000_000);
    let out = d.path().join("out");

    let (code, peak) = run(&["parse".as_ref(), path.as_os_str()], &out);
    assert_eq!(code, 0);
    assert!(peak < PEAK_MAX_KIB, "parse: peak RSS {peak} KiB");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("2: WARNING in hostile_fn_0 [Warning]\n"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(
        text.contains("other title(s), not listed (more than 10000 titles)"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );

    let (code, peak) = run(
        &["parse".as_ref(), path.as_os_str(), "--json".as_ref()],
        &out,
    );
    assert_eq!(code, 0);
    assert!(peak < PEAK_MAX_KIB, "parse --json: peak RSS {peak} KiB");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 10_000);
    let unlisted = v["unlisted"]["reports"].as_u64().unwrap();
    assert!(unlisted > 50_000, "{unlisted}");
}
