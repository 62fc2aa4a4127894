//! `kmatrix bisect-new RUN`: which patch brought each new finding of a run's comparison
//! (`kmatrix compare` left `compare.json` in RUN). For every new kernel report, and
//! every new failure without one, in a cell whose series has more than one patch, a
//! `kmatrix bisect` of that cell looks for the same title (or the verdict), each step
//! booted as often as the finding's rate needs (`judge::introduced`); the bisections go
//! to `RUN/bisects/`. Each answer ("introduced by patch 2/3: subject") is kept beside
//! its finding in compare.json, and RUN's outputs (summary.md, report.html, and the
//! KCIDB document `kmatrix report --kcidb` makes) are rendered again with it. Across
//! the matrix, a finding new in several cells says its first patch in each.

use crate::cli::bisect::{self, BisectError};
use crate::cli::error::CliError;
use crate::host::cache::Cache;
use crate::judge::compare::Comparison;
use crate::judge::introduced::{jobs, Target};
use crate::record::bisect::{Introduced, Outcome};
use crate::record::verdict::exit;
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// What `kmatrix bisect-new` was asked.
#[derive(Debug, Clone)]
pub struct Args {
    pub run: PathBuf,
    /// The spec to bisect with (default: the run's own).
    pub spec: Option<PathBuf>,
    /// Most bisections run (each builds and boots several prefixes).
    pub max: usize,
    /// Where the bisections' folders go (default: RUN/bisects).
    pub runs_dir: Option<PathBuf>,
}

/// The answer of a bisection that did not run to its end.
fn not_run(of: usize, repeat: u32, note: String) -> Introduced {
    Introduced {
        patch: None,
        subject: None,
        of,
        note: Some(note),
        repeat,
        dir: None,
    }
}

fn set(c: &mut Comparison, t: &Target, i: Introduced) {
    match t {
        Target::Row(k) => {
            if let Some(r) = c.rows.get_mut(*k) {
                r.introduced = Some(i);
            }
        }
        Target::Verdict(k) => {
            if let Some(v) = c.verdicts.get_mut(*k) {
                v.introduced = Some(i);
            }
        }
    }
}

fn relative(p: &Path, to: &Path) -> PathBuf {
    let (p, to) = (
        std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned()),
        std::fs::canonicalize(to).unwrap_or_else(|_| to.to_owned()),
    );
    p.strip_prefix(&to).map(Path::to_owned).unwrap_or(p)
}

/// `kmatrix bisect-new`: the bisections, their answers in compare.json and the run's
/// outputs. Exit 0 once done (the answers are in the outputs), 3 when a bisection hit a
/// host failure, 130 when interrupted.
pub async fn run(args: Args, cancel: watch::Receiver<bool>) -> Result<i32, CliError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CliError::Io { path, source }
    };
    let (meta, cells) = crate::report::load_results(&args.run).map_err(io(&args.run))?;
    let cmp_path = args.run.join(crate::judge::compare::FILE);
    let mut cmp = crate::judge::compare::of_run(&args.run)
        .map_err(io(&cmp_path))?
        .ok_or_else(|| CliError::Io {
            path: args.run.join(crate::judge::compare::FILE),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no comparison in this run: run `kmatrix compare OLD_RUN RUN` first",
            ),
        })?;
    let spec = args.spec.clone().unwrap_or_else(|| meta.spec.clone());
    let mut plan = crate::spec::load(&spec)?;
    crate::prepare::series::resolve(&mut plan, &Cache::from_env()).await?;
    if plan.spec_hash != meta.spec_hash {
        eprintln!(
            "kmatrix: {} is not the spec the run was made with; bisecting with it as it is now",
            spec.display()
        );
    }
    let series_len = |id: &str| {
        plan.cells
            .iter()
            .find(|c| c.id() == id)
            .map(|c| c.series(&plan).count())
    };
    let (todo, left) = jobs(&cmp, series_len);
    for (_, why) in &left {
        eprintln!("kmatrix: not bisected: {why}");
    }
    let runs = args
        .runs_dir
        .clone()
        .unwrap_or_else(|| args.run.join("bisects"));
    let mut code = exit::PASS;
    for (k, job) in todo.iter().enumerate() {
        let of = series_len(&job.cell).unwrap_or(0);
        if k >= args.max || *cancel.borrow() {
            let why = if *cancel.borrow() {
                "not bisected: interrupted".to_string()
            } else {
                format!("not bisected: more than --max {} new findings", args.max)
            };
            set(&mut cmp, &job.target, not_run(of, job.repeat, why));
            continue;
        }
        crate::report::terminal::line(&format!(
            "bisect-new {}/{}: {} in {}, {} boot(s) per step",
            k + 1,
            todo.len().min(args.max),
            job.title.as_deref().unwrap_or("its new verdict"),
            job.cell,
            job.repeat
        ));
        let b = bisect::Args {
            cell: job.cell.clone(),
            spec: spec.clone(),
            title: job.title.clone(),
            repeat: job.repeat,
            runs_dir: Some(runs.clone()),
            prefix: None,
        };
        let answer = match bisect::find(plan.clone(), b, cancel.clone()).await {
            Ok(b) => {
                if let Outcome::Stopped { code: c, .. } = b.outcome {
                    code = code.max(c);
                }
                Introduced::of_bisect(&b, Some(relative(&b.dir, &args.run)))
            }
            Err(
                e @ (BisectError::Dir { .. }
                | BisectError::Write { .. }
                | BisectError::Internal { .. }),
            ) => {
                code = code.max(exit::INFRA);
                not_run(of, job.repeat, e.to_string())
            }
            Err(e) => not_run(of, job.repeat, e.to_string()),
        };
        set(&mut cmp, &job.target, answer);
    }
    let werr = |source| CliError::Write {
        error: source,
        hint: "the bisections' folders are kept; free space and rerun",
    };
    crate::judge::compare::write(&args.run, &cmp).map_err(werr)?;
    crate::report::write_results(&args.run, &meta, &cells).map_err(werr)?;
    print!("{}", crate::report::text::introduced(&cmp));
    Ok(code)
}
