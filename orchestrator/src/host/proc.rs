//! The one way kmatrix starts a program: own process group, stdin null, stdout and
//! stderr drained concurrently into a log file and a tail kept for error messages,
//! registered so that every exit path (including Ctrl-C and panics) can kill it.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::{BTreeSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

const TAIL_LINES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot start `{cmdline}`: {source}")]
    Spawn {
        cmdline: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmdline}` failed ({status}){}", fmt_tail(tail))]
    Failed {
        cmdline: String,
        status: ExitStatus,
        tail: String,
    },
    #[error("`{cmdline}` did not finish within {}s and was killed{}", limit.as_secs(), fmt_tail(tail))]
    Timeout {
        cmdline: String,
        limit: Duration,
        tail: String,
    },
    #[error("waiting for `{cmdline}`: {source}")]
    Wait {
        cmdline: String,
        #[source]
        source: std::io::Error,
    },
}

fn fmt_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.trim_end())
    }
}

/// Put the child in a session (and process group) of its own, without a controlling
/// terminal: nothing it starts can stop on a tty prompt, and the group is kmatrix's to
/// kill. Also ask the kernel to SIGKILL the child if kmatrix itself dies without
/// cleaning up (SIGKILL, OOM); the guard process (`guard`) takes the rest of the group.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and only makes the setsid(2) and
    // prctl(2) syscalls, which are async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Process groups started and not yet known dead.
static GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// The guard's end of the pipe: each group started is written `+PGID`, each reaped one
/// `-PGID`. When kmatrix dies in any way (SIGKILL included) the pipe closes and the guard
/// kills every group still listed: make's compilers too, which PR_SET_PDEATHSIG (direct
/// children only) cannot reach.
static GUARD: Mutex<Option<std::process::ChildStdin>> = Mutex::new(None);

fn tell_guard(line: String) {
    use std::io::Write;
    if let Ok(mut g) = GUARD.lock() {
        if let Some(pipe) = g.as_mut() {
            let _ = pipe.write_all(line.as_bytes());
        }
    }
}

fn register(pgid: i32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.insert(pgid);
    }
    tell_guard(format!("+{pgid}\n"));
}

fn unregister(pgid: i32) {
    if let Ok(mut g) = GROUPS.lock() {
        g.remove(&pgid);
    }
    tell_guard(format!("-{pgid}\n"));
}

/// Start the guard: this same program, run as `kmatrix __guard`, in a session of its own
/// (a Ctrl-C to the terminal does not reach it). Called once by the binary's `main`.
pub fn start_guard() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__guard")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[allow(unsafe_code)]
    // SAFETY: only the async-signal-safe setsid(2) runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    if let Ok(mut g) = GUARD.lock() {
        *g = child.stdin.take();
    }
    Ok(())
}

/// The guard's loop (`kmatrix __guard`): follow the list until the pipe closes, then
/// kill what is left. Signals that would end it early are ignored.
pub fn guard_main() -> i32 {
    use std::io::BufRead;
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        #[allow(unsafe_code)]
        // SAFETY: SIG_IGN installs no handler code.
        unsafe {
            let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn);
        }
    }
    let mut groups = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (op, n) = line.split_at(line.len().min(1));
        if let Ok(pgid) = n.parse::<i32>() {
            match op {
                "+" => {
                    groups.insert(pgid);
                }
                "-" => {
                    groups.remove(&pgid);
                }
                _ => {}
            }
        }
    }
    for g in groups {
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
    }
    0
}

/// SIGKILL every process group kmatrix started and has not reaped. Returns how many.
pub fn kill_all() -> usize {
    let groups: Vec<i32> = GROUPS
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    groups.len()
}

/// Process groups currently registered (for tests and leak checks).
pub fn live_groups() -> Vec<i32> {
    GROUPS
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default()
}

/// What to run. Build it, log `display()`, then `spawn`.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    program: OsString,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    log: Option<PathBuf>,
    timeout: Option<Duration>,
}

impl ProcSpec {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        ProcSpec {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            log: None,
            timeout: None,
        }
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }
    /// Append stdout and stderr, line by line as they arrive, to this file.
    pub fn log(mut self, file: impl AsRef<Path>) -> Self {
        self.log = Some(file.as_ref().to_owned());
        self
    }
    /// Kill the whole group if it has not finished after `limit` (`run`, `output` and
    /// `Proc::wait_success` then fail with `ProcError::Timeout`).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
    /// The same command run by `wrapper` (`wrapper prefix... -- program args...`), e.g.
    /// inside a sandbox; cwd, environment, log and timeout stay.
    pub fn wrapped<I: IntoIterator<Item = OsString>>(mut self, wrapper: &OsStr, prefix: I) -> Self {
        let mut args: Vec<OsString> = prefix.into_iter().collect();
        args.push("--".into());
        args.push(std::mem::replace(&mut self.program, wrapper.to_owned()));
        args.append(&mut self.args);
        self.args = args;
        self
    }
    /// The command line as a shell would show it.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(self.args.iter())
            .map(|a| {
                let s = a.to_string_lossy();
                if s.is_empty() || s.contains([' ', '"', '\'', '$']) {
                    format!("'{}'", s.replace('\'', "'\\''"))
                } else {
                    s.into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The command for a spec: stdin null, own process group, killed on drop and when
/// kmatrix dies.
fn command(spec: &ProcSpec) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args).stdin(Stdio::null()).kill_on_drop(true);
    die_with_parent(&mut cmd);
    if let Some(d) = &spec.cwd {
        cmd.current_dir(d);
    }
    // Nothing kmatrix starts may wait for a person: git and ssh would otherwise ask for
    // credentials on the terminal while a background process holds a cache lock.
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .env("DEBIAN_FRONTEND", "noninteractive");
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd
}

/// A running child in its own process group.
pub struct Proc {
    child: tokio::process::Child,
    pgid: i32,
    cmdline: String,
    timeout: Option<Duration>,
    tail: Arc<Mutex<VecDeque<String>>>,
    drains: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

pub fn spawn(spec: &ProcSpec) -> Result<Proc, ProcError> {
    let cmdline = spec.display();
    let mut cmd = command(spec);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let log = match &spec.log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|source| ProcError::Spawn {
                    cmdline: cmdline.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let mut child = cmd.spawn().map_err(|source| ProcError::Spawn {
        cmdline: cmdline.clone(),
        source,
    })?;
    let pgid = child.id().unwrap_or(0) as i32;
    register(pgid);
    let log = log.map(|f| Arc::new(Mutex::new(f)));
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let mut drains = Vec::new();
    if let Some(out) = child.stdout.take() {
        drains.push(tokio::spawn(drain(out, log.clone(), tail.clone())));
    }
    if let Some(err) = child.stderr.take() {
        drains.push(tokio::spawn(drain(err, log, tail.clone())));
    }
    Ok(Proc {
        child,
        pgid,
        cmdline,
        timeout: spec.timeout,
        tail,
        drains,
        status: None,
    })
}

async fn drain(
    r: impl AsyncRead + Unpin,
    log: Option<Arc<Mutex<std::fs::File>>>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    use std::io::Write;
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(f) = &log {
            if let Ok(mut f) = f.lock() {
                let _ = f.write_all(&buf);
            }
        }
        if let Ok(mut t) = tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(String::from_utf8_lossy(&buf).trim_end().to_string());
        }
    }
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.pgid
    }
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }
    /// The last lines the child printed (stdout and stderr interleaved).
    pub fn tail(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Has it exited? Never blocks.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.reaped(s);
            }
        }
        self.status
    }

    fn reaped(&mut self, s: ExitStatus) {
        self.status = Some(s);
        // Members of the group may outlive the leader (make's children): kill them too.
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        unregister(self.pgid);
    }

    /// Wait for exit and for its output to be drained (also after `try_wait` saw the exit,
    /// so that the tail holds the child's last words).
    pub async fn wait(&mut self) -> Result<ExitStatus, ProcError> {
        let s = match self.status {
            Some(s) => s,
            None => self.child.wait().await.map_err(|source| ProcError::Wait {
                cmdline: self.cmdline.clone(),
                source,
            })?,
        };
        for d in self.drains.drain(..) {
            let _ = d.await;
        }
        if self.status.is_none() {
            self.reaped(s);
        }
        Ok(s)
    }

    /// Wait (up to the spec's timeout, if any) and turn a non-zero exit into an error
    /// carrying the child's own words.
    pub async fn wait_success(&mut self) -> Result<(), ProcError> {
        let status = match self.timeout {
            None => self.wait().await?,
            Some(limit) => match tokio::time::timeout(limit, self.wait()).await {
                Ok(r) => r?,
                Err(_) => {
                    self.terminate(Duration::from_secs(2)).await;
                    return Err(ProcError::Timeout {
                        cmdline: self.cmdline.clone(),
                        limit,
                        tail: self.tail(),
                    });
                }
            },
        };
        if status.success() {
            Ok(())
        } else {
            Err(ProcError::Failed {
                cmdline: self.cmdline.clone(),
                status,
                tail: self.tail(),
            })
        }
    }

    /// SIGTERM the whole group, give it `grace`, then SIGKILL.
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.try_wait().is_some() {
            return self.wait().await.ok();
        }
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGTERM);
        if let Ok(Ok(s)) = tokio::time::timeout(grace, self.wait()).await {
            return Some(s);
        }
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        self.wait().await.ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
            unregister(self.pgid);
        }
    }
}

/// Run to completion; a non-zero exit is an error with the tail of the output.
pub async fn run(spec: &ProcSpec) -> Result<(), ProcError> {
    spawn(spec)?.wait_success().await
}

/// Run to completion and return stdout (stderr goes to the tail only).
pub async fn output(spec: &ProcSpec) -> Result<String, ProcError> {
    let cmdline = spec.display();
    let child = command(spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProcError::Spawn {
            cmdline: cmdline.clone(),
            source,
        })?;
    let pgid = child.id().unwrap_or(0) as i32;
    register(pgid);
    let done = child.wait_with_output();
    let out = match spec.timeout {
        None => done.await,
        Some(limit) => match tokio::time::timeout(limit, done).await {
            Ok(r) => r,
            Err(_) => {
                // The future dropped the child (kill_on_drop); take its group too.
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                unregister(pgid);
                return Err(ProcError::Timeout {
                    cmdline,
                    limit,
                    tail: String::new(),
                });
            }
        },
    };
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    unregister(pgid);
    let out = out.map_err(|source| ProcError::Wait {
        cmdline: cmdline.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(ProcError::Failed {
            cmdline,
            status: out.status,
            tail: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: i32) -> bool {
        nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    }

    #[tokio::test]
    async fn failure_carries_the_childs_own_words_and_log_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let spec = ProcSpec::new("sh")
            .args(["-c", "echo hello; echo 'no such thing' >&2; exit 3"])
            .log(&log);
        let err = run(&spec).await.unwrap_err().to_string();
        assert!(err.contains("no such thing"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("hello") && logged.contains("no such thing"));
    }

    #[tokio::test]
    async fn terminate_kills_the_whole_group_even_if_term_is_ignored() {
        // The child ignores SIGTERM and leaves a grandchild that does too.
        let spec = ProcSpec::new("sh").args([
            "-c",
            "trap '' TERM; sh -c 'trap \"\" TERM; echo $$; sleep 60' & wait",
        ]);
        let mut p = spawn(&spec).unwrap();
        let mut grandchild = 0;
        for _ in 0..100 {
            if let Ok(n) = p.tail().trim().parse::<i32>() {
                grandchild = n;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(grandchild > 0, "grandchild did not report its pid");
        let leader = p.pid();
        p.terminate(Duration::from_millis(200)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!alive(leader), "leader survived");
        assert!(!alive(grandchild), "grandchild survived");
        assert!(!live_groups().contains(&leader));
    }

    #[test]
    fn a_child_dies_with_kmatrix_even_when_kmatrix_is_sigkilled() {
        // A stand-in for kmatrix (this test binary's own spawn path would die with the
        // test runner): a shell that starts `sleep` with the same prctl and is SIGKILLed.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "host::proc::tests::helper_spawn_sleep_and_wait",
                "--include-ignored",
                "--nocapture",
            ])
            .env("KMATRIX_TEST_PIDFILE", &pidfile)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut child = 0;
        for _ in 0..200 {
            if let Some(n) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                child = n;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(child > 0, "helper never started its child");
        parent.kill().unwrap();
        parent.wait().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(!alive(child), "child {child} outlived a SIGKILLed parent");
    }

    #[tokio::test]
    #[ignore = "helper process for a_child_dies_with_kmatrix_even_when_kmatrix_is_sigkilled"]
    async fn helper_spawn_sleep_and_wait() {
        let Some(pidfile) = std::env::var_os("KMATRIX_TEST_PIDFILE") else {
            return;
        };
        let p = spawn(&ProcSpec::new("sleep").arg("60")).unwrap();
        std::fs::write(pidfile, p.pid().to_string()).unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    }

    #[tokio::test]
    async fn dropping_a_proc_kills_its_group() {
        let p = spawn(&ProcSpec::new("sleep").arg("60")).unwrap();
        let pid = p.pid();
        drop(p);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!alive(pid));
    }

    #[tokio::test]
    async fn a_command_past_its_deadline_is_killed_with_its_group() {
        let start = std::time::Instant::now();
        let err = run(&ProcSpec::new("sh")
            .args(["-c", "sleep 30 & echo started; wait"])
            .timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
        assert!(matches!(err, ProcError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("started"), "{err}");
        let err = output(
            &ProcSpec::new("sleep")
                .arg("30")
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ProcError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn children_never_prompt() {
        let out = output(&ProcSpec::new("sh").args(["-c", "echo $GIT_TERMINAL_PROMPT"]))
            .await
            .unwrap();
        assert_eq!(out.trim(), "0");
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let s = ProcSpec::new("make").args(["O=/tmp/a b", "-j2", ""]);
        assert_eq!(s.display(), "make 'O=/tmp/a b' -j2 ''");
    }
}
