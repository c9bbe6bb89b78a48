//! `docker-daemon:` against engines: a real one (podman's Docker-compatible API service on a
//! unix socket, found through DOCKER_HOST and through a docker context) and a loopback TCP
//! stand-in that shows the HTTP framing and the errors. Whatever the route, the image must
//! flatten to exactly what `oci:` makes of the same image.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A legacy `docker save` with each layer stored as it is (gzip).
const STORED_AS_IS: DockerStyle = DockerStyle {
    modern: false,
    compressed_layers: true,
};

fn sample() -> Image {
    image(vec![
        layer(vec![
            dir("etc"),
            file("etc/os-release", "ID=daemon-test\n"),
            file("etc/old", "x"),
            dir("usr"),
            file("usr/a", "a"),
        ]),
        layer(vec![
            whiteout("etc/old"),
            file("usr/b", "b"),
            hardlink("usr/c", "usr/a"),
            symlink("usr/d", "a"),
        ]),
    ])
    .build()
}

/// The flattened output of `oci:` for `img`: what every daemon route must reproduce.
fn layout_output(img: &Image) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), img, "v1");
    flatten_ok(&["-q", &layout_arg(&lay, "v1")])
}

/// Runs the binary with only the docker variables given in `env` (the caller's own
/// DOCKER_HOST or context must not leak in).
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oci2wsl"));
    cmd.env("OCI2WSL_NO_CACHE", "1");
    cmd.arg("--no-wsl-config").args(args);
    for var in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_TLS_VERIFY",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn ok_with_env(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let o = run_with_env(args, env);
    assert!(
        o.status.success(),
        "oci2wsl {args:?} failed: {}",
        stderr(&o)
    );
    o.stdout
}

/// A failed run: exit 1, nothing on stdout, one error line, which is returned.
fn err_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = run_with_env(args, env);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "oci2wsl {args:?} should fail: {err}"
    );
    assert!(o.stdout.is_empty(), "a failed run wrote to stdout");
    assert!(err.starts_with("oci2wsl: error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}

// ------------------------------------------------------------------ podman, a real engine

/// podman's Docker-compatible API service on a private socket and private storage, killed
/// when dropped.
struct Podman {
    dir: tempfile::TempDir,
    service: Child,
}

impl Podman {
    fn start() -> Podman {
        let dir = tempfile::tempdir().unwrap();
        let mut podman = Podman::command_in(dir.path());
        let service = podman
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", dir.path().join("api.sock").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let engine = Podman { dir, service };
        engine.wait_until_serving();
        engine
    }

    /// podman on this engine's storage (vfs: works on any file system, no overlay mounts).
    fn command_in(dir: &Path) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .args(["--storage-driver", "vfs"]);
        cmd
    }

    fn command(&self) -> Command {
        Podman::command_in(self.dir.path())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Polls `GET /_ping` until the service answers `OK` (it starts in about a second).
    fn wait_until_serving(&self) {
        for _ in 0..600 {
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(self.socket()) {
                let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") && answer.ends_with("OK") {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "podman system service did not start serving {}",
            self.docker_host()
        );
    }

    /// Loads `img` from an oci-archive and tags it `tag`. Returns the image ID (its config
    /// digest).
    fn load(&self, img: &Image, tag: &str) -> String {
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("image.oci.tar");
        std::fs::write(&archive, oci_archive(&[(Some("v1"), img)])).unwrap();
        sh(self.command().arg("load").arg("-i").arg(&archive));
        let id = img.config.digest.clone();
        sh(self.command().args(["tag", &id[7..], tag]));
        id
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

#[test]
fn podman_engine_gives_what_the_layout_gives() {
    if !require_root_and_tools(&["podman"]) {
        return;
    }
    let img = sample();
    let expected = layout_output(&img);
    let engine = Podman::start();
    let id = engine.load(&img, "oci2wsl-daemon-test:v1");
    let host = engine.docker_host();
    let env = [("DOCKER_HOST", host.as_str())];

    let by_tag = ok_with_env(&["-q", "docker-daemon:oci2wsl-daemon-test:v1"], &env);
    assert!(
        by_tag == expected,
        "docker-daemon: by tag differs from oci:"
    );
    let by_id = ok_with_env(&["-q", &format!("docker-daemon:{id}")], &env);
    assert!(
        by_id == expected,
        "docker-daemon: by image ID differs from oci:"
    );

    // The same engine named by the current docker context instead of DOCKER_HOST.
    let config = tempfile::tempdir().unwrap();
    let meta = config
        .path()
        .join("contexts/meta")
        .join(&sha256_digest(b"podman-test")[7..]);
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        serde_json::json!({"Name": "podman-test", "Metadata": {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        config.path().join("config.json"),
        r#"{"auths": {}, "currentContext": "podman-test"}"#,
    )
    .unwrap();
    let config_dir = config.path().to_str().unwrap();
    let by_context = ok_with_env(
        &["-q", "docker-daemon:oci2wsl-daemon-test:v1"],
        &[("DOCKER_CONFIG", config_dir)],
    );
    assert!(
        by_context == expected,
        "docker-daemon: through the context differs from oci:"
    );

    // DOCKER_HOST wins over the context, as in docker: a dead DOCKER_HOST is what fails.
    let dead = format!("unix://{}/none.sock", config_dir);
    let err = err_with_env(
        &["docker-daemon:oci2wsl-daemon-test:v1"],
        &[("DOCKER_CONFIG", config_dir), ("DOCKER_HOST", &dead)],
    );
    assert!(
        err.contains("none.sock") && err.contains("DOCKER_HOST"),
        "{err}"
    );
}

#[test]
fn podman_engine_without_the_image_says_so_and_offers_the_registry() {
    if !require_root_and_tools(&["podman"]) {
        return;
    }
    let engine = Podman::start();
    let host = engine.docker_host();
    let err = err_with_env(
        &["docker-daemon:oci2wsl-absent:1"],
        &[("DOCKER_HOST", host.as_str())],
    );
    assert!(
        err.contains("oci2wsl-absent:1")
            && err.contains("not in the Docker engine")
            && err.contains(&host)
            && err.contains("oci2wsl oci2wsl-absent:1"),
        "{err}"
    );
}

// ------------------------------------------------------------------ loopback stand-in

/// A one-connection engine on 127.0.0.1 that answers any request with `respond(path)`.
/// Returns the DOCKER_HOST to reach it and the thread that yields the request path.
fn stand_in(
    respond: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("tcp://{}", listener.local_addr().unwrap());
    let served = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let path = request_line
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut conn = conn;
        let _ = conn.write_all(&respond(&path));
        path
    });
    (host, served)
}

/// `body` in chunked transfer encoding, in chunks of `size` bytes, as engines stream it.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn tcp_engine_streaming_a_legacy_save_gives_what_the_layout_gives() {
    let img = sample();
    let expected = layout_output(&img);
    let archive = docker_archive(&[(&img, &["app:1"])], STORED_AS_IS);
    let (host, served) = stand_in(move |_| chunked(&archive, 7000));
    let got = ok_with_env(&["-q", "docker-daemon:app:1"], &[("DOCKER_HOST", &host)]);
    assert_eq!(served.join().unwrap(), "/images/app:1/get");
    assert!(got == expected, "docker-daemon: over tcp differs from oci:");
}

#[test]
fn tcp_engine_docker25_save_and_an_untagged_name_means_latest() {
    let img = sample();
    let expected = layout_output(&img);
    let archive = docker_archive(
        &[(&img, &["team/app:latest"])],
        DockerStyle {
            modern: true,
            ..DockerStyle::default()
        },
    );
    let (host, served) = stand_in(move |_| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            archive.len()
        )
        .into_bytes();
        r.extend_from_slice(&archive);
        r
    });
    let got = ok_with_env(&["-q", "docker-daemon:team/app"], &[("DOCKER_HOST", &host)]);
    assert_eq!(served.join().unwrap(), "/images/team/app:latest/get");
    assert!(got == expected, "docker-daemon: over tcp differs from oci:");
}

#[test]
fn engine_errors_are_one_line_naming_the_engine() {
    // The engine's own message for a missing image, and the registry route offered.
    let (host, _) = stand_in(|_| {
        let body = br#"{"message":"reference does not exist"}"#;
        let mut r = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    });
    let err = err_with_env(&["docker-daemon:gone:2"], &[("DOCKER_HOST", &host)]);
    assert!(
        err.contains("gone:2")
            && err.contains(&host)
            && err.contains("reference does not exist")
            && err.contains("oci2wsl gone:2"),
        "{err}"
    );

    // Any other refusal carries the status and the message.
    let (host, _) = stand_in(|_| {
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 24\r\n\r\n{\"message\":\"disk full\"}\n"
            .to_vec()
    });
    let err = err_with_env(&["docker-daemon:app:1"], &[("DOCKER_HOST", &host)]);
    assert!(
        err.contains("HTTP 500") && err.contains("disk full") && err.contains(&host),
        "{err}"
    );

    // An export cut off mid-stream is an error, never a shorter image.
    let archive = docker_archive(&[(&sample(), &["app:1"])], STORED_AS_IS);
    let (host, _) = stand_in(move |_| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            archive.len()
        )
        .into_bytes();
        r.extend_from_slice(&archive[..archive.len() / 2]);
        r
    });
    let err = err_with_env(&["docker-daemon:app:1"], &[("DOCKER_HOST", &host)]);
    assert!(
        err.contains("closed before") && err.contains(&host),
        "{err}"
    );
}

#[test]
fn no_engine_listening_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let host = format!("unix://{}", sock.display());
    let err = err_with_env(&["docker-daemon:app:1"], &[("DOCKER_HOST", &host)]);
    assert!(
        err.contains(&host) && err.contains("does not exist") && err.contains("DOCKER_HOST"),
        "{err}"
    );

    // A port nobody listens on: bind one, then free it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("tcp://127.0.0.1:{port}");
    let err = err_with_env(&["docker-daemon:app:1"], &[("DOCKER_HOST", &host)]);
    assert!(err.contains(&host) && err.contains("not running"), "{err}");

    let err = err_with_env(&["docker-daemon:app:1"], &[("DOCKER_HOST", "ssh://me@box")]);
    assert!(
        err.contains("ssh://me@box") && err.contains("ssh -L"),
        "{err}"
    );
}
