//! Performance A/B of a patched cell against its base cell, from the perf samples of
//! every boot (`--repeat N`): per metric the ratio of medians (cell / base) and a 95%
//! interval from a two-level bootstrap (boots, then windows within a boot: windows of
//! one boot share its host and are not independent of each other).

use crate::record::coverage::Built;
use crate::record::perf::{BootSamples, Call, PerfAb, Row};
use crate::record::result::CellResult;

/// Fewer boots than this on a side: the ratio is shown, no call is made.
pub const MIN_BOOTS: usize = 3;
/// Bootstrap resamples per metric.
const RESAMPLES: usize = 2000;
/// A difference smaller than this is no call even when the interval excludes 1: two
/// boots of one kernel under TCG differ by about this much.
const NOISE_FLOOR: f64 = 0.03;
/// The metric that measures the host, not the kernel.
const HOST_CONTROL: &str = "cpu";

/// Every boot's samples of a cell.
pub fn boots(c: &CellResult) -> Vec<BootSamples> {
    if !c.perf_boots.is_empty() {
        return c.perf_boots.clone();
    }
    let one = of_tests(c);
    if one.is_empty() {
        vec![]
    } else {
        vec![one]
    }
}

/// One boot's samples, from its tests' perf lines.
pub fn of_tests(c: &CellResult) -> BootSamples {
    let mut s = BootSamples::new();
    for t in c.tests.iter().filter(|t| t.passed()) {
        s.extend(t.perf.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    s
}

/// The A/B of `cell` against `base`, when both measured something in common.
pub fn compare(base: &CellResult, cell: &CellResult) -> Option<PerfAb> {
    let (b, c) = (boots(base), boots(cell));
    let metrics: Vec<&String> = c
        .iter()
        .flat_map(|s| s.keys())
        .filter(|m| b.iter().any(|s| s.contains_key(*m)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if metrics.is_empty() {
        return None;
    }
    let rows: Vec<Row> = metrics
        .iter()
        .map(|m| row(m, &side(&b, m), &side(&c, m)))
        .collect();
    let host_note = rows
        .iter()
        .find(|r| r.metric == HOST_CONTROL && matches!(r.call, Call::Faster | Call::Slower))
        .map(|r| {
            format!(
                "the host itself ran at {} of its speed for the base boots (the cpu control): \
                 these figures compare the hosts as much as the kernels",
                r.figure()
            )
        });
    let profiled = |c: &CellResult| -> Vec<String> {
        c.series_coverage
            .iter()
            .flat_map(|s| &s.files)
            .filter_map(|f| match &f.built {
                Built::Profiled { object } => Some(object.clone()),
                _ => None,
            })
            .collect()
    };
    let in_base = profiled(base);
    Some(PerfAb {
        base: base.id.to_string(),
        accel: cell.accel,
        base_boots: b.len(),
        cell_boots: c.len(),
        rows,
        host_note,
        profiled_here_only: profiled(cell)
            .into_iter()
            .filter(|o| !in_base.contains(o))
            .collect(),
    })
}

/// One metric's windows, per boot that measured it.
fn side(boots: &[BootSamples], metric: &str) -> Vec<Vec<f64>> {
    boots
        .iter()
        .filter_map(|s| s.get(metric))
        .filter(|w| !w.is_empty())
        .cloned()
        .collect()
}

fn row(metric: &str, base: &[Vec<f64>], cell: &[Vec<f64>]) -> Row {
    let pooled = |s: &[Vec<f64>]| median(s.iter().flatten().copied().collect());
    let (base_median, cell_median) = (pooled(base), pooled(cell));
    let point = ratio(cell_median, base_median);
    let mut rng = seed(metric);
    let mut ratios: Vec<f64> = (0..RESAMPLES)
        .map(|_| ratio(resample(cell, &mut rng), resample(base, &mut rng)))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let (low, high) = (
        ratios[RESAMPLES * 25 / 1000],
        ratios[RESAMPLES * 975 / 1000 - 1],
    );
    let call = if base.len() < MIN_BOOTS || cell.len() < MIN_BOOTS {
        Call::TooFewBoots
    } else if high < 1.0 && point < 1.0 - NOISE_FLOOR {
        Call::Slower
    } else if low > 1.0 && point > 1.0 + NOISE_FLOOR {
        Call::Faster
    } else {
        Call::NoDifference
    };
    Row {
        metric: metric.to_string(),
        base_median,
        cell_median,
        ratio: point,
        low,
        high,
        call,
    }
}

fn ratio(cell: f64, base: f64) -> f64 {
    if base > 0.0 {
        cell / base
    } else if cell > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// The median of one bootstrap resample: boots with replacement, then each chosen
/// boot's windows with replacement.
fn resample(side: &[Vec<f64>], rng: &mut u64) -> f64 {
    let mut v = Vec::new();
    for _ in 0..side.len() {
        let boot = &side[pick(rng, side.len())];
        v.extend((0..boot.len()).map(|_| boot[pick(rng, boot.len())]));
    }
    median(v)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A fixed seed per metric: the same samples give the same interval on every run.
fn seed(metric: &str) -> u64 {
    metric.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// splitmix64
fn pick(state: &mut u64, n: usize) -> usize {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::plan::Arch;

    /// `boots` boots of `windows` windows around `mean`, with a boot-to-boot offset
    /// and window noise of about `noise` (deterministic).
    fn cell(patchset: &str, metrics: &[(&str, f64)], boots: usize, noise: f64) -> CellResult {
        let mut c = CellResult::new(
            &crate::record::plan::tests::cell(Arch::X86_64, "pvl-on", patchset),
            "/r".into(),
        );
        let mut rng = seed(patchset);
        let mut jitter = |scale: f64| (pick(&mut rng, 1000) as f64 / 1000.0 - 0.5) * 2.0 * scale;
        c.perf_boots = (0..boots)
            .map(|_| {
                metrics
                    .iter()
                    .map(|(m, mean)| {
                        let boot = mean * (1.0 + jitter(noise));
                        let w = (0..10).map(|_| boot * (1.0 + jitter(noise))).collect();
                        (m.to_string(), w)
                    })
                    .collect()
            })
            .collect();
        c
    }

    fn call(ab: &PerfAb, m: &str) -> Call {
        ab.rows.iter().find(|r| r.metric == m).unwrap().call
    }

    #[test]
    fn a_slowed_fault_path_is_slower_and_an_equal_one_is_no_difference() {
        let base = cell("base", &[("fault", 1000.0), ("cpu", 50.0)], 5, 0.05);
        let slow = cell("slow", &[("fault", 700.0), ("cpu", 50.0)], 5, 0.05);
        let ab = compare(&base, &slow).unwrap();
        assert_eq!(call(&ab, "fault"), Call::Slower, "{ab:#?}");
        let r = &ab.rows[1];
        assert!(r.low < r.ratio && r.ratio < r.high && r.high < 1.0, "{r:?}");
        assert_eq!(call(&ab, "cpu"), Call::NoDifference);
        assert!(ab.host_note.is_none());
        assert!(
            ab.summary().contains("fault slower 0.6") || ab.summary().contains("fault slower 0.7"),
            "{}",
            ab.summary()
        );

        let same = cell("same", &[("fault", 1000.0), ("cpu", 50.0)], 5, 0.05);
        let ab = compare(&base, &same).unwrap();
        assert_eq!(call(&ab, "fault"), Call::NoDifference, "{ab:#?}");
        assert!(ab.summary().ends_with("no difference at this N"));
    }

    #[test]
    fn one_boot_a_side_makes_no_call_and_says_how_many_are_needed() {
        let base = cell("base", &[("fault", 1000.0)], 1, 0.05);
        let slow = cell("slow", &[("fault", 500.0)], 1, 0.05);
        let ab = compare(&base, &slow).unwrap();
        assert_eq!(call(&ab, "fault"), Call::TooFewBoots);
        assert!(
            ab.summary().contains("fault 0.") && ab.summary().contains("--repeat 5"),
            "{}",
            ab.summary()
        );
    }

    #[test]
    fn a_host_that_changed_speed_is_said() {
        let base = cell("base", &[("fault", 1000.0), ("cpu", 50.0)], 4, 0.02);
        let cell = cell("x", &[("fault", 800.0), ("cpu", 40.0)], 4, 0.02);
        let ab = compare(&base, &cell).unwrap();
        assert!(ab.host_note.as_deref().unwrap().contains("cpu control"));
    }

    #[test]
    fn nothing_in_common_is_no_comparison() {
        let base = cell("base", &[("a", 1.0)], 3, 0.0);
        let other = cell("x", &[("b", 1.0)], 3, 0.0);
        assert!(compare(&base, &other).is_none());
        assert!(compare(&base, &cell("y", &[], 0, 0.0)).is_none());
    }
}
