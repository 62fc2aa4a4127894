//! Man pages and shell completions: the build generates one page per subcommand from the
//! clap definitions the binary parses with, `man -l` renders each with its options, the
//! bash completion completes subcommands and options, and
//! `scripts/install-man-completions` (what setup-host runs) installs them idempotently
//! where `man kmatrix-run` and the shells find them.

use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What this build's build.rs generated (the same files target/release/share/ gets).
fn share() -> PathBuf {
    Path::new(env!("OUT_DIR")).join("share")
}

fn render(args: &[&str], page: &str) -> String {
    // Not justified nor hyphenated, so that words and options read as written.
    let out = Command::new("man")
        .args(["--no-justification", "--no-hyphenation"])
        .args(args)
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("man (man-db) is installed by scripts/setup-host");
    assert!(
        out.status.success(),
        "man {args:?} {page}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // man's bold and underline (backspace overstrikes) removed.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut clean = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            clean.pop();
        } else {
            clean.push(c);
        }
    }
    clean
}

#[test]
fn every_subcommand_has_a_man_page_that_man_renders_with_its_options() {
    let cli = kmatrix::cli::Cli::command();
    let dir = share().join("man/man1");
    let top = render(&["-l"], &dir.join("kmatrix.1").to_string_lossy());
    let mut n = 0;
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let page = dir.join(format!("kmatrix-{name}.1"));
        assert!(page.is_file(), "no man page for `kmatrix {name}`");
        let text = render(&["-l"], &page.to_string_lossy());
        assert!(
            text.contains(&format!("kmatrix-{name} - ")),
            "kmatrix-{name}.1 has no NAME line:\n{text}"
        );
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("--{long}")),
                    "kmatrix-{name}.1 does not show --{long}:\n{text}"
                );
            }
        }
        assert!(
            top.contains(&format!("kmatrix-{name}(1)")),
            "kmatrix.1 does not list kmatrix-{name}(1)"
        );
        n += 1;
    }
    assert!(n >= 10, "only {n} subcommands");
    let run = render(&["-l"], &dir.join("kmatrix-run.1").to_string_lossy());
    assert!(run.contains("Only cells whose id"), "{run}");
}

#[test]
fn bash_completes_subcommands_and_options() {
    let file = share().join("completions/kmatrix.bash");
    // What bash-completion does when the user presses Tab after `kmatrix ru` and after
    // `kmatrix run --on`.
    let script = format!(
        r#"source '{}'
COMP_WORDS=(kmatrix ru); COMP_CWORD=1; _kmatrix kmatrix ru kmatrix; echo "1:${{COMPREPLY[*]}}"
COMP_WORDS=(kmatrix run --on); COMP_CWORD=2; _kmatrix kmatrix --on run; echo "2:${{COMPREPLY[*]}}"
COMP_WORDS=(kmatrix b); COMP_CWORD=1; _kmatrix kmatrix b kmatrix; echo "3:${{COMPREPLY[*]}}""#,
        file.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1:run\n"), "{text}");
    assert!(text.contains("2:--only\n"), "{text}");
    let three = text.lines().find(|l| l.starts_with("3:")).unwrap();
    for sub in ["build", "boot", "bisect"] {
        assert!(three.split([':', ' ']).any(|w| w == sub), "{three}");
    }
    // zsh and fish are not on this host: their files are checked for the subcommands.
    for f in ["_kmatrix", "kmatrix.fish"] {
        let text = std::fs::read_to_string(share().join("completions").join(f)).unwrap();
        for sub in kmatrix::cli::Cli::command().get_subcommands() {
            assert!(
                text.contains(sub.get_name()),
                "{f} lacks {}",
                sub.get_name()
            );
        }
    }
}

#[test]
fn the_install_script_puts_them_where_man_and_the_shells_look_and_is_idempotent() {
    let prefix = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-man-completions");
    let install = || {
        let out = Command::new("bash")
            .arg(&script)
            .arg(prefix.path())
            .env("KMATRIX_BUILD_SHARE", share())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    install();
    let man1 = prefix.path().join("share/man/man1");
    // `man kmatrix-run` as a user types it, with the prefix's man folder searched.
    let text = render(
        &["-M", &prefix.path().join("share/man").to_string_lossy()],
        "kmatrix-run",
    );
    assert!(
        text.contains("kmatrix-run - Build, boot and test"),
        "{text}"
    );
    for f in [
        "share/bash-completion/completions/kmatrix",
        "share/zsh/site-functions/_kmatrix",
        "share/fish/vendor_completions.d/kmatrix.fish",
    ] {
        assert!(prefix.path().join(f).is_file(), "{f} not installed");
    }
    // A rerun copies nothing that did not change, and a page of a subcommand that is
    // gone is removed.
    let page = man1.join("kmatrix-run.1");
    let mtime = || std::fs::metadata(&page).unwrap().modified().unwrap();
    let before = mtime();
    std::fs::write(man1.join("kmatrix-gone.1"), ".TH gone 1\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    install();
    assert_eq!(mtime(), before, "an unchanged page was copied again");
    assert!(!man1.join("kmatrix-gone.1").exists(), "stale page kept");
}
