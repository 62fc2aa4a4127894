//! `kmatrix mcp` driven by a real MCP client (the `mcp` Python SDK from PyPI, in the
//! venv scripts/setup-host makes): the tools are listed with their read-only hints,
//! `plan` answers from the spec, `run` starts a real `kmatrix run` whose verdicts
//! `results` follows to the end, `cell` shows a cell's build errors and `compare` two
//! runs without writing into them.
//!
//! The spec's kernel tree is a cheap kernel-like one (its Makefile does what kmatrix's
//! build asks, compiles `lib/*.c`, then stops: it is not a kernel), so the run ends at
//! the builds in seconds and starts no VM; the run folder is a real one all the same.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `KMATRIX_MCP_PYTHON`, else the venv scripts/setup-host makes.
fn mcp_python() -> PathBuf {
    let p: PathBuf = std::env::var_os("KMATRIX_MCP_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| "/opt/kmatrix/mcp/bin/python".into());
    assert!(
        p.is_file(),
        "{} not found: `bash scripts/setup-host` installs the mcp SDK there",
        p.display()
    );
    p
}

const MAKEFILE: &str = "\
tinyconfig:
\t@mkdir -p $(O) && echo '# fixture' > $(O)/.config
olddefconfig prepare modules:
\t@true
bzImage:
\t@for f in $(CURDIR)/lib/*.c; do $(CC) -fsyntax-only $$f || exit 1; done
\t@echo 'fixture: error: a kernel-like test tree, not a kernel' >&2; exit 1
";

const BROKEN: &str = "\
--- a/lib/fixture.c
+++ b/lib/fixture.c
@@ -1,4 +1,4 @@
 int fixture_count(int a)
 {
-\treturn a + 1;
+\treturn a + 1
 }
";

/// A spec over the cheap tree: patchsets `base` and `broken` (a missing semicolon).
fn spec(dir: &Path) -> PathBuf {
    let t = dir.join("linux");
    std::fs::create_dir_all(t.join("lib")).unwrap();
    std::fs::write(t.join("Makefile"), MAKEFILE).unwrap();
    std::fs::write(
        t.join("lib/fixture.c"),
        "int fixture_count(int a)\n{\n\treturn a + 1;\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.patch"), BROKEN).unwrap();
    let p = project();
    let spec = dir.join("kmatrix.yaml");
    std::fs::write(
        &spec,
        format!(
            "source: {{ path: linux }}\nkconfigs: {}\nguest-tests: {}\nfragments: [guest]\narches: [x86_64]\nconfigs: {{ pvl-on: [pvl-on] }}\npatchsets: {{ base: [], broken: [broken.patch] }}\ntests:\n  - {{ name: faults_vs_writers, duration: 5s, timeout: 2m }}\nselftests: []\n",
            p.join("kconfigs").display(),
            p.join("guest-tests").display()
        ),
    )
    .unwrap();
    spec
}

fn client(spec: &Path, cache: &Path, calls: Value) -> Value {
    let out = Command::new(mcp_python())
        .arg(project().join("orchestrator/tests/data/mcp/client.py"))
        .arg(env!("CARGO_BIN_EXE_kmatrix"))
        .arg(spec)
        .arg(calls.to_string())
        .env("KMATRIX_CACHE", cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client.py failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client.py printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
#[ignore = "needs the mcp Python SDK (scripts/setup-host installs it); run with --include-ignored"]
fn an_mcp_client_lists_the_tools_runs_cells_and_reads_their_results() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let spec = spec(d.path());
    let v = client(
        &spec,
        &cache,
        json!([
            { "name": "plan", "arguments": { "only": ["x86_64/*"] } },
            { "name": "results" },
            { "name": "run", "arguments": { "only": [] } },
            { "name": "run", "arguments": { "only": ["x86_64/pvl-on/*"] } },
            { "poll": "results" },
            { "name": "cell", "arguments": { "cell": "x86_64/pvl-on/broken", "console_lines": 5 } },
            { "name": "cell", "arguments": { "cell": "x86_64/nope/base" } },
        ]),
    );
    assert_eq!(v["server"], "rmcp", "{v:#}");
    let tools: Vec<(&str, Option<bool>)> = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["read_only"].as_bool()))
        .collect();
    for (name, read_only) in [
        ("plan", true),
        ("run", false),
        ("results", true),
        ("cell", true),
        ("compare", true),
    ] {
        assert!(
            tools.contains(&(name, Some(read_only))),
            "{name} (read-only {read_only}) missing: {tools:?}"
        );
    }
    let run_tool = v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "run")
        .unwrap();
    assert_eq!(
        run_tool["input"]["required"],
        json!(["only"]),
        "{run_tool:#}"
    );
    let calls = v["calls"].as_array().unwrap();

    // plan: the spec's cells.
    let plan = &calls[0]["json"];
    let ids: Vec<&str> = plan["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["x86_64/pvl-on/base", "x86_64/pvl-on/broken"],
        "{plan:#}"
    );
    assert_eq!(plan["tests"], json!(["faults_vs_writers"]));

    // Before any run there is nothing to read, and `run` wants cells.
    assert!(calls[1]["is_error"].as_bool().unwrap(), "{:#}", calls[1]);
    assert!(calls[1]["text"].as_str().unwrap().contains("no run yet"));
    assert!(calls[2]["is_error"].as_bool().unwrap(), "{:#}", calls[2]);

    // run: started in a folder of its own, followed by `results` to its end.
    let started = &calls[3]["json"];
    assert_eq!(started["started"], true, "{:#}", calls[3]);
    let folder = PathBuf::from(started["folder"].as_str().unwrap());
    assert!(folder.starts_with(d.path().join("runs")), "{folder:?}");
    let results = &calls[4]["json"];
    assert_eq!(results["running"], false, "{results:#}");
    assert_eq!(results["exit_code"], 1, "{results:#}");
    let cells: Vec<(&str, &str)> = results["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cells,
        [
            ("x86_64/pvl-on/base", "BUILD-FAIL"),
            ("x86_64/pvl-on/broken", "BUILD-FAIL")
        ]
    );
    assert!(results["matrix"].as_str().unwrap().contains("BUILD-FAIL"));
    let run_dir = PathBuf::from(results["run"].as_str().unwrap());
    assert!(run_dir.join("report.html").is_file(), "{run_dir:?}");

    // cell: the build error of the patched cell, and its id checked against the run.
    let cell = &calls[5]["json"];
    assert_eq!(cell["verdict"], "BUILD-FAIL");
    assert!(
        cell["details"][0]
            .as_str()
            .unwrap()
            .starts_with("lib/fixture.c:3:"),
        "{cell:#}"
    );
    assert_eq!(cell["folder"], json!(run_dir.join("x86_64/pvl-on/broken")));
    assert!(calls[6]["is_error"].as_bool().unwrap());
    assert!(calls[6]["text"]
        .as_str()
        .unwrap()
        .contains("its cells: x86_64/pvl-on/base, x86_64/pvl-on/broken"));

    // A second server, given the first run's folder: compare it with itself, read-only.
    let v = client(
        &spec,
        &cache,
        json!([
            { "name": "results", "arguments": { "run": run_dir } },
            { "name": "compare", "arguments": { "old": run_dir, "new": run_dir } },
        ]),
    );
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls[0]["json"]["cells"].as_array().unwrap().len(), 2);
    assert!(calls[0]["json"].get("running").is_none());
    let cmp = &calls[1]["json"];
    assert_eq!(cmp["new"], false, "{cmp:#}");
    assert!(
        cmp["text"].as_str().unwrap().contains("nothing new"),
        "{cmp:#}"
    );
    assert!(
        !run_dir.join("compare.json").exists(),
        "compare wrote into the run"
    );
}
