//! Every way of handing the product an image gives the same output bytes: OCI layout
//! directories (by tag, by digest, by default), oci-archive and docker-archive tarballs (files
//! and stdin, legacy and Docker 25+), multi-platform indexes, Docker media types, every layer
//! compression, sha512 digests. And every integrity defect is refused without output.

mod common;
use common::*;
use std::path::Path;

fn sample() -> ImageBuilder {
    image(sample_layers(Compression::Gzip))
}

/// A second, different image.
fn other() -> ImageBuilder {
    image(vec![layer(vec![file("other", "I am the other image")])])
}

/// Runs to stdout, asserts success and the output invariants, returns the bytes.
fn output_of<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    let r = oci2wsl(args);
    r.listing();
    r.stdout
}

fn output_of_stdin(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let r = oci2wsl_stdin(args, stdin);
    r.listing();
    r.stdout
}

/// The reference output: the sample image read from an OCI layout by tag.
fn reference() -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let src = oci_dir(tmp.path(), &sample().build(), "ref");
    let out = output_of(&["-q", &src]);
    let l = Listing::parse(&out);
    // sanity: the sample really is what the tests think it is
    assert_eq!(
        l.sorted_paths(),
        [
            "bin",
            "etc",
            "etc/hostname",
            "etc/motd",
            "etc/os-release",
            "opt",
            "opt/b",
            "usr",
            "usr/bin",
            "usr/bin/tool",
            "usr/bin/tool2",
            "var"
        ]
    );
    assert_eq!(l.content("etc/hostname"), b"new\n");
    assert_eq!(l.content("usr/bin/tool2"), b"#!/bin/sh\necho tool\n");
    out
}

fn assert_same_output(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        panic!(
            "{what}: output differs from the reference\n--- got:\n{}\n--- want:\n{}",
            Listing::parse(got).dump(),
            Listing::parse(want).dump()
        );
    }
}

/// Runs with `-o` into an empty directory, expects exit 1 with one of `any_of` in the
/// one-line error, and no file left in that directory.
fn fails_without_output(tmp: &Path, src: &str, stdin: Option<&[u8]>, any_of: &[&str]) -> Run {
    fails_with_code(tmp, src, stdin, any_of, 1)
}

/// As `fails_without_output`, for a source that holds several images and a command line
/// that names none of them: a usage error (exit 2) listing them.
fn needs_a_choice(tmp: &Path, src: &str) -> Run {
    fails_with_code(tmp, src, None, &[], 2)
}

fn fails_with_code(tmp: &Path, src: &str, stdin: Option<&[u8]>, any_of: &[&str], code: i32) -> Run {
    let out_dir = tmp.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("rootfs.tar");
    let args = [src, "-o", out.to_str().unwrap()];
    let r = match stdin {
        Some(data) => oci2wsl_stdin(&args, data),
        None => oci2wsl(&args),
    };
    if code == 1 {
        r.assert_failure(any_of);
    } else {
        r.assert_usage_failure(any_of);
    }
    assert_dir_holds(&out_dir, &[]);
    r
}

// ------------------------------------------------------------------------------ oci: layouts

#[test]
fn oci_layout_by_tag() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let (s, o) = (sample().build(), other().build());
    let dir = tmp.path().join("layout");
    write_oci_layout(&dir, &[(Some("v1"), &s), (Some("v2"), &o)]);
    let got = output_of(&["-q", &format!("oci:{}:v1", dir.display())]);
    assert_same_output(&got, &want, "oci:DIR:v1");
    let got = Listing::parse(&output_of(&["-q", &format!("oci:{}:v2", dir.display())]));
    assert_eq!(got.sorted_paths(), ["other"]);
}

#[test]
fn oci_layout_by_digest() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let (s, o) = (sample().build(), other().build());
    let dir = tmp.path().join("layout");
    write_oci_layout(&dir, &[(Some("v2"), &o), (Some("v1"), &s)]);
    let got = output_of(&[
        "-q",
        &format!("oci:{}@{}", dir.display(), s.manifest.digest),
    ]);
    assert_same_output(&got, &want, "oci:DIR@DIGEST");
}

#[test]
fn oci_layout_with_one_image_needs_no_tag() {
    let want = reference();
    for tag in [Some("only"), None] {
        let tmp = tempfile::tempdir().unwrap();
        let s = sample().build();
        let dir = tmp.path().join("layout");
        write_oci_layout(&dir, &[(tag, &s)]);
        let got = output_of(&["-q", &format!("oci:{}", dir.display())]);
        assert_same_output(
            &got,
            &want,
            &format!("oci:DIR with tag {tag:?} in index.json"),
        );
    }
}

#[test]
fn oci_layout_with_several_images_and_no_tag_lists_the_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, o) = (sample().build(), other().build());
    let dir = tmp.path().join("layout");
    write_oci_layout(&dir, &[(Some("alpha-tag"), &s), (Some("beta-tag"), &o)]);
    let r = needs_a_choice(tmp.path(), &format!("oci:{}", dir.display()));
    r.assert_stderr_has_all(&["alpha-tag", "beta-tag"]);
}

#[test]
fn oci_layout_with_an_unknown_tag_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample().build();
    let dir = tmp.path().join("layout");
    write_oci_layout(&dir, &[(Some("present"), &s)]);
    let r = fails_without_output(
        tmp.path(),
        &format!("oci:{}:absent-tag", dir.display()),
        None,
        &[],
    );
    r.assert_stderr_has_all(&["absent-tag"]);
}

#[test]
fn oci_layout_with_a_missing_blob_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample().build();
    let src = oci_dir(tmp.path(), &s, "t");
    std::fs::remove_file(tmp.path().join("layout").join(s.layers[1].layout_path())).unwrap();
    fails_without_output(tmp.path(), &src, None, &[]);
}

// ------------------------------------------------------------------------------ oci-archive:

#[test]
fn oci_archive_file_with_and_without_tag() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let s = sample().build();
    let path = write_file(tmp.path(), "image.tar", &oci_archive(&[(Some("v1"), &s)]));
    let got = output_of(&["-q", &format!("oci-archive:{}", path.display())]);
    assert_same_output(&got, &want, "oci-archive:FILE");
    let got = output_of(&["-q", &format!("oci-archive:{}:v1", path.display())]);
    assert_same_output(&got, &want, "oci-archive:FILE:TAG");
}

#[test]
fn oci_archive_picks_a_tag_among_several() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let (s, o) = (sample().build(), other().build());
    let path = write_file(
        tmp.path(),
        "image.tar",
        &oci_archive(&[(Some("other"), &o), (Some("mine"), &s)]),
    );
    let got = output_of(&["-q", &format!("oci-archive:{}:mine", path.display())]);
    assert_same_output(&got, &want, "oci-archive:FILE:mine");
}

#[test]
fn oci_archive_from_stdin() {
    let want = reference();
    let s = sample().build();
    let got = output_of_stdin(&["-q", "oci-archive:-"], &oci_archive(&[(Some("v1"), &s)]));
    assert_same_output(&got, &want, "oci-archive:-");
}

// ------------------------------------------------------------------------------ docker-archive:

#[test]
fn docker_archive_file() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let s = sample().build();
    let tar = docker_archive(&[(&s, &["example/app:1.0"])], DockerStyle::default());
    let path = write_file(tmp.path(), "saved.tar", &tar);
    let got = output_of(&["-q", &format!("docker-archive:{}", path.display())]);
    assert_same_output(&got, &want, "docker-archive:FILE");
    let got = output_of(&[
        "-q",
        &format!("docker-archive:{}:example/app:1.0", path.display()),
    ]);
    assert_same_output(&got, &want, "docker-archive:FILE:REPO:TAG");
}

#[test]
fn docker_archive_from_stdin() {
    let want = reference();
    let s = sample().build();
    let tar = docker_archive(&[(&s, &["example/app:1.0"])], DockerStyle::default());
    let got = output_of_stdin(&["-q", "docker-archive:-"], &tar);
    assert_same_output(&got, &want, "docker-archive:-");
}

#[test]
fn docker_archive_selects_by_repo_tag_among_two_images() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let (s, o) = (sample().build(), other().build());
    let tar = docker_archive(
        &[
            (&o, &["example/other:2.0"]),
            (&s, &["example/app:1.0", "example/app:latest"]),
        ],
        DockerStyle::default(),
    );
    let path = write_file(tmp.path(), "saved.tar", &tar);
    for tag in ["example/app:1.0", "example/app:latest"] {
        let got = output_of(&["-q", &format!("docker-archive:{}:{tag}", path.display())]);
        assert_same_output(&got, &want, tag);
    }
    let got = Listing::parse(&output_of(&[
        "-q",
        &format!("docker-archive:{}:example/other:2.0", path.display()),
    ]));
    assert_eq!(got.sorted_paths(), ["other"]);

    // no choice made: say which exist
    let r = needs_a_choice(tmp.path(), &format!("docker-archive:{}", path.display()));
    r.assert_stderr_has_all(&["example/app:1.0", "example/other:2.0"]);
    // a tag that is not there
    let r = fails_without_output(
        tmp.path(),
        &format!("docker-archive:{}:example/app:9.9", path.display()),
        None,
        &[],
    );
    r.assert_stderr_has_all(&["example/app:9.9"]);
}

#[test]
fn docker_archive_with_gzip_layers_inside() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let s = sample().build();
    let style = DockerStyle {
        compressed_layers: true,
        ..Default::default()
    };
    let tar = docker_archive(&[(&s, &["example/app:1.0"])], style);
    let path = write_file(tmp.path(), "saved.tar", &tar);
    let got = output_of(&["-q", &format!("docker-archive:{}", path.display())]);
    assert_same_output(&got, &want, "docker-archive with gzip layer.tar");
    let got = output_of_stdin(&["-q", "docker-archive:-"], &tar);
    assert_same_output(&got, &want, "docker-archive:- with gzip layer.tar");
}

#[test]
fn docker_archive_with_a_symlinked_layer_tar() {
    // The same layer at two positions: Docker writes the second layer.tar as a symlink.
    let repeated = layer(vec![dir("shared"), file("shared/f", "same layer twice")]);
    let img = image(vec![
        repeated.clone(),
        layer(vec![
            file("shared/f", "overwritten in between"),
            file("mid", "m"),
        ]),
        repeated,
    ])
    .build();
    let tmp = tempfile::tempdir().unwrap();
    let want = output_of(&["-q", &oci_dir(tmp.path(), &img, "t")]);
    assert_eq!(
        Listing::parse(&want).content("shared/f"),
        b"same layer twice"
    );

    let tar = docker_archive(&[(&img, &["example/rep:1"])], DockerStyle::default());
    let links = Listing::parse(&tar)
        .entries
        .into_iter()
        .filter(|e| e.kind == OutKind::Symlink && e.raw_path.ends_with(b"/layer.tar"))
        .count();
    assert_eq!(links, 1, "the fixture holds a symlinked layer.tar");
    let path = write_file(tmp.path(), "saved.tar", &tar);
    let got = output_of(&["-q", &format!("docker-archive:{}", path.display())]);
    assert_same_output(&got, &want, "docker-archive with symlinked layer.tar");
    let got = output_of_stdin(&["-q", "docker-archive:-"], &tar);
    assert_same_output(&got, &want, "docker-archive:- with symlinked layer.tar");
}

#[test]
fn docker_archive_docker25_layout() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    // Docker 25+ stores the layers uncompressed under blobs/sha256.
    let s = image(sample_layers(Compression::None)).build();
    let o = other().build();
    let style = DockerStyle {
        modern: true,
        ..Default::default()
    };
    let tar = docker_archive(
        &[(&s, &["example/app:1.0"]), (&o, &["example/other:2.0"])],
        style,
    );
    let path = write_file(tmp.path(), "saved.tar", &tar);
    let got = output_of(&[
        "-q",
        &format!("docker-archive:{}:example/app:1.0", path.display()),
    ]);
    assert_same_output(&got, &want, "docker-archive (Docker 25+)");
    let got = output_of_stdin(&["-q", "docker-archive:-:example/app:1.0"], &tar);
    assert_same_output(&got, &want, "docker-archive:- (Docker 25+)");
}

#[test]
fn docker_archive_with_a_wrong_diff_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = sample().corrupt(Corruption::DiffId(1)).build();
    let tar = docker_archive(&[(&s, &["example/app:1.0"])], DockerStyle::default());
    let path = write_file(tmp.path(), "saved.tar", &tar);
    fails_without_output(
        tmp.path(),
        &format!("docker-archive:{}", path.display()),
        None,
        &["digest"],
    );
    fails_without_output(tmp.path(), "docker-archive:-", Some(&tar), &["digest"]);
}

// ------------------------------------------------------------------------------ platforms

fn arch_image(platform: &str) -> Image {
    image(vec![
        layer(vec![dir("etc"), file("etc/arch", platform)]),
        layer(vec![file("etc/common", "same everywhere")]),
    ])
    .platform(platform)
    .build()
}

fn multi_platform_layout(tmp: &Path, docker: bool) -> String {
    let imgs = [
        arch_image("linux/amd64"),
        arch_image("linux/arm64"),
        arch_image("linux/arm/v7"),
    ];
    let refs: Vec<&Image> = imgs.iter().collect();
    let mut b = index(&refs).with_attestation();
    if docker {
        b = b.docker_manifest_list();
    }
    let idx = b.build();
    let dir = tmp.join("layout");
    write_oci_layout(&dir, &[(Some("multi"), &idx)]);
    format!("oci:{}:multi", dir.display())
}

fn arch_of(out: &[u8]) -> String {
    String::from_utf8(Listing::parse(out).content("etc/arch")).unwrap()
}

#[test]
fn multi_platform_index_picks_the_asked_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let src = multi_platform_layout(tmp.path(), false);
    assert_eq!(
        arch_of(&output_of(&["-q", "--platform", "linux/arm64", &src])),
        "linux/arm64"
    );
    assert_eq!(
        arch_of(&output_of(&["-q", "--platform", "linux/amd64", &src])),
        "linux/amd64"
    );
    assert_eq!(
        arch_of(&output_of(&["-q", "--platform", "linux/arm/v7", &src])),
        "linux/arm/v7"
    );
}

#[test]
fn multi_platform_index_defaults_to_linux_and_the_host_arch() {
    let tmp = tempfile::tempdir().unwrap();
    let src = multi_platform_layout(tmp.path(), false);
    let want = host_platform().to_string();
    if ["linux/amd64", "linux/arm64"].contains(&want.as_str()) {
        assert_eq!(arch_of(&output_of(&["-q", &src])), want);
    }
}

#[test]
fn unknown_platform_error_lists_the_available_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let src = multi_platform_layout(tmp.path(), false);
    let out_dir = tmp.path().join("o");
    std::fs::create_dir(&out_dir).unwrap();
    let r = oci2wsl(&[
        "--platform",
        "linux/s390x",
        &src,
        "-o",
        out_dir.join("x.tar").to_str().unwrap(),
    ]);
    r.assert_failure(&[]);
    r.assert_stderr_has_all(&["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    assert_dir_holds(&out_dir, &[]);
}

#[test]
fn attestation_manifest_is_skipped() {
    // Index = [attestation (unknown/unknown), linux/amd64]: the attestation comes first.
    let tmp = tempfile::tempdir().unwrap();
    let img = arch_image("linux/amd64");
    let idx = index(&[&img]).with_attestation().build();
    let dir = tmp.path().join("layout");
    write_oci_layout(&dir, &[(Some("t"), &idx)]);
    let out = output_of(&[
        "-q",
        "--platform",
        "linux/amd64",
        &format!("oci:{}:t", dir.display()),
    ]);
    assert_eq!(arch_of(&out), "linux/amd64");
    let r = oci2wsl(&[
        "-q",
        "--platform",
        "unknown/unknown",
        &format!("oci:{}:t", dir.display()),
    ]);
    assert_ne!(r.code, 0, "an attestation is not an image to flatten");
}

#[test]
fn same_platform_twice_is_picked_deterministically() {
    // gzip and zstd variants of one linux/amd64 image: either gives the same tree.
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let gz = sample().build();
    let zs = image(sample_layers(Compression::Zstd)).build();
    let idx = index(&[&gz, &zs]).build();
    let dir = tmp.path().join("layout");
    write_oci_layout(&dir, &[(Some("t"), &idx)]);
    let src = format!("oci:{}:t", dir.display());
    let a = output_of(&["-q", "--platform", "linux/amd64", &src]);
    let b = output_of(&["-q", "--platform", "linux/amd64", &src]);
    assert_same_output(&a, &want, "duplicate platform entries");
    assert_eq!(a, b);
}

// ------------------------------------------------------------------------------ media types

#[test]
fn docker_media_types_manifest_and_layers() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let s = sample().docker_media_types().build();
    assert_eq!(s.manifest.media_type, DOCKER_MANIFEST);
    assert_eq!(s.layers[0].media_type, DOCKER_LAYER_GZIP);
    let got = output_of(&["-q", &oci_dir(tmp.path(), &s, "t")]);
    assert_same_output(&got, &want, "Docker v2 schema 2 media types");
}

#[test]
fn docker_manifest_list_picks_the_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let imgs: Vec<Image> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| {
            image(vec![layer(vec![dir("etc"), file("etc/arch", p)])])
                .platform(p)
                .docker_media_types()
                .build()
        })
        .collect();
    let idx = index(&[&imgs[0], &imgs[1]]).docker_manifest_list().build();
    let dir = tmp.path().join("layout");
    write_oci_layout(&dir, &[(Some("t"), &idx)]);
    let src = format!("oci:{}:t", dir.display());
    assert_eq!(
        arch_of(&output_of(&["-q", "--platform", "linux/arm64", &src])),
        "linux/arm64"
    );
    assert_eq!(
        arch_of(&output_of(&["-q", "--platform", "linux/amd64", &src])),
        "linux/amd64"
    );
}

#[test]
fn every_layer_compression_gives_the_same_output() {
    let want = reference();
    for c in [
        Compression::None,
        Compression::Zstd,
        Compression::ZstdFrames,
        Compression::MultiGzip,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let img = image(sample_layers(c)).build();
        let got = output_of(&["-q", &oci_dir(tmp.path(), &img, "t")]);
        assert_same_output(&got, &want, &format!("{c:?} layers"));
    }
}

#[test]
fn mixed_layer_compressions_in_one_image() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let mut layers = sample_layers(Compression::Gzip);
    layers[0].compression = Compression::MultiGzip;
    layers[1].compression = Compression::None;
    layers[2].compression = Compression::Zstd;
    let img = image(layers).build();
    let got = output_of(&["-q", &oci_dir(tmp.path(), &img, "t")]);
    assert_same_output(&got, &want, "mixed compressions");
}

#[test]
fn multi_member_gzip_layer_is_read_to_the_end() {
    // Many entries, each its own gzip member: a reader stopping after the first member would
    // see a clean end of the tar after one entry.
    let entries: Vec<Entry> = (0..50)
        .map(|i| file(format!("f{i:02}"), format!("{i}")))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let img = image(vec![layer(entries).multi_gzip()]).build();
    let out = Listing::parse(&output_of(&["-q", &oci_dir(tmp.path(), &img, "t")]));
    assert_eq!(out.sorted_paths().len(), 50);
    assert_eq!(out.content("f49"), b"49");
}

#[test]
fn mislabelled_layer_compression_never_gives_a_wrong_tree() {
    // The media type says one compression, the magic bytes another: the product may follow
    // the magic bytes or refuse, but must not produce a different tree.
    let want = reference();
    for (c, mt) in [
        (Compression::None, OCI_LAYER_GZIP),
        (Compression::Gzip, OCI_LAYER_TAR),
        (Compression::Zstd, OCI_LAYER_GZIP),
        (Compression::Gzip, OCI_LAYER_ZSTD),
    ] {
        let mut layers = sample_layers(Compression::Gzip);
        layers[1] = layers[1].clone().compression(c).media_type(mt);
        let img = image(layers).build();
        let tmp = tempfile::tempdir().unwrap();
        let src = oci_dir(tmp.path(), &img, "t");
        let r = oci2wsl(&["-q", &src]);
        if r.code == 0 {
            r.listing();
            assert_same_output(&r.stdout, &want, &format!("{c:?} labelled {mt}"));
        } else {
            r.assert_failure(&[]);
        }
    }
}

#[test]
fn sha512_digests() {
    let want = reference();
    let tmp = tempfile::tempdir().unwrap();
    let img = sample().sha512().build();
    assert!(img.manifest.digest.starts_with("sha512:"));
    let got = output_of(&["-q", &oci_dir(tmp.path(), &img, "t")]);
    assert_same_output(&got, &want, "sha512 digests");
    let got = output_of(&[
        "-q",
        &format!(
            "oci:{}@{}",
            tmp.path().join("layout").display(),
            img.manifest.digest
        ),
    ]);
    assert_same_output(&got, &want, "sha512 digests, by digest");
}

#[test]
fn schema1_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = oci_dir(tmp.path(), &schema1_manifest(), "old");
    fails_without_output(tmp.path(), &src, None, &["schema 1", "schemaversion 1"]);
}

// ------------------------------------------------------------------------------ integrity

fn corrupt_case(b: ImageBuilder, any_of: &[&str]) {
    let img = b.build();
    let tmp = tempfile::tempdir().unwrap();
    let src = oci_dir(tmp.path(), &img, "t");
    fails_without_output(tmp.path(), &src, None, any_of);
    // the same through an archive on stdin
    let tmp = tempfile::tempdir().unwrap();
    fails_without_output(
        tmp.path(),
        "oci-archive:-",
        Some(&oci_archive(&[(Some("t"), &img)])),
        any_of,
    );
}

#[test]
fn corrupted_uncompressed_layer_is_refused() {
    corrupt_case(
        image(sample_layers(Compression::None)).corrupt(Corruption::LayerBytes(2)),
        &["digest"],
    );
}

#[test]
fn corrupted_gzip_layer_is_refused() {
    corrupt_case(
        sample().corrupt(Corruption::LayerBytes(0)),
        &["digest", "size"],
    );
}

#[test]
fn corrupted_zstd_layer_is_refused() {
    corrupt_case(
        image(sample_layers(Compression::Zstd)).corrupt(Corruption::LayerBytes(1)),
        &["digest", "size"],
    );
}

#[test]
fn layer_blob_under_a_wrong_digest_is_refused() {
    // content and diff_id are right: only the blob digest check catches it
    corrupt_case(sample().corrupt(Corruption::LayerDigest(1)), &["digest"]);
}

#[test]
fn layer_with_a_descriptor_size_too_large_is_refused() {
    corrupt_case(
        sample().corrupt(Corruption::LayerSize(2, 1)),
        &["digest", "size"],
    );
}

#[test]
fn layer_with_a_descriptor_size_too_small_is_refused() {
    corrupt_case(
        sample().corrupt(Corruption::LayerSize(2, -1)),
        &["digest", "size"],
    );
}

#[test]
fn layer_with_a_wrong_diff_id_is_refused() {
    corrupt_case(sample().corrupt(Corruption::DiffId(2)), &["digest", "diff"]);
    corrupt_case(sample().corrupt(Corruption::DiffId(0)), &["digest", "diff"]);
}

#[test]
fn corrupted_config_is_refused() {
    corrupt_case(sample().corrupt(Corruption::ConfigBytes), &["digest"]);
}

#[test]
fn corrupted_manifest_is_refused() {
    corrupt_case(sample().corrupt(Corruption::ManifestBytes), &["digest"]);
}

#[test]
fn corrupted_sha512_layer_is_refused() {
    corrupt_case(
        image(sample_layers(Compression::None))
            .sha512()
            .corrupt(Corruption::LayerBytes(1)),
        &["digest"],
    );
}
