//! The lines a patch series adds, numbered as in the tree after the whole series: each
//! patch's added lines are numbered after that patch ([`crate::console::file_diffs`]),
//! and every later patch that touches the same file moves them (or removes them) the way
//! its hunks move the lines of the old file.

use crate::console::{file_diffs, FileDiff};

/// One added line of the series, in post-series numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub line: usize,
    pub text: String,
    /// The C function around it, as the hunk shows it.
    pub function: Option<String>,
}

/// A file the series changes and what it adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The path after the series, relative to the tree.
    pub path: String,
    /// Added lines, by line number.
    pub added: Vec<Added>,
    /// Functions with an added or removed line, in order of first change (a function
    /// changed only by removed lines has no added line to measure, but its own lines
    /// still say whether it ran).
    pub functions: Vec<String>,
}

/// The files the series (its patches' texts, in order) leaves changed, in order of first
/// change. Files the series deletes are left out; a renamed file goes by its new name.
pub fn changed(patches: &[String]) -> Vec<Changed> {
    let mut files: Vec<Changed> = Vec::new();
    for text in patches {
        for d in file_diffs(text) {
            apply(&mut files, &d);
        }
    }
    files.retain(|f| !f.added.is_empty() || !f.functions.is_empty());
    files
}

fn apply(files: &mut Vec<Changed>, d: &FileDiff) {
    let pos = d
        .old
        .as_ref()
        .and_then(|o| files.iter().position(|f| &f.path == o));
    let Some(new) = &d.new else {
        // Deleted: nothing of it is left to run.
        if let Some(i) = pos {
            files.remove(i);
        }
        return;
    };
    let i = match pos.or_else(|| files.iter().position(|f| &f.path == new)) {
        Some(i) => i,
        None => {
            files.push(Changed {
                path: new.clone(),
                added: vec![],
                functions: vec![],
            });
            files.len() - 1
        }
    };
    let f = &mut files[i];
    f.path = new.clone();
    // Earlier patches' lines move with this patch's hunks (or go with its removals).
    let mut kept = Vec::with_capacity(f.added.len());
    for mut a in std::mem::take(&mut f.added) {
        if let Some(n) = moved(d, a.line) {
            a.line = n;
            kept.push(a);
        }
    }
    f.added = kept;
    for l in d.hunks.iter().flat_map(|h| &h.lines) {
        if l.marker == b'+' {
            f.added.push(Added {
                line: l.new,
                text: l.text.clone(),
                function: l.function.clone(),
            });
        }
        if l.marker != b' ' {
            if let Some(func) = &l.function {
                if !f.functions.contains(func) {
                    f.functions.push(func.clone());
                }
            }
        }
    }
    f.added.sort_by_key(|a| a.line);
    f.added.dedup_by_key(|a| a.line);
}

/// Where line `n` of the old file is after the diff `d`, `None` if the diff removes it.
fn moved(d: &FileDiff, n: usize) -> Option<usize> {
    let mut shift: isize = 0;
    for h in &d.hunks {
        let old_n = h.lines.iter().filter(|l| l.marker != b'+').count();
        let new_n = h.lines.iter().filter(|l| l.marker != b'-').count();
        // `@@ -10,0 +11,2 @@` inserts after line 10: it starts at line 11.
        let first = if old_n == 0 {
            h.old_start + 1
        } else {
            h.old_start
        };
        if n < first {
            break;
        }
        if n < first + old_n {
            let l = h.lines.iter().find(|l| l.marker != b'+' && l.old == n)?;
            return (l.marker == b' ').then_some(l.new);
        }
        shift += new_n as isize - old_n as isize;
    }
    usize::try_from(n as isize + shift).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = include_str!("../../../tests/data/console/series/v3.patch");

    fn lines(c: &Changed) -> Vec<usize> {
        c.added.iter().map(|a| a.line).collect()
    }

    #[test]
    fn seed_v3_added_lines_per_file() {
        let c = changed(&[V3.to_string()]);
        let paths: Vec<&str> = c.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "include/linux/mmap_lock.h",
                "mm/mmap_lock.c",
                "net/ipv4/tcp.c"
            ]
        );
        assert_eq!(
            lines(&c[0]),
            [262, 263, 264, 525, 526, 527, 528, 529, 530, 531]
        );
        assert_eq!(lines(&c[1]), (344..=375).collect::<Vec<_>>());
        assert_eq!(lines(&c[2]), [2175, 2176, 2177, 2178, 2179, 2180, 2190]);
        assert_eq!(c[1].functions, ["vma_start_read_unlocked"]);
        assert_eq!(c[2].functions, ["find_tcp_vma"]);
        let guard = c[1].added.iter().find(|a| a.line == 364).unwrap();
        assert!(guard.text.contains("guard(rwsem_read)"), "{guard:?}");
        assert_eq!(guard.function.as_deref(), Some("vma_start_read_unlocked"));
    }

    fn patch(path: &str, hunks: &str) -> String {
        format!("--- a/{path}\n+++ b/{path}\n{hunks}")
    }

    #[test]
    fn a_later_patch_moves_and_removes_earlier_lines() {
        // Patch 1 adds lines 3 and 4 after line 2 (old lines 3.. move down by 2).
        let p1 = patch(
            "mm/a.c",
            "@@ -1,3 +1,5 @@\n one\n two\n+new3\n+new4\n three\n",
        );
        // Patch 2 adds two lines at the top and removes what patch 1 added as line 4.
        let p2 = patch(
            "mm/a.c",
            "@@ -1,2 +1,4 @@\n+top1\n+top2\n one\n two\n@@ -4,2 +6,1 @@\n-new4\n three\n",
        );
        let c = changed(&[p1.clone(), p2]);
        assert_eq!(lines(&c[0]), [1, 2, 5]);
        assert_eq!(c[0].added[2].text, "new3");
        // A -U0 insertion after line 10 moves line 11 on, not line 10.
        let p3 = patch("mm/a.c", "@@ -2,0 +3,1 @@\n+ins\n");
        let c = changed(&[p1, p3]);
        assert_eq!(lines(&c[0]), [3, 4, 5]);
        assert_eq!(c[0].added[0].text, "ins");
    }

    #[test]
    fn renames_and_deletions() {
        let p1 = patch("mm/a.c", "@@ -1,1 +1,2 @@\n one\n+two\n");
        let p2 = "--- a/mm/a.c\n+++ b/mm/b.c\n@@ -1,2 +1,3 @@\n+zero\n one\n two\n".to_string();
        let c = changed(&[p1.clone(), p2]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "mm/b.c");
        assert_eq!(lines(&c[0]), [1, 3]);
        let del = "--- a/mm/a.c\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-one\n-two\n".to_string();
        assert!(changed(&[p1, del]).is_empty());
    }

    #[test]
    fn removal_only_changes_keep_the_function() {
        let p = patch(
            "mm/a.c",
            "@@ -1,5 +1,4 @@ int f(void)\n {\n-\tg();\n \treturn 0;\n }\n \n",
        );
        let c = changed(&[p]);
        assert_eq!(c[0].functions, ["f"]);
        assert!(c[0].added.is_empty());
    }
}
