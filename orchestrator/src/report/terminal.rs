//! The terminal sink: a spinner per cell on a TTY (indicatif), timestamped lines
//! otherwise, and the matrix at the end in colour on a TTY. `kmatrix boot` uses it in
//! plain mode. Everything from the guest or the kernel is shown with its control
//! characters made visible: an escape sequence from a guest never reaches the terminal.
//!
//! While a kernel builds, the cell's bar shows the fraction of objects compiled (a line
//! every 30 s without a TTY) and the time left in the whole run (`report::eta`: each
//! cell's expectation, the rates this run measured, the schedule of `--jobs`), a range
//! until the run's first build has finished.

use crate::record::events::{BuildProgress, Event, TotalFrom};
use crate::record::fmt::visible;
use crate::record::result::CellResult;
use crate::record::verdict::Category;
use crate::report::sink::{RunState, Sink};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// A timestamped line on stderr (minutes:seconds since the run started).
pub fn line(msg: &str) {
    let t = started().elapsed().as_secs();
    eprintln!("[{:>3}:{:02}] {}", t / 60, t % 60, visible(msg));
}

/// ANSI colour of a verdict category (terminals only; files stay plain).
pub fn colour(c: Category, word: &str) -> String {
    let code = match c {
        Category::Pass => "32",
        Category::Failed => "31;1",
        Category::Doubtful => "33",
        Category::Infra | Category::Interrupted => "35",
    };
    format!("\x1b[{code}m{word}\x1b[0m")
}

/// A build's progress line without a TTY: at most this often per cell.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// The text of a build's progress: `build 43% [####------] 467/1081 objects, ~4m10s
/// left`; a total that is only an estimate from the config is marked `~`.
pub fn progress_text(p: &BuildProgress, build_left: Option<Duration>) -> String {
    let mut t = match p.fraction() {
        // Past the expected total (the config grew since the last build): a count, not a
        // fraction over a total that is wrong.
        Some(_) if p.done > p.total => format!(
            "build 99% [#########-] {} objects, more than the {} expected",
            p.done, p.total
        ),
        Some(f) => {
            let filled = (f * 10.0).floor() as usize;
            format!(
                "build {:.0}% [{}{}] {}/{}{} objects",
                f * 100.0,
                "#".repeat(filled),
                "-".repeat(10 - filled),
                p.done,
                if matches!(p.from, TotalFrom::Config | TotalFrom::Dependencies) {
                    "~"
                } else {
                    ""
                },
                p.total
            )
        }
        None => format!("build: {} objects compiled", p.done),
    };
    if let Some(l) = build_left {
        t.push_str(&format!(", ~{} left", crate::record::fmt::human(l)));
    }
    t
}

pub struct Terminal {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    /// Print the matrix to stdout when the run ends.
    matrix: bool,
    eta: crate::report::eta::Tracker,
    /// When each cell's last progress line was printed (no TTY).
    last_line: HashMap<String, Instant>,
}

impl Terminal {
    /// Bars on a TTY, lines otherwise; `plain` forces lines (`kmatrix boot`, whose
    /// terminal belongs to the guest's shell afterwards).
    pub fn new(plain: bool, matrix: bool) -> Terminal {
        let _ = started();
        let tty = !plain && std::io::stderr().is_terminal();
        Terminal {
            bars: tty.then(|| (MultiProgress::new(), HashMap::new())),
            matrix,
            eta: crate::report::eta::Tracker::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            last_line: HashMap::new(),
        }
    }

    fn say(&self, id: &str, msg: &str) {
        match self.bars.as_ref().and_then(|(_, b)| b.get(id)) {
            Some(pb) => pb.println(format!("{id}: {}", visible(msg))),
            None => line(&format!("{id}: {msg}")),
        }
    }
}

impl Sink for Terminal {
    fn event(&mut self, e: &Event, run: &RunState) -> std::io::Result<()> {
        self.eta.event(e, Instant::now());
        match e {
            Event::RunStarted { cells, run_dir, .. } => {
                line(&format!("run {}: {cells} cell(s)", run_dir.display()))
            }
            Event::CellStarted { id } => self.cell_started(id),
            Event::Phase { id, phase, detail } => {
                let msg = if detail.is_empty() {
                    phase.label().to_string()
                } else {
                    format!("{}: {detail}", phase.label())
                };
                match self.bars.as_ref().and_then(|(_, b)| b.get(id.as_str())) {
                    Some(pb) => pb.set_message(visible(&msg)),
                    None => line(&format!("{id}: {msg}")),
                }
            }
            Event::Note { id, message } => self.say(id, message),
            Event::Expected { .. } | Event::KernelDone { .. } => {}
            Event::BuildProgress { id, progress } => self.build_progress(id, progress),
            Event::CellFinished { result } => self.cell_finished(result),
            Event::RunFinished => {
                if self.matrix {
                    print_matrix(run);
                }
            }
        }
        Ok(())
    }
}

impl Terminal {
    /// A spinner for the cell on a TTY, a line otherwise.
    fn cell_started(&mut self, id: &str) {
        match &mut self.bars {
            Some((multi, bars)) => {
                let pb = multi.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                pb.set_prefix(id.to_string());
                pb.enable_steady_tick(std::time::Duration::from_millis(200));
                bars.insert(id.to_string(), pb);
            }
            None => line(&format!("{id}: started")),
        }
    }

    /// The build's progress and the run's time left: the bar's message, or a line at
    /// most every 30 s.
    fn build_progress(&mut self, id: &str, progress: &BuildProgress) {
        let now = Instant::now();
        let mut msg = progress_text(progress, progress.left());
        if let Some(left) = self.eta.left(now) {
            msg.push_str(&format!("; run {} left", left.text()));
        }
        match self.bars.as_ref().and_then(|(_, b)| b.get(id)) {
            Some(pb) => pb.set_message(msg),
            None => {
                // The first line once there is something to say, then every 30 s.
                let due = progress.done > 0
                    && self
                        .last_line
                        .get(id)
                        .is_none_or(|t| now.duration_since(*t) >= LINE_EVERY);
                if due {
                    self.last_line.insert(id.to_string(), now);
                    line(&format!("{id}: {msg}"));
                }
            }
        }
    }

    /// The cell's verdict; its time goes into the rate, and the run's time left is said
    /// again when cells are still to come.
    fn cell_finished(&mut self, result: &CellResult) {
        let msg = format!(
            "{} {}{}",
            result.id,
            result.verdict.label(),
            result
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        if let Some((_, bars)) = &mut self.bars {
            if let Some(pb) = bars.remove(result.id.as_str()) {
                pb.finish_with_message(result.verdict.label());
            }
        }
        line(&msg);
        let to_go = self.eta.to_go();
        if to_go > 0 {
            if let Some(left) = self.eta.left(Instant::now()) {
                line(&format!("run: {to_go} cell(s) to go, {} left", left.text()));
            }
        }
    }
}

/// The matrix on stdout at the end of the run, in colour on a terminal.
fn print_matrix(run: &RunState) {
    // The run folder's own list (a bad one was refused when the spec loaded).
    let known = crate::spec::known::KnownIssues::of_run(&run.run_dir).unwrap_or_default();
    let table = if std::io::stdout().is_terminal() {
        super::text::styled_with(&run.cells, &known, &colour)
    } else {
        super::text::matrix_with(&run.cells, &known)
    };
    println!("\n{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_escape_sequences_are_made_visible() {
        let s = visible("BUG: \x1b]0;pwned\x07 in f\r\u{202e}x");
        assert_eq!(s, "BUG: \\x1b]0;pwned\\x07 in f\\x0d\\x202ex");
        assert_eq!(visible("a\tb\nc"), "a\tb\nc");
    }

    #[test]
    fn progress_text_shows_the_fraction_and_marks_estimated_totals() {
        let p = BuildProgress {
            done: 467,
            total: 1081,
            from: TotalFrom::Previous,
            elapsed: Duration::from_secs(120),
        };
        assert_eq!(
            progress_text(&p, p.left()),
            "build 43% [####------] 467/1081 objects, ~2m37s left"
        );
        let est = BuildProgress {
            from: TotalFrom::Config,
            ..p
        };
        assert!(progress_text(&est, None).contains("467/~1081 objects"));
        let unknown = BuildProgress {
            total: 0,
            from: TotalFrom::Unknown,
            ..p
        };
        assert_eq!(progress_text(&unknown, None), "build: 467 objects compiled");
        let grown = BuildProgress {
            done: 1161,
            total: 799,
            ..p
        };
        assert_eq!(
            progress_text(&grown, None),
            "build 99% [#########-] 1161 objects, more than the 799 expected"
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(crate::record::fmt::human(Duration::from_secs(45)), "45s");
        assert_eq!(crate::record::fmt::human(Duration::from_secs(250)), "4m10s");
        assert_eq!(crate::record::fmt::human(Duration::from_secs(1190)), "20m");
        assert_eq!(
            crate::record::fmt::human(Duration::from_secs(3900)),
            "1h05m"
        );
    }

    #[test]
    fn colour_follows_the_category() {
        assert_eq!(colour(Category::Pass, "PASS"), "\x1b[32mPASS\x1b[0m");
        assert!(colour(Category::Failed, "BUILD-FAIL").starts_with("\x1b[31;1m"));
    }
}
