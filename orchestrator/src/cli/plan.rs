//! `kmatrix plan`: the cells and what each builds, without doing anything.

use crate::cli::args::Selection;
use crate::cli::error::CliError;
use crate::cli::select::load;
use crate::host::cache::Cache;
use crate::record::plan::{Cell, Plan};
use crate::record::verdict::exit;

/// What a plan can know without a build: a series whose every changed file belongs to
/// another architecture's folder builds nothing in this cell (the rest needs the final
/// config: the run says it, UNTESTED, before booting).
fn builds_none(c: &Cell, plan: &Plan) -> Option<String> {
    let series = crate::prepare::coverage::Series::read(c.series(plan));
    let own = format!("arch/{}/", c.arch.srcarch());
    let others: Vec<&str> = series
        .files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.starts_with("arch/") && !p.starts_with(&own))
        .collect();
    (!series.files.is_empty() && others.len() == series.files.len()).then(|| {
        format!(
            "the series changes nothing this config builds: {} belong(s) to another architecture than {}",
            others.join(", "),
            c.arch.name()
        )
    })
}

pub async fn plan(sel: &Selection) -> Result<i32, CliError> {
    let plan = load(sel, &Cache::from_env()).await?;
    for c in &plan.cells {
        let frags: Vec<String> = c
            .fragments
            .iter()
            .map(|f| {
                f.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        println!(
            "{:<28} {} + [{}], {} patch(es)",
            c.id(),
            c.base_config,
            frags.join(", "),
            c.patches.len()
        );
        for s in c.subjects(&plan) {
            println!("{:<28}   {}", "", crate::record::fmt::visible(&s));
        }
        if let Some(why) = builds_none(c, &plan) {
            println!(
                "{:<28}   UNTESTED: {}",
                "",
                crate::record::fmt::visible(&why)
            );
        }
    }
    println!(
        "{} cell(s); tests: {}",
        plan.cells.len(),
        plan.tests
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(exit::PASS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::plan::Arch;

    #[test]
    fn a_series_only_of_another_archs_files_is_said_untested_at_plan_time() {
        let d = tempfile::tempdir().unwrap();
        let patch = d.path().join("0001.patch");
        std::fs::write(
            &patch,
            "--- a/arch/arm64/mm/fault.c\n+++ b/arch/arm64/mm/fault.c\n@@ -1 +1,2 @@\n x\n+y\n",
        )
        .unwrap();
        let mut plan = crate::record::plan::tests::plan();
        let mut x86 = crate::record::plan::tests::cell(Arch::X86_64, "pvl-on", "mine");
        x86.patches = vec![patch.clone()];
        let mut arm = crate::record::plan::tests::cell(Arch::Arm64, "pvl-on", "mine");
        arm.patches = vec![patch];
        plan.cells = vec![x86.clone(), arm.clone()];
        let why = builds_none(&x86, &plan).unwrap();
        assert!(why.contains("arch/arm64/mm/fault.c"), "{why}");
        assert_eq!(builds_none(&arm, &plan), None);
    }
}
