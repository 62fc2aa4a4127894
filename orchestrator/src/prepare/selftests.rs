//! The kernel's own selftests (`tools/testing/selftests/<suite>/<name>`), built static per
//! tree and arch against that tree's UAPI headers, once (a cached [`Entry`]), and run in
//! every cell from the read-only tests share. A selftest that does not build is reported
//! by its test as not run, with the compiler's words; it never fails the others.

use crate::host::cache::{Cache, Hasher};
use crate::host::proc::{self, ProcError, ProcSpec};
use crate::prepare::source::Tree;
use crate::record::plan::{Arch, Selftest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bump when the recipe changes what comes out.
const RECIPE: &str = "kmatrix-selftests-v1";

#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the {arch} UAPI headers of {tree} for the selftests")]
    Headers {
        arch: &'static str,
        tree: PathBuf,
        #[source]
        source: ProcError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SelftestError + '_ {
    move |source| SelftestError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The built selftests of one tree and arch: each one's binary, or why it did not build.
#[derive(Debug, Clone, Default)]
pub struct Built {
    pub programs: BTreeMap<Selftest, Result<PathBuf, String>>,
}

/// `make` arguments for one suite's targets (pure: unit-tested).
pub fn make_args(
    suite_dir: &Path,
    out: &Path,
    headers: &Path,
    arch: Arch,
    targets: &[String],
) -> Vec<String> {
    let mut a = vec![
        "-C".to_string(),
        suite_dir.display().to_string(),
        format!("OUTPUT={}", out.display()),
        format!(
            "KHDR_INCLUDES=-isystem {}",
            headers.join("include").display()
        ),
        "LDFLAGS=-static".to_string(),
        format!("CC={}", arch.cc()),
        format!("ARCH={}", arch.kernel_arch()),
        "-k".to_string(),
    ];
    a.extend(targets.iter().map(|t| out.join(t).display().to_string()));
    a
}

/// Build (or find) `tests` for `arch` from `tree`.
pub async fn build(
    tree: &Tree,
    arch: Arch,
    tests: &[Selftest],
    cache: &Cache,
) -> Result<Built, SelftestError> {
    if tests.is_empty() {
        return Ok(Built::default());
    }
    let mut h = Hasher::new(RECIPE);
    h.field(tree.id.as_bytes()).field(arch.name().as_bytes());
    for t in tests {
        h.field(t.id().as_bytes());
    }
    let entry = cache.entry(&format!("selftests/{}", arch.name()), &h.finish());
    let dir = match entry.resolve() {
        Some(d) => d,
        None => {
            let staging = entry.staging().map_err(io(&entry.path))?;
            compile(tree, arch, tests, staging.path()).await?;
            entry.publish(staging, false).map_err(io(&entry.path))?
        }
    };
    let mut built = Built::default();
    for t in tests {
        let bin = dir.join("bin").join(format!("{}-{}", t.suite, t.name));
        let r = if bin.is_file() {
            Ok(bin)
        } else {
            let why =
                std::fs::read_to_string(dir.join("errors").join(format!("{}-{}", t.suite, t.name)))
                    .unwrap_or_else(|_| "did not build".into());
            Err(why)
        };
        built.programs.insert(t.clone(), r);
    }
    Ok(built)
}

/// Headers first (into the staging folder, never the tree), then each suite's targets in
/// a copy of the tree: the selftests' makefiles write generated files next to their
/// sources (mm/local_config.mk), so `tools/` is a real copy, the rest hard links.
async fn compile(
    tree: &Tree,
    arch: Arch,
    tests: &[Selftest],
    out: &Path,
) -> Result<(), SelftestError> {
    let headers = out.join("headers");
    let src = out.join("src");
    let headers_error = |source| SelftestError::Headers {
        arch: arch.name(),
        tree: tree.path.clone(),
        source,
    };
    copy_tree(&tree.path, &src).await.map_err(headers_error)?;
    install_headers(&tree.path, arch, out, &headers)
        .await
        .map_err(headers_error)?;
    let _ = std::fs::remove_dir_all(out.join("obj"));
    let dirs = Dirs {
        src: src.clone(),
        headers,
        bin: out.join("bin"),
        errors: out.join("errors"),
        out: out.to_owned(),
    };
    for d in [&dirs.bin, &dirs.errors] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let mut suites: BTreeMap<&str, Vec<&Selftest>> = BTreeMap::new();
    for t in tests {
        suites.entry(t.suite.as_str()).or_default().push(t);
    }
    for (suite, ts) in suites {
        build_suite(&dirs, arch, suite, &ts).await?;
    }
    let _ = std::fs::remove_dir_all(out.join("build"));
    let _ = std::fs::remove_dir_all(&src);
    Ok(())
}

/// The folders of one compile, all inside its staging folder `out`.
struct Dirs {
    out: PathBuf,
    /// The copy of the tree.
    src: PathBuf,
    headers: PathBuf,
    /// The binaries built, as `<suite>-<name>`.
    bin: PathBuf,
    /// Why each selftest that did not build did not, as `<suite>-<name>`.
    errors: PathBuf,
}

/// `tree` copied to `src`: hard links, `tools/` a real copy; a full copy where hard links
/// cannot be made (another file system).
async fn copy_tree(tree: &Path, src: &Path) -> Result<(), ProcError> {
    let copy = |args: &[&str], from: &Path, to: &Path| {
        ProcSpec::new("cp")
            .args(args)
            .arg(from)
            .arg(to)
            .timeout(Duration::from_secs(600))
    };
    match proc::run(&copy(&["-al"], tree, src)).await {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(src.join("tools"));
            proc::run(&copy(&["-a"], &tree.join("tools"), &src.join("tools"))).await
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(src);
            proc::run(&copy(&["-a"], tree, src)).await
        }
    }
}

/// The tree's UAPI headers for `arch` installed into `headers` (objects in `out/obj`).
async fn install_headers(
    tree: &Path,
    arch: Arch,
    out: &Path,
    headers: &Path,
) -> Result<(), ProcError> {
    proc::run(
        &crate::host::sandbox::Sandbox::new()
            .readable(tree)
            .writable(out)
            .wrap(
                ProcSpec::new("make")
                    .arg("-s")
                    .arg("-C")
                    .arg(tree)
                    .arg(format!("O={}", out.join("obj").display()))
                    .arg(format!("ARCH={}", arch.kernel_arch()))
                    .arg(format!("INSTALL_HDR_PATH={}", headers.display()))
                    .arg("headers_install")
                    .log(out.join("build.log"))
                    .timeout(Duration::from_secs(600)),
            ),
    )
    .await
}

/// One suite's selftests built (`make -k`: one that fails does not stop the others);
/// each binary moved to `bin/`, or the compiler's words for it written to `errors/`.
async fn build_suite(
    dirs: &Dirs,
    arch: Arch,
    suite: &str,
    ts: &[&Selftest],
) -> Result<(), SelftestError> {
    let suite_dir = dirs.src.join("tools/testing/selftests").join(suite);
    let build = dirs.out.join("build").join(suite);
    std::fs::create_dir_all(&build).map_err(io(&build))?;
    let targets: Vec<String> = ts.iter().map(|t| t.name.clone()).collect();
    let slog = dirs.out.join(format!("build-{suite}.log"));
    // The selftests' makefiles write next to their sources, in the tree's copy.
    let ran = proc::run(
        &crate::host::sandbox::Sandbox::new()
            .writable(&dirs.src)
            .writable(&dirs.out)
            .wrap(
                ProcSpec::new("make")
                    .args(make_args(&suite_dir, &build, &dirs.headers, arch, &targets))
                    .log(&slog)
                    .timeout(Duration::from_secs(900)),
            ),
    )
    .await;
    let text = std::fs::read_to_string(&slog).unwrap_or_default();
    for t in ts {
        let file = format!("{}-{}", t.suite, t.name);
        let made = build.join(&t.name);
        if made.is_file() {
            std::fs::rename(&made, dirs.bin.join(&file)).map_err(io(&made))?;
        } else {
            std::fs::write(dirs.errors.join(&file), not_built(t, &text, &ran))
                .map_err(io(&dirs.errors))?;
        }
    }
    Ok(())
}

/// Why a selftest did not build: the log's first error lines, else make's own failure.
fn not_built(t: &Selftest, log: &str, ran: &Result<(), ProcError>) -> String {
    let why: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("error") || l.contains("No rule"))
        .take(5)
        .collect();
    if why.is_empty() {
        match ran {
            Err(e) => e.to_string(),
            Ok(()) => format!("{} was not built", t.id()),
        }
    } else {
        why.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_args_build_static_against_the_trees_headers() {
        let a = make_args(
            Path::new("/t/tools/testing/selftests/mm"),
            Path::new("/o/mm"),
            Path::new("/o/headers"),
            Arch::Arm64,
            &["merge".to_string()],
        );
        assert_eq!(
            a,
            [
                "-C",
                "/t/tools/testing/selftests/mm",
                "OUTPUT=/o/mm",
                "KHDR_INCLUDES=-isystem /o/headers/include",
                "LDFLAGS=-static",
                "CC=aarch64-linux-gnu-gcc",
                "ARCH=arm64",
                "-k",
                "/o/mm/merge"
            ]
        );
    }
}
