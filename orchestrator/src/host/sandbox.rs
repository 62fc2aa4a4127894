//! Builds in a sandbox: a patch series is code that runs at build time (its Makefiles,
//! its Kbuild files, the scripts they call), so `patch`, `make` and the module and
//! selftest builds run under bubblewrap: their own user, PID, network, IPC and mount
//! namespaces, no network at all, no capabilities, uid 65534, and a file system of its
//! own: the system's programs and libraries read-only (`/usr`, a few files of `/etc`),
//! its inputs read-only (the kernel tree, the patch), the folders it must write (the
//! object folder, the overlay a patch is applied in, the compiler cache) and a private
//! /tmp; nothing else of the host exists there (no home folders, no keys, no other
//! runs). A rule writing outside those folders fails; a rule opening a socket finds no
//! network; both fail the build with the tool's own words.
//!
//! Where bubblewrap cannot run (not installed, or user namespaces refused, e.g. in some
//! containers), the steps run as before and every build says so in its log and the cell
//! in a note: the verdict then rests on a trusted series.

use crate::host::proc::ProcSpec;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The folders one sandboxed step may write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    readable: Vec<PathBuf>,
    writable: Vec<PathBuf>,
}

/// What of `/etc` a compiler, make, perl and python need (not the rest: `/etc/shadow`
/// would be readable by the sandbox's uid, which is root's outside).
const ETC: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ccache.conf",
    "/etc/perl",
    "/etc/python3",
];

/// Top-level folders of the system's programs: bound read-only, or made the same link
/// as on the host (merged /usr).
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::default()
    }

    /// Let the step read `path` (a folder or a file).
    pub fn readable(mut self, path: impl AsRef<Path>) -> Sandbox {
        self.readable.push(path.as_ref().to_owned());
        self
    }

    /// Let the step write under `dir` (which must exist).
    pub fn writable(mut self, dir: impl AsRef<Path>) -> Sandbox {
        self.writable.push(dir.as_ref().to_owned());
        self
    }

    /// bubblewrap's arguments before `--` (pure: unit-tested, logged with the command).
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "--die-with-parent",
            "--new-session",
            "--unshare-all",
            "--cap-drop",
            "ALL",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--setenv",
            "TMPDIR",
            "/tmp",
            "--setenv",
            "HOME",
            "/tmp",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        for d in SYSTEM {
            match std::fs::read_link(d) {
                Ok(target) => {
                    a.extend(["--symlink".into(), target.into_os_string(), (*d).into()]);
                }
                Err(_) => a.extend(["--ro-bind-try".into(), (*d).into(), (*d).into()]),
            }
        }
        for f in ETC {
            a.extend(["--ro-bind-try".into(), (*f).into(), (*f).into()]);
        }
        for (how, paths) in [("--ro-bind", &self.readable), ("--bind", &self.writable)] {
            for p in paths {
                a.extend([
                    how.into(),
                    p.clone().into_os_string(),
                    p.clone().into_os_string(),
                ]);
            }
        }
        if let Some(c) = compiler_cache() {
            a.extend([
                "--bind".into(),
                c.clone().into_os_string(),
                c.clone().into_os_string(),
                "--setenv".into(),
                "CCACHE_DIR".into(),
                c.into_os_string(),
            ]);
        }
        a
    }

    /// `spec` run inside this sandbox, or as it is when sandboxes cannot run here
    /// ([`status`] says why).
    pub fn wrap(&self, spec: ProcSpec) -> ProcSpec {
        match status() {
            Ok(bwrap) => spec.wrapped(bwrap.as_os_str(), self.args()),
            Err(_) => spec,
        }
    }
}

/// bubblewrap, once it is known to work here; else why the builds are not sandboxed.
pub fn status() -> Result<&'static PathBuf, &'static str> {
    static STATUS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    STATUS.get_or_init(probe).as_ref().map_err(|e| e.as_str())
}

/// One line for a build log or a note: how the series' code ran.
pub fn describe() -> String {
    match status() {
        Ok(_) => "the series' build steps ran sandboxed (bubblewrap: no network, no capabilities, uid 65534, read-only but their own folders)".into(),
        Err(why) => format!("the series' build steps ran WITHOUT a sandbox ({why}): install bubblewrap (scripts/setup-host does)"),
    }
}

fn probe() -> Result<PathBuf, String> {
    let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or("bubblewrap (bwrap) is not installed")?;
    let out = std::process::Command::new(&bwrap)
        .args(Sandbox::new().args())
        .args(["--", "true"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", bwrap.display()))?;
    if out.status.success() {
        Ok(bwrap)
    } else {
        let why = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "bubblewrap cannot make its namespaces here: {}",
            why.lines().next().unwrap_or("no reason given")
        ))
    }
}

/// The compiler cache's folder when ccache is in use (it must stay writable).
fn compiler_cache() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let from_env = std::env::var_os("CCACHE_DIR").map(PathBuf::from);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let xdg = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".cache")));
        from_env
            .into_iter()
            .chain(xdg.map(|x| x.join("ccache")))
            .chain(home.map(|h| h.join(".ccache")))
            .find(|d| d.is_dir())
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_read_only_but_the_folders_a_step_writes() {
        let a: Vec<String> = Sandbox::new()
            .readable("/cache/slots/x/tree")
            .writable("/cache/slots/x/obj")
            .args()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let at = |w: &[&str]| a.windows(w.len()).any(|x| x == w);
        assert!(
            !at(&["--ro-bind", "/", "/"]),
            "only what the step needs exists"
        );
        assert!(at(&["--ro-bind-try", "/etc/passwd", "/etc/passwd"]));
        assert!(!a
            .iter()
            .any(|x| x == "/etc/shadow" || x == "/root" || x == "/home"));
        assert!(at(&["--bind", "/cache/slots/x/obj", "/cache/slots/x/obj"]));
        assert!(
            at(&["--unshare-all"]),
            "no network: its own network namespace"
        );
        assert!(at(&["--cap-drop", "ALL"]));
        assert!(at(&["--uid", "65534", "--gid", "65534"]));
        assert!(at(&["--die-with-parent"]));
    }

    /// Real bubblewrap, where it works: a write outside the writable folder and a
    /// connection to the host both fail; the writable folder takes the write.
    #[test]
    fn a_step_cannot_write_outside_its_folders_nor_reach_the_network() {
        if let Err(why) = status() {
            eprintln!("SKIP: a_step_cannot_write_outside_its_folders_nor_reach_the_network: {why}");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "key").unwrap();
        let script = format!(
            "echo in > {0}/in; echo out > {1}/out; cat {1}/secret > {0}/read; \
             if exec 3<>/dev/tcp/127.0.0.1/{port}; then echo connected > {0}/net; fi",
            d.path().display(),
            outside.path().display()
        );
        let spec = Sandbox::new()
            .writable(d.path())
            .wrap(ProcSpec::new("bash").args(["-c", &script]));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(crate::host::proc::output(&spec));
        assert!(d.path().join("in").is_file(), "the writable folder works");
        assert!(!outside.path().join("out").exists(), "nothing outside");
        assert!(!d.path().join("net").exists(), "no network");
        let read = std::fs::read_to_string(d.path().join("read")).unwrap_or_default();
        assert!(read.is_empty(), "nothing else of the host is there to read");
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "the host saw no connection");
    }
}
