//! A series is code that runs at build time (issue 30): a patch whose Makefile rule
//! writes outside the build's folders, and one whose rule opens a connection to the
//! host, both fail the build (BUILD-FAIL, in the tool's words) and leave the host
//! untouched. A stand-in kernel tree (a Makefile that answers kmatrix's make targets)
//! keeps this to seconds; the sandbox is the real one (bubblewrap).

use std::path::Path;
use std::process::Command;

/// The stand-in tree's Makefile: what kmatrix's build asks of a kernel tree.
const MAKEFILE: &str = "\
O ?= .
tinyconfig:
\t@printf 'CONFIG_64BIT=y\\nCONFIG_MMU=y\\n' > $(O)/.config
olddefconfig prepare modules:
\t@true
bzImage:
\t@echo \"  CC      mm/a.o\"
\t@mkdir -p $(O)/arch/x86/boot && echo image > $(O)/arch/x86/boot/bzImage && echo elf > $(O)/vmlinux
";

/// A unified diff that adds `rule` (a recipe line) at the top of the `bzImage` rule.
fn patch_adding(dir: &Path, name: &str, rule: &str) -> String {
    let evil = MAKEFILE.replace("bzImage:\n", &format!("bzImage:\n\t{rule}\n"));
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, MAKEFILE).unwrap();
    std::fs::write(&b, evil).unwrap();
    let out = Command::new("diff")
        .args(["-u", "--label", "a/Makefile", "--label", "b/Makefile"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let p = dir.join(name);
    std::fs::write(&p, &out.stdout).unwrap();
    p.display().to_string()
}

#[test]
fn a_series_writing_outside_or_reaching_the_network_fails_its_build_and_leaves_the_host_alone() {
    if let Err(why) = kmatrix::host::sandbox::status() {
        eprintln!(
            "SKIPPED: a_series_writing_outside_or_reaching_the_network_fails_its_build_and_leaves_the_host_alone: no build sandbox here ({why}); kmatrix doctor says how to get one"
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("kconfigs")).unwrap();
    std::fs::write(p.join("kconfigs/guest.config"), "CONFIG_TTY=y\n").unwrap();
    std::fs::create_dir_all(p.join("linux")).unwrap();
    std::fs::write(p.join("linux/Makefile"), MAKEFILE).unwrap();
    // What the series would like to reach: a folder of the host, a port on the host.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("pwned");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let write = patch_adding(
        p,
        "write.patch",
        &format!("@echo pwned > {}", target.display()),
    );
    let net = patch_adding(
        p,
        "net.patch",
        &format!("@bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && echo sent >&3'"),
    );
    std::fs::write(
        p.join("kmatrix.yaml"),
        format!(
            "source: {{ path: linux }}\nfragments: [guest]\narches: [x86_64]\n\
             configs: {{ on: [] }}\npatchsets: {{ base: [], write: [{write}], net: [{net}] }}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kmatrix"))
        .arg("build")
        .arg("--spec")
        .arg(p.join("kmatrix.yaml"))
        .arg("--runs-dir")
        .arg(p.join("runs"))
        .env("KMATRIX_CACHE", p.join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let run = std::fs::canonicalize(p.join("runs/latest")).unwrap();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let cell = |id: &str| {
        results["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id}: {results:#}"))
            .clone()
    };
    // The same tree without the series builds: the failures are the series'.
    assert_eq!(cell("x86_64/on/base")["verdict"], "PASS");
    for id in ["x86_64/on/write", "x86_64/on/net"] {
        let c = cell(id);
        assert_eq!(c["verdict"], "BUILD-FAIL", "{c:#}");
        let details = c["details"].to_string();
        assert!(
            details.contains("kmatrix's sandbox") && details.contains("Makefile"),
            "{id}: {details}"
        );
    }
    assert!(!target.exists(), "the series wrote outside its build");
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the series reached the host's network"
    );
    assert_eq!(out.status.code(), Some(1), "findings exit code");
}
