//! Fault injectors for the desktop app's fault tests: an HTTP proxy on 127.0.0.1 in front of
//! the real hubkeyd that answers chosen requests with an error status or holds an answer
//! back, and a tiny tmpfs that can be filled up or made read-only.
//!
//! Neither imitates hubkeyd: the proxy passes every request it does not fault to the real
//! server, byte for byte, and the tmpfs is a real file system the kernel runs out of space on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to the requests whose path starts with its `path` (every request
/// when `path` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Passes everything through.
    None,
    /// Answers with this status and an HTML page, as a failing reverse proxy does; the
    /// request never reaches hubkeyd.
    Status { path: String, status: u16 },
    /// Passes the request on, then holds hubkeyd's answer back for this long: the server did
    /// the work, the client hears of it late (or, past its timeout, never).
    SlowAnswer { path: String, delay: Duration },
    /// Passes the request on, then holds hubkeyd's answer back until
    /// [`FaultProxy::release`]: the test decides when the client hears of it.
    Held { path: String },
}

impl Fault {
    /// `status` for every request.
    pub fn status(status: u16) -> Self {
        Fault::Status {
            path: String::new(),
            status,
        }
    }

    /// Every answer `delay` late.
    pub fn slow(delay: Duration) -> Self {
        Fault::SlowAnswer {
            path: String::new(),
            delay,
        }
    }
}

/// An HTTP/1.1 proxy on 127.0.0.1:0 in front of `upstream`, one request per connection (it
/// adds `connection: close` both ways, so the client cannot reuse a connection across a
/// change of fault). Dropping it stops accepting.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, the address to give the client instead of hubkeyd's.
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    faulted: Arc<AtomicUsize>,
    /// Whether the answers held by [`Fault::Held`] may go.
    released: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts the proxy in front of `upstream` (`host:port`), passing everything through.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::None));
        let faulted = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let (shared, counter) = (Arc::clone(&fault), Arc::clone(&faulted));
        let (released, release) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, fault, counter, release) = (
                    upstream.clone(),
                    Arc::clone(&shared),
                    Arc::clone(&counter),
                    release.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &fault, &counter, release).await;
                });
            }
        });
        FaultProxy {
            url,
            released,
            fault,
            faulted,
            task,
        }
    }

    /// Applies `fault` to the requests from now on (a [`Fault::Held`] holds answers until
    /// the next [`FaultProxy::release`]).
    pub fn set(&self, fault: Fault) {
        if matches!(fault, Fault::Held { .. }) {
            self.released.send_replace(false);
        }
        *self.fault.lock().unwrap() = fault;
    }

    /// Lets the answers held by [`Fault::Held`] go, and those held from now on.
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    /// How many requests a fault was applied to so far (to prove the fault was hit).
    pub fn faulted(&self) -> usize {
        self.faulted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one request of `client`.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    fault: &Mutex<Fault>,
    faulted: &AtomicUsize,
    mut released: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (head, mut body) = read_head(&mut client).await?;
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_owned();
    let length = header(&head, "content-length")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(0);
    while body.len() < length {
        let mut chunk = vec![0; length - body.len()];
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..read]);
    }
    let applies = |prefix: &str| path.starts_with(prefix);
    let fault = fault.lock().unwrap().clone();
    let mut held = false;
    let delay = match fault {
        Fault::Status { path, status } if applies(&path) => {
            faulted.fetch_add(1, Ordering::SeqCst);
            let page = format!("<html><body><h1>{status} injected by the test</h1></body></html>");
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Fault::SlowAnswer { path, delay } if applies(&path) => {
            faulted.fetch_add(1, Ordering::SeqCst);
            Some(delay)
        }
        Fault::Held { path } if applies(&path) => {
            faulted.fetch_add(1, Ordering::SeqCst);
            held = true;
            None
        }
        _ => None,
    };
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(close_after(&head).as_bytes()).await?;
    server.write_all(&body).await?;
    let (answer_head, answer_start) = read_head(&mut server).await?;
    let mut rest = answer_start;
    server.read_to_end(&mut rest).await?;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if held {
        // A dropped proxy lets the answer go.
        let _ = released.wait_for(|released| *released).await;
    }
    client
        .write_all(close_after(&answer_head).as_bytes())
        .await?;
    client.write_all(&rest).await?;
    client.shutdown().await
}

/// Reads up to the end of an HTTP head; returns the head (with its final CRLFCRLF) and the
/// bytes read after it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buffer).into_owned(), rest));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// The head with its `connection` header replaced by `connection: close`.
fn close_after(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case("connection"))
        })
        .collect();
    lines.push("connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// A tmpfs of a few KiB mounted on a directory (root only), to run a real file system out
/// of space or make it read-only. Unmounted (lazily, so a leftover open file cannot keep it)
/// when dropped.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_kib` KiB on `dir` (created when missing).
    pub fn mount(dir: &Path, size_kib: u32) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        run_mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_kib}k,mode=0755"),
            "tmpfs",
            &dir.display().to_string(),
        ]);
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Fills the file system until the kernel says it is full; returns the filler file.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.dir.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 1024];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(28) => break,
                Err(err) => panic!("filling {}: {err}", self.dir.display()),
            }
        }
        // A tmpfs keeps no blocks back: a new file of one byte no longer fits either.
        let probe = std::fs::write(self.dir.join("probe"), b"x");
        assert!(probe.is_err(), "{} is not full", self.dir.display());
        let _ = std::fs::remove_file(self.dir.join("probe"));
        filler
    }

    /// Remounts read-only (`true`) or read-write.
    pub fn set_read_only(&self, read_only: bool) {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        run_mount(&["-o", mode, &self.dir.display().to_string()]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn run_mount(args: &[&str]) {
    let output = Command::new("mount")
        .args(args)
        .output()
        .expect("mount (util-linux)");
    assert!(
        output.status.success(),
        "mount {args:?} failed (the fault tests mount a tmpfs and need root): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
