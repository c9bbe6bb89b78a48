//! A real registry (Debian's docker-registry) on 127.0.0.1 for tests that pull (plain HTTP,
//! or TLS and an `auth:` section with [`start_registry_with`]); images are pushed into it
//! with skopeo from OCI layouts. A [`LoggingProxy`] in front of it records each request, and
//! a [`RequestLog`] counts them. Callers check `require_tools(REGISTRY_TOOLS)` first.

use super::tools::sh;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What [`start_registry`] and [`push`] need.
pub const REGISTRY_TOOLS: &[&str] = &["docker-registry", "skopeo"];

/// A running registry; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// `127.0.0.1:PORT/REPO`.
    pub fn name(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a registry storing its blobs under `dir/storage`.
pub fn start_registry(dir: &Path) -> Registry {
    start_registry_with(dir, None, None)
}

/// Starts a registry, with TLS (certificate, key) and an `auth:` section of its
/// configuration (htpasswd, token) when given.
pub fn start_registry_with(
    dir: &Path,
    tls: Option<(&Path, &Path)>,
    auth: Option<String>,
) -> Registry {
    let port = free_port();
    let mut cfg = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("storage").display()
    );
    if let Some((cert, key)) = tls {
        cfg += &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
    }
    if let Some(a) = auth {
        cfg += &a;
    }
    let cfg_path = dir.join("registry.yml");
    fs::write(&cfg_path, cfg).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    registry
}

/// Copies `source` (a skopeo source such as `oci:DIR:TAG`) to `docker://DEST`; `all` keeps
/// every manifest of an index. See [`push_layout`] for extra skopeo options.
pub fn push(source: &str, dest: &str, all: bool) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q", "--dest-tls-verify=false"]);
    if all {
        cmd.arg("--all");
    }
    let out = cmd
        .arg(source)
        .arg(format!("docker://{dest}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy {source} {dest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies tag `tag` of the OCI layout `layout` to `docker://DEST` with extra skopeo options
/// (`--dest-creds`, `--dest-cert-dir`, …).
pub fn push_layout(layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    sh(Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .args(extra)
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}")));
}

// ------------------------------------------------------------------------------ logging proxy

/// How a [`LoggingProxy`] passes the registry's answers on.
#[derive(Clone)]
pub enum ProxyMode {
    Forward,
    /// Bodies in 8 KiB pieces with pauses, so that a pull lasts a while.
    Slow,
    /// On the first GET whose path ends with this digest: half the body, then the flag is
    /// raised and the connection held open (a download to kill midway).
    StallOn(String, Arc<AtomicBool>),
}

/// A plain-HTTP proxy on 127.0.0.1 in front of a registry that records `METHOD PATH` of
/// every request, one request per connection.
pub struct LoggingProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

/// What a registry path names, for counting requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// `/v2/NAME/manifests/REF`
    Manifest,
    /// `/v2/NAME/blobs/DIGEST`
    Blob,
    /// Anything.
    Any,
}

impl PathKind {
    fn matches(self, path: &str) -> bool {
        match self {
            PathKind::Manifest => path.contains("/manifests/"),
            PathKind::Blob => path.contains("/blobs/"),
            PathKind::Any => true,
        }
    }
}

/// The requests a [`LoggingProxy`] saw since the last [`LoggingProxy::take`], as
/// `METHOD PATH` lines in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestLog(pub Vec<String>);

impl RequestLog {
    /// How many requests used `method` (`"GET"`, `"HEAD"`) on a path of this kind.
    pub fn count(&self, method: &str, kind: PathKind) -> usize {
        self.0
            .iter()
            .filter(|l| {
                l.split_once(' ')
                    .is_some_and(|(m, p)| m == method && kind.matches(p))
            })
            .count()
    }
    /// Blob downloads (GET of a blob path).
    pub fn blob_gets(&self) -> usize {
        self.count("GET", PathKind::Blob)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Asserts that exactly these requests were made, in this order.
    pub fn assert_exactly(&self, want: &[&str]) {
        assert_eq!(self.0, want, "requests");
    }
}

impl LoggingProxy {
    /// The requests seen since the last call.
    pub fn take(&self) -> RequestLog {
        RequestLog(std::mem::take(&mut *self.log.lock().unwrap()))
    }
}

/// Starts a [`LoggingProxy`] to the registry on `upstream`.
pub fn start_logging_proxy(upstream: u16, mode: ProxyMode) -> LoggingProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log_in = log.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let log = log_in.clone();
            let mode = mode.clone();
            std::thread::spawn(move || proxy_one(client, upstream, &log, &mode));
        }
    });
    LoggingProxy { port, log }
}

/// Reads one plain-HTTP request head from a proxy's client (the product tries https first
/// on loopback: a TLS handshake gets `None`, and so does a closed connection).
pub fn read_request_head(client: &mut TcpStream) -> Option<String> {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut first = [0u8; 1];
    if client.peek(&mut first).unwrap_or(0) == 0 || first[0] == 0x16 {
        return None;
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Sends a request head to the registry on `upstream` and returns its answer as (response
/// head saying `Connection: close`, body): one request per connection, so that the proxy's
/// client reads to the end.
pub fn forward(head: &str, upstream: u16) -> (String, Vec<u8>) {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    // Ask the registry to close after its answer, so that read_to_end ends.
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    up.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())
        .unwrap();
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(response.len());
    let (h, body) = response.split_at(split);
    let mut h = String::from_utf8_lossy(h).into_owned();
    if !h.to_lowercase().contains("connection: close") {
        h = h.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    }
    (h, body.to_vec())
}

fn proxy_one(mut client: TcpStream, upstream: u16, log: &Mutex<Vec<String>>, mode: &ProxyMode) {
    let Some(text) = read_request_head(&mut client) else {
        return;
    };
    let mut parts = text.lines().next().unwrap_or("").split(' ');
    let line = format!(
        "{} {}",
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("")
    );
    log.lock().unwrap().push(line.clone());
    let (h, body) = forward(&text, upstream);
    let _ = client.write_all(h.as_bytes());
    match mode {
        ProxyMode::StallOn(digest, stalled)
            if line.starts_with("GET ")
                && line.ends_with(digest.as_str())
                && !stalled.load(Ordering::SeqCst) =>
        {
            let _ = client.write_all(&body[..body.len() / 2]);
            let _ = client.flush();
            stalled.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(60));
        }
        ProxyMode::Slow => {
            for piece in body.chunks(8 * 1024) {
                if client.write_all(piece).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        }
        _ => {
            let _ = client.write_all(&body);
        }
    }
}
