//! The terminal sink: a spinner per cell on a TTY (indicatif), timestamped lines
//! otherwise, and the matrix at the end in colour on a TTY. `kmatrix boot` uses it in
//! plain mode. Everything from the guest or the kernel is shown with its control
//! characters made visible: an escape sequence from a guest never reaches the terminal.
//!
//! While a kernel builds, the cell's bar shows the fraction of objects compiled (a line
//! every 30 s without a TTY) and the time left in the whole run: the cost model the
//! sharding uses (`plan::cost`), scaled by the seconds per unit of cost this run has
//! measured (finished cells, and the current build's rate).

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

/// Seconds per unit of `plan::cost` before the run has measured anything: a cold
/// x86_64 cell of cost ~380 (a 6-9 min build, then boot and tests under TCG) takes
/// about 10 minutes.
pub const PRIOR_SECS_PER_COST: f64 = 1.5;

/// A build's progress line without a TTY: at most this often per cell.
const LINE_EVERY: Duration = Duration::from_secs(30);

/// The cell running now, as the ETA sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Current {
    pub cost: u64,
    /// Seconds since the cell started.
    pub elapsed: f64,
    /// Seconds left in its kernel build at the rate so far, when that is known.
    pub build_left: Option<f64>,
}

/// What the ETA is computed from: everything measured or expected, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EtaInputs {
    /// Seconds and expected cost of the cells finished in this run.
    pub finished_secs: f64,
    pub finished_cost: u64,
    pub current: Option<Current>,
    /// Expected cost of the cells still to run after the current one.
    pub after: u64,
}

impl EtaInputs {
    /// Seconds per unit of cost: what the finished cells took, with the current cell's
    /// projection (elapsed plus its build's time left) once its build rate is known;
    /// the prior before anything was measured. The projection leaves out the boot and
    /// tests after the build, so it errs short until the cell finishes.
    pub fn rate(&self) -> f64 {
        let (mut secs, mut cost) = (self.finished_secs, self.finished_cost);
        if let Some(Current {
            cost: c,
            elapsed,
            build_left: Some(left),
        }) = self.current
        {
            secs += elapsed + left;
            cost += c;
        }
        if cost == 0 {
            PRIOR_SECS_PER_COST
        } else {
            secs / cost as f64
        }
    }

    /// Seconds left in the whole run: the current cell's expected rest (never less
    /// than its build's time left), then the cells after it at the measured rate.
    pub fn left(&self) -> f64 {
        let k = self.rate();
        let current = self.current.map_or(0.0, |c| {
            (c.cost as f64 * k - c.elapsed).max(c.build_left.unwrap_or(0.0))
        });
        current.max(0.0) + self.after as f64 * k
    }
}

/// `1h05m`, `4m10s`, `45s`: a duration as a person reads an estimate.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=599 => format!("{}m{:02}s", s / 60, s % 60),
        600..=3599 => format!("{}m", (s + 30) / 60),
        _ => {
            let m = (s + 30) / 60;
            format!("{}h{:02}m", m / 60, m % 60)
        }
    }
}

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
        t.push_str(&format!(", ~{} left", human(l)));
    }
    t
}

/// The cell running now: its id, cost, start, and its build's time left as last known
/// (kept when a build runs past its expected total: it is then about done).
#[derive(Debug)]
struct Running {
    id: String,
    cost: u64,
    started: Instant,
    build_left: Option<(Duration, Instant)>,
}

/// The run's ETA as events arrive.
#[derive(Debug, Default)]
struct Eta {
    costs: HashMap<String, u64>,
    finished_secs: f64,
    finished_cost: u64,
    current: Option<Running>,
    after: u64,
    cells_after: usize,
}

impl Eta {
    fn inputs(&self, now: Instant) -> EtaInputs {
        EtaInputs {
            finished_secs: self.finished_secs,
            finished_cost: self.finished_cost,
            current: self.current.as_ref().map(|r| Current {
                cost: r.cost,
                elapsed: now.duration_since(r.started).as_secs_f64(),
                // The time left as last known, minus what has passed since.
                build_left: r.build_left.map(|(l, at)| {
                    (l.as_secs_f64() - now.duration_since(at).as_secs_f64()).max(0.0)
                }),
            }),
            after: self.after,
        }
    }

    fn left(&self, now: Instant) -> Duration {
        Duration::from_secs_f64(self.inputs(now).left())
    }
}

pub struct Terminal {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    /// Print the matrix to stdout when the run ends.
    matrix: bool,
    eta: Eta,
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
            eta: Eta::default(),
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
            Event::Expected {
                id,
                cost,
                after,
                cells_after,
            } => {
                self.eta.costs.insert(id.to_string(), *cost);
                self.eta.current = Some(Running {
                    id: id.to_string(),
                    cost: *cost,
                    started: Instant::now(),
                    build_left: None,
                });
                self.eta.after = *after;
                self.eta.cells_after = *cells_after;
            }
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
        if let (Some(r), Some(left)) = (
            self.eta.current.as_mut().filter(|r| r.id == id),
            progress.left(),
        ) {
            r.build_left = Some((left, now));
        }
        let msg = format!(
            "{}; run ~{} left",
            progress_text(progress, progress.left()),
            human(self.eta.left(now))
        );
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
        if let Some(cost) = self.eta.costs.get(result.id.as_str()) {
            self.eta.finished_secs += result.seconds;
            self.eta.finished_cost += cost;
        }
        let was_current = self.eta.current.as_ref().is_some_and(|r| r.id == result.id);
        if was_current {
            self.eta.current = None;
        }
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
        if was_current && self.eta.cells_after > 0 {
            line(&format!(
                "run: {} cell(s) to go, ~{} left",
                self.eta.cells_after,
                human(self.eta.left(Instant::now()))
            ));
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

    fn current(cost: u64, elapsed: f64, build_left: Option<f64>) -> Option<Current> {
        Some(Current {
            cost,
            elapsed,
            build_left,
        })
    }

    #[test]
    fn before_any_measurement_the_eta_is_the_cost_model_at_the_prior_rate() {
        let i = EtaInputs {
            current: current(400, 0.0, None),
            after: 1000,
            ..Default::default()
        };
        assert_eq!(i.rate(), PRIOR_SECS_PER_COST);
        assert_eq!(i.left(), 1400.0 * PRIOR_SECS_PER_COST);
    }

    #[test]
    fn finished_cells_set_the_rate() {
        // Two cells of cost 400 took 200 s each (cached kernels): 0.5 s per unit.
        let i = EtaInputs {
            finished_secs: 400.0,
            finished_cost: 800,
            current: current(400, 50.0, None),
            after: 800,
        };
        assert_eq!(i.rate(), 0.5);
        assert_eq!(i.left(), (200.0 - 50.0) + 400.0);
        // A cell running past its estimate has nothing left, not a negative time.
        let late = EtaInputs {
            current: current(400, 900.0, None),
            ..i
        };
        assert_eq!(late.left(), 400.0);
    }

    #[test]
    fn the_current_builds_rate_corrects_the_estimate_of_the_rest() {
        // First cell, 100 s in, its build says 500 s more: 600 s for cost 400, so the
        // 1000 units after it are expected to take 1500 s, not 1000 x the prior.
        let i = EtaInputs {
            current: current(400, 100.0, Some(500.0)),
            after: 1000,
            ..Default::default()
        };
        assert_eq!(i.rate(), 1.5);
        assert_eq!(i.left(), 500.0 + 1500.0);
        let slow = EtaInputs {
            current: current(400, 100.0, Some(1100.0)),
            ..i
        };
        assert_eq!(slow.rate(), 3.0);
        assert_eq!(slow.left(), 1100.0 + 3000.0);
        // With finished cells the projection weighs by cost like any other cell.
        let mixed = EtaInputs {
            finished_secs: 200.0,
            finished_cost: 400,
            ..slow
        };
        assert_eq!(mixed.rate(), (200.0 + 1200.0) / 800.0);
        // The build's own time left is a floor for the current cell.
        assert!(mixed.left() >= 1100.0 + 1000.0 * mixed.rate());
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
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(250)), "4m10s");
        assert_eq!(human(Duration::from_secs(1190)), "20m");
        assert_eq!(human(Duration::from_secs(3900)), "1h05m");
    }

    #[test]
    fn colour_follows_the_category() {
        assert_eq!(colour(Category::Pass, "PASS"), "\x1b[32mPASS\x1b[0m");
        assert!(colour(Category::Failed, "BUILD-FAIL").starts_with("\x1b[31;1m"));
    }
}
