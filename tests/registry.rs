//! Pulls from a real registry (Debian's docker-registry, the CNCF distribution registry) that
//! the tests start on 127.0.0.1: plain HTTP, TLS with a CA the test makes, htpasswd basic
//! auth behind TLS, and a fault-injecting proxy (a dropped connection mid-blob, a 500, a 429
//! with Retry-After, a corrupted byte). Images are pushed with skopeo from OCI layouts the
//! tests build. Needs docker-registry, skopeo, openssl and htpasswd; required under CI.

mod common;
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn prerequisites() -> bool {
    require_tools(&["docker-registry", "skopeo", "openssl", "htpasswd"])
}

/// Starts a registry, optionally with TLS and htpasswd basic auth.
fn start_registry(dir: &Path, tls: Option<(&Path, &Path)>, htpasswd: Option<&Path>) -> Registry {
    start_registry_with(
        dir,
        tls,
        htpasswd.map(|p| {
            format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                p.display()
            )
        }),
    )
}

fn test_image() -> ImageBuilder {
    let big: String = (0..300_000).map(|i| format!("{i}\n")).collect();
    image(vec![
        layer(vec![
            dir("etc"),
            file("etc/os-release", "ID=reg\n"),
            file("etc/big", &big),
        ]),
        layer(vec![file("usr/bin/app", "app"), whiteout("etc/os-release")]).zstd(),
    ])
}

/// CA and server certificate for 127.0.0.1.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.crt");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let cert = dir.join("server.crt");
    let ext = dir.join("ext.cnf");
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=oci2wsl test CA",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    sh(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    sh(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert));
    (ca, cert, key)
}

fn layout_output(layout: &Path) -> Vec<u8> {
    flatten_ok(&["-q", &layout_arg(layout, "t")])
}

#[test]
fn plain_http_pull_is_byte_identical_to_the_layout() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &test_image().build(), "t");
    let reg = start_registry(dir.path(), None, None);
    let name = format!("127.0.0.1:{}/team/app:1.0", reg.port);
    push_layout(&lay, "t", &name, &[]);
    let expected = layout_output(&lay);
    assert_eq!(flatten_ok(&["-q", &name]), expected);
    assert_eq!(flatten_ok(&["-q", &format!("docker://{name}")]), expected);
    // By digest, and a digest that does not exist.
    let o = run(
        &[&name, "-o", dir.path().join("x.tar").to_str().unwrap()],
        None,
    );
    let summary = stderr(&o);
    // The summary has a line `manifest digest  sha256:…`.
    let digest = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("manifest digest"))
        .map(|d| d.trim().to_string())
        .unwrap_or_else(|| panic!("no manifest digest in the summary: {summary}"));
    let pinned = format!("127.0.0.1:{}/team/app@{digest}", reg.port);
    assert_eq!(flatten_ok(&["-q", &pinned]), expected);
    let err = flatten_err(&[&format!("127.0.0.1:{}/team/app:missing", reg.port)]);
    assert!(
        err.contains("not found") && err.contains("team/app"),
        "{err}"
    );
}

#[test]
fn multi_arch_index_from_the_registry() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let amd = image(vec![layer(vec![file("arch", "amd64")])]).build();
    let arm = image(vec![layer(vec![file("arch", "arm64")])])
        .platform("linux/arm64")
        .build();
    let idx = index(&[&amd, &arm]).with_attestation().build();
    let lay = oci_layout(dir.path(), &idx, "multi");
    let reg = start_registry(dir.path(), None, None);
    let name = format!("127.0.0.1:{}/multi:1", reg.port);
    push_layout(&lay, "multi", &name, &["--all"]);
    let t = tree(&flatten_ok(&["-q", "--platform", "linux/arm64", &name]));
    assert_eq!(content_of(&t, "arch"), b"arm64");
    let t = tree(&flatten_ok(&["-q", "--platform", "linux/amd64", &name]));
    assert_eq!(content_of(&t, "arch"), b"amd64");
}

#[test]
fn tls_with_a_private_ca() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let lay = oci_layout(dir.path(), &test_image().build(), "t");
    let reg = start_registry(dir.path(), Some((&cert, &key)), None);
    let name = format!("127.0.0.1:{}/secure/app:1", reg.port);
    push_layout(&lay, "t", &name, &[]);
    let expected = layout_output(&lay);
    // Loopback may fall back to HTTP, but a TLS server with an unknown CA is an error.
    let err = flatten_err(&[&name]);
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("tls") || err.contains("TLS"),
        "{err}"
    );
    assert_eq!(
        flatten_ok(&["-q", "--ca-file", ca.to_str().unwrap(), &name]),
        expected
    );
    let certs_d = dir.path().join("certs.d");
    fs::create_dir(&certs_d).unwrap();
    fs::copy(&ca, certs_d.join("ca.crt")).unwrap();
    assert_eq!(
        flatten_ok(&["-q", "--cert-dir", certs_d.to_str().unwrap(), &name]),
        expected
    );
    assert_eq!(flatten_ok(&["-q", "--tls-verify=false", &name]), expected);
}

#[test]
fn basic_auth_behind_tls_and_secrets_never_printed() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let pw = Command::new("htpasswd")
        .args(["-Bbn", "tester", "Sup3rSecretPw"])
        .output()
        .unwrap();
    let htpasswd = dir.path().join("htpasswd");
    fs::write(&htpasswd, &pw.stdout).unwrap();
    let lay = oci_layout(dir.path(), &test_image().build(), "t");
    let reg = start_registry(dir.path(), Some((&cert, &key)), Some(&htpasswd));
    let name = format!("127.0.0.1:{}/private/app:1", reg.port);
    push_layout(&lay, "t", &name, &["--dest-creds", "tester:Sup3rSecretPw"]);
    let expected = layout_output(&lay);
    let ca_arg = ["--ca-file", ca.to_str().unwrap()];
    let ok = run(
        &[
            ca_arg[0],
            ca_arg[1],
            "--creds",
            "tester:Sup3rSecretPw",
            &name,
        ],
        None,
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(ok.stdout, expected);
    assert!(!stderr(&ok).contains("Sup3rSecretPw"));

    // The password on standard input, out of the process list (as `docker login
    // --password-stdin`).
    let ok = run(
        &[
            ca_arg[0],
            ca_arg[1],
            "--creds",
            "tester",
            "--password-stdin",
            &name,
        ],
        Some(b"Sup3rSecretPw\n"),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(ok.stdout, expected);

    let err = flatten_err(&[ca_arg[0], ca_arg[1], &name]);
    assert!(
        err.contains("authentication required") && err.contains("private/app"),
        "{err}"
    );
    let err = flatten_err(&[
        ca_arg[0],
        ca_arg[1],
        "--creds",
        "tester:WrongPassword1",
        &name,
    ]);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("WrongPassword1"), "{err}");

    // The same credentials from an auth file (containers auth.json / docker config format).
    let authfile = dir.path().join("auth.json");
    let b64 = {
        let o = Command::new("sh")
            .args(["-c", "printf %s tester:Sup3rSecretPw | base64 -w0"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    fs::write(
        &authfile,
        format!(
            r#"{{"auths":{{"127.0.0.1:{}":{{"auth":"{b64}"}}}}}}"#,
            reg.port
        ),
    )
    .unwrap();
    assert_eq!(
        flatten_ok(&[
            "-q",
            ca_arg[0],
            ca_arg[1],
            "--authfile",
            authfile.to_str().unwrap(),
            &name
        ]),
        expected
    );
    let docker_config = dir.path().join("docker");
    fs::create_dir(&docker_config).unwrap();
    fs::copy(&authfile, docker_config.join("config.json")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .args(["-q", "--no-wsl-config", ca_arg[0], ca_arg[1], &name])
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, expected);

    // And from a credential helper (`docker-credential-NAME get`, what Docker Desktop uses).
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-oci2wsltest");
    fs::write(
        &helper,
        "#!/bin/sh\nread server\necho \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"tester\\\",\\\"Secret\\\":\\\"Sup3rSecretPw\\\"}\"\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&helper)
        .status()
        .unwrap();
    let helper_config = dir.path().join("docker-helper");
    fs::create_dir(&helper_config).unwrap();
    fs::write(
        helper_config.join("config.json"),
        format!(
            r#"{{"credHelpers":{{"127.0.0.1:{}":"oci2wsltest"}}}}"#,
            reg.port
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .args(["-q", "--no-wsl-config", ca_arg[0], ca_arg[1], &name])
        .env("DOCKER_CONFIG", &helper_config)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "credential helper: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.stdout, expected);
}

/// A loopback proxy in front of the registry that misbehaves on blob requests, once per
/// kind of fault, in the order given.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    DropMidBody,
    Status500,
    Status429,
    CorruptByte,
    /// A flipped byte in the first block, then a pause before the rest: the index pass,
    /// which reads the blob while it downloads, meets the damage long before the download
    /// can tell the digest is wrong.
    CorruptByteThenStall,
}

/// Returns the port, the number of faults injected and the number of ranged (resumed)
/// blob requests seen.
fn start_proxy(
    upstream: u16,
    faults: Vec<Fault>,
    big_blob: String,
) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let faults = Arc::new(Mutex::new(faults));
    let injected = Arc::new(AtomicUsize::new(0));
    let ranged = Arc::new(AtomicUsize::new(0));
    let counter = injected.clone();
    let ranged_counter = ranged.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let faults = faults.clone();
            let counter = counter.clone();
            let ranged_counter = ranged_counter.clone();
            let big_blob = big_blob.clone();
            std::thread::spawn(move || {
                // One request per connection; the response says Connection: close.
                let Some(text) = read_request_head(&mut client) else {
                    return;
                };
                if text.to_ascii_lowercase().contains("\r\nrange: bytes=") {
                    ranged_counter.fetch_add(1, Ordering::SeqCst);
                }
                let is_layer_blob = text.starts_with("GET ")
                    && text.contains("/blobs/sha256:")
                    && !text.contains("Range:")
                    && !text.contains("range:");
                // Body faults only on the big layer blob (so that a dropped download must
                // resume with a range request); status faults on any blob.
                let fault = if is_layer_blob {
                    let mut f = faults.lock().unwrap();
                    match f.first() {
                        Some(
                            Fault::DropMidBody | Fault::CorruptByte | Fault::CorruptByteThenStall,
                        ) if !text.contains(&big_blob) => None,
                        Some(_) => Some(f.remove(0)),
                        None => None,
                    }
                } else {
                    None
                };
                match fault {
                    Some(Fault::Status500) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        return;
                    }
                    Some(Fault::Status429) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = client.write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        return;
                    }
                    _ => {}
                }
                let (h, mut body) = forward(&text, upstream);
                if fault.is_some() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                match fault {
                    Some(Fault::DropMidBody) => {
                        let _ = client.write_all(h.as_bytes());
                        let _ = client.write_all(&body[..body.len() / 2]);
                        let _ = client.flush();
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    Some(Fault::CorruptByte) if !body.is_empty() => {
                        let mid = body.len() / 2;
                        body[mid] ^= 0x01;
                    }
                    Some(Fault::CorruptByteThenStall) => {
                        // gzip's method byte: a reader fails on its first bytes, while
                        // the digest can only be known at the end.
                        body[2] ^= 0x01;
                        let _ = client.write_all(h.as_bytes());
                        let _ = client.write_all(&body[..4096]);
                        let _ = client.flush();
                        std::thread::sleep(std::time::Duration::from_millis(1500));
                        let _ = client.write_all(&body[4096..]);
                        return;
                    }
                    _ => {}
                }
                let _ = client.write_all(h.as_bytes());
                let _ = client.write_all(&body);
            });
        }
    });
    (port, injected, ranged)
}

#[test]
fn recovers_from_a_dropped_connection_a_500_and_a_429() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &test_image().build(), "t");
    let reg = start_registry(dir.path(), None, None);
    push_layout(
        &lay,
        "t",
        &format!("127.0.0.1:{}/flaky/app:1", reg.port),
        &[],
    );
    let (port, injected, ranged) = start_proxy(
        reg.port,
        vec![Fault::Status500, Fault::Status429, Fault::DropMidBody],
        layout_layer_digests(&lay)[0].clone(),
    );
    let out = dir.path().join("out.tar");
    let o = run(
        &[
            "-q",
            &format!("127.0.0.1:{port}/flaky/app:1"),
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        injected.load(Ordering::SeqCst),
        3,
        "every fault was injected"
    );
    assert!(
        ranged.load(Ordering::SeqCst) >= 1,
        "the dropped download resumed with a Range request"
    );
    assert_eq!(fs::read(&out).unwrap(), layout_output(&lay));
}

/// Pulls the test image through a proxy that damages its big layer blob with `fault`, and
/// returns the error line and the directory the output was to go to.
fn pull_through_damage(dir: &Path, fault: Fault) -> (String, PathBuf) {
    let lay = oci_layout(dir, &test_image().build(), "t");
    let reg = start_registry(dir, None, None);
    push_layout(
        &lay,
        "t",
        &format!("127.0.0.1:{}/evil/app:1", reg.port),
        &[],
    );
    let (port, injected, _) =
        start_proxy(reg.port, vec![fault], layout_layer_digests(&lay)[0].clone());
    let outdir = dir.join("out");
    fs::create_dir(&outdir).unwrap();
    let err = flatten_err(&[
        &format!("127.0.0.1:{port}/evil/app:1"),
        "-o",
        outdir.join("app.tar.gz").to_str().unwrap(),
    ]);
    assert_eq!(injected.load(Ordering::SeqCst), 1);
    (err, outdir)
}

#[test]
fn refuses_a_corrupted_byte_and_leaves_no_output() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (err, outdir) = pull_through_damage(dir.path(), Fault::CorruptByte);
    assert!(err.contains("digest") && err.contains("sha256:"), "{err}");
    assert_eq!(
        fs::read_dir(&outdir).unwrap().count(),
        0,
        "no output, no temporary file"
    );
}

/// The index pass reads a registry blob as it arrives, so damage inside it can surface as a
/// broken gzip or tar stream before the download has the whole blob. The error must still
/// name the cause, the digest mismatch, not the symptom.
#[test]
fn a_corrupted_byte_met_mid_download_is_reported_as_the_digest_mismatch() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (err, outdir) = pull_through_damage(dir.path(), Fault::CorruptByteThenStall);
    assert!(err.contains("digest") && err.contains("sha256:"), "{err}");
    assert_eq!(fs::read_dir(&outdir).unwrap().count(), 0);
}

// ---------------------------------------------------------------- bearer tokens

fn b64url(data: &[u8]) -> String {
    let o = Command::new("sh")
        .args(["-c", "base64 -w0 | tr '+/' '-_' | tr -d '='"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    o.stdin.as_ref().unwrap().write_all(data).unwrap();
    let out = o.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// A JWT for `access`, signed RS256 with the issuer key, its certificate in `x5c`.
fn mint_token(key: &Path, cert_der_b64: &str, access: &serde_json::Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [cert_der_b64]});
    let claims = serde_json::json!({"iss": "test-issuer", "sub": "tester", "aud": "test-registry",
        "exp": now + 600, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", rand_suffix()), "access": access});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sign = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sign.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let sig = sign.wait_with_output().unwrap().stdout;
    format!("{input}.{}", b64url(&sig))
}

fn rand_suffix() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst) as u64
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token service: grants pull and push on `public/*` to anyone, and on everything to
/// `tester:TokPass` (basic auth). Counts the tokens it issues.
fn start_token_server(key: PathBuf, cert_der_b64: String) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if client.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let target = text.split_whitespace().nth(1).unwrap_or("").to_string();
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
            let good_creds = format!("Basic {}", {
                let o = Command::new("sh")
                    .args(["-c", "printf %s tester:TokPass | base64 -w0"])
                    .output()
                    .unwrap();
                String::from_utf8(o.stdout).unwrap()
            });
            let authorized = text.lines().any(|l| {
                l.trim() == format!("Authorization: {good_creds}")
                    || l.trim() == format!("authorization: {good_creds}")
            });
            let has_creds = text.to_ascii_lowercase().contains("\r\nauthorization:");
            if has_creds && !authorized {
                let _ = client.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let mut access = Vec::new();
            for pair in query.split('&') {
                let Some(("scope", v)) = pair.split_once('=') else {
                    continue;
                };
                let scope = url_decode(v);
                let parts: Vec<&str> = scope.split(':').collect();
                if parts.len() == 3
                    && parts[0] == "repository"
                    && (authorized || parts[1].starts_with("public/"))
                {
                    access.push(serde_json::json!({"type": "repository", "name": parts[1], "actions": ["pull", "push"]}));
                }
            }
            let token = mint_token(&key, &cert_der_b64, &serde_json::Value::Array(access));
            counter.fetch_add(1, Ordering::SeqCst);
            let body =
                serde_json::json!({"token": token, "access_token": token, "expires_in": 600})
                    .to_string();
            let _ = client.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
    });
    (port, issued)
}

#[test]
fn bearer_token_flow_anonymous_and_with_credentials() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("issuer.key");
    let cert = dir.path().join("issuer.crt");
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-issuer",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .unwrap()
        .stdout;
    let der_b64 = {
        let mut c = Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&der).unwrap();
        String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
    };
    let (token_port, issued) = start_token_server(key.clone(), der_b64);
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
        cert.display()
    );
    let lay = oci_layout(dir.path(), &test_image().build(), "t");
    let reg = start_registry_with(dir.path(), None, Some(auth));
    let public = format!("127.0.0.1:{}/public/app:1", reg.port);
    let private = format!("127.0.0.1:{}/private/app:1", reg.port);
    push_layout(&lay, "t", &public, &["--dest-creds", "tester:TokPass"]);
    push_layout(&lay, "t", &private, &["--dest-creds", "tester:TokPass"]);
    let expected = layout_output(&lay);

    let before = issued.load(Ordering::SeqCst);
    assert_eq!(flatten_ok(&["-q", &public]), expected, "anonymous token");
    let used = issued.load(Ordering::SeqCst) - before;
    assert!(
        (1..=2).contains(&used),
        "tokens are cached: {used} issued for one pull"
    );

    let err = flatten_err(&[&private]);
    assert!(
        err.contains("authentication") && err.contains("private/app"),
        "{err}"
    );
    let o = run(&["-q", "--creds", "tester:TokPass", &private], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
    let err = flatten_err(&["--creds", "tester:NotThePass", &private]);
    assert!(
        err.contains("authentication failed") && !err.contains("NotThePass"),
        "{err}"
    );
}

// ---------------------------------------------------------------- hostile registries

/// A server that answers every request with `respond(request_head)`, closing after each.
fn start_scripted(respond: impl Fn(&str, u16) -> String + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let respond = respond.clone();
            std::thread::spawn(move || {
                // Plain HTTP only: the TLS probe gets no answer.
                let Some(head) = read_request_head(&mut client) else {
                    return;
                };
                let answer = respond(&head, port);
                let _ = client.write_all(answer.as_bytes());
            });
        }
    });
    port
}

fn http(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_registry_that_answers_401_forever_ends_in_a_clear_error() {
    let start = Instant::now();
    let port = start_scripted(|head, port| {
        if head.starts_with("GET /token") {
            http(
                "200 OK",
                "Content-Type: application/json\r\n",
                r#"{"token":"tok-that-never-works"}"#,
            )
        } else {
            http(
                "401 Unauthorized",
                &format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"s\"\r\n"),
                "",
            )
        }
    });
    let err = flatten_err(&[&format!("127.0.0.1:{port}/loop/app:1")]);
    assert!(
        err.contains("authentication failed") && err.contains("loop/app"),
        "{err}"
    );
    assert!(
        !err.contains("tok-that-never-works"),
        "the token leaked: {err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "bounded, not an endless loop"
    );
}

#[test]
fn redirect_loops_html_manifests_and_unknown_types_are_refused() {
    let port = start_scripted(|head, port| {
        if head.contains("/redirect/") {
            http(
                "302 Found",
                &format!("Location: http://127.0.0.1:{port}/v2/redirect/app/manifests/1\r\n"),
                "",
            )
        } else if head.contains("/html/") {
            http(
                "200 OK",
                "Content-Type: text/html\r\n",
                "<html><body>Sign in</body></html>",
            )
        } else if head.contains("/weird/") {
            http(
                "200 OK",
                "Content-Type: application/x-weird\r\n",
                r#"{"schemaVersion":2,"mediaType":"application/x-weird"}"#,
            )
        } else {
            http("200 OK", "", "{}")
        }
    });
    let err = flatten_err(&[&format!("127.0.0.1:{port}/redirect/app:1")]);
    assert!(err.to_lowercase().contains("redirect"), "{err}");
    let err = flatten_err(&[&format!("127.0.0.1:{port}/html/app:1")]);
    assert!(err.contains("HTML"), "{err}");
    let err = flatten_err(&[&format!("127.0.0.1:{port}/weird/app:1")]);
    assert!(err.contains("application/x-weird"), "{err}");
}
