//! The guest's side of series coverage, as shell commands the engine runs over SSH:
//! zero the kernel's gcov counters before a test, copy the series' objects' counters to
//! the results share after it (`/results/coverage/<test>/<object path>.gcda`).

use super::kbuild::plain_path;
use crate::host::guest::shell_quote;

/// Where the kernel shows its counters (`CONFIG_GCOV_KERNEL`, debugfs mounted by init):
/// one `.gcda` per profiled object, at the object's build path.
pub const GCOV_DIR: &str = "/sys/kernel/debug/gcov";

/// The folder of the results share the counters go to, one subfolder per test.
pub const RESULTS_DIR: &str = "coverage";

/// What ran before the first test (the boot: initcalls, the image's init), measured as
/// a test of its own. Not a name a spec's test can have, so it never collides.
pub const BOOT: &str = "(boot)";

/// Before a test: zero every counter, so what the test's copy holds is the test's own.
/// Fails (non-zero) when the kernel has no gcov.
pub fn before_test() -> String {
    format!("echo 1 > {GCOV_DIR}/reset")
}

/// After a test: each profiled object's counters whose build path ends in one of
/// `objects`' (`mm/mmap_lock.o` -> `*/mm/mmap_lock.gcda`) copied to
/// `/results/coverage/<test>/mm/mmap_lock.gcda`; prints each object it copied. `None`
/// when no object's name is plain enough to be named in a shell command.
pub fn after_test(test: &str, objects: &[String]) -> Option<String> {
    let mut cases = String::new();
    let mut n = 0;
    for o in objects {
        let Some(stem) = o.strip_suffix(".o").filter(|_| plain_path(o)) else {
            continue;
        };
        // Plain paths need no quoting inside a case pattern or an assignment.
        cases.push_str(&format!("*/{stem}.gcda) r={stem}.gcda ;; "));
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let dir = shell_quote(&format!("/results/{RESULTS_DIR}/{test}"));
    Some(format!(
        "d={dir}; mkdir -p \"$d\" && find {GCOV_DIR} -name '*.gcda' | while read -r f; do case \"$f\" in {cases}*) continue ;; esac; mkdir -p \"$d/${{r%/*}}\" && cat \"$f\" > \"$d/$r\" && echo \"$r\"; done"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_name_only_plain_objects() {
        let objs = vec![
            "mm/mmap_lock.o".to_string(),
            "net/$(reboot).o".to_string(),
            "net/ipv4/tcp.o".to_string(),
        ];
        let c = after_test("vma_probe", &objs).unwrap();
        assert_eq!(
            c,
            "d='/results/coverage/vma_probe'; mkdir -p \"$d\" && find /sys/kernel/debug/gcov -name '*.gcda' | while read -r f; do case \"$f\" in */mm/mmap_lock.gcda) r=mm/mmap_lock.gcda ;; */net/ipv4/tcp.gcda) r=net/ipv4/tcp.gcda ;; *) continue ;; esac; mkdir -p \"$d/${r%/*}\" && cat \"$f\" > \"$d/$r\" && echo \"$r\"; done"
        );
        assert_eq!(after_test("t", &["net/$(reboot).o".to_string()]), None);
        assert_eq!(before_test(), "echo 1 > /sys/kernel/debug/gcov/reset");
    }

    /// The command as a shell runs it, on a fake gcov folder (the real one is checked
    /// end to end in a guest).
    #[test]
    fn the_copy_keeps_object_paths_and_ignores_others() {
        let d = tempfile::tempdir().unwrap();
        let gcov = d.path().join("gcov/slot/obj");
        for p in ["mm/mmap_lock.gcda", "mm/memory.gcda", "net/ipv4/tcp.gcda"] {
            let f = gcov.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, p).unwrap();
        }
        let results = d.path().join("results");
        let cmd = after_test("t1", &["mm/mmap_lock.o".into(), "net/ipv4/tcp.o".into()])
            .unwrap()
            .replace(GCOV_DIR, &d.path().join("gcov").display().to_string())
            .replace("/results", &results.display().to_string());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut copied: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        copied.sort();
        assert_eq!(copied, ["mm/mmap_lock.gcda", "net/ipv4/tcp.gcda"]);
        let got = std::fs::read_to_string(results.join("coverage/t1/net/ipv4/tcp.gcda")).unwrap();
        assert_eq!(got, "net/ipv4/tcp.gcda");
        assert!(!results.join("coverage/t1/mm/memory.gcda").exists());
    }
}
