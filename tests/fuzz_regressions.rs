//! Inputs the fuzz targets (fuzz/) found, each run through the same library calls and checks
//! as the target that found it (`fuzz/src/harness.rs`, included here). The inputs live in
//! `tests/fuzz_regressions/<target>/`; each named test below is one finding, minimised, with
//! what was wrong. `every_saved_input` runs any file there, named or not, and `seeds_pass`
//! checks that the fuzzers' seed corpus (`fuzz/seeds/`, valid images and documents) meets
//! every property, so the harness itself is tested on inputs whose answer is known.

#[allow(dead_code)]
#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn runner(target: &str) -> fn(&[u8]) -> Result<(), String> {
    match target {
        "flatten_layers" => harness::run_flatten_layers,
        "flatten_structured" => harness::run_structured,
        "archive" => harness::run_archive,
        "manifest" => harness::run_manifest,
        "reference" => harness::run_reference,
        "www_authenticate" => harness::run_www_authenticate,
        "tar_reader" => harness::run_tar_reader,
        "wsl" => harness::run_wsl,
        "wsl_conf" => harness::run_wsl_conf,
        other => panic!("no fuzz target {other}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Runs one saved input; a panic inside oci2wsl fails the test as it is.
fn run(target: &str, file: &str) {
    let path = root()
        .join("tests/fuzz_regressions")
        .join(target)
        .join(file);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Err(broken) = runner(target)(&data) {
        panic!("{target}/{file}: {broken}");
    }
}

fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir) else {
        return out;
    };
    for t in targets {
        let t = t.unwrap().path();
        if !t.is_dir() {
            continue;
        }
        let target = t.file_name().unwrap().to_string_lossy().into_owned();
        for f in std::fs::read_dir(&t).unwrap() {
            let f = f.unwrap().file_name().to_string_lossy().into_owned();
            out.push((target.clone(), f));
        }
    }
    out.sort();
    out
}

#[test]
fn seeds_pass() {
    let seeds = files_under(&root().join("fuzz/seeds"));
    assert!(seeds.len() > 20, "the seed corpus is missing");
    for (target, file) in seeds {
        let data = std::fs::read(root().join("fuzz/seeds").join(&target).join(&file)).unwrap();
        if let Err(broken) = runner(&target)(&data) {
            panic!("seed {target}/{file}: {broken}");
        }
    }
}

#[test]
fn every_saved_input() {
    for (target, file) in files_under(&root().join("tests/fuzz_regressions")) {
        run(&target, &file);
    }
}

/// A header whose size field is GNU base-256 `u64::MAX`, then a complete, valid entry
/// ("smuggled") that is really part of the first entry's content.
fn size_u64_max_then_smuggled() -> Vec<u8> {
    let data =
        std::fs::read(root().join("tests/fuzz_regressions/tar_reader/size-u64-max")).unwrap();
    let mut tar = data[1..].to_vec();
    harness::encode_entry(&mut tar, &harness::TarEntry::file("smuggled", b"x"));
    tar
}

/// Found by `tar_reader`/`flatten_layers` (with checksum repair). A size field of u64::MAX
/// overflows `self.remaining + self.padding` in `TarReader::next_entry`
/// (src/layer/tar_reader.rs): a panic with overflow checks; without them (release) the sum
/// wraps to 0, nothing is skipped, and the first entry's content is parsed as the next
/// header, so entries that no other tar reader sees appear in the layer. The stream ends
/// inside that content: the only right answers are an error at the first header (what the
/// reader does now: sizes above 2^63 are refused) or after the first entry.
#[test]
fn tar_reader_size_u64_max_does_not_wrap() {
    run("tar_reader", "size-u64-max");
    run("flatten_layers", "size-u64-max");
    let tar = size_u64_max_then_smuggled();
    let mut reader = oci2wsl::layer::tar_reader::TarReader::new(tar.as_slice());
    // Refusing the impossible size at once is as right as failing after the first entry;
    // reading the smuggled entry, or ending cleanly, is wrong.
    let first = match reader.next_entry() {
        Err(e) => {
            assert!(e.to_string().contains("size"), "{e}");
            return;
        }
        Ok(first) => first,
    };
    assert_eq!(first.map(|e| e.name), Some(b"big".to_vec()));
    match reader.next_entry() {
        Err(_) => {}
        Ok(Some(e)) => panic!(
            "read {:?}, an entry hidden in the content of the first",
            String::from_utf8_lossy(&e.name)
        ),
        Ok(None) => panic!("a stream that ends inside an entry's content ended cleanly"),
    }
}

/// Found by `reference`. `SourceRef::parse("docker://")` (src/reference.rs) is
/// `Ok(Registry(""))`: the empty-reference check runs before the `docker://` prefix is
/// stripped, so an empty registry reference gets through (and prints as ""). It should be
/// the "empty image reference" error that "" gets.
#[test]
fn reference_docker_scheme_alone_is_empty() {
    run("reference", "docker-scheme-only");
    assert!(oci2wsl::reference::SourceRef::parse("docker://").is_err());
}

/// Found by `reference`. `docker://oci:C:er://r$` is a registry name (`oci:C:er://r$`) that
/// was printed without its scheme, and the printed form read back as an OCI layout: a
/// summary or error naming the image named a different one. A registry name that would read
/// back as another transport is now printed with `docker://`. Since issue 15 a registry
/// name is checked by docker's grammar when it is parsed, and this one is refused there.
#[test]
fn reference_registry_name_printed_as_other_transport() {
    run("reference", "docker-scheme-then-oci");
    assert!(oci2wsl::reference::SourceRef::parse("docker://oci:C:er://r$").is_err());
    let r = oci2wsl::reference::SourceRef::parse("docker://dir:x").unwrap();
    assert_eq!(r.to_string(), "docker://dir:x");
}

/// Issue 12 (a review, then the `wsl` target). An image whose `created` is
/// `2023-11-14T22:13:20+1é00` panicked in `parse_rfc3339` (src/wsl/config.rs): the offset
/// was sliced by byte index through the middle of `é`. A time it cannot read leaves the
/// generated files dated 1970, like an image without `created`.
#[test]
fn wsl_created_with_multibyte_offset_does_not_panic() {
    run("wsl", "created-multibyte-offset");
    assert_eq!(
        oci2wsl::wsl::config::parse_rfc3339("2023-11-14T22:13:20+1é00"),
        None
    );
}

/// The `wsl` target is only as good as the inputs that get through: its seeds must reach
/// the translation and come out with the files it writes, not stop at a clean error.
#[test]
fn wsl_seeds_reach_the_generated_files() {
    let seeds = root().join("fuzz/seeds/wsl");
    let data = std::fs::read(seeds.join("json-config-all-files")).unwrap();
    let out = harness::wsl_output(&data)
        .unwrap()
        .expect("the seed gives an output");
    let listing = harness::check_output(&out).unwrap();
    for name in [
        "etc/wsl.conf",
        "etc/wsl-distribution.conf",
        "etc/profile.d/oci2wsl-env.sh",
        "etc/oci2wsl/image.json",
    ] {
        assert!(
            listing.nodes.contains_key(name.as_bytes()),
            "{name} missing from the output"
        );
    }
    let data = std::fs::read(seeds.join("line-config-user-by-uid")).unwrap();
    assert!(harness::wsl_output(&data).unwrap().is_some());
}

/// `--user` with a line break in it (from the fuzz input's user part) gave a two-line
/// "no such user" error; a name from outside is now printed with control characters escaped.
#[test]
fn wsl_user_name_with_newline_is_a_one_line_error() {
    run("wsl", "user-name-with-newline");
}

/// The image's wsl.conf ended with a comment ending in a backslash and no line end; a key
/// added to that section joined the comment, so WSL would not read it.
#[test]
fn wsl_conf_key_after_last_line_ending_in_a_backslash() {
    run("wsl_conf", "key-after-last-line-backslash");
}
