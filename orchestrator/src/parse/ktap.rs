//! Reads the KTAP / TAP 13 output of a guest test into a [`Report`].

pub use crate::record::ktap::{Case, Report, Status};

/// Diagnostic lines kept per case, and their length: the guest's text, bounded.
const DIAG_LINES: usize = 4;
const DIAG_CHARS: usize = 240;

/// Parse top-level KTAP (indented subtests are ignored; their parent line counts).
pub fn parse(text: &str) -> Report {
    let mut r = Report::default();
    let mut diag: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("# ") {
            if diag.len() == DIAG_LINES {
                diag.remove(0);
            }
            diag.push(d.trim().chars().take(DIAG_CHARS).collect());
            continue;
        }
        if line.starts_with("TAP version") || line.starts_with("KTAP version") {
            r.header = true;
        } else if let Some(n) = line.strip_prefix("1..") {
            let (n, directive) = n.split_once('#').unwrap_or((n, ""));
            r.planned = n.trim().parse().ok();
            let d = directive.trim();
            if r.planned == Some(0) && d.to_ascii_uppercase().starts_with("SKIP") {
                r.skip_all = Some(d[4..].trim().to_string());
            }
        } else if let Some(rest) = line.strip_prefix("not ok ") {
            r.cases
                .push(case(rest, Status::NotOk, std::mem::take(&mut diag)));
        } else if let Some(rest) = line.strip_prefix("ok ") {
            r.cases
                .push(case(rest, Status::Ok, std::mem::take(&mut diag)));
        }
    }
    r
}

fn case(rest: &str, status: Status, diag: Vec<String>) -> Case {
    let (num, desc) = rest.split_once(' ').unwrap_or((rest, ""));
    let (desc, directive) = match desc.split_once(" # ") {
        Some((d, dir)) => (d, Some(dir)),
        None => match desc.strip_prefix("# ") {
            Some(dir) => ("", Some(dir)),
            None => (desc, None),
        },
    };
    let mut status = status;
    let mut reason = None;
    if let Some(dir) = directive {
        let upper = dir.to_ascii_uppercase();
        if upper.starts_with("SKIP") {
            if status == Status::Ok {
                status = Status::Skip;
            }
            reason = Some(dir[4..].trim().to_string());
        } else {
            reason = Some(dir.trim().to_string());
        }
    }
    Case {
        number: num.trim().parse().unwrap_or(0),
        description: desc.trim().trim_start_matches("- ").to_string(),
        status,
        reason,
        diag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_not_ok_and_skip() {
        let r = parse(
            "TAP version 13\n1..3\n# faults: 1234\nok 1 anon faults data intact\nnot ok 2 shmem faults data intact\nok 3 uffd move # SKIP UFFDIO_MOVE not supported\n",
        );
        assert!(r.complete());
        assert!(!r.passed());
        assert_eq!(r.cases[1].status, Status::NotOk);
        assert_eq!(r.cases[2].status, Status::Skip);
        assert_eq!(
            r.cases[2].reason.as_deref(),
            Some("UFFDIO_MOVE not supported")
        );
        assert_eq!(r.failed().count(), 1);
    }

    #[test]
    fn a_case_keeps_the_last_diagnostics_before_it_bounded() {
        let long = "x".repeat(1000);
        let r = parse(&format!(
            "TAP version 13\n1..2\n# a\n# b\n# c\n# d\n# first finding: gap 10-20\nnot ok 1 maps\n# {long}\nok 2 next\n"
        ));
        assert_eq!(r.cases[0].diag, ["b", "c", "d", "first finding: gap 10-20"]);
        assert_eq!(r.cases[1].diag, ["x".repeat(DIAG_CHARS)]);
    }

    #[test]
    fn a_failed_case_is_summarised_with_its_last_diagnostic() {
        let mut t = crate::record::result::TestResult::new(
            "maps_consistency",
            crate::record::result::TestOutcome::Exited { status: 1 },
        );
        t.ktap = parse(
            "TAP version 13\n1..2\nok 1 a\n# reader: gaps 1\n#   first finding: gap 7000-8000\nnot ok 2 maps consistent\n",
        );
        assert_eq!(
            t.failure().unwrap(),
            "not ok 2 maps consistent; first finding: gap 7000-8000"
        );
    }

    #[test]
    fn a_run_cut_short_or_empty_does_not_pass() {
        assert!(!parse("TAP version 13\n1..2\nok 1 a\n").passed());
        assert!(!parse("").passed());
        assert!(!parse("TAP version 13\n1..0\n").passed());
        assert!(parse("KTAP version 1\n1..1\nok 1 - a\n").passed());
        // kselftest skipping everything, with its reason.
        let r = parse("TAP version 13\n1..0 # SKIP userfaultfd not available\n");
        assert!(r.passed());
        assert_eq!(r.skip_all.as_deref(), Some("userfaultfd not available"));
    }

    #[test]
    fn a_program_whose_every_case_skipped_says_why_and_one_that_ran_does_not() {
        let why = "no transparent hugepages: MADV_HUGEPAGE: EINVAL";
        let all = parse(&format!(
            "TAP version 13\n1..2\nok 1 collapsed # SKIP {why}\nok 2 unmap overlapped # SKIP {why}\n"
        ));
        assert!(all.passed());
        assert_eq!(all.skip_reason().as_deref(), Some(why));
        let whole = parse("TAP version 13\n1..0 # SKIP userfaultfd not available\n");
        assert_eq!(
            whole.skip_reason().as_deref(),
            Some("userfaultfd not available")
        );
        let mixed =
            parse("TAP version 13\n1..3\nok 1 a # SKIP x\nok 2 b # SKIP y\nok 3 c # SKIP\n");
        assert_eq!(
            mixed.skip_reason().as_deref(),
            Some("x (and 2 other reasons)")
        );
        // One check ran: the program tested something, it is not a skip.
        let partial = parse("TAP version 13\n1..2\nok 1 a\nok 2 b # SKIP x\n");
        assert_eq!(partial.skip_reason(), None);
        // A failure or an incomplete run is never a skip, whatever else skipped.
        let failed = parse("TAP version 13\n1..2\nnot ok 1 a\nok 2 b # SKIP x\n");
        assert_eq!(failed.skip_reason(), None);
        assert_eq!(
            parse("TAP version 13\n1..2\nok 1 a # SKIP x\n").skip_reason(),
            None
        );
        let long = parse(&format!(
            "TAP version 13\n1..1\nok 1 a # SKIP {}\n",
            "y".repeat(5000)
        ));
        assert_eq!(long.skip_reason().unwrap().len(), 300);
    }
}
