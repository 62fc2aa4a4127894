//! Race amplification (a test's `amplify:`): while the test runs, the guest's
//! `kmatrix_amplify` module (`guest-tests/modules/kmatrix_amplify`, embedded in kmatrix and
//! built against each amplified cell's kernel) puts short random busy-wait delays at entry
//! to the functions the cell's series changes, and at the lock operations those functions
//! call (delayed only when called from inside one of them). A race window the plain stress
//! crosses once in hours is held open long enough for the other vCPU to run a whole
//! critical section inside it.
//!
//! This module is the host's side: which functions and lock operations (from the patches:
//! [`crate::console::changed_functions`] and the calls in their hunks), the guest commands
//! that load and unload the module around the test, and the counters it reports, which go
//! into the test's result (`amplify` in results.json) and one line of every output.

use crate::host::cache::Hasher;
use crate::host::guest;
use crate::prepare::build::ModuleBuild;
use crate::record::amplify::{Amplified, Missing, ProbeKind, ProbeStats};
use crate::record::plan::{Amplify, Cell, Plan};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The module's name (`kmatrix_amplify.ko`).
pub const MODULE: &str = crate::prepare::modules::AMPLIFY.name;

/// Lock operations as C code calls them, and what to probe for each: the out-of-line
/// function behind an inline wrapper (`a|b`: `b` where `a` is not a symbol, as
/// `mutex_lock` is a macro for `mutex_lock_nested` under lockdep). Spinlocks and RCU are
/// left out: inline, or used by the probes' own machinery.
const LOCK_OPS: &[(&str, &str)] = &[
    ("mmap_read_lock", "down_read"),
    ("mmap_read_lock_killable", "down_read_killable"),
    ("mmap_read_trylock", "down_read_trylock"),
    ("mmap_read_unlock", "up_read"),
    ("mmap_write_lock", "down_write"),
    ("mmap_write_lock_killable", "down_write_killable"),
    ("mmap_write_unlock", "up_write"),
    ("mmap_write_downgrade", "downgrade_write"),
    ("down_read", "down_read"),
    ("down_read_killable", "down_read_killable"),
    ("down_read_interruptible", "down_read_interruptible"),
    ("down_read_trylock", "down_read_trylock"),
    ("up_read", "up_read"),
    ("down_write", "down_write"),
    ("down_write_killable", "down_write_killable"),
    ("down_write_trylock", "down_write_trylock"),
    ("up_write", "up_write"),
    ("downgrade_write", "downgrade_write"),
    ("mutex_lock", "mutex_lock_nested|mutex_lock"),
    (
        "mutex_lock_interruptible",
        "mutex_lock_interruptible_nested|mutex_lock_interruptible",
    ),
    (
        "mutex_lock_killable",
        "mutex_lock_killable_nested|mutex_lock_killable",
    ),
    ("mutex_trylock", "mutex_trylock"),
    ("mutex_unlock", "mutex_unlock"),
    ("lock_vma_under_rcu", "lock_vma_under_rcu"),
    ("vma_start_read", "vma_start_read"),
    ("vma_start_write", "__vma_start_write"),
    ("vma_start_write_killable", "__vma_start_write"),
];

/// `guard(class)` / `scoped_guard(class, ...)`: the lock and unlock a class stands for.
const GUARDS: &[(&str, &[&str])] = &[
    ("rwsem_read", &["down_read", "up_read"]),
    ("rwsem_write", &["down_write", "up_write"]),
    ("mutex", &["mutex_lock_nested|mutex_lock", "mutex_unlock"]),
];

/// The module takes its lists as one parameter each, which the kernel caps at 1024
/// bytes (`charp`).
const PARAM_BYTES: usize = 1000;

/// The identifiers called on a line of C (`name(`), and the class of `guard(x)`.
fn calls(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let t = code.trim_start();
    if t.starts_with('*') || t.starts_with("/*") {
        return vec![];
    }
    let b = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_alphabetic() || b[i] == b'_') || (i > 0 && ident(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let name = &code[start..i];
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'(' {
            if name == "guard" || name == "scoped_guard" {
                let rest = code[j + 1..].trim_start();
                let class: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push(format!("guard:{class}"));
            } else {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// The lock operations the hunks of a C patch call (their added and context lines),
/// as names to probe. Not exact per function (a hunk's context may hold a neighbour's
/// calls), which costs at most a probe: a lock operation is only delayed when the task
/// is inside one of the changed functions.
pub fn lock_ops(patch_text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    let mut c_file = false;
    let mut in_hunk = false;
    for l in patch_text.lines() {
        if let Some(path) = l.strip_prefix("+++ ") {
            let path = path.split('\t').next().unwrap_or(path).trim();
            c_file = path.ends_with(".c") || path.ends_with(".h");
            in_hunk = false;
            continue;
        }
        if l.starts_with("@@ ") {
            in_hunk = true;
            continue;
        }
        if l.starts_with("diff ") || l.starts_with("--- ") {
            in_hunk = false;
            continue;
        }
        let Some(code) = l.strip_prefix('+').or_else(|| l.strip_prefix(' ')) else {
            continue;
        };
        if !(c_file && in_hunk) {
            continue;
        }
        for call in calls(code) {
            if let Some(class) = call.strip_prefix("guard:") {
                if let Some((_, ops)) = GUARDS.iter().find(|(c, _)| *c == class) {
                    ops.iter().for_each(|o| push(o));
                }
            } else if let Some((_, probe)) = LOCK_OPS.iter().find(|(n, _)| *n == call) {
                push(probe);
            }
        }
    }
    out
}

/// What one amplified test asks of the module in one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub delay_us: u32,
    pub percent: u32,
    pub preempt: bool,
    pub seed: u64,
    /// The functions to delay at entry: the series' changed functions, then the spec's.
    pub targets: Vec<String>,
    /// The lock operations those functions call.
    pub lock_ops: Vec<String>,
    /// Names that did not fit into the module's parameters.
    pub left_out: Vec<String>,
}

impl Setup {
    /// From the cell's series (its patches without the harness) and the test's
    /// settings; `None` when there is nothing to delay (a base cell, no `functions:`).
    /// Without a `seed:` the seed is derived from the cell, the test and the run folder,
    /// and recorded, so a run can be asked for again.
    pub fn new(cell: &Cell, plan: &Plan, a: &Amplify, test: &str, dir: &Path) -> Option<Setup> {
        let texts: Vec<String> = cell
            .series(plan)
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect();
        Setup::from_series(&texts, a, || {
            let mut h = Hasher::new("amplify-seed");
            h.field(cell.id().as_bytes())
                .field(test.as_bytes())
                .field(dir.as_os_str().as_encoded_bytes());
            u64::from_str_radix(&h.finish()[..16], 16).unwrap_or(1)
        })
    }

    fn from_series(texts: &[String], a: &Amplify, seed: impl FnOnce() -> u64) -> Option<Setup> {
        let mut targets: Vec<String> = Vec::new();
        let mut ops: Vec<String> = Vec::new();
        for t in texts {
            for f in crate::console::changed_functions(t) {
                if !targets.contains(&f) {
                    targets.push(f);
                }
            }
            for o in lock_ops(t) {
                if !ops.contains(&o) {
                    ops.push(o);
                }
            }
        }
        for f in &a.functions {
            if !targets.contains(f) {
                targets.push(f.clone());
            }
        }
        for o in &a.lock_ops {
            if !ops.contains(o) {
                ops.push(o.clone());
            }
        }
        if targets.is_empty() {
            return None;
        }
        // A changed function that is itself a lock operation is delayed as a target.
        ops.retain(|o| !targets.contains(o));
        let mut left_out = Vec::new();
        let targets = fit(targets, &mut left_out);
        let lock_ops = fit(ops, &mut left_out);
        Some(Setup {
            delay_us: a.delay_us,
            percent: a.percent,
            preempt: a.preempt,
            seed: a.seed.unwrap_or_else(seed),
            targets,
            lock_ops,
            left_out,
        })
    }

    /// The guest command that places the probes: `insmod` with the lists (a module left
    /// loaded by an earlier test is removed first).
    pub fn load_command(&self) -> String {
        format!(
            "rmmod {MODULE} 2>/dev/null; insmod /tests/{MODULE}.ko targets={} lockops={} delay_us={} percent={} seed={} resched={}",
            guest::shell_quote(&self.targets.join(",")),
            guest::shell_quote(&self.lock_ops.join(",")),
            self.delay_us,
            self.percent,
            self.seed,
            u8::from(self.preempt)
        )
    }

    /// The test's record from the module's counters (or why they could not be read).
    pub fn result(&self, stats: Result<&str, String>) -> Amplified {
        let mut a = Amplified {
            delay_us: self.delay_us,
            percent: self.percent,
            preempt: self.preempt,
            seed: self.seed,
            targets: self.targets.clone(),
            lock_ops: self.lock_ops.clone(),
            left_out: self.left_out.clone(),
            probes: vec![],
            missing: vec![],
            cpus: None,
            error: None,
        };
        match stats {
            Ok(text) => {
                a.cpus = text.lines().next().and_then(cpu_count);
                (a.probes, a.missing) = parse_stats(text);
                if a.probes.is_empty() && a.missing.is_empty() {
                    a.error = Some("the module reported no probe".into());
                }
            }
            Err(e) => a.error = Some(e),
        }
        a
    }
}

/// Names in order until the parameter is full; the rest are left out.
fn fit(names: Vec<String>, left_out: &mut Vec<String>) -> Vec<String> {
    let mut used = 0;
    let mut out = Vec::new();
    for n in names {
        // Each name takes its own length and a comma.
        if used + n.len() < PARAM_BYTES && out.len() < 32 {
            used += n.len() + 1;
            out.push(n);
        } else {
            left_out.push(n);
        }
    }
    out
}

/// The guest's online CPUs, then the module's counters (the module is removed after).
const READ_STATS: &str =
    "cat /sys/devices/system/cpu/online && cat /sys/module/kmatrix_amplify/parameters/stats";

/// How many CPUs a `/sys/devices/system/cpu/online` list (`0-1,3`) names.
fn cpu_count(list: &str) -> Option<u32> {
    let mut n: u32 = 0;
    for part in list.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        n = n.checked_add(b.checked_sub(a)?.checked_add(1)?)?;
    }
    Some(n)
}

/// The module's `stats` text. The guest is untrusted: lines, names and counts are
/// bounded, anything unexpected is skipped.
pub fn parse_stats(text: &str) -> (Vec<ProbeStats>, Vec<Missing>) {
    let mut probes = Vec::new();
    let mut missing = Vec::new();
    let plain = |n: &str| {
        !n.is_empty()
            && n.len() <= 128
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    let kind = |k: &str| match k {
        "target" => Some(ProbeKind::Target),
        "lockop" => Some(ProbeKind::Lockop),
        _ => None,
    };
    for line in text.lines().take(256) {
        let w: Vec<&str> = line.split_whitespace().take(12).collect();
        match w.as_slice() {
            ["probe", name, k, rest @ ..] if plain(name) => {
                let Some(kind) = kind(k) else { continue };
                let field = |key: &str| {
                    rest.iter()
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                if probes.len() < 64 {
                    probes.push(ProbeStats {
                        name: name.to_string(),
                        kind,
                        hits: field("hits"),
                        delayed: field("delayed"),
                        delay_us: field("delay_us"),
                        seen: field("seen"),
                        missed: field("missed"),
                        resched: field("resched"),
                    });
                }
            }
            ["missing", name, k, errno] if plain(name) => {
                if let (Some(kind), Ok(errno)) = (kind(k), errno.parse::<i32>()) {
                    if missing.len() < 64 {
                        missing.push(Missing {
                            name: name.to_string(),
                            kind,
                            errno,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    (probes, missing)
}

/// Place the probes before the test. An error says why the test cannot be amplified
/// (the module did not build against this kernel, or `insmod` refused it).
pub async fn start(
    ssh: &Arc<ssh2::Session>,
    setup: &Setup,
    modules: &[ModuleBuild],
) -> Result<(), String> {
    match modules.iter().find(|m| m.name == MODULE) {
        Some(m) if m.ko.is_some() => {}
        Some(m) => {
            return Err(format!(
                "module {MODULE}.ko did not build against this kernel: {}",
                m.errors.first().cloned().unwrap_or_default()
            ))
        }
        None => return Err(format!("no {MODULE}.ko was built for this kernel")),
    }
    guest::quick(ssh, setup.load_command(), Duration::from_secs(60))
        .await
        .map(|_| ())
        .map_err(|e| format!("insmod {MODULE}.ko failed: {e}"))
}

/// Read the counters after the test, and remove the module when `unload` (the boot goes
/// on with other tests, which must run at full speed).
pub async fn stop(ssh: &Arc<ssh2::Session>, setup: &Setup, unload: bool) -> Amplified {
    let stats = guest::quick(ssh, READ_STATS.to_string(), Duration::from_secs(20)).await;
    let mut a = setup.result(stats.as_deref().map_err(|e| e.clone()));
    if unload {
        if let Err(e) = guest::quick(ssh, format!("rmmod {MODULE}"), Duration::from_secs(60)).await
        {
            let e = format!("rmmod failed: {e}");
            a.error = Some(a.error.map_or(e.clone(), |x| format!("{x}; {e}")));
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = include_str!("../../../patches/v3/0001-mm-add-vma_start_read_unlocked.patch");
    const V3_TCP: &str =
        include_str!("../../../patches/v3/0002-tcp-use-vma_start_read_unlocked.patch");
    const RACE: &str =
        include_str!("../../tests/data/fixtures/vma-fast-path-no-recheck-on-v3.patch");

    fn amp() -> Amplify {
        Amplify {
            delay_us: 100,
            percent: 100,
            preempt: true,
            seed: Some(7),
            functions: vec![],
            lock_ops: vec![],
            configs: None,
            patchsets: None,
            arches: None,
        }
    }

    #[test]
    fn the_fixture_series_asks_for_its_functions_and_the_lock_operations_they_call() {
        let texts = [V3.to_string(), V3_TCP.to_string(), RACE.to_string()];
        let s = Setup::from_series(&texts, &amp(), || 1).unwrap();
        assert_eq!(s.targets, ["vma_start_read_unlocked", "find_tcp_vma"]);
        // vma_start_read() closes the fixture's race window: called from a target, it is
        // delayed there.
        assert_eq!(
            s.lock_ops,
            [
                "lock_vma_under_rcu",
                "down_read",
                "up_read",
                "vma_start_read"
            ]
        );
        assert_eq!(s.seed, 7);
        // v3 alone: the same probes but the one the fixture's open-coded path adds,
        // which the spec can name (v3 reaches it through lock_vma_under_rcu()).
        let v3 = Setup::from_series(&texts[..2], &amp(), || 1).unwrap();
        assert_eq!(v3.lock_ops, ["lock_vma_under_rcu", "down_read", "up_read"]);
        let mut a = amp();
        a.lock_ops = vec!["vma_start_read".into(), "up_read".into()];
        let v3 = Setup::from_series(&texts[..2], &a, || 1).unwrap();
        assert_eq!(
            v3.lock_ops,
            [
                "lock_vma_under_rcu",
                "down_read",
                "up_read",
                "vma_start_read"
            ]
        );
    }

    #[test]
    fn nothing_to_delay_without_a_series_or_functions() {
        assert_eq!(Setup::from_series(&[], &amp(), || 1), None);
        let mut a = amp();
        a.functions = vec!["do_madvise".into()];
        a.seed = None;
        let s = Setup::from_series(&[], &a, || 42).unwrap();
        assert_eq!(s.targets, ["do_madvise"]);
        assert_eq!(s.seed, 42, "derived when not given");
    }

    #[test]
    fn calls_and_guards_are_found_comments_are_not() {
        assert_eq!(
            calls("\tguard(rwsem_read)(&mm->mmap_lock); x = vma_lookup (mm, a);"),
            ["guard:rwsem_read", "vma_lookup"]
        );
        assert_eq!(calls("\tscoped_guard(mutex, &l) {"), ["guard:mutex"]);
        assert!(calls(" * mmap_read_lock(mm) waits").is_empty());
        assert_eq!(calls("a = b; // mmap_read_lock(mm)"), Vec::<String>::new());
        let p = "--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1,2 +1,3 @@ int f(void)\n {\n+\tmutex_lock(&m);\n-\tmmap_write_lock(mm);\n }\n";
        assert_eq!(
            lock_ops(p),
            ["mutex_lock_nested|mutex_lock"],
            "removed lines do not count"
        );
        let doc = "--- a/Documentation/x.rst\n+++ b/Documentation/x.rst\n@@ -1 +1 @@\n+mmap_read_lock(mm)\n";
        assert!(lock_ops(doc).is_empty(), "only C files");
    }

    #[test]
    fn the_load_command_quotes_the_lists() {
        let s = Setup {
            delay_us: 50,
            percent: 30,
            preempt: false,
            seed: 9,
            targets: vec!["f".into(), "g".into()],
            lock_ops: vec!["mutex_lock_nested|mutex_lock".into()],
            left_out: vec![],
        };
        assert_eq!(
            s.load_command(),
            "rmmod kmatrix_amplify 2>/dev/null; insmod /tests/kmatrix_amplify.ko targets='f,g' lockops='mutex_lock_nested|mutex_lock' delay_us=50 percent=30 seed=9 resched=0"
        );
    }

    #[test]
    fn too_many_names_are_left_out_and_said() {
        let mut a = amp();
        a.functions = (0..60).map(|i| format!("function_number_{i:02}")).collect();
        let s = Setup::from_series(&[], &a, || 1).unwrap();
        assert_eq!(s.targets.len() + s.left_out.len(), 60);
        assert!(s.targets.join(",").len() <= PARAM_BYTES);
        assert!(!s.left_out.is_empty());
        let r = s.result(Ok(""));
        assert!(
            r.summary().contains("left out (too many names)"),
            "{}",
            r.summary()
        );
    }

    #[test]
    fn stats_are_parsed_and_hostile_text_is_bounded() {
        let text = "kmatrix_amplify delay_us=100 percent=100 seed=7 scope_full=0\n\
            probe vma_start_read_found target hits=120 delayed=118 delay_us=6000 seen=0 missed=0\n\
            probe down_read lockop hits=30 delayed=29 delay_us=1500 seen=90000 missed=0\n\
            missing find_tcp_vma target -2\n\
            probe ../../etc target hits=1\n\
            probe x bogus hits=1\n\
            missing y target notanumber\n";
        let (p, m) = parse_stats(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "vma_start_read_found");
        assert_eq!((p[0].hits, p[0].delayed, p[0].delay_us), (120, 118, 6000));
        assert_eq!((p[1].kind, p[1].seen), (ProbeKind::Lockop, 90000));
        assert_eq!(
            m,
            [Missing {
                name: "find_tcp_vma".into(),
                kind: ProbeKind::Target,
                errno: -2
            }]
        );
        let flood = "probe f target hits=99999999999999999999999\n".repeat(100_000);
        let (p, _) = parse_stats(&flood);
        assert_eq!(p.len(), 64, "bounded");
        assert_eq!(p[0].hits, 0, "an unparsable count is 0, not a panic");
    }

    #[test]
    fn the_summary_says_what_was_delayed_and_what_was_not() {
        let s = Setup::from_series(&[RACE.to_string()], &amp(), || 1).unwrap();
        let r = s.result(Ok(
            "probe vma_start_read lockop hits=10 delayed=9 delay_us=450 seen=80 missed=0\nmissing find_tcp_vma target -2\n",
        ));
        let line = r.summary();
        assert!(
            line.starts_with(
                "delays 0-100 us + reschedule, seed 7: 1 probe(s), 10 hits, 9 delayed, 0.5 ms"
            ),
            "{line}"
        );
        assert!(
            line.contains("not probed: find_tcp_vma (not a symbol: inlined"),
            "{line}"
        );
        assert!(!line.contains("one CPU"), "{line}");
        let r = s.result(Ok("0\nprobe f target hits=1\n"));
        assert_eq!(r.cpus, Some(1));
        assert!(
            r.summary().contains("the guest had one CPU"),
            "{}",
            r.summary()
        );
        assert_eq!(cpu_count("0-1,3\n"), Some(3));
        assert_eq!(cpu_count("1-0"), None);
        assert_eq!(cpu_count("0-4294967295"), None, "no overflow");
        let r = s.result(Err("ssh: timed out".into()));
        assert!(
            r.summary().ends_with("counters: ssh: timed out"),
            "{}",
            r.summary()
        );
    }

    /// A project folder with the fragments and the guest test a spec names.
    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("kconfigs")).unwrap();
        std::fs::create_dir_all(d.path().join("guest-tests")).unwrap();
        for f in ["guest", "pvl-on"] {
            std::fs::write(d.path().join(format!("kconfigs/{f}.config")), "").unwrap();
        }
        std::fs::write(
            d.path().join("kconfigs/amplify.config"),
            "CONFIG_KPROBES=y\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("kconfigs/nokprobes.config"),
            "# CONFIG_KPROBES is not set\n",
        )
        .unwrap();
        std::fs::write(d.path().join("guest-tests/tcp_zerocopy_vs_writers.c"), "").unwrap();
        d
    }

    const SPEC: &str = "\
source: { debian-package: linux-source-7.3 }
fragments: [guest]
arches: [x86_64]
configs:
  kprobes: [pvl-on, amplify]
  plain: [pvl-on]
patchsets: { race: [], race-amplified: [] }
tests:
  - name: tcp_zerocopy_vs_writers
    duration: 8s
    timeout: 2m
    configs: [kprobes]
    amplify: { delay-us: 50, patchsets: [race-amplified] }
";

    fn parse(text: &str) -> Result<Plan, String> {
        let d = project();
        crate::spec::parse(&d.path().join("kmatrix.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_spec_turns_amplification_on_per_test_and_per_cell() {
        let plan = parse(SPEC).unwrap();
        let t = &plan.tests[0];
        let a = t.amplify.as_ref().unwrap();
        assert_eq!(
            (a.delay_us, a.percent, a.preempt, a.seed),
            (50, 100, true, None)
        );
        let on: Vec<String> = plan
            .cells
            .iter()
            .filter(|c| t.amplified_in(c).is_some())
            .map(|c| c.id().into())
            .collect();
        assert_eq!(
            on,
            ["x86_64/kprobes/race-amplified"],
            "the same kernel, plain in race"
        );
        let plan =
            parse(&SPEC.replace("{ delay-us: 50, patchsets: [race-amplified] }", "true")).unwrap();
        let a = plan.tests[0].amplify.as_ref().unwrap();
        assert_eq!(a.delay_us, Amplify::DEFAULT_DELAY_US);
        let plan = parse(&SPEC.replace(
            "{ delay-us: 50, patchsets: [race-amplified] }",
            "{ preempt: false, percent: 25, seed: 3 }",
        ))
        .unwrap();
        let a = plan.tests[0].amplify.as_ref().unwrap();
        assert_eq!((a.preempt, a.percent, a.seed), (false, 25, Some(3)));
        let plan =
            parse(&SPEC.replace("{ delay-us: 50, patchsets: [race-amplified] }", "false")).unwrap();
        assert_eq!(plan.tests[0].amplify, None);
    }

    #[test]
    fn bad_amplify_values_are_refused_naming_the_key_and_the_fix() {
        let with = |v: &str| {
            parse(&SPEC.replace("{ delay-us: 50, patchsets: [race-amplified] }", v)).unwrap_err()
        };
        for bad in ["{ delay-us: 0 }", "{ delay-us: 5000 }"] {
            let e = with(bad);
            assert!(
                e.contains("kmatrix.yaml:13: `tests[0].amplify`: `delay-us:")
                    && e.contains("give 1 to 1000"),
                "{bad}: {e}"
            );
        }
        let e = with("{ percent: 101 }");
        assert!(
            e.contains("`percent: 101`") && e.contains("1 to 100"),
            "{e}"
        );
        let e = with("{ dealy-us: 5 }");
        assert!(
            e.contains("kmatrix.yaml:13") && e.contains("dealy-us"),
            "{e}"
        );
        let e = with("sometimes");
        assert!(
            e.contains("kmatrix.yaml:13") && e.contains("`true`, `false` or settings"),
            "{e}"
        );
        let e = with("{ delay-us: -3 }");
        assert!(e.contains("kmatrix.yaml:13"), "{e}");
        let e = with("{ configs: [nosuch] }");
        assert!(
            e.contains("`tests[0].amplify`") && e.contains("unknown config `nosuch`"),
            "{e}"
        );
        let e = with("{ functions: [\"a b\"] }");
        assert!(
            e.contains("`functions`: `a b` is not a kernel symbol name"),
            "{e}"
        );
        let e = with("{ lock-ops: [\"x;reboot\"] }");
        assert!(
            e.contains("`lock-ops`: `x;reboot` is not a kernel symbol name"),
            "{e}"
        );
        let e = with("{ configs: [plain] }");
        assert!(
            e.contains("amplifies `tcp_zerocopy_vs_writers` in no cell"),
            "{e}"
        );
    }

    #[test]
    fn an_amplified_cell_without_kprobes_is_refused_before_any_build() {
        let text = SPEC
            .replace("    configs: [kprobes]\n", "")
            .replace("patchsets: [race-amplified]", "configs: [kprobes, plain]");
        let e = parse(&text).unwrap_err();
        assert!(
            e.contains("cell x86_64/plain/race")
                && e.contains("do not enable CONFIG_KPROBES")
                && e.contains("add the `amplify` fragment")
                && e.contains("`configs.plain`"),
            "{e}"
        );
        // Later wins: a fragment that turns kprobes off again is no kprobes.
        let text = SPEC.replace("[pvl-on, amplify]", "[pvl-on, amplify, nokprobes]");
        let e = parse(&text).unwrap_err();
        assert!(e.contains("x86_64/kprobes/race-amplified"), "{e}");
    }
}
