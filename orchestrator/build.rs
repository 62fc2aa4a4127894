//! Man pages (one per subcommand) and bash/zsh/fish completions, generated from the same
//! clap definitions the binary parses with (`src/cli/args.rs`, compiled here on its own).
//! They go to `OUT_DIR/share/` and, so that `scripts/setup-host` finds them without
//! knowing cargo's hashed folder names, to `share/` beside the binary
//! (`target/release/share/{man/man1,completions}`).

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "src/cli/args.rs"]
mod cli_args;

/// What `cli/args.rs` names of the crate: the shard type alone.
#[allow(dead_code)]
mod record {
    pub mod shard {
        include!("src/record/shard.rs");
    }
}

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed=src/record/shard.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or(std::io::ErrorKind::NotFound)?);
    let share = out.join("share");
    let man = share.join("man/man1");
    let completions = share.join("completions");
    for d in [&man, &completions] {
        // A subcommand that is gone leaves no page behind.
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    clap_mangen::generate_to(cli_args::Cli::command(), &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut cli_args::Cli::command(),
            "kmatrix",
            &completions,
        )?;
    }
    // OUT_DIR is `<target>/<profile>/build/kmatrix-<hash>/out`: the binary's folder is
    // three up.
    if let Some(bin_dir) = out.ancestors().nth(3).filter(|d| d.join("build").is_dir()) {
        copy_tree(&share, &bin_dir.join("share"))?;
    }
    Ok(())
}

/// `from` copied into `to`, replacing what a previous build left there.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}
