//! Filling `Frame::source` from a vmlinux with binutils' `nm` and `addr2line`.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::record::finding::Finding;

/// One `nm` line (`ffffffff81234560 T vma_start_read`) → (name, address) for text symbols.
pub(crate) fn parse_nm_line(line: &str) -> Option<(&str, u64)> {
    let mut it = line.split_whitespace();
    let addr = it.next()?;
    let ty = it.next()?;
    let name = it.next()?;
    if !matches!(ty, "T" | "t" | "W" | "w") {
        return None;
    }
    Some((name, u64::from_str_radix(addr, 16).ok()?))
}

/// The address to look up for a frame. Trace offsets are return addresses, which point
/// past the call instruction (possibly into the next line or function), so one byte back
/// is looked up; offset 0 (a function entry) is used as is.
pub(crate) fn frame_address(symbol: u64, offset: u64) -> u64 {
    symbol
        .wrapping_add(offset)
        .wrapping_sub(u64::from(offset > 0))
}

/// One `addr2line` output line → `file:line`, or None for `??:0`/`??:?`.
pub(crate) fn parse_addr2line(line: &str) -> Option<String> {
    let line = line.trim();
    let line = line.split(" (discriminator").next().unwrap_or(line);
    if line.starts_with("??") || line.is_empty() {
        return None;
    }
    Some(line.to_string())
}

/// Fills `Frame::source` (`file:line`) for every trace frame of `findings` that names a
/// vmlinux symbol with an offset. Runs `{tool_prefix}nm` once and `{tool_prefix}addr2line`
/// once, fed all addresses. Frames in modules, without offsets or already symbolised are
/// left alone. Errors if the tools are missing or fail.
pub fn symbolize(findings: &mut [Finding], vmlinux: &Path, tool_prefix: &str) -> io::Result<()> {
    let wanted: HashSet<String> = findings
        .iter()
        .flat_map(|f| f.trace.iter())
        .filter(|fr| fr.module.is_none() && fr.offset.is_some() && fr.source.is_none())
        .map(|fr| fr.function.clone())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let nm = format!("{tool_prefix}nm");
    let out = Command::new(&nm)
        .arg(vmlinux)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {nm}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{nm} {} failed: {}",
            vmlinux.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut symbols: HashMap<String, u64> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((name, addr)) = parse_nm_line(line) {
            if wanted.contains(name) && !symbols.contains_key(name) {
                symbols.insert(name.to_string(), addr);
            }
        }
    }
    // (finding, frame) → address, in lookup order.
    let mut jobs: Vec<(usize, usize, u64)> = Vec::new();
    for (fi, f) in findings.iter().enumerate() {
        for (ti, fr) in f.trace.iter().enumerate() {
            if fr.module.is_some() || fr.source.is_some() {
                continue;
            }
            if let (Some(off), Some(&sym)) = (fr.offset, symbols.get(&fr.function)) {
                jobs.push((fi, ti, frame_address(sym, off)));
            }
        }
    }
    if jobs.is_empty() {
        return Ok(());
    }
    let a2l = format!("{tool_prefix}addr2line");
    let mut child = Command::new(&a2l)
        .arg("-e")
        .arg(vmlinux)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running {a2l}: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    let input: String = jobs.iter().map(|(_, _, a)| format!("{a:#x}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    for &(fi, ti, _) in &jobs {
        let Some(line) = lines.next().transpose()? else {
            break;
        };
        findings[fi].trace[ti].source = parse_addr2line(&line);
    }
    writer
        .join()
        .map_err(|_| io::Error::other("addr2line writer panicked"))??;
    let status = child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("{a2l} exited with {status}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::{Frame, Kind};

    #[test]
    fn nm_lines() {
        assert_eq!(
            parse_nm_line("ffffffff81234560 T vma_start_read"),
            Some(("vma_start_read", 0xffffffff81234560))
        );
        assert_eq!(
            parse_nm_line("ffff800080010000 t foo.constprop.0"),
            Some(("foo.constprop.0", 0xffff800080010000))
        );
        assert_eq!(parse_nm_line("ffffffff82000000 D some_data"), None);
        assert_eq!(parse_nm_line("         U undefined"), None);
    }

    #[test]
    fn address_arithmetic() {
        assert_eq!(frame_address(0xffffffff81234560, 0x2c), 0xffffffff8123458b);
        assert_eq!(frame_address(0x1000, 0), 0x1000);
        assert_eq!(frame_address(u64::MAX, 2), 0);
    }

    #[test]
    fn addr2line_lines() {
        assert_eq!(
            parse_addr2line("/src/linux/mm/memory.c:6123\n").as_deref(),
            Some("/src/linux/mm/memory.c:6123")
        );
        assert_eq!(
            parse_addr2line("mm/mmap.c:12 (discriminator 3)").as_deref(),
            Some("mm/mmap.c:12")
        );
        assert_eq!(parse_addr2line("??:0"), None);
        assert_eq!(parse_addr2line("??:?"), None);
    }

    fn finding(frames: Vec<Frame>) -> Finding {
        Finding {
            kind: Kind::Warning,
            title: "WARNING in foo".into(),
            frame: Some("foo".into()),
            corrupted: false,
            trace: frames,
            task: None,
            pid: None,
            cpu: None,
            timestamp: None,
            line: 1,
            report: String::new(),
            ..Default::default()
        }
    }

    fn frame(function: &str, offset: u64, module: Option<&str>) -> Frame {
        Frame {
            function: function.into(),
            offset: Some(offset),
            size: Some(0x40),
            module: module.map(str::to_string),
            source: None,
        }
    }

    /// End to end with the host's binutils on a small C program (skipped when no C
    /// compiler or binutils are installed).
    #[test]
    fn symbolizes_with_host_binutils() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("vmlinux_like.c");
        std::fs::write(
            &c,
            "int helper(int x)\n{\n\treturn x * 3;\n}\n\nint main(void)\n{\n\treturn helper(2);\n}\n",
        )
        .unwrap();
        let exe = dir.path().join("vmlinux_like");
        let built = Command::new("cc")
            .args(["-g", "-O0", "-o"])
            .arg(&exe)
            .arg(&c)
            .status()
            .is_ok_and(|s| s.success());
        if !built || Command::new("addr2line").arg("--version").output().is_err() {
            eprintln!("skipping: no cc/binutils");
            return;
        }
        let mut fs = vec![
            finding(vec![frame("helper", 4, None), frame("main", 9, None)]),
            finding(vec![
                frame("helper", 4, Some("mod")),
                frame("no_such_symbol", 1, None),
            ]),
        ];
        symbolize(&mut fs, &exe, "").unwrap();
        let src = fs[0].trace[0].source.clone().expect("helper symbolised");
        assert!(src.contains("vmlinux_like.c:"), "{src}");
        assert!(fs[0].trace[1]
            .source
            .as_deref()
            .unwrap()
            .contains("vmlinux_like.c:"));
        assert_eq!(fs[1].trace[0].source, None, "module frames are left alone");
        assert_eq!(fs[1].trace[1].source, None);
    }

    #[test]
    fn missing_tools_is_an_error() {
        let mut fs = vec![Finding {
            kind: Kind::Warning,
            title: "WARNING in foo".into(),
            frame: Some("foo".into()),
            corrupted: false,
            trace: vec![Frame {
                function: "foo".into(),
                offset: Some(1),
                size: Some(2),
                module: None,
                source: None,
            }],
            task: None,
            pid: None,
            cpu: None,
            timestamp: None,
            line: 1,
            report: String::new(),
            ..Default::default()
        }];
        let err = symbolize(
            &mut fs,
            Path::new("/nonexistent/vmlinux"),
            "no-such-prefix-",
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(fs[0].trace[0].source.is_none());
    }
}
