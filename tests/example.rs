//! The example image in testdata/ is what testdata/make-example.py writes, byte for byte,
//! and the README's first command flattens it to the expected tree.

use std::fs;
use std::path::Path;
use std::process::Command;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let rel = entry
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.push((rel, fs::read(&entry).unwrap()));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn committed_example_is_what_the_script_writes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("example");
    let status = Command::new("python3")
        .arg(root.join("testdata/make-example.py"))
        .arg(&out)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    assert_eq!(files(&out), files(&root.join("testdata/example")));
}

#[test]
fn readme_command_flattens_the_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("example.rootfs.tar.gz");
    let output = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .current_dir(root)
        .args(["oci:testdata/example:latest", "-o"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let gz = fs::read(&target).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&gz[..]));
    let mut listing = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        listing.push(name);
    }
    for expected in [
        "./",
        "usr/bin/hello",
        "usr/bin/hello-again",
        "etc/motd",
        "usr/share/doc/example/NEWS",
        // The image config (User app, Env) as WSL configuration.
        "etc/wsl.conf",
        "etc/profile.d/oci2wsl-env.sh",
        "etc/oci2wsl/image.json",
    ] {
        assert!(
            listing.iter().any(|n| n == expected),
            "{expected} missing from {listing:?}"
        );
    }
    for gone in [
        "var/log/old.log",
        "var/log/.wh.old.log",
        "usr/share/doc/example/README",
    ] {
        assert!(
            !listing.iter().any(|n| n == gone),
            "{gone} should be gone: {listing:?}"
        );
    }
    // Reproducible: a second run gives the same bytes.
    let again = tmp.path().join("again.tar.gz");
    let status = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .current_dir(root)
        .args(["-q", "oci:testdata/example:latest", "-o"])
        .arg(&again)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(&again).unwrap(), gz);
}
