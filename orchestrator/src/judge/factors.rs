//! Attribution across the matrix: for each report title, which factor (arch, config,
//! patchset, or a pair of them) explains exactly where it appears, among the cells that
//! booted ("only arm64 with pvl-on", "every cell of patchset v2"), and the cheapest cell
//! that reproduces it (x86_64 before arm64, then the shortest measured run).

use crate::record::result::CellResult;

/// What explains where one title appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub title: String,
    /// "every cell of patchset v2", "only arm64 with pvl-on", or "no single factor: ..."
    pub factors: String,
    /// The cell to rerun first (`repro.txt` there has the command).
    pub cheapest: String,
}

fn parts(c: &CellResult) -> [(&'static str, String); 3] {
    [
        ("arch", c.arch.name().to_string()),
        ("config", c.config.clone()),
        ("patchset", c.patchset.clone()),
    ]
}

fn describe(sel: &[(&str, String)]) -> String {
    match sel {
        [(k, v)] => match *k {
            "patchset" => format!("every cell of patchset {v}"),
            "config" => format!("every cell of config {v}"),
            _ => format!("every {v} cell"),
        },
        [a, b] => format!("only {} with {}", a.1, b.1),
        _ => String::new(),
    }
}

/// The factors of each title seen in `cells`, in the order of `titles`.
pub fn explain(cells: &[CellResult], titles: &[crate::console::TitleSummary]) -> Vec<Explained> {
    // Only cells that ran their tests can show a report; the others say nothing either way.
    let booted: Vec<&CellResult> = cells.iter().filter(|c| !c.boot_lines.is_empty()).collect();
    titles
        .iter()
        .map(|t| {
            let has = |c: &CellResult| t.cells.iter().any(|x| *x == c.id);
            let with: Vec<&CellResult> = booted.iter().copied().filter(|c| has(c)).collect();
            let mut candidates: Vec<Vec<(&str, String)>> = Vec::new();
            if let Some(first) = with.first() {
                let p = parts(first);
                for one in &p {
                    candidates.push(vec![one.clone()]);
                }
                for i in 0..3 {
                    for j in i + 1..3 {
                        candidates.push(vec![p[i].clone(), p[j].clone()]);
                    }
                }
            }
            let matches = |sel: &Vec<(&str, String)>, c: &CellResult| {
                let p = parts(c);
                sel.iter()
                    .all(|(k, v)| p.iter().any(|(pk, pv)| pk == k && pv == v))
            };
            let exact = candidates.iter().find(|sel| {
                booted.iter().all(|c| matches(sel, c) == has(c))
                    && booted.iter().any(|c| !matches(sel, c))
            });
            let factors = match exact {
                Some(sel) => describe(sel),
                None if with.len() == booted.len() && !booted.is_empty() => {
                    "every cell that booted".into()
                }
                None => format!(
                    "no single factor: {} of {} booted cells",
                    with.len(),
                    booted.len()
                ),
            };
            let cheapest = with
                .iter()
                .min_by(|a, b| {
                    (a.arch.name() != "x86_64", a.seconds)
                        .partial_cmp(&(b.arch.name() != "x86_64", b.seconds))
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
                .map(|c| c.id.to_string())
                .unwrap_or_else(|| t.first.cell.clone());
            Explained {
                title: t.title.clone(),
                factors,
                cheapest,
            }
        })
        .collect()
}

/// The kernel's real reports across the run, by title: how often (kept or only counted),
/// in which cells, and where first.
pub fn titles(cells: &[CellResult]) -> Vec<crate::console::TitleSummary> {
    let mut sums = crate::console::summarize(
        cells
            .iter()
            .flat_map(|c| c.real_findings().map(move |f| (c.id.as_str(), f))),
    );
    for s in &mut sums {
        s.count += cells
            .iter()
            .filter_map(|c| c.dropped.get(&s.title))
            .sum::<u64>() as usize;
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::{Finding, Kind};
    use crate::record::plan::Arch;

    fn cell(arch: Arch, config: &str, ps: &str, titles: &[&str], secs: f64) -> CellResult {
        let mut c = CellResult::new(
            &crate::record::plan::tests::cell(arch, config, ps),
            "/r".into(),
        );
        c.boot_lines = vec![1];
        c.seconds = secs;
        c.findings = titles
            .iter()
            .map(|t| Finding {
                kind: Kind::NullDeref,
                title: t.to_string(),
                ..Default::default()
            })
            .collect();
        c
    }

    fn matrix() -> Vec<CellResult> {
        let mut v = Vec::new();
        for arch in [Arch::X86_64, Arch::Arm64] {
            for config in ["pvl-on", "pvl-off"] {
                for ps in ["base", "v2", "v3"] {
                    let mut t = vec![];
                    if ps == "v2" {
                        t.push("BUG in a");
                    }
                    if arch == Arch::Arm64 && config == "pvl-on" {
                        t.push("WARNING in b");
                    }
                    let secs = if arch == Arch::X86_64 { 100.0 } else { 300.0 };
                    v.push(cell(arch, config, ps, &t, secs + ps.len() as f64));
                }
            }
        }
        v
    }

    #[test]
    fn the_factor_that_explains_a_title_and_its_cheapest_cell() {
        let cells = matrix();
        let titles = titles(&cells);
        let e = explain(&cells, &titles);
        let by = |t: &str| e.iter().find(|x| x.title == t).unwrap().clone();
        assert_eq!(by("BUG in a").factors, "every cell of patchset v2");
        assert!(by("BUG in a").cheapest.starts_with("x86_64/"));
        assert_eq!(by("WARNING in b").factors, "only arm64 with pvl-on");
        assert_eq!(by("WARNING in b").cheapest, "arm64/pvl-on/v2");
    }

    #[test]
    fn a_title_without_a_pattern_says_so() {
        let mut cells = matrix();
        cells[0].findings.push(Finding {
            kind: Kind::Warning,
            title: "WARNING in c".into(),
            ..Default::default()
        });
        cells[10].findings.push(Finding {
            kind: Kind::Warning,
            title: "WARNING in c".into(),
            ..Default::default()
        });
        let titles = titles(&cells);
        let e = explain(&cells, &titles);
        let c = e.iter().find(|x| x.title == "WARNING in c").unwrap();
        assert_eq!(c.factors, "no single factor: 2 of 12 booted cells");
    }
}
