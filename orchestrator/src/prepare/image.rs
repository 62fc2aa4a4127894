//! Guest images: an initramfs per arch assembled from Debian packages of that arch
//! (busybox-static, dropbear and its libraries, unpacked with `dpkg-deb -x`), the init
//! script, SSH keys and the guest test programs built static. Cached by content hash.

use crate::host::cache::{Cache, Hasher};
use crate::host::proc::{self, ProcError, ProcSpec};
use crate::record::plan::{Arch, TestSpec};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const INIT: &str = include_str!("../../../images/init");

/// Debian packages that make up the guest userland.
pub const PACKAGES: &[&str] = &[
    "busybox-static",
    "dropbear-bin",
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "libgmp10",
    "zlib1g",
];

/// Busybox applets linked in the initramfs itself: init's and the host's commands.
const BOOT_APPLETS: &[&str] = &[
    "mkdir", "mount", "umount", "cat", "ip", "sleep", "sync", "reboot", "grep",
];

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot download the {arch} guest packages (for arm64 run `sudo scripts/setup-host`, which adds the arm64 architecture to apt)")]
    Download {
        arch: &'static str,
        #[source]
        source: ProcError,
    },
    #[error("cannot build guest test `{test}` for {arch}")]
    Compile {
        test: String,
        arch: &'static str,
        #[source]
        source: ProcError,
    },
    #[error("cannot make SSH keys")]
    Keys(#[source] ProcError),
    #[error("{0}")]
    Other(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A ready guest image and the keys to reach it.
#[derive(Debug, Clone)]
pub struct Image {
    pub initramfs: PathBuf,
    /// The guest's ed25519 host key blob (the base64 part of `ssh-ed25519 AAAA...`).
    pub host_key: String,
    pub client_key: PathBuf,
    pub client_pub: PathBuf,
    /// Guest test programs (name, binary): not in the initramfs but shared read-only
    /// with each VM, so a changed test needs no new image.
    pub tests: Vec<(String, PathBuf)>,
}

/// Client key pair, made once per cache.
async fn client_key(cache: &Cache) -> Result<(PathBuf, PathBuf), ImageError> {
    let dir = cache.dir("keys");
    let key = dir.join("client_ed25519");
    let public = dir.join("client_ed25519.pub");
    if !key.exists() || !public.exists() {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(&public);
        proc::run(
            &ProcSpec::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "kmatrix", "-f"])
                .arg(&key),
        )
        .await
        .map_err(ImageError::Keys)?;
    }
    Ok((key, public))
}

/// Download (once) and unpack the arch's packages into a cached root.
async fn userland(arch: Arch, cache: &Cache) -> Result<PathBuf, ImageError> {
    let debs = cache.dir("debs").join(arch.deb_arch());
    let entry = cache.entry("userland", arch.deb_arch());
    if let Some(root) = entry.resolve() {
        return Ok(root);
    }
    std::fs::create_dir_all(&debs).map_err(io(&debs))?;
    let have = |pkg: &str| {
        std::fs::read_dir(&debs)
            .map(|rd| {
                rd.flatten().any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
                })
            })
            .unwrap_or(false)
    };
    let missing: Vec<String> = PACKAGES
        .iter()
        .filter(|p| !have(p))
        .map(|p| format!("{p}:{}", arch.deb_arch()))
        .collect();
    if !missing.is_empty() {
        proc::run(
            &ProcSpec::new("apt-get")
                .args(["download", "-q"])
                .args(&missing)
                .cwd(&debs)
                .timeout(Duration::from_secs(30 * 60)),
        )
        .await
        .map_err(|source| ImageError::Download {
            arch: arch.name(),
            source,
        })?;
    }
    let staging = entry.staging().map_err(io(&entry.path))?;
    for e in std::fs::read_dir(&debs).map_err(io(&debs))?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "deb") {
            proc::run(
                &ProcSpec::new("dpkg-deb")
                    .arg("-x")
                    .arg(&p)
                    .arg(staging.path())
                    .timeout(Duration::from_secs(600)),
            )
            .await
            .map_err(|source| ImageError::Download {
                arch: arch.name(),
                source,
            })?;
        }
    }
    entry.publish(staging, false).map_err(io(&entry.path))
}

/// gcc flags for guest programs: static, so the initramfs needs no extra libraries.
pub fn guest_cc_args(src: &Path, out: &Path) -> Vec<String> {
    vec![
        "-static".into(),
        "-O2".into(),
        "-Wall".into(),
        "-Wextra".into(),
        "-pthread".into(),
        "-o".into(),
        out.display().to_string(),
        src.display().to_string(),
    ]
}

/// Build the guest test programs for an arch; returns (name, binary path).
pub async fn build_tests(
    arch: Arch,
    tests: &[TestSpec],
    cache: &Cache,
) -> Result<Vec<(String, PathBuf)>, ImageError> {
    let mut out = Vec::new();
    for t in tests {
        let mut h = Hasher::new("guest-test-v1");
        h.field(arch.name().as_bytes());
        h.file(&t.source).map_err(io(&t.source))?;
        // The shared headers next to the sources are part of every test's input.
        for header in headers_beside(&t.source) {
            h.field(header.file_name().unwrap_or_default().as_encoded_bytes());
            h.file(&header).map_err(io(&header))?;
        }
        let entry = cache.entry(&format!("guest-bin/{}", arch.name()), &h.finish());
        let dir = match entry.resolve() {
            Some(d) => d,
            None => {
                let staging = entry.staging().map_err(io(&entry.path))?;
                proc::run(
                    &ProcSpec::new(arch.cc())
                        .args(guest_cc_args(&t.source, &staging.path().join(&t.name)))
                        .timeout(Duration::from_secs(300)),
                )
                .await
                .map_err(|source| ImageError::Compile {
                    test: t.name.clone(),
                    arch: arch.name(),
                    source,
                })?;
                entry.publish(staging, false).map_err(io(&entry.path))?
            }
        };
        out.push((t.name.clone(), dir.join(&t.name)));
    }
    Ok(out)
}

/// Assemble (or reuse) the initramfs for an arch; the test binaries ride along in the
/// returned `Image` for the VM's read-only share.
pub async fn prepare(
    arch: Arch,
    tests: &[(String, PathBuf)],
    cache: &Cache,
) -> Result<Image, ImageError> {
    let (client_key, client_pub) = client_key(cache).await?;
    let root = userland(arch, cache).await?;
    let mut h = Hasher::new("image-v2");
    h.field(arch.name().as_bytes()).field(INIT.as_bytes());
    h.file(&client_pub).map_err(io(&client_pub))?;
    let entry = cache.entry("images", &format!("{}-{}", arch.name(), h.finish()));
    let dir = match entry.resolve() {
        Some(d) => d,
        None => {
            let staging = entry.staging().map_err(io(&entry.path))?;
            build_image(arch, &root, &client_pub, staging.path()).await?;
            entry.publish(staging, false).map_err(io(&entry.path))?
        }
    };
    let initramfs = dir.join("initramfs.cpio.gz");
    let host_pub = dir.join("host_key.pub");
    let public = std::fs::read_to_string(&host_pub).map_err(io(&host_pub))?;
    let host_key = public
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok(Image {
        initramfs,
        host_key,
        client_key,
        client_pub,
        tests: tests.to_vec(),
    })
}

/// The initramfs and its SSH host key (made per image; the host pins its public half).
async fn build_image(
    arch: Arch,
    root: &Path,
    client_pub: &Path,
    dir: &Path,
) -> Result<(), ImageError> {
    let initramfs = dir.join("initramfs.cpio.gz");
    let host_pub = dir.join("host_key.pub");
    {
        let host_key = dir.join("host_key");
        let out = proc::output(
            &ProcSpec::new("dropbearkey")
                .args(["-t", "ed25519", "-f"])
                .arg(&host_key)
                .timeout(Duration::from_secs(60)),
        )
        .await
        .map_err(ImageError::Keys)?;
        let public = out
            .lines()
            .find(|l| l.starts_with("ssh-ed25519 "))
            .ok_or_else(|| {
                ImageError::Other(format!("dropbearkey printed no public key:\n{out}"))
            })?;
        let authorized = std::fs::read(client_pub).map_err(io(client_pub))?;
        let hostkey_bytes = std::fs::read(&host_key).map_err(io(&host_key))?;
        let bytes = assemble(arch, root, &authorized, &hostkey_bytes)?;
        std::fs::write(&initramfs, &bytes).map_err(io(&initramfs))?;
        std::fs::write(&host_pub, public).map_err(io(&host_pub))?;
    }
    Ok(())
}

/// The guest's initramfs (a gzipped newc cpio) from the userland in `root` and the keys.
fn assemble(
    arch: Arch,
    root: &Path,
    authorized_keys: &[u8],
    host_key: &[u8],
) -> Result<Vec<u8>, ImageError> {
    let mut w = Cpio::default();
    skeleton(&mut w);
    programs(&mut w, root)?;
    accounts_and_keys(&mut w, authorized_keys, host_key);
    shared_libraries(&mut w, arch, root)?;
    let cpio = w.finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&cpio)
        .and_then(|_| gz.finish())
        .map_err(|e| ImageError::Other(format!("compressing initramfs: {e}")))
}

/// The folders of the root file system.
fn skeleton(w: &mut Cpio) {
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "etc",
        "etc/dropbear",
        "root",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "results",
        "tests",
        "lib",
        "usr/lib",
        "var",
    ] {
        w.dir(d, 0o755);
    }
    w.dir("root/.ssh", 0o700);
}

/// kmatrix's init, busybox with the applets needed before it installs the rest, dropbear.
fn programs(w: &mut Cpio, root: &Path) -> Result<(), ImageError> {
    w.file("init", 0o755, INIT.as_bytes());
    let bb = root.join("bin/busybox");
    w.file("bin/busybox", 0o755, &std::fs::read(&bb).map_err(io(&bb))?);
    w.symlink("bin/sh", "busybox");
    // What init and kmatrix's own commands need before `busybox --install` is done.
    for applet in BOOT_APPLETS {
        w.symlink(&format!("bin/{applet}"), "busybox");
    }
    let db = root.join("usr/sbin/dropbear");
    w.file(
        "usr/sbin/dropbear",
        0o755,
        &std::fs::read(&db).map_err(io(&db))?,
    );
    Ok(())
}

/// root's account, the key kmatrix logs in with, and the guest's host key.
fn accounts_and_keys(w: &mut Cpio, authorized_keys: &[u8], host_key: &[u8]) {
    w.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    w.file("etc/group", 0o644, b"root:x:0:\n");
    w.file("etc/shells", 0o644, b"/bin/sh\n");
    w.file("root/.ssh/authorized_keys", 0o600, authorized_keys);
    w.file("etc/dropbear/host_key", 0o600, host_key);
}

/// Shared libraries dropbear needs, and the dynamic loader where the arch's ABI looks
/// for it.
fn shared_libraries(w: &mut Cpio, arch: Arch, root: &Path) -> Result<(), ImageError> {
    for libdir in [
        format!("lib/{}", arch.triplet()),
        format!("usr/lib/{}", arch.triplet()),
    ] {
        let src = root.join(&libdir);
        let Ok(rd) = std::fs::read_dir(&src) else {
            continue;
        };
        w.dir_all(&libdir);
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.contains(".so") {
                continue;
            }
            let p = e.path();
            let dst = format!("{libdir}/{name}");
            let meta = std::fs::symlink_metadata(&p).map_err(io(&p))?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).map_err(io(&p))?;
                w.symlink(&dst, &target.to_string_lossy());
            } else if meta.is_file() {
                w.file(&dst, 0o755, &std::fs::read(&p).map_err(io(&p))?);
            }
        }
    }
    match arch {
        Arch::X86_64 => {
            w.dir("lib64", 0o755);
            w.symlink(
                "lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            );
        }
        Arch::Arm64 => {
            w.symlink(
                "lib/ld-linux-aarch64.so.1",
                "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
            );
        }
    }
    Ok(())
}

/// A minimal `newc` cpio writer: deterministic (mtime 0, owner root), no device nodes
/// (devtmpfs provides them), so no root privileges or external `cpio` are needed.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            namesize,
            0
        );
        self.buf.extend_from_slice(header.as_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }
    pub fn dir(&mut self, name: &str, perm: u32) {
        if self.dirs.insert(name.to_string()) {
            self.entry(name, 0o040000 | perm, &[]);
        }
    }
    pub fn dir_all(&mut self, path: &str) {
        let mut cur = String::new();
        for part in path.split('/') {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            self.dir(&cur.clone(), 0o755);
        }
    }
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data);
    }
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

/// The headers (`*.h`) in the folder of a guest program's source, sorted: what any
/// program there may include.
pub fn headers_beside(source: &Path) -> Vec<PathBuf> {
    let Some(dir) = source.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "h") && p.is_file())
        .collect();
    v.sort();
    v
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_beside_a_program_is_its_input() {
        let d = tempfile::tempdir().unwrap();
        for f in ["a.c", "zerocopy.h", "ktap.h", "notes.txt"] {
            std::fs::write(d.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(d.path().join("dir.h")).unwrap();
        assert_eq!(
            headers_beside(&d.path().join("a.c")),
            [d.path().join("ktap.h"), d.path().join("zerocopy.h")]
        );
        assert!(headers_beside(Path::new("a.c")).is_empty());
    }

    #[test]
    fn cpio_is_readable_by_gnu_cpio() {
        let mut w = Cpio::default();
        w.dir_all("a/b");
        w.file("a/b/hello", 0o644, b"hi there\n");
        w.symlink("a/link", "b/hello");
        let bytes = w.finish();
        assert_eq!(bytes.len() % 4, 0);
        let d = tempfile::tempdir().unwrap();
        let archive = d.path().join("x.cpio");
        std::fs::write(&archive, &bytes).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd {} && cpio -idm < x.cpio 2>&1",
                d.path().display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("a/b/hello")).unwrap(),
            "hi there\n"
        );
        assert_eq!(
            std::fs::read_link(d.path().join("a/link")).unwrap(),
            PathBuf::from("b/hello")
        );
    }

    #[test]
    fn guest_programs_are_static() {
        let a = guest_cc_args(Path::new("t.c"), Path::new("t"));
        assert!(a.contains(&"-static".to_string()));
        assert_eq!(a.last().unwrap(), "t.c");
    }
}
