//! What a registry (or a host it redirects to) must not be able to do: smuggle bytes past
//! the digest checks through an interrupted download, collect credentials it was never
//! meant to get, be reached through a proxy when it is on loopback, stall a run forever,
//! or write to the user's terminal. Each test runs the binary against fake registries: small
//! std-only HTTP servers on 127.0.0.1 that misbehave in one precise way.

mod common;
use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ a fake HTTP server

#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: HashMap<String, String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

type Handler = dyn Fn(&Request, &mut TcpStream) + Send + Sync;

/// A server on 127.0.0.1 that hands every request to `handler` (which writes the whole
/// response) and closes the connection; it keeps every request it saw.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(handler: impl Fn(&Request, &mut TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let handler = handler.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    if let Some(req) = read_request(&mut stream) {
                        log.lock().unwrap().push(req.clone());
                        handler(&req, &mut stream);
                    }
                });
            }
        });
        Server { port, seen }
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace().skip(1);
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request { path, headers })
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// Headers that promise `total` bytes, then only `part` of them before the connection
/// closes: a download cut in the middle.
fn respond_cut(stream: &mut TcpStream, total: usize, part: &[u8]) {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(part);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

// ------------------------------------------------------------------ a served image

const REPO: &str = "test/img";

/// An image as a registry serves it: the manifest and the blobs by digest.
#[derive(Clone)]
struct Served {
    manifest: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
}

/// An image whose manifest lists `layer_blobs` (uncompressed tars) and whose config lists
/// `diff_ids`.
fn served(layer_blobs: &[&[u8]], diff_ids: &[String]) -> Served {
    served_with_env(layer_blobs, diff_ids, &["PATH=/bin"])
}

fn served_with_env(layer_blobs: &[&[u8]], diff_ids: &[String], env: &[&str]) -> Served {
    let config = serde_json::to_vec(&json!({
        "architecture": host_platform().arch,
        "os": "linux",
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut blobs = HashMap::new();
    blobs.insert(sha256_digest(&config), config.clone());
    let layers: Vec<_> = layer_blobs
        .iter()
        .map(|b| {
            blobs.insert(sha256_digest(b), b.to_vec());
            json!({"mediaType": OCI_LAYER_TAR, "digest": sha256_digest(b), "size": b.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    Served { manifest, blobs }
}

/// A one-layer image that holds `content` as /run.sh.
fn one_layer(content: &[u8]) -> (Served, Vec<u8>) {
    let tar = layer(vec![file("run.sh", content)]).tar();
    (served(&[&tar], &[sha256_digest(&tar)]), tar)
}

/// Answers manifest and blob requests from `image` (ranges included); anything else 404.
fn serve_image(image: &Served, req: &Request, stream: &mut TcpStream) {
    if req.path == "/v2/" {
        return respond(stream, "200 OK", &[], b"{}");
    }
    if req.path.starts_with(&format!("/v2/{REPO}/manifests/")) {
        return respond(
            stream,
            "200 OK",
            &[
                ("Content-Type", OCI_MANIFEST.to_string()),
                ("Docker-Content-Digest", sha256_digest(&image.manifest)),
            ],
            &image.manifest,
        );
    }
    if let Some(digest) = req.path.strip_prefix(&format!("/v2/{REPO}/blobs/")) {
        if let Some(bytes) = image.blobs.get(digest) {
            let from = range_start(req);
            if from > 0 {
                return respond(
                    stream,
                    "206 Partial Content",
                    &[(
                        "Content-Range",
                        format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len()),
                    )],
                    &bytes[from..],
                );
            }
            return respond(stream, "200 OK", &[], bytes);
        }
    }
    respond(
        stream,
        "404 Not Found",
        &[],
        br#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#,
    );
}

fn range_start(req: &Request) -> usize {
    req.header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .unwrap_or(0)
}

fn is_blob(req: &Request, digest: &str) -> bool {
    req.path == format!("/v2/{REPO}/blobs/{digest}")
}

// ------------------------------------------------------------------ running the binary

struct Outcome {
    code: i32,
    stderr: String,
    output: Option<Vec<u8>>,
}

/// Runs `oci2wsl --no-wsl-config -q IMAGE -o DIR/out.tar ARGS` with no credentials or
/// proxies from this machine's environment, `envs` added, and `stdin` fed.
fn pull(dir: &Path, image: &str, args: &[&str], envs: &[(&str, &str)], stdin: &[u8]) -> Outcome {
    pull_as(&["--no-wsl-config", "-q"], dir, image, args, envs, stdin)
}

/// `pull` with `base` instead of `--no-wsl-config -q`.
fn pull_as(
    base: &[&str],
    dir: &Path,
    image: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: &[u8],
) -> Outcome {
    let out = dir.join("out.tar");
    let _ = std::fs::remove_file(&out);
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oci2wsl"));
    cmd.args(base)
        .args([image, "-o"])
        .arg(&out)
        .args(args)
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("NO_COLOR", "1")
        // Each case starts from nothing, as if no earlier pull had happened (tests/cache.rs
        // tests the layer cache).
        .env("OCI2WSL_NO_CACHE", "1");
    for var in [
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "OCI2WSL_STALL_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin).unwrap_or(());
    drop(pipe);
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // A hang is a failure, not a slow test.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stderr: reader.join().unwrap(),
        output: std::fs::read(&out).ok(),
    }
}

fn reference(port: u16) -> String {
    format!("127.0.0.1:{port}/{REPO}:latest")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A script of `len` bytes that says `word` near its start.
fn script(word: &str, len: usize) -> Vec<u8> {
    let mut s = format!("#!/bin/sh\necho {word}\n").into_bytes();
    s.resize(len, b'#');
    s
}

fn assert_refused(o: &Outcome, words: &[&str]) {
    assert_ne!(o.code, 0, "the run should fail; stderr: {}", o.stderr);
    assert!(o.output.is_none(), "a failed run left an output file");
    for w in words {
        assert!(o.stderr.contains(w), "stderr lacks {w:?}: {}", o.stderr);
    }
}

// ------------------------------------------------------------------ integrity across resumes

/// Where attempt 1 is cut: inside the file's content, after the byte the tests change.
const CUT: usize = 4616;

/// How a fake registry answers the resume (`Range: bytes=CUT-`) of a cut download.
#[derive(Clone, Copy)]
enum Resume {
    /// `200` and the whole blob (the range ignored).
    Whole,
    /// `206` with `Content-Range: bytes 0-…`: the whole blob, labelled as such.
    FromZero,
    /// `206` from 100 bytes past the cut (a gap); a later request without a range gets `200`.
    Gap,
    /// `206` from the cut, correctly.
    Exact,
}

/// Serves `image`, except that the first request for `digest` is cut at `CUT` after sending
/// `first`'s bytes, and resumes are answered as `how` with `second`'s bytes.
fn cut_and_resume(
    image: Served,
    digest: String,
    first: Vec<u8>,
    second: Vec<u8>,
    how: Resume,
) -> Server {
    let blob_requests = Arc::new(Mutex::new(0));
    Server::start(move |req, stream| {
        if !is_blob(req, &digest) {
            return serve_image(&image, req, stream);
        }
        let n = {
            let mut n = blob_requests.lock().unwrap();
            *n += 1;
            *n
        };
        let len = second.len();
        if n == 1 {
            return respond_cut(stream, first.len(), &first[..CUT]);
        }
        let from = range_start(req);
        match how {
            Resume::Whole => respond(stream, "200 OK", &[], &second),
            Resume::FromZero => respond(
                stream,
                "206 Partial Content",
                &[("Content-Range", format!("bytes 0-{}/{len}", len - 1))],
                &second,
            ),
            Resume::Gap if from > 0 => respond(
                stream,
                "206 Partial Content",
                &[(
                    "Content-Range",
                    format!("bytes {}-{}/{len}", from + 100, len - 1),
                )],
                &second[from + 100..],
            ),
            Resume::Gap => respond(stream, "200 OK", &[], &second),
            Resume::Exact => respond(
                stream,
                "206 Partial Content",
                &[("Content-Range", format!("bytes {from}-{}/{len}", len - 1))],
                &second[from..],
            ),
        }
    })
}

/// The issue's setup: the config's diff_id is that of T1 (`echo GOOD`), the manifest's
/// layer digest that of T2 (`echo EVIL`, same length). Attempt 1 sends T1 up to the cut.
fn good_and_evil(evil_at_end: bool) -> (Served, String, Vec<u8>, Vec<u8>) {
    let mut good = script("GOOD", 8000);
    let mut evil = good.clone();
    if evil_at_end {
        // After the cut: the tar header is 512 bytes, the cut is at 4616.
        let at = 6000;
        good[at..at + 4].copy_from_slice(b"GOOD");
        evil[at..at + 4].copy_from_slice(b"EVIL");
    } else {
        evil[..20].copy_from_slice(&script("EVIL", 20));
    }
    let t1 = layer(vec![file("run.sh", &good)]).tar();
    let t2 = layer(vec![file("run.sh", &evil)]).tar();
    assert_eq!(t1.len(), t2.len());
    assert!(t1.len() > CUT + 200);
    assert_eq!(t1[..CUT] == t2[..CUT], evil_at_end);
    let image = served(&[&t2], &[sha256_digest(&t1)]);
    (image, sha256_digest(&t2), t1, t2)
}

#[test]
fn resume_answered_200_with_other_bytes_before_the_cut_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (image, digest, t1, t2) = good_and_evil(false);
    let server = cut_and_resume(image, digest, t1, t2, Resume::Whole);
    let o = pull(dir.path(), &reference(server.port), &[], &[], b"");
    assert_refused(&o, &["differently"]);
}

#[test]
fn resume_answered_206_from_zero_with_other_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (image, digest, t1, t2) = good_and_evil(false);
    let server = cut_and_resume(image, digest, t1, t2, Resume::FromZero);
    let o = pull(dir.path(), &reference(server.port), &[], &[], b"");
    assert_refused(&o, &["differently"]);
}

#[test]
fn bytes_differing_after_the_cut_are_caught_by_the_diff_id_whatever_the_answer() {
    for how in [Resume::Whole, Resume::FromZero, Resume::Exact, Resume::Gap] {
        let dir = tempfile::tempdir().unwrap();
        let (image, digest, t1, t2) = good_and_evil(true);
        let server = cut_and_resume(image, digest, t1, t2, how);
        let o = pull(dir.path(), &reference(server.port), &[], &[], b"");
        assert_refused(&o, &["diff_id"]);
    }
}

#[test]
fn a_resume_that_resends_the_same_bytes_completes_the_same_blob() {
    for how in [Resume::Whole, Resume::FromZero, Resume::Gap, Resume::Exact] {
        let dir = tempfile::tempdir().unwrap();
        let content = script("GOOD", 8000);
        let (image, tar) = one_layer(&content);
        let server = cut_and_resume(image, sha256_digest(&tar), tar.clone(), tar, how);
        let o = pull(dir.path(), &reference(server.port), &[], &[], b"");
        assert_eq!(o.code, 0, "{}", o.stderr);
        let out = o.output.unwrap();
        assert!(
            contains(&out, &content),
            "the output lacks the layer's file"
        );
    }
}

// ------------------------------------------------------------------ bounded work

#[test]
fn a_layer_listed_many_times_is_downloaded_once() {
    let dir = tempfile::tempdir().unwrap();
    let tar = layer(vec![file("a", "same layer")]).tar();
    let diff_id = sha256_digest(&tar);
    let image = served(&[tar.as_slice(); 5], &vec![diff_id; 5]);
    let digest = sha256_digest(&tar);
    let server = Server::start(move |req, stream| serve_image(&image, req, stream));
    let o = pull(dir.path(), &reference(server.port), &[], &[], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let fetches = server
        .requests()
        .iter()
        .filter(|r| is_blob(r, &digest))
        .count();
    assert_eq!(
        fetches, 1,
        "the blob listed 5 times was fetched {fetches} times"
    );
}

#[test]
fn a_trickling_download_is_abandoned_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let content = script("GOOD", 40_000);
    let (image, tar) = one_layer(&content);
    let digest = sha256_digest(&tar);
    let abandoned = Arc::new(Mutex::new(None));
    let seen = abandoned.clone();
    let first = Arc::new(Mutex::new(true));
    let server = Server::start(move |req, stream| {
        let trickle =
            is_blob(req, &digest) && std::mem::replace(&mut *first.lock().unwrap(), false);
        if !trickle {
            return serve_image(&image, req, stream);
        }
        // One byte every 50 ms for up to 30 s: never idle long enough for a per-read
        // timeout, far too slow to be a download.
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", tar.len());
        let _ = stream.write_all(head.as_bytes());
        for (i, byte) in tar.iter().take(600).enumerate() {
            if stream
                .write_all(&[*byte])
                .and_then(|_| stream.flush())
                .is_err()
            {
                *seen.lock().unwrap() = Some(true);
                return;
            }
            if i == 599 {
                *seen.lock().unwrap() = Some(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let o = pull(
        dir.path(),
        &reference(server.port),
        &[],
        &[("OCI2WSL_STALL_TIMEOUT", "2")],
        b"",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(contains(&o.output.unwrap(), &content));
    // The server learns of the abandon at its next write to the closed connection.
    let deadline = Instant::now() + Duration::from_secs(40);
    while abandoned.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        *abandoned.lock().unwrap(),
        Some(true),
        "the trickling connection was waited out instead of abandoned"
    );
}

// ------------------------------------------------------------------ credentials

/// A registry that wants basic auth alice:s3cret for everything and serves `image`.
fn basic_auth_registry(image: Served, redirect_blobs_to: Option<String>) -> Server {
    Server::start(move |req, stream| {
        let expected = format!("Basic {}", base64_encode(b"alice:s3cret"));
        if req.header("authorization") != Some(expected.as_str()) {
            return respond(
                stream,
                "401 Unauthorized",
                &[("WWW-Authenticate", r#"Basic realm="test""#.to_string())],
                b"",
            );
        }
        if let (Some(target), true) = (&redirect_blobs_to, req.path.contains("/blobs/")) {
            let (_, digest) = req.path.rsplit_once('/').unwrap();
            let is_config = serde_json::from_slice::<serde_json::Value>(&image.manifest).unwrap()
                ["config"]["digest"]
                == digest;
            if !is_config {
                return respond(
                    stream,
                    "307 Temporary Redirect",
                    &[("Location", format!("{target}/cdn/{digest}"))],
                    b"",
                );
            }
        }
        serve_image(&image, req, stream)
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_redirect_targets_challenge_gets_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = one_layer(b"echo hi\n");
    // The thief's token endpoint: it must never be asked.
    let thief = Server::start(|_, stream| respond(stream, "200 OK", &[], br#"{"token":"stolen"}"#));
    let realm = format!("http://127.0.0.1:{}/steal", thief.port);
    let cdn = Server::start(move |_, stream| {
        respond(
            stream,
            "401 Unauthorized",
            &[(
                "WWW-Authenticate",
                format!(r#"Bearer realm="{realm}",service="cdn""#),
            )],
            b"",
        )
    });
    let registry = basic_auth_registry(image, Some(format!("http://localhost:{}", cdn.port)));
    let o = pull(
        dir.path(),
        &reference(registry.port),
        &["--creds", "alice:s3cret"],
        &[],
        b"",
    );
    assert_refused(&o, &["redirected", "credentials go only to the registry"]);
    assert!(!cdn.requests().is_empty(), "the redirect was not followed");
    for r in cdn.requests() {
        assert_eq!(r.header("authorization"), None, "the CDN got credentials");
    }
    assert!(
        thief.requests().is_empty(),
        "the redirect target's realm was asked for a token: {:?}",
        thief.requests()
    );
}

#[test]
fn password_on_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = one_layer(b"echo hi\n");
    let registry = basic_auth_registry(image, None);
    let o = pull(
        dir.path(),
        &reference(registry.port),
        &["--creds", "alice", "--password-stdin"],
        &[],
        b"s3cret\n",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = pull(
        dir.path(),
        &reference(registry.port),
        &["--creds", "alice"],
        &[],
        b"",
    );
    assert_refused(&o, &["--password-stdin"]);
}

#[test]
fn a_loopback_registry_is_never_reached_through_a_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = one_layer(b"echo hi\n");
    let registry = Server::start(move |req, stream| serve_image(&image, req, stream));
    let proxy = Server::start(|_, stream| respond(stream, "502 Bad Gateway", &[], b""));
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let envs = [
        ("HTTP_PROXY", url.as_str()),
        ("HTTPS_PROXY", url.as_str()),
        ("ALL_PROXY", url.as_str()),
    ];
    let o = pull(dir.path(), &reference(registry.port), &[], &envs, b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        proxy.requests().is_empty(),
        "the proxy saw {:?}",
        proxy.requests()
    );
    // localhost too, by name.
    let o = pull(
        dir.path(),
        &format!("localhost:{}/{REPO}:latest", registry.port),
        &[],
        &envs,
        b"",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(proxy.requests().is_empty());
}

#[test]
fn a_malformed_docker_config_does_not_stop_an_anonymous_pull() {
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = one_layer(b"echo hi\n");
    let registry = Server::start(move |req, stream| serve_image(&image, req, stream));
    let docker = dir.path().join("home/docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), b"{\"auths\": {oops").unwrap();
    let o = pull(dir.path(), &reference(registry.port), &[], &[], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("config.json"),
        "{}",
        o.stderr
    );
}

#[test]
fn an_oversized_auth_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = one_layer(b"echo hi\n");
    let registry = Server::start(move |req, stream| serve_image(&image, req, stream));
    let mut big = b"{\"auths\": {}}".to_vec();
    big.resize(5 << 20, b' ');
    let file = dir.path().join("auth.json");
    std::fs::write(&file, &big).unwrap();
    let o = pull(
        dir.path(),
        &reference(registry.port),
        &["--authfile", file.to_str().unwrap()],
        &[],
        b"",
    );
    assert_refused(&o, &["auth.json", "too large"]);
}

// ------------------------------------------------------------------ the terminal

#[test]
fn terminal_escapes_in_a_registry_message_are_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Server::start(|_, stream| {
        respond(
            stream,
            "404 Not Found",
            &[("Content-Type", "application/json".to_string())],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone\u001b]0;owned\u0007\u001b[2J\rstill here"}]}"#,
        )
    });
    let o = pull(dir.path(), &reference(registry.port), &[], &[], b"");
    assert_refused(&o, &["MANIFEST_UNKNOWN", "\\x1b"]);
    assert!(
        !o.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal: {:?}",
        o.stderr
    );
}

#[test]
fn terminal_escapes_in_an_image_env_name_are_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let tar = layer(vec![file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")]).tar();
    let image = served_with_env(
        &[&tar],
        &[sha256_digest(&tar)],
        &["PATH=/bin", "EVIL\u{1b}]0;owned\u{7}\r=1"],
    );
    let registry = Server::start(move |req, stream| serve_image(&image, req, stream));
    let o = pull_as(&[], dir.path(), &reference(registry.port), &[], &[], b"");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("EVIL\\x1b]0;owned"), "{}", o.stderr);
    assert!(
        !o.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal: {:?}",
        o.stderr
    );
}
