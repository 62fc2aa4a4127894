//! The console of one cell as it arrives: bytes in, lines to the [`Parser`], and what the
//! engine's waits need out (init's markers, the test markers kmatrix writes to
//! /dev/kmsg, findings so far, reports still open). Synchronous: the VM side owns the
//! socket and calls [`Watcher::feed`]; nothing ever rereads the log.
//!
//! Findings are placed between the test markers
//! (`kmatrix-test[NONCE]: start NAME` / `... end NAME`), so each knows the test it
//! happened in. What a guest can make kmatrix keep is bounded: a line, the findings
//! stored per title, the findings in all.

use super::line;
use super::parser::Parser;
use crate::record::finding::{Finding, Kind};
use std::collections::{BTreeMap, VecDeque};

/// Init's progress lines on the console (images/init prints them).
pub const SSHD_UP: &str = "kmatrix-guest: sshd up";
pub const READY: &str = "kmatrix-guest: ready";
pub const TESTS_SHARE_FAILED: &str = "kmatrix-guest: tests share NOT mounted";
pub const RESULTS_SHARE_FAILED: &str = "kmatrix-guest: results share NOT mounted";

/// A console line longer than this is cut (a guest can print without newlines).
const MAX_LINE: usize = 64 << 10;
/// Findings of one title kept in full; further ones are only counted.
const PER_TITLE: usize = 10;
/// Findings kept in full per cell.
const MAX_FINDINGS: usize = 200;
/// Console lines kept before a report, for its excerpt.
const CONTEXT: usize = 6;
/// 128 random bits from the kernel's generator, in hex.
fn fresh_nonce() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No /dev/urandom: the clock and the process are still unknown to the guest.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Distinct titles counted one by one; the rest are counted together under
/// [`OTHER_TITLES`].
const MAX_TITLES: usize = 4096;
const OTHER_TITLES: &str = "(reports of other titles, past the count kept apart)";

/// Recent lines kept for excerpts and for quoting a console's last words.
const RING: usize = 512;

/// Where a test's markers put it on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpan {
    pub test: String,
    /// Console line of the start marker.
    pub start: usize,
    /// Console line of the end marker, once seen.
    pub end: Option<usize>,
}

#[derive(Debug)]
pub struct Watcher {
    parser: Parser,
    /// Markers kmatrix is about to write (nonce, what, test), each accepted once: the
    /// guest never sees a nonce before kmatrix writes it, so it cannot forge a marker.
    expected: Vec<(String, String, String)>,
    /// A recorded console replayed (golden tests): every marker with this nonce counts.
    replay_nonce: Option<String>,
    /// Lines of earlier boots in the same console.log (findings' lines are absolute).
    offset: usize,
    lines: usize,
    partial: Vec<u8>,
    pub spans: Vec<TestSpan>,
    pub sshd_up: bool,
    pub ready: bool,
    pub tests_share_failed: bool,
    pub results_share_failed: bool,
    /// The kernel started init (`Run /init as init process`), and its own timestamp of
    /// it (when printk times are on).
    pub reached_init: bool,
    pub init_secs: Option<f64>,
    /// CPUs the kernel brought up (`smp: Brought up 1 node, 2 CPUs`): fewer than QEMU was
    /// given means the two sides of a race only ever interleave, never overlap.
    pub cpus: Option<u32>,
    pub panicked: bool,
    /// The kernel's lines about user programs killed by a fault (`comm[pid]: segfault at
    /// ...`, `traps: ...`, arm64's `unhandled ...` ones): not kernel reports, but the only
    /// word on a test program that died before printing. (the test it came in, text),
    /// bounded.
    pub user_faults: Vec<(Option<String>, String)>,
    pub findings: Vec<Finding>,
    /// Findings seen but not kept (over the per-title or total cap), by title.
    pub dropped: BTreeMap<String, u64>,
    per_title: BTreeMap<String, usize>,
    ring: VecDeque<(usize, String)>,
    pub bytes: u64,
    /// console.log stopped keeping text at the cell's limit (the watcher still saw it).
    pub truncated: bool,
}

impl Watcher {
    /// A watcher for a boot whose console starts after `offset` lines of earlier boots.
    pub fn new(offset: usize) -> Watcher {
        Watcher {
            parser: Parser::new(),
            expected: Vec::new(),
            replay_nonce: None,
            offset,
            lines: 0,
            partial: Vec::new(),
            spans: Vec::new(),
            sshd_up: false,
            ready: false,
            tests_share_failed: false,
            results_share_failed: false,
            reached_init: false,
            init_secs: None,
            cpus: None,
            panicked: false,
            user_faults: Vec::new(),
            findings: Vec::new(),
            dropped: BTreeMap::new(),
            per_title: BTreeMap::new(),
            ring: VecDeque::new(),
            bytes: 0,
            truncated: false,
        }
    }

    /// Titles name the first frame in one of these functions (the ones the series
    /// changes) when a report's trace has one.
    pub fn preferring(mut self, functions: Vec<String>) -> Watcher {
        self.parser = Parser::with_preferred(functions);
        self
    }

    /// A recorded console whose markers all carry `nonce` (before markers had one each).
    pub fn replaying(offset: usize, nonce: &str) -> Watcher {
        Watcher {
            replay_nonce: Some(nonce.to_string()),
            ..Watcher::new(offset)
        }
    }

    /// The marker line kmatrix writes to /dev/kmsg around a test (`what`: start or end).
    pub fn marker(nonce: &str, what: &str, test: &str) -> String {
        format!("kmatrix-test[{nonce}]: {what} {test}")
    }

    /// A fresh marker for kmatrix to write, taken when it appears on the console (once):
    /// its nonce is random and new, so nothing the guest printed before can match it.
    pub fn expect_marker(&mut self, what: &str, test: &str) -> String {
        let nonce = fresh_nonce();
        let line = Watcher::marker(&nonce, what, test);
        // Bounded: markers never written (a dead guest) do not pile up.
        if self.expected.len() >= 64 {
            self.expected.remove(0);
        }
        self.expected
            .push((nonce, what.to_string(), test.to_string()));
        line
    }

    /// The text of the last complete line (the context ring's newest).
    pub fn last_line(&self) -> Option<String> {
        self.ring.back().map(|(_, t)| t.clone())
    }

    /// Absolute console line of the last line fed.
    pub fn line(&self) -> usize {
        self.offset + self.lines
    }

    /// Feed bytes as they arrive (any split).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        for &b in bytes {
            if b == b'\n' {
                let l = std::mem::take(&mut self.partial);
                self.line_done(&l);
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            } else {
                let l = std::mem::take(&mut self.partial);
                self.line_done(&l);
                self.partial.push(b);
            }
        }
    }

    /// The console ended (QEMU exited): flush the last line and the reports still open.
    pub fn finish(&mut self) {
        if !self.partial.is_empty() {
            let l = std::mem::take(&mut self.partial);
            self.line_done(&l);
        }
        let parser = std::mem::replace(&mut self.parser, Parser::new());
        for f in parser.finish() {
            self.keep(f);
        }
    }

    fn line_done(&mut self, raw: &[u8]) {
        self.lines += 1;
        let no = self.line();
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        self.observe(text, no);
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back((no, text.to_string()));
        for f in self.parser.feed(raw) {
            self.keep(f);
        }
    }

    fn observe(&mut self, text: &str, no: usize) {
        let msg = line::split(text.as_bytes()).msg;
        let msg = String::from_utf8_lossy(msg);
        let msg = msg.trim();
        match msg {
            SSHD_UP => self.sshd_up = true,
            READY => self.ready = true,
            TESTS_SHARE_FAILED => self.tests_share_failed = true,
            RESULTS_SHARE_FAILED => self.results_share_failed = true,
            _ => {}
        }
        // `Run /init as init process` (or the fallbacks the kernel tries after it).
        if !self.reached_init && msg.starts_with("Run /") && msg.ends_with(" as init process") {
            self.reached_init = true;
            self.init_secs = line::split(text.as_bytes()).ts;
        }
        if self.cpus.is_none() {
            self.cpus = brought_up(msg);
        }
        if msg.starts_with("Kernel panic - not syncing") {
            self.panicked = true;
        }
        if is_user_fault(msg) {
            // A test's program dies after the faults of children it kills on purpose:
            // its own line is the test's latest, so past the bound the latest of the
            // same test replaces the one before it.
            let during = self.test_at(no).map(str::to_string);
            let text: String = msg.chars().take(USER_FAULT_CHARS).collect();
            if self.user_faults.len() < MAX_USER_FAULTS {
                self.user_faults.push((during, text));
            } else if let Some(last) = self.user_faults.last_mut().filter(|l| l.0 == during) {
                last.1 = text;
            }
        }
        if let Some(rest) = self.accept_marker(msg) {
            if let Some(test) = rest.strip_prefix("start ") {
                self.spans.push(TestSpan {
                    test: test.trim().to_string(),
                    start: no,
                    end: None,
                });
            } else if let Some(test) = rest.strip_prefix("end ") {
                if let Some(s) = self
                    .spans
                    .iter_mut()
                    .rev()
                    .find(|s| s.test == test.trim() && s.end.is_none())
                {
                    s.end = Some(no);
                }
            }
        }
    }

    /// The marker's `what test` when `msg` is a marker kmatrix wrote (expected, or of
    /// the replayed nonce); an expected one is taken, so a copy of it does not count.
    fn accept_marker<'m>(&mut self, msg: &'m str) -> Option<&'m str> {
        let rest = msg.strip_prefix("kmatrix-test[")?;
        let (nonce, rest) = rest.split_once("]: ")?;
        if self.replay_nonce.as_deref() == Some(nonce) {
            return Some(rest);
        }
        let (what, test) = rest.split_once(' ')?;
        let i = self
            .expected
            .iter()
            .position(|(n, w, t)| n == nonce && w == what && t == test.trim())?;
        self.expected.remove(i);
        Some(rest)
    }

    /// The test running at absolute console line `no`, by the markers.
    pub fn test_at(&self, no: usize) -> Option<&str> {
        self.spans
            .iter()
            .rev()
            .find(|s| s.start <= no && s.end.is_none_or(|e| no <= e))
            .map(|s| s.test.as_str())
    }

    fn keep(&mut self, mut f: Finding) {
        f.line += self.offset;
        f.during = self.test_at(f.line).map(str::to_string);
        // A guest can print endless distinct titles: past MAX_TITLES the rest share one
        // count, so the watcher's memory stays bounded.
        let key = if self.per_title.len() < MAX_TITLES || self.per_title.contains_key(&f.title) {
            f.title.clone()
        } else {
            OTHER_TITLES.to_string()
        };
        let n = self.per_title.entry(key.clone()).or_default();
        *n += 1;
        if *n > PER_TITLE || self.findings.len() >= MAX_FINDINGS || key == OTHER_TITLES {
            *self.dropped.entry(key).or_default() += 1;
            return;
        }
        f.context = self
            .ring
            .iter()
            .filter(|(no, _)| *no < f.line && *no + CONTEXT >= f.line)
            .map(|(_, l)| l.clone())
            .collect();
        self.findings.push(f);
    }

    /// Reports whose head was seen and that have not ended yet (a hang report is known
    /// at its head line, long before its trace is complete).
    pub fn open_kinds(&self) -> Vec<Kind> {
        self.parser.open_kinds()
    }

    /// The last `n` console lines seen, for quoting.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let skip = self.ring.len().saturating_sub(n);
        self.ring
            .iter()
            .skip(skip)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// At most this many user-fault lines per boot, each cut to this many characters.
const MAX_USER_FAULTS: usize = 32;
const USER_FAULT_CHARS: usize = 240;

/// A kernel line about a user program killed by a fault: x86's `show_signal_msg()`
/// (`comm[pid]: segfault at ...`) and `traps: comm[pid] ...` lines, arm64's
/// `comm[pid]: unhandled ...` and the generic `potentially unexpected fatal signal`.
fn is_user_fault(msg: &str) -> bool {
    msg.contains("]: segfault at ")
        || (msg.starts_with("traps: ") && msg.contains("] "))
        || msg.contains("]: unhandled ")
        || msg.contains("potentially unexpected fatal signal")
}

/// The CPU count of `smp: Brought up N node(s), M CPU(s)` (kernel/smp.c).
fn brought_up(msg: &str) -> Option<u32> {
    let rest = msg.strip_prefix("smp: Brought up ")?;
    let (_, cpus) = rest.split_once(", ")?;
    cpus.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OOPS: &str =
        "[   20.100000] BUG: kernel NULL pointer dereference, address: 0000000000000000\n\
[   20.100100] #PF: supervisor read access in kernel mode\n\
[   20.100200] Oops: Oops: 0000 [#1] SMP\n\
[   20.100300] CPU: 1 UID: 0 PID: 312 Comm: vma_probe Not tainted 7.3.4 #1\n\
[   20.100400] RIP: 0010:vma_start_read_locked_nested+0x10/0x60\n\
[   20.100500] Call Trace:\n\
[   20.100600]  <TASK>\n\
[   20.100700]  vma_start_read_unlocked+0x3c/0x90\n\
[   20.100800]  vma_probe_write+0x51/0x120\n\
[   20.100900]  </TASK>\n\
[   20.101000] ---[ end trace 0000000000000000 ]---\n";

    #[test]
    fn the_cpu_count_is_read_from_the_smp_line() {
        assert_eq!(brought_up("smp: Brought up 1 node, 1 CPU"), Some(1));
        assert_eq!(brought_up("smp: Brought up 2 nodes, 8 CPUs"), Some(8));
        assert_eq!(brought_up("smp: Bringing up secondary CPUs ..."), None);
        assert_eq!(brought_up("smp: Brought up 1 node, many CPUs"), None);
    }

    #[test]
    fn markers_place_findings_in_their_test_whatever_the_chunking() {
        let log = format!(
            "[    0.5] smp: Brought up 1 node, 2 CPUs\n[    2.7] Run /init as init process\nkmatrix-guest: sshd up\nkmatrix-guest: ready\n\
             [   10.0] kmatrix-test[n1]: start faults_vs_writers\n[   15.0] kmatrix-test[n1]: end faults_vs_writers\n\
             [   19.0] kmatrix-test[n1]: start vma_probe\n{OOPS}"
        );
        for chunk in [1, 7, 4096] {
            let mut w = Watcher::replaying(100, "n1");
            for c in log.as_bytes().chunks(chunk) {
                w.feed(c);
            }
            w.finish();
            assert!(w.sshd_up && w.ready && w.reached_init, "chunk {chunk}");
            assert_eq!(w.init_secs, Some(2.7));
            assert_eq!(w.cpus, Some(2));
            assert_eq!(w.findings.len(), 1, "chunk {chunk}");
            let f = &w.findings[0];
            assert_eq!(f.during.as_deref(), Some("vma_probe"));
            assert_eq!(f.line, 108, "absolute line (100 lines of earlier boots)");
            assert_eq!(f.context.len(), CONTEXT, "the lines just before the report");
            assert!(f.context.last().unwrap().contains("start vma_probe"));
            assert_eq!(w.spans[0].end, Some(106));
        }
    }

    #[test]
    fn user_faults_are_kept_with_their_lines_bounded() {
        let mut w = Watcher::replaying(0, "n1");
        w.feed(
            b"[    1.0] kmatrix-test[n1]: start collapse_vs_faults
\
              [    1.1] collapse_vs_fau[244]: segfault at 1 ip 000000000046c7ac sp 00007ffe423963e0 error 4 in collapse_vs_faults[6c7ac,401000+90000]
\
              [    1.2] traps: fork_vs_faults[99] general protection fault ip:4a1b05 sp:7ffc error:0 in fork_vs_faults[1000+9000]
\
              [    1.3] a[7]: unhandled level 2 translation fault (11) at 0x1, esr 0x92000006
\
              [    1.4] segfault at the start of a line is only text
\
              [    1.5] kmatrix-test[n1]: end collapse_vs_faults
",
        );
        assert_eq!(w.user_faults.len(), 3);
        assert!(w
            .user_faults
            .iter()
            .all(|(t, _)| t.as_deref() == Some("collapse_vs_faults")));
        assert!(w.user_faults[0]
            .1
            .starts_with("collapse_vs_fau[244]: segfault at 1 ip"));
        assert!(
            w.findings.is_empty(),
            "not kernel reports: {:?}",
            w.findings
        );
        for _ in 0..100 {
            w.feed(format!("x[1]: segfault at 0 ip 0 {}\n", "y".repeat(1000)).as_bytes());
        }
        assert_eq!(w.user_faults.len(), MAX_USER_FAULTS);
        assert!(w
            .user_faults
            .iter()
            .all(|(_, t)| t.chars().count() <= USER_FAULT_CHARS));
        // Past the bound, the latest line of the same test (the program's own death
        // after its children's) is still kept.
        w.feed(b"main[9]: segfault at 7 ip 8 error 7 in main[1000+9000]\n");
        assert_eq!(w.user_faults.len(), MAX_USER_FAULTS);
        assert!(w
            .user_faults
            .last()
            .unwrap()
            .1
            .starts_with("main[9]: segfault at 7"));
    }

    #[test]
    fn a_marker_with_another_nonce_is_ignored() {
        let mut w = Watcher::replaying(0, "n1");
        w.feed(format!("kmatrix-test[forged]: start vma_probe\n{OOPS}").as_bytes());
        w.finish();
        assert_eq!(w.findings[0].during, None);
    }

    /// The guest sees a marker only once kmatrix wrote it, and a nonce is good once:
    /// neither a replay of an earlier marker nor a guessed one moves a report into a
    /// test (issue #30: the per-boot nonce was readable in dmesg and time-based).
    #[test]
    fn markers_are_taken_once_and_only_when_kmatrix_wrote_them() {
        let mut w = Watcher::new(0);
        let start = w.expect_marker("start", "faults_vs_writers");
        let end = w.expect_marker("end", "faults_vs_writers");
        assert_ne!(start, end);
        assert!(start.len() > "kmatrix-test[]: start faults_vs_writers".len() + 30);
        let probe = w.expect_marker("start", "vma_probe");
        let forged_end = probe.replace("start", "end");
        let log = format!(
            "{start}\n{end}\n{start}\nkmatrix-test[00000000000000000000000000000000]: start vma_probe\n{forged_end}\n{probe}\n{OOPS}"
        );
        w.feed(log.as_bytes());
        w.finish();
        assert_eq!(w.spans.len(), 2, "{:?}", w.spans);
        assert_eq!(w.spans[0].end, Some(2));
        assert_eq!(w.spans[1].test, "vma_probe");
        assert_eq!(
            w.spans[1].start, 6,
            "the replayed start and the guesses are ignored"
        );
        assert_eq!(w.findings[0].during.as_deref(), Some("vma_probe"));
    }

    #[test]
    fn a_flood_is_counted_not_stored_and_lines_are_bounded() {
        let mut w = Watcher::new(0);
        for i in 0..50 {
            w.feed(OOPS.replace("20.1", &format!("{}.1", 30 + i)).as_bytes());
        }
        w.feed(&vec![b'x'; 1 << 20]);
        w.finish();
        assert_eq!(w.findings.len(), PER_TITLE);
        assert_eq!(w.dropped.values().sum::<u64>(), 40);
        assert!(w.tail(1)[0].len() <= MAX_LINE);
        assert!(
            w.lines > 11 * 50,
            "a megabyte without newline was cut into lines"
        );
    }

    /// Endless distinct titles cost bounded memory: past MAX_TITLES they are counted
    /// together.
    #[test]
    fn distinct_titles_past_the_cap_are_counted_together() {
        let mut w = Watcher::new(0);
        for i in 0..(MAX_TITLES + 500) {
            w.feed(format!("[    1.0] BUG: kernel NULL pointer dereference, address: {i:x}\n[    1.0] RIP: 0010:f{i}+0x1/0x2\n[    1.0] ---[ end trace 0000000000000000 ]---\n").as_bytes());
        }
        w.finish();
        assert!(w.per_title.len() <= MAX_TITLES + 1, "{}", w.per_title.len());
        assert!(w.dropped.len() <= MAX_TITLES + 1);
        assert!(w.findings.len() <= MAX_FINDINGS);
    }
}
