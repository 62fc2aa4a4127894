//! Which lines of a C file the preprocessor drops in a given config: a scanner of
//! `#if`/`#ifdef`/`#ifndef`/`#elif`/`#else`/`#endif` (nested, continued lines, comments)
//! that evaluates what it can from the `.config`: `defined(CONFIG_X)`, `CONFIG_X`,
//! `IS_ENABLED(CONFIG_X)`, `IS_BUILTIN`, `IS_MODULE`, `IS_REACHABLE`, numbers, `!`,
//! `&&`, `||`, comparisons. Anything else (`MAX_NUMNODES > 1`, `__GNUC__`) is unknown,
//! and a line is called disabled only when a condition around it is known to be false.

use std::collections::BTreeMap;

/// The config's symbols, without `CONFIG_`: `y`, `m`, a number or a quoted string;
/// a symbol not in the map (or `n`) is off.
pub type Symbols = BTreeMap<String, String>;

/// The directive that drops a line: its text (as written, one line) and line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    pub line: usize,
    pub directive: String,
}

/// Three-valued truth of a branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Unknown,
}

struct Frame {
    /// The current branch's own truth (given that the earlier branches were not taken).
    branch: Tri,
    /// Whether an earlier branch of this `#if` chain was (or may have been) taken.
    taken: Tri,
    line: usize,
    directive: String,
}

/// For each line (index 0 is line 1), the directive that drops it in this config, if a
/// known-false condition does.
pub fn disabled_lines(source: &str, syms: &Symbols) -> Vec<Option<Disabled>> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out: Vec<Option<Disabled>> = Vec::with_capacity(lines.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut in_comment = false;
    let mut i = 0;
    while i < lines.len() {
        // A directive continued with `\` spans several lines; all share its state.
        let first = i;
        let mut text = lines[i].to_string();
        while text.ends_with('\\') && i + 1 < lines.len() {
            text.pop();
            i += 1;
            text.push(' ');
            text.push_str(lines[i]);
        }
        let (code, still_in_comment) = strip_comments(&text, in_comment);
        let starts_in_comment = in_comment;
        in_comment = still_in_comment;
        // A directive line is never code: it takes the state of the frames around its
        // own `#if` chain.
        let mut directive_state = current(&stack);
        let directive = if starts_in_comment {
            None
        } else {
            code.trim_start().strip_prefix('#').map(str::trim_start)
        };
        let shown = || lines[first].trim().chars().take(160).collect::<String>();
        if let Some(d) = directive {
            let (word, rest) = split_word(d);
            match word {
                "if" | "ifdef" | "ifndef" => {
                    let v = match word {
                        "if" => eval(rest, syms),
                        "ifdef" => defined(rest.trim(), syms),
                        _ => not(defined(rest.trim(), syms)),
                    };
                    stack.push(Frame {
                        branch: v,
                        taken: v,
                        line: first + 1,
                        directive: shown(),
                    });
                }
                "elif" | "elifdef" | "elifndef" => {
                    directive_state = current(&stack[..stack.len().saturating_sub(1)]);
                    if let Some(f) = stack.last_mut() {
                        let v = match word {
                            "elif" => eval(rest, syms),
                            "elifdef" => defined(rest.trim(), syms),
                            _ => not(defined(rest.trim(), syms)),
                        };
                        f.branch = and(not(f.taken), v);
                        f.taken = or(f.taken, v);
                        f.line = first + 1;
                        f.directive = shown();
                    }
                }
                "else" => {
                    directive_state = current(&stack[..stack.len().saturating_sub(1)]);
                    if let Some(f) = stack.last_mut() {
                        f.branch = not(f.taken);
                        f.taken = Tri::Yes;
                        f.line = first + 1;
                        f.directive = shown();
                    }
                }
                "endif" => {
                    stack.pop();
                    directive_state = current(&stack);
                }
                _ => {}
            }
        }
        let state = if directive.is_some() {
            directive_state
        } else {
            current(&stack)
        };
        for _ in first..=i {
            out.push(state.clone());
        }
        i += 1;
    }
    out
}

/// The innermost known-false branch around the current line, if any.
fn current(stack: &[Frame]) -> Option<Disabled> {
    stack
        .iter()
        .find(|f| f.branch == Tri::No)
        .map(|f| Disabled {
            line: f.line,
            directive: f.directive.clone(),
        })
}

/// `text` without `/* */` and `//` comments; whether a block comment is still open at
/// its end. String literals are not tracked (a `"/*"` in code is rare next to `#if`).
fn strip_comments(text: &str, mut in_comment: bool) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if in_comment {
            if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                in_comment = false;
                i += 2;
                out.push(' ');
            } else {
                i += 1;
            }
            continue;
        }
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            in_comment = true;
            i += 2;
            continue;
        }
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            break;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    (out, in_comment)
}

fn split_word(d: &str) -> (&str, &str) {
    let end = d
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(d.len());
    (&d[..end], &d[end..])
}

fn not(v: Tri) -> Tri {
    match v {
        Tri::Yes => Tri::No,
        Tri::No => Tri::Yes,
        Tri::Unknown => Tri::Unknown,
    }
}

fn and(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::No, _) | (_, Tri::No) => Tri::No,
        (Tri::Yes, Tri::Yes) => Tri::Yes,
        _ => Tri::Unknown,
    }
}

fn or(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::Yes, _) | (_, Tri::Yes) => Tri::Yes,
        (Tri::No, Tri::No) => Tri::No,
        _ => Tri::Unknown,
    }
}

/// The value `CONFIG_<sym>` has in autoconf.h: `y` is 1, `m` is not defined (Kconfig
/// defines `CONFIG_<sym>_MODULE` instead), a number is itself, a string unknown.
fn macro_value(name: &str, syms: &Symbols) -> Option<Val> {
    let sym = name.strip_prefix("CONFIG_")?;
    if let Some(base) = sym.strip_suffix("_MODULE") {
        if syms.get(base).map(String::as_str) == Some("m") {
            return Some(Val::Num(1));
        }
    }
    Some(match syms.get(sym).map(String::as_str) {
        None | Some("n") | Some("m") => Val::Undefined,
        Some("y") => Val::Num(1),
        Some(v) => match parse_number(v) {
            Some(n) => Val::Num(n),
            None => Val::Unknown,
        },
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Num(i64),
    /// Not a macro: the preprocessor reads it as 0, `defined()` as false.
    Undefined,
    Unknown,
}

fn defined(name: &str, syms: &Symbols) -> Tri {
    match macro_value(name, syms) {
        Some(Val::Undefined) => Tri::No,
        Some(_) => Tri::Yes,
        None => Tri::Unknown,
    }
}

fn parse_number(s: &str) -> Option<i64> {
    let s = s.trim_end_matches(['u', 'U', 'l', 'L']);
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Num(i64),
    Op(&'static str),
}

fn tokens(s: &str) -> Option<Vec<Tok>> {
    const OPS: &[&str] = &[
        "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "!", "(", ")", "<", ">", "+", "-", "*",
        "/", "%", ",", "?", ":", "&", "|", "^", "~",
    ];
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(s[st..i].to_string()));
        } else if c.is_ascii_digit() {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            out.push(Tok::Num(parse_number(&s[st..i])?));
        } else {
            let op = OPS.iter().find(|o| s[i..].starts_with(**o))?;
            out.push(Tok::Op(op));
            i += op.len();
        }
        if out.len() > 512 {
            return None;
        }
    }
    Some(out)
}

/// An `#if` expression's truth in this config.
fn eval(expr: &str, syms: &Symbols) -> Tri {
    let Some(toks) = tokens(expr) else {
        return Tri::Unknown;
    };
    let mut p = Parser {
        t: &toks,
        i: 0,
        syms,
        depth: 0,
    };
    let v = p.or();
    if p.i != toks.len() {
        return Tri::Unknown;
    }
    match v {
        Val::Num(0) | Val::Undefined => Tri::No,
        Val::Num(_) => Tri::Yes,
        Val::Unknown => Tri::Unknown,
    }
}

/// Precedence climbing over the subset of C's operators `#if` lines use; `?:`, bit
/// operators and the like make the whole expression unknown.
struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
    syms: &'a Symbols,
    depth: usize,
}

fn num(v: Val) -> Option<i64> {
    match v {
        Val::Num(n) => Some(n),
        Val::Undefined => Some(0),
        Val::Unknown => None,
    }
}

fn truth(v: Val) -> Tri {
    match num(v) {
        Some(0) => Tri::No,
        Some(_) => Tri::Yes,
        None => Tri::Unknown,
    }
}

fn from_tri(t: Tri) -> Val {
    match t {
        Tri::Yes => Val::Num(1),
        Tri::No => Val::Num(0),
        Tri::Unknown => Val::Unknown,
    }
}

impl Parser<'_> {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Op(o)) if *o == op)
    }

    fn or(&mut self) -> Val {
        let mut v = self.and();
        while self.peek_op("||") {
            self.i += 1;
            let r = self.and();
            v = from_tri(or(truth(v), truth(r)));
        }
        v
    }

    fn and(&mut self) -> Val {
        let mut v = self.cmp();
        while self.peek_op("&&") {
            self.i += 1;
            let r = self.cmp();
            v = from_tri(and(truth(v), truth(r)));
        }
        v
    }

    fn cmp(&mut self) -> Val {
        let mut v = self.unary();
        loop {
            let op = match self.t.get(self.i) {
                Some(Tok::Op(o)) if ["==", "!=", "<", ">", "<=", ">="].contains(o) => *o,
                Some(Tok::Op(o)) if !["&&", "||", ")", ","].contains(o) => {
                    // Arithmetic and the rest: not worth evaluating.
                    self.i = self.t.len();
                    return Val::Unknown;
                }
                _ => return v,
            };
            self.i += 1;
            let r = self.unary();
            v = match (num(v), num(r)) {
                (Some(a), Some(b)) => Val::Num(i64::from(match op {
                    "==" => a == b,
                    "!=" => a != b,
                    "<" => a < b,
                    ">" => a > b,
                    "<=" => a <= b,
                    _ => a >= b,
                })),
                _ => Val::Unknown,
            };
        }
    }

    fn unary(&mut self) -> Val {
        self.depth += 1;
        if self.depth > 64 {
            self.i = self.t.len();
            return Val::Unknown;
        }
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Val {
        let Some(t) = self.t.get(self.i).cloned() else {
            return Val::Unknown;
        };
        self.i += 1;
        match t {
            Tok::Num(n) => Val::Num(n),
            Tok::Op("!") => from_tri(not(truth(self.unary()))),
            Tok::Op("(") => {
                let v = self.or();
                if self.peek_op(")") {
                    self.i += 1;
                    v
                } else {
                    self.i = self.t.len();
                    Val::Unknown
                }
            }
            Tok::Ident(name) if name == "defined" => {
                let paren = self.peek_op("(");
                if paren {
                    self.i += 1;
                }
                let v = match self.t.get(self.i) {
                    Some(Tok::Ident(n)) => from_tri(defined(n, self.syms)),
                    _ => Val::Unknown,
                };
                self.i += 1;
                if paren {
                    if self.peek_op(")") {
                        self.i += 1;
                    } else {
                        return Val::Unknown;
                    }
                }
                v
            }
            Tok::Ident(name)
                if matches!(
                    name.as_str(),
                    "IS_ENABLED" | "IS_BUILTIN" | "IS_MODULE" | "IS_REACHABLE"
                ) =>
            {
                let arg = match (
                    self.t.get(self.i),
                    self.t.get(self.i + 1),
                    self.t.get(self.i + 2),
                ) {
                    (Some(Tok::Op("(")), Some(Tok::Ident(a)), Some(Tok::Op(")"))) => a.clone(),
                    _ => {
                        self.i = self.t.len();
                        return Val::Unknown;
                    }
                };
                self.i += 3;
                let Some(sym) = arg.strip_prefix("CONFIG_") else {
                    return Val::Unknown;
                };
                let v = self.syms.get(sym).map(String::as_str).unwrap_or("n");
                let on = match name.as_str() {
                    "IS_ENABLED" => matches!(v, "y" | "m"),
                    "IS_BUILTIN" => v == "y",
                    "IS_MODULE" => v == "m",
                    // `m` is reachable only from modules; which this file is, is unknown.
                    _ if v == "m" => return Val::Unknown,
                    _ => v == "y",
                };
                Val::Num(i64::from(on))
            }
            Tok::Ident(name) => {
                // A function-like macro we do not know (`__has_attribute(x)`).
                if self.peek_op("(") {
                    self.i = self.t.len();
                    return Val::Unknown;
                }
                macro_value(&name, self.syms).unwrap_or(Val::Unknown)
            }
            Tok::Op(_) => {
                self.i = self.t.len();
                Val::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(list: &[(&str, &str)]) -> Symbols {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The line numbers (1-based) the scanner calls disabled.
    fn off(src: &str, s: &Symbols) -> Vec<usize> {
        disabled_lines(src, s)
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_some())
            .map(|(i, _)| i + 1)
            .collect()
    }

    #[test]
    fn seed_header_stub_is_off_with_per_vma_locks_and_on_without() {
        // The shape of include/linux/mmap_lock.h around v3's stub.
        let src = "\
#ifdef CONFIG_PER_VMA_LOCK
struct vm_area_struct *vma_start_read_unlocked(struct mm_struct *mm,
\t\t\t\t\t       unsigned long address);
#else /* CONFIG_PER_VMA_LOCK */
static inline struct vm_area_struct *vma_start_read_unlocked(struct mm_struct *mm,
\t\tunsigned long address)
{
\treturn NULL;
}
#endif /* CONFIG_PER_VMA_LOCK */
int after;
";
        let on = syms(&[("PER_VMA_LOCK", "y")]);
        assert_eq!(off(src, &on), [5, 6, 7, 8, 9]);
        let d = disabled_lines(src, &on)[7].clone().unwrap();
        assert_eq!(
            (d.line, d.directive.as_str()),
            (4, "#else /* CONFIG_PER_VMA_LOCK */")
        );
        assert_eq!(off(src, &syms(&[])), [2, 3]);
        let d = disabled_lines(src, &syms(&[]))[1].clone().unwrap();
        assert_eq!(
            (d.line, d.directive.as_str()),
            (1, "#ifdef CONFIG_PER_VMA_LOCK")
        );
    }

    #[test]
    fn expressions_nesting_elif_and_unknowns() {
        let src = "\
#if IS_ENABLED(CONFIG_NUMA) && defined(CONFIG_MMU)
numa
#elif defined CONFIG_MMU || CONFIG_NR_CPUS > 4
mmu_or_many
#  if MAX_NUMNODES > 1
unknown
#  else
unknown_else
#  endif
#else
neither
#endif
#ifndef CONFIG_SMP
up
#endif
#if IS_MODULE(CONFIG_FOO) || CONFIG_FOO_MODULE
module
#endif
#if 0
/* #else in a comment is not a directive */
zero
#endif
#if defined(CONFIG_A) && \\
    defined(CONFIG_B)
a_and_b
#endif
";
        let s = syms(&[("MMU", "y"), ("NR_CPUS", "8"), ("SMP", "y"), ("FOO", "m")]);
        let d = off(src, &s);
        // NUMA off: line 2; the #elif holds, so #else's line 11; !SMP: 14; #if 0: 20-21;
        // A and B off: 25. FOO=m: `module` is on. MAX_NUMNODES is unknown: both kept.
        assert_eq!(d, [2, 11, 14, 20, 21, 25]);
        let s = syms(&[("NUMA", "m"), ("MMU", "y"), ("A", "y"), ("B", "y")]);
        assert_eq!(off(src, &s), [4, 5, 6, 7, 8, 9, 11, 17, 20, 21]);
    }

    #[test]
    fn unknown_conditions_never_disable() {
        let src = "#if __GNUC__ >= 12 && defined(CONFIG_X)\na\n#else\nb\n#endif\n#if __has_attribute(x)\nc\n#endif\n";
        // CONFIG_X off: the first branch is known false, so the #else is taken.
        assert_eq!(off(src, &syms(&[])), [2]);
        assert_eq!(off(src, &syms(&[("X", "y")])), Vec::<usize>::new());
    }
}
