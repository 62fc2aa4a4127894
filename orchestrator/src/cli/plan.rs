//! `kmatrix plan`: the cells and what each builds, without doing anything.

use crate::cli::args::Selection;
use crate::cli::error::CliError;
use crate::cli::select::load;
use crate::host::cache::Cache;
use crate::record::verdict::exit;

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
