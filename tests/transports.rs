//! Every way an image can arrive gives the same output: OCI layouts (by tag, by digest,
//! alone), oci-archive (file and stdin), docker-archive (legacy and Docker 25+, file and
//! stdin, several images, compressed layers, symlinked layer files), multi-platform
//! indexes, Docker media types, every layer compression, sha512 digests. And each broken
//! image fails with a one-line error that names what was wrong, leaving no output.

mod support;
use std::fs;
use support::*;

fn sample() -> Image {
    image(vec![
        layer(&[
            dir("etc"),
            file("etc/os-release", "ID=test\n"),
            file("etc/old", "x"),
            dir("usr"),
            file("usr/a", "a"),
        ]),
        layer(&[
            whiteout("etc/old"),
            file("usr/b", "b"),
            hardlink("usr/c", "usr/a"),
        ])
        .comp(Comp::Zstd),
        layer(&[file("usr/a", "a2")]).comp(Comp::None),
    ])
}

fn reference_output() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &sample(), "v1");
    flatten_ok(&["-q", &layout_arg(&lay, "v1")])
}

#[test]
fn layout_by_tag_digest_and_alone() {
    let expected = reference_output();
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &sample(), "v1");
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
    let mut blobs = Blobs::default();
    let a = sample().write(&mut blobs);
    let b = image(vec![layer(&[file("other", "o")])]).write(&mut blobs);
    let lay = dir.path().join("layout");
    write_layout(&lay, &blobs, &[(Some("one"), a), (Some("two"), b)]);
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
    let lay = oci_layout(dir.path(), &sample(), "v1");
    let archive = dir.path().join("img.oci.tar");
    tar_dir(&lay, &archive);
    assert_eq!(
        flatten_ok(&["-q", &format!("oci-archive:{}:v1", archive.display())]),
        expected
    );
    let bytes = fs::read(&archive).unwrap();
    let o = run(&["-q", "oci-archive:-"], Some(&bytes));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
    // A compressed archive on stdin works too.
    let o = run(
        &["-q", "oci-archive:-:v1"],
        Some(&compress(&bytes, Comp::Gzip)),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, expected);
}

#[test]
fn docker_archive_legacy_from_file_and_stdin() {
    let expected = reference_output();
    let img = sample();
    let archive = docker_archive(&[(&img, &["app:1.2"])], false);
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
    let a = sample();
    let b = image(vec![layer(&[file("only-in-b", "b")])]);
    let archive = docker_archive(
        &[
            (&a, &["app:1.2"]),
            (&b, &["docker.io/library/other:latest"]),
        ],
        false,
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
        layer(&[file("base", "b"), dir("d")]).comp(Comp::Gzip),
        layer(&[whiteout("base"), file("d/x", "x")]).comp(Comp::None),
    ]);
    // Layer 0 again on top, written as a symlink to layer 0's file: "base" comes back.
    let mut with_dup = img.clone();
    with_dup.layers.push(img.layers[0].clone());
    let archive = docker_archive(&[(&with_dup, &["dup:1"])], true);
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
    let archive = docker_archive_oci(&sample(), "app:2");
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
    let archive = docker_archive(&[(&sample(), &["a:1"])], false);
    let o = run(&["oci-archive:-"], Some(&archive));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("docker-archive"), "{}", stderr(&o));
}

#[test]
fn multi_platform_index_picks_the_platform() {
    for docker_list in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let amd = image(vec![layer(&[file("arch", "amd64")])]);
        let arm = image(vec![layer(&[file("arch", "arm64")])]).arch("arm64");
        let lay = oci_multiarch(dir.path(), &[amd, arm], "multi", docker_list);
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
        &image(vec![layer(&[file("a", "")])]).arch("arm64"),
        "t",
    );
    let err = flatten_err(&["--platform", "linux/amd64", &layout_arg(&lay, "t")]);
    assert!(err.contains("linux/arm64"), "{err}");
}

#[test]
fn docker_media_types_multi_member_gzip_and_sha512() {
    let expected = reference_output();
    let dir = tempfile::tempdir().unwrap();
    let mut img = sample().docker();
    img.layers[0].comp = Comp::GzipMulti;
    let lay = oci_layout(dir.path(), &img, "d");
    assert_eq!(flatten_ok(&["-q", &layout_arg(&lay, "d")]), expected);
    let dir = tempfile::tempdir().unwrap();
    let lay = oci_layout(dir.path(), &sample().sha512(), "s");
    assert_eq!(flatten_ok(&["-q", &layout_arg(&lay, "s")]), expected);
    assert!(fs::read_dir(lay.join("blobs/sha512")).unwrap().count() > 3);
}

#[test]
fn corrupted_blob_wrong_size_and_wrong_diff_id_are_refused() {
    for (corrupt, needle) in [
        (Corrupt::BlobByte, "digest"),
        (Corrupt::BlobSize, "bytes"),
        (Corrupt::DiffId, "diff_id"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lay = oci_layout(dir.path(), &sample().corrupt(corrupt), "t");
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
    let mut blobs = Blobs::default();
    let (d, s) = blobs.add(
        br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.to_vec(),
        false,
    );
    let (h, hs) = blobs.add(b"<html><body>login</body></html>".to_vec(), false);
    let lay = dir.path().join("layout");
    write_layout(
        &lay,
        &blobs,
        &[
            (
                Some("old"),
                serde_json::json!({"mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws", "digest": d, "size": s}),
            ),
            (
                Some("html"),
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": h, "size": hs}),
            ),
        ],
    );
    assert!(flatten_err(&[&layout_arg(&lay, "old")]).contains("schema 1"));
    assert!(flatten_err(&[&layout_arg(&lay, "html")]).contains("HTML"));

    let dir = tempfile::tempdir().unwrap();
    let mut img = sample();
    img.layers.truncate(1);
    let lay = oci_layout(dir.path(), &img, "t");
    // Rewrite the layer's media type to something unknown.
    let mut blobs = Blobs::default();
    let desc = img.write(&mut blobs);
    let manifest_digest = desc["digest"].as_str().unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&blobs.blobs[manifest_digest]).unwrap();
    manifest["layers"][0]["mediaType"] = "application/x-unknown".into();
    let mut b2 = Blobs {
        blobs: blobs.blobs.clone(),
    };
    let (md, ms) = b2.add(serde_json::to_vec(&manifest).unwrap(), false);
    fs::remove_dir_all(&lay).unwrap();
    write_layout(
        &lay,
        &b2,
        &[(
            Some("t"),
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": md, "size": ms}),
        )],
    );
    let err = flatten_err(&[&layout_arg(&lay, "t")]);
    assert!(err.contains("application/x-unknown"), "{err}");
}

#[test]
fn truncated_and_corrupt_compressed_layers() {
    for comp in [Comp::Gzip, Comp::Zstd, Comp::None] {
        // A layer whose blob is cut short but whose descriptor matches the cut bytes: the
        // blob digest passes, decompression or the tar or the diff_id must catch it.
        let img = image(vec![layer(&[
            file("big", &"x".repeat(50_000)),
            file("after", "a"),
        ])
        .comp(comp)]);
        let mut blobs = Blobs::default();
        let desc = img.write(&mut blobs);
        let manifest: serde_json::Value =
            serde_json::from_slice(&blobs.blobs[desc["digest"].as_str().unwrap()]).unwrap();
        let layer_digest = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let mut blob = blobs.blobs[&layer_digest].clone();
        blob.truncate(blob.len() * 2 / 3);
        let mut b2 = Blobs::default();
        for (d, data) in &blobs.blobs {
            if *d != layer_digest && *d != desc["digest"].as_str().unwrap() {
                b2.blobs.insert(d.clone(), data.clone());
            }
        }
        let (nd, ns) = b2.add(blob, false);
        let mut m2 = manifest.clone();
        m2["layers"][0]["digest"] = nd.into();
        m2["layers"][0]["size"] = ns.into();
        let (md, ms) = b2.add(serde_json::to_vec(&m2).unwrap(), false);
        let dir = tempfile::tempdir().unwrap();
        let lay = dir.path().join("layout");
        write_layout(
            &lay,
            &b2,
            &[(
                Some("t"),
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": md, "size": ms}),
            )],
        );
        let err = flatten_err(&[&layout_arg(&lay, "t")]);
        assert!(err.contains("layer 1/1"), "{comp:?}: {err}");
    }
}
