//! Output forms: file names pick the compression, flags override it, files appear only
//! when complete, existing files are kept unless --force, and the compressed output is
//! readable in full by every common reader.

mod common;
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

fn example_layout(dir: &Path) -> String {
    // Big enough that gzip output has several members (blocks are 4 MiB).
    let big: String = (0..1_200_000).map(|i| format!("{i} ")).collect();
    let img = image(vec![
        layer(vec![
            dir_e("etc"),
            file("etc/big", &big),
            file("etc/small", "s"),
        ]),
        layer(vec![file("more", &big[..1_000_000])]),
    ]);
    layout_arg(&oci_layout(dir, &img.build(), "t"), "t")
}

fn dir_e(name: &str) -> Entry {
    common::dir(name)
}

fn run_ok(args: &[&str]) -> std::process::Output {
    let o = run(args, None);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o
}

#[test]
fn extension_picks_compression_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let src = example_layout(dir.path());
    let plain = run_ok(&["-q", &src]).stdout;
    for (name, check) in [
        ("a.tar", "tar"),
        ("a.tar.gz", "gz"),
        ("a.tgz", "gz"),
        ("a.tar.zst", "zst"),
    ] {
        let out = dir.path().join(name);
        run_ok(&["-q", &src, "-o", out.to_str().unwrap()]);
        let bytes = fs::read(&out).unwrap();
        let tar = match check {
            "tar" => bytes,
            "gz" => gunzip(&bytes),
            _ => zstd::decode_all(&bytes[..]).unwrap(),
        };
        assert_eq!(tar, plain, "{name}");
    }
    let out = dir.path().join("forced.tar");
    run_ok(&[
        "-q",
        &src,
        "-o",
        out.to_str().unwrap(),
        "--compression",
        "zstd",
        "--level",
        "19",
    ]);
    assert_eq!(
        zstd::decode_all(&fs::read(&out).unwrap()[..]).unwrap(),
        plain
    );
    let o = run_ok(&["-q", &src, "--compression", "gzip"]);
    assert_eq!(gunzip(&o.stdout), plain);
    let o = run_ok(&["-q", &src, "-o", "-"]);
    assert_eq!(o.stdout, plain);
}

#[test]
fn gzip_levels_and_bad_levels() {
    let dir = tempfile::tempdir().unwrap();
    let src = example_layout(dir.path());
    let fast = dir.path().join("fast.tar.gz");
    let best = dir.path().join("best.tar.gz");
    run_ok(&["-q", &src, "-o", fast.to_str().unwrap(), "--level", "1"]);
    run_ok(&["-q", &src, "-o", best.to_str().unwrap(), "--level", "9"]);
    assert!(fs::metadata(&best).unwrap().len() < fs::metadata(&fast).unwrap().len());
    assert_eq!(
        gunzip(&fs::read(&fast).unwrap()),
        gunzip(&fs::read(&best).unwrap())
    );
    let err = usage_err(&[
        &src,
        "-o",
        dir.path().join("x.tar.gz").to_str().unwrap(),
        "--level",
        "13",
    ]);
    assert!(err.contains("--level 13"), "{err}");
    let err = usage_err(&[
        &src,
        "-o",
        dir.path().join("x.tar").to_str().unwrap(),
        "--level",
        "3",
    ]);
    assert!(err.contains("--level"), "{err}");
}

#[test]
fn gzip_and_zstd_output_is_reproducible_and_independent_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let src = example_layout(dir.path());
    for ext in ["tar.gz", "tar.zst"] {
        let a = dir.path().join(format!("a.{ext}"));
        let b = dir.path().join(format!("b.{ext}"));
        run_ok(&["-q", &src, "-o", a.to_str().unwrap()]);
        run_ok(&["-q", "-j", "1", &src, "-o", b.to_str().unwrap()]);
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{ext}");
    }
}

#[test]
fn plain_tar_of_interleaved_layers_is_the_same_for_any_thread_count() {
    // Four layers of files over several MiB each, so that the emit pass's two readers run
    // side by side with megabytes in flight; hardlinks across layers, a whiteout, and a file
    // replaced in a higher layer.
    let dir = tempfile::tempdir().unwrap();
    let body = |seed: usize, len: usize| -> String {
        (0..len / 8)
            .map(|i| format!("{:07x} ", i * 31 + seed))
            .collect()
    };
    let layers = (0..4usize)
        .map(|l| {
            let mut entries = vec![dir_e(&format!("d{l}"))];
            for f in 0..24usize {
                let len = 1000 + (f * 7919 + l * 104_729) % 400_000;
                entries.push(file(format!("d{l}/f{f}"), body(l * 100 + f, len)));
            }
            entries.push(file("replaced", body(l, 5000)));
            if l > 0 {
                entries.push(hardlink(format!("d{l}/link"), format!("d{}/f2", l - 1)));
                entries.push(whiteout(&format!("d{}/f7", l - 1)));
            }
            layer(entries)
        })
        .collect();
    let src = layout_arg(&oci_layout(dir.path(), &image(layers).build(), "t"), "t");
    let reference = run_ok(&["-q", &src]).stdout;
    for jobs in ["1", "2", "7"] {
        let again = run_ok(&["-q", "-j", jobs, &src]).stdout;
        assert!(again == reference, "-j {jobs}: the tar differs");
    }
    // The files of layers 0 and 1 are interleaved, not one layer after the other.
    let names: Vec<String> = list(&reference).iter().map(Out::name).collect();
    let at = |name: &str| names.iter().position(|n| n == name).unwrap();
    assert!(at("d1/f0") < at("d0/f23"), "{names:?}");
    assert!(!names.contains(&"d2/f7".to_string()));
}

#[test]
fn multi_member_gzip_is_read_in_full_by_gzip_python_bsdtar_and_gnu_tar() {
    let dir = tempfile::tempdir().unwrap();
    let src = example_layout(dir.path());
    let out = dir.path().join("o.tar.gz");
    run_ok(&["-q", &src, "-o", out.to_str().unwrap()]);
    let plain = run_ok(&["-q", &src]).stdout;
    let members = fs::read(&out)
        .unwrap()
        .windows(3)
        .filter(|w| w == &[0x1f, 0x8b, 8])
        .count();
    assert!(
        members >= 2,
        "expected several gzip members, found {members}"
    );
    let gz = Command::new("gzip").arg("-dc").arg(&out).output().unwrap();
    assert!(gz.status.success());
    assert_eq!(gz.stdout, plain, "gzip -dc");
    let py = Command::new("python3")
        .args([
            "-c",
            "import gzip,sys; sys.stdout.buffer.write(gzip.open(sys.argv[1]).read())",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(py.status.success());
    assert_eq!(py.stdout, plain, "python gzip");
    for tool in [["tar", "-tzf"], ["bsdtar", "-tzf"]] {
        let listed = Command::new(tool[0]).arg(tool[1]).arg(&out).output();
        let Ok(listed) = listed else {
            if !require_tools(&[tool[0]]) {
                continue;
            }
            panic!("{} is on PATH but did not start", tool[0]);
        };
        assert!(
            listed.status.success(),
            "{}: {}",
            tool[0],
            String::from_utf8_lossy(&listed.stderr)
        );
        assert!(
            listed.stderr.is_empty(),
            "{} warned: {}",
            tool[0],
            String::from_utf8_lossy(&listed.stderr)
        );
        let names = String::from_utf8_lossy(&listed.stdout);
        assert!(
            names.contains("etc/big") && names.contains("more"),
            "{}: {names}",
            tool[0]
        );
    }
}

#[test]
fn existing_target_is_kept_without_force_and_replaced_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = example_layout(dir.path());
    let out = dir.path().join("out.tar");
    fs::write(&out, b"precious").unwrap();
    let err = flatten_err(&[&src, "-o", out.to_str().unwrap()]);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    run_ok(&["-q", &src, "-o", out.to_str().unwrap(), "--force"]);
    assert_ne!(fs::read(&out).unwrap(), b"precious");
}

#[test]
fn a_failing_run_leaves_the_old_file_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(vec![
        layer(vec![file("a", "a")]),
        layer(vec![file("b", "b")]),
    ])
    .corrupt(Corruption::DiffId(1));
    let lay = oci_layout(dir.path(), &img.build(), "t");
    let outdir = dir.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let out = outdir.join("good.tar.gz");
    fs::write(&out, b"good old tarball").unwrap();
    let err = flatten_err(&[
        &layout_arg(&lay, "t"),
        "-o",
        out.to_str().unwrap(),
        "--force",
    ]);
    assert!(err.contains("diff_id"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), b"good old tarball");
    assert_eq!(fs::read_dir(&outdir).unwrap().count(), 1);
}

#[test]
fn help_version_and_usage_errors() {
    let o = run(&["--help"], None);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--output",
        "--compression",
        "--level",
        "--platform",
        "--force",
        "--quiet",
        "--jobs",
        "--max-expansion",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let o = run(&["--version"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(run(&["--no-such-flag", "x"], None).status.code(), Some(2));
    assert_eq!(run(&[], None).status.code(), Some(2));
    assert_eq!(
        run(&["--compression", "lz4", "x"], None).status.code(),
        Some(2)
    );
    let err = usage_err(&["oci:"]);
    assert!(err.contains("path"), "{err}");
    let err = usage_err(&["--platform", "linux", "oci:x"]);
    assert!(err.contains("os/arch"), "{err}");
}

#[test]
fn summary_line_on_stderr_and_quiet_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = example_layout(dir.path());
    let o = run_ok(&[&src]);
    let err = stderr(&o);
    // What was converted and where, the platform, the digest, the sizes: short lines.
    assert_eq!(err.lines().count(), 4, "{err}");
    assert!(err.lines().all(|l| l.len() < 100), "{err}");
    assert!(err.contains("2 layers") && err.contains("sha256:"), "{err}");
    assert!(
        err.contains("platform") && err.contains("linux/amd64"),
        "{err}"
    );
    assert!(run_ok(&["-q", &src]).stderr.is_empty());
}
