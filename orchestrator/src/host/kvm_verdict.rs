//! Whether guests really run under KVM on this host, remembered for a while: `/dev/kvm`
//! opening proves nothing on some hosts, and finding out costs a boot that stays silent
//! for 20 s. A verdict holds for one host fingerprint (kernel, QEMU, CPU) and `MAX_AGE`.

use crate::host::cache::Cache;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A verdict older than this is checked again: host kernels and hypervisors change under
/// long-lived machines (a live-migrated VM can land on another host).
pub const MAX_AGE: Duration = Duration::from_secs(6 * 3600);

/// Clock skew tolerated for a verdict "from the future" before it counts as stale.
const FUTURE_SLACK: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KvmVerdict {
    /// A guest kernel reached init under KVM and QEMU reported no KVM error.
    pub works: bool,
    /// Why: QEMU's own KVM error, "guest printed nothing in 20s", or what ran.
    pub reason: String,
    /// `fingerprint()` of the host the verdict was found on.
    pub fingerprint: String,
    /// When it was found (seconds since the epoch).
    pub checked_unix: u64,
}

impl KvmVerdict {
    /// A verdict found just now.
    pub fn now(works: bool, reason: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        KvmVerdict {
            works,
            reason: reason.into(),
            fingerprint: fingerprint.into(),
            checked_unix: now_unix(),
        }
    }

    /// How long ago it was found (zero if the clock says "in the future").
    pub fn age(&self) -> Duration {
        Duration::from_secs(now_unix().saturating_sub(self.checked_unix))
    }
}

/// What identifies the host for KVM purposes: kernel release, QEMU version, CPU model.
/// Runs `qemu_binary --version`, reads `/proc/cpuinfo` and the kernel's release.
pub fn fingerprint(qemu_binary: &str) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let qemu = std::process::Command::new(qemu_binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| format!("{qemu_binary} unavailable"));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| cpu_model(&c))
        .unwrap_or_else(|| "unknown".into());
    format!("kernel {kernel}; {qemu}; cpu {cpu}")
}

/// The CPU model from `/proc/cpuinfo`: `model name` on x86, implementer/part on arm64.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    field("model name").or_else(|| {
        let implementer = field("CPU implementer")?;
        let part = field("CPU part").unwrap_or_default();
        Some(format!("implementer {implementer} part {part}"))
    })
}

/// Where the verdict lives in the cache.
pub fn path(cache: &Cache) -> PathBuf {
    cache.dir("kvm-verdict.json")
}

/// The cached verdict for this host, if there is one younger than `MAX_AGE`. A missing,
/// unreadable or corrupt file, another host's verdict and a stale one are all `None`.
pub fn load(cache: &Cache, fingerprint: &str) -> Option<KvmVerdict> {
    load_at(&path(cache), fingerprint, now_unix())
}

fn load_at(file: &Path, fingerprint: &str, now: u64) -> Option<KvmVerdict> {
    let text = std::fs::read(file).ok()?;
    let v: KvmVerdict = serde_json::from_slice(&text).ok()?;
    let fresh = now.saturating_sub(v.checked_unix) < MAX_AGE.as_secs()
        && v.checked_unix <= now + FUTURE_SLACK.as_secs();
    (v.fingerprint == fingerprint && fresh).then_some(v)
}

/// Remember a verdict (atomically: concurrent runs never read half a file).
pub fn store(cache: &Cache, v: &KvmVerdict) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(std::io::Error::other)?;
    crate::host::cache::write_atomic(&path(cache), &bytes)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, Cache) {
        let d = tempfile::tempdir().unwrap();
        let c = Cache {
            root: d.path().join("cache"),
        };
        (d, c)
    }

    #[test]
    fn stored_verdict_loads_back_for_the_same_host() {
        let (_d, c) = cache();
        let v = KvmVerdict::now(false, "failed to set MSR 0x10a", "host-a");
        store(&c, &v).unwrap();
        assert_eq!(load(&c, "host-a"), Some(v));
    }

    #[test]
    fn another_hosts_verdict_is_not_used() {
        let (_d, c) = cache();
        store(&c, &KvmVerdict::now(true, "ok", "host-a")).unwrap();
        assert_eq!(load(&c, "host-b"), None);
    }

    #[test]
    fn stale_verdict_is_not_used() {
        let (_d, c) = cache();
        let mut v = KvmVerdict::now(true, "ok", "host-a");
        let now = v.checked_unix;
        v.checked_unix = now - MAX_AGE.as_secs() - 1;
        store(&c, &v).unwrap();
        assert_eq!(load_at(&path(&c), "host-a", now), None);
        // Just inside the limit it still holds.
        v.checked_unix = now - MAX_AGE.as_secs() + 60;
        store(&c, &v).unwrap();
        assert_eq!(load_at(&path(&c), "host-a", now), Some(v.clone()));
        // A verdict far in the future (the clock was wrong when it was written) is stale.
        v.checked_unix = now + 86400;
        store(&c, &v).unwrap();
        assert_eq!(load_at(&path(&c), "host-a", now), None);
    }

    #[test]
    fn corrupt_or_missing_file_is_none() {
        let (_d, c) = cache();
        assert_eq!(load(&c, "host-a"), None);
        std::fs::create_dir_all(&c.root).unwrap();
        std::fs::write(path(&c), b"{\"works\": tr").unwrap();
        assert_eq!(load(&c, "host-a"), None);
        std::fs::write(path(&c), b"{\"works\": true}").unwrap();
        assert_eq!(load(&c, "host-a"), None);
        // A good store replaces the corrupt file.
        let v = KvmVerdict::now(true, "ok", "host-a");
        store(&c, &v).unwrap();
        assert_eq!(load(&c, "host-a"), Some(v));
    }

    #[test]
    fn fingerprint_names_kernel_qemu_and_cpu() {
        let f = fingerprint("/no/such/qemu");
        assert!(f.starts_with("kernel "), "{f}");
        assert!(f.contains("/no/such/qemu unavailable"), "{f}");
        assert!(f.contains("; cpu "), "{f}");
        // Same inputs, same fingerprint: a verdict stays usable between runs.
        assert_eq!(f, fingerprint("/no/such/qemu"));
    }

    #[test]
    fn cpu_model_from_x86_and_arm64_cpuinfo() {
        let x86 =
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n";
        assert_eq!(
            cpu_model(x86).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        let arm = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n";
        assert_eq!(
            cpu_model(arm).as_deref(),
            Some("implementer 0x41 part 0xd0c")
        );
        assert_eq!(cpu_model("processor\t: 0\n"), None);
    }
}
