//! The terminal sink: a spinner per cell on a TTY (indicatif), timestamped lines
//! otherwise, and the matrix at the end in colour on a TTY. `kmatrix boot` uses it in
//! plain mode. Everything from the guest or the kernel is shown with its control
//! characters made visible: an escape sequence from a guest never reaches the terminal.

use super::{visible, RunState, Sink};
use crate::events::Event;
use crate::verdict::Category;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Instant;

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

pub struct Terminal {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    /// Print the matrix to stdout when the run ends.
    matrix: bool,
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
            Event::RunStarted { cells, run_dir } => {
                line(&format!("run {}: {cells} cell(s)", run_dir.display()))
            }
            Event::CellStarted { id } => match &mut self.bars {
                Some((multi, bars)) => {
                    let pb = multi.add(ProgressBar::new_spinner());
                    pb.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    pb.set_prefix(id.clone());
                    pb.enable_steady_tick(std::time::Duration::from_millis(200));
                    bars.insert(id.clone(), pb);
                }
                None => line(&format!("{id}: started")),
            },
            Event::Phase { id, phase, detail } => {
                let msg = if detail.is_empty() {
                    phase.label().to_string()
                } else {
                    format!("{}: {detail}", phase.label())
                };
                match self.bars.as_ref().and_then(|(_, b)| b.get(id)) {
                    Some(pb) => pb.set_message(visible(&msg)),
                    None => line(&format!("{id}: {msg}")),
                }
            }
            Event::Note { id, message } => self.say(id, message),
            Event::CellFinished { result } => {
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
                    if let Some(pb) = bars.remove(&result.id) {
                        pb.finish_with_message(result.verdict.label());
                    }
                }
                line(&msg);
            }
            Event::RunFinished => {
                if self.matrix {
                    // The run folder's own list (a bad one was refused when the spec loaded).
                    let known = crate::known::KnownIssues::of_run(&run.run_dir).unwrap_or_default();
                    let table = if std::io::stdout().is_terminal() {
                        super::text::styled_with(&run.cells, &known, &colour)
                    } else {
                        super::text::matrix_with(&run.cells, &known)
                    };
                    println!("\n{table}");
                }
            }
        }
        Ok(())
    }
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
    fn colour_follows_the_category() {
        assert_eq!(colour(Category::Pass, "PASS"), "\x1b[32mPASS\x1b[0m");
        assert!(colour(Category::Failed, "BUILD-FAIL").starts_with("\x1b[31;1m"));
    }
}
