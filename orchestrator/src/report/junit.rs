//! `junit.xml` (written with `quick-junit`): one testsuite per cell, one testcase per
//! phase and guest test, a failure per unexpected kernel report or silent control.
//! Readable by GitLab, Jenkins and GitHub test reporters. Console text can hold anything;
//! characters XML 1.0 does not allow are replaced, so the file always parses.

use crate::record::result::{CellResult, ControlState, TestResult};
use crate::record::verdict::Verdict;
use crate::spec::known::KnownIssues;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

/// Text made valid XML 1.0 character data: control and bidi characters shown as `\xNN`
/// (as on the terminal, `record::fmt::visible`), then anything else outside
/// `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]` becomes
/// U+FFFD (quick-junit drops C0 controls but lets U+FFFE/U+FFFF through).
pub fn xml_text(s: &str) -> String {
    crate::record::fmt::visible(s)
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}' => c,
            _ => '\u{FFFD}',
        })
        .collect()
}

fn failure(message: &str, description: &str) -> TestCaseStatus {
    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
    st.set_message(xml_text(message)).set_type("kmatrix");
    if !description.is_empty() {
        st.set_description(xml_text(description));
    }
    st
}

fn case(name: &str, status: TestCaseStatus, classname: &str, secs: f64) -> TestCase {
    let mut t = TestCase::new(xml_text(name), status);
    t.set_classname(xml_text(classname))
        .set_time(crate::record::fmt::duration(secs));
    t
}

/// ` (known issue: why; link)` for a failure that matches one.
fn known_note(k: Option<&crate::spec::known::KnownIssue>) -> String {
    k.map(|k| {
        format!(
            " (known issue: {}{})",
            k.why,
            k.link
                .as_ref()
                .map(|l| format!("; {l}"))
                .unwrap_or_default()
        )
    })
    .unwrap_or_default()
}

/// A cell's testsuite: its build, then its boot or its tests and kernel reports.
fn suite(c: &CellResult, known: &KnownIssues) -> TestSuite {
    let mut s = TestSuite::new(xml_text(&c.id));
    s.set_time(crate::record::fmt::duration(c.seconds));
    s.add_property(Property::new("verdict", c.verdict.label()));
    s.add_property(Property::new(
        "accel",
        c.accel.map(|a| a.name()).unwrap_or("-"),
    ));
    if let Some(d) = &c.detectors {
        s.add_property(Property::new("detectors", xml_text(&d.summary())));
    }
    let reason = c.reason.clone().unwrap_or_default();
    let early = matches!(
        c.verdict,
        Verdict::PatchFail | Verdict::BuildFail | Verdict::ConfigMismatch
    );
    let build = if early {
        failure(
            &format!(
                "{}: {reason}{}",
                c.verdict.label(),
                known_note(known.find_verdict(c))
            ),
            &c.details.join("\n"),
        )
    } else {
        TestCaseStatus::success()
    };
    s.add_test_case(case("build", build, &c.id, 0.0));
    if early {
        return s;
    }
    if c.verdict == Verdict::BootFail || (c.verdict == Verdict::InfraError && c.tests.is_empty()) {
        s.add_test_case(case(
            "boot",
            failure(
                &format!("{}: {reason}", c.verdict.label()),
                &c.details.join("\n"),
            ),
            &c.id,
            0.0,
        ));
        return s;
    }
    for t in &c.tests {
        s.add_test_case(test_case(c, t));
    }
    report_cases(&mut s, c, &kernel_reports(c, known));
    s
}

/// A guest test's case, failed with its failing KTAP lines.
fn test_case(c: &CellResult, t: &TestResult) -> TestCase {
    let status = match t.failure() {
        None => match t.skipped() {
            Some(why) => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(xml_text(&why));
                st
            }
            None => TestCaseStatus::success(),
        },
        Some(msg) => {
            let body: Vec<String> = t
                .ktap
                .failed()
                .flat_map(|f| {
                    f.diag
                        .iter()
                        .map(|d| format!("# {d}"))
                        .chain([format!("not ok {} {}", f.number, f.description)])
                })
                .collect();
            failure(&msg, &body.join("\n"))
        }
    };
    case(&t.name, status, &c.id, t.seconds)
}

/// Each failure the kernel's side shows, as (message, body): the real reports, then the
/// controls that did not fire.
fn kernel_reports(c: &CellResult, known: &KnownIssues) -> Vec<(String, String)> {
    let mut reports = Vec::new();
    for f in c.real_findings() {
        let note = if c.in_baseline.contains(&f.title) {
            " (also in baseline)".to_string()
        } else {
            known_note(known.find(&c.id, &f.title))
        };
        reports.push((format!("{}{note}", f.title), f.report.clone()));
    }
    for ctl in &c.controls {
        match &ctl.state {
            ControlState::Fired { .. } => {}
            ControlState::Silent => reports.push((
                format!(
                    "positive control of {} stayed silent ({:?})",
                    ctl.test, ctl.expect.kind
                ),
                String::new(),
            )),
            ControlState::NotJudged { why } => reports.push((
                format!(
                    "positive control of {} ({:?}) not judged",
                    ctl.test, ctl.expect.kind
                ),
                why.clone(),
            )),
        }
    }
    reports
}

/// One case for the kernel's reports: a success when there are none, else a failure
/// for each.
fn report_cases(s: &mut TestSuite, c: &CellResult, reports: &[(String, String)]) {
    if reports.is_empty() {
        s.add_test_case(case(
            "kernel reports",
            TestCaseStatus::success(),
            &c.id,
            0.0,
        ));
    }
    // JUnit has one failure per case: a case per report keeps each readable.
    for (i, (msg, body)) in reports.iter().enumerate() {
        let name = if reports.len() == 1 {
            "kernel reports".to_string()
        } else {
            format!("kernel reports #{}", i + 1)
        };
        s.add_test_case(case(&name, failure(msg, body), &c.id, 0.0));
    }
}

pub fn render(cells: &[CellResult]) -> String {
    render_with(cells, &KnownIssues::default())
}

/// [`render`], failures that match a known issue saying so (they still fail).
pub fn render_with(cells: &[CellResult], known: &KnownIssues) -> String {
    let mut r = Report::new("kmatrix");
    r.add_test_suites(cells.iter().map(|c| suite(c, known)));
    r.to_string().unwrap_or_else(|e| {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- cannot render: {} -->\n<testsuites/>\n", xml_text(&e.to_string()).replace("--", "- -"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_forbids_are_replaced() {
        assert_eq!(
            xml_text("a\u{FFFE}b\u{FFFF}c\u{1}d\te\u{202e}"),
            "a\u{FFFD}b\u{FFFD}c\\x01d\te\\x202e"
        );
        assert_eq!(
            xml_text("vma_start_read_unlocked"),
            "vma_start_read_unlocked"
        );
    }
}
