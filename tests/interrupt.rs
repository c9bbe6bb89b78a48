//! Ctrl-C (SIGINT) and SIGTERM in the middle of a run leave the output directory as it was:
//! no partial file, an existing target untouched, exit status 130.
//!
//! The run is held mid-way by a layer blob that is a FIFO nobody writes to: oci2wsl has
//! created its temporary output and blocks opening the layer, and the test signals it there.
#![cfg(unix)]

use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sha256(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

fn write_blob(layout: &Path, data: &[u8]) -> String {
    let hex = sha256(data);
    fs::write(layout.join("blobs/sha256").join(&hex), data).unwrap();
    hex
}

/// An OCI layout whose only layer blob is a FIFO.
fn stalled_layout(layout: &Path) {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer_hex = "ab".repeat(32);
    let status = Command::new("mkfifo")
        .arg(layout.join("blobs/sha256").join(&layer_hex))
        .status()
        .unwrap();
    assert!(status.success());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        "cd".repeat(32)
    );
    let config_hex = write_blob(layout, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_hex}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_hex}","size":1024}}]}}"#,
        config.len()
    );
    let manifest_hex = write_blob(layout, manifest.as_bytes());
    fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_hex}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"t"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();
}

fn interrupt_with(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    stalled_layout(&layout);
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("good.tar.gz");
    fs::write(&target, b"a good tarball from yesterday").unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .arg(format!("oci:{}:t", layout.display()))
        .arg("-o")
        .arg(&target)
        .arg("--force")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until the temporary output exists: the run is then as far as it will get.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries = fs::read_dir(&out_dir).unwrap().count();
        if entries == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "oci2wsl never created its temporary output"
        );
        assert!(child.try_wait().unwrap().is_none(), "oci2wsl exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "stderr: {stderr}");
    assert!(stderr.contains("interrupted"), "stderr: {stderr}");
    let left: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("good.tar.gz")]);
    assert_eq!(fs::read(&target).unwrap(), b"a good tarball from yesterday");
}

#[test]
fn sigint_leaves_no_partial_output_and_keeps_the_target() {
    interrupt_with("-INT");
}

#[test]
fn sigterm_leaves_no_partial_output_and_keeps_the_target() {
    interrupt_with("-TERM");
}
