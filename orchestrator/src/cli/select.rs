//! What a command tests: the spec's plan, or a developer's tree or branch in its place,
//! narrowed by `--only` and `--shard`.

use crate::cli::args::Selection;
use crate::cli::error::CliError;
use crate::host::cache::Cache;
use crate::record::plan::Plan;
use std::path::Path;

/// What the selection tests: the spec, or `--tree` (with `--series`, the range pinned to
/// commit ids, so the run tests one thing even if the branch moves meanwhile).
pub async fn target(
    tree: Option<&Path>,
    series: Option<&str>,
) -> Result<crate::spec::Target, CliError> {
    use crate::spec::Target;
    let Some(tree) = tree else {
        return Ok(Target::Spec);
    };
    let bad = |why: String| CliError::Tree {
        path: tree.to_owned(),
        why,
    };
    let path = std::path::absolute(tree).map_err(|e| bad(e.to_string()))?;
    if !path.join("Makefile").is_file() {
        return Err(bad(
            "not a kernel tree (no Makefile): give the top folder of a kernel source tree".into(),
        ));
    }
    let Some(range) = series else {
        return Ok(Target::Tree(path));
    };
    let c = crate::prepare::series::commits(&path, range, &format!("--series {range}")).await?;
    Ok(Target::Branch {
        repo: path,
        base: c.base.clone(),
        range: c.pinned(),
    })
}

/// The plan of a selection, git ranges exported.
pub async fn load(sel: &Selection, cache: &Cache) -> Result<Plan, CliError> {
    let target = target(sel.tree.as_deref(), sel.series.as_deref()).await?;
    let mut plan = crate::spec::load_for(&sel.spec, &target)?;
    crate::prepare::series::resolve(&mut plan, cache).await?;
    if !sel.only.is_empty() {
        let mut b = globset::GlobSetBuilder::new();
        for g in &sel.only {
            b.add(globset::Glob::new(g).map_err(|e| CliError::Glob(g.clone(), e.to_string()))?);
        }
        let set = b
            .build()
            .map_err(|e| CliError::Glob(sel.only.join(","), e.to_string()))?;
        plan.cells.retain(|c| set.is_match(c.id()));
        if plan.cells.is_empty() {
            return Err(CliError::NoCells(sel.only.clone()));
        }
    }
    if let Some(shard) = sel.shard {
        plan.cells = crate::record::plan::shard(&plan.cells, &plan.tests, shard);
    }
    Ok(plan)
}
