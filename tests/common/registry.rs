//! A real registry (Debian's docker-registry) on 127.0.0.1, plain HTTP, for tests that pull;
//! images are pushed into it with skopeo from OCI layouts. Callers check
//! `require_tools(REGISTRY_TOOLS)` first.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
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
    let port = free_port();
    let cfg = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("storage").display()
    );
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
/// every manifest of an index.
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
