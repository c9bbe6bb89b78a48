//! What `-o PATH` may do to the file system (issue 12, "Local files"): a character device
//! or FIFO is written through and stays what it was; a block device, socket or dangling
//! symlink is refused before the image is read; a run killed with SIGKILL leaves a
//! temporary file that names its owner, and a later run to the same target removes it once
//! that owner is gone. docs/security.md names these tests.
#![cfg(target_os = "linux")]

mod common;
use common::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn small_src(tmp: &Path) -> String {
    let img = image(vec![layer(vec![
        dir("etc"),
        file("etc/hostname", "host\n"),
    ])])
    .build();
    oci_dir(tmp, &img, "t")
}

/// A source that does not exist: a run that reports the output instead of this checked
/// the output first.
fn missing_src(tmp: &Path) -> String {
    format!("oci:{}:t", tmp.join("no-such-layout").display())
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {:?}", out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn partials(dir: &Path) -> Vec<String> {
    dir_names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

/// Issue 12: `-o /dev/null --force` as root replaced /dev/null with a regular file. A
/// private device node with /dev/null's numbers stands in for the real one, so that this
/// test cannot damage the machine on a build that still has the bug.
#[test]
fn char_device_is_written_through_not_replaced() {
    if !require_root_and_tools(&["mknod"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = small_src(tmp.path());
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let null = out.join("null");
    run_ok(&["mknod", null.to_str().unwrap(), "c", "1", "3"]);
    for force in [false, true] {
        let mut args = vec![src.as_str(), "-o", null.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        oci2wsl(&args).assert_ok();
        let meta = fs::symlink_metadata(&null).unwrap();
        assert!(
            meta.file_type().is_char_device(),
            "--force {force}: {meta:?}"
        );
        assert_eq!(meta.rdev(), fs::metadata("/dev/null").unwrap().rdev());
        assert_eq!(dir_names(&out), vec!["null"], "--force {force}");
    }
}

/// O_NONBLOCK, so that opening a FIFO for writing fails instead of waiting when nobody
/// reads it (Linux's value; the tests need no libc crate for one constant).
fn libc_o_nonblock() -> i32 {
    0o4000
}

/// Reads everything from the FIFO at `path` on another thread.
fn drain_fifo(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        fs::File::open(path)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    })
}

/// A FIFO, given directly or through a symlink (as `/dev/stdout` is one), gets the same
/// tar as standard output would, and stays a FIFO.
#[test]
fn fifo_is_written_through_directly_and_through_a_symlink() {
    if !require_tools(&["mkfifo"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = small_src(tmp.path());
    let expected = oci2wsl(&["-q", &src]);
    expected.listing();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let fifo = out.join("pipe.tar");
    run_ok(&["mkfifo", fifo.to_str().unwrap()]);
    let link = out.join("link.tar");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for target in [&fifo, &link] {
        let reader = drain_fifo(&fifo);
        let r = oci2wsl(&[src.as_str(), "-o", target.to_str().unwrap()]);
        // A run that never opened the FIFO would leave the reader waiting for a writer:
        // this open (and close) gives it one, and an end of input.
        drop(
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc_o_nonblock())
                .open(&fifo),
        );
        let got = reader.join().unwrap();
        r.assert_ok();
        assert_eq!(got, expected.stdout, "{}", target.display());
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(dir_names(&out), vec!["link.tar", "pipe.tar"]);
    }
}

/// A block device is neither written (it could be a disk) nor replaced, with or without
/// `--force`, and that is said before the image is read.
#[test]
fn block_device_is_refused_up_front() {
    if !require_root_and_tools(&["mknod"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let disk = out.join("disk");
    // A loop device's numbers; the node is never opened.
    run_ok(&["mknod", disk.to_str().unwrap(), "b", "7", "250"]);
    let src = missing_src(tmp.path());
    for force in [false, true] {
        let mut args = vec![src.as_str(), "-o", disk.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        oci2wsl(&args).assert_failure(&["is a block device"]);
        assert!(fs::symlink_metadata(&disk)
            .unwrap()
            .file_type()
            .is_block_device());
        assert_eq!(dir_names(&out), vec!["disk"]);
    }
}

/// A socket is not replaced by `--force`.
#[test]
fn socket_is_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let socket = out.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let src = small_src(tmp.path());
    oci2wsl(&[src.as_str(), "-o", socket.to_str().unwrap(), "--force"])
        .assert_failure(&["is a socket"]);
    assert!(fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(dir_names(&out), vec!["sock"]);
}

/// Issue 12: a dangling symlink passed the early check, and the whole image was read
/// before the rename refused it. The source here does not exist, so an error about the
/// symlink proves it was checked first.
#[test]
fn dangling_symlink_is_refused_before_the_image_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let link = out.join("out.tar");
    std::os::unix::fs::symlink(out.join("nowhere.tar"), &link).unwrap();
    let src = missing_src(tmp.path());
    for force in [false, true] {
        let mut args = vec![src.as_str(), "-o", link.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let r = oci2wsl(&args);
        r.assert_failure(&["does not exist"]);
        r.assert_stderr_has_all(&["symlink", "nowhere.tar"]);
        assert!(!r.stderr.contains("no-such-layout"), "{}", r.stderr);
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(dir_names(&out), vec!["out.tar"]);
    }
}

/// An OCI layout whose only layer blob is a FIFO nobody writes to: a run holds there, its
/// temporary output created (the device tests/interrupt.rs uses).
fn stalled_src(tmp: &Path) -> String {
    let layout = tmp.join("stalled");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer_hex = "ab".repeat(32);
    run_ok(&["mkfifo", blobs.join(&layer_hex).to_str().unwrap()]);
    let blob = |data: &str| {
        let hex = sha256_hex(data.as_bytes());
        fs::write(blobs.join(&hex), data).unwrap();
        (hex, data.len())
    };
    let (config_hex, config_len) = blob(&format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        "cd".repeat(32)
    ));
    let (manifest_hex, manifest_len) = blob(&format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_hex}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_hex}","size":1024}}]}}"#
    ));
    fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_hex}","size":{manifest_len},"annotations":{{"org.opencontainers.image.ref.name":"t"}}}}]}}"#
        ),
    )
    .unwrap();
    format!("oci:{}:t", layout.display())
}

/// A child that a failing test must not leave running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 12: a run killed with SIGKILL left `.NAME.XXXX.partial` behind for good. The
/// temporary file now names its owner; a later run to the same target keeps it while the
/// owner lives, and removes it, with a warning, once the owner is gone.
#[test]
fn temp_file_of_a_killed_run_is_removed_by_the_next_run() {
    if !require_tools(&["mkfifo"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stalled = stalled_src(tmp.path());
    let src = small_src(tmp.path());
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let target = out.join("x.tar");

    let mut owner = KillOnDrop(
        Command::new(bin())
            .args([stalled.as_str(), "-o", target.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let owner = &mut owner.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let temp = loop {
        if let [name] = partials(&out).as_slice() {
            break name.clone();
        }
        assert!(Instant::now() < deadline, "no temporary output appeared");
        assert!(
            owner.try_wait().unwrap().is_none(),
            "the owner exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let prefix = format!(".x.tar.oci2wsl.{}.", owner.id());
    assert!(
        temp.starts_with(&prefix) && temp.len() == prefix.len() + "XXXXXX.partial".len(),
        "{temp} does not name its owner"
    );

    // The owner is alive: another run to the same target leaves its file alone.
    let r = oci2wsl(&[src.as_str(), "-o", target.to_str().unwrap()]);
    r.assert_ok();
    assert!(!r.stderr.contains("removed"), "{}", r.stderr);
    assert_eq!(partials(&out), vec![temp.clone()]);

    owner.kill().unwrap();
    owner.wait().unwrap();
    assert_eq!(
        partials(&out),
        vec![temp.clone()],
        "SIGKILL cleans nothing up"
    );

    let r = oci2wsl(&[src.as_str(), "-o", target.to_str().unwrap(), "--force"]);
    r.assert_ok();
    r.assert_stderr_has_all(&["warning", "removed", &temp, "killed"]);
    assert_eq!(dir_names(&out), vec!["x.tar"]);

    // --quiet: removed all the same, without a word.
    fs::write(out.join(&temp), b"left behind").unwrap();
    let r = oci2wsl(&[
        "-q",
        src.as_str(),
        "-o",
        target.to_str().unwrap(),
        "--force",
    ]);
    r.assert_ok();
    assert_eq!(r.stderr, "");
    assert_eq!(dir_names(&out), vec!["x.tar"]);
}

/// `--import NAME -o FIFO` would hand wsl.exe a path it cannot read back: refused before the
/// image is read, and the FIFO stays.
#[test]
fn import_to_a_fifo_is_refused_before_the_image_is_read() {
    if !require_tools(&["mkfifo"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let src = missing_src(tmp.path());
    let r = oci2wsl(&[
        src.as_str(),
        "--import",
        "demo",
        "--wsl-exe",
        "/nonexistent/wsl.exe",
        "-o",
        fifo.to_str().unwrap(),
    ]);
    // A command-line error: exit 2, before the source is even looked at.
    r.assert_code(2);
    assert!(
        r.stderr.contains("--import demo") && r.stderr.contains("regular file"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("no-such-layout"), "{}", r.stderr);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}
