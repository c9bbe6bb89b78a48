//! A real Debian image: a debootstrap'd bookworm minbase made into a three-layer image by
//! umoci (the base; a layer that deletes the documentation and adds files; a layer that
//! changes a configuration file), flattened by oci2wsl. Then:
//! - GNU tar and bsdtar (with the flags `wsl --import` uses) extract it without a warning;
//! - `dpkg --verify` inside the extracted tree finds no changed file except the ones the
//!   layers changed on purpose;
//! - the tar agrees with `umoci unpack` entry by entry (tests/compare_tree.py).
//!
//! The minbase tree is cached (default /var/tmp/oci2wsl-bench, shared with
//! scripts/bench.py; OCI2WSL_BENCH_CACHE overrides). Needs root, debootstrap, umoci and
//! bsdtar; without them the test fails (`OCI2WSL_SKIP_MISSING_TOOLS=1` skips, counted).
#![cfg(unix)]

mod common;
use common::{require_root_and_tools, sh};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mirror() -> String {
    for path in [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ] {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            if line.contains("security") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("URIs:") {
                return rest.split_whitespace().next().unwrap().to_string();
            }
            if line.starts_with("deb ") {
                if let Some(uri) = line.split_whitespace().find(|w| w.starts_with("http")) {
                    return uri.to_string();
                }
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// The cached minbase tree, made once.
fn minbase() -> PathBuf {
    let cache = PathBuf::from(
        std::env::var("OCI2WSL_BENCH_CACHE").unwrap_or_else(|_| "/var/tmp/oci2wsl-bench".into()),
    );
    let base = cache.join("bookworm-minbase");
    if base.join("etc/os-release").exists() {
        return base;
    }
    fs::create_dir_all(&cache).unwrap();
    let tmp = cache.join("bookworm-minbase.tmp");
    let _ = fs::remove_dir_all(&tmp);
    sh(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&tmp)
        .arg(mirror()));
    fs::rename(&tmp, &base).unwrap();
    base
}

fn umoci_layer(layout: &Path, bundle: &Path, change: impl FnOnce(&Path)) {
    let image = format!("{}:t", layout.display());
    let _ = fs::remove_dir_all(bundle);
    sh(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(bundle));
    change(&bundle.join("rootfs"));
    sh(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(bundle));
    fs::remove_dir_all(bundle).unwrap();
}

#[test]
fn debian_image_extracts_cleanly_and_verifies() {
    if !require_root_and_tools(&["debootstrap", "umoci", "bsdtar", "dpkg", "python3"]) {
        return;
    }
    let base = minbase();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let bundle = tmp.path().join("bundle");
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    sh(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:t", layout.display())));
    umoci_layer(&layout, &bundle, |r| {
        sh(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", base.display()))
            .arg(r));
    });
    umoci_layer(&layout, &bundle, |r| {
        fs::remove_dir_all(r.join("usr/share/doc")).unwrap();
        fs::create_dir_all(r.join("opt/app")).unwrap();
        fs::write(r.join("opt/app/README"), "added by the second layer\n").unwrap();
    });
    umoci_layer(&layout, &bundle, |r| {
        let motd = r.join("etc/motd");
        fs::write(&motd, "changed by the third layer\n").unwrap();
    });

    // A config as a real image has one: a user, an environment, a working directory.
    sh(Command::new("umoci")
        .args(["config", "--image"])
        .arg(format!("{}:t", layout.display()))
        .args([
            "--config.user=daemon",
            "--config.env=PATH=/opt/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--config.env=GREETING=it's $HOME in `quotes`",
            "--config.workingdir=/opt/app",
        ]));

    // The flattened file system itself, for the extractors, dpkg and umoci.
    let out = tmp.path().join("debian.rootfs.tar");
    let o = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .arg(format!("oci:{}:t", layout.display()))
        .arg("--no-wsl-config")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));

    // Both extractors, as root, with the flags that keep everything; no warnings at all.
    let gnu = tmp.path().join("gnu");
    let bsd = tmp.path().join("bsd");
    fs::create_dir(&gnu).unwrap();
    fs::create_dir(&bsd).unwrap();
    let g = Command::new("tar")
        .args([
            "-x",
            "-p",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-f",
        ])
        .arg(&out)
        .arg("-C")
        .arg(&gnu)
        .output()
        .unwrap();
    assert!(
        g.status.success() && g.stderr.is_empty(),
        "GNU tar: {}",
        String::from_utf8_lossy(&g.stderr)
    );
    let b = Command::new("bsdtar")
        .args(["-x", "-p", "--xattrs", "--numeric-owner", "-f"])
        .arg(&out)
        .arg("-C")
        .arg(&bsd)
        .output()
        .unwrap();
    assert!(
        b.status.success() && b.stderr.is_empty(),
        "bsdtar: {}",
        String::from_utf8_lossy(&b.stderr)
    );

    // dpkg's own view: every packaged file as installed, except what the layers changed.
    for tree in [&gnu, &bsd] {
        let v = Command::new("dpkg")
            .arg(format!("--root={}", tree.display()))
            .arg("--verify")
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&v.stdout);
        let unexpected: Vec<&str> = report
            .lines()
            .filter(|l| !l.contains(" /usr/share/doc") && !l.ends_with(" /etc/motd"))
            .collect();
        assert!(
            unexpected.is_empty(),
            "dpkg --verify in {}: {unexpected:#?}",
            tree.display()
        );
        assert!(
            report.lines().any(|l| l.contains("/usr/share/doc/")),
            "the deleted docs should show as missing"
        );
    }

    // And umoci's reading of the same image.
    let reference = tmp.path().join("reference");
    sh(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&reference));
    let cmp = sh(Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/compare_tree.py"
        ))
        .arg(&out)
        .arg(reference.join("rootfs")));
    eprintln!("{cmp}");

    // With the WSL configuration, as imported: Debian's own /etc/profile sources the
    // environment script in a login shell, and the default user is a user of the image.
    let wsl_out = tmp.path().join("debian-wsl.rootfs.tar");
    let o = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .arg(format!("oci:{}:t", layout.display()))
        .arg("-o")
        .arg(&wsl_out)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{summary}");
    assert!(summary.contains("default user daemon (uid 1)"), "{summary}");
    assert!(!summary.contains("warning"), "{summary}");
    let wsl = tmp.path().join("wsl");
    fs::create_dir(&wsl).unwrap();
    sh(Command::new("bsdtar")
        .args(["-x", "-p", "--xattrs", "--numeric-owner", "-f"])
        .arg(&wsl_out)
        .arg("-C")
        .arg(&wsl));
    let conf = fs::read_to_string(wsl.join("etc/wsl.conf")).unwrap();
    assert!(conf.contains("[user]\ndefault = \"daemon\"\n"), "{conf}");
    let login = sh(Command::new("chroot")
        .arg(&wsl)
        .args(["/usr/bin/env", "-i", "HOME=/root", "PATH=/usr/bin:/bin"])
        .args([
            "/bin/bash",
            "-l",
            "-c",
            r#"printf '%s\n' "$GREETING" "$PATH""#,
        ]));
    let mut lines = login.lines();
    assert_eq!(lines.next(), Some("it's $HOME in `quotes`"), "{login}");
    let path = lines.next().unwrap();
    assert!(path.starts_with("/opt/app/bin:/usr/local/sbin:"), "{path}");
    let metadata = fs::read_to_string(wsl.join("etc/oci2wsl/image.json")).unwrap();
    assert!(
        metadata.contains(r#""workingDir": "/opt/app""#),
        "{metadata}"
    );
}
