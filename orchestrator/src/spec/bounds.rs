//! How much a spec may ask for. A spec often comes with a series from a mailing list, and
//! a matrix grows as a product (arches x configs x patchsets, each cell with its own
//! fragment and patch lists): every count, file and time is capped here, far above any
//! real matrix, so that a bad spec is a clear error naming its key and not gigabytes.

use std::path::Path;
use std::time::Duration;

/// Cells of one matrix (as many as `--shard` may split it into: one cell a shard).
pub const CELLS: usize = crate::record::shard::Shard::MAX as usize;
/// Fragments of one list (the common ones, or one config's).
pub const FRAGMENTS: usize = 64;
/// Patches of one patchset (a series file, a folder, or the list itself).
pub const PATCHES: usize = 1000;
/// Guest tests, harness patches and selftests of a spec.
pub const TESTS: usize = 256;
pub const HARNESS: usize = 64;
pub const SELFTESTS: usize = 256;
/// Arguments of one test, and the bytes of each.
pub const ARGS: usize = 64;
pub const ARG_BYTES: usize = 4096;
/// The spec file, a `series` file, a fragment, a patch.
pub const SPEC_BYTES: u64 = 1 << 20;
pub const SERIES_BYTES: u64 = 1 << 20;
pub const FRAGMENT_BYTES: u64 = 1 << 20;
pub const PATCH_BYTES: u64 = 64 << 20;
/// Any duration (a test's, a timeout): a day. A deadline past it is a typo, and one of
/// `u64::MAX` seconds would overflow when a boot adds it to the clock.
pub const TIME: Duration = Duration::from_secs(24 * 3600);
/// The kernel's hung-task timeout: an hour (the detector must fire within a test).
pub const HUNG_TASK: Duration = Duration::from_secs(3600);
/// A guest's CPUs and memory (MiB), make's jobs.
pub const CPUS: u32 = 256;
pub const MEMORY_MIB: u64 = 1 << 20;
pub const JOBS: usize = 1024;
/// `limits:`: what a guest may make kmatrix store per cell.
pub const CONSOLE_BYTES: u64 = 1 << 30;
pub const TEST_OUTPUT_BYTES: u64 = 1 << 30;
pub const RESULTS_BYTES: u64 = 64 << 30;

/// `n` things of a list of at most `max`.
pub fn count(what: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        Err(format!("{n} {what}: at most {max}"))
    } else {
        Ok(())
    }
}

/// A duration of at most `max`; `text` is how the spec wrote it.
pub fn time(d: Duration, text: &str, max: Duration) -> Result<(), String> {
    if d > max {
        Err(format!(
            "`{text}` is longer than the {} allowed",
            humantime::format_duration(max)
        ))
    } else {
        Ok(())
    }
}

/// A number within `lo..=hi`.
pub fn within<T: PartialOrd + std::fmt::Display>(n: T, lo: T, hi: T) -> Result<(), String> {
    if n < lo || n > hi {
        Err(format!("{n}: give {lo} to {hi}"))
    } else {
        Ok(())
    }
}

/// A file the spec names: there, a regular file once links are followed (a FIFO would
/// hang the reader, a device never ends) and at most `cap` bytes.
pub fn file(path: &Path, cap: u64, what: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let t = m.file_type();
    let kind = if m.is_file() {
        None
    } else if t.is_dir() {
        Some("a folder")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    };
    if let Some(k) = kind {
        return Err(format!(
            "{what} {} is {k}, not a regular file",
            path.display()
        ));
    }
    if m.len() > cap {
        return Err(format!(
            "{what} {} is {} bytes, more than the {cap} allowed",
            path.display(),
            m.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_says_what_and_how_much() {
        assert!(count("cells", 4096, CELLS).is_ok());
        assert_eq!(
            count("cells", 4097, CELLS).unwrap_err(),
            "4097 cells: at most 4096"
        );
        let e = time(Duration::from_secs(u64::MAX), "18446744073709551615", TIME).unwrap_err();
        assert!(e.contains("longer than the 1day allowed"), "{e}");
        assert!(within(0u32, 1, CPUS).unwrap_err().contains("give 1 to 256"));
        let e = file(Path::new("/dev/zero"), 10, "patch").unwrap_err();
        assert!(e.contains("/dev/zero is a device"), "{e}");
    }
}
