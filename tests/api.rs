//! The library as another program embeds it: `oci2wsl::run` with an observer, failures told
//! apart by their stable kind, and cancellation from the caller.

use oci2wsl::{run, Cancel, Destination, ErrorKind, Event, Observer, Options, Phase};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/example");

fn file(path: &Path) -> Destination {
    Destination::File {
        path: path.to_path_buf(),
        force: false,
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Records every event.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Observer for Recorder {
    fn event(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[test]
fn a_run_writes_the_image_and_reports_through_the_observer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("example.tar");
    let recorder = Arc::new(Recorder::default());
    let summary = run(
        &Options::new(format!("oci:{EXAMPLE}:latest"), file(&out)),
        recorder.clone(),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        summary.bytes_out,
        "the summary counts what was written"
    );
    let events = recorder.0.lock().unwrap();
    assert!(
        matches!(events.first(), Some(Event::Resolved(_))),
        "{events:?}"
    );
    let indexed = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::LayerDone {
                    phase: Phase::Index,
                    ..
                }
            )
        })
        .count();
    assert_eq!(indexed, summary.stats.layers);
}

#[test]
fn a_tag_the_layout_lacks_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(
        format!("oci:{EXAMPLE}:nope"),
        file(&dir.path().join("x.tar")),
    );
    let e = run(&opts, oci2wsl::events::silent()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_malformed_reference_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new("oci:", file(&dir.path().join("x.tar")));
    let e = run(&opts, oci2wsl::events::silent()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
    assert_eq!(e.code(), "usage");
}

#[test]
fn an_output_directory_that_does_not_exist_is_an_output_error() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(
        format!("oci:{EXAMPLE}:latest"),
        file(&dir.path().join("missing/x.tar")),
    );
    let e = run(&opts, oci2wsl::events::silent()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Output, "{e}");
}

/// A copy of the example layout whose first layer blob has one byte more than its
/// descriptor says.
fn layout_with_a_longer_layer(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for name in ["index.json", "oci-layout"] {
        std::fs::copy(Path::new(EXAMPLE).join(name), layout.join(name)).unwrap();
    }
    for blob in entries(&Path::new(EXAMPLE).join("blobs/sha256")) {
        std::fs::copy(
            &blob,
            layout.join("blobs/sha256").join(blob.file_name().unwrap()),
        )
        .unwrap();
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &serde_json::Value| {
        let digest = digest.as_str().unwrap();
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&index["manifests"][0]["digest"])).unwrap())
            .unwrap();
    let layer = blob(&manifest["layers"][0]["digest"]);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes.push(0);
    std::fs::write(&layer, bytes).unwrap();
    layout
}

#[test]
fn a_blob_longer_than_its_descriptor_is_an_integrity_error() {
    let dir = tempfile::tempdir().unwrap();
    let layout = layout_with_a_longer_layer(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let opts = Options::new(
        format!("oci:{}:latest", layout.display()),
        file(&out_dir.join("x.tar.gz")),
    );
    let e = run(&opts, oci2wsl::events::silent()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(entries(&out_dir).is_empty(), "no output, no temporary file");
}

/// Cancels the run when the first layer is indexed: the index pass is then over or nearly,
/// and the output's temporary file exists.
struct CancelAfterFirstLayer(Cancel);

impl Observer for CancelAfterFirstLayer {
    fn event(&self, event: &Event) {
        if let Event::LayerDone {
            phase: Phase::Index,
            ..
        } = event
        {
            self.0.cancel();
        }
    }
}

#[test]
fn a_cancelled_run_is_interrupted_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tar.zst");
    std::fs::write(&out, b"yesterday's").unwrap();
    let mut opts = Options::new(format!("oci:{EXAMPLE}:latest"), file(&out));
    if let Destination::File { force, .. } = &mut opts.destination {
        *force = true;
    }
    let observer = Arc::new(CancelAfterFirstLayer(opts.cancel.clone()));
    let e = run(&opts, observer).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    assert_eq!(
        entries(dir.path()),
        vec![out.clone()],
        "the temporary file is gone"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"yesterday's");
}

#[test]
fn a_token_cancelled_before_the_run_stops_it_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(
        format!("oci:{EXAMPLE}:latest"),
        file(&dir.path().join("x.tar")),
    );
    opts.cancel.cancel();
    let recorder = Arc::new(Recorder::default());
    let e = run(&opts, recorder.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    assert!(recorder.0.lock().unwrap().is_empty());
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_platform_the_image_is_not_for_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(
        format!("oci:{EXAMPLE}:latest"),
        file(&dir.path().join("x.tar")),
    );
    opts.platform = oci2wsl::PlatformChoice {
        platform: oci2wsl::Platform::parse("linux/s390x").unwrap(),
        explicit: true,
    };
    let e = run(&opts, oci2wsl::events::silent()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("linux/s390x"), "{e}");
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in read {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Reads one HTTP request head: the method and the path, or `None` for what is not HTTP
/// (the client's first attempt on loopback is a TLS handshake).
fn request_line(conn: &std::net::TcpStream) -> Option<(String, String)> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(conn);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut words = first.split(' ');
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    if !matches!(method.as_str(), "GET" | "HEAD") {
        return None;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            return Some((method, path));
        }
    }
}

/// Cancels the run at the first retry it announces, and keeps the events.
struct CancelAtFirstRetry {
    cancel: Cancel,
    events: Mutex<Vec<Event>>,
}

impl Observer for CancelAtFirstRetry {
    fn event(&self, event: &Event) {
        if matches!(event, Event::Retry { .. }) {
            self.cancel.cancel();
        }
        self.events.lock().unwrap().push(event.clone());
    }
}

#[test]
fn a_cancel_during_a_retry_wait_ends_the_run_before_the_retry() {
    use std::io::Write;
    // A registry on loopback that serves the example image's manifest and config but
    // answers every layer blob with 503 and a ten-second Retry-After.
    let blob = |digest: &str| {
        std::fs::read(
            Path::new(EXAMPLE)
                .join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(EXAMPLE).join("index.json")).unwrap())
            .unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = blob(&manifest_digest);
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config_digest = parsed["config"]["digest"].as_str().unwrap().to_string();
    let config = blob(&config_digest);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let requests = requests.clone();
        let (manifest_digest, config_digest) = (manifest_digest.clone(), config_digest.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (requests, manifest, config) =
                    (requests.clone(), manifest.clone(), config.clone());
                let (manifest_digest, config_digest) =
                    (manifest_digest.clone(), config_digest.clone());
                std::thread::spawn(move || {
                    let Some((method, path)) = request_line(&conn) else {
                        return;
                    };
                    requests.lock().unwrap().push(path.clone());
                    let (status, headers, body): (&str, String, &[u8]) = if path
                        == "/v2/app/manifests/latest"
                        || path == format!("/v2/app/manifests/{manifest_digest}")
                    {
                        let headers = format!(
                                "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {manifest_digest}\r\n"
                            );
                        ("200 OK", headers, &manifest)
                    } else if path == format!("/v2/app/blobs/{config_digest}") {
                        ("200 OK", String::new(), &config)
                    } else if path.starts_with("/v2/app/blobs/") {
                        ("503 Service Unavailable", "Retry-After: 10\r\n".into(), b"")
                    } else {
                        ("404 Not Found", String::new(), b"")
                    };
                    let mut conn = conn;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    if method == "GET" {
                        let _ = conn.write_all(body);
                    }
                });
            }
        });
    }

    let dir = tempfile::tempdir().unwrap();
    let (out_dir, cache_dir) = (dir.path().join("out"), dir.path().join("cache"));
    std::fs::create_dir(&out_dir).unwrap();
    let mut opts = Options::new(
        format!("127.0.0.1:{port}/app:latest"),
        file(&out_dir.join("app.tar.gz")),
    );
    opts.registry.cache.dir = Some(cache_dir.clone());
    opts.registry.cache.max_size = 1 << 30;
    let observer = Arc::new(CancelAtFirstRetry {
        cancel: opts.cancel.clone(),
        events: Mutex::default(),
    });
    let e = run(&opts, observer.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");

    let events = observer.events.lock().unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Retry { .. })),
        "the run was cancelled at a retry: {events:?}"
    );
    // Each layer blob was asked for once: no wait ran out and no retry was sent, although
    // the run waits for its download threads before it returns.
    let requests = requests.lock().unwrap();
    let blobs: Vec<&String> = requests
        .iter()
        .filter(|p| p.starts_with("/v2/app/blobs/") && !p.ends_with(&config_digest))
        .collect();
    let mut distinct = blobs.clone();
    distinct.sort();
    distinct.dedup();
    assert!(!blobs.is_empty(), "{requests:?}");
    assert_eq!(
        blobs.len(),
        distinct.len(),
        "a blob was asked for again: {requests:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Retry { attempt, .. } if *attempt > 1)),
        "{events:?}"
    );
    // The downloads' spools in the cache and the output's temporary file are gone.
    assert!(entries(&out_dir).is_empty(), "{:?}", entries(&out_dir));
    let left: Vec<PathBuf> = files_under(&cache_dir.join("tmp"));
    assert!(
        left.is_empty(),
        "temporary files left in the cache: {left:?}"
    );
}

/// The example image as `docker save` (Docker 25+) writes it: the OCI layout plus a
/// `manifest.json` that tags it `app:1`.
fn example_as_docker_save() -> Vec<u8> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(EXAMPLE).join("index.json")).unwrap())
            .unwrap();
    let manifest_path = format!(
        "blobs/sha256/{}",
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(EXAMPLE).join(&manifest_path)).unwrap())
            .unwrap();
    let path_of = |d: &serde_json::Value| {
        format!(
            "blobs/sha256/{}",
            d["digest"]
                .as_str()
                .unwrap()
                .strip_prefix("sha256:")
                .unwrap()
        )
    };
    let save = serde_json::json!([{
        "Config": path_of(&manifest["config"]),
        "RepoTags": ["app:1"],
        "Layers": manifest["layers"].as_array().unwrap().iter().map(path_of).collect::<Vec<_>>(),
    }]);
    let mut archive = tar::Builder::new(Vec::new());
    archive.append_dir_all(".", EXAMPLE).unwrap();
    let save = serde_json::to_vec(&save).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_size(save.len() as u64);
    header.set_mode(0o644);
    archive
        .append_data(&mut header, "manifest.json", &save[..])
        .unwrap();
    archive.into_inner().unwrap()
}

/// A one-request engine on loopback, named by `DOCKER_HOST`, that sends `export` in two
/// halves and cancels `cancel` (if given) between them. Yields the path it was asked for.
fn engine_on_loopback(export: Vec<u8>, cancel: Option<Cancel>) -> std::thread::JoinHandle<String> {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // The only test here that reads DOCKER_HOST is the one that sets it.
    std::env::set_var(
        "DOCKER_HOST",
        format!("tcp://{}", listener.local_addr().unwrap()),
    );
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (_, path) = request_line(&conn).unwrap();
        let mut conn = conn;
        let (first, rest) = export.split_at(export.len() / 2);
        write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
            export.len()
        )
        .unwrap();
        conn.write_all(first).unwrap();
        conn.flush().unwrap();
        if let Some(cancel) = cancel {
            cancel.cancel();
        }
        // A cancelled run may have dropped the connection already.
        let _ = conn.write_all(rest);
        path
    })
}

#[test]
fn a_cancel_during_a_docker_daemon_export_drops_it() {
    let export = example_as_docker_save();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.tar");

    // Whole, the export is a good image.
    let engine = engine_on_loopback(export.clone(), None);
    run(
        &Options::new("docker-daemon:app:1", file(&out)),
        oci2wsl::events::silent(),
    )
    .unwrap();
    assert_eq!(engine.join().unwrap(), "/images/app:1/get");
    std::fs::remove_file(&out).unwrap();

    // Cancelled halfway, the run ends interrupted and leaves nothing.
    let opts = Options::new("docker-daemon:app:1", file(&out));
    let engine = engine_on_loopback(export, Some(opts.cancel.clone()));
    let e = run(&opts, oci2wsl::events::silent()).unwrap_err();
    assert_eq!(engine.join().unwrap(), "/images/app:1/get");
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}
