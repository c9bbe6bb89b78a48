//! The output side: file names and compression, levels, reproducibility, stdout, the
//! temporary-file-then-rename discipline (`--force`, failures leave the target alone), the
//! tar format itself, and the command line's exit codes.

mod common;
use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A small image with enough variety to make the tar format matter: long names, big ids,
/// xattrs, a hardlink, a device.
fn sample_src(tmp: &Path) -> String {
    let long = format!(
        "{}/{}",
        "long-directory-name".repeat(8),
        "file-name".repeat(20)
    );
    let img = image(vec![
        layer(vec![
            dir("etc"),
            file("etc/hostname", "host\n"),
            dir("usr"),
            dir("usr/bin"),
            file("usr/bin/ping", "ELF")
                .mode(0o4755)
                .xattr("security.capability", [1, 0, 0, 2, 0, 0x20, 0, 0]),
            file(&long, "long"),
            chardev("dev/null", 1, 3),
        ]),
        layer(vec![
            hardlink("usr/bin/ping6", "usr/bin/ping"),
            file("home/big", "big ids").owner(3_000_000, 3_000_001),
            symlink(format!("{long}-link"), format!("/{}", "t".repeat(150))),
        ])
        .zstd(),
    ])
    .build();
    oci_dir(tmp, &img, "t")
}

/// A source whose top layer is corrupt (found only after most output was written).
fn corrupt_src(tmp: &Path) -> String {
    let img = image(vec![
        layer(vec![dir("etc"), file("etc/hostname", "host\n")]),
        layer(vec![file("late", "the last layer is corrupt")]).uncompressed(),
    ])
    .corrupt(Corruption::LayerBytes(1))
    .build();
    oci_dir(tmp, &img, "t")
}

/// The plain tar the product writes to stdout for `src`.
fn plain(src: &str) -> Vec<u8> {
    let r = oci2wsl(&["-q", src]);
    r.listing();
    r.stdout
}

fn out_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join("out");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_to(src: &str, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["-q", src, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    oci2wsl(&args)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut v)
        .expect("valid gzip");
    v
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::decode_all(bytes).expect("valid zstd")
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

fn is_plain_tar(bytes: &[u8]) -> bool {
    bytes.len() >= 1024 && bytes.len() % 512 == 0 && &bytes[257..262] == b"ustar"
}

// ------------------------------------------------------------------------------ file names

#[test]
fn dot_tar_is_a_plain_tar_identical_to_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());
    run_to(&src, &dir.join("root.tar"), &[]).assert_ok();
    let got = std::fs::read(dir.join("root.tar")).unwrap();
    assert!(is_plain_tar(&got));
    assert_eq!(got, want);
    assert_dir_holds(&dir, &["root.tar"]);
}

#[test]
fn dot_tar_gz_and_dot_tgz_are_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());
    for name in ["root.tar.gz", "root.tgz"] {
        run_to(&src, &dir.join(name), &[]).assert_ok();
        let got = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(got[..2], GZIP_MAGIC, "{name}");
        assert_eq!(gunzip(&got), want, "{name}");
    }
    assert_dir_holds(&dir, &["root.tar.gz", "root.tgz"]);
}

#[test]
fn dot_tar_zst_is_zstd() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());
    run_to(&src, &dir.join("root.tar.zst"), &[]).assert_ok();
    let got = std::fs::read(dir.join("root.tar.zst")).unwrap();
    assert_eq!(got[..4], ZSTD_MAGIC);
    assert_eq!(unzstd(&got), want);
}

#[test]
fn compression_flag_overrides_the_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());

    run_to(&src, &dir.join("a.tar"), &["--compression", "gzip"]).assert_ok();
    let a = std::fs::read(dir.join("a.tar")).unwrap();
    assert_eq!(a[..2], GZIP_MAGIC);
    assert_eq!(gunzip(&a), want);

    run_to(&src, &dir.join("b.tar.gz"), &["--compression", "none"]).assert_ok();
    assert_eq!(std::fs::read(dir.join("b.tar.gz")).unwrap(), want);

    run_to(&src, &dir.join("c.tar.gz"), &["--compression", "zstd"]).assert_ok();
    let c = std::fs::read(dir.join("c.tar.gz")).unwrap();
    assert_eq!(c[..4], ZSTD_MAGIC);
    assert_eq!(unzstd(&c), want);

    run_to(&src, &dir.join("d.tar.zst"), &["--compression", "gzip"]).assert_ok();
    assert_eq!(gunzip(&std::fs::read(dir.join("d.tar.zst")).unwrap()), want);
}

#[test]
fn unknown_extension_is_a_plain_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());
    run_to(&src, &dir.join("rootfs.img"), &[]).assert_ok();
    assert_eq!(std::fs::read(dir.join("rootfs.img")).unwrap(), want);
}

#[test]
fn compression_levels() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());
    for level in ["0", "1", "2", "6", "9"] {
        let p = dir.join(format!("g{level}.tar.gz"));
        run_to(&src, &p, &["--level", level]).assert_ok();
        assert_eq!(
            gunzip(&std::fs::read(&p).unwrap()),
            want,
            "gzip level {level}"
        );
    }
    for level in ["1", "2", "3", "19"] {
        let p = dir.join(format!("z{level}.tar.zst"));
        run_to(&src, &p, &["--level", level]).assert_ok();
        assert_eq!(
            unzstd(&std::fs::read(&p).unwrap()),
            want,
            "zstd level {level}"
        );
    }
    // The documented defaults: gzip (libdeflate) 2, not 6, and zstd 2, not zstd's own 3;
    // see docs/performance.md.
    run_to(&src, &dir.join("default.tar.gz"), &[]).assert_ok();
    run_to(&src, &dir.join("default.tar.zst"), &[]).assert_ok();
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    assert_eq!(read("default.tar.gz"), read("g2.tar.gz"), "gzip default");
    assert_ne!(
        read("g2.tar.gz"),
        read("g6.tar.gz"),
        "gzip levels 2 and 6 differ"
    );
    assert_eq!(read("default.tar.zst"), read("z2.tar.zst"), "zstd default");
    assert_ne!(
        read("z2.tar.zst"),
        read("z3.tar.zst"),
        "levels 2 and 3 differ"
    );
}

#[test]
fn out_of_range_level_is_refused_without_output() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let dir = out_dir(tmp.path());
    let r = run_to(&src, &dir.join("x.tar.gz"), &["--level", "99"]);
    assert_ne!(r.code, 0, "level 99 for gzip must be refused\n{}", r.stderr);
    assert!(r.code == 1 || r.code == 2, "exit {}", r.code);
    assert_dir_holds(&dir, &[]);
}

// ------------------------------------------------------------------------------ gzip

#[test]
fn gzip_output_is_reproducible_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let dir = out_dir(tmp.path());
    run_to(&src, &dir.join("one.tar.gz"), &[]).assert_ok();
    run_to(&src, &dir.join("two.tar.gz"), &[]).assert_ok();
    let one = std::fs::read(dir.join("one.tar.gz")).unwrap();
    let two = std::fs::read(dir.join("two.tar.gz")).unwrap();
    assert_eq!(one, two, "two runs must give identical gzip bytes");
    // and from a copy of the image at another path
    let tmp2 = tempfile::tempdir().unwrap();
    let src2 = sample_src(tmp2.path());
    run_to(&src2, &dir.join("three.tar.gz"), &[]).assert_ok();
    assert_eq!(one, std::fs::read(dir.join("three.tar.gz")).unwrap());
}

#[test]
fn gzip_output_reads_with_multigzdecoder_and_meets_the_invariants() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let dir = out_dir(tmp.path());
    run_to(&src, &dir.join("root.tar.gz"), &[]).assert_ok();
    let tar = gunzip(&std::fs::read(dir.join("root.tar.gz")).unwrap());
    let l = Listing::parse(&tar);
    l.assert_invariants();
    assert_eq!(l.content("usr/bin/ping6"), b"ELF");
    assert_eq!(l.get("home/big").uid, 3_000_000);
}

#[test]
fn gzip_output_of_several_compression_blocks_is_reproducible_and_complete() {
    // ~9 MiB of mildly compressible data: more than one block for a parallel compressor.
    let mut x: u32 = 12345;
    let data: Vec<u8> = (0..9 << 20)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            b"abcdefgh"[(x >> 29) as usize]
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let img = image(vec![layer(vec![
        file("small", "s"),
        file("big", &data),
        file("after", "a"),
    ])
    .uncompressed()])
    .build();
    let src = oci_dir(tmp.path(), &img, "t");
    let dir = out_dir(tmp.path());
    run_to(&src, &dir.join("one.tar.gz"), &[]).assert_ok();
    run_to(&src, &dir.join("two.tar.gz"), &[]).assert_ok();
    let one = std::fs::read(dir.join("one.tar.gz")).unwrap();
    assert_eq!(one, std::fs::read(dir.join("two.tar.gz")).unwrap());
    let l = Listing::parse(&gunzip(&one));
    l.assert_invariants();
    assert_eq!(l.get("big").sha256, sha256_hex(&data));
    assert_eq!(l.get("after").content, b"a");
}

#[test]
fn output_extracts_with_bsdtar() {
    // wsl --import extracts with bsdtar: it must accept the output without a warning.
    let Ok(probe) = std::process::Command::new("bsdtar")
        .arg("--version")
        .output()
    else {
        return;
    };
    if !probe.status.success() {
        return;
    }
    let img = image(vec![
        layer(vec![
            dir("etc"),
            file("etc/a", "a"),
            dir("usr/bin"),
            file("usr/bin/busybox", "bb").mode(0o755),
            symlink("bin", "usr/bin"),
        ]),
        layer(vec![
            hardlink("usr/bin/sh", "usr/bin/busybox"),
            hardlink("etc/b", "etc/a"),
            file("lib/x", "x"),
        ]),
        layer(vec![
            file("etc/a", "replaced"),
            dir("zzz"),
            hardlink("zzz/link", "usr/bin/sh"),
        ]),
    ])
    .build();
    let tmp = tempfile::tempdir().unwrap();
    let src = oci_dir(tmp.path(), &img, "t");
    let dir = out_dir(tmp.path());
    let tarball = dir.join("root.tar");
    run_to(&src, &tarball, &[]).assert_ok();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let out = std::process::Command::new("bsdtar")
        .arg("-xpf")
        .arg(&tarball)
        .arg("-C")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "bsdtar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(root.join("etc/a")).unwrap(), b"replaced");
    assert_eq!(std::fs::read(root.join("etc/b")).unwrap(), b"a");
    assert_eq!(std::fs::read(root.join("zzz/link")).unwrap(), b"bb");
}

// ------------------------------------------------------------------------------ stdout

#[test]
fn stdout_is_a_plain_tar_without_and_with_dash() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let a = oci2wsl(&["-q", &src]);
    let b = oci2wsl(&["-q", &src, "-o", "-"]);
    a.listing();
    assert!(is_plain_tar(&a.stdout));
    assert_eq!(a.stdout, b.stdout);
    assert_dir_holds(tmp.path(), &["layout"]);
}

#[test]
fn quiet_success_prints_nothing_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let dir = out_dir(tmp.path());
    let r = run_to(&src, &dir.join("x.tar"), &[]);
    r.assert_ok();
    assert_eq!(r.stderr, "", "--quiet prints nothing but errors");
    assert!(r.stdout.is_empty(), "nothing on stdout when writing a file");
}

// ------------------------------------------------------------------------------ tar format

#[test]
fn output_is_posix_pax_with_no_gnu_records() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let tar = plain(&src);
    let headers = raw_headers(&tar);
    for (flag, magic) in &headers {
        assert_eq!(
            &magic[..],
            b"ustar\x0000",
            "every header is POSIX ustar (flag {})",
            *flag as char
        );
        assert!(!matches!(flag, b'L' | b'K'), "no GNU long-name records");
    }
    assert!(
        headers.iter().any(|(f, _)| *f == b'x'),
        "long names and big ids need PAX records"
    );
    let l = Listing::parse(&tar);
    let xattr_entry = l.get("usr/bin/ping");
    assert!(xattr_entry
        .pax
        .iter()
        .any(|(k, _)| k == b"SCHILY.xattr.security.capability"));
}

#[test]
fn output_ends_with_the_end_of_archive_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = plain(&sample_src(tmp.path()));
    assert!(tar.len() % 512 == 0);
    assert!(
        tar[tar.len() - 1024..].iter().all(|&b| b == 0),
        "two zero blocks at the end"
    );
}

// ------------------------------------------------------------------------------ replacing files

#[test]
fn existing_target_is_refused_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let dir = out_dir(tmp.path());
    let target = dir.join("root.tar");
    std::fs::write(&target, b"precious").unwrap();
    let r = run_to(&src, &target, &[]);
    r.assert_failure(&["exists"]);
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert_dir_holds(&dir, &["root.tar"]);
}

#[test]
fn existing_target_is_replaced_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());
    let target = dir.join("root.tar");
    std::fs::write(&target, b"precious").unwrap();
    run_to(&src, &target, &["--force"]).assert_ok();
    assert_eq!(std::fs::read(&target).unwrap(), want);
    assert_dir_holds(&dir, &["root.tar"]);
    // short flag too
    std::fs::write(&target, b"again").unwrap();
    run_to(&src, &target, &["-f"]).assert_ok();
    assert_eq!(std::fs::read(&target).unwrap(), want);
}

#[test]
fn failing_run_leaves_the_existing_target_untouched_and_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = corrupt_src(tmp.path());
    let dir = out_dir(tmp.path());
    for name in ["root.tar", "root.tar.gz", "root.tar.zst"] {
        let target = dir.join(name);
        std::fs::write(&target, format!("precious {name}")).unwrap();
        let r = run_to(&src, &target, &["--force"]);
        r.assert_failure(&["digest"]);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            format!("precious {name}").as_bytes()
        );
    }
    assert_dir_holds(&dir, &["root.tar", "root.tar.gz", "root.tar.zst"]);
}

#[test]
fn failing_run_creates_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = corrupt_src(tmp.path());
    let dir = out_dir(tmp.path());
    for name in ["root.tar", "root.tar.gz", "root.tar.zst"] {
        run_to(&src, &dir.join(name), &[]).assert_failure(&["digest"]);
    }
    assert_dir_holds(&dir, &[]);
}

#[test]
fn relative_output_path_lands_in_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    let want = plain(&src);
    let dir = out_dir(tmp.path());
    oci2wsl_in(&dir, &["-q", &src, "-o", "rel.tar"]).assert_ok();
    assert_eq!(std::fs::read(dir.join("rel.tar")).unwrap(), want);
    assert_dir_holds(&dir, &["rel.tar"]);
}

// ------------------------------------------------------------------------------ command line

#[test]
fn help_and_version_exit_0() {
    let r = oci2wsl(&["--help"]);
    r.assert_ok();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(text.contains("Usage"), "{text}");
    for form in [
        "oci:",
        "oci-archive:",
        "docker-archive:",
        "--platform",
        "--compression",
    ] {
        assert!(text.contains(form), "--help mentions {form}");
    }
    let r = oci2wsl(&["--version"]);
    r.assert_ok();
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(text.contains("oci2wsl"), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let src = sample_src(tmp.path());
    for args in [
        vec!["--no-such-flag", src.as_str()],
        vec![],
        vec![src.as_str(), "--compression", "bzip2"],
        vec![src.as_str(), "--level", "not-a-number"],
        vec![src.as_str(), "extra-argument"],
    ] {
        let r = oci2wsl(&args);
        assert_eq!(r.code, 2, "{args:?}: stderr {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn nonexistent_source_fails_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = out_dir(tmp.path());
    for src in [
        format!("oci:{}", tmp.path().join("missing").display()),
        format!("oci-archive:{}", tmp.path().join("missing.tar").display()),
        format!(
            "docker-archive:{}",
            tmp.path().join("missing.tar").display()
        ),
    ] {
        run_to(&src, &dir.join("x.tar"), &[]).assert_failure(&[]);
    }
    assert_dir_holds(&dir, &[]);
}
