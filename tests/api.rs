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
