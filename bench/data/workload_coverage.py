"""bench/workload-coverage's two steps (see that script).

prepare SRC WORK: the one-patch series that makes series coverage profile every file with a
  VMA-lock call site, and the spec (kmatrix.yaml with that series as patchset `workload`).
report SRC RUN ARCH: per call site, the tests whose counters show it ran; totals per file.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

API = re.compile(
    r"\b(lock_vma_under_rcu|vma_start_read\w*|vma_start_write\w*|vma_end_read|vma_assert_\w+"
    r"|mmap_read_lock\w*|mmap_write_lock\w*|mmap_write_downgrade)\s*\("
)
COMMENT = "/* kmatrix bench/workload-coverage: profile this object */"
# The programs issue 29 added: the total without them is the figure before it.
NEW = {"binder_vs_writers", "mempolicy_vs_faults", "collapse_vs_faults", "vma_users_vs_writers"}


def candidates(src):
    out = []
    for d in ("mm", "kernel/bpf"):
        out += sorted(os.path.join(d, f) for f in os.listdir(os.path.join(src, d)) if f.endswith(".c"))
    out += ["fs/proc/task_mmu.c", "fs/userfaultfd.c", "net/ipv4/tcp.c", "drivers/android/binder_alloc.c"]
    return [f for f in out if os.path.isfile(os.path.join(src, f))]


def call_sites(text):
    """(line number, API name, line) of each call; definitions (column 0) and comments skipped."""
    sites, in_comment = [], False
    for n, line in enumerate(text.splitlines(), 1):
        code = line
        if in_comment:
            if "*/" not in code:
                continue
            code, in_comment = code.split("*/", 1)[1], False
        code = re.sub(r"/\*.*?\*/", "", code).split("//")[0]
        if "/*" in code:
            code, in_comment = code.split("/*")[0], True
        if not code.strip() or not code[:1].isspace():
            continue  # a blank/comment line, or a definition or prototype at column 0
        for m in API.finditer(code):
            sites.append((n, m.group(1), line.strip()))
    return sites


def prepare(src, work):
    files = [f for f in candidates(src) if call_sites(open(os.path.join(src, f), errors="replace").read())]
    series = os.path.join(work, "series")
    shutil.rmtree(series, ignore_errors=True)
    os.makedirs(series)
    with open(os.path.join(series, "0001-workload-coverage.patch"), "w") as p:
        p.write("From: kmatrix bench <bench@kmatrix.invalid>\n")
        p.write("Subject: [PATCH] bench: profile the users of the VMA-lock API\n\n")
        p.write("A comment at the end of each file: no code changes.\n---\n")
        for f in files:
            lines = open(os.path.join(src, f), errors="replace").read().splitlines()
            n = len(lines)
            p.write(f"--- a/{f}\n+++ b/{f}\n@@ -{n},1 +{n},2 @@\n {lines[-1]}\n+{COMMENT}\n")
    with open(os.path.join(series, "series"), "w") as s:
        s.write("0001-workload-coverage.patch\n")
    # The spec: kmatrix.yaml's fragments, harness, vm and tests; pvl-on; the one patchset.
    # Harness patches and tests limited to kmatrix.yaml's own patchsets (the probe of the
    # seed's function) are left out: they need the series.
    up = os.path.relpath(".", work)
    out, skip = [f"kconfigs: {up}/kconfigs\n", f"guest-tests: {up}/guest-tests\n"], None
    item = []

    def flush():
        if item and not any(re.match(r"^\s+patchsets:|.*\bpatchsets: \[", x) for x in item):
            out.extend(item)
        item.clear()

    for line in open("kmatrix.yaml"):
        top = re.match(r"^(\w[\w-]*):", line)
        if top:
            flush()
            skip = None
            if top.group(1) == "configs":
                out.append("configs:\n  pvl-on: [pvl-on]\n")
                skip = "configs"
                continue
            if top.group(1) == "patchsets":
                out.append("patchsets:\n  workload: [series]\n")
                skip = "patchsets"
                continue
            if top.group(1) == "baseline":
                continue
        if skip:
            continue
        line = re.sub(r"(patch|module): guest-tests/", rf"\1: {up}/guest-tests/", line)
        if re.match(r"^  - ", line):
            flush()
            item.append(line)
        elif item and line.startswith("    "):
            item.append(line)
        else:
            flush()
            out.append(line)
    flush()
    open(os.path.join(work, "workload.yaml"), "w").write("".join(out))
    print(f"{len(files)} files with VMA-lock call sites profiled: {os.path.join(work, 'workload.yaml')}")


def gcov_lines(gcov, notes, counters, source):
    """line -> count of `source` (not the headers it inlines) from gcov's JSON."""
    with tempfile.TemporaryDirectory() as t:
        shutil.copy(notes, os.path.join(t, "o.gcno"))
        if counters:
            shutil.copy(counters, os.path.join(t, "o.gcda"))
        r = subprocess.run([gcov, "--json-format", "--stdout", "o.gcda" if counters else "o.gcno"],
                           cwd=t, capture_output=True, text=True, check=False)
    out = {}
    for doc in r.stdout.splitlines():
        if not doc.strip().startswith("{"):
            continue
        for f in json.loads(doc).get("files", []):
            if f["file"] != source and not f["file"].endswith("/" + source):
                continue
            for ln in f.get("lines", []):
                out[ln["line_number"]] = out.get(ln["line_number"], 0) + ln["count"]
    return out


def report(src, run, arch):
    cell = os.path.join(run, arch, "pvl-on", "workload")
    mp = json.load(open(os.path.join(cell, "coverage", "map.json")))
    gcov = ("aarch64-linux-gnu-" if arch == "arm64" else "") + "gcov"
    tests_dir = os.path.join(cell, "results", "coverage")
    tests = sorted(os.listdir(tests_dir)) if os.path.isdir(tests_dir) else []
    rows, per_file, unbuilt = [], {}, []
    for f in mp["files"]:
        path, built = f["path"], f["built"]
        sites = call_sites(open(os.path.join(src, path), errors="replace").read())
        if built.get("state") != "profiled":
            why = built.get("why") or built.get("reason") or built.get("state")
            unbuilt.append((path, len(sites), why))
            continue
        obj = built["object"][:-2]
        notes = os.path.join(cell, "coverage", "notes", obj + ".gcno")
        code = set(gcov_lines(gcov, notes, None, path))
        ran = {}
        for t in tests:
            gcda = os.path.join(tests_dir, t, obj + ".gcda")
            if os.path.exists(gcda):
                for ln, c in gcov_lines(gcov, notes, gcda, path).items():
                    if c > 0:
                        ran.setdefault(ln, []).append(t)
        reached = total = older = 0
        for n, api, text in sites:
            if n not in code:
                rows.append((path, n, api, "no code (compiled out or inlined away)", []))
                continue
            total += 1
            reached += bool(ran.get(n))
            older += any(t not in NEW for t in ran.get(n, []))
            rows.append((path, n, api, "reached" if ran.get(n) else "NOT reached", ran.get(n, [])))
        per_file[path] = (reached, total, older)
    print(f"\n== {arch}/pvl-on: VMA-lock call sites the default tests reach "
          f"({len(tests)} tests with counters)")
    for path, n, api, st, by in rows:
        who = ", ".join(by[:4]) + (f" +{len(by) - 4}" if len(by) > 4 else "")
        print(f"  {path}:{n:<5} {api:<28} {st:<12} {who}")
    pct = lambda a, b: 100 * a / b if b else 0.0  # noqa: E731
    print(f"\n  {'file':<34} reached/sites         without {', '.join(sorted(NEW))}")
    for path, (r, t, o) in sorted(per_file.items()):
        print(f"  {path:<34} {r:>3}/{t:<3} {pct(r, t):5.1f}%   {o:>3}/{t:<3} {pct(o, t):5.1f}%")
    r, t, o = (sum(v[i] for v in per_file.values()) for i in range(3))
    print(f"  {'TOTAL ' + arch:<34} {r:>3}/{t:<3} {pct(r, t):5.1f}%   {o:>3}/{t:<3} {pct(o, t):5.1f}%")
    for path, n, why in unbuilt:
        print(f"  not counted: {path} ({n} call sites): {why}")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        report(sys.argv[2], sys.argv[3], sys.argv[4])
