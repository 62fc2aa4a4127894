//! The matrix loop: every cell of the plan in order, reused cells (`--resume`) as they
//! were; each finished cell judged against its base cell.

use crate::engine::run::CellRun;
use crate::engine::shared::{Overrides, RunOptions, Shared};
use crate::host::cache::Cache;
use crate::host::runfile;
use crate::record::events::{Event, Sender};
use crate::record::plan::{Cell, Plan};
use crate::record::result::CellResult;
use crate::record::schedule::Scheduler;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::watch;

/// The most kmatrix reads of a lockdep file or a patch when judging against base.
const LOCKDEP_FILE_CAP: u64 = 32 << 20;
/// How long the comparison with the base cell may take.
const AGAINST_BASE_DEADLINE: Duration = Duration::from_secs(120);

pub struct Engine {
    pub(super) shared: Shared,
}

impl Engine {
    pub fn new(
        plan: Plan,
        cache: Cache,
        opts: RunOptions,
        run_dir: PathBuf,
        tx: Sender,
        cancel: watch::Receiver<bool>,
    ) -> Engine {
        Engine {
            shared: Shared {
                plan,
                cache,
                opts,
                run_dir,
                tx,
                cancel,
                overrides: Overrides::default(),
                tree: tokio::sync::OnceCell::new(),
                images: tokio::sync::Mutex::new(HashMap::new()),
                selftests: tokio::sync::Mutex::new(HashMap::new()),
                kvm_failed: std::sync::Mutex::new(None),
                current: std::sync::Mutex::new(HashMap::new()),
                kernels: std::sync::Mutex::new(Vec::new()),
                kernel_notify: tokio::sync::Notify::new(),
            },
        }
    }

    /// Use these programs instead of QEMU / virtiofsd (tests).
    pub fn with_overrides(mut self, o: Overrides) -> Engine {
        self.shared.overrides = o;
        self
    }

    /// Every cell of the plan, `--jobs` of them at a time (`record::schedule`); reused
    /// cells (`--resume`) are reported as they were. Ends with `RunFinished`, also when
    /// interrupted.
    pub async fn run(self) {
        let sh = &self.shared;
        sh.emit(Event::RunStarted {
            cells: sh.plan.cells.len(),
            run_dir: sh.run_dir.clone(),
            order: sh.plan.cells.iter().map(|c| c.id()).collect(),
            jobs: sh.opts.jobs.max(1),
        });
        schedule(sh, |cell| Box::pin(CellRun::new(sh, cell).run())).await;
        sh.emit(Event::RunFinished);
    }

    /// `kmatrix boot`: build (or reuse) a cell's kernel, boot it, then run `command` over
    /// SSH, or hand the terminal to an interactive `ssh` session; the VM is stopped after.
    /// Returns the command's (or ssh's) exit status.
    pub async fn boot_shell(
        self,
        cell: &crate::record::plan::Cell,
        command: Option<String>,
    ) -> Result<i32, String> {
        crate::engine::shell::boot_shell(&self.shared, cell, command).await
    }
}

/// A future the scheduler drives among others.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A cell's run as the scheduler drives it.
pub(super) type CellFuture<'a> = Boxed<'a, CellResult>;

/// The cells of the plan under the schedule's rule: each started when a job and its slot
/// are free, each finished patched cell judged against its base cell once that one is
/// finished too (the wait holds no job), `CellFinished` as each is done. `run_cell` is a
/// cell's whole run (tests put a fake one in).
pub(super) async fn schedule<'a, F>(sh: &'a Shared, run_cell: F)
where
    F: Fn(&'a Cell) -> CellFuture<'a>,
{
    let cells = &sh.plan.cells;
    let slots: Vec<(crate::record::plan::Arch, &str)> =
        cells.iter().map(|c| (c.arch, c.config.as_str())).collect();
    let work: Vec<f64> = cells
        .iter()
        .map(|c| crate::record::plan::cost(c, &sh.plan.tests) as f64)
        .collect();
    let mut sched = Scheduler::new(&slots, &work, sh.opts.jobs.max(1));
    let mut finished: Vec<CellResult> = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        if let Some(done) = sh.opts.resume.iter().find(|r| r.id == cell.id()) {
            sh.emit(Event::CellStarted { id: cell.id() });
            sh.emit(Event::Note {
                id: cell.id(),
                message: format!("reused from {}", done.dir.display()),
            });
            finished.push(done.clone());
            sh.emit(Event::CellFinished {
                result: Box::new(done.clone()),
            });
            sched.skip(i);
        }
    }
    let index = |id: &str| cells.iter().position(|c| c.id() == id);
    let mut running: Vec<Boxed<'a, (usize, CellResult)>> = Vec::new();
    // Patched cells finished before their base cell.
    let mut parked: Vec<(usize, CellResult)> = Vec::new();
    let mut judging: Vec<Boxed<'a, CellResult>> = Vec::new();
    let mut cancel = sh.cancel.clone();
    // What each cell is expected to cost, for the ETA; found while the first cells start.
    let mut probe = Box::pin(crate::engine::expect::probe(sh));
    let mut probed = false;
    loop {
        if sh.cancelled() {
            sched.drain();
        }
        while let Some(i) = sched.start_next() {
            let cell = &cells[i];
            sh.emit(Event::CellStarted { id: cell.id() });
            let run = run_cell(cell);
            running.push(Box::pin(async move { (i, run.await) }));
        }
        if running.is_empty() && judging.is_empty() {
            // Nothing runs, so nothing parked can still get its base: judge alone.
            for (_, r) in parked.drain(..) {
                sh.emit(Event::CellFinished {
                    result: Box::new(r),
                });
            }
            if sched.all_done() {
                break;
            }
            // Unreachable by the rule (a waiting cell always has a runnable one before
            // it); never spin.
            sched.drain();
            continue;
        }
        tokio::select! {
            (i, result) = next_of(&mut running) => {
                sched.finished(i);
                let cell = &cells[i];
                match base_of(sh, cell) {
                    Some(b) => match finished.iter().find(|f| f.id == cells[b].id()) {
                        Some(base) => {
                            let base = Some(base.clone());
                            judging.push(Box::pin(judged(sh, cell, result, base)));
                        }
                        // Its base is still to finish in this run: judged when it has.
                        None => parked.push((b, result)),
                    },
                    None => {
                        finished.push(result.clone());
                        sh.emit(Event::CellFinished { result: Box::new(result) });
                        // A base cell: the cells that waited for it.
                        let id = cell.id();
                        let (ready, wait): (Vec<_>, Vec<_>) =
                            parked.drain(..).partition(|(b, _)| cells[*b].id() == id);
                        parked = wait;
                        for (_, r) in ready {
                            let c = index(&r.id).map(|k| &cells[k]).unwrap_or(cell);
                            judging.push(Box::pin(judged(sh, c, r, finished.last().cloned())));
                        }
                    }
                }
            }
            result = next_of(&mut judging) => {
                finished.push(result.clone());
                sh.emit(Event::CellFinished { result: Box::new(result) });
            }
            ids = sh.kernel_ready() => {
                for id in ids {
                    if let Some(i) = index(&id) {
                        sched.kernel_done(i);
                    }
                }
            }
            expected = &mut probe, if !probed => {
                probed = true;
                for (id, expect) in expected {
                    sh.emit(Event::Expected { id, expect });
                }
            }
            _ = cancel.wait_for(|c| *c), if !sh.cancelled() => {}
        }
    }
}

/// The plan index of the base cell a patched cell is judged against (same arch and
/// config, the baseline patchset), when the plan has one and it is another cell.
fn base_of(sh: &Shared, cell: &Cell) -> Option<usize> {
    let baseline = sh.plan.baseline.as_ref()?;
    if &cell.patchset == baseline {
        return None;
    }
    sh.plan
        .cells
        .iter()
        .position(|c| &c.patchset == baseline && c.arch == cell.arch && c.config == cell.config)
}

/// A patched cell judged against its finished base cell.
async fn judged(
    sh: &Shared,
    cell: &Cell,
    mut result: CellResult,
    base: Option<CellResult>,
) -> CellResult {
    if let Some(base) = base {
        compare_with_base(sh, cell, &mut result, std::slice::from_ref(&base)).await;
    }
    result
}

/// The first of `futs` to finish (removed from them); pending forever when empty, so a
/// `select!` branch on it never fires.
async fn next_of<T>(futs: &mut Vec<Boxed<'_, T>>) -> T {
    std::future::poll_fn(|cx| {
        for k in 0..futs.len() {
            if let Poll::Ready(v) = futs[k].as_mut().poll(cx) {
                drop(futs.swap_remove(k));
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    })
    .await
}

/// Judge a patched cell against its base cell (same arch and config, run earlier in
/// this run or reused), with both cells' lockdep files when they have them.
async fn compare_with_base(
    sh: &Shared,
    cell: &crate::record::plan::Cell,
    result: &mut CellResult,
    finished: &[CellResult],
) {
    let Some(baseline) = &sh.plan.baseline else {
        return;
    };
    if &cell.patchset == baseline {
        return;
    }
    let Some(base) = finished
        .iter()
        .find(|c| &c.patchset == baseline && c.arch == cell.arch && c.config == cell.config)
    else {
        return;
    };
    // What the guests wrote is bounded (lockdep's own tables are far smaller).
    let read = |d: &std::path::Path, f: &str| runfile::read_string(d, f, LOCKDEP_FILE_CAP).ok();
    let patches: Vec<String> = cell
        .series(&sh.plan)
        .filter_map(|p| runfile::read_given_string(p, LOCKDEP_FILE_CAP, "a patch").ok())
        .collect();
    use crate::judge::lockgraph_noise as noise;
    let (b, p) = (
        noise::boot_files(&base.dir, LOCKDEP_FILE_CAP),
        noise::boot_files(&result.dir, LOCKDEP_FILE_CAP),
    );
    let chains = read(&result.dir, "lockdep_chains.txt").unwrap_or_default();
    let noise_file = base
        .kernel_key
        .as_deref()
        .and_then(|k| noise::path(&sh.cache.root, k).map(|f| (k.to_string(), f)));
    let learnt_before = noise_file
        .as_ref()
        .map(|(_, f)| noise::load(f))
        .unwrap_or_default();
    let (mut judged, base) = (result.clone(), base.clone());
    // Off the runtime and with a deadline: the files are the guests', and the engine has
    // other cells to drive.
    let done = tokio::time::timeout(
        AGAINST_BASE_DEADLINE,
        tokio::task::spawn_blocking(move || {
            let files =
                (!b.is_empty() && !p.is_empty()).then(|| crate::judge::baseline::LockFiles {
                    base: &b,
                    cell: &p,
                    chains: &chains,
                    patches: &patches,
                    noise: &learnt_before,
                });
            let learnt = crate::judge::baseline::against_base(&mut judged, &base, files);
            if let (Some((key, f)), false) = (&noise_file, learnt.is_empty()) {
                if let Err(e) = noise::add(f, key, &learnt) {
                    judged.notes.push(format!(
                        "the lock graph noise learnt here was not kept ({}: {e})",
                        f.display()
                    ));
                }
            }
            judged
        }),
    )
    .await;
    match done {
        Ok(Ok(judged)) => *result = judged,
        Ok(Err(e)) => result
            .notes
            .push(format!("the comparison with the base cell failed: {e}")),
        Err(_) => result.notes.push(format!(
            "the comparison with the base cell took more than {}s; skipped",
            AGAINST_BASE_DEADLINE.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fakes::{all_dead, dummies, script, FAKE_VIRTIOFSD};
    use crate::engine::shared::Overrides;
    use crate::record::plan::{AccelChoice, Arch, Limits, SourceSpec, VmSettings};
    use crate::record::verdict::Verdict;
    use crate::report::sink::{ResultsJson, RunState, Sink};
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// Each cell's guest, by the folder of its (dummy) kernel: QEMU that fails at once,
    /// fails after a second, or never answers (the 3 s boot timeout).
    const FAKE_QEMU: &str = "case \"$*\" in\n\
        *-kernel*/slow/*) sleep 1; echo 'qemu: slow guest gave up' >&2; exit 1;;\n\
        *-kernel*/silent/*) exec sleep 600;;\n\
        *) echo 'qemu: could not load kernel image' >&2; exit 1;;\n\
        esac";

    /// Two slots of a base and two patched cells each: (config, patchset, build ms, guest).
    const CELLS: [(&str, &str, u64, &str); 6] = [
        ("c1", "base", 1500, "silent"),
        ("c1", "v2", 100, "fast"),
        ("c1", "v3", 100, "slow"),
        ("c2", "base", 100, "slow"),
        ("c2", "v2", 100, "fast"),
        ("c2", "v3", 300, "fast"),
    ];

    fn plan(dir: &Path) -> Plan {
        Plan {
            spec_path: dir.join("kmatrix.yaml"),
            spec_hash: "test".into(),
            root: dir.into(),
            source: SourceSpec::Path(dir.into()),
            cells: CELLS
                .iter()
                .map(|(c, p, _, _)| crate::record::plan::tests::cell(Arch::X86_64, c, p))
                .collect(),
            tests: vec![],
            vm: VmSettings {
                accel: AccelChoice::Tcg,
                memory_mib: 256,
                cpus: 1,
                numa_nodes: 1,
                boot_timeout: Duration::from_secs(3),
                hung_task_timeout: Duration::from_secs(10),
            },
            limits: Limits::default(),
            harness: vec![],
            selftests: vec![],
            selftest_timeout: Duration::from_secs(60),
            baseline: Some("base".into()),
            known_issues: None,
            jobs: 1,
            subjects: Default::default(),
            ranges: vec![],
        }
    }

    /// What a fake run saw: each cell's build window (start, end, slot) and the order of
    /// `CellFinished`.
    #[derive(Default)]
    struct Seen {
        builds: Vec<(String, Instant, Instant)>,
        finished: Vec<String>,
    }

    struct Order(Arc<Mutex<Seen>>);
    impl Sink for Order {
        fn event(&mut self, e: &Event, _: &RunState) -> std::io::Result<()> {
            if let Event::CellFinished { result } = e {
                self.0.lock().unwrap().finished.push(result.id.to_string());
            }
            Ok(())
        }
    }

    /// The engine's scheduler over the cells with a fake build (a sleep) and the fake
    /// QEMU; results.json written by the real sink. Returns the run folder and what was
    /// seen.
    async fn fake_run(
        dir: &Path,
        jobs: usize,
        cancel_after: Option<Duration>,
    ) -> (PathBuf, Arc<Mutex<Seen>>, Duration) {
        let run_dir = dir.join(format!("run-{jobs}-{cancel_after:?}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (ctx, crx) = watch::channel(false);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = RunState {
            meta: crate::report::RunMeta {
                spec: dir.join("kmatrix.yaml"),
                spec_hash: "test".into(),
                shard: None,
            },
            run_dir: run_dir.clone(),
            cells: vec![],
            order: vec![],
        };
        let sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(ResultsJson::default()),
            Box::new(Order(seen.clone())),
        ];
        let reporter = tokio::spawn(crate::report::reporter(rx, state, sinks));
        let e = Engine::new(
            plan(dir),
            Cache {
                root: dir.join("cache"),
            },
            RunOptions {
                jobs,
                ..Default::default()
            },
            run_dir.clone(),
            tx,
            crx,
        )
        .with_overrides(Overrides {
            qemu: Some(script(dir, "qemu", FAKE_QEMU)),
            virtiofsd: Some(script(dir, "virtiofsd", FAKE_VIRTIOFSD)),
        });
        let sh = &e.shared;
        sh.emit(Event::RunStarted {
            cells: sh.plan.cells.len(),
            run_dir: run_dir.clone(),
            order: sh.plan.cells.iter().map(|c| c.id()).collect(),
            jobs,
        });
        let start = Instant::now();
        let seen2 = seen.clone();
        if let Some(after) = cancel_after {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = ctx.send(true);
            });
        }
        schedule(sh, |cell| {
            let seen = seen2.clone();
            Box::pin(async move {
                // As `CellRun::run`: a cell stops at Ctrl-C, or never starts after it.
                let mut cancel = sh.cancel.clone();
                let mut r = CellResult::new(cell, sh.run_dir.join(cell.rel_dir()));
                r.verdict = Verdict::Interrupted;
                if sh.cancelled() {
                    return r;
                }
                tokio::select! {
                    r = fake_cell(sh, cell, dir, seen) => r,
                    _ = cancel.wait_for(|c| *c) => r,
                }
            })
        })
        .await;
        let took = start.elapsed();
        sh.emit(Event::RunFinished);
        drop(ctx);
        drop(e);
        let (cells, err) = reporter.await.unwrap();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(cells.len(), CELLS.len());
        (run_dir, seen, took)
    }

    /// A cell with a fake build (a sleep) and the fake QEMU.
    async fn fake_cell(sh: &Shared, cell: &Cell, dir: &Path, seen: Arc<Mutex<Seen>>) -> CellResult {
        let (_, _, ms, guest) = CELLS
            .iter()
            .find(|(c, p, _, _)| cell.config == *c && cell.patchset == *p)
            .unwrap();
        let mut run = CellRun::new(sh, cell);
        std::fs::create_dir_all(&run.dir).unwrap();
        let began = Instant::now();
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        seen.lock()
            .unwrap()
            .builds
            .push((cell.config.clone(), began, Instant::now()));
        sh.kernel_done(cell.id());
        let kdir = dir.join(guest).join(cell.id().replace('/', "-"));
        std::fs::create_dir_all(&kdir).unwrap();
        if let Err(stop) = run.boot_and_test(&dummies(&kdir)).await {
            run.result.verdict = stop.verdict;
            run.result.reason = Some(stop.reason);
            run.result.details = stop.details;
        }
        run.result
    }

    /// results.json without what differs from run to run: times, folders.
    fn verdicts(run_dir: &Path) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
        let text = text.replace(&run_dir.display().to_string(), "RUN");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                serde_json::json!([
                    c["id"],
                    c["verdict"],
                    c["reason"],
                    c["details"],
                    c["findings"],
                    c["notes"]
                ])
            })
            .collect()
    }

    #[tokio::test]
    async fn three_jobs_give_the_same_results_json_as_one_in_the_plans_order() {
        let d = tempfile::tempdir().unwrap();
        let (one, seen1, t1) = fake_run(d.path(), 1, None).await;
        let (three, seen3, t3) = fake_run(d.path(), 3, None).await;
        let (a, b) = (verdicts(&one), verdicts(&three));
        assert_eq!(a, b);
        // The plan's order, and the guests' own outcomes.
        let ids: Vec<String> = a
            .iter()
            .map(|c| c[0].as_str().unwrap().to_string())
            .collect();
        let plan_ids: Vec<String> = plan(d.path()).cells.iter().map(|c| c.id().0).collect();
        assert_eq!(ids, plan_ids);
        assert_eq!(a[0][1], serde_json::json!(Verdict::BootFail));
        assert!(
            a[0][2].as_str().unwrap().contains("SSH did not answer"),
            "{:?}",
            a[0]
        );
        assert!(
            a[2][3].to_string().contains("slow guest gave up"),
            "{:?}",
            a[2]
        );
        assert!(a[1][3].to_string().contains("could not load kernel image"));
        // One job: finished in the plan's order. Three: in another order (the fast
        // cells first), so the order above is the sinks' doing.
        assert_eq!(seen1.lock().unwrap().finished, plan_ids);
        let order3 = seen3.lock().unwrap().finished.clone();
        assert_ne!(order3, plan_ids);
        // A patched cell is reported (judged against its base) only after its base.
        for (k, id) in order3.iter().enumerate() {
            let base = id.rsplit_once('/').unwrap().0.to_string() + "/base";
            let b = order3.iter().position(|x| *x == base).unwrap();
            assert!(b <= k, "{id} reported before {base}: {order3:?}");
        }
        // Never two builds in one slot, and a slot's builds in the plan's order.
        let builds = &seen3.lock().unwrap().builds;
        for (i, (slot, s1, e1)) in builds.iter().enumerate() {
            for (slot2, s2, e2) in &builds[i + 1..] {
                if slot == slot2 {
                    assert!(e1 <= s2 || e2 <= s1, "two builds in slot {slot} at once");
                }
            }
        }
        let c1: Vec<&Instant> = builds
            .iter()
            .filter(|(s, _, _)| s == "c1")
            .map(|(_, b, _)| b)
            .collect();
        assert!(c1.windows(2).all(|w| w[0] <= w[1]));
        // Side by side, so sooner: the silent guest's 3 s overlap the other slot.
        assert!(t3 < t1, "3 jobs {t3:?} vs 1 job {t1:?}");
        all_dead(d.path());
    }

    #[tokio::test]
    async fn ctrl_c_stops_every_running_and_waiting_cell_at_once() {
        let d = tempfile::tempdir().unwrap();
        let (run, _, took) = fake_run(d.path(), 3, Some(Duration::from_millis(700))).await;
        assert!(took < Duration::from_secs(3), "{took:?}");
        let cells = verdicts(&run);
        assert_eq!(cells.len(), CELLS.len(), "every cell reported");
        let interrupted = cells
            .iter()
            .filter(|c| c[1] == serde_json::json!(Verdict::Interrupted))
            .count();
        // c1/base (a 1.5 s build) and the cells after it in its slot never got further.
        assert!(interrupted >= 3, "{cells:?}");
        all_dead(d.path());
    }
}
