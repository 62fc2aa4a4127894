//! Formatting every output shares: text from outside made safe to print, paths shown
//! relative to where the user is, run folder names, an error with its causes.

use std::path::Path;
use std::time::Duration;

/// The most seconds any time in a result file can be: above any printk timestamp (the
/// console's, at most 12 digits of seconds, which a guest chooses) and any Unix time of
/// a run, and far inside what `Duration` and `SystemTime` hold.
pub const MAX_SECS: f64 = 1e13;

/// Seconds read from a result file as a `Duration`, never a panic: NaN and negatives are
/// zero, more than [`MAX_SECS`] is that (`Duration::from_secs_f64` panics on 1e308).
pub fn duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.clamp(0.0, MAX_SECS)).unwrap_or_default()
}

/// Text from the guest or the kernel, made safe to print on a terminal or in a plain
/// file: control characters (escape sequences that could move the cursor, set the
/// title or rewrite what was printed) and the characters that reorder or break what is
/// shown (bidi overrides and isolates, line separators) become visible `\xNN`; lines
/// and tabs stay.
pub fn visible(s: &str) -> String {
    escaped(s, |c| c == '\n' || c == '\t')
}

/// [`visible`] for what must stay one line (a name, an id, a title, a reason): newlines
/// and tabs become visible too, so no name starts a line of its own in an output.
pub fn visible_line(s: &str) -> String {
    escaped(s, |_| false)
}

/// Is `c` one that [`visible`] shows as `\xNN`?
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn escaped(s: &str, keep: impl Fn(char) -> bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if is_hidden(c) && !keep(c) {
            o.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            o.push(c);
        }
    }
    o
}

/// A path as the user would type it: relative to the working folder when under it.
pub fn display_rel(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}

/// UTC `YYYYmmdd-HHMMSS` for run directory names.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil-from-days (proleptic Gregorian), as in Howard Hinnant's date algorithms.
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Some messages already quote their source; do not say it twice.
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// `1h05m`, `4m10s`, `45s`: a duration as a person reads an estimate.
pub fn human(d: std::time::Duration) -> String {
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
