//! Format census: every report head the target kernel tree can print must be recognised
//! by the console parser with the right kind, or be named in the census file as ignored
//! on purpose (with why).
//!
//! The census reads the format strings of `pr_*`/`printk*` calls (and of the file's own
//! printing macros, e.g. x86's `orc_warn`) in kernel/, mm/, lib/, arch/x86 and arch/arm64,
//! applies the file's `pr_fmt` prefix, keeps those that start like a report head
//! (`BUG:`, `WARNING:`, `INFO:`, `Unable to handle`, `KASAN:`, ...), fills the
//! placeholders, wraps each in a minimal report and parses it. The expected kind of every
//! format, and the formats ignored on purpose, live in `tests/data/console/census.tsv`.
//!
//! The tree test is `#[ignore]`d (it needs the unpacked source from kmatrix's cache);
//! the tests of the extractor itself and of the census file run everywhere, including the
//! check that a golden log holds an instance of every format the census expects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use kmatrix::console::{self, Kind};

// ---------------------------------------------------------------------------------------
// A C lexer just good enough to find printk calls: comments dropped, string literals
// kept with their escapes, preprocessor directives marked.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A string literal's content as written (escapes kept).
    Str(String),
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    /// Index of the preprocessor directive this token belongs to, if any.
    directive: Option<usize>,
}

fn lex(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut at_line_start = true;
    let mut directive: Option<usize> = None;
    let mut directives = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
                at_line_start = true;
                directive = None;
                continue;
            }
            b'\\' if b.get(i + 1) == Some(&b'\n') => {
                // Line continuation: a directive goes on.
                line += 1;
                i += 2;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'#' if at_line_start => {
                directive = Some(directives);
                directives += 1;
                out.push(Token {
                    tok: Tok::Punct('#'),
                    line,
                    directive,
                });
                i += 1;
                at_line_start = false;
                continue;
            }
            b'"' | b'\'' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != c && b[i] != b'\n' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let text = src.get(start..i.min(b.len())).unwrap_or("").to_string();
                i += 1;
                if c == b'"' {
                    out.push(Token {
                        tok: Tok::Str(text),
                        line,
                        directive,
                    });
                } else {
                    out.push(Token {
                        tok: Tok::Punct('\''),
                        line,
                        directive,
                    });
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(src[start..i].to_string()),
                    line,
                    directive,
                });
            }
            _ => {
                // Multi-byte UTF-8 in comments is skipped above; elsewhere keep one char.
                let ch = src[i..].chars().next().unwrap_or('?');
                out.push(Token {
                    tok: Tok::Punct(ch),
                    line,
                    directive,
                });
                i += ch.len_utf8();
            }
        }
        at_line_start = false;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Printers and formats.

/// Something that prints a format: the kernel's own functions and macros, and the
/// file-local macros that wrap them (`#define orc_warn(fmt, ...) printk(... "WARNING: " fmt`).
#[derive(Debug, Clone)]
struct Printer {
    /// Index of the argument holding the format.
    fmt_arg: usize,
    /// Literal text the printer puts in front of the format.
    prefix: String,
    /// Whether the file's `pr_fmt` applies (the `pr_*` family).
    pr_fmt: bool,
}

fn kernel_printers() -> HashMap<String, Printer> {
    let mut m = HashMap::new();
    // pr_debug/pr_devel are compiled out without DEBUG; pr_cont continues a line.
    for level in [
        "emerg", "alert", "crit", "err", "warn", "warning", "notice", "info",
    ] {
        for suffix in ["", "_once", "_ratelimited", "_deferred", "_deferred_once"] {
            m.insert(
                format!("pr_{level}{suffix}"),
                Printer {
                    fmt_arg: 0,
                    prefix: String::new(),
                    pr_fmt: true,
                },
            );
        }
    }
    for name in [
        "printk",
        "_printk",
        "printk_deferred",
        "printk_deferred_once",
        "printk_once",
        "printk_ratelimited",
    ] {
        m.insert(
            name.to_string(),
            Printer {
                fmt_arg: 0,
                prefix: String::new(),
                pr_fmt: false,
            },
        );
    }
    m
}

/// One format string the tree can print.
#[derive(Debug, Clone)]
struct Format {
    file: String,
    line: usize,
    /// As written in C (escapes kept), `pr_fmt` prefix and printer prefix applied.
    text: String,
}

/// Splits the tokens of a call's parentheses (starting after `(`) into top-level
/// arguments; returns them and the index after the closing `)`.
fn call_args(toks: &[Token], mut i: usize) -> (Vec<Vec<Token>>, usize) {
    let mut depth = 0usize;
    let mut args = vec![Vec::new()];
    while i < toks.len() {
        match &toks[i].tok {
            Tok::Punct('(') | Tok::Punct('[') | Tok::Punct('{') => depth += 1,
            Tok::Punct(')') | Tok::Punct(']') | Tok::Punct('}') => {
                if depth == 0 {
                    return (args, i + 1);
                }
                depth -= 1;
            }
            Tok::Punct(',') if depth == 0 => {
                args.push(Vec::new());
                i += 1;
                continue;
            }
            _ => {}
        }
        if let Some(last) = args.last_mut() {
            last.push(toks[i].clone());
        }
        i += 1;
    }
    (args, i)
}

/// The literal text of a format argument: string literals concatenated, `KERN_*` levels
/// dropped, `pr_fmt(...)` expanded, other macros standing for unknown text (`%s`).
/// `Err(param)` when the argument ends in an identifier that is a macro parameter
/// (the caller is a wrapper); `Ok(None)` when the format is not literal.
fn literal(arg: &[Token], pr_fmt: &str, params: &[String]) -> Result<Option<String>, String> {
    let mut text = String::new();
    let mut any = false;
    let mut i = 0;
    while i < arg.len() {
        match &arg[i].tok {
            Tok::Str(s) => {
                text.push_str(s);
                any = true;
            }
            Tok::Ident(id) if id.starts_with("KERN_") => {}
            Tok::Ident(id) if id == "pr_fmt" => {
                text.push_str(pr_fmt);
                // `pr_fmt("...")`: the literal inside follows.
                if matches!(arg.get(i + 1).map(|t| &t.tok), Some(Tok::Punct('('))) {
                    i += 1;
                }
            }
            Tok::Ident(id) if params.iter().any(|p| p == id) => {
                let rest_is_args = arg[i + 1..].iter().all(|t| {
                    matches!(&t.tok, Tok::Punct(_))
                        || matches!(&t.tok, Tok::Ident(v) if v == "__VA_ARGS__")
                });
                if rest_is_args {
                    return Err(format!("{text}\u{0}{id}"));
                }
                return Ok(None);
            }
            Tok::Ident(_) if any || text.is_empty() => {
                // A string macro (`GPFSTR`, `HEX_PREFIX`): unknown text.
                text.push_str("%s");
            }
            Tok::Punct(')') => {}
            _ => return Ok(None),
        }
        i += 1;
    }
    Ok(any.then_some(text))
}

/// The `pr_fmt` prefix a `#define pr_fmt(fmt) ...` body gives, for file stem `stem`.
fn pr_fmt_prefix(body: &[Token], stem: &str) -> String {
    let mut p = String::new();
    for t in body {
        match &t.tok {
            Tok::Str(s) => p.push_str(s),
            Tok::Ident(id) if id == "KBUILD_MODNAME" => p.push_str(stem),
            Tok::Ident(id) if id == "fmt" => break,
            _ => {}
        }
    }
    p
}

/// Extracts the formats a file prints. `inherited_pr_fmt` is the prefix of the `.c` file
/// that includes a header without its own `pr_fmt`.
fn extract_file(rel: &str, src: &str, inherited_pr_fmt: &str) -> Vec<Format> {
    let stem = Path::new(rel)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let toks = lex(src);
    let mut printers = kernel_printers();
    let mut pr_fmt = inherited_pr_fmt.to_string();
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        // `#define NAME(params) body`
        if toks[i].tok == Tok::Punct('#')
            && matches!(toks.get(i + 1).map(|t| &t.tok), Some(Tok::Ident(d)) if d == "define")
        {
            let d = toks[i].directive;
            let end = toks[i..]
                .iter()
                .position(|t| t.directive != d)
                .map_or(toks.len(), |p| i + p);
            let def = &toks[i + 2..end];
            i = end;
            let Some(Tok::Ident(name)) = def.first().map(|t| &t.tok) else {
                continue;
            };
            if name == "pr_fmt" {
                if let Some(close) = def.iter().position(|t| t.tok == Tok::Punct(')')) {
                    pr_fmt = pr_fmt_prefix(&def[close + 1..], &stem);
                }
                continue;
            }
            if def.get(1).map(|t| &t.tok) != Some(&Tok::Punct('(')) {
                scan_calls(def, rel, &pr_fmt, &printers, &[], &mut out, None);
                continue;
            }
            let close = def
                .iter()
                .position(|t| t.tok == Tok::Punct(')'))
                .unwrap_or(def.len());
            let params: Vec<String> = def[2..close]
                .iter()
                .filter_map(|t| match &t.tok {
                    Tok::Ident(p) => Some(p.clone()),
                    _ => None,
                })
                .collect();
            let mut wrapper = None;
            scan_calls(
                &def[close.min(def.len())..],
                rel,
                &pr_fmt,
                &printers,
                &params,
                &mut out,
                Some(&mut wrapper),
            );
            if let Some((param, prefix, uses_pr_fmt)) = wrapper {
                if let Some(idx) = params.iter().position(|p| *p == param) {
                    printers.insert(
                        name.clone(),
                        Printer {
                            fmt_arg: idx,
                            prefix,
                            pr_fmt: uses_pr_fmt,
                        },
                    );
                }
            }
            continue;
        }
        if toks[i].directive.is_some() {
            // Another directive (`#if`, `#include`): nothing printed.
            let d = toks[i].directive;
            i += toks[i..]
                .iter()
                .position(|t| t.directive != d)
                .unwrap_or(toks.len() - i);
            continue;
        }
        let end = toks[i..]
            .iter()
            .position(|t| t.directive.is_some())
            .map_or(toks.len(), |p| i + p);
        scan_calls(&toks[i..end], rel, &pr_fmt, &printers, &[], &mut out, None);
        i = end;
    }
    out
}

type Wrapper = Option<(String, String, bool)>;

/// Finds printer calls in `toks`; a call whose format ends in a macro parameter makes
/// the enclosing macro a wrapper (reported through `wrapper`).
fn scan_calls(
    toks: &[Token],
    rel: &str,
    pr_fmt: &str,
    printers: &HashMap<String, Printer>,
    params: &[String],
    out: &mut Vec<Format>,
    mut wrapper: Option<&mut Wrapper>,
) {
    let mut i = 0;
    while i < toks.len() {
        let Tok::Ident(name) = &toks[i].tok else {
            i += 1;
            continue;
        };
        let Some(p) = printers.get(name) else {
            i += 1;
            continue;
        };
        if toks.get(i + 1).map(|t| &t.tok) != Some(&Tok::Punct('(')) {
            i += 1;
            continue;
        }
        let line = toks[i].line;
        let (args, next) = call_args(toks, i + 2);
        let prefix = format!("{}{}", if p.pr_fmt { pr_fmt } else { "" }, p.prefix);
        if let Some(arg) = args.get(p.fmt_arg) {
            match literal(arg, pr_fmt, params) {
                Ok(Some(text)) => out.push(Format {
                    file: rel.to_string(),
                    line,
                    text: format!("{prefix}{text}"),
                }),
                Ok(None) => {}
                Err(lit_and_param) => {
                    let (lit, param) = lit_and_param.split_once('\u{0}').unwrap_or(("", ""));
                    if let Some(w) = wrapper.as_deref_mut() {
                        *w = Some((param.to_string(), format!("{}{lit}", p.prefix), p.pr_fmt));
                    }
                }
            }
        }
        i = next.max(i + 1);
    }
}

// ---------------------------------------------------------------------------------------
// Which formats are report heads.

/// Words a report head starts with (after the `pr_fmt`-style `subsystem: ` prefixes).
const HEAD_PREFIXES: &[&str] = &[
    "BUG:",
    "BUG ",
    "WARNING:",
    "INFO:",
    "general protection fault",
    "Unable to handle",
    "Kernel panic",
    "KASAN:",
    "UBSAN:",
    "KFENCE:",
    "KMSAN:",
    "KCSAN:",
    "kernel BUG",
    "Oops",
    "Internal error",
    "unreferenced object",
    "PANIC:",
    "Watchdog detected",
    "stack segment",
    "Insufficient stack space",
    "double fault",
];

/// C escapes to text (`\n`, `\t`, `\"`, `\\`, octal).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(d @ '0'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) => {
                            v = v * 8 + x;
                            it.next();
                        }
                        None => break,
                    }
                }
                if let Some(ch) = char::from_u32(v) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The first printed line of a format: leading newlines and a `KERN_*`-style level
/// byte dropped, cut at the first newline.
fn first_line(text: &str) -> String {
    let t = unescape(text);
    let t = t.trim_start_matches(['\n', '\u{1}']);
    t.split('\n').next().unwrap_or("").to_string()
}

fn is_head(text: &str) -> bool {
    let mut s = first_line(text);
    for _ in 0..3 {
        if HEAD_PREFIXES.iter().any(|p| s.starts_with(p)) {
            return true;
        }
        // `rcu: `, `watchdog: `, `CPU%u: `: a subsystem or CPU tag before the head.
        match s.split_once(": ") {
            Some((tag, rest))
                if !tag.is_empty()
                    && tag.len() <= 16
                    && !tag.contains(' ')
                    && tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_%-".contains(&b)) =>
            {
                s = rest.to_string();
            }
            _ => return false,
        }
    }
    false
}

const CENSUS_DIRS: &[&str] = &["kernel", "mm", "lib", "arch/x86", "arch/arm64"];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "c" || e == "h") {
            out.push(p);
        }
    }
}

/// Every report-head format of the tree, in file order.
fn census(tree: &Path) -> Vec<Format> {
    let mut files = Vec::new();
    for d in CENSUS_DIRS {
        walk(&tree.join(d), &mut files);
    }
    files.sort();
    let sources: BTreeMap<PathBuf, String> = files
        .iter()
        .filter_map(|p| {
            let bytes = fs::read(p).ok()?;
            Some((p.clone(), String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect();
    // Headers without their own pr_fmt print with the prefix of the .c file including them
    // (kernel/rcu/tree_stall.h is part of tree.c: "rcu: ").
    let mut inherited: HashMap<PathBuf, String> = HashMap::new();
    for (p, src) in &sources {
        if p.extension().is_some_and(|e| e == "c") {
            let Some(line) = src.lines().find(|l| l.starts_with("#define pr_fmt(fmt)")) else {
                continue;
            };
            let stem = p.file_stem().unwrap_or_default().to_string_lossy();
            let prefix = pr_fmt_prefix(&lex(line)[5..], &stem);
            for l in src.lines().filter(|l| l.starts_with("#include \"")) {
                let inc = l.trim_start_matches("#include \"").trim_end_matches('"');
                if let Some(dir) = p.parent() {
                    inherited
                        .entry(dir.join(inc))
                        .or_insert_with(|| prefix.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    for (p, src) in &sources {
        let rel = p
            .strip_prefix(tree)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned();
        let inh = if src.contains("#define pr_fmt") {
            ""
        } else {
            inherited.get(p).map_or("", String::as_str)
        };
        out.extend(
            extract_file(&rel, src, inh)
                .into_iter()
                .filter(|f| is_head(&f.text)),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// Filling placeholders.

/// A sample line for a format: `%s` is a task name (or nothing when glued to the word
/// before it, as in `blocked%s for`), numbers are small, pointers are kernel addresses,
/// `%pS` is a symbol with offset.
fn fill(text: &str) -> String {
    let t = first_line(text);
    let mut out = String::new();
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'%') {
            out.push('%');
            i += 1;
            continue;
        }
        let mut zero = false;
        while let Some(&f) = chars.get(i) {
            if "-+ #0".contains(f) {
                zero |= f == '0';
                i += 1;
            } else {
                break;
            }
        }
        let mut width = 0usize;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = width * 10 + d as usize;
            i += 1;
        }
        if chars.get(i) == Some(&'*') {
            i += 1;
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
            while chars
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || *c == '*')
            {
                i += 1;
            }
        }
        while chars.get(i).is_some_and(|c| "hlzjtL".contains(*c)) {
            i += 1;
        }
        let conv = chars.get(i).copied().unwrap_or('s');
        i += 1;
        match conv {
            'd' | 'i' | 'u' => out.push_str(&pad("85", width, zero)),
            'x' | 'X' => out.push_str(&pad("1c", width, true)),
            'c' => out.push('x'),
            'p' => {
                let mut ext = String::new();
                while let Some(&e) = chars.get(i) {
                    if e.is_ascii_alphabetic() {
                        ext.push(e);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push_str(match ext.chars().next() {
                    Some('S') | Some('B') | Some('F') => "census_victim+0x1c/0x40",
                    Some('s') | Some('f') => "census_victim",
                    Some('V') => "probe",
                    Some('a') => "0x0000000041a00000",
                    _ => "ffff888004a1b2c0",
                });
            }
            _ => {
                let glued = out
                    .chars()
                    .last()
                    .is_some_and(|p| p.is_ascii_alphanumeric() || p == '_');
                if !glued {
                    out.push_str("probe");
                }
            }
        }
    }
    out
}

fn pad(v: &str, width: usize, zero: bool) -> String {
    if v.len() >= width {
        return v.to_string();
    }
    let fill = if zero { "0" } else { " " };
    format!("{}{v}", fill.repeat(width - v.len()))
}

/// A minimal report around a head line, as the kernel prints most reports: the task's
/// `CPU:` line and a call trace with a recognisable victim function.
fn wrap(head: &str) -> String {
    let body = [
        head,
        "CPU: 1 UID: 0 PID: 85 Comm: probe Not tainted 7.3.4 #1 PREEMPT(voluntary)",
        "Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014",
        "Call Trace:",
        " <TASK>",
        " dump_stack_lvl+0x65/0x8c",
        " census_victim+0x1c/0x40",
        " vfs_write+0x8b/0x13f",
        " ksys_write+0x6e/0x9e",
        " do_syscall_64+0x83/0x217",
        " entry_SYSCALL_64_after_hwframe+0x4b/0x53",
        " </TASK>",
    ];
    let mut s = String::new();
    for (n, l) in body.iter().enumerate() {
        s.push_str(&format!("[  100.{:06}] {l}\n", 100 + n));
    }
    s
}

// ---------------------------------------------------------------------------------------
// The census file.

#[derive(Debug, Clone)]
enum Expect {
    /// The format's kind, and realistic samples with their own kinds (when the census's
    /// filling of the placeholders would not be realistic).
    Kind(Kind, Vec<(Kind, String)>),
    /// Not a report head, and why.
    Ignore(String),
}

fn parse_kind(what: &str) -> Option<Kind> {
    serde_json::from_value(serde_json::Value::String(what.into())).ok()
}

fn census_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/console/census.tsv")
}

/// `format -> expectation`, in file order; panics naming the line on a malformed entry.
fn load_census() -> Vec<(String, Expect)> {
    let path = census_file();
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = l.split('\t').collect();
        let at = format!("{}:{}", path.display(), n + 1);
        assert!(cols.len() >= 2, "{at}: want KIND<TAB>FORMAT[<TAB>...]");
        let (what, fmt) = (cols[0], cols[1].to_string());
        assert!(seen.insert(fmt.clone()), "{at}: format listed twice");
        let e = if what == "ignore" {
            let why = cols.get(2).map(|s| s.trim()).unwrap_or("");
            assert!(
                why.len() > 10 && cols.len() == 3,
                "{at}: an ignored format needs one reason"
            );
            Expect::Ignore(why.to_string())
        } else {
            let kind = parse_kind(what).unwrap_or_else(|| panic!("{at}: unknown kind `{what}`"));
            let samples = cols[2..]
                .iter()
                .map(|c| {
                    let (k, text) = c
                        .strip_prefix('{')
                        .and_then(|r| r.split_once("} "))
                        .unwrap_or_else(|| panic!("{at}: a sample is `{{KIND}} TEXT`: {c}"));
                    let k = parse_kind(k).unwrap_or_else(|| panic!("{at}: unknown kind `{k}`"));
                    (k, text.to_string())
                })
                .collect();
            Expect::Kind(kind, samples)
        };
        out.push((fmt, e));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Matching printed lines against formats (no regex crate: a small backtracking matcher).

#[derive(Debug)]
enum Piece {
    Lit(char),
    /// Any text, possibly empty.
    Any,
    /// One or more characters of a number or pointer.
    Word,
}

fn pattern(text: &str) -> Vec<Piece> {
    // A format without a newline is continued on the same line (`pr_cont`).
    let continued = !text.contains("\\n");
    let t = first_line(text);
    let t = t.trim_end();
    let chars: Vec<char> = t.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(Piece::Lit(chars[i]));
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'%') {
            out.push(Piece::Lit('%'));
            i += 1;
            continue;
        }
        while chars
            .get(i)
            .is_some_and(|c| "-+ #0123456789.*hlzjtL".contains(*c))
        {
            i += 1;
        }
        let conv = chars.get(i).copied().unwrap_or('s');
        i += 1;
        if conv == 'p' {
            while chars.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
                i += 1;
            }
            out.push(Piece::Any);
        } else if conv == 's' {
            out.push(Piece::Any);
        } else {
            out.push(Piece::Word);
        }
    }
    if continued {
        out.push(Piece::Any);
    }
    out
}

fn matches(p: &[Piece], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((Piece::Lit(c), rest)) => s.first() == Some(c) && matches(rest, &s[1..]),
        Some((Piece::Any, rest)) => (0..=s.len()).any(|k| matches(rest, &s[k..])),
        Some((Piece::Word, rest)) => (1..=s.len())
            .take_while(|&k| !s[k - 1].is_whitespace())
            .any(|k| matches(rest, &s[k..])),
    }
}

/// Whether a console line (printk prefixes stripped) is an instance of `text`.
fn line_matches(text: &str, msg: &str) -> bool {
    let chars: Vec<char> = msg.trim_end().chars().collect();
    matches(&pattern(text), &chars)
}

/// The message of a console line: `[ts]` and `[T85]`/`[C1]` prefixes dropped.
fn message(line: &str) -> &str {
    let mut s = line;
    for _ in 0..2 {
        if let Some(rest) = s.strip_prefix('[') {
            if let Some(end) = rest.find(']') {
                if end <= 16 {
                    s = rest[end + 1..]
                        .strip_prefix(' ')
                        .unwrap_or(&rest[end + 1..]);
                    continue;
                }
            }
        }
        break;
    }
    s
}

// ---------------------------------------------------------------------------------------
// Tests.

fn first_kind(report: &str) -> Option<(Kind, String, usize)> {
    let f = console::parse(Cursor::new(report.as_bytes())).ok()?;
    f.into_iter().next().map(|f| (f.kind, f.title, f.line))
}

/// A title must not carry what changes between runs: addresses, pids, counts.
fn title_is_stable(title: &str) -> bool {
    !title
        .split([' ', ',', ':', '(', ')', '/', '[', ']'])
        .any(|w| {
            w.starts_with("0x")
                || (!w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
                || (w.len() >= 8 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        })
}

/// Checks one expected format: each sample (or the filled format), wrapped in a report,
/// parses as a finding of the expected kind starting at the head, with a stable title.
fn check_format(fmt: &str, kind: Kind, samples: &[(Kind, String)]) -> Result<(), String> {
    if samples.is_empty() {
        return check_head(&fill(fmt), kind).map(|_| ());
    }
    for (k, s) in samples {
        if !line_matches(fmt, s) {
            return Err(format!("sample `{s}` is not an instance of `{fmt}`"));
        }
        check_head(s, *k)?;
    }
    Ok(())
}

/// An ignored format, filled, must not open a report of its own.
fn check_ignored(fmt: &str) -> Result<(), String> {
    let head = fill(fmt);
    match first_kind(&wrap(&head)) {
        Some((k, title, 1)) => Err(format!(
            "`{head}` is ignored on purpose but parsed as {k:?} `{title}`"
        )),
        _ => Ok(()),
    }
}

fn check_head(head: &str, kind: Kind) -> Result<String, String> {
    let report = wrap(head);
    match first_kind(&report) {
        Some((k, title, 1)) if k == kind => {
            if title_is_stable(&title) {
                Ok(title)
            } else {
                Err(format!(
                    "`{head}`: title `{title}` carries run-specific numbers"
                ))
            }
        }
        Some((k, title, line)) => Err(format!(
            "`{head}`: parsed as {k:?} `{title}` at line {line}, want {kind:?} at line 1"
        )),
        None => Err(format!("`{head}`: not recognised, want {kind:?}")),
    }
}

#[test]
fn census_file_is_well_formed_and_its_samples_fit() {
    let entries = load_census();
    assert!(!entries.is_empty());
    let mut failures = Vec::new();
    for (fmt, e) in &entries {
        let r = match e {
            Expect::Kind(kind, samples) => check_format(fmt, *kind, samples),
            Expect::Ignore(_) => check_ignored(fmt),
        };
        if let Err(e) = r {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn golden_lines() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/console");
    let mut out = Vec::new();
    let mut logs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    for p in logs {
        let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        for l in text.lines() {
            out.push((name.clone(), message(l).to_string()));
        }
    }
    out
}

/// Every format the census expects the parser to handle has a realistic instance in a
/// golden log (whose expected findings are reviewed by hand).
#[test]
fn golden_logs_hold_an_instance_of_every_census_format() {
    let lines = golden_lines();
    let missing: Vec<String> = load_census()
        .into_iter()
        .filter(|(_, e)| matches!(e, Expect::Kind(..)))
        .filter(|(fmt, _)| !lines.iter().any(|(_, l)| line_matches(fmt, l)))
        .map(|(fmt, _)| fmt)
        .collect();
    assert!(
        missing.is_empty(),
        "no golden log holds an instance of:\n{}",
        missing.join("\n")
    );
}

fn kernel_tree() -> PathBuf {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cache = kmatrix::host::cache::Cache::from_env();
    let spec = kmatrix::record::plan::SourceSpec::DebianPackage("linux-source-7.3".into());
    rt.block_on(kmatrix::prepare::source::prepare(&spec, &cache))
        .unwrap_or_else(|e| panic!("cannot prepare the kernel source: {e}"))
        .path
}

#[test]
#[ignore = "needs the kernel source (linux-source-7.3 in kmatrix's cache); run with --include-ignored"]
fn census_of_the_target_tree() {
    let tree = kernel_tree();
    let formats = census(&tree);
    assert!(
        formats.len() > 50,
        "only {} report formats found under {}: is the tree complete?",
        formats.len(),
        tree.display()
    );
    let entries: HashMap<String, Expect> = load_census().into_iter().collect();
    let mut new = Vec::new();
    let mut wrong = Vec::new();
    let mut seen = HashSet::new();
    let mut ignored = Vec::new();
    let mut handled = 0;
    for f in &formats {
        if !seen.insert(f.text.clone()) {
            continue;
        }
        match entries.get(&f.text) {
            None => {
                let got = first_kind(&wrap(&fill(&f.text)))
                    .map(|(k, t, _)| format!("parsed as {k:?} `{t}`"))
                    .unwrap_or_else(|| "not recognised".into());
                new.push(format!("{}:{}\t{}\t({got})", f.file, f.line, f.text));
            }
            Some(Expect::Ignore(why)) => {
                ignored.push(format!("{}\t{why}", f.text));
                if let Err(e) = check_ignored(&f.text) {
                    wrong.push(format!("{}:{}: {e}", f.file, f.line));
                }
            }
            Some(Expect::Kind(kind, samples)) => match check_format(&f.text, *kind, samples) {
                Ok(_) => handled += 1,
                Err(e) => wrong.push(format!("{}:{}: {e}", f.file, f.line)),
            },
        }
    }
    let stale: Vec<&String> = entries.keys().filter(|k| !seen.contains(*k)).collect();
    for s in &stale {
        eprintln!("note: census entry not printed by this tree: {s}");
    }
    eprintln!(
        "census of {}: {} distinct report formats, {handled} handled, {} ignored on purpose:\n{}",
        tree.display(),
        seen.len(),
        ignored.len(),
        ignored.join("\n")
    );
    let mut msg = String::new();
    if !new.is_empty() {
        msg += &format!(
            "{} report formats of {} are not in {} (add each with its kind, or `ignore` and why):\n{}\n",
            new.len(),
            tree.display(),
            census_file().display(),
            new.join("\n")
        );
    }
    if !wrong.is_empty() {
        msg += &format!("formats the parser gets wrong:\n{}\n", wrong.join("\n"));
    }
    assert!(msg.is_empty(), "{msg}");
}

// Tests of the extractor itself, on C the census must understand.

#[test]
fn extractor_reads_pr_fmt_wrappers_and_concatenation() {
    let src = r#"
// SPDX
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#define orc_warn(fmt, ...) \
	printk_deferred_once(KERN_WARNING "WARNING: " fmt, ##__VA_ARGS__)
#define warn_or_seq(seq, fmt, ...) do { \
	if (seq) seq_printf(seq, fmt, ##__VA_ARGS__); \
	else pr_warn(fmt, ##__VA_ARGS__); } while (0)
/* pr_err("BUG: in a comment\n"); */
static void f(void)
{
	pr_emerg("PANIC: double fault, error_code: 0x%lx\n", code);
	printk(KERN_ERR "BUG: using %s%s() in preemptible [%08x] "
	       "code: %s/%d\n", what1, what2, 0, comm, pid);
	orc_warn("can't access registers at %pB\n", ip);
	warn_or_seq(seq, "unreferenced object 0x%08lx (size %zu):\n", p, s);
	pr_err(some_fmt, x);
}
"#;
    let got: Vec<String> = extract_file("arch/x86/kernel/traps.c", src, "")
        .into_iter()
        .map(|f| f.text)
        .collect();
    assert_eq!(
        got,
        [
            "traps: PANIC: double fault, error_code: 0x%lx\\n",
            "BUG: using %s%s() in preemptible [%08x] code: %s/%d\\n",
            "WARNING: can't access registers at %pB\\n",
            "traps: unreferenced object 0x%08lx (size %zu):\\n",
        ]
    );
    assert!(is_head(&got[0]) && is_head(&got[1]) && is_head(&got[2]) && is_head(&got[3]));
    assert!(!is_head("rcu: Hierarchical RCU implementation.\\n"));
    assert!(!is_head(
        "watchdog: Delayed init of the lockup detector failed: %d\\n"
    ));
    assert!(is_head(
        "watchdog: CPU%u: Watchdog detected hard LOCKUP on cpu %u\\n"
    ));
}

#[test]
fn filling_and_matching() {
    assert_eq!(
        fill("INFO: task %s:%d blocked%s for more than %ld seconds.\\n"),
        "INFO: task probe:85 blocked for more than 85 seconds."
    );
    assert_eq!(
        fill("BUG: using %s%s() in preemptible [%08x] code: %s/%d\\n"),
        "BUG: using probe() in preemptible [0000001c] code: probe/85"
    );
    assert_eq!(
        fill("BUG: KASAN: %s in %pS\\n"),
        "BUG: KASAN: probe in census_victim+0x1c/0x40"
    );
    let fmt = "INFO: task %s:%d blocked%s for more than %ld seconds.\\n";
    assert!(line_matches(
        fmt,
        "INFO: task vma_probe:83 blocked in I/O wait for more than 10 seconds."
    ));
    assert!(!line_matches(fmt, "INFO: task vma_probe:83 blocked"));
    assert!(line_matches(
        "WARNING: %s:%d at %pS, CPU#%d: %s/%d\\n",
        "WARNING: mm/mmap.c:123 at 0x0, CPU#1: probe/85"
    ));
    assert_eq!(message("[   12.5][  T85] BUG: x"), "BUG: x");
    assert!(title_is_stable(
        "BUG: using smp_processor_id() in preemptible code in foo"
    ));
    assert!(!title_is_stable(
        "BUG: spinlock bad magic on CPU#0, probe/85"
    ));
}
