//! Console parser throughput: builds a large console log in memory (golden report logs
//! spread through plenty of ordinary boot/userspace lines), parses it and prints MB/s.
//!
//! `cargo run --release --example parse_throughput [-- SIZE_MB [LOG_DIR]]` (default 200
//! MB of the golden logs in tests/data/console; give LOG_DIR to compare two builds of the
//! parser on the same input).

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

const ORDINARY: &[&str] = &[
    "[  {ts}] probe: iteration {n} ok, 4 threads, 1024 vmas",
    "[  {ts}] EXT4-fs (vda): mounted filesystem 6c1a0c0e r/w with ordered data mode. Quota mode: none.",
    "[  {ts}] systemd[1]: Started Daily Cleanup of Temporary Directories.",
    "[  {ts}] random: crng reseeded on system resumption",
    "[  {ts}] audit: type=1400 audit({n}.123:45): apparmor=\"STATUS\" operation=\"profile_load\"",
    "[  {ts}] virtio_net virtio0 eth0: renamed from eth0",
    "[  {ts}] Kernel command line: console=ttyS0 root=/dev/vda rw panic_on_warn=1",
    "[  {ts}] Freeing unused kernel image (initmem) memory: 2660K",
    "[  {ts}] rcu: Hierarchical SRCU implementation.",
    "[  {ts}] workqueue: drain_vmap_area_work hogged CPU for >10000us 4 times, consider switching to WQ_UNBOUND",
    "[  {ts}] INFO: NMI handler (perf_event_nmi_handler) took too long to run: 1.234 msecs",
    "[  {ts}] kmatrix-guest: stress vma_lock readers=3 writers=1 seconds=60",
    "[  {ts}] perf: interrupt took too long (2505 > 2500), lowering kernel.perf_event_max_sample_rate to 79750",
    "  Good, all 261 testcases passed! |",
];

fn main() {
    let size_mb: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let target = size_mb * 1024 * 1024;
    let dir = std::env::args()
        .nth(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/console"));
    let mut reports: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("golden logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    reports.sort();
    let mut log: Vec<u8> = Vec::with_capacity(target + (1 << 20));
    let mut n: u64 = 0;
    let mut r = 0;
    while log.len() < target {
        // ~2000 ordinary lines between reports.
        for _ in 0..2000 {
            n += 1;
            let ts = format!("{:>5}.{:06}", n / 1000, n % 1_000_000);
            let line = ORDINARY[(n as usize * 7) % ORDINARY.len()]
                .replace("{ts}", &ts)
                .replace("{n}", &n.to_string());
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
        }
        log.extend_from_slice(&reports[r % reports.len()]);
        if log.last() != Some(&b'\n') {
            log.push(b'\n');
        }
        r += 1;
    }
    let mb = log.len() as f64 / (1024.0 * 1024.0);
    let start = Instant::now();
    let findings = kmatrix::console::parse(Cursor::new(&log)).expect("parse");
    let secs = start.elapsed().as_secs_f64();
    let deduped = kmatrix::console::dedup(&findings);
    eprintln!(
        "parsed {mb:.1} MB ({} report logs embedded) in {secs:.3} s: {} findings, {} distinct titles",
        r,
        findings.len(),
        deduped.len()
    );
    println!("{:.1} MB/s", mb / secs);
}
