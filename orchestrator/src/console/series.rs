//! The functions a patch series changes, so that a report passing through one of them is
//! titled after it (`in vma_start_read_unlocked`, not `in down_read`).
//!
//! Read from unified diffs: a hunk starts inside the function its header names
//! (`@@ -2172,24 +2172,16 @@ static struct vm_area_struct *find_tcp_vma(...`), and every
//! C function definition the hunk opens (added, removed or as context) becomes the
//! enclosing function of the lines after it, until a `}` in column 0 closes it. A
//! function counts as changed when an added or removed line falls inside it. So the
//! header's function counts only if the hunk really changes it: git names the function
//! *above* the hunk, which for a hunk adding a new function after it (the seed's
//! `lock_vma_under_rcu` before `vma_start_read_unlocked`) is not changed at all.

/// The functions a unified diff (one patch, a series, an mbox) changes, in order of
/// first change, deduplicated. `SYSCALL_DEFINEn(name, ...)` is named `__do_sys_name`,
/// the name traces show for its body on every arch.
pub fn changed_functions(patch_text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in file_diffs(patch_text) {
        for h in &d.hunks {
            for l in h.lines.iter().filter(|l| l.marker != b' ') {
                if let Some(f) = &l.function {
                    if !out.contains(f) {
                        out.push(f.clone());
                    }
                }
            }
        }
    }
    out
}

/// One file's part of a unified diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiff {
    /// The path before and after the patch, relative to the tree (`-p1`); `None` for
    /// `/dev/null` (a new or deleted file) or a path that would leave the tree.
    pub old: Option<String>,
    pub new: Option<String>,
    pub hunks: Vec<Hunk>,
}

/// One hunk, its lines numbered on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    pub old_start: usize,
    pub new_start: usize,
    pub lines: Vec<HunkLine>,
}

/// A line of a hunk: `b' '` context, `b'+'` added, `b'-'` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkLine {
    pub marker: u8,
    pub text: String,
    /// Its line number in the old file (added lines: the old line it follows).
    pub old: usize,
    /// Its line number in the new file (removed lines: the new line it precedes).
    pub new: usize,
    /// The C function it sits in (C sources and headers only).
    pub function: Option<String>,
}

/// The files and hunks of a unified diff (a patch, a series, an mbox), in order.
pub fn file_diffs(patch_text: &str) -> Vec<FileDiff> {
    let lines: Vec<&str> = patch_text.lines().collect();
    let mut out: Vec<FileDiff> = Vec::new();
    let mut c_file = false;
    let mut old_path: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if let Some(path) = l.strip_prefix("--- ") {
            old_path = tree_path(path);
            i += 1;
            continue;
        }
        if let Some(path) = l.strip_prefix("+++ ") {
            let new = tree_path(path);
            let shown = new.as_deref().or(old_path.as_deref()).unwrap_or_default();
            c_file = shown.ends_with(".c") || shown.ends_with(".h");
            // A C file's functions are only followed on the side that still exists.
            c_file &= new.is_some();
            out.push(FileDiff {
                old: old_path.take(),
                new,
                hunks: vec![],
            });
            i += 1;
            continue;
        }
        let Some((old_start, old_n, new_start, new_n, context)) = hunk_header(l) else {
            i += 1;
            continue;
        };
        i += 1;
        // The hunk body: exactly old_n lines of ' '/'-' and new_n of ' '/'+' (so a
        // mail signature `-- ` after the last hunk is not read as a removed line).
        let start = i;
        let (mut old_left, mut new_left) = (old_n, new_n);
        while i < lines.len() && (old_left > 0 || new_left > 0) {
            match lines[i].as_bytes().first() {
                Some(b' ') | None => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
                Some(b'-') => old_left = old_left.saturating_sub(1),
                Some(b'+') => new_left = new_left.saturating_sub(1),
                Some(b'\\') => {}
                _ => break,
            }
            i += 1;
        }
        let Some(file) = out.last_mut() else {
            continue;
        };
        let body = &lines[start..i];
        let mut current: Option<String> = if c_file {
            header_function(context)
        } else {
            None
        };
        // `@@ -0,0 +1,5 @@` (a new file): the first line is line 1 on its side.
        let (mut old, mut new) = (old_start.max(1), new_start.max(1));
        let mut hunk = Hunk {
            old_start,
            new_start,
            lines: Vec::with_capacity(body.len()),
        };
        for (k, line) in body.iter().enumerate() {
            let (marker, text) = match line.as_bytes().first() {
                Some(&m @ (b' ' | b'+' | b'-')) => (m, &line[1..]),
                None => (b' ', ""),
                _ => continue,
            };
            if c_file {
                if let Some(name) = opens_definition(text, marker, &body[k + 1..]) {
                    current = Some(name);
                }
            }
            hunk.lines.push(HunkLine {
                marker,
                text: text.to_string(),
                old,
                new,
                function: current.clone(),
            });
            match marker {
                b'+' => new += 1,
                b'-' => old += 1,
                _ => {
                    old += 1;
                    new += 1;
                }
            }
            if text.starts_with('}') {
                current = None;
            }
        }
        file.hunks.push(hunk);
    }
    out
}

/// `a/mm/x.c\t2026-...` -> `mm/x.c` (one component stripped, as `patch -p1` does);
/// `/dev/null`, or a path leaving the tree, -> `None`.
fn tree_path(raw: &str) -> Option<String> {
    let p = raw.split('\t').next().unwrap_or_default().trim_end();
    if p == "/dev/null" {
        return None;
    }
    let (_, rest) = p.split_once('/')?;
    if rest.is_empty() || rest.starts_with('/') || rest.split('/').any(|c| c == "..") {
        return None;
    }
    Some(rest.to_string())
}

/// `@@ -a,b +c,d @@ context` → (a, b, c, d, context); a missing count is 1.
fn hunk_header(l: &str) -> Option<(usize, usize, usize, usize, &str)> {
    let rest = l.strip_prefix("@@ -")?;
    let (ranges, context) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |r: &str| -> Option<(usize, usize)> {
        match r.split_once(',') {
            Some((s, n)) => Some((s.parse().ok()?, n.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (a, b) = range(old)?;
    let (c, d) = range(new)?;
    Some((a, b, c, d, context.trim()))
}

/// The function a hunk header's context line names, if it names one.
fn header_function(context: &str) -> Option<String> {
    if context.trim_end().ends_with(';') {
        return None;
    }
    function_name(context)
}

const NOT_FUNCTIONS: &[&str] = &[
    "if",
    "for",
    "while",
    "switch",
    "return",
    "sizeof",
    "typeof",
    "__typeof__",
    "__attribute__",
    "defined",
    "do",
    "else",
    "case",
];

/// The identifier before the first `(` of a line that could open a definition.
fn function_name(text: &str) -> Option<String> {
    let first = *text.as_bytes().first()?;
    if first.is_ascii_whitespace() || matches!(first, b'#' | b'{' | b'}' | b'/' | b'*' | b')') {
        return None;
    }
    let paren = text.find('(')?;
    let before = text[..paren].trim_end();
    if before.contains('=') || before.starts_with("typedef") {
        return None;
    }
    let name_start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |p| p + 1);
    let name = &before[name_start..];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() || NOT_FUNCTIONS.contains(&name) {
        return None;
    }
    // `SYSCALL_DEFINE3(mprotect, ...)`: the body is `__do_sys_mprotect`.
    if let Some(n) = name.strip_prefix("SYSCALL_DEFINE") {
        if n.bytes().all(|b| b.is_ascii_digit()) {
            let call = text[paren + 1..].split([',', ')']).next()?.trim();
            return (!call.is_empty()).then(|| format!("__do_sys_{call}"));
        }
    }
    // Other all-caps "calls" are macros (EXPORT_SYMBOL, DEFINE_MUTEX, ...).
    if name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    Some(name.to_string())
}

/// Whether `text` (the content of a hunk line with `marker`) opens a C function
/// definition: a name and parameter list, closed (maybe on later lines of the same
/// side of the diff) and followed by `{`, not by `;` (a prototype).
fn opens_definition(text: &str, marker: u8, after: &[&str]) -> Option<String> {
    let name = function_name(text)?;
    let same_side = |l: &&&str| match l.as_bytes().first() {
        Some(b' ') | None => true,
        Some(&m) => m == marker || marker == b' ' && m == b'+',
    };
    let mut depth = 0i32;
    let mut closed = false;
    let paren = text.find('(')?;
    let mut pieces: Vec<&str> = vec![&text[paren..]];
    pieces.extend(
        after
            .iter()
            .filter(same_side)
            .take(24)
            .map(|l| l.get(1..).unwrap_or("")),
    );
    for piece in pieces {
        for c in piece.chars() {
            if closed {
                match c {
                    '{' => return Some(name),
                    ';' | '=' | ',' => return None,
                    _ => {}
                }
                continue;
            }
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        closed = true;
                    }
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = include_str!("../../tests/data/console/series/v2.patch");
    const V3: &str = include_str!("../../tests/data/console/series/v3.patch");

    #[test]
    fn seed_v2_adds_vma_start_read_unlocked_and_changes_find_tcp_vma() {
        assert_eq!(
            changed_functions(V2),
            ["vma_start_read_unlocked", "find_tcp_vma"],
            "the prototype in mmap_lock.h and the header's lock_vma_under_rcu are not changes"
        );
    }

    #[test]
    fn seed_v3_also_has_the_stub() {
        // v3 adds a `static inline` stub for !CONFIG_PER_VMA_LOCK in the header: the
        // same name, counted once.
        assert_eq!(
            changed_functions(V3),
            ["vma_start_read_unlocked", "find_tcp_vma"]
        );
    }

    #[test]
    fn header_function_counts_only_when_changed_inside() {
        let diff = "\
--- a/mm/x.c
+++ b/mm/x.c
@@ -10,7 +10,7 @@ static int outer(int a)
 {
-\treturn a;
+\treturn a + 1;
 }
 
 static int next(void)
@@ -40,4 +40,8 @@ static int untouched(void)
 \treturn 0;
 }
 
+int added(int x,
+\t  int y)
+{
+}
";
        assert_eq!(changed_functions(diff), ["outer", "added"]);
    }

    #[test]
    fn prototypes_macros_and_non_c_files_are_not_functions() {
        let diff = "\
--- a/include/x.h
+++ b/include/x.h
@@ -1 +1,5 @@
 #include <linux/types.h>
+int proto(int a);
+EXPORT_SYMBOL(proto);
+#define MACRO(x) ((x) + 1)
+static int table[] = { f(1), f(2) };
--- a/Kconfig
+++ b/Kconfig
@@ -1 +1,2 @@ config FOO
 config FOO
+\tbool \"x(y)\"
--- a/kernel/sys.c
+++ b/kernel/sys.c
@@ -5,3 +5,3 @@ SYSCALL_DEFINE2(getpriority, int, which, int, who)
 {
-\treturn 0;
+\treturn 1;
 }
-- 
2.47.3
";
        assert_eq!(changed_functions(diff), ["__do_sys_getpriority"]);
    }

    #[test]
    fn removed_function_and_signature_change() {
        let diff = "\
--- a/mm/y.c
+++ b/mm/y.c
@@ -1,9 +1,5 @@
-static void gone(void)
-{
-}
-
-int changed(int a)
+int changed(long a)
 {
 \treturn a;
 }
";
        assert_eq!(changed_functions(diff), ["gone", "changed"]);
    }

    #[test]
    fn file_diffs_number_both_sides_and_name_the_function() {
        let d = file_diffs(V3);
        let paths: Vec<_> = d.iter().map(|f| f.new.as_deref().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "include/linux/mmap_lock.h",
                "mm/mmap_lock.c",
                "net/ipv4/tcp.c"
            ]
        );
        let tcp = &d[2];
        let added: Vec<(usize, &str, Option<&str>)> = tcp
            .hunks
            .iter()
            .flat_map(|h| &h.lines)
            .filter(|l| l.marker == b'+')
            .map(|l| (l.new, l.text.as_str(), l.function.as_deref()))
            .collect();
        assert_eq!(
            added[0],
            (2175, "\tstruct vm_area_struct *vma;", Some("find_tcp_vma"))
        );
        assert_eq!(
            added[2],
            (
                2177,
                "\tif (IS_ENABLED(CONFIG_PER_VMA_LOCK)) {",
                Some("find_tcp_vma")
            )
        );
        // The second hunk of tcp.c: 2187 in the new file, 2183 + 1 context in the old.
        let comment = tcp.hunks[1]
            .lines
            .iter()
            .find(|l| l.marker == b'+')
            .unwrap();
        assert_eq!((comment.old, comment.new), (2186, 2190));
        let removed = tcp.hunks[0]
            .lines
            .iter()
            .find(|l| l.marker == b'-')
            .unwrap();
        assert_eq!((removed.old, removed.new), (2175, 2175));
        let mm = &d[1];
        let first = mm.hunks[0].lines.iter().find(|l| l.marker == b'+').unwrap();
        assert_eq!((first.new, first.function.as_deref()), (344, None));
        let body = mm.hunks[0]
            .lines
            .iter()
            .find(|l| l.text.contains("guard(rwsem_read)"))
            .unwrap();
        assert_eq!(
            (body.new, body.function.as_deref()),
            (364, Some("vma_start_read_unlocked"))
        );
    }

    #[test]
    fn new_deleted_and_escaping_files() {
        let diff = "\
--- /dev/null
+++ b/mm/new.c
@@ -0,0 +1,3 @@
+int f(void)
+{
+}
--- a/mm/old.c
+++ /dev/null
@@ -1,2 +0,0 @@
-int g(void)
-{}
--- a/../etc/x.c
+++ b/../etc/x.c
@@ -1 +1 @@
-a
+b
";
        let d = file_diffs(diff);
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].old.as_deref(), d[0].new.as_deref()),
            (None, Some("mm/new.c"))
        );
        let news: Vec<usize> = d[0].hunks[0].lines.iter().map(|l| l.new).collect();
        assert_eq!(news, [1, 2, 3]);
        assert_eq!(d[0].hunks[0].lines[2].function.as_deref(), Some("f"));
        assert_eq!(
            (d[1].old.as_deref(), d[1].new.as_deref()),
            (Some("mm/old.c"), None)
        );
        assert!(d[1].hunks[0].lines.iter().all(|l| l.function.is_none()));
        assert_eq!((d[2].old.as_deref(), d[2].new.as_deref()), (None, None));
        assert_eq!(changed_functions(diff), ["f"]);
    }
}
