//! The command line's clap definitions and nothing else: no `crate::` paths but the
//! shard type (`record/shard.rs`, which imports nothing), so that `build.rs` can compile
//! this file on its own to write the man pages and the shell completions from the same
//! definitions the binary parses with.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "kmatrix",
    version,
    about = "Build, boot and stress kernel patch series across a config matrix"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, boot and test every selected cell; print the result matrix.
    Run {
        #[command(flatten)]
        sel: Selection,
        /// Rebuild kernels even when the cache has them.
        #[arg(long)]
        rebuild: bool,
        /// Where run directories go (default: `runs/` next to the spec).
        #[arg(long)]
        runs_dir: Option<PathBuf>,
        /// Reuse the cells the latest run (of the same spec) finished; run the rest.
        #[arg(long)]
        resume: bool,
        /// Boot and test every cell N times (fresh boots); findings get failure rates.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Run N cells at the same time (never two builds of one arch x config). Default:
        /// cores / 4, at most memory / (guest memory + 1 GiB), at least 1.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
    },
    /// Build the kernels of the selected cells (no boot).
    Build {
        #[command(flatten)]
        sel: Selection,
        #[arg(long)]
        rebuild: bool,
        #[arg(long)]
        runs_dir: Option<PathBuf>,
        /// Run N cells at the same time (never two builds of one arch x config). Default:
        /// cores / 4, at most memory / (guest memory + 1 GiB), at least 1.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
    },
    /// Boot one cell's kernel (building it if needed) for a developer: run a command over
    /// SSH, or get an interactive shell; the VM is stopped afterwards.
    Boot {
        /// The cell id, e.g. `x86_64/pvl-on/v2`.
        cell: String,
        #[arg(short = 'f', long = "spec", default_value = "kmatrix.yaml")]
        spec: PathBuf,
        /// A developer's tree, as for `run` (the cell is then `ARCH/CONFIG/tree`).
        #[arg(long, value_name = "PATH")]
        tree: Option<PathBuf>,
        /// With --tree: a branch, as for `run` (cells `ARCH/CONFIG/base` and `.../series`).
        #[arg(long, value_name = "BASE..TIP", requires = "tree")]
        series: Option<String>,
        #[arg(long)]
        runs_dir: Option<PathBuf>,
        /// Command to run in the guest (after `--`), as an argv: each argument one word, so
        /// `-- sh -c 'a; b'` runs `a; b` in one shell. An interactive shell when absent.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Print the cells and what each will build, without doing anything.
    Plan {
        #[command(flatten)]
        sel: Selection,
    },
    /// Join the run directories of shards into one run directory with every output.
    Merge {
        /// Where the merged run goes.
        #[arg(long)]
        out: PathBuf,
        /// Run directories of the shards.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
    /// Re-render every output (results.json, junit.xml, summary.md, report.html, matrix)
    /// from a run directory; with `--kcidb`, print the run in KernelCI's KCIDB format
    /// instead (and write nothing).
    Report {
        run_dir: PathBuf,
        /// Print the run as a KCIDB JSON document (schema 5.3) on stdout.
        #[arg(long)]
        kcidb: bool,
        /// The origin (CI system name) in the KCIDB ids.
        #[arg(long, default_value = "kmatrix", requires = "kcidb")]
        kcidb_origin: String,
        /// Where the run folder is published (e.g. CI artifacts): log and config URLs.
        #[arg(long, requires = "kcidb")]
        kcidb_url: Option<String>,
        /// The run's spec, for the checkouts' patchset hashes (its patches are hashed;
        /// the spec path results.json names is never opened).
        #[arg(long, requires = "kcidb", value_name = "FILE")]
        kcidb_spec: Option<PathBuf>,
    },
    /// Check every tool and host fact kmatrix relies on (QEMU, compilers, packages,
    /// KVM, disk, memory); each problem with its fix. Exit 0 when ready.
    Doctor {
        /// The matrix spec (default: kmatrix.yaml here; without one, the host only).
        #[arg(short = 'f', long = "spec")]
        spec: Option<PathBuf>,
    },
    /// Find the first patch of a cell's series at which its failure appears: builds and
    /// judges prefixes of the series (cached like any kernel), in `runs/bisect-<time>/`.
    Bisect {
        /// The cell id, e.g. `x86_64/pvl-on/v2`.
        cell: String,
        #[arg(short = 'f', long = "spec", default_value = "kmatrix.yaml")]
        spec: PathBuf,
        /// The title of the kernel report to look for (default: the one the full series'
        /// verdict names; BUILD-FAIL and PATCH-FAIL look for that verdict).
        #[arg(long)]
        title: Option<String>,
        /// Boot each step N times (fresh boots); a step is bad if any boot shows it.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        #[arg(long)]
        runs_dir: Option<PathBuf>,
        /// Judge only the first K patches (one step, e.g. to reproduce the answer).
        #[arg(long)]
        prefix: Option<usize>,
    },
    /// Which patch brought each new finding of RUN's comparison (`kmatrix compare OLD
    /// RUN` first): a `kmatrix bisect` per new finding in a cell whose series has more
    /// than one patch, looking for its title, each step booted as often as its rate
    /// needs; the answers go beside the findings in compare.json, summary.md and
    /// report.html (and the KCIDB document). The bisections go to RUN/bisects/.
    BisectNew {
        run: PathBuf,
        /// The spec to bisect with (default: the one RUN was made with).
        #[arg(short = 'f', long = "spec")]
        spec: Option<PathBuf>,
        /// Most bisections (each builds and boots a few prefixes); the rest are listed.
        #[arg(long, default_value_t = 4)]
        max: usize,
        /// Where the bisections' folders go (default: RUN/bisects).
        #[arg(long)]
        runs_dir: Option<PathBuf>,
    },
    /// What changed from one run to another: per cell, findings new / fixed / still
    /// failing / flaky, verdict changes, known issues maybe fixed. Writes compare.json
    /// into NEW_RUN and puts the comparison on top of its summary.md and report.html.
    /// Exit 1 only for something new.
    Compare {
        old_run: PathBuf,
        new_run: PathBuf,
        /// Known issues to judge with, instead of NEW_RUN's own list.
        #[arg(long)]
        known: Option<PathBuf>,
    },
    /// b4's series check: test the series `b4 review` reviews, print b4's JSON result.
    ///
    /// Set up with `git config b4.review-series-check-cmd "kmatrix b4-check"` in the
    /// kernel tree. b4 names the series in B4_TRACKING_FILE (its base commit .. its
    /// review branch); kmatrix runs it as `run --tree . --series BASE..TIP` does and
    /// prints the JSON list b4 reads on stdout (progress on stderr).
    B4Check {
        /// The matrix spec (default: the tree's own kmatrix.yaml, else the one of the
        /// kmatrix checkout this binary was built from).
        #[arg(short = 'f', long = "spec")]
        spec: Option<PathBuf>,
        /// Only cells whose id matches this glob; repeatable (default: `x86_64/*`, the
        /// quick profile; `*` for every cell).
        #[arg(long)]
        only: Vec<String>,
        /// Where the run goes (default: `runs/` next to the spec), in a `b4-<time>/`
        /// folder of its own.
        #[arg(long)]
        runs_dir: Option<PathBuf>,
    },
    /// A Model Context Protocol server on stdin/stdout, for agents.
    ///
    /// Tools: `plan`, `run` (starts a run of some cells), `results`, `cell` (its kernel
    /// reports and console) and `compare`; only `run` changes anything.
    Mcp {
        #[arg(short = 'f', long = "spec", default_value = "kmatrix.yaml")]
        spec: PathBuf,
        /// Where runs are read and started (default: `runs/` next to the spec).
        #[arg(long)]
        runs_dir: Option<PathBuf>,
    },
    /// Find kernel reports in a console log.
    Parse {
        log: PathBuf,
        /// Print one JSON object with a `findings` array.
        #[arg(long)]
        json: bool,
        /// The kernel's vmlinux: adds file:line to trace frames (needs debug info).
        #[arg(long)]
        vmlinux: Option<PathBuf>,
        /// Binutils prefix for symbolising, e.g. `aarch64-linux-gnu-` for arm64 kernels.
        #[arg(long, default_value = "")]
        tool_prefix: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct Selection {
    /// The matrix spec.
    #[arg(short = 'f', long = "spec", default_value = "kmatrix.yaml")]
    pub spec: PathBuf,
    /// Only cells whose id (arch/config/patchset) matches this glob; repeatable.
    #[arg(long)]
    pub only: Vec<String>,
    /// Run shard K of N (`--shard 1/3`); shards are balanced by expected cost and are
    /// joined with `kmatrix merge`.
    #[arg(long, value_parser = crate::record::shard::Shard::parse)]
    pub shard: Option<crate::record::shard::Shard>,
    /// Test this kernel tree as it is on disk (uncommitted changes included) with the
    /// spec's matrix, in place of the spec's source and patchsets: patchset `tree`.
    #[arg(long, value_name = "PATH")]
    pub tree: Option<PathBuf>,
    /// With --tree: test the branch instead, the commits BASE..TIP of the tree's
    /// repository (one patch each) on the base commit: patchsets `base` and `series`.
    #[arg(long, value_name = "BASE..TIP", requires = "tree")]
    pub series: Option<String>,
}
