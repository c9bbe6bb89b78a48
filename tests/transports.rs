//! Every way an image can arrive gives the same output: OCI layouts (by tag, by digest,
//! alone), oci-archive (file and stdin), docker-archive (legacy and Docker 25+, file and
//! stdin, several images, compressed layers, symlinked layer files), multi-platform
//! indexes, Docker media types, every layer compression, sha512 digests. And each broken
//! image fails with a one-line error that names what was wrong, leaving no output.

mod common;
use common::*;
use std::fs;

/// A legacy `docker save` whose `layer.tar` files hold each layer as it is stored (gzip,
/// zstd or plain), a repeated layer written as a symlink.
const STORED_AS_IS: DockerStyle = DockerStyle {
    modern: false,
    compressed_layers: true,
};

fn sample() -> ImageBuilder {
    image(vec![
        layer(vec![
            dir("etc"),
            file("etc/os-release", "ID=test\n"),
            file("etc/old", "x"),
            dir("usr"),
            file("usr/a", "a"),
        ]),
        layer(vec![
            whiteout("etc/old"),
            file("usr/b", "b"),
            hardlink("usr/c", "usr/a"),
        ])
        .zstd(),
        layer(vec![file("usr/a", "a2")]).uncompressed(),
    ])
}

fn reference_output() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &sample().build(), "v1");
    flatten_ok(&["-q", &layout_arg(&lay, "v1")])
}

#[test]
fn layout_by_tag_digest_and_alone() {
    let expected = reference_output();
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &sample().build(), "v1");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(lay.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        flatten_ok(&["-q", &format!("oci:{}", lay.display())]),
        expected
    );
    assert_eq!(
        flatten_ok(&["-q", &format!("oci:{}@{digest}", lay.display())]),
        expected
    );
    let t = tree(&expected);
    assert_eq!(content_of(&t, "usr/a"), b"a2");
    assert_eq!(content_of(&t, "usr/c"), b"a");
    assert!(!t.contains_key("etc/old"));
}

#[test]
fn layout_with_several_images_needs_a_tag_and_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample().build();
    let b = image(vec![layer(vec![file("other", "o")])]).build();
    let lay = dir.path().join("layout");
    write_oci_layout(&lay, &[(Some("one"), &a), (Some("two"), &b)]);
    let err = usage_err(&[&format!("oci:{}", lay.display())]);
    assert!(err.contains("one") && err.contains("two"), "{err}");
    let err = flatten_err(&[&layout_arg(&lay, "three")]);
    assert!(err.contains("three") && err.contains("one, two"), "{err}");
    assert_eq!(
        flatten_ok(&["-q", &layout_arg(&lay, "one")]),
        reference_output()
    );
}

#[test]
fn oci_archive_from_file_and_stdin() {
    let expected = reference_output();
    let dir = tempfile::tempdir().unwrap();
    let files = oci_layout_files(&[(Some("v1"), &sample().build())]);
    // Names as `tar -C layout -cf img.oci.tar .` writes them: `./`, `./blobs/`, …
    let dotted: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(p, b)| (format!("./{p}"), b))
        .collect();
    let archive = dir.path().join("img.oci.tar");
    fs::write(&archive, pack(&dotted, &[])).unwrap();
    assert_eq!(
        flatten_ok(&["-q", &format!("oci-archive:{}:v1", archive.display())]),
        expected
    );
    let bytes = fs::read(&archive).unwrap();
    let o = run(&["-q", "oci-archive:-"], Some(&bytes));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
    // A compressed archive on stdin works too.
    let o = run(&["-q", "oci-archive:-:v1"], Some(&gzip(&bytes)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
}

#[test]
fn docker_archive_legacy_from_file_and_stdin() {
    let expected = reference_output();
    let img = sample().build();
    let archive = docker_archive(&[(&img, &["app:1.2"])], STORED_AS_IS);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.tar");
    fs::write(&path, &archive).unwrap();
    assert_eq!(
        flatten_ok(&["-q", &format!("docker-archive:{}", path.display())]),
        expected
    );
    assert_eq!(
        flatten_ok(&["-q", &format!("docker-archive:{}:app:1.2", path.display())]),
        expected
    );
    let o = run(&["-q", "docker-archive:-"], Some(&archive));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
}

#[test]
fn docker_archive_picks_by_repo_tag_among_several() {
    let a = sample().build();
    let b = image(vec![layer(vec![file("only-in-b", "b")])]).build();
    let archive = docker_archive(
        &[
            (&a, &["app:1.2"]),
            (&b, &["docker.io/library/other:latest"]),
        ],
        STORED_AS_IS,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.tar");
    fs::write(&path, &archive).unwrap();
    let err = usage_err(&[&format!("docker-archive:{}", path.display())]);
    assert!(
        err.contains("app:1.2") && err.contains("other:latest"),
        "{err}"
    );
    let t = tree(&flatten_ok(&[
        "-q",
        &format!("docker-archive:{}:other", path.display()),
    ]));
    assert!(t.contains_key("only-in-b"));
    let err = flatten_err(&[&format!("docker-archive:{}:nope:1", path.display())]);
    assert!(err.contains("nope:1"), "{err}");
}

#[test]
fn docker_archive_with_gzip_layers_and_symlinked_layer_files() {
    let img = image(vec![
        layer(vec![file("base", "b"), dir("d")]).gzip(),
        layer(vec![whiteout("base"), file("d/x", "x")]).uncompressed(),
    ]);
    // Layer 0 again on top, written as a symlink to layer 0's file: "base" comes back.
    let mut with_dup = img.clone();
    with_dup.layers.push(img.layers[0].clone());
    let archive = docker_archive(&[(&with_dup.build(), &["dup:1"])], STORED_AS_IS);
    let symlinks = tar::Archive::new(&archive[..])
        .entries()
        .unwrap()
        .filter(|e| e.as_ref().unwrap().header().entry_type() == tar::EntryType::Symlink)
        .count();
    assert_eq!(
        symlinks, 1,
        "the repeated layer is a symlink in the archive"
    );
    let o = run(&["-q", "docker-archive:-"], Some(&archive));
    assert!(o.status.success(), "{}", stderr(&o));
    let t = tree(&o.stdout);
    assert_eq!(content_of(&t, "base"), b"b");
    assert_eq!(content_of(&t, "d/x"), b"x");
}

#[test]
fn docker_25_archive_with_oci_blobs() {
    let expected = reference_output();
    let archive = docker_archive(
        &[(&sample().build(), &["app:2"])],
        DockerStyle {
            modern: true,
            ..DockerStyle::default()
        },
    );
    let o = run(&["-q", "docker-archive:-:app:2"], Some(&archive));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
    // The same archive is a valid OCI layout in a tar as well.
    let o = run(&["-q", "oci-archive:-"], Some(&archive));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
}

#[test]
fn wrong_archive_kind_says_which_to_use() {
    let archive = docker_archive(&[(&sample().build(), &["a:1"])], STORED_AS_IS);
    let o = run(&["oci-archive:-"], Some(&archive));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("docker-archive"), "{}", stderr(&o));
}

#[test]
fn multi_platform_index_picks_the_platform() {
    for docker_list in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let amd = image(vec![layer(vec![file("arch", "amd64")])]).build();
        let arm = image(vec![layer(vec![file("arch", "arm64")])])
            .platform("linux/arm64")
            .build();
        let mut idx = index(&[&amd, &arm]).with_attestation();
        if docker_list {
            idx = idx.docker_manifest_list();
        }
        let lay = oci_layout(dir.path(), &idx.build(), "multi");
        let arg = layout_arg(&lay, "multi");
        let t = tree(&flatten_ok(&["-q", "--platform", "linux/arm64", &arg]));
        assert_eq!(content_of(&t, "arch"), b"arm64");
        let t = tree(&flatten_ok(&["-q", "--platform", "linux/amd64", &arg]));
        assert_eq!(content_of(&t, "arch"), b"amd64");
        if std::env::consts::ARCH == "x86_64" {
            let t = tree(&flatten_ok(&["-q", &arg]));
            assert_eq!(content_of(&t, "arch"), b"amd64");
        }
        let err = flatten_err(&["--platform", "linux/s390x", &arg]);
        assert!(err.contains("linux/amd64, linux/arm64"), "{err}");
        assert!(
            !err.contains("unknown/unknown"),
            "attestations are not platforms: {err}"
        );
    }
}

#[test]
fn explicit_platform_that_a_single_image_does_not_have_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(
        dir.path(),
        &image(vec![layer(vec![file("a", "")])])
            .platform("linux/arm64")
            .build(),
        "t",
    );
    let err = flatten_err(&["--platform", "linux/amd64", &layout_arg(&lay, "t")]);
    assert!(err.contains("linux/arm64"), "{err}");
}

#[test]
fn docker_media_types_multi_member_gzip_and_sha512() {
    let expected = reference_output();
    let dir = tempfile::tempdir().unwrap();
    let mut img = sample().docker_media_types();
    img.layers[0].compression = Compression::GzipHalves;
    img.layers[1].media_type = Some("application/vnd.docker.image.rootfs.diff.tar.zstd".into());
    img.layers[2].media_type = Some("application/vnd.docker.image.rootfs.diff.tar".into());
    let lay = oci_layout(dir.path(), &img.build(), "d");
    assert_eq!(flatten_ok(&["-q", &layout_arg(&lay, "d")]), expected);
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &sample().sha512().build(), "s");
    assert_eq!(flatten_ok(&["-q", &layout_arg(&lay, "s")]), expected);
    assert!(fs::read_dir(lay.join("blobs/sha512")).unwrap().count() > 3);
}

#[test]
fn corrupted_blob_wrong_size_and_wrong_diff_id_are_refused() {
    for (corrupt, needle) in [
        (Corruption::BlobByte(2), "digest"),
        (Corruption::LayerSize(2, 10), "bytes"),
        (Corruption::DiffId(2), "diff_id"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lay = oci_layout(dir.path(), &sample().corrupt(corrupt.clone()).build(), "t");
        let out = dir.path().join("out.tar.gz");
        let o = run(&[&layout_arg(&lay, "t"), "-o", out.to_str().unwrap()], None);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{corrupt:?}: {err}");
        assert!(
            err.contains(needle) && err.contains("layer 3/3"),
            "{corrupt:?}: {err}"
        );
        assert!(!out.exists(), "{corrupt:?} left an output file");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "{corrupt:?} left a file behind"
        );
    }
}

#[test]
fn schema1_html_and_unknown_media_types_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let schema1 = RawManifest {
        blob: Blob::new(
            DOCKER_SCHEMA1,
            Algo::Sha256,
            br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.to_vec(),
        ),
    };
    let html = RawManifest {
        blob: Blob::new(
            OCI_MANIFEST,
            Algo::Sha256,
            b"<html><body>login</body></html>".to_vec(),
        ),
    };
    let lay = dir.path().join("layout");
    write_oci_layout(&lay, &[(Some("old"), &schema1), (Some("html"), &html)]);
    assert!(flatten_err(&[&layout_arg(&lay, "old")]).contains("schema 1"));
    assert!(flatten_err(&[&layout_arg(&lay, "html")]).contains("HTML"));

    let dir = tempfile::tempdir().unwrap();
    let mut img = sample();
    img.layers.truncate(1);
    // The layer's media type is something unknown.
    img.layers[0].media_type = Some("application/x-unknown".into());
    let lay = oci_layout(dir.path(), &img.build(), "t");
    let err = flatten_err(&[&layout_arg(&lay, "t")]);
    assert!(err.contains("application/x-unknown"), "{err}");
}

#[test]
fn truncated_and_corrupt_compressed_layers() {
    for comp in [Compression::Gzip, Compression::Zstd, Compression::None] {
        // A layer whose blob is cut short but whose descriptor matches the cut bytes: the
        // blob digest passes, decompression or the tar or the diff_id must catch it.
        let mut img = image(vec![layer(vec![
            file("big", "x".repeat(50_000)),
            file("after", "a"),
        ])
        .compression(comp)])
        .build();
        let blob = &img.layers[0];
        let mut cut = blob.bytes.clone();
        cut.truncate(cut.len() * 2 / 3);
        img.layers[0] = Blob::new(&blob.media_type.clone(), Algo::Sha256, cut);
        img.refresh_manifest();
        let dir = tempfile::tempdir().unwrap();
        let lay = oci_layout(dir.path(), &img, "t");
        let err = flatten_err(&[&layout_arg(&lay, "t")]);
        assert!(err.contains("layer 1/1"), "{comp:?}: {err}");
    }
}
