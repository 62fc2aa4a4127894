//! Judging: from the facts a cell's run collected to its verdict, and across cells and
//! runs (baseline, known issues, lock graph, compare).

pub mod attribute;
pub mod baseline;
pub mod cell;
pub mod compare;
pub mod decide;
pub mod evidence;
pub mod factors;
pub mod holders;
pub mod introduced;
pub mod lockgraph;
pub mod lockgraph_noise;
pub mod perf;
pub mod repeats;

pub use attribute::{attribute, Expected};
pub use baseline::mark_baseline;
pub use decide::decide;
pub use evidence::{check_evidence, detectors, KernelFacts};
pub use repeats::combine_repeats;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::vmstat::{parse_vmstat, vmstat_delta};
    use crate::record::finding::{Finding, Kind};
    use crate::record::plan::{Arch, Expectation};
    use crate::record::result::*;
    use crate::record::verdict::Verdict;
    use attribute::comm;
    use std::collections::BTreeMap;

    fn test(name: &str, ktap: &str, status: i32) -> TestResult {
        TestResult {
            ktap: crate::parse::ktap::parse(ktap),
            seconds: 1.0,
            ..TestResult::new(name, TestOutcome::Exited { status })
        }
    }
    fn finding(kind: Kind, title: &str) -> Finding {
        Finding {
            kind,
            title: title.into(),
            line: 1,
            ..Default::default()
        }
    }
    fn during(mut f: Finding, test: &str, line: usize) -> Finding {
        f.during = Some(test.into());
        f.line = line;
        f
    }
    const OK: &str = "TAP version 13\n1..1\nok 1 a\n";

    fn plain(tests: &[TestResult], findings: &[Finding]) -> Verdict {
        decide(tests, findings, &[]).0
    }

    #[test]
    fn pass_needs_complete_ktap_and_no_reports() {
        assert_eq!(plain(&[test("t", OK, 0)], &[]), Verdict::Pass);
        assert_eq!(
            plain(&[test("t", "TAP version 13\n1..2\nok 1 a\n", 0)], &[]),
            Verdict::Fail
        );
        assert_eq!(
            plain(&[test("t", "TAP version 13\n1..1\nnot ok 1 a\n", 1)], &[]),
            Verdict::Fail
        );
    }

    #[test]
    fn a_kernel_report_fails_a_cell_whose_tests_passed() {
        let f = [finding(
            Kind::Lockdep,
            "possible deadlock in vma_start_read_unlocked",
        )];
        let (v, why) = decide(&[test("t", OK, 0)], &f, &[]);
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.unwrap(), "possible deadlock in vma_start_read_unlocked");
    }

    #[test]
    fn hung_task_or_overrun_is_hang() {
        let f = [finding(Kind::HungTask, "INFO: task hung in x")];
        assert_eq!(plain(&[test("t", OK, 0)], &f), Verdict::Hang);
        let t = TestResult::new(
            "t",
            TestOutcome::TimedOut {
                message: "overran".into(),
            },
        );
        assert_eq!(plain(&[t], &[]), Verdict::Hang);
    }

    #[test]
    fn a_guest_that_stops_answering_ssh_is_hang_but_a_real_report_wins() {
        let t = TestResult::new(
            "drill",
            TestOutcome::Unresponsive {
                message: "the guest stopped answering SSH".into(),
            },
        );
        let (v, why) = decide(std::slice::from_ref(&t), &[], &[]);
        assert_eq!(v, Verdict::Hang);
        assert_eq!(why.unwrap(), "the guest stopped answering SSH during drill");
        let f = [finding(Kind::Bug, "kernel BUG in x")];
        assert_eq!(plain(&[t], &f), Verdict::Fail);
    }

    fn expect(kind: Kind, title: Option<&str>) -> Expected {
        Expected::of_test(
            "vma_probe",
            &Expectation {
                kind,
                title: title.map(str::to_string),
            },
        )
    }

    #[test]
    fn vmstat_and_baseline() {
        let v = parse_vmstat("vma_lock_success 120\nvma_lock_abort 3\nbogus\n");
        assert_eq!(v["vma_lock_success"], 120);
        assert_eq!(v.len(), 2);
        let after = parse_vmstat("vma_lock_success 150\nvma_lock_abort 1\n");
        let d = vmstat_delta(&v, &after);
        assert_eq!((d["vma_lock_success"], d["vma_lock_abort"]), (30, 0));
        let cell = |ps: &str, titles: &[&str]| {
            let mut c = CellResult::new(
                &crate::record::plan::tests::cell(Arch::X86_64, "pvl-on", ps),
                "/tmp".into(),
            );
            c.findings = titles.iter().map(|t| finding(Kind::Warning, t)).collect();
            c
        };
        let mut cells = vec![
            cell("base", &["WARNING in foo"]),
            cell("v2", &["WARNING in foo", "WARNING in bar"]),
        ];
        mark_baseline(&mut cells, "base");
        assert_eq!(cells[1].in_baseline, ["WARNING in foo"]);
        assert!(cells[0].in_baseline.is_empty());
    }

    #[test]
    fn repeats_keep_the_worst_verdict_and_count_findings_per_boot() {
        let mk = |v: Verdict, titles: &[&str]| {
            let mut c = CellResult::new(
                &crate::record::plan::tests::cell(Arch::X86_64, "pvl-on", "v2"),
                "/tmp".into(),
            );
            c.verdict = v;
            c.reason = (v != Verdict::Pass).then(|| "oops".to_string());
            c.findings = titles.iter().map(|t| finding(Kind::NullDeref, t)).collect();
            c
        };
        let mut into = mk(Verdict::InfraError, &[]);
        let mut failed = mk(Verdict::Fail, &["BUG in a", "BUG in a"]);
        failed.boot_lines = vec![1, 300];
        failed.dir = "/tmp/repeat-2".into();
        let worst = combine_repeats(
            &mut into,
            vec![
                mk(Verdict::Pass, &[]),
                mk(Verdict::Fail, &["BUG in a", "BUG in b"]),
                failed,
            ],
        );
        assert_eq!(
            worst.as_deref(),
            Some(std::path::Path::new("/tmp/repeat-2"))
        );
        // It booted: attribution across the matrix counts it.
        assert_eq!(into.boot_lines, [1, 300]);
        assert_eq!(into.verdict, Verdict::Fail);
        assert_eq!(into.repeats, 3);
        assert_eq!(into.reason.as_deref(), Some("oops (2/3 boots)"));
        assert_eq!(into.finding_rates["BUG in a"], 2);
        assert_eq!(into.finding_rates["BUG in b"], 1);
        assert_eq!(into.findings.len(), 2);
    }

    fn probe_run(start: usize) -> Vec<TestResult> {
        let mut a = test("faults_vs_writers", OK, 0);
        a.console_line = Some(100);
        let mut p = test("vma_probe", OK, 0);
        p.console_line = Some(start);
        vec![a, p]
    }

    #[test]
    fn controls_that_fire_inside_their_test_are_expected_and_the_cell_passes() {
        let mut findings = vec![
            during(
                finding(Kind::Lockdep, "possible deadlock in vma_probe_write"),
                "vma_probe",
                510,
            ),
            during(
                finding(Kind::HungTask, "INFO: task hung in vma_start_write"),
                "vma_probe",
                700,
            ),
        ];
        let exp = [expect(Kind::Lockdep, None), expect(Kind::HungTask, None)];
        let tests = probe_run(500);
        let controls = attribute(&mut findings, &exp, &tests, &[1]);
        assert!(findings
            .iter()
            .all(|f| f.expected_by.as_deref() == Some("vma_probe")));
        assert!(controls.iter().all(|c| c.fired()));
        assert_eq!(decide(&tests, &findings, &controls).0, Verdict::Pass);
    }

    #[test]
    fn a_real_report_in_another_test_is_never_hidden_by_a_control() {
        // Issue #15: a lock inversion lockdep reports during faults_vs_writers, in a cell
        // whose vma_probe expects a lockdep report. Today's code called it "expected".
        let mut findings = vec![during(
            finding(Kind::Lockdep, "possible deadlock in do_madvise"),
            "faults_vs_writers",
            180,
        )];
        let exp = [expect(Kind::Lockdep, None)];
        let tests = probe_run(500);
        let controls = attribute(&mut findings, &exp, &tests, &[1]);
        assert_eq!(findings[0].expected_by, None);
        // lockdep was off by the time the probe ran: its silence is not judged.
        let ControlState::NotJudged { why } = &controls[0].state else {
            panic!("{:?}", controls[0].state)
        };
        assert!(
            why.contains("possible deadlock in do_madvise") && why.contains("180"),
            "{why}"
        );
        let (v, why) = decide(&tests, &findings, &controls);
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.unwrap(), "possible deadlock in do_madvise");
    }

    #[test]
    fn a_report_outside_any_test_or_naming_another_task_is_real() {
        let exp = [expect(Kind::HungTask, None)];
        let mut outside = vec![finding(Kind::HungTask, "INFO: task hung in x")];
        attribute(&mut outside, &exp, &probe_run(500), &[1]);
        assert_eq!(outside[0].expected_by, None);
        let mut other_task = vec![during(
            finding(Kind::HungTask, "INFO: task hung in y"),
            "vma_probe",
            600,
        )];
        other_task[0].task = Some("kworker/0:1".into());
        attribute(&mut other_task, &exp, &probe_run(500), &[1]);
        assert_eq!(other_task[0].expected_by, None, "not the test's task");
        let mut own = vec![during(
            finding(Kind::HungTask, "INFO: task hung in y"),
            "vma_probe",
            600,
        )];
        own[0].task = Some("vma_probe".into());
        attribute(&mut own, &exp, &probe_run(500), &[1]);
        assert_eq!(own[0].expected_by.as_deref(), Some("vma_probe"));
        // comm is 15 bytes: a long test name matches its truncated task name.
        assert_eq!(comm("tcp_zerocopy_vs_writers"), "tcp_zerocopy_vs");
    }

    #[test]
    fn a_lockdep_report_in_an_earlier_boot_does_not_excuse_a_silent_control() {
        let mut findings = vec![during(
            finding(Kind::Lockdep, "possible deadlock in a"),
            "faults_vs_writers",
            180,
        )];
        let exp = [expect(Kind::Lockdep, None)];
        // The probe ran in boot 2 (from line 400), where lockdep started afresh.
        let controls = attribute(&mut findings, &exp, &probe_run(500), &[1, 400]);
        assert_eq!(controls[0].state, ControlState::Silent);
    }

    #[test]
    fn a_silent_control_is_inconclusive_but_a_real_bug_still_fails() {
        let exp = [expect(Kind::Lockdep, Some("possible deadlock"))];
        let tests = probe_run(500);
        let controls = attribute(&mut [], &exp, &tests, &[1]);
        let (v, why) = decide(&tests, &[], &controls);
        assert_eq!(v, Verdict::Inconclusive);
        assert!(why.unwrap().contains("stayed silent"));
        let mut oops = vec![during(
            finding(
                Kind::NullDeref,
                "BUG: unable to handle kernel NULL pointer dereference in vma_start_read_unlocked",
            ),
            "vma_probe",
            520,
        )];
        let controls = attribute(&mut oops, &exp, &tests, &[1]);
        assert_eq!(oops[0].expected_by, None);
        assert_eq!(decide(&tests, &oops, &controls).0, Verdict::Fail);
    }

    #[test]
    fn liveness_reports_are_controls_told_by_their_tag_and_prove_the_detectors() {
        let mut live = test(LIVENESS, OK, 0);
        live.console_line = Some(900);
        let mut tests = probe_run(500);
        tests.push(live);
        let tagged = |kind, title: &str, task: &str| {
            let mut f = during(finding(kind, title), LIVENESS, 910);
            f.task = Some(task.into());
            f.report = format!("{title}\n lock(kmatrix_liveness_a);");
            f
        };
        let exp = [
            Expected::liveness(Kind::Lockdep),
            Expected::liveness(Kind::HungTask),
        ];
        let mut findings = vec![
            tagged(
                Kind::Lockdep,
                "possible deadlock in kmatrix_liveness_lockdep",
                "insmod",
            ),
            tagged(
                Kind::HungTask,
                "INFO: task hung in kmatrix_liveness_hung",
                "kmatrix_livenes",
            ),
        ];
        let controls = attribute(&mut findings, &exp, &tests, &[1]);
        assert!(findings
            .iter()
            .all(|f| f.expected_by.as_deref() == Some(LIVENESS)));
        let facts = KernelFacts {
            lockdep: true,
            hung_task: true,
            ..Default::default()
        };
        let d = detectors(&controls, facts, None);
        assert_eq!(
            (d.lockdep.clone(), d.hung_task.clone()),
            (Detector::Alive, Detector::Alive)
        );
        assert_eq!(d.summary(), "lockdep alive, hung-task alive");
        assert_eq!(decide(&tests, &findings, &controls).0, Verdict::Pass);
        // An untagged report during the step is a real one.
        let mut other = vec![during(
            finding(Kind::Lockdep, "possible deadlock in x"),
            LIVENESS,
            910,
        )];
        let controls = attribute(&mut other, &exp, &tests, &[1]);
        assert_eq!(other[0].expected_by, None);
        assert_eq!(decide(&tests, &other, &controls).0, Verdict::Fail);
    }

    #[test]
    fn a_dead_detector_makes_a_clean_cell_inconclusive_and_an_unbuilt_one_is_said() {
        let mut live = test(LIVENESS, OK, 0);
        live.console_line = Some(900);
        let tests = vec![test("faults_vs_writers", OK, 0), live];
        let exp = [
            Expected::liveness(Kind::Lockdep),
            Expected::liveness(Kind::HungTask),
        ];
        let controls = attribute(&mut [], &exp, &tests, &[1]);
        let (v, why) = decide(&tests, &[], &controls);
        assert_eq!(v, Verdict::Inconclusive);
        assert!(why.unwrap().starts_with("lockdep was not proven alive"));
        let d = detectors(&[], KernelFacts::default(), None);
        assert_eq!(d.summary(), "lockdep not built, hung-task not built");
    }

    #[test]
    fn a_stress_test_that_missed_the_per_vma_lock_path_fails() {
        let facts = KernelFacts {
            per_vma_lock: true,
            per_vma_lock_stats: true,
            ..Default::default()
        };
        let mut t = test("faults_vs_writers", OK, 0);
        t.overlap = Some(Overlap::default());
        t.vmstat_delta.insert("vma_lock_success".into(), 0);
        let mut module = test("vma_module", OK, 0);
        module.vmstat_delta.insert("vma_lock_success".into(), 0);
        let mut tests = vec![t, module];
        assert_eq!(check_evidence(&mut tests, facts, &BTreeMap::new()), None);
        assert!(
            !tests[0].passed() && tests[1].passed(),
            "only stress tests need the path"
        );
        assert!(tests[0]
            .failure()
            .unwrap()
            .contains("per-VMA lock path not exercised"));
        // pvl-off: the counters must be absent.
        let off = KernelFacts::default();
        let before = parse_vmstat("vma_lock_success 3\n");
        assert!(check_evidence(&mut [], off, &before)
            .unwrap()
            .contains("without CONFIG_PER_VMA_LOCK"));
        let f = KernelFacts::from_config("CONFIG_PER_VMA_LOCK=y\nCONFIG_PER_VMA_LOCK_STATS=y\nCONFIG_PROVE_LOCKING=y\n# CONFIG_DETECT_HUNG_TASK is not set\n");
        assert!(f.per_vma_lock && f.per_vma_lock_stats && f.lockdep && !f.hung_task);
    }
}
