//! Lock graph diff, base vs patched: lockdep's own dependency graph (`/proc/lockdep`, saved
//! after the stress in every lockdep cell) compared with the base cell of the same arch
//! and config. New lock classes, new dependency edges (A -> B that base never took),
//! locks the series declares that were never acquired (its new path not exercised), and
//! new edges that close a cycle with edges either graph took: a deadlock waiting for the
//! right timing, visible before any splat. Synchronous and pure.

use crate::record::lockgraph::{edge_key, Diff};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most entries of each list kept in results.json (the graph itself is in the cell folder).
const SHOWN: usize = 40;

/// A lock base already takes under at least this share of its classes (lockdep's BD: the
/// classes that lead to it) is "widely nested": the run queue, timer and RCU locks that
/// any lock can end up held over, depending on when an interrupt or a wakeup came. Two
/// boots of one kernel differ by a dozen such edges, so they are counted apart from the
/// series' own.
const WIDELY_NESTED_PERCENT: usize = 10;

/// lockdep's graph: class names, and direct (distance 1) dependencies A -> B: B was
/// taken while A was held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    pub classes: BTreeSet<String>,
    pub edges: BTreeSet<(String, String)>,
    /// lockdep's BD per class: how many classes lead to it.
    pub backward: BTreeMap<String, usize>,
    /// The file held more than [`MAX_EDGES`] edges or [`MAX_CLASSES`] classes; the rest
    /// were not read.
    pub truncated: bool,
}

/// Most of each a graph keeps. lockdep's own tables hold at most MAX_LOCKDEP_KEYS (8192)
/// classes and MAX_LOCKDEP_ENTRIES (32768, up to 1M with its config) edges; a file that
/// claims more was not written by lockdep.
pub const MAX_CLASSES: usize = 65_536;
pub const MAX_EDGES: usize = 1 << 20;

impl Graph {
    /// Whether `class` is one that base takes under many others (see WIDELY_NESTED_PERCENT).
    fn widely_nested(&self, class: &str) -> bool {
        let bd = self.backward.get(class).copied().unwrap_or(0);
        bd >= 8 && bd * 100 >= self.classes.len() * WIDELY_NESTED_PERCENT
    }
}

/// One lock chain of `/proc/lockdep_chains`: the classes held, outermost first, when
/// the last one was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub irq_context: String,
    pub classes: Vec<String>,
}

/// Parse `/proc/lockdep_chains`:
/// ```text
/// all lock chains:
/// irq_context: 0
/// [00000000a1b2c3d4] &mm->mmap_lock
/// [00000000deadbeef] &vma->vm_lock
/// ```
pub fn parse_chains(text: &str) -> Vec<Chain> {
    let mut out = Vec::new();
    let mut cur: Option<Chain> = None;
    for line in text.lines() {
        if let Some(ctx) = line.strip_prefix("irq_context: ") {
            out.extend(cur.take());
            cur = Some(Chain {
                irq_context: ctx.trim().to_string(),
                classes: Vec::new(),
            });
        } else if let (Some(c), Some(rest)) = (cur.as_mut(), line.strip_prefix('[')) {
            if let Some((_, name)) = rest.split_once("] ") {
                c.classes.push(normalize(name));
            }
        } else if line.trim().is_empty() {
            out.extend(cur.take());
        }
    }
    out.extend(cur);
    out.retain(|c| !c.classes.is_empty());
    out
}

/// The shortest chain in which `to` was taken with `from` held: where in the kernel's
/// nesting the edge was made (lockdep's files keep no call sites; its splats do).
fn context<'a>(chains: &'a [Chain], from: &str, to: &str) -> Option<&'a Chain> {
    chains
        .iter()
        .filter(|c| {
            c.classes.last().map(String::as_str) == Some(to)
                && c.classes[..c.classes.len() - 1].iter().any(|x| x == from)
        })
        .min_by_key(|c| c.classes.len())
}

/// A class name as lockdep prints it, made comparable across kernels: the `#N` version of
/// a name registered more than once depends on registration order, so it goes.
fn normalize(name: &str) -> String {
    let n = name.trim();
    match n.rfind('#') {
        Some(i)
            if n[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .count()
                > 0 =>
        {
            let rest: String = n[i + 1..]
                .chars()
                .skip_while(|c| c.is_ascii_digit())
                .collect();
            format!("{}{rest}", &n[..i])
        }
        _ => n.to_string(),
    }
}

/// Parse `/proc/lockdep`:
/// ```text
/// all lock classes:
/// 00000000a1b2c3d4 FD:   31 BD:    1 +.+.: &mm->mmap_lock
///  -> [00000000deadbeef] &vma->vm_lock
/// ```
/// Lines it does not know are skipped; kmatrix's own liveness classes are left out.
pub fn parse(text: &str) -> Graph {
    let mut g = Graph::default();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(" -> [") {
            let Some((_, name)) = rest.split_once("] ") else {
                continue;
            };
            if let Some(from) = &current {
                let to = normalize(name);
                if g.edges.len() >= MAX_EDGES || g.classes.len() >= MAX_CLASSES {
                    g.truncated = true;
                    continue;
                }
                if !to.contains(crate::record::result::LIVENESS_TAG) {
                    g.classes.insert(to.clone());
                    g.edges.insert((from.clone(), to));
                }
            }
        } else if !line.starts_with(' ') && line.contains(" FD:") {
            // `KEY FD: n BD: n USAGE: NAME`: the name follows the first ": " after BD.
            let after_bd = line.split_once(" BD:").map(|(_, r)| r).unwrap_or("");
            current = after_bd.split_once(": ").map(|(_, name)| normalize(name));
            let bd: usize = after_bd
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if g.classes.len() >= MAX_CLASSES {
                g.truncated = true;
                current = None;
                continue;
            }
            if let Some(c) = &current {
                if c.contains(crate::record::result::LIVENESS_TAG) {
                    current = None;
                } else {
                    g.classes.insert(c.clone());
                    let e = g.backward.entry(c.clone()).or_default();
                    *e = (*e).max(bd);
                }
            }
        } else if line.trim().is_empty() {
            current = None;
        }
    }
    g
}

/// The locks a series declares (added lines): `DEFINE_MUTEX(x)` and friends give class
/// `x`; `mutex_init(&p->lock)` and friends give `&p->lock`, as lockdep names them.
pub fn series_locks(patch: &str) -> Vec<String> {
    const STATIC: &[&str] = &[
        "DEFINE_MUTEX(",
        "DEFINE_SPINLOCK(",
        "DEFINE_RAW_SPINLOCK(",
        "DEFINE_RWLOCK(",
        "DECLARE_RWSEM(",
        "DEFINE_RWSEM(",
        "DEFINE_SEQLOCK(",
    ];
    const INIT: &[&str] = &[
        "mutex_init(",
        "spin_lock_init(",
        "raw_spin_lock_init(",
        "rwlock_init(",
        "init_rwsem(",
        "seqlock_init(",
    ];
    let mut v: Vec<String> = Vec::new();
    for l in patch
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
    {
        for m in STATIC.iter().chain(INIT) {
            if let Some(i) = l.find(m) {
                let arg: String = l[i + m.len()..]
                    .chars()
                    .take_while(|c| *c != ')' && *c != ',')
                    .collect();
                let arg = arg.trim().to_string();
                if !arg.is_empty() && !v.contains(&arg) {
                    v.push(arg);
                }
            }
        }
    }
    v
}

/// The words of a series' code: identifiers (4+ characters) of its added and removed
/// lines and the names of the files it touches (`mm/mmap_lock.c` gives `mmap_lock`).
pub fn series_words(patch: &str) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut add = |text: &str| {
        for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if w.len() >= 4 && !w.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                words.insert(w.to_string());
            }
        }
    };
    for l in patch.lines() {
        if let Some(path) = l
            .strip_prefix("+++ b/")
            .or_else(|| l.strip_prefix("--- a/"))
        {
            let stem = path.rsplit('/').next().unwrap_or(path);
            add(stem.split('.').next().unwrap_or(stem));
        } else if (l.starts_with('+') || l.starts_with('-'))
            && !l.starts_with("+++")
            && !l.starts_with("---")
        {
            add(&l[1..]);
        }
    }
    words
}

/// Whether a lock class is named after the series' code: one of its words (not a
/// generic one such as `lock` or `mutex`) is part of a word of the series
/// (`vm_lock` of `vm_lock_seq`, `mmap_lock` of the file `mm/mmap_lock.c`).
fn names_series_code(class: &str, words: &BTreeSet<String>) -> bool {
    const GENERIC: &[&str] = &[
        "lock",
        "mutex",
        "rwsem",
        "wait_lock",
        "spinlock",
        "work",
        "wait",
        "list_lock",
        "lock_key",
        "events",
        "wq_completion",
        "work_completion",
    ];
    class
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() >= 4 && !GENERIC.contains(w))
        .any(|w| words.iter().any(|s| s.contains(w)))
}

/// What the series brings to the comparison: the locks it declares and the words of
/// its code.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub declared: Vec<String>,
    pub words: BTreeSet<String>,
}

impl Series {
    pub fn of(patches: &[String]) -> Series {
        let mut s = Series::default();
        for p in patches {
            for d in series_locks(p) {
                if !s.declared.contains(&d) {
                    s.declared.push(d);
                }
            }
            s.words.extend(series_words(p));
        }
        s
    }
}

/// A dependency A -> B.
pub type Edge = (String, String);

/// The union of several boots' graphs: every class and edge any of them took.
pub fn union(boots: &[Graph]) -> Graph {
    let mut g = Graph::default();
    for b in boots {
        g.classes.extend(b.classes.iter().cloned());
        g.edges.extend(b.edges.iter().cloned());
        for (c, bd) in &b.backward {
            let e = g.backward.entry(c.clone()).or_default();
            *e = (*e).max(*bd);
        }
        g.truncated |= b.truncated;
    }
    g
}

/// The edges some boots of one kernel took and others did not: noise, whatever the
/// series.
pub fn varying(boots: &[Graph]) -> BTreeSet<Edge> {
    let Some((first, rest)) = boots.split_first() else {
        return BTreeSet::new();
    };
    let all = union(boots).edges;
    let mut every = first.edges.clone();
    for b in rest {
        every.retain(|e| b.edges.contains(e));
    }
    all.difference(&every).cloned().collect()
}

/// What the comparison knows besides the two graphs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// Each boot of the patched cell (`patched` is their union): with two or more, an
    /// edge taken in every one is stable.
    pub boots: &'a [Graph],
    /// How many boots of the base cell `base` is the union of.
    pub base_boots: usize,
    /// Edges learnt as noise for the base kernel (they came and went between its boots).
    pub noise: Option<&'a BTreeSet<Edge>>,
    /// The patched cell's kernel is the base cell's (same kernel key): any difference
    /// is noise between boots.
    pub same_kernel: bool,
}

/// Compare `patched` with `base`, one boot each, nothing learnt (see [`diff_with`]).
pub fn diff(
    base_id: &str,
    base: &Graph,
    patched: &Graph,
    series: &Series,
    chains: &[Chain],
) -> Diff {
    diff_with(base_id, base, patched, series, chains, &Evidence::default())
}

/// Compare `patched` with `base`; `series` is what the cell's patches declare and name,
/// `chains` the patched cell's lock chains (for the context of each new edge). Of the
/// edges base never took, those learnt as noise (or all, for the same kernel) are only
/// counted, as are those into widely nested locks (timing); the rest are shown when
/// they touch a lock named after the series' code or were taken in every boot of the
/// patched cell, and counted as unconfirmed otherwise.
///
/// Edges of kmatrix's own instrumentation are noise: gcov's counters are read (under
/// `gcov_lock` and `node_lock`, kernel/gcov/fs.c) only in cells with a series, so a base
/// cell never has them.
pub fn diff_with(
    base_id: &str,
    base: &Graph,
    patched: &Graph,
    series: &Series,
    chains: &[Chain],
    ev: &Evidence,
) -> Diff {
    let declared = &series.declared;
    let new_classes: Vec<String> = if ev.same_kernel {
        Vec::new()
    } else {
        patched.classes.difference(&base.classes).cloned().collect()
    };
    let new_edges: Vec<Edge> = patched.edges.difference(&base.edges).cloned().collect();
    let is_noise =
        |e: &Edge| ev.same_kernel || ev.noise.is_some_and(|n| n.contains(e)) || instrumentation(e);
    let (noise, real): (Vec<Edge>, Vec<Edge>) = new_edges.iter().cloned().partition(is_noise);
    let (timing, rest): (Vec<_>, Vec<_>) = real
        .iter()
        .cloned()
        .partition(|(_, b)| base.widely_nested(b));
    let is_new = |c: &str| !base.classes.contains(c);
    let named =
        |(a, b): &Edge| names_series_code(a, &series.words) || names_series_code(b, &series.words);
    let stable = |e: &Edge| ev.boots.len() >= 2 && ev.boots.iter().all(|g| g.edges.contains(e));
    // A cycle is worth knowing whatever closes it, but not noise between two boots.
    let cycles = cycles(base, patched, &real);
    let closes: BTreeSet<Edge> = cycles
        .iter()
        .filter(|c| c.len() > 1)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    let (mut edges, unconfirmed): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|e| named(e) || stable(e) || closes.contains(e));
    let series_edges_total = edges.iter().filter(|e| named(e)).count();
    edges.sort_by_key(|e| (!named(e), !(is_new(&e.0) || is_new(&e.1))));
    edges.truncate(SHOWN);
    let contexts = edges
        .iter()
        .filter_map(|(a, b)| {
            let c = context(chains, a, b)?;
            Some((
                edge_key(a, b),
                format!("{} (irq_context {})", c.classes.join(" > "), c.irq_context),
            ))
        })
        .collect();
    Diff {
        base: base_id.to_string(),
        new_classes_total: new_classes.len(),
        new_edges_total: new_edges.len(),
        new_classes: new_classes.into_iter().take(SHOWN).collect(),
        new_edges: edges,
        series_edges_total,
        tests_not_in_base: Vec::new(),
        timing_edges_total: timing.len(),
        timing_edges: timing.into_iter().take(SHOWN).collect(),
        noise_edges_total: noise.len(),
        unconfirmed_edges_total: unconfirmed.len(),
        unconfirmed_edges: unconfirmed.into_iter().take(SHOWN).collect(),
        base_boots: ev.base_boots.max(1) as u32,
        cell_boots: ev.boots.len().max(1) as u32,
        same_kernel: ev.same_kernel,
        contexts,
        never_acquired: declared
            .iter()
            .filter(|d| !patched.classes.contains(*d))
            .cloned()
            .collect(),
        cycles: cycles.into_iter().take(SHOWN).collect(),
    }
}

/// A shortest path from `from` to `to` (both included), breadth first.
/// The new edges that close a cycle in the union of both graphs, each as its cycle
/// (the edge's source first). One pass finds the strongly connected components (a new
/// edge A -> B closes a cycle exactly when A and B share one); a path back from B to A
/// is then searched inside that component, for the first `SHOWN` such edges only. So the
/// cost is linear in the graph, whatever the guest sent.
/// The locks gcov's debugfs files take while kmatrix reads the series' counters.
const INSTRUMENTATION: &[&str] = &["gcov_lock", "node_lock"];

fn instrumentation((a, b): &Edge) -> bool {
    INSTRUMENTATION.contains(&a.as_str()) || INSTRUMENTATION.contains(&b.as_str())
}

/// Classes are known by name, and lockdep gives several classes one name (the per-CPU
/// `bh_lock` local locks of the network stack, a lock and its `/1` subclass once
/// normalised): an edge from a name to itself is such a pair, never a cycle on its own.
fn cycles(base: &Graph, patched: &Graph, new_edges: &[(String, String)]) -> Vec<Vec<String>> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut names: Vec<&str> = Vec::new();
    for (a, b) in base.edges.iter().chain(patched.edges.iter()) {
        for n in [a.as_str(), b.as_str()] {
            if !index.contains_key(n) {
                index.insert(n, names.len());
                names.push(n);
            }
        }
    }
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (a, b) in base.edges.iter().chain(patched.edges.iter()) {
        if a != b {
            adj[index[a.as_str()]].push(index[b.as_str()]);
        }
    }
    let comp = components(&adj);
    let mut out: Vec<Vec<String>> = Vec::new();
    for (a, b) in new_edges.iter().filter(|(a, b)| a != b) {
        if out.len() >= SHOWN {
            break;
        }
        let (Some(&ia), Some(&ib)) = (index.get(a.as_str()), index.get(b.as_str())) else {
            continue;
        };
        if comp[ia] != comp[ib] {
            continue;
        }
        let Some(back) = path_within(&adj, &comp, ib, ia) else {
            continue;
        };
        let mut c = vec![a.clone()];
        c.extend(back.into_iter().map(|i| names[i].to_string()));
        if !out.iter().any(|x| same_cycle(x, &c)) {
            out.push(c);
        }
    }
    out
}

/// Tarjan's strongly connected components, without recursion (a guest can send a graph
/// deep enough to overflow the stack): the component of each node.
fn components(adj: &[Vec<usize>]) -> Vec<usize> {
    const NONE: usize = usize::MAX;
    let n = adj.len();
    let (mut index, mut low, mut comp) = (vec![NONE; n], vec![0; n], vec![NONE; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut next, mut comps) = (Vec::new(), 0, 0);
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        // (node, the next of its edges to look at)
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i == 0 && index[v] == NONE {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adj[v].get(*i) {
                *i += 1;
                if index[w] == NONE {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = comps;
                    if w == v {
                        break;
                    }
                }
                comps += 1;
            }
        }
    }
    comp
}

/// The shortest path `from` -> `to` through nodes of their (shared) component.
fn path_within(adj: &[Vec<usize>], comp: &[usize], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut p = vec![n];
            let mut cur = n;
            while let Some(&before) = prev.get(&cur) {
                p.push(before);
                cur = before;
            }
            p.reverse();
            return Some(p);
        }
        for &m in &adj[n] {
            if comp[m] == comp[from] && seen.insert(m) {
                prev.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    None
}

fn same_cycle(a: &[String], b: &[String]) -> bool {
    let set = |x: &[String]| x.iter().cloned().collect::<BTreeSet<_>>();
    set(a) == set(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "all lock classes:
00000000a1b2c3d4 FD:    2 BD:    1 +.+.: &mm->mmap_lock
 -> [00000000deadbeef] &vma->vm_lock
 -> [00000000feedface] &mapping->i_mmap_rwsem

00000000deadbeef FD:    0 BD:    2 ++++: &vma->vm_lock

00000000feedface FD:    0 BD:    1 +.+.: &mapping->i_mmap_rwsem

00000000aaaaaaaa FD:    1 BD:    1 ....: kmatrix_liveness_a
 -> [00000000bbbbbbbb] kmatrix_liveness_b

";

    #[test]
    fn parses_classes_and_direct_edges_without_kmatrixs_own() {
        let g = parse(BASE);
        assert_eq!(g.classes.len(), 3);
        assert!(g
            .edges
            .contains(&("&mm->mmap_lock".into(), "&vma->vm_lock".into())));
        assert!(!g.classes.iter().any(|c| c.contains("kmatrix_liveness")));
        assert_eq!(normalize("&rq->__lock#2"), "&rq->__lock");
        assert_eq!(
            normalize("&sb->s_type->i_lock_key#15/1"),
            "&sb->s_type->i_lock_key/1"
        );
    }

    #[test]
    fn two_classes_of_one_name_are_no_cycle() {
        // 7.3's network stack has several per-CPU local locks all named `bh_lock`; one
        // taken inside another reads as a name taking itself.
        let base = Graph::default();
        let mut patched = Graph::default();
        patched.edges.insert(("bh_lock".into(), "bh_lock".into()));
        let d = diff("b", &base, &patched, &Series::default(), &[]);
        assert!(d.cycles.is_empty(), "{:?}", d.cycles);
    }

    #[test]
    fn a_new_edge_that_closes_a_cycle_with_base_is_found_without_a_splat() {
        let base = parse(BASE);
        // The patched kernel takes mmap_lock while holding the VMA lock: the reverse of
        // base's order, never both in one boot, so lockdep itself never saw the cycle.
        let patched = parse(
            "all lock classes:
00000000deadbeef FD:    1 BD:    0 ++++: &vma->vm_lock
 -> [00000000a1b2c3d4] &mm->mmap_lock

00000000a1b2c3d4 FD:    0 BD:    1 +.+.: &mm->mmap_lock

00000000cccccccc FD:    0 BD:    0 +.+.: kmatrix_fixture_outer
",
        );
        let d = diff(
            "x86_64/pvl-on/base",
            &base,
            &patched,
            &Series {
                declared: vec!["new_lock".into(), "kmatrix_fixture_outer".into()],
                ..Default::default()
            },
            &[],
        );
        assert_eq!(d.new_classes, ["kmatrix_fixture_outer"]);
        assert_eq!(
            d.new_edges,
            [("&vma->vm_lock".to_string(), "&mm->mmap_lock".to_string())]
        );
        assert_eq!(
            d.cycles,
            [vec![
                "&vma->vm_lock".to_string(),
                "&mm->mmap_lock".into(),
                "&vma->vm_lock".into()
            ]]
        );
        assert_eq!(d.never_acquired, ["new_lock"]);
        assert!(d.summary().contains("1 new edge(s) close a cycle"));
        // The same graph as base: nothing new.
        let same = diff("b", &base, &base, &Series::default(), &[]);
        assert!(same.new_edges.is_empty() && same.cycles.is_empty());
    }

    /// A base graph of `n` filler classes where `&rq->__lock` is taken under all of them.
    fn base_with_runqueue(n: usize) -> String {
        let mut t = format!(
            "all lock classes:\n00000000 FD:    0 BD: {n:4} -.-.: &rq->__lock\n\n\
             00000001 FD:    0 BD:    1 +.+.: &mm->mmap_lock\n\n"
        );
        for i in 0..n {
            t.push_str(&format!(
                "1{i:07} FD:    1 BD:    0 +.+.: filler_{i}\n -> [00000000] &rq->__lock\n\n"
            ));
        }
        t
    }

    #[test]
    fn edges_into_widely_nested_locks_are_counted_apart_with_their_chain() {
        let base = parse(&base_with_runqueue(30));
        assert_eq!(base.backward["&rq->__lock"], 30);
        assert!(base.widely_nested("&rq->__lock") && !base.widely_nested("&mm->mmap_lock"));
        let mut patched = base.clone();
        // Timing: mmap_lock held when a wakeup took the run queue lock.
        patched
            .edges
            .insert(("&mm->mmap_lock".into(), "&rq->__lock".into()));
        // The series: a new lock under mmap_lock.
        patched.classes.insert("probe_lock".into());
        patched
            .edges
            .insert(("&mm->mmap_lock".into(), "probe_lock".into()));
        patched
            .edges
            .insert(("filler_3".into(), "&mm->mmap_lock".into()));
        let chains = parse_chains(
            "all lock chains:\nirq_context: 0\n[00000001] &mm->mmap_lock\n\n\
             irq_context: 0\n[10000003] filler_3\n[00000001] &mm->mmap_lock#2\n[00000009] probe_lock\n\n\
             irq_context: softirq\n[00000001] &mm->mmap_lock\n[00000009] probe_lock\n",
        );
        assert_eq!(chains.len(), 3);
        assert_eq!(chains[1].classes[1], "&mm->mmap_lock");
        // Two boots that both took every edge: stable, so shown.
        let boots = [patched.clone(), patched.clone()];
        let ev = Evidence {
            boots: &boots,
            ..Default::default()
        };
        let d = diff_with("b", &base, &patched, &Series::default(), &chains, &ev);
        assert_eq!(d.new_edges_total, 3);
        assert_eq!(d.timing_edges_total, 1);
        assert_eq!(
            d.timing_edges,
            [("&mm->mmap_lock".to_string(), "&rq->__lock".to_string())]
        );
        // The edge to the new class first.
        assert_eq!(
            d.new_edges,
            [
                ("&mm->mmap_lock".to_string(), "probe_lock".to_string()),
                ("filler_3".to_string(), "&mm->mmap_lock".to_string())
            ]
        );
        // The shortest chain that made it, with its context.
        assert_eq!(
            d.contexts["&mm->mmap_lock -> probe_lock"],
            "&mm->mmap_lock > probe_lock (irq_context softirq)"
        );
        assert!(!d.contexts.contains_key("filler_3 -> &mm->mmap_lock"));
        assert!(
            d.summary().contains(
                "2 new edge(s) (of 3 not in base: 1 into scheduler/timer-like locks, timing)"
            ),
            "{}",
            d.summary()
        );
        // One boot cannot say they are stable, and they are not the series': counted.
        let d = diff("b", &base, &patched, &Series::default(), &chains);
        assert!(d.new_edges.is_empty());
        assert_eq!(d.unconfirmed_edges_total, 2);
    }

    #[test]
    fn gcov_reads_by_kmatrix_are_noise_not_new_edges() {
        let base = Graph::default();
        let mut patched = Graph::default();
        for (a, b) in [
            ("gcov_lock", "node_lock"),
            ("node_lock", "pin_fs_lock"),
            ("&mm->mmap_lock", "probe_lock"),
        ] {
            patched.edges.insert((a.into(), b.into()));
        }
        let boots = [patched.clone(), patched.clone()];
        let ev = Evidence {
            boots: &boots,
            ..Default::default()
        };
        let d = diff_with("b", &base, &patched, &Series::default(), &[], &ev);
        assert_eq!(d.noise_edges_total, 2);
        assert_eq!(
            d.new_edges,
            [("&mm->mmap_lock".to_string(), "probe_lock".to_string())]
        );
    }

    #[test]
    fn edges_at_locks_named_after_the_series_code_come_first() {
        let patch = "--- a/mm/mmap_lock.c\n+++ b/mm/mmap_lock.c\n@@ -1,2 +1,3 @@\n \tctx\n+\tif (vma->vm_lock_seq == seq)\n-\told_call(mm);\n";
        let words = series_words(patch);
        assert!(words.contains("mmap_lock") && words.contains("vm_lock_seq"));
        assert!(words.contains("old_call") && !words.contains("ctx"));
        assert!(names_series_code("vm_lock", &words));
        assert!(names_series_code("&mm->mmap_lock", &words));
        assert!(!names_series_code("&rtnl_mutex.wait_lock", &words));
        assert!(!names_series_code("(wq_completion)events", &words));
        let base = parse(BASE);
        let mut patched = base.clone();
        for (a, b) in [
            ("module_mutex", "vmap_purge_lock"),
            ("sort_mutex", "new_class"),
            ("vm_lock", "&mapping->i_mmap_rwsem"),
        ] {
            patched.classes.extend([a.to_string(), b.to_string()]);
            patched.edges.insert((a.into(), b.into()));
        }
        let d = diff("b", &base, &patched, &Series::of(&[patch.into()]), &[]);
        assert_eq!(d.series_edges_total, 1);
        assert_eq!(d.new_edges[0].0, "vm_lock");
        assert!(d
            .summary()
            .contains("1 touch a lock named after the series' code"));
    }

    #[test]
    fn noise_learnt_for_the_base_kernel_and_the_same_kernel_show_no_new_edge() {
        let base = parse(BASE);
        let mut patched = base.clone();
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        patched
            .edges
            .insert(e("&mapping->i_mmap_rwsem", "&vma->vm_lock"));
        patched
            .edges
            .insert(e("&vma->vm_lock", "&mapping->i_mmap_rwsem"));
        let boots = [patched.clone(), patched.clone()];
        // Base's own boots disagree on one of them: that one is noise.
        let mut other = base.clone();
        other
            .edges
            .insert(e("&mapping->i_mmap_rwsem", "&vma->vm_lock"));
        let noise = varying(&[base.clone(), other.clone()]);
        assert_eq!(noise.len(), 1);
        assert_eq!(
            union(&[base.clone(), other]).edges.len(),
            base.edges.len() + 1
        );
        let ev = Evidence {
            boots: &boots,
            base_boots: 2,
            noise: Some(&noise),
            same_kernel: false,
        };
        let d = diff_with("b", &base, &patched, &Series::default(), &[], &ev);
        assert_eq!((d.new_edges_total, d.noise_edges_total), (2, 1));
        assert_eq!(d.new_edges, [e("&vma->vm_lock", "&mapping->i_mmap_rwsem")]);
        assert!(
            d.summary().contains(
                "vs b (2 boots): 0 new class(es), 1 new edge(s) (of 2 not in base: 1 noise"
            ),
            "{}",
            d.summary()
        );
        // The same kernel: whatever differs is noise, nothing is new, no cycle.
        let same = Evidence {
            same_kernel: true,
            ..ev
        };
        let d = diff_with("b", &base, &patched, &Series::default(), &[], &same);
        assert!(d.new_edges.is_empty() && d.cycles.is_empty());
        assert_eq!((d.shown_edges_total(), d.noise_edges_total), (0, 2));
        assert!(
            d.summary().contains("the same kernel, so 0 new edge(s)"),
            "{}",
            d.summary()
        );
    }

    #[test]
    fn the_locks_a_series_declares() {
        let p = "+static DEFINE_MUTEX(kmatrix_fixture_outer);\n+\tmutex_init(&vma->probe_lock);\n-static DEFINE_MUTEX(old);\n+\tspin_lock_init(&x->lock); /* y */\n";
        assert_eq!(
            series_locks(p),
            ["kmatrix_fixture_outer", "&vma->probe_lock", "&x->lock"]
        );
    }

    /// A graph as deep as a guest can make it: no recursion to overflow, every cycle the
    /// new edges close found in one pass.
    #[test]
    fn a_deep_graph_is_searched_without_recursion() {
        let n = 200_000;
        let mut base = Graph::default();
        for i in 0..n {
            base.edges.insert((format!("l{i}"), format!("l{}", i + 1)));
        }
        let mut patched = base.clone();
        patched.edges.insert((format!("l{n}"), "l0".to_string()));
        patched.edges.insert(("x".into(), "y".into()));
        let new: Vec<(String, String)> = patched.edges.difference(&base.edges).cloned().collect();
        let c = cycles(&base, &patched, &new);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].len(), n + 2, "l{n} -> l0 -> ... -> l{n}");
        assert_eq!(c[0][0], format!("l{n}"));
    }

    #[test]
    fn a_file_with_more_than_lockdep_can_hold_is_cut() {
        let mut text = String::from("all lock classes:\n0000 FD: 1 BD: 1 +.+.: a\n");
        for i in 0..(MAX_CLASSES + 10) {
            text.push_str(&format!(" -> [0000] b{i}\n"));
        }
        let g = parse(&text);
        assert!(g.truncated);
        assert!(g.classes.len() <= MAX_CLASSES && g.edges.len() <= MAX_EDGES);
    }
}
