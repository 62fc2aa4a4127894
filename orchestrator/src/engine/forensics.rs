//! Forensics after a hang or a fatal report: ask the kernel for blocked tasks (sysrq
//! w), every task (t), all-CPU backtraces (l) and, where lockdep is built, every held
//! lock (d), over a fresh SSH session or, when SSH is dead, as BREAKs on the serial
//! console; then give its detectors a bounded moment to print. The dumps land in
//! console.log, and the console of the window is read back once to say who holds the
//! lock each blocked task waits for (`judge::holders`).
//!
//! A test that expects a hang (a positive control) is not ended by it, so it gets the
//! lighter [`CellRun::holders_snapshot`]: the dumps while the hold is still on.

use super::boot::BootSession;
use super::run::CellRun;
use crate::host::guest::{self, Exec};
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

/// The most of the window's console text read back (the cell's console.log is bounded
/// by its own limit; sysrq t of a small guest is well under a megabyte).
const WINDOW_BYTES: usize = 16 << 20;

impl CellRun<'_> {
    /// The sysrq keys: `d` only where lockdep is built (elsewhere it prints the help).
    fn sysrq_keys(&self, keys: &str) -> String {
        if self.facts.lockdep {
            format!("d{keys}")
        } else {
            keys.to_string()
        }
    }

    /// Returns what was done, and who holds what, for the cell's result.
    pub async fn forensics(&self, s: &mut BootSession, after: &str) -> String {
        let keys = self.sysrq_keys("wtl");
        let named = spelled(&keys);
        self.note(format!(
            "collecting forensics after {after} (sysrq {named})"
        ));
        let from = window_start(s);
        let how = match self.sysrq_over_ssh(s, &keys).await {
            None => format!("sysrq {named} over ssh"),
            Some(e) => {
                self.note(format!(
                    "ssh unreachable ({e}); sysrq over the serial console"
                ));
                match s.console.sysrq(keys.as_bytes(), Duration::from_secs(30)).await {
                    Ok(()) => format!("sysrq {named} over the serial console (ssh unreachable: {e})"),
                    Err(se) => format!(
                        "no sysrq: ssh unreachable ({e}), serial console failed ({se}); console only"
                    ),
                }
            }
        };
        // The hung-task detector and the sysrq dumps print asynchronously.
        let wait = self
            .sh
            .plan
            .vm
            .hung_task_timeout
            .min(Duration::from_secs(15));
        let until = Instant::now() + wait;
        while Instant::now() < until && s.vm.qemu.try_wait().is_none() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        with_holders(how, holders(&s.console.log, from).await)
    }

    /// A positive control's expected hang: the dumps while the hold is on (sysrq d, w
    /// and t over SSH, the test still running), and who holds what. None when nothing
    /// could be sent.
    pub async fn holders_snapshot(&self, s: &mut BootSession, test: &str) -> Option<String> {
        let keys = self.sysrq_keys("wt");
        let named = spelled(&keys);
        let from = window_start(s);
        if let Some(e) = self.sysrq_over_ssh(s, &keys).await {
            self.note(format!(
                "no lock holders for {test}'s expected hang: ssh: {e}"
            ));
            return None;
        }
        self.note(format!(
            "expected hang in {test}: sysrq {named} for its lock holders"
        ));
        // Until the console has been quiet for a second (the dumps are done), at most 10 s.
        let until = Instant::now() + Duration::from_secs(10);
        let mut last = s.console.with(|w| w.line());
        let mut quiet = Instant::now();
        while Instant::now() < until && s.vm.qemu.try_wait().is_none() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = s.console.with(|w| w.line());
            if now != last {
                (last, quiet) = (now, Instant::now());
            } else if quiet.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        Some(with_holders(
            format!("at the expected hang in {test}: sysrq {named} over ssh"),
            holders(&s.console.log, from).await,
        ))
    }

    /// Send sysrq `keys` through /proc/sysrq-trigger over a fresh SSH session; the
    /// error when that failed.
    async fn sysrq_over_ssh(&self, s: &BootSession, keys: &str) -> Option<String> {
        let t = s.target.clone();
        let cmd = format!("for k in {}; do echo $k > /proc/sysrq-trigger; done", {
            let v: Vec<String> = keys.chars().map(String::from).collect();
            v.join(" ")
        });
        let done = tokio::task::spawn_blocking(move || {
            let ssh = guest::connect(&t, Duration::from_secs(10))?;
            guest::exec(&ssh, &cmd, Exec::quick(Duration::from_secs(30)))
        })
        .await;
        match done {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("ssh thread failed: {e}")),
        }
    }
}

/// A complete hang report since console line `from` (one still printing would mix
/// its stack with the dumps).
pub(super) fn hang_reported(s: &BootSession, from: usize) -> bool {
    s.console.with(|w| {
        w.findings
            .iter()
            .any(|f| f.line > from && crate::judge::decide::is_hang(f.kind))
    })
}

/// `dwtl` -> `d, w, t and l`.
fn spelled(keys: &str) -> String {
    let k: Vec<String> = keys.chars().map(String::from).collect();
    match k.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => k.join(""),
    }
}

/// Where the window starts: the running test's start marker (its hung-task report
/// came before the dumps), or the console's current line.
fn window_start(s: &BootSession) -> usize {
    s.console.with(|w| {
        w.spans
            .last()
            .map(|sp| sp.start)
            .unwrap_or_else(|| w.line())
    })
}

/// One line saying what was sent, then a line per chain of blocked tasks.
fn with_holders(how: String, statements: Vec<String>) -> String {
    let mut out = how;
    for st in statements {
        out.push_str("\n- ");
        out.push_str(&st);
    }
    out
}

/// The statements for the console window from line `from` (1-based, as the watcher
/// counts) to the end of the log, read off the runtime.
async fn holders(log: &Path, from: usize) -> Vec<String> {
    let log = log.to_owned();
    tokio::task::spawn_blocking(move || {
        let text = window(&log, from).unwrap_or_default();
        crate::judge::holders::explain(&crate::parse::lockdump::parse(&text))
    })
    .await
    .unwrap_or_default()
}

/// console.log from line `from` on, at most [`WINDOW_BYTES`] (the guest wrote it:
/// invalid UTF-8 is replaced, not trusted).
fn window(log: &Path, from: usize) -> std::io::Result<String> {
    let f = std::io::BufReader::new(std::fs::File::open(log)?);
    let mut out = String::new();
    for line in f.split(b'\n').skip(from.saturating_sub(1)) {
        let line = line?;
        if out.len() + line.len() > WINDOW_BYTES {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&line));
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spelled_and_the_window_starts_at_its_line() {
        assert_eq!(spelled("dwtl"), "d, w, t and l");
        assert_eq!(spelled("w"), "w");
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("console.log");
        std::fs::write(&p, b"one\ntwo\nthr\xffee\n").unwrap();
        assert_eq!(window(&p, 2).unwrap(), "two\nthr\u{fffd}ee\n");
        assert_eq!(window(&p, 0).unwrap(), "one\ntwo\nthr\u{fffd}ee\n");
        assert_eq!(
            with_holders("sysrq".into(), vec!["a".into(), "b".into()]),
            "sysrq\n- a\n- b"
        );
    }
}
