//! Which cells run at the same time (`--jobs N`), as one pure rule that the engine follows
//! and the ETA simulates.
//!
//! The rule: at most `jobs` cells run at once; the cells of one build slot (arch x
//! config: one tree and object folder) start in plan order, each once the one before it
//! is past its kernel step (built, taken from the cache, or stopped), so two builds never
//! share a slot and the next build of a slot overlaps the boots and tests of the one
//! before. Among the cells allowed to start, the one whose slot has the most work left
//! goes first (the longest chain bounds the run), then the plan's order; with one job, the
//! plan's order. Greedy list
//! scheduling of this kind finishes within `total work / jobs + longest chain`.

/// Where a cell is in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Waiting,
    /// Started, still in its kernel step: its slot's next cell waits.
    Building,
    /// Past its kernel step (booting, testing, judging): its slot is free.
    Guest,
    /// Finished (or reused from an earlier run).
    Done,
}

/// The schedule of one run: per cell (in plan order) its slot, its priority and its state.
#[derive(Debug, Clone)]
pub struct Scheduler {
    jobs: usize,
    slot: Vec<usize>,
    /// Expected work of each cell (any unit): the slot's remaining sum ranks the slots.
    work: Vec<f64>,
    state: Vec<State>,
    /// After an interruption every cell may start at once (each stops at its start).
    drain: bool,
}

impl Scheduler {
    /// `slots[i]` names cell `i`'s build slot (cells with equal names share one);
    /// `work[i]` is its expected work. `jobs` is at least 1.
    pub fn new<S: PartialEq>(slots: &[S], work: &[f64], jobs: usize) -> Scheduler {
        let mut slot = Vec::with_capacity(slots.len());
        for s in slots {
            let first = slots.iter().position(|x| x == s).unwrap_or(0);
            slot.push(first);
        }
        Scheduler {
            jobs: jobs.max(1),
            slot,
            work: (0..slots.len())
                .map(|i| work.get(i).copied().unwrap_or(0.0))
                .collect(),
            state: vec![State::Waiting; slots.len()],
            drain: false,
        }
    }

    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    pub fn state(&self, i: usize) -> State {
        self.state[i]
    }

    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Cells running now (building or in their guest).
    pub fn running(&self) -> usize {
        self.state
            .iter()
            .filter(|s| matches!(s, State::Building | State::Guest))
            .count()
    }

    /// Put cell `i` in `state` (an observer replaying what the engine did).
    pub fn set(&mut self, i: usize, state: State) {
        self.state[i] = state;
    }

    /// A cell that is not to run (reused by `--resume`).
    pub fn skip(&mut self, i: usize) {
        self.state[i] = State::Done;
    }

    /// Cell `i` is past its kernel step: its slot's next cell may start.
    pub fn kernel_done(&mut self, i: usize) {
        if self.state[i] == State::Building {
            self.state[i] = State::Guest;
        }
    }

    pub fn finished(&mut self, i: usize) {
        self.state[i] = State::Done;
    }

    /// Start everything left, slots and jobs regardless (the run was interrupted: each
    /// cell only says so).
    pub fn drain(&mut self) {
        self.drain = true;
    }

    pub fn all_done(&self) -> bool {
        self.state.iter().all(|s| *s == State::Done)
    }

    /// Whether cell `i` may start now (a job aside): it waits, and no cell of its slot
    /// waits before it or is in its kernel step.
    fn may_start(&self, i: usize) -> bool {
        self.state[i] == State::Waiting
            && (0..self.len()).all(|j| {
                self.slot[j] != self.slot[i]
                    || j == i
                    || !(self.state[j] == State::Building
                        || (j < i && self.state[j] == State::Waiting))
            })
    }

    /// Work left in cell `i`'s slot (its cells not started yet).
    fn slot_left(&self, i: usize) -> f64 {
        (0..self.len())
            .filter(|j| self.slot[*j] == self.slot[i] && self.state[*j] == State::Waiting)
            .map(|j| self.work[j])
            .sum()
    }

    /// The next cell to start now, marked as building; None when every job is taken or
    /// no cell may start yet.
    pub fn start_next(&mut self) -> Option<usize> {
        if self.drain {
            let i = self.state.iter().position(|s| *s == State::Waiting)?;
            self.state[i] = State::Building;
            return Some(i);
        }
        if self.running() >= self.jobs {
            return None;
        }
        let mut best: Option<(usize, f64)> = None;
        for i in (0..self.len()).filter(|i| self.may_start(*i)) {
            // One job: any order takes as long, so the plan's.
            let left = if self.jobs == 1 {
                0.0
            } else {
                self.slot_left(i)
            };
            if best.is_none_or(|(_, b)| left > b) {
                best = Some((i, left));
            }
        }
        let (i, _) = best?;
        self.state[i] = State::Building;
        Some(i)
    }
}

/// What is left of one cell, in seconds: until its kernel step is done, and until it is
/// finished (`kernel <= total`). For a cell not started, its whole expected time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Left {
    pub kernel: f64,
    pub total: f64,
}

/// Seconds until the last cell finishes if every cell takes what `left` says, following
/// the same rule as the engine from the scheduler's present state. Also the time each
/// cell is expected to finish at (0 for those done already).
pub fn simulate(mut s: Scheduler, left: &[Left]) -> (f64, Vec<f64>) {
    let n = s.len();
    let mut ends = vec![0.0; n];
    // Pending events: (time, cell, kernel step (false) or end (true)).
    let mut events: Vec<(f64, usize, bool)> = Vec::new();
    for (i, l) in left.iter().enumerate().take(n) {
        match s.state(i) {
            State::Building => {
                events.push((l.kernel.max(0.0), i, false));
                events.push((l.total.max(l.kernel).max(0.0), i, true));
            }
            State::Guest => events.push((l.total.max(0.0), i, true)),
            State::Waiting | State::Done => {}
        }
    }
    let mut now = 0.0_f64;
    loop {
        while let Some(i) = s.start_next() {
            let l = left.get(i).copied().unwrap_or_default();
            events.push((now + l.kernel.max(0.0), i, false));
            events.push((now + l.total.max(l.kernel).max(0.0), i, true));
        }
        // The earliest event; a kernel step before an end at the same time.
        let Some(k) = (0..events.len()).min_by(|a, b| {
            let (ta, _, ea) = events[*a];
            let (tb, _, eb) = events[*b];
            ta.total_cmp(&tb).then(ea.cmp(&eb))
        }) else {
            break;
        };
        let (t, i, end) = events.swap_remove(k);
        now = now.max(t);
        if end {
            s.finished(i);
            ends[i] = now;
        } else {
            s.kernel_done(i);
        }
    }
    (now, ends)
}

/// The cells' jobs by default: a build wants every core and a guest about four (its two
/// vCPUs and their I/O threads, QEMU's own), and each job holds a guest's memory and a
/// compiler's (about 1 GiB): `min(cores / 4, memory / (guest + 1 GiB))`, at least 1.
/// A 2-core machine runs one cell at a time; 16 cores and 32 GiB run 4.
pub fn default_jobs(cores: usize, memory_mib: u64, guest_mib: u64) -> usize {
    let by_cores = cores / 4;
    let by_memory = memory_mib / (guest_mib + 1024).max(1);
    by_cores.min(by_memory as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots a,a,a,b,b,b (a base and two patched cells each).
    fn two_slots(jobs: usize) -> Scheduler {
        Scheduler::new(&["a", "a", "a", "b", "b", "b"], &[1.0; 6], jobs)
    }

    #[test]
    fn one_job_runs_the_plan_in_order() {
        let mut s = two_slots(1);
        let mut order = vec![];
        while let Some(i) = s.start_next() {
            assert_eq!(s.start_next(), None, "one at a time");
            order.push(i);
            s.kernel_done(i);
            assert_eq!(s.start_next(), None, "the job is still taken");
            s.finished(i);
        }
        assert_eq!(order, [0, 1, 2, 3, 4, 5]);
        assert!(s.all_done());
    }

    #[test]
    fn a_slot_builds_one_cell_at_a_time_in_plan_order() {
        let mut s = two_slots(3);
        // Both slots start with their first cell; the third job waits for a slot.
        assert_eq!(s.start_next(), Some(0));
        assert_eq!(s.start_next(), Some(3));
        assert_eq!(s.start_next(), None);
        // Cell 0's kernel is ready: cell 1 builds while cell 0 boots.
        s.kernel_done(0);
        assert_eq!(s.start_next(), Some(1));
        assert_eq!(s.start_next(), None, "three running");
        s.finished(0);
        assert_eq!(
            s.start_next(),
            None,
            "slot a: cell 1 still builds; slot b: cell 3"
        );
        s.kernel_done(3);
        assert_eq!(s.start_next(), Some(4));
        s.kernel_done(1);
        s.finished(3);
        assert_eq!(s.start_next(), Some(2), "plan order inside the slot");
    }

    #[test]
    fn the_slot_with_most_work_left_goes_first() {
        let mut s = Scheduler::new(&["x", "y", "y"], &[5.0, 4.0, 4.0], 2);
        assert_eq!(s.start_next(), Some(1), "slot y has 8 left, x 5");
        assert_eq!(s.start_next(), Some(0));
        let mut one = Scheduler::new(&["x", "y", "y"], &[5.0, 4.0, 4.0], 1);
        assert_eq!(one.start_next(), Some(0), "one job: the plan's order");
    }

    #[test]
    fn skipped_cells_free_their_slot_and_drain_starts_everything() {
        let mut s = two_slots(1);
        s.skip(0);
        assert_eq!(s.start_next(), Some(1));
        s.drain();
        assert_eq!(s.start_next(), Some(2));
        assert_eq!(s.start_next(), Some(3));
    }

    #[test]
    fn the_simulation_follows_the_rule() {
        // Two slots of three cells: 10 s kernel step then 20 s guest each.
        let left = vec![
            Left {
                kernel: 10.0,
                total: 30.0
            };
            6
        ];
        // One job: everything one after the other.
        assert_eq!(simulate(two_slots(1), &left).0, 180.0);
        // Two jobs: the slots side by side.
        assert_eq!(simulate(two_slots(2), &left).0, 90.0);
        // Six jobs: each slot a chain of three builds, then the last guest: 3x10 + 20.
        let (t, ends) = simulate(two_slots(6), &left);
        assert_eq!(t, 50.0);
        assert_eq!(ends, [30.0, 40.0, 50.0, 30.0, 40.0, 50.0]);
    }

    #[test]
    fn the_simulation_starts_from_the_present() {
        let mut s = two_slots(1);
        s.skip(0);
        s.skip(1);
        assert_eq!(s.start_next(), Some(2));
        s.kernel_done(2);
        let mut left = vec![
            Left {
                kernel: 10.0,
                total: 30.0
            };
            6
        ];
        left[2] = Left {
            kernel: 0.0,
            total: 5.0,
        };
        assert_eq!(simulate(s, &left).0, 5.0 + 90.0);
    }

    #[test]
    fn a_greedy_schedule_stays_within_work_over_jobs_plus_the_longest_chain() {
        // 48 cells in 16 slots of 3, uneven: the bound holds for every job count.
        let slots: Vec<usize> = (0..48).map(|i| i / 3).collect();
        let left: Vec<Left> = (0..48)
            .map(|i| {
                let k = 60.0 + (i * 37 % 11) as f64 * 30.0;
                Left {
                    kernel: k,
                    total: k + 120.0 + (i % 4) as f64 * 40.0,
                }
            })
            .collect();
        let work: Vec<f64> = left.iter().map(|l| l.total).collect();
        let total: f64 = work.iter().sum();
        let chain = (0..16)
            .map(|s| {
                let c = &left[s * 3..s * 3 + 3];
                // Cell k of a slot ends at the earliest after the kernels before it.
                (0..3)
                    .map(|k| c[..k].iter().map(|l| l.kernel).sum::<f64>() + c[k].total)
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max);
        for jobs in [1, 2, 4, 8, 16, 48] {
            let (t, _) = simulate(Scheduler::new(&slots, &work, jobs), &left);
            assert!(
                t <= total / jobs as f64 + chain + 1e-9,
                "{jobs} jobs: {t} > {total}/{jobs} + {chain}"
            );
            assert!(t >= total / jobs as f64 - 1e-9 && t >= chain - 1e-9);
        }
    }

    #[test]
    fn default_jobs_from_cores_and_memory() {
        assert_eq!(default_jobs(2, 24_000, 1024), 1, "this machine");
        assert_eq!(default_jobs(16, 32_768, 1024), 4);
        assert_eq!(default_jobs(64, 16_384, 1024), 8, "memory bounds it");
        assert_eq!(default_jobs(64, 256_000, 1024), 16);
        assert_eq!(default_jobs(1, 512, 1024), 1, "never 0");
    }
}
