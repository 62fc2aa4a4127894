//! `kmatrix merge`: the run folders of a matrix's shards joined into one run folder.

use crate::cli::error::CliError;
use crate::record::fmt::visible_line as visible;
use crate::record::plan::Shard;
use std::path::{Path, PathBuf};

/// Join shard run directories: same spec, same kernel source, no cell twice. Every shard
/// is read (as untrusted input: they are often downloaded) and checked before anything
/// is written; a merge that fails leaves no folder it made behind.
pub fn merge(out: &Path, runs: &[PathBuf]) -> Result<i32, CliError> {
    let mut meta: Option<crate::report::RunMeta> = None;
    let mut source: Option<String> = None;
    let mut cells: Vec<crate::record::result::CellResult> = Vec::new();
    let mut shards: Vec<Option<Shard>> = Vec::new();
    // The shards ran one spec, so one known-issues list: kept with the merged run.
    let mut known: Option<String> = None;
    for r in runs {
        let bad = |source| CliError::RunFolder {
            path: r.clone(),
            source,
        };
        let (m, cs) = crate::report::load_results(r).map_err(bad)?;
        if let Some((text, _)) = crate::spec::known::KnownIssues::text_of_run(r).map_err(bad)? {
            known.get_or_insert(text);
        }
        shards.push(m.shard);
        match &meta {
            None => meta = Some(m),
            Some(first) if first.spec_hash != m.spec_hash => {
                return Err(CliError::Merge(format!(
                    "{} ran a different spec ({}) than {} ({})",
                    r.display(),
                    visible(&m.spec_hash),
                    runs[0].display(),
                    visible(&first.spec_hash)
                )))
            }
            Some(_) => {}
        }
        for c in cs {
            if let Some(id) = &c.source_id {
                match &source {
                    Some(s) if s != id => {
                        return Err(CliError::Merge(format!(
                            "{} built from kernel source {}, others from {}",
                            r.display(),
                            visible(id),
                            visible(s)
                        )))
                    }
                    _ => source = Some(id.clone()),
                }
            }
            if cells.iter().any(|x| x.id == c.id) {
                return Err(CliError::Merge(format!(
                    "cell {} appears in more than one run",
                    visible(&c.id)
                )));
            }
            cells.push(c);
        }
    }
    let mut meta = meta.ok_or_else(|| CliError::Merge("no runs given".into()))?;
    shards_cover(&shards).map_err(CliError::Merge)?;
    meta.shard = None;
    let made = !out.exists();
    let written = write(out, &meta, &cells, known.as_deref());
    if written.is_err() && made {
        let _ = std::fs::remove_dir_all(out);
    }
    written?;
    println!("{}", crate::report::matrix(&cells));
    Ok(crate::record::verdict::exit_code(
        &cells.iter().map(|c| c.verdict).collect::<Vec<_>>(),
    ))
}

/// The merged run folder: its known-issues list, then every output.
fn write(
    out: &Path,
    meta: &crate::report::RunMeta,
    cells: &[crate::record::result::CellResult],
    known: Option<&str>,
) -> Result<(), CliError> {
    let werr = |error| CliError::Write {
        error,
        hint: "free space or pass another --out",
    };
    std::fs::create_dir_all(out).map_err(|source| CliError::Io {
        path: out.to_owned(),
        source,
    })?;
    if let Some(k) = known {
        crate::host::rundir::write(out, crate::spec::known::FILE, k.as_bytes()).map_err(werr)?;
    }
    crate::report::write_results(out, meta, cells).map_err(werr)
}

/// Shards merged must be exactly 1..N of one N (a report that looks complete but lacks a
/// shard would hide its cells). Runs that were not shards merge as they are.
fn shards_cover(shards: &[Option<Shard>]) -> Result<(), String> {
    let parsed: Vec<(u32, u32)> = shards.iter().flatten().map(|s| (s.k, s.n)).collect();
    if parsed.is_empty() {
        return Ok(());
    }
    if parsed.len() != shards.len() {
        return Err("some runs are shards and some are not".into());
    }
    let n = parsed[0].1;
    if parsed.iter().any(|(_, m)| *m != n) {
        return Err("the runs are shards of different splits (K/N with different N)".into());
    }
    let mut have: Vec<u32> = parsed.iter().map(|(k, _)| *k).collect();
    have.sort();
    if let Some(w) = have.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("shard {}/{n} is given twice", w[0]));
    }
    let missing: Vec<String> = (1..=n)
        .filter(|k| !have.contains(k))
        .map(|k| format!("{k}/{n}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "shard(s) {} missing: pass the run folder of every shard",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_shards_must_cover_one_to_n() {
        let s = |v: &[&str]| {
            v.iter()
                .map(|x| Some(Shard::parse(x).unwrap()))
                .collect::<Vec<_>>()
        };
        assert!(shards_cover(&s(&["1/3", "3/3", "2/3"])).is_ok());
        let e = shards_cover(&s(&["1/3", "3/3"])).unwrap_err();
        assert!(e.contains("2/3 missing"), "{e}");
        assert!(shards_cover(&s(&["1/2", "1/2"]))
            .unwrap_err()
            .contains("twice"));
        assert!(shards_cover(&s(&["1/2", "2/3"])).is_err());
        assert!(shards_cover(&[None, None]).is_ok(), "plain runs");
        assert!(shards_cover(&[Some(Shard { k: 1, n: 2 }), None]).is_err());
    }
}
