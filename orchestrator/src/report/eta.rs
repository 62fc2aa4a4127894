//! The run's time left, from the event stream: each cell's expectation (`Expected`), where
//! each cell is (started, past its kernel, finished), the rates this run measured (seconds
//! per object of its builds, guest time against the model), and the schedule the engine
//! follows (`record::schedule::simulate` with the run's `--jobs`). Before the first build
//! of the run has finished the rate of a build is a range (the priors, or the running
//! build's rate so far widened), and so is the time left.

use crate::record::eta::{self, CellExpect, GuestFrom, KernelExpect, Rates};
use crate::record::events::{BuildProgress, Event};
use crate::record::plan::Arch;
use crate::record::schedule::{self, Left, Scheduler, State};
use std::time::Instant;

/// Where one cell is, as the events said.
#[derive(Debug, Clone, Default)]
struct Seen {
    expect: Option<CellExpect>,
    started: Option<Instant>,
    kernel_done: Option<Instant>,
    finished: bool,
    /// The last progress of its build, and when it came.
    progress: Option<(BuildProgress, Instant)>,
}

/// The time left, in seconds: one figure once the rates are measured, else a range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// `~1h05m`, or `~40m-1h25m` while it is a range.
    pub fn text(&self) -> String {
        let h = |s: f64| crate::record::fmt::human(crate::record::fmt::duration(s));
        if self.high <= self.low * 1.1 + 30.0 {
            format!("~{}", h((self.low + self.high) / 2.0))
        } else {
            format!("~{}-{}", h(self.low), h(self.high))
        }
    }
}

#[derive(Debug, Default)]
pub struct Tracker {
    jobs: usize,
    cores: usize,
    ids: Vec<String>,
    arch: Vec<Arch>,
    slot: Vec<String>,
    cells: Vec<Seen>,
    /// Finished builds of this run: (objects compiled, seconds in make's main build,
    /// seconds of the whole kernel step).
    builds: Vec<(f64, f64, f64)>,
    /// Finished guests whose time was modelled: (model seconds, real seconds).
    guests: Vec<(f64, f64)>,
}

impl Tracker {
    pub fn new(cores: usize) -> Tracker {
        Tracker {
            cores,
            ..Tracker::default()
        }
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.ids.iter().position(|c| c == id)
    }

    /// Follow one event; `now` is when it arrived.
    pub fn event(&mut self, e: &Event, now: Instant) {
        match e {
            Event::RunStarted { order, jobs, .. } => {
                self.jobs = (*jobs).max(1);
                self.ids = order.iter().map(|c| c.to_string()).collect();
                self.arch = self
                    .ids
                    .iter()
                    .map(|id| {
                        if id.starts_with("arm64/") {
                            Arch::Arm64
                        } else {
                            Arch::X86_64
                        }
                    })
                    .collect();
                // arch/config: the build slot.
                self.slot = self
                    .ids
                    .iter()
                    .map(|id| {
                        id.rsplit_once('/')
                            .map_or(id.as_str(), |(s, _)| s)
                            .to_string()
                    })
                    .collect();
                self.cells = vec![Seen::default(); self.ids.len()];
            }
            Event::Expected { id, expect } => {
                if let Some(i) = self.index(id) {
                    self.cells[i].expect = Some(*expect);
                }
            }
            Event::CellStarted { id } => {
                if let Some(i) = self.index(id) {
                    self.cells[i].started = Some(now);
                }
            }
            Event::BuildProgress { id, progress } => {
                if let Some(i) = self.index(id) {
                    self.cells[i].progress = Some((*progress, now));
                }
            }
            Event::KernelDone { id } => {
                if let Some(i) = self.index(id) {
                    let c = &mut self.cells[i];
                    c.kernel_done = Some(now);
                    if let (Some((p, _)), Some(start)) = (c.progress, c.started) {
                        // Progress comes every few seconds while make runs: its last
                        // elapsed time is make's, within one interval.
                        let make = p.elapsed.as_secs_f64();
                        let step = now.duration_since(start).as_secs_f64();
                        if p.done > 0 {
                            self.builds.push((p.done as f64, make.min(step), step));
                        }
                    }
                }
            }
            Event::CellFinished { result } => {
                if let Some(i) = self.index(&result.id) {
                    let c = &mut self.cells[i];
                    c.finished = true;
                    if let (Some(k), Some(e)) = (c.kernel_done, c.expect) {
                        if e.guest_from == GuestFrom::Model {
                            let real = now.duration_since(k).as_secs_f64();
                            // A cell stopped in its kernel step (BUILD-FAIL) has no guest.
                            if result
                                .phases
                                .iter()
                                .any(|p| p.phase == crate::record::phase::Phase::Boot)
                            {
                                self.guests.push((e.guest_secs, real));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The rates as a range (fast, slow): measured ones are one value.
    pub fn rates(&self, now: Instant) -> (Rates, Rates) {
        let (mut lo, mut hi) = eta::prior_rates(self.cores);
        if !self.builds.is_empty() {
            let objects: f64 = self.builds.iter().map(|b| b.0).sum();
            let make: f64 = self.builds.iter().map(|b| b.1).sum();
            let fixed: f64 =
                self.builds.iter().map(|b| b.2 - b.1).sum::<f64>() / self.builds.len() as f64;
            lo.per_object = make / objects;
            hi.per_object = lo.per_object;
            lo.build_fixed = fixed.max(0.0);
            hi.build_fixed = lo.build_fixed;
        } else if let Some(live) = self.live_rate(now) {
            // A build under way: its rate so far, widened (its later objects may differ).
            lo.per_object = live * 0.8;
            hi.per_object = live * 1.25;
        }
        if !self.guests.is_empty() {
            let model: f64 = self.guests.iter().map(|g| g.0).sum();
            let real: f64 = self.guests.iter().map(|g| g.1).sum();
            if model > 0.0 {
                lo.guest_factor = real / model;
                hi.guest_factor = lo.guest_factor;
            }
        }
        (lo, hi)
    }

    /// Seconds per object of the builds running now (of those past 50 objects).
    fn live_rate(&self, _now: Instant) -> Option<f64> {
        let (secs, objs) = self
            .cells
            .iter()
            .filter(|c| c.kernel_done.is_none())
            .filter_map(|c| c.progress)
            .filter(|(p, _)| p.done >= 50)
            .fold((0.0, 0.0), |(s, o), (p, _)| {
                (s + p.elapsed.as_secs_f64(), o + p.done as f64)
            });
        (objs > 0.0).then(|| secs / objs)
    }

    /// Seconds left in the run at these rates, None until every cell to run has its
    /// expectation.
    fn left_at(&self, r: &Rates, now: Instant) -> Option<f64> {
        let n = self.ids.len();
        let mut left = vec![Left::default(); n];
        let mut sched = Scheduler::new(&self.slot, &vec![0.0; n], self.jobs);
        for (i, c) in self.cells.iter().enumerate() {
            if c.finished {
                sched.set(i, State::Done);
                continue;
            }
            let e = c.expect?;
            let arch = self.arch[i];
            let kernel = eta::kernel_secs(e.kernel, arch, r);
            let guest = eta::guest_secs(&e, r);
            let since = |t: Option<Instant>| t.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
            left[i] = match (c.started, c.kernel_done) {
                (None, _) => Left {
                    kernel,
                    total: kernel + guest,
                },
                (Some(_), None) => {
                    sched.set(i, State::Building);
                    let k = match (c.progress, e.kernel) {
                        // make's main build: its objects left, then the link.
                        (Some((p, at)), _) if p.total > p.done => {
                            let ran = p.done as f64 + since(Some(at)) / r.per_object;
                            (p.total as f64 - ran).max(0.0) * r.per_object + r.build_fixed / 2.0
                        }
                        (Some(_), _) => r.build_fixed / 2.0,
                        (None, KernelExpect::Cached) => 1.0,
                        (None, _) => (kernel - since(c.started)).max(r.build_fixed / 2.0),
                    };
                    Left {
                        kernel: k,
                        total: k + guest,
                    }
                }
                (Some(_), Some(done)) => {
                    sched.set(i, State::Guest);
                    // A cell past its expected time has a little left, not nothing.
                    let g = (guest - since(Some(done))).max(guest * 0.05).max(2.0);
                    Left {
                        kernel: 0.0,
                        total: g,
                    }
                }
            };
        }
        Some(schedule::simulate(sched, &left).0)
    }

    /// The run's time left, or None until the engine said what the cells cost.
    pub fn left(&self, now: Instant) -> Option<Estimate> {
        let (lo, hi) = self.rates(now);
        let a = self.left_at(&lo, now)?;
        let b = self.left_at(&hi, now)?;
        Some(Estimate {
            low: a.min(b),
            high: a.max(b),
        })
    }

    /// Cells not finished yet.
    pub fn to_go(&self) -> usize {
        self.cells.iter().filter(|c| !c.finished).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::events::TotalFrom;
    use crate::record::plan::CellId;
    use crate::record::result::{CellResult, PhaseStart};
    use std::time::Duration;

    /// A run of `ids` (arch/config/patchset) with `jobs`, its clock at `t0`.
    fn started(ids: &[&str], jobs: usize, t0: Instant) -> Tracker {
        let mut t = Tracker::new(2);
        t.event(
            &Event::RunStarted {
                cells: ids.len(),
                run_dir: "run".into(),
                order: ids.iter().map(|i| CellId(i.to_string())).collect(),
                jobs,
            },
            t0,
        );
        t
    }

    fn at(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    fn expect(t: &mut Tracker, id: &str, kernel: KernelExpect, guest: f64, from: GuestFrom) {
        let e = CellExpect {
            kernel,
            guest_secs: guest,
            guest_from: from,
        };
        t.event(
            &Event::Expected {
                id: CellId(id.into()),
                expect: e,
            },
            Instant::now(),
        );
    }

    fn finished(id: &str, booted: bool) -> Event {
        let (arch, rest) = id.split_once('/').unwrap();
        let (config, patchset) = rest.split_once('/').unwrap();
        let arch = if arch == "arm64" {
            Arch::Arm64
        } else {
            Arch::X86_64
        };
        let mut r = CellResult::new(
            &crate::record::plan::tests::cell(arch, config, patchset),
            "d".into(),
        );
        if booted {
            r.phases.push(PhaseStart {
                phase: crate::record::phase::Phase::Boot,
                detail: String::new(),
                at: 0.0,
            });
        }
        Event::CellFinished {
            result: Box::new(r),
        }
    }

    fn id(s: &str) -> CellId {
        CellId(s.into())
    }

    #[test]
    fn nothing_until_every_cell_has_its_expectation() {
        let t0 = Instant::now();
        let mut t = started(&["x86_64/a/base", "x86_64/a/v2"], 1, t0);
        expect(
            &mut t,
            "x86_64/a/base",
            KernelExpect::Cached,
            100.0,
            GuestFrom::LastRun,
        );
        assert_eq!(t.left(t0), None);
        expect(
            &mut t,
            "x86_64/a/v2",
            KernelExpect::Cached,
            100.0,
            GuestFrom::LastRun,
        );
        let e = t.left(t0).unwrap();
        assert_eq!(
            (e.low, e.high),
            (204.0, 204.0),
            "two cached cells, measured guests"
        );
    }

    #[test]
    fn jobs_run_slots_side_by_side_in_the_estimate() {
        let t0 = Instant::now();
        let ids = [
            "x86_64/a/base",
            "x86_64/a/v2",
            "x86_64/b/base",
            "x86_64/b/v2",
        ];
        let mut one = started(&ids, 1, t0);
        let mut two = started(&ids, 2, t0);
        for t in [&mut one, &mut two] {
            for i in ids {
                expect(t, i, KernelExpect::Cached, 98.0, GuestFrom::LastRun);
            }
        }
        assert_eq!(one.left(t0).unwrap().low, 400.0);
        assert_eq!(two.left(t0).unwrap().low, 200.0);
        // Half-way through the first cell of each slot.
        for i in ["x86_64/a/base", "x86_64/b/base"] {
            two.event(&Event::CellStarted { id: id(i) }, t0);
            two.event(&Event::KernelDone { id: id(i) }, at(t0, 2.0));
        }
        assert_eq!(two.left(at(t0, 51.0)).unwrap().low, 49.0 + 100.0);
    }

    #[test]
    fn a_range_until_the_first_build_has_finished_then_one_figure() {
        let t0 = Instant::now();
        let ids = ["x86_64/a/base", "x86_64/a/v2"];
        let mut t = started(&ids, 1, t0);
        let cold = KernelExpect::Build {
            objects: 1000,
            cold: true,
        };
        let incr = KernelExpect::Build {
            objects: 200,
            cold: false,
        };
        expect(&mut t, ids[0], cold, 100.0, GuestFrom::Model);
        expect(&mut t, ids[1], incr, 100.0, GuestFrom::Model);
        let e = t.left(t0).unwrap();
        assert!(e.high > e.low * 3.0, "a wide range at first: {e:?}");
        assert!(e.text().contains('-'), "{}", e.text());
        // The build: 500 objects in 100 s of make (0.2 s each) narrows it.
        t.event(&Event::CellStarted { id: id(ids[0]) }, t0);
        let p = |done, secs| BuildProgress {
            done,
            total: 1000,
            from: TotalFrom::Config,
            elapsed: Duration::from_secs(secs),
        };
        t.event(
            &Event::BuildProgress {
                id: id(ids[0]),
                progress: p(500, 100),
            },
            at(t0, 120.0),
        );
        let mid = t.left(at(t0, 120.0)).unwrap();
        assert!(
            mid.high - mid.low < e.high - e.low,
            "{mid:?} narrower than {e:?}"
        );
        // Finished: 1000 objects in 200 s of make, 240 s in all (40 s fixed).
        t.event(
            &Event::BuildProgress {
                id: id(ids[0]),
                progress: p(1000, 200),
            },
            at(t0, 220.0),
        );
        t.event(&Event::KernelDone { id: id(ids[0]) }, at(t0, 240.0));
        let r = t.rates(at(t0, 240.0)).0;
        assert!((r.per_object - 0.2).abs() < 1e-9 && (r.build_fixed - 40.0).abs() < 1e-9);
        let after = t.left(at(t0, 240.0)).unwrap();
        // Its guest (100 s modelled, the factor a range still) then v2: 40 + 200 x 0.2
        // + its guest.
        assert!(
            after.low >= 100.0 * 0.85 + 80.0 + 100.0 * 0.85 - 1e-6,
            "{after:?}"
        );
        // The first guest measured: 150 s for 100 modelled; one figure.
        t.event(&finished(ids[0], true), at(t0, 390.0));
        let last = t.left(at(t0, 390.0)).unwrap();
        assert_eq!(last.low, last.high);
        assert!((last.low - (80.0 + 150.0)).abs() < 1e-6, "{last:?}");
        assert!(!last.text().contains('-'));
    }

    /// The last real run on this machine (`kmatrix build`, 6 x86_64 cells one after the
    /// other, with other builds sharing the 2 cores): its first build ended at 1027 s and
    /// the run at 6251 s. At that moment the ETA says within 30% of the 5224 s left, not
    /// knowing that v2 of pvl-off stops at its compile error within a minute.
    #[test]
    fn replayed_on_the_last_real_run_the_eta_after_the_first_build_is_within_30_percent() {
        let t0 = Instant::now();
        let ids = [
            "x86_64/pvl-off/base",
            "x86_64/pvl-off/v2",
            "x86_64/pvl-off/v3",
            "x86_64/pvl-on/base",
            "x86_64/pvl-on/v2",
            "x86_64/pvl-on/v3",
        ];
        let mut t = started(&ids, 1, t0);
        // What the probe says on a cache and slots that hold nothing.
        let cold = KernelExpect::Build {
            objects: eta::prior_cold_objects(Arch::X86_64),
            cold: true,
        };
        let incr = KernelExpect::Build {
            objects: (1350.0 * eta::PRIOR_INCREMENTAL_SHARE) as u64,
            cold: false,
        };
        for (i, k) in ids.iter().zip([cold, incr, incr, cold, incr, incr]) {
            expect(&mut t, i, k, 0.0, GuestFrom::None);
        }
        let before = t.left(t0).unwrap();
        t.event(&Event::CellStarted { id: id(ids[0]) }, t0);
        // make's main build: 1353 objects from ~25 s (config) to ~1000 s.
        t.event(
            &Event::BuildProgress {
                id: id(ids[0]),
                progress: BuildProgress {
                    done: 1353,
                    total: 1344,
                    from: TotalFrom::Config,
                    elapsed: Duration::from_secs(975),
                },
            },
            at(t0, 1000.0),
        );
        t.event(&Event::KernelDone { id: id(ids[0]) }, at(t0, 1027.0));
        t.event(&finished(ids[0], false), at(t0, 1027.0));
        let e = t.left(at(t0, 1027.0)).unwrap();
        let real = 6251.0 - 1027.0;
        let err = (e.low - real) / real;
        assert_eq!(e.low, e.high);
        assert!(
            err.abs() <= 0.30,
            "ETA {} s vs {real} s: {:.0}%",
            e.low,
            err * 100.0
        );
        // Before any build it was a range that held the truth.
        assert!(before.low <= 6251.0 && 6251.0 <= before.high, "{before:?}");
        let _ = at(t0, 0.0).duration_since(t0);
    }
}
