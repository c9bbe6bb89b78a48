//! The mistakes people make, each run against the real binary: what the error says (what is
//! wrong and what to type instead) and the exit code (2 for a wrong command line, 1 for any
//! other failure). Registries here are small std-only servers on 127.0.0.1, or
//! `openssl s_server` for TLS with a CA nobody trusts.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A run of the binary with a clean credential and certificate environment: HOME and the
/// config directories point into `home`, so no file of the machine's user is read.
struct Env {
    home: tempfile::TempDir,
    vars: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

impl Env {
    fn new() -> Env {
        let home = tempfile::tempdir().unwrap();
        let certs_d = home.path().join("no-certs.d");
        Env {
            vars: vec![
                ("OCI2WSL_CERTS_D".into(), certs_d.display().to_string()),
                (
                    "DOCKER_CONFIG".into(),
                    home.path().join(".docker").display().to_string(),
                ),
            ],
            home,
            cwd: None,
        }
    }

    fn var(mut self, name: &str, value: impl AsRef<str>) -> Env {
        self.vars.push((name.into(), value.as_ref().into()));
        self
    }

    fn path(&self) -> &Path {
        self.home.path()
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("HOME", self.path())
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for proxy in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            cmd.env_remove(proxy);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let out = cmd.output().expect("run oci2wsl");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Asserts the exit code, that stderr has every piece, and that every line it printed is
/// one of ours (`oci2wsl: …`), warnings included.
fn expect(r: &Run, code: i32, pieces: &[&str]) {
    r.assert_code(code);
    for piece in pieces {
        assert!(
            r.stderr.contains(piece),
            "stderr lacks {piece:?} for {:?}:\n{}",
            r.args,
            r.stderr
        );
    }
    for line in r.stderr.lines() {
        assert!(
            line.starts_with("oci2wsl: "),
            "a line without the prefix for {:?}: {line:?}",
            r.args
        );
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then let go).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ------------------------------------------------------------------ what IMAGE names

#[test]
fn bare_paths_get_the_transport_their_content_needs() {
    let env = Env::new();
    let dir = env.path().join("work");
    std::fs::create_dir(&dir).unwrap();
    let img = image(vec![layer(vec![file("hello", "hi")])]).build();
    std::fs::write(
        dir.join("saved.tar"),
        docker_archive(&[(&img, &["app:1"])], DockerStyle::default()),
    )
    .unwrap();
    std::fs::write(dir.join("oci.tar"), oci_archive(&[(Some("v1"), &img)])).unwrap();
    let layout = oci_dir(&dir, &img, "v1");
    let layout_dir = layout
        .strip_prefix("oci:")
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0;
    let env = Env {
        cwd: Some(dir.clone()),
        ..env
    };

    expect(
        &env.run(&["./saved.tar"]),
        2,
        &["docker save archive", "write docker-archive:./saved.tar"],
    );
    // A plain name is a path only when it holds an image: `saved.tar` here does.
    expect(&env.run(&["saved.tar"]), 2, &["docker-archive:saved.tar"]);
    expect(
        &env.run(&["./oci.tar"]),
        2,
        &["write oci-archive:./oci.tar"],
    );
    expect(
        &env.run(&[layout_dir]),
        2,
        &["OCI layout directory", &format!("write oci:{layout_dir}")],
    );
    expect(
        &env.run(&["./missing.tar"]),
        2,
        &["no such file", "docker-archive:FILE"],
    );
    expect(
        &env.run(&["C:\\images\\app.tar"]),
        2,
        &["docker-archive:FILE"],
    );
}

#[test]
fn urls_and_docker_hub_pages_say_which_reference_to_write() {
    let env = Env::new();
    expect(
        &env.run(&["http://host.example/img"]),
        2,
        &["is a URL", "host.example/img"],
    );
    expect(
        &env.run(&["https://ghcr.io/v2/org/app"]),
        2,
        &["as in ghcr.io/org/app"],
    );
    expect(
        &env.run(&["hub.docker.com/_/postgres"]),
        2,
        &["Docker Hub web page", "write postgres"],
    );
}

#[test]
fn transports_are_case_sensitive_and_known() {
    let env = Env::new();
    expect(
        &env.run(&["OCI:/tmp/x"]),
        2,
        &["case-sensitive", "write oci:/tmp/x", "docker-archive:"],
    );
    let r = env.run(&["oci-layout:/tmp/x"]);
    expect(&r, 2, &["unknown transport oci-layout:", "oci-archive:"]);
    assert!(!r.stderr.contains("cannot reach"), "{}", r.stderr);
}

// ------------------------------------------------------------------ the command line

#[test]
fn command_line_errors_exit_2() {
    let env = Env::new();
    let out = env.path().join("x.tar");
    let out = out.to_str().unwrap();
    for (args, says) in [
        (vec!["--level", "13", "app"], "uncompressed tar"),
        (vec!["--level", "5", "-o", out, "app"], "uncompressed tar"),
        (
            vec!["--level", "13", "-o", "x.tar.gz", "app"],
            "gzip (0 to 12)",
        ),
        (vec!["--platform", "arm64", "app"], "os/arch"),
        (vec!["--creds", "tester", "app"], "--password-stdin"),
        (vec!["--no-creds", "--creds", "a:b", "app"], ""),
        (vec!["--retry-times", "x", "app"], ""),
        (vec!["--no-such-flag", "app"], ""),
    ] {
        let r = env.run(&args);
        r.assert_code(2);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn output_mistakes_are_refused_before_anything_is_read() {
    let env = Env::new();
    let dir = env.path().to_str().unwrap().to_string();
    // The image would fail (nothing listens there); each -o mistake must come first.
    let image = format!("127.0.0.1:{}/x/y:1", dead_port());
    expect(
        &env.run(&["-o", &dir, &image]),
        2,
        &["is a directory", "name a file in it"],
    );
    expect(&env.run(&["-o", "", &image]), 2, &["-o needs a file name"]);
    for (ext, name) in [
        (".tar.xz", "xz"),
        (".tar.bz2", "bzip2"),
        (".tar.lz4", "lz4"),
    ] {
        let out = format!("{dir}/out{ext}");
        expect(
            &env.run(&["-o", &out, &image]),
            2,
            &[&format!("does not write {name}"), ".tar.zst"],
        );
        assert!(!Path::new(&out).exists());
    }
    expect(
        &env.run(&["--import", "Dist", "-o", "-", &image]),
        2,
        &["--import Dist -o -", "leave out -o"],
    );
}

#[test]
fn an_empty_standard_input_is_called_empty() {
    let r = Env::new().run(&["docker-archive:-", "-o", "/dev/null"]);
    expect(&r, 1, &["standard input is empty", "docker save IMAGE |"]);
}

// ------------------------------------------------------------------ reaching a registry

#[test]
fn an_unknown_host_fails_at_once() {
    // `.invalid` never resolves (RFC 6761): no retry can change that.
    let r = Env::new().run(&["registry.invalid/x/y:1", "-o", "/dev/null", "-v"]);
    expect(&r, 1, &["there is no host registry.invalid"]);
    assert!(!r.stderr.contains("retry"), "{}", r.stderr);
}

#[test]
fn a_refused_connection_is_retried_visibly_and_counted() {
    let port = dead_port();
    let image = format!("127.0.0.1:{port}/x/y:1");
    let r = Env::new().run(&["--retry-times", "2", "-v", &image, "-o", "/dev/null"]);
    expect(
        &r,
        1,
        &[
            &format!("cannot reach 127.0.0.1:{port} (3 attempts)"),
            "retry 2 in",
        ],
    );
    // -v: one line per request, with its method and URL.
    let requests = r
        .stderr
        .lines()
        .filter(|l| l.contains("debug: GET "))
        .count();
    assert!(requests >= 3, "{}", r.stderr);
    assert!(r.stderr.contains(&format!(
        "debug: GET https://127.0.0.1:{port}/v2/x/y/manifests/1 -> no response"
    )));
    // Without a terminal and without -v, retries are silent: only the error.
    let r = Env::new().run(&["--retry-times", "1", &image, "-o", "/dev/null"]);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn a_dead_proxy_is_named() {
    let proxy = format!("http://127.0.0.1:{}", dead_port());
    let r = Env::new().var("HTTPS_PROXY", &proxy).run(&[
        "--retry-times",
        "0",
        "registry.example/x/y:1",
        "-o",
        "/dev/null",
    ]);
    expect(
        &r,
        1,
        &[
            &format!("cannot reach the proxy {proxy} (from HTTPS_PROXY)"),
            "registry.example",
        ],
    );
}

/// A CA and a certificate for 127.0.0.1 and localhost that it signed.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=oci2wsl unknown CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

/// `openssl s_server -www`: TLS with the given certificate; every GET gets an HTML page,
/// so a run that passes the TLS check fails later, on a manifest that is HTML.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(cert: &Path, key: &Path) -> TlsServer {
        let port = dead_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "s_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PASSED_TLS: &str = "looks like HTML";

#[test]
fn an_unknown_ca_names_the_flags_and_certs_d_is_looked_up() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let env = Env::new();
    let (ca, cert, key) = make_certs(env.path());
    let server = TlsServer::start(&cert, &key);
    let host = format!("127.0.0.1:{}", server.port);
    let image = format!("{host}/x/y:1");
    // openssl s_server -www answers GET with an HTML page (proof that TLS passed) and drops
    // a HEAD, so the layer cache, which resolves a tag with HEAD, is kept out.
    let args = [
        "--no-cache",
        "--retry-times",
        "0",
        &image,
        "-o",
        "/dev/null",
    ];

    let r = env.run(&args);
    expect(
        &r,
        1,
        &[
            "certificate is not trusted",
            "--ca-file",
            "--cert-dir",
            "--tls-verify=false",
        ],
    );

    // The per-registry folder of a certs.d root (OCI2WSL_CERTS_D stands in for
    // /etc/docker/certs.d and the others).
    let root = env.path().join("certs.d");
    std::fs::create_dir_all(root.join(&host)).unwrap();
    std::fs::copy(&ca, root.join(&host).join("ca.crt")).unwrap();
    let with_root = Env::new().var("OCI2WSL_CERTS_D", root.to_str().unwrap());
    expect(&with_root.run(&args), 1, &[PASSED_TLS]);

    // --cert-dir at the certs.d root finds the registry's folder in it.
    let mut with_dir = vec!["--cert-dir", root.to_str().unwrap()];
    with_dir.extend(args);
    expect(&env.run(&with_dir), 1, &[PASSED_TLS]);
    // ... and says so when it holds nothing for this registry.
    let empty = env.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut with_empty = vec!["--cert-dir", empty.to_str().unwrap()];
    with_empty.extend(args);
    expect(
        &env.run(&with_empty),
        1,
        &["no CA certificate (*.crt)", &format!("{host}/")],
    );

    // --insecure-registry names a host: it covers the registry on any port.
    let local = format!("localhost:{}/x/y:1", server.port);
    expect(
        &env.run(&[
            "--insecure-registry",
            "localhost",
            "--no-cache",
            "--retry-times",
            "0",
            &local,
            "-o",
            "/dev/null",
        ]),
        1,
        &[PASSED_TLS],
    );
    // One that names another host changes nothing, and says so.
    expect(
        &env.run(&[
            "--insecure-registry",
            "127.0.0.2",
            "--retry-times",
            "0",
            &local,
            "-o",
            "/dev/null",
        ]),
        1,
        &[
            "warning: --insecure-registry 127.0.0.2 does not name",
            "certificate is not trusted",
        ],
    );
}

// ------------------------------------------------------------------ credentials

/// A registry that wants basic credentials: 401 with a Basic challenge unless the request
/// carries `accept` (then 404: the credentials were sent and taken). Keeps every
/// Authorization header it saw.
fn basic_auth_registry(accept: Option<String>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("authorization:") {
                    auth = Some(line[line.len() - v.len()..].trim().to_string());
                }
            }
            log.lock().unwrap().push(auth.clone().unwrap_or_default());
            let reply = if auth.is_some() && auth == accept {
                let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no such"}]}"#;
                format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            };
            let _ = stream.write_all(reply.as_bytes());
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    (port, seen)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn auth_json(user: &str, password: &str, registry: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#)
}

#[test]
fn a_missing_creds_store_helper_is_a_warning_and_named_when_credentials_are_needed() {
    let (port, seen) = basic_auth_registry(None);
    let env = Env::new();
    let docker = env.path().join(".docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        r#"{"credsStore":"desktop.exe","auths":{}}"#,
    )
    .unwrap();
    let env = env.var("DOCKER_CONFIG", docker.to_str().unwrap());
    let image = format!("127.0.0.1:{port}/x/y:1");
    let r = env.run(&[&image, "-o", "/dev/null"]);
    expect(
        &r,
        1,
        &[
            "oci2wsl: warning: credential helper docker-credential-desktop.exe could not be run",
            "credsStore in",
            "config.json); continuing without credentials",
            &format!("authentication required for 127.0.0.1:{port}/x/y (no credentials: credential helper docker-credential-desktop.exe"),
        ],
    );
    // The run went on to the registry, anonymously.
    assert!(seen.lock().unwrap().iter().all(String::is_empty));
    assert!(!seen.lock().unwrap().is_empty());

    // --no-creds skips the Docker config, helper and all.
    let r = env.run(&["--no-creds", &image, "-o", "/dev/null"]);
    expect(&r, 1, &["--no-creds was given"]);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

#[test]
fn podmans_auth_files_in_podmans_order() {
    let runtime_creds = basic("runtime", "pw1");
    let (port, seen) = basic_auth_registry(Some(runtime_creds.clone()));
    let registry = format!("127.0.0.1:{port}");
    let image = format!("{registry}/x/y:1");
    let env = Env::new();
    let runtime = env.path().join("run");
    let config = env.path().join(".config");
    std::fs::create_dir_all(runtime.join("containers")).unwrap();
    std::fs::create_dir_all(config.join("containers")).unwrap();
    std::fs::write(
        config.join("containers/auth.json"),
        auth_json("config", "pw2", &registry),
    )
    .unwrap();

    // ~/.config/containers/auth.json alone is read (podman's file on Windows and macOS).
    let r = env.run(&[&image, "-o", "/dev/null"]);
    expect(&r, 1, &["authentication failed"]);
    assert!(seen.lock().unwrap().contains(&basic("config", "pw2")));

    // $XDG_RUNTIME_DIR/containers/auth.json comes first.
    std::fs::write(
        runtime.join("containers/auth.json"),
        auth_json("runtime", "pw1", &registry),
    )
    .unwrap();
    let env = env.var("XDG_RUNTIME_DIR", runtime.to_str().unwrap());
    let r = env.run(&[&image, "-o", "/dev/null"]);
    expect(&r, 1, &["not found", "MANIFEST_UNKNOWN"]);
}

// ------------------------------------------------------------------ the image, named once

/// The error line names where the image is (`location`: a path, or HOST/REPO) once: the
/// run adds the reference in front of a message only when the message does not name it.
fn names_once(r: &Run, code: i32, location: &str, pieces: &[&str]) {
    expect(r, code, pieces);
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("oci2wsl: error: "))
        .unwrap_or_else(|| panic!("no error line for {:?}:\n{}", r.args, r.stderr));
    assert_eq!(
        line.matches(location).count(),
        1,
        "{location:?} is not named once for {:?}: {line}",
        r.args
    );
}

#[test]
fn local_sources_name_the_image_once() {
    let env = Env::new();
    let dir = env.path().join("images");
    std::fs::create_dir(&dir).unwrap();
    let good = image(vec![layer(vec![file("hello", "hi")])]).build();
    let bad = image(vec![layer(vec![file("hello", "tampered")])])
        .corrupt(Corruption::LayerBytes(0))
        .build();
    let bad_diff_id = image(vec![layer(vec![file("hello", "renamed")])])
        .corrupt(Corruption::DiffId(0))
        .build();
    let layout = dir.join("layout");
    write_oci_layout(&layout, &[(Some("v1"), &good), (Some("bad"), &bad)]);
    let archive = dir.join("oci.tar");
    std::fs::write(
        &archive,
        oci_archive(&[(Some("v1"), &good), (Some("bad"), &bad)]),
    )
    .unwrap();
    let saved = dir.join("saved.tar");
    std::fs::write(
        &saved,
        docker_archive(
            &[(&good, &["app:1"]), (&bad_diff_id, &["bad:1"])],
            DockerStyle::default(),
        ),
    )
    .unwrap();
    let out = dir.join("out.tar");
    let out = out.to_str().unwrap();
    let missing = dir.join("missing");
    let missing = missing.to_str().unwrap();
    let run = |image: &str, platform: Option<&str>| {
        let mut args = vec!["-f", "-o", out, image];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        env.run(&args)
    };
    let other = "linux/s390x";
    for (transport, path, bad_ref, good_ref, tampered) in [
        (
            "oci",
            layout.to_str().unwrap(),
            "bad",
            "v1",
            "corrupted or tampered",
        ),
        (
            "oci-archive",
            archive.to_str().unwrap(),
            "bad",
            "v1",
            "corrupted or tampered",
        ),
        (
            "docker-archive",
            saved.to_str().unwrap(),
            "bad:1",
            "app:1",
            "diff_id",
        ),
    ] {
        names_once(
            &run(&format!("{transport}:{missing}"), None),
            1,
            missing,
            &["No such file"],
        );
        names_once(
            &run(&format!("{transport}:{path}:nosuch"), None),
            1,
            path,
            &["no image tagged"],
        );
        names_once(
            &run(&format!("{transport}:{path}:{good_ref}"), Some(other)),
            1,
            path,
            &[&format!("not the requested {other}")],
        );
        names_once(
            &run(&format!("{transport}:{path}:{bad_ref}"), None),
            1,
            path,
            &[tampered],
        );
    }
}

#[test]
fn a_registry_image_is_named_once() {
    if !require_tools(REGISTRY_TOOLS) {
        return;
    }
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let good = image(vec![layer(vec![file("hello", "hi")])]).build();
    let layout = dir.path().join("layout");
    write_oci_layout(&layout, &[(Some("v1"), &good)]);
    let registry = start_registry(dir.path());
    push(
        &format!("oci:{}:v1", layout.display()),
        &registry.name("x/app:v1"),
        false,
    );
    push(
        &format!("oci:{}:v1", layout.display()),
        &registry.name("x/tampered:v1"),
        false,
    );
    // One byte of the stored layer blob changed: both repositories share it, so the tampered
    // one is pulled last.
    let hex = &good.layers[0].digest["sha256:".len()..];
    let data = dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let host = format!("127.0.0.1:{}", registry.port);
    let out = dir.path().join("out.tar");
    let run = |image: &str, platform: Option<&str>| {
        let mut args = vec![
            "--insecure-registry",
            &host,
            "--no-cache",
            "-f",
            "-o",
            out.to_str().unwrap(),
            image,
        ];
        if let Some(p) = platform {
            args.extend(["--platform", p]);
        }
        env.run(&args)
    };
    let app = registry.name("x/app");
    let zeros = format!("sha256:{}", "0".repeat(64));
    names_once(
        &run(&registry.name("x/nosuch:v1"), None),
        1,
        &registry.name("x/nosuch"),
        &["manifest v1 not found"],
    );
    names_once(
        &run(&registry.name("x/app:nosuch"), None),
        1,
        &app,
        &["manifest nosuch not found"],
    );
    names_once(
        &run(&registry.name(&format!("x/app@{zeros}")), None),
        1,
        &app,
        &[&format!("manifest {zeros} not found")],
    );
    names_once(
        &run(&registry.name("x/app:v1"), Some("linux/s390x")),
        1,
        &app,
        &["not the requested linux/s390x"],
    );
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&data, &bytes).unwrap();
    names_once(
        &run(&registry.name("x/tampered:v1"), None),
        1,
        &registry.name("x/tampered"),
        // The digest or, streaming, the gzip trailer's checksum: whichever sees it first.
        &[&format!("layer 1/1 sha256:{}", &hex[..12])],
    );
}

// ------------------------------------------------------------------ what a line shows

/// `-v` (crane's) or `--debug` (skopeo's): a line per request with its method, URL, status
/// and time; never the credentials the request carried.
#[test]
fn the_request_log_shows_status_and_time_and_never_credentials() {
    let password = "s3cret-pw";
    let creds = basic("tester", password);
    let (port, seen) = basic_auth_registry(Some(creds.clone()));
    let image = format!("127.0.0.1:{port}/x/y:1");
    let login = format!("tester:{password}");
    for flag in ["-v", "--debug"] {
        let r = Env::new().run(&[flag, "--creds", &login, &image, "-o", "/dev/null"]);
        expect(&r, 1, &["not found"]);
        assert!(
            seen.lock().unwrap().contains(&creds),
            "the credentials were sent"
        );
        let requests: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("oci2wsl: debug: "))
            .collect();
        let url = format!("http://127.0.0.1:{port}/v2/x/y/manifests/1 -> ");
        for status in ["401", "404"] {
            assert!(
                requests
                    .iter()
                    .any(|l| l.contains(&format!("GET {url}{status} ("))),
                "no {status} request logged with {flag}:\n{}",
                r.stderr
            );
        }
        for line in &requests {
            assert!(line.ends_with(" ms)"), "no time: {line}");
        }
        let token = creds.trim_start_matches("Basic ");
        for secret in [password, token, "Authorization", "authorization"] {
            assert!(!r.stderr.contains(secret), "{secret} shown:\n{}", r.stderr);
        }
    }
}

/// The warning that the image is for another platform than the machine's carries the
/// prefix every warning carries (it once came without it).
#[test]
fn the_platform_warning_is_a_warning_line() {
    let env = Env::new();
    let other = if cfg!(target_arch = "s390x") {
        "linux/ppc64le"
    } else {
        "linux/s390x"
    };
    let img = image(vec![layer(vec![file("hello", "hi")])])
        .platform(other)
        .build();
    let src = oci_dir(env.path(), &img, "v1");
    let out = env.path().join("out.tar");
    // -q: nothing but warnings and errors, so every line must be ours.
    let r = env.run(&["-q", "-o", out.to_str().unwrap(), &src]);
    expect(
        &r,
        0,
        &[&format!(
            "oci2wsl: warning: the image is for {other}, not linux/"
        )],
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// No internal names in a message: not Rust's `None` for a missing field, not an enum's
/// `Gzip` for gzip.
#[test]
fn messages_show_no_internal_names() {
    let env = Env::new();
    let layout = env.path().join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let manifest = br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    let hex = sha256_hex(manifest);
    std::fs::write(blobs.join(&hex), manifest).unwrap();
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{hex}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"t"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();
    let r = env.run(&["-o", "/dev/null", &format!("oci:{}:t", layout.display())]);
    expect(&r, 1, &["no schemaVersion"]);
    assert!(!r.stderr.contains("None"), "{}", r.stderr);

    let r = env.run(&["--level", "13", "-o", "x.tar.gz", "app"]);
    expect(&r, 2, &["gzip (0 to 12)"]);
    // `Gzip`: the enum's name, where a user reads `gzip`.
    assert!(!r.stderr.contains("Gzip"), "{}", r.stderr);
}

/// The summary says which platform was chosen and both digests, each labelled: the index's
/// (the one a user pins) and the chosen manifest's; one line each, short.
#[test]
fn the_summary_labels_the_platform_and_both_digests() {
    let env = Env::new();
    let host = host_platform();
    let other = if host.arch == "s390x" {
        "linux/ppc64le"
    } else {
        "linux/s390x"
    };
    let native = image(vec![layer(vec![file("arch", "native")])]).build();
    let foreign = image(vec![layer(vec![file("arch", "foreign")])])
        .platform(other)
        .build();
    let idx = index(&[&native, &foreign]).build();
    let layout = env.path().join("layout");
    write_oci_layout(&layout, &[(Some("multi"), &idx)]);
    let out = env.path().join("out.tar");
    let r = env.run(&[
        "-o",
        out.to_str().unwrap(),
        &format!("oci:{}:multi", layout.display()),
    ]);
    r.assert_code(0);
    let lines: Vec<&str> = r.stderr.lines().collect();
    let labelled = |label: &str, value: &str| {
        let line = format!("  {label:<17}{value}");
        assert!(lines.contains(&line.as_str()), "no {line:?}:\n{}", r.stderr);
    };
    labelled("platform", &format!("linux/{}", host.arch));
    labelled("index digest", &idx.blob.digest);
    labelled("manifest digest", &native.manifest.digest);
    // "1 layer", and the figures on a line of their own.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  1 layer, ") && l.len() <= 90),
        "{}",
        r.stderr
    );
}
