//! Stack-frame lines.

use crate::record::finding::Frame;

/// Parses one frame such as ` ? vma_start_read+0x2c/0x180 [mod]`,
/// ` [<ffffffff81234567>] foo+0x1/0x2`, ` foo+0x1/0x2 (P)` (arm64) or the symbolised
/// ` foo mm/memory.c:123 [inline]`. Returns the frame and whether it was marked
/// unreliable (`? `).
pub(crate) fn parse_frame(s: &str) -> Option<(Frame, bool)> {
    let (mut s, addressed) = strip_line_prefix(s)?;
    // 32-bit arm: `[<c0100000>] (func+0x1/0x2) from [<c0100100>] (caller+0x3/0x4)`; the
    // caller is the next line's function.
    if addressed {
        if let Some(inner) = s.strip_prefix('(') {
            let (inner, rest) = inner.split_once(')')?;
            if !rest.trim_start().starts_with("from ") {
                return None;
            }
            if !inner.contains('+') {
                return is_symbol(inner).then(|| (bare_frame(inner), false));
            }
            s = inner;
        }
    }
    let mut unreliable = false;
    if let Some(rest) = s.strip_prefix("? ") {
        unreliable = true;
        s = rest.trim_start();
    }
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    let first = *name.as_bytes().first()?;
    if first.is_ascii_digit() || first == b'.' {
        return None;
    }
    // An address printed for want of a symbol (`ffffffff81234567`).
    if name.len() >= 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (offset, size, rest) = offset_and_size(&s[name_end..])?;
    let (module, source) = annotations(rest);
    let frame = Frame {
        function: name.to_string(),
        offset,
        size,
        module,
        source,
    };
    Some((frame, unreliable))
}

/// Strips what may come before a frame's name: old x86's inline context markers
/// (` <IRQ>  [<ffff..>] foo`), a timestamp merged into the line by interleaved console
/// output, and `[<address>]` columns. Returns the rest and whether an address was there.
fn strip_line_prefix(s: &str) -> Option<(&str, bool)> {
    let mut s = s.trim_start();
    while s.starts_with('<') {
        let end = s.find('>')?;
        if end > 8 || !s[1..end].bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        s = s[end + 1..].trim_start();
    }
    // ` <IRQ> [  420.408595]  [<ffffffff814249f9>] sched_show_task+0x1c9/0x279`.
    if let Some(rest) = s.strip_prefix('[') {
        if !rest.starts_with('<') {
            let (ts, after) = rest.split_once(']')?;
            let ts = ts.trim();
            if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return None;
            }
            s = after.trim_start();
        }
    }
    let mut addressed = false;
    while let Some(rest) = s.strip_prefix("[<") {
        let end = rest.find(">]")?;
        s = rest[end + 2..].trim_start();
        addressed = true;
    }
    Some((s, addressed))
}

/// A plain symbol name (`probe_work_fn`, `foo.part.0`).
pub(crate) fn is_symbol(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// A frame known by its name only.
pub(crate) fn bare_frame(name: &str) -> Frame {
    Frame {
        function: name.to_string(),
        offset: None,
        size: None,
        module: None,
        source: None,
    }
}

/// `+0x1c/0x40 ...` after a frame's name, or the source location of a symbolised frame
/// without offset (` mm/memory.c:123 [inline]`). Returns offset, size and the rest.
fn offset_and_size(rest: &str) -> Option<(Option<u64>, Option<u64>, &str)> {
    let Some(r) = rest.strip_prefix("+0x") else {
        let tok = rest.strip_prefix(' ')?.split_whitespace().next()?;
        looks_like_source(tok)?;
        return Some((None, None, rest));
    };
    let (off, mut rest) = hex_prefix(r)?;
    let mut size = None;
    if let Some(r) = rest.strip_prefix("/0x") {
        let (sz, r) = hex_prefix(r)?;
        size = Some(sz);
        rest = r;
    }
    if !(rest.is_empty() || rest.starts_with([' ', ',', '\t'])) {
        return None;
    }
    Some((Some(off), size, rest))
}

/// The source location (`mm/memory.c:123`) and module (`[ext4]`) after a frame.
fn annotations(rest: &str) -> (Option<String>, Option<String>) {
    let mut module = None;
    let mut source = None;
    for tok in rest.split_whitespace() {
        if source.is_none() {
            if let Some(src) = looks_like_source(tok) {
                source = Some(src.to_string());
                continue;
            }
        }
        if module.is_none() && tok.starts_with('[') && tok != "[inline]" {
            let m = tok.trim_start_matches('[').trim_end_matches(']');
            if !m.is_empty()
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                module = Some(m.to_string());
            }
        }
    }
    (module, source)
}

fn hex_prefix(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(s.len());
    if end == 0 || end > 16 {
        return None;
    }
    Some((u64::from_str_radix(&s[..end], 16).ok()?, &s[end..]))
}

/// `mm/memory.c:123` or `mm/memory.c:123:4` → the token itself.
fn looks_like_source(tok: &str) -> Option<&str> {
    let tok = tok.trim_end_matches(',');
    let colon = tok.find(':')?;
    let (path, line) = (&tok[..colon], &tok[colon + 1..]);
    if !path.contains('.') || path.starts_with('[') || line.is_empty() {
        return None;
    }
    if !line.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    Some(tok)
}

/// Context markers in x86 traces: `<TASK>`, `</IRQ>`… Returns (name, opening).
pub(crate) fn parse_marker(s: &str) -> Option<(&str, bool)> {
    let s = s.trim();
    let inner = s.strip_prefix('<')?.strip_suffix('>')?;
    let (name, open) = match inner.strip_prefix('/') {
        Some(n) => (n, false),
        None => (inner, true),
    };
    // x86 stack types: `TASK`, `IRQ`, `SOFTIRQ`, `NMI`, `#DF`, `#MC`, `#VC2`,
    // `ENTRY_TRAMPOLINE`, `SYSENTER`.
    if name.is_empty()
        || name.len() > 16
        || !name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_uppercase() || b == b'#')
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'#' || b == b'_')
    {
        return None;
    }
    Some((name, open))
}

/// `foo.constprop.0` → `foo`, `bar.cold` → `bar`.
pub(crate) fn normalize(name: &str) -> &str {
    match name.find('.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

/// The name a title uses for a frame: compiler suffixes dropped, and the per-arch
/// syscall wrappers `SYSCALL_DEFINE` generates (`__x64_sys_X`, `__arm64_sys_X`,
/// `__ia32_sys_X`, `__se_sys_X`) named by the body they wrap, `__do_sys_X`, so that the
/// same bug has the same title on every arch.
pub(crate) fn title_name(name: &str) -> String {
    let n = normalize(name);
    for w in [
        "__x64_sys_",
        "__arm64_sys_",
        "__ia32_sys_",
        "__se_sys_",
        "__x64_compat_sys_",
        "__arm64_compat_sys_",
        "__ia32_compat_sys_",
        "__se_compat_sys_",
    ] {
        if let Some(call) = n.strip_prefix(w) {
            if !call.is_empty() {
                let compat = if w.contains("compat") { "compat_" } else { "" };
                return format!("__do_{compat}sys_{call}");
            }
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Frame {
        parse_frame(s).unwrap().0
    }

    #[test]
    fn frames() {
        let fr = f(" vma_start_read+0x2c/0x180");
        assert_eq!(fr.function, "vma_start_read");
        assert_eq!((fr.offset, fr.size), (Some(0x2c), Some(0x180)));
        let (fr, unrel) = parse_frame(" ? __die+0x23/0x70").unwrap();
        assert!(unrel);
        assert_eq!(fr.function, "__die");
        let fr = f(" ext4_foo.constprop.0+0x10/0x20 [ext4]");
        assert_eq!(fr.module.as_deref(), Some("ext4"));
        assert_eq!(normalize(&fr.function), "ext4_foo");
        let fr = f(" [<ffffffff81234567>] ? foo+0x1/0x2");
        assert_eq!(fr.function, "foo");
        let fr = f(" vma_start_read+0x1c/0x90 (P)");
        assert_eq!(fr.function, "vma_start_read");
        let fr = f(" __dump_stack lib/dump_stack.c:94 [inline]");
        assert_eq!(fr.source.as_deref(), Some("lib/dump_stack.c:94"));
        assert_eq!(fr.offset, None);
        let fr = f(" dump_stack_lvl+0x241/0x360 lib/dump_stack.c:120");
        assert_eq!(fr.source.as_deref(), Some("lib/dump_stack.c:120"));
        let fr = f(" <IRQ>  [<ffffffff81000000>] foo+0x1/0x2");
        assert_eq!(fr.function, "foo");
        let fr = f("[<80b2f268>] (_raw_spin_unlock_irqrestore) from [<8016fb5c>] (prepare_to_wait_event+0x68/0x104)");
        assert_eq!(fr.function, "_raw_spin_unlock_irqrestore");
        let fr = f("[<8010e300>] (show_stack+0x18/0x1c) from [<8018de80>] (rcu_check_callbacks+0x7a0/0x7a8)");
        assert_eq!(
            (fr.function.as_str(), fr.offset),
            ("show_stack", Some(0x18))
        );
    }

    #[test]
    fn not_frames() {
        for s in [
            "Hardware name: QEMU Standard PC",
            "RIP: 0010:foo+0x1/0x2",
            "Code: 48 89 e5",
            "turning off the locking correctness validator.",
            " 0xffffffffc0001234",
            "</TASK>",
            "",
            "   ",
            "foo+0xzz/0x1",
            " #0: ffff888100a1b2c8 (&mm->mmap_lock){++++}-{3:3}, at: foo+0x1/0x2",
        ] {
            assert!(parse_frame(s).is_none(), "{s:?}");
        }
    }

    #[test]
    fn markers() {
        assert_eq!(parse_marker(" <TASK>"), Some(("TASK", true)));
        assert_eq!(parse_marker(" </IRQ>"), Some(("IRQ", false)));
        assert_eq!(parse_marker(" <task>"), None);
        assert_eq!(parse_marker(" <#DF>"), Some(("#DF", true)));
        assert_eq!(
            parse_marker(" </ENTRY_TRAMPOLINE>"),
            Some(("ENTRY_TRAMPOLINE", false))
        );
        assert_eq!(parse_marker(" <1>"), None);
    }
}
