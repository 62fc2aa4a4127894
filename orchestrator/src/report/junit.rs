//! `junit.xml`: one testsuite per cell, one testcase per phase and guest test, a failure
//! per unexpected kernel report. Readable by GitLab, Jenkins and GitHub test reporters.

use crate::verdict::{CellResult, Verdict};

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

struct Case {
    name: String,
    time: f64,
    failures: Vec<(String, String)>,
    skipped: Option<String>,
}

fn cases(c: &CellResult) -> Vec<Case> {
    let mut v = Vec::new();
    let early = matches!(
        c.verdict,
        Verdict::PatchFail | Verdict::BuildFail | Verdict::ConfigMismatch
    );
    let reason = c.reason.clone().unwrap_or_default();
    v.push(Case {
        name: "build".into(),
        time: 0.0,
        failures: if early {
            vec![(
                format!("{}: {reason}", c.verdict.label()),
                c.details.join("\n"),
            )]
        } else {
            vec![]
        },
        skipped: None,
    });
    if early {
        return v;
    }
    if c.verdict == Verdict::BootFail || (c.verdict == Verdict::InfraError && c.tests.is_empty()) {
        v.push(Case {
            name: "boot".into(),
            time: 0.0,
            failures: vec![(
                format!("{}: {reason}", c.verdict.label()),
                c.details.join("\n"),
            )],
            skipped: None,
        });
        return v;
    }
    for t in &c.tests {
        let mut failures = Vec::new();
        if !t.passed() {
            let msg = t
                .error
                .clone()
                .or_else(|| {
                    t.ktap
                        .failed()
                        .next()
                        .map(|f| format!("not ok {} {}", f.number, f.description))
                })
                .unwrap_or_else(|| format!("exit status {:?}, KTAP incomplete", t.exit_status));
            let body: Vec<String> = t
                .ktap
                .failed()
                .map(|f| format!("not ok {} {}", f.number, f.description))
                .collect();
            failures.push((msg, body.join("\n")));
        }
        v.push(Case {
            name: t.name.clone(),
            time: t.seconds,
            failures,
            skipped: None,
        });
    }
    let mut reports = Vec::new();
    for (i, f) in c.findings.iter().enumerate() {
        if matches!(c.expected_by.get(i), Some(Some(_))) {
            continue;
        }
        let note = if c.in_baseline.contains(&f.title) {
            " (also in baseline)"
        } else {
            ""
        };
        reports.push((format!("{}{note}", f.title), f.report.clone()));
    }
    for ctl in c.controls.iter().filter(|c| !c.fired) {
        reports.push((
            format!(
                "positive control of {} stayed silent ({:?})",
                ctl.test, ctl.expect.kind
            ),
            String::new(),
        ));
    }
    v.push(Case {
        name: "kernel reports".into(),
        time: 0.0,
        failures: reports,
        skipped: None,
    });
    v
}

pub fn render(cells: &[CellResult]) -> String {
    let all: Vec<(&CellResult, Vec<Case>)> = cells.iter().map(|c| (c, cases(c))).collect();
    let total: usize = all.iter().map(|(_, cs)| cs.len()).sum();
    let failed: usize = all
        .iter()
        .map(|(_, cs)| cs.iter().filter(|c| !c.failures.is_empty()).count())
        .sum();
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str(&format!(
        "<testsuites name=\"kmatrix\" tests=\"{total}\" failures=\"{failed}\" errors=\"0\">\n"
    ));
    for (c, cs) in &all {
        let f = cs.iter().filter(|c| !c.failures.is_empty()).count();
        o.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"0\" skipped=\"0\" time=\"{:.1}\">\n",
            escape(&c.id),
            cs.len(),
            c.seconds
        ));
        o.push_str(&format!(
            "    <properties><property name=\"verdict\" value=\"{}\"/><property name=\"accel\" value=\"{}\"/></properties>\n",
            c.verdict.label(),
            escape(c.accel.as_deref().unwrap_or("-"))
        ));
        for case in cs {
            o.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.1}\"",
                escape(&c.id),
                escape(&case.name),
                case.time
            ));
            if case.failures.is_empty() && case.skipped.is_none() {
                o.push_str("/>\n");
                continue;
            }
            o.push_str(">\n");
            if let Some(s) = &case.skipped {
                o.push_str(&format!("      <skipped message=\"{}\"/>\n", escape(s)));
            }
            for (msg, body) in &case.failures {
                o.push_str(&format!(
                    "      <failure message=\"{}\" type=\"kmatrix\">{}</failure>\n",
                    escape(msg),
                    escape(body)
                ));
            }
            o.push_str("    </testcase>\n");
        }
        o.push_str("  </testsuite>\n");
    }
    o.push_str("</testsuites>\n");
    o
}
