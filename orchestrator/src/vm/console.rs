//! The serial console of a running VM: one task per VM that is QEMU's only console
//! client. It reads the stream as it arrives, writes `console.log` (up to the cell's
//! budget, then a truncation line), feeds the [`Watcher`] and tells waiters something
//! changed. Sysrq keys for forensics go out on the same connection as telnet BREAKs (the
//! socket takes one client at a time).

use crate::console::Watcher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Telnet's BREAK: IAC BRK. QEMU turns it into a break on the UART, and a Linux serial
/// console reads the next character as a sysrq command.
const TELNET_BREAK: [u8; 2] = [255, 243];

/// The console of one boot, shared with the task that reads it.
pub struct Console {
    watcher: Arc<Mutex<Watcher>>,
    version: watch::Receiver<u64>,
    done: watch::Receiver<bool>,
    keys: mpsc::UnboundedSender<(Vec<u8>, tokio::sync::oneshot::Sender<()>)>,
    task: tokio::task::JoinHandle<()>,
    received: Arc<std::sync::atomic::AtomicU64>,
    pub log: PathBuf,
}

/// How much of the log a cell may still write, shared by its boots.
#[derive(Debug, Clone)]
pub struct Budget(Arc<Mutex<u64>>);

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        Budget(Arc::new(Mutex::new(bytes)))
    }
    /// Take up to `n` bytes; returns how many may be written.
    fn take(&self, n: usize) -> usize {
        let Ok(mut left) = self.0.lock() else {
            return 0;
        };
        let k = (*left).min(n as u64);
        *left -= k;
        k as usize
    }
}

/// Strips telnet commands (QEMU's option negotiation, escaped 0xFF) from the stream.
#[derive(Default)]
struct Telnet {
    state: u8,
}

impl Telnet {
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        const IAC: u8 = 255;
        for &b in input {
            self.state = match (self.state, b) {
                (0, IAC) => 1,
                (0, b) => {
                    out.push(b);
                    0
                }
                (1, IAC) => {
                    out.push(IAC);
                    0
                }
                (1, 251..=254) => 2, // WILL/WONT/DO/DONT + option
                (1, 250) => 3,       // SB ... IAC SE
                (1, _) => 0,
                (2, _) => 0,
                (3, IAC) => 4,
                (3, _) => 3,
                (4, 240) => 0,
                (4, _) => 3,
                _ => 0,
            };
        }
    }
}

impl Console {
    /// Connect to QEMU's console socket (QEMU waits for us: `wait=on`) and start reading.
    /// `preamble` is written to the log first (the line that says a new boot starts).
    pub fn spawn(
        socket: &Path,
        log: &Path,
        watcher: Watcher,
        budget: Budget,
        preamble: Option<String>,
    ) -> Console {
        let watcher = Arc::new(Mutex::new(watcher));
        let (vtx, version) = watch::channel(0u64);
        let (dtx, done) = watch::channel(false);
        let (keys, krx) = mpsc::unbounded_channel();
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sink = Sink {
            file: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .ok(),
            budget,
            truncated: false,
            telnet: Telnet::default(),
            plain: Vec::new(),
            watcher: watcher.clone(),
            received: received.clone(),
        };
        let task = tokio::spawn(run(socket.to_owned(), sink, preamble, vtx, krx, dtx));
        Console {
            watcher,
            version,
            done,
            keys,
            task,
            received,
            log: log.to_owned(),
        }
    }

    /// Look at what the console has shown so far.
    pub fn with<T>(&self, f: impl FnOnce(&Watcher) -> T) -> T {
        match self.watcher.lock() {
            Ok(w) => f(&w),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Change the watcher (register a marker kmatrix is about to write).
    pub fn with_mut<T>(&self, f: impl FnOnce(&mut Watcher) -> T) -> T {
        match self.watcher.lock() {
            Ok(mut w) => f(&mut w),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Wait until the console says something new (or `limit` passes).
    pub async fn changed(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.version.changed()).await;
    }

    /// Bytes the guest sent so far.
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The console ended (QEMU closed it).
    pub fn ended(&self) -> bool {
        *self.done.borrow()
    }

    /// Send sysrq keys through the serial line, a BREAK before each, spaced so the kernel
    /// handles one before the next arrives.
    pub async fn sysrq(&self, keys: &[u8], limit: Duration) -> Result<(), String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.keys
            .send((keys.to_vec(), tx))
            .map_err(|_| "the console is closed".to_string())?;
        tokio::time::timeout(limit, rx)
            .await
            .map_err(|_| "the serial console did not take the keys".to_string())?
            .map_err(|_| "the console closed while sending".to_string())
    }

    /// Wait for the reader to finish (after QEMU exited) and hand back what it saw.
    pub async fn finish(self, limit: Duration) -> Watcher {
        let Console {
            watcher,
            mut task,
            keys,
            ..
        } = self;
        drop(keys);
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
        // The reader is gone, so this is the last reference.
        let mut w = match Arc::try_unwrap(watcher) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => match shared.lock() {
                Ok(mut g) => std::mem::replace(&mut *g, Watcher::new(0)),
                Err(p) => std::mem::replace(&mut *p.into_inner(), Watcher::new(0)),
            },
        };
        w.finish();
        w
    }
}

/// Where the console's bytes go: the log (within budget) and the watcher.
struct Sink {
    file: Option<std::fs::File>,
    budget: Budget,
    truncated: bool,
    telnet: Telnet,
    plain: Vec<u8>,
    watcher: Arc<Mutex<Watcher>>,
    /// Bytes that came from the guest (not the preamble).
    received: Arc<std::sync::atomic::AtomicU64>,
}

impl Sink {
    /// Bytes as they came from the socket (telnet-encoded).
    fn raw(&mut self, bytes: &[u8]) {
        self.received
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut plain = std::mem::take(&mut self.plain);
        plain.clear();
        self.telnet.decode(bytes, &mut plain);
        self.text(&plain);
        self.plain = plain;
    }
    /// Console text: to the log within budget, all of it to the watcher.
    fn text(&mut self, bytes: &[u8]) {
        if let Some(f) = self.file.as_mut() {
            let n = self.budget.take(bytes.len());
            let _ = f.write_all(&bytes[..n]);
            if n < bytes.len() && !self.truncated {
                self.truncated = true;
                let _ = f.write_all(
                    b"\nkmatrix: console.log truncated here (the cell's console limit); the rest was read but not kept\n",
                );
            }
        }
        if let Ok(mut w) = self.watcher.lock() {
            if self.truncated {
                w.truncated = true;
            }
            w.feed(bytes);
        }
    }
}

type Keys = mpsc::UnboundedReceiver<(Vec<u8>, tokio::sync::oneshot::Sender<()>)>;

async fn run(
    socket: PathBuf,
    mut sink: Sink,
    preamble: Option<String>,
    version: watch::Sender<u64>,
    mut keys: Keys,
    done: watch::Sender<bool>,
) {
    if let Some(p) = &preamble {
        sink.text(p.as_bytes());
    }
    // QEMU creates the socket as it starts, then waits for this connection.
    let mut stream = None;
    for _ in 0..1500 {
        if let Ok(s) = tokio::net::UnixStream::connect(&socket).await {
            stream = Some(s);
            break;
        }
        // The owner finished with this console (QEMU never came up): stop trying.
        if matches!(
            keys.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(stream) = stream {
        let (mut r, mut w) = stream.into_split();
        let mut buf = vec![0u8; 64 << 10];
        let mut n_version = 0u64;
        loop {
            tokio::select! {
                got = r.read(&mut buf) => {
                    let n = match got { Ok(0) | Err(_) => break, Ok(n) => n };
                    sink.raw(&buf[..n]);
                }
                Some((k, ack)) = keys.recv() => {
                    // Keep reading while the keys go out: an unread console stalls the guest.
                    let mut ok = true;
                    for &key in &k {
                        ok &= w.write_all(&TELNET_BREAK).await.is_ok();
                        sleep_reading(&mut r, &mut buf, Duration::from_millis(200), &mut sink).await;
                        ok &= w.write_all(&[key]).await.is_ok();
                        // Dumps of every task take a while to print under emulation.
                        sleep_reading(&mut r, &mut buf, Duration::from_millis(1500), &mut sink).await;
                    }
                    if ok {
                        let _ = ack.send(());
                    }
                }
            }
            n_version += 1;
            let _ = version.send(n_version);
        }
    }
    if let Some(f) = sink.file.as_mut() {
        let _ = f.flush();
    }
    let _ = done.send(true);
    version.send_modify(|v| *v += 1);
}

/// Wait `d` while still reading the console.
async fn sleep_reading(
    r: &mut tokio::net::unix::OwnedReadHalf,
    buf: &mut [u8],
    d: Duration,
    sink: &mut Sink,
) {
    let until = tokio::time::Instant::now() + d;
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, r.read(buf)).await {
        if n == 0 {
            return;
        }
        sink.raw(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn telnet_commands_are_stripped_and_escaped_ff_kept() {
        let mut out = Vec::new();
        let input = [
            255, 251, 1, b'h', 255, 251, 3, b'i', 255, 255, 255, 250, 24, 1, 255, 240, b'!',
        ];
        // Any split gives the same result.
        for cut in 0..input.len() {
            out.clear();
            let mut t = Telnet::default();
            t.decode(&input[..cut], &mut out);
            t.decode(&input[cut..], &mut out);
            assert_eq!(out, [b'h', b'i', 255, b'!'], "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn the_console_is_logged_up_to_its_budget_parsed_and_takes_sysrq() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("console.sock");
        let log = d.path().join("console.log");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Like QEMU: telnet options, then the guest's output, then a flood.
            s.write_all(&[255, 251, 1, 255, 251, 3]).await.unwrap();
            s.write_all(b"Linux version 7.3\nkmatrix-guest: sshd up\n")
                .await
                .unwrap();
            let mut got = [0u8; 6];
            s.read_exact(&mut got).await.unwrap();
            s.write_all(&vec![b'x'; 200 << 10]).await.unwrap();
            s.write_all(b"\nkmatrix-guest: ready\n").await.unwrap();
            got
        });
        let mut c = Console::spawn(
            &sock,
            &log,
            Watcher::new(0),
            Budget::new(100 << 10),
            Some("kmatrix: boot 1\n".into()),
        );
        while !c.with(|w| w.sshd_up) {
            c.changed(Duration::from_secs(5)).await;
        }
        c.sysrq(b"wl", Duration::from_secs(20)).await.unwrap();
        assert_eq!(server.await.unwrap(), [255, 243, b'w', 255, 243, b'l']);
        let w = c.finish(Duration::from_secs(5)).await;
        assert!(w.ready, "the watcher saw everything, past the log's budget");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.starts_with("kmatrix: boot 1\nLinux version 7.3\n"),
            "{}",
            &text[..40]
        );
        assert!(text.contains("console.log truncated here"));
        assert!(text.len() < (100 << 10) + 200, "{}", text.len());
    }
}
