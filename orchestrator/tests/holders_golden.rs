//! Golden tests for the lock holders of a hang (issue #34): each console below is read as
//! a forensics window is (`parse::lockdump`), joined into statements (`judge::holders`)
//! and compared with `tests/data/holders/<name>.expected.txt`. `KMATRIX_BLESS=1 cargo
//! test --test holders_golden` rewrites the expected files. The consoles are real ones
//! (the seed's hung-task control on 7.3, the v2 oops's forensics) and the hand-written
//! older-kernel ones of the console goldens.

use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// (console, name of the expected file)
const CASES: &[(&str, &str)] = &[
    // The seed's control as the default run shows it: the hung-task report alone.
    (
        "console/real_x86_v3_probe_lockdep_and_hung_task.log",
        "real_x86_v3_control_report_only",
    ),
    // v2: forensics after an oops (sysrq w t l), the hold long over.
    (
        "attribution/v2_real_oops_after_the_controls/console.log",
        "v2_forensics_after_the_oops",
    ),
    ("console/x86_hung_task_io_wait.log", "x86_hung_task_io_wait"),
    ("console/x86_hung_task_rwsem.log", "x86_hung_task_rwsem"),
    ("console/arm64_hung_task_rwsem.log", "arm64_hung_task_rwsem"),
];

fn statements(log: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap()).into_owned();
    let d = kmatrix::parse::lockdump::parse(&text);
    let mut out = String::new();
    for s in kmatrix::judge::holders::explain(&d) {
        out.push_str("- ");
        out.push_str(&s);
        out.push('\n');
    }
    out
}

#[test]
fn golden() {
    let bless = std::env::var_os("KMATRIX_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (log, name) in CASES {
        let got = statements(&data(log));
        let exp = data(&format!("holders/{name}.expected.txt"));
        if bless {
            std::fs::write(&exp, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&exp).unwrap_or_default();
        if got != want {
            failures.push(format!("{name}:\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
