//! SSH to the guest with the `ssh2` crate. ssh2 is blocking, so every call here runs on
//! a blocking thread (`tokio::task::spawn_blocking`) with session timeouts.

use base64::Engine;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("ssh handshake with {addr}: {source}")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: ssh2::Error,
    },
    #[error("guest host key does not match the image's pinned key (got {got})")]
    HostKey { got: String },
    #[error("ssh authentication as root failed: {0}")]
    Auth(#[source] ssh2::Error),
    #[error("ssh `{command}`: {source}")]
    Exec {
        command: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("reading output of `{command}`: {source}")]
    Read {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {}s", timeout.as_secs())]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` abandoned")]
    Abandoned { command: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to reach and trust a guest.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Base64 blob of the guest's ed25519 host key.
    pub host_key: String,
    pub key: PathBuf,
    pub public: PathBuf,
}

/// Open an authenticated session (blocking).
pub fn connect(t: &Target, timeout: Duration) -> Result<ssh2::Session, SshError> {
    let tcp = TcpStream::connect_timeout(&t.addr, timeout).map_err(|source| SshError::Connect {
        addr: t.addr,
        source,
    })?;
    let mut s = ssh2::Session::new().map_err(|source| SshError::Handshake {
        addr: t.addr,
        source,
    })?;
    s.set_tcp_stream(tcp);
    s.set_timeout(timeout.as_millis() as u32);
    s.handshake().map_err(|source| SshError::Handshake {
        addr: t.addr,
        source,
    })?;
    let got = s
        .host_key()
        .map(|(k, _)| base64::engine::general_purpose::STANDARD.encode(k))
        .unwrap_or_default();
    if got != t.host_key {
        return Err(SshError::HostKey { got });
    }
    s.userauth_pubkey_file("root", Some(&t.public), &t.key, None)
        .map_err(SshError::Auth)?;
    Ok(s)
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct ExecResult {
    pub exit_status: i32,
    /// The first `keep` bytes of its output (lossy UTF-8).
    pub output: String,
    /// All the bytes it printed, kept or not.
    pub bytes: u64,
    /// The output file stopped at its limit.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// How to run a command: its deadline, where its output streams, what is kept.
#[derive(Clone, Copy)]
pub struct Exec<'a> {
    pub timeout: Duration,
    /// Stream the output here as it arrives...
    pub out: Option<&'a Path>,
    /// ...up to this many bytes, then a truncation line (the guest is untrusted).
    pub out_limit: u64,
    /// Bytes of output kept in memory for the caller.
    pub keep: usize,
    /// Give up soon after the caller sets this.
    pub abandon: Option<&'a std::sync::atomic::AtomicBool>,
}

impl Exec<'_> {
    /// A short command whose output the caller reads (up to 1 MiB kept).
    pub fn quick(timeout: Duration) -> Exec<'static> {
        Exec {
            timeout,
            out: None,
            out_limit: 0,
            keep: 1 << 20,
            abandon: None,
        }
    }
}

/// A short command in the guest, off the async threads: its output, or why it failed
/// (the exit status and the output's last lines).
pub async fn quick(
    ssh: &std::sync::Arc<ssh2::Session>,
    cmd: String,
    limit: Duration,
) -> Result<String, String> {
    let ssh = ssh.clone();
    let r = tokio::task::spawn_blocking(move || exec(&ssh, &cmd, Exec::quick(limit)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if r.exit_status == 0 {
        Ok(r.output)
    } else {
        let tail: Vec<&str> = r.output.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!("exit {}: {}", r.exit_status, tail.join(" / ")))
    }
}

/// Run `command` (stderr merged into stdout), streaming its output to `how.out` as it
/// arrives; give up after the timeout, or soon after `abandon` is set by the caller.
/// Neither the file nor the memory kept grows past its limit, whatever the guest prints.
pub fn exec(s: &ssh2::Session, command: &str, how: Exec) -> Result<ExecResult, SshError> {
    let start = Instant::now();
    let exec_err = |source| SshError::Exec {
        command: command.to_string(),
        source,
    };
    let mut file = match how.out {
        Some(p) => Some(std::fs::File::create(p).map_err(|source| SshError::Io {
            path: p.to_owned(),
            source,
        })?),
        None => None,
    };
    // Short session timeout so reads return regularly and the deadline is checked.
    s.set_timeout(1000);
    let mut ch = s.channel_session().map_err(exec_err)?;
    ch.exec(&format!("{command} 2>&1")).map_err(exec_err)?;
    let mut output = Vec::new();
    let mut bytes = 0u64;
    let mut truncated = false;
    let mut buf = [0u8; 16384];
    loop {
        match ch.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = how.keep.saturating_sub(output.len());
                output.extend_from_slice(&buf[..n.min(room)]);
                if let Some(f) = file.as_mut() {
                    let left = how.out_limit.saturating_sub(bytes) as usize;
                    let _ = f.write_all(&buf[..n.min(left)]);
                    if n > left && !truncated {
                        truncated = true;
                        let _ = f.write_all(
                            b"\n# kmatrix: output truncated here (the test output limit)\n",
                        );
                    }
                    let _ = f.flush();
                }
                bytes += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut || is_ssh_timeout(&e) => {}
            Err(source) => {
                return Err(SshError::Read {
                    command: command.to_string(),
                    source,
                })
            }
        }
        if start.elapsed() > how.timeout {
            return Err(SshError::Timeout {
                command: command.to_string(),
                timeout: how.timeout,
            });
        }
        if how
            .abandon
            .is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(SshError::Abandoned {
                command: command.to_string(),
            });
        }
    }
    let _ = ch.wait_close();
    let mut exit_status = ch.exit_status().map_err(exec_err)?;
    if let Some(name) = ch.exit_signal().ok().and_then(|e| e.exit_signal) {
        exit_status = signal_status(&name);
    }
    Ok(ExecResult {
        exit_status,
        output: String::from_utf8_lossy(&output).into_owned(),
        bytes,
        truncated,
        elapsed: start.elapsed(),
    })
}

/// A command killed by a signal has no exit status over SSH, only the signal's name
/// (RFC 4254 6.10; libssh2 then says 0): its status as a shell gives it, 128 + the
/// signal's number (255 for a name this host does not know).
fn signal_status(name: &str) -> i32 {
    format!("SIG{name}")
        .parse::<nix::sys::signal::Signal>()
        .map_or(255, |s| 128 + s as i32)
}

/// `arg` as one word for the guest's shell: single-quoted, `'` written as `'\''`.
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// `kmatrix boot CELL -- ARGV...`: the argv as one command line for the guest's shell,
/// each argument one word (as `docker run`, `unshare` and `vng --` pass it), not joined
/// with spaces as ssh does, which would split `sh -c 'a; b'` into `sh -c a` and `b`.
pub fn argv_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_ssh_timeout(e: &std::io::Error) -> bool {
    // ssh2 turns LIBSSH2_ERROR_TIMEOUT into `TimedOut`; check its code where it came
    // wrapped otherwise.
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ssh2::Error>())
            .is_some_and(|s| s.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT))
}

/// libssh2's `LIBSSH2_ERROR_TIMEOUT`.
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;

/// Start a command and do not wait for it (used for `reboot -f`, which never answers).
pub fn fire(s: &ssh2::Session, command: &str) {
    s.set_timeout(2000);
    if let Ok(mut ch) = s.channel_session() {
        let _ = ch.exec(command);
        drain(&mut ch, FIRE_DEADLINE, FIRE_BYTES);
    }
}

/// How long, and how much, `fire` listens to a command it does not wait for: the guest
/// could keep the channel open and talking forever.
const FIRE_DEADLINE: Duration = Duration::from_secs(10);
const FIRE_BYTES: u64 = 1 << 20;

/// Read and drop what `r` says until it ends, `deadline` passes or `cap` bytes came.
fn drain(r: &mut impl Read, deadline: Duration, cap: u64) {
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    while start.elapsed() < deadline && total < cap {
        match r.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_killed_by_a_signal_has_the_status_a_shell_gives_it() {
        assert_eq!(signal_status("SEGV"), 139);
        assert_eq!(signal_status("KILL"), 137);
        assert_eq!(signal_status("no-such-signal"), 255);
    }

    #[test]
    fn arguments_are_quoted_for_the_guest_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        // What sh makes of it.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s|' {} {}",
                shell_quote("it's; echo x"),
                shell_quote("$HOME")
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's; echo x|$HOME|");
    }

    #[test]
    fn boot_argv_reaches_the_guest_shell_as_an_argv() {
        // `kmatrix boot CELL -- sh -c 'cd /; pwd; echo b'`: the guest's shell (dropbear runs
        // the command with `sh -c`, as here) must see three words, the last one whole.
        let argv: Vec<String> = ["sh", "-c", "cd /; pwd; echo \"b c\""]
            .map(String::from)
            .to_vec();
        let line = argv_command(&argv);
        assert_eq!(line, "'sh' '-c' 'cd /; pwd; echo \"b c\"'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/\nb c\n");
        // Joined with spaces (as ssh does), the same argv runs `sh -c cd` and then `pwd`
        // in the caller's folder: what this replaced.
        let joined = std::process::Command::new("sh")
            .arg("-c")
            .arg(argv.join(" "))
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert_ne!(String::from_utf8_lossy(&joined.stdout), "/\nb c\n");
        // Arguments with quotes, `$` and empty ones survive as they are.
        let tricky: Vec<String> = ["printf", "%s|", "it's", "$HOME", "", "a\nb"]
            .map(String::from)
            .to_vec();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(argv_command(&tricky))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's|$HOME||a\nb|");
    }

    /// `fire` listens to a command's output within its deadline and byte cap: an endless
    /// talker cannot hold kmatrix or grow its memory.
    #[test]
    fn draining_stops_at_the_cap_and_the_deadline() {
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0 += buf.len() as u64;
                Ok(buf.len())
            }
        }
        let mut e = Endless(0);
        drain(&mut e, Duration::from_secs(60), 1 << 20);
        assert!(e.0 >= 1 << 20 && e.0 < (1 << 20) + 8192 * 2);
        struct Slow;
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                Ok(buf.len().min(1))
            }
        }
        let t = Instant::now();
        drain(&mut Slow, Duration::from_millis(200), u64::MAX);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
