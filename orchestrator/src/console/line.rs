//! Splitting a raw console line into printk prefix (timestamp, caller id) and message.

/// Who printed a line, from `CONFIG_PRINTK_CALLER` (`[T123]` task or `[C1]` CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Task(u32),
    Cpu(u32),
}

/// A console line with its printk prefix taken apart.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    pub ts: Option<f64>,
    pub caller: Option<Caller>,
    pub msg: &'a [u8],
}

/// Splits `[   12.345678]`, `[  T123]`/`[C1]` (either or both) and a `<4>` log level
/// off the front of a line. Never fails: anything unrecognised stays in `msg`.
pub(crate) fn split(raw: &[u8]) -> Line<'_> {
    let mut s = raw;
    while let [rest @ .., b'\r' | b'\n'] = s {
        s = rest;
    }
    while let [b'\r' | b'\0', rest @ ..] = s {
        s = rest;
    }
    // syslog / journal: `Mar 12 10:00:00 host kernel: [   12.3] BUG: ...`.
    s = strip_syslog(s);
    // `<4>` syslog level (e.g. from /dev/kmsg dumps).
    if s.len() >= 3 && s[0] == b'<' && s[1].is_ascii_digit() && s[2] == b'>' {
        s = &s[3..];
    }
    s = skip_interleaved_output(s);
    let mut ts = None;
    let mut caller = None;
    let mut human = false;
    for _ in 0..2 {
        let Some((inner, rest)) = bracket(s) else {
            break;
        };
        if ts.is_none() && caller.is_none() {
            if let Some(t) = parse_ts(inner) {
                ts = Some(t);
                s = rest;
                continue;
            }
        }
        if ts.is_none() && caller.is_none() && is_human_time(inner) {
            // `dmesg -T`: `[Tue Mar 12 10:00:00 2024]`.
            s = rest;
            human = true;
            continue;
        }
        if caller.is_none() {
            if let Some(c) = parse_caller(inner) {
                caller = Some(c);
                s = rest;
                continue;
            }
        }
        break;
    }
    if ts.is_some() || caller.is_some() || human {
        if let [b' ', rest @ ..] = s {
            s = rest;
        }
    }
    Line { ts, caller, msg: s }
}

/// A kernel line printed right after output that did not end its line (a login prompt,
/// a program's progress): `syzkaller login: [   16.305150] INFO: ...`. The kernel's part
/// starts at its timestamp.
fn skip_interleaved_output(s: &[u8]) -> &[u8] {
    if s.first() == Some(&b'[') {
        return s;
    }
    let window = &s[..s.len().min(256)];
    let Some(open) = window.iter().position(|&b| b == b'[') else {
        return s;
    };
    match bracket(&s[open..]) {
        Some((inner, _)) if parse_ts(inner).is_some() => &s[open..],
        _ => s,
    }
}

fn bracket(s: &[u8]) -> Option<(&[u8], &[u8])> {
    if s.first() != Some(&b'[') {
        return None;
    }
    let end = s.iter().take(32).position(|&b| b == b']')?;
    Some((&s[1..end], &s[end + 1..]))
}

/// Strips a syslog/journal prefix ending in ` kernel: ` when the line starts like a
/// syslog date (`Mar 12 ...`, `2024-03-12T...`). Cheap: looks at two bytes first.
fn strip_syslog(s: &[u8]) -> &[u8] {
    // `Mar 12 10:00:00` / `Mar  2 10:00:00` or `2024-03-12T10:00:00`.
    let looks_dated = s.len() > 16
        && ((s[0].is_ascii_uppercase() && s[3] == b' ' && s[9] == b':' && s[12] == b':')
            || (s[..4].iter().all(u8::is_ascii_digit) && s[4] == b'-' && s[13] == b':'));
    if !looks_dated {
        return s;
    }
    let window = &s[..s.len().min(96)];
    match window.windows(9).position(|w| w == b" kernel: ") {
        Some(i) => &s[i + 9..],
        None => s,
    }
}

fn is_human_time(inner: &[u8]) -> bool {
    // `Tue Mar 12 10:00:00 2024`
    inner.len() == 24
        && inner[0].is_ascii_uppercase()
        && inner[3] == b' '
        && inner[7] == b' '
        && inner[13] == b':'
        && inner[16] == b':'
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

fn parse_ts(inner: &[u8]) -> Option<f64> {
    let inner = trim_spaces(inner);
    let dot = inner.iter().position(|&b| b == b'.')?;
    let (int, frac) = (&inner[..dot], &inner[dot + 1..]);
    if int.is_empty() || frac.is_empty() || int.len() > 12 || frac.len() > 9 {
        return None;
    }
    let mut secs: u64 = 0;
    for &b in int {
        if !b.is_ascii_digit() {
            return None;
        }
        secs = secs * 10 + u64::from(b - b'0');
    }
    let mut f: u64 = 0;
    for &b in frac {
        if !b.is_ascii_digit() {
            return None;
        }
        f = f * 10 + u64::from(b - b'0');
    }
    Some(secs as f64 + f as f64 / 10f64.powi(frac.len() as i32))
}

fn parse_caller(inner: &[u8]) -> Option<Caller> {
    let inner = trim_spaces(inner);
    let (&tag, digits) = inner.split_first()?;
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    match tag {
        b'T' => Some(Caller::Task(n)),
        b'C' => Some(Caller::Cpu(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let l = split(b"hello world\r");
        assert_eq!(l.ts, None);
        assert_eq!(l.msg, b"hello world");
    }

    #[test]
    fn timestamp_and_caller() {
        let l = split(b"[   12.345678][  T123] BUG: foo");
        assert_eq!(l.ts, Some(12.345678));
        assert_eq!(l.caller, Some(Caller::Task(123)));
        assert_eq!(l.msg, b"BUG: foo");
        let l = split(b"[    1.000000] [C1] x");
        assert_eq!(l.caller, None);
        assert_eq!(l.msg, b"[C1] x");
        let l = split(b"[C1]  frame+0x1/0x2");
        assert_eq!(l.caller, Some(Caller::Cpu(1)));
        assert_eq!(l.msg, b" frame+0x1/0x2");
        let l = split(b"<4>[ 5.5] x");
        assert_eq!(l.ts, Some(5.5));
    }

    #[test]
    fn syslog_and_dmesg_t() {
        let l = split(b"Mar 12 10:00:00 host kernel: [   12.500000] BUG: foo");
        assert_eq!(l.ts, Some(12.5));
        assert_eq!(l.msg, b"BUG: foo");
        let l = split(b"2024-03-12T10:00:00+0000 host kernel: WARNING: CPU: 0 PID: 1 at x");
        assert_eq!(l.msg, b"WARNING: CPU: 0 PID: 1 at x");
        let l = split(b"[Tue Mar 12 10:00:00 2024] kernel BUG at mm/mmap.c:1!");
        assert_eq!(l.msg, b"kernel BUG at mm/mmap.c:1!");
        assert_eq!(
            split(b"Mar is a month: kernel: no").msg,
            b"Mar is a month: kernel: no"
        );
    }

    #[test]
    fn output_before_the_timestamp() {
        let l = split(b"syzkaller login: [   16.305150] INFO: trying to register non-static key.");
        assert_eq!(l.ts, Some(16.30515));
        assert_eq!(l.msg, b"INFO: trying to register non-static key.");
        assert_eq!(split(b"probe: [x] done").msg, b"probe: [x] done");
    }

    #[test]
    fn not_prefixes() {
        assert_eq!(
            split(b"[<ffffffff81000000>] foo").msg,
            b"[<ffffffff81000000>] foo"
        );
        assert_eq!(
            split(b"[0000000000000008] pgd=0").msg,
            b"[0000000000000008] pgd=0"
        );
        assert_eq!(split(b"[  OK  ] Started").msg, b"[  OK  ] Started");
        assert_eq!(split(b"[").msg, b"[");
        assert_eq!(split(b"").msg, b"");
    }
}
