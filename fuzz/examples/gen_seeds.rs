//! Writes the seed corpus, one directory per fuzz target, into `fuzz/seeds/` (committed;
//! small). Run: `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`.
//!
//! Seeds are valid inputs, so that the fuzzer starts deep inside the code: a small
//! multi-layer image with every entry kind and every layer rule, the example image of
//! testdata/, oci- and docker-archives of both, manifests, references and challenges.

use oci2wsl_fuzz::{
    build_archive, encode_flatten_layers, encode_ops, encode_tar, Format, TarEntry, SECTION,
};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A small image that touches every rule: implicit parents, whiteouts, an opaque directory,
/// hardlinks (within a layer and to a lower one, and to a target replaced later), a symlink
/// that a later directory replaces, long names (ustar prefix, PAX, GNU), a big uid, xattrs,
/// devices and a FIFO.
fn small_image() -> Vec<Vec<u8>> {
    let mut long = TarEntry::file(
        &format!("usr/share/{}/file", "d".repeat(120)),
        b"long name\n",
    );
    long.format = Format::Gnu;
    let mut pax = TarEntry::file(&format!("opt/{}", "p".repeat(150)), b"pax name\n");
    pax.pax_path = true;
    let mut big = TarEntry::file("home/user/.profile", b"export A=1\n");
    big.uid = 3_000_000_000;
    big.xattrs = vec![(b"user.note".to_vec(), b"hello".to_vec())];
    let mut dev = TarEntry::new(b"dev/null", b'3');
    dev.dev = (1, 3);
    dev.mode = 0o666;
    let mut setuid = TarEntry::file("bin/su", b"#!su\n");
    setuid.mode = 0o4755;
    let layer0 = vec![
        TarEntry::dir("./"),
        TarEntry::dir("bin/"),
        TarEntry::file("bin/sh", b"#!sh\n"),
        TarEntry::link("bin/bash", b'1', "bin/sh"),
        setuid,
        TarEntry::dir("etc/"),
        TarEntry::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        TarEntry::file("etc/motd", b"hello\n"),
        TarEntry::link("lib", b'2', "usr/lib"),
        TarEntry::dir("usr/lib/"),
        TarEntry::file("usr/lib/libc.so", &[0x7f; 700]),
        TarEntry::file("usr/share/doc/readme", b"docs\n"),
        dev,
        TarEntry::new(b"run/fifo", b'6'),
        big,
    ];
    let mut tmp = TarEntry::dir("tmp/");
    tmp.mode = 0o1777;
    let layer1 = vec![
        TarEntry::file("etc/.wh.motd", b""),
        TarEntry::file("usr/share/doc/.wh..wh..opq", b""),
        TarEntry::file("usr/share/doc/new", b"new docs\n"),
        TarEntry::link("bin/dash", b'1', "bin/sh"),
        TarEntry::file("lib/x", b"lib is a directory now\n"),
        tmp,
        long,
    ];
    let layer2 = vec![
        TarEntry::file("bin/sh", b"#!new sh\n"),
        TarEntry::file("etc/passwd", b"root:x:0:0::/root:/bin/bash\n"),
        TarEntry::file(".wh.run", b""),
        pax,
        TarEntry::link("etc/alias", b'2', "/etc/passwd"),
    ];
    [layer0, layer1, layer2]
        .iter()
        .map(|l| encode_tar(l))
        .collect()
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/example")
}

/// The example image's (manifest, config, uncompressed layer tars).
fn example_image() -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let blobs = example_dir().join("blobs/sha256");
    let read = |d: &str| std::fs::read(blobs.join(d.trim_start_matches("sha256:"))).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example_dir().join("index.json")).unwrap()).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config = read(m["config"]["digest"].as_str().unwrap());
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(&read(l["digest"].as_str().unwrap())[..])
                .read_to_end(&mut tar)
                .unwrap();
            // The example's layers are padded to tar's 10 KiB records: two zero blocks will do.
            while tar.len() > 1024 && tar[tar.len() - 1536..].iter().all(|b| *b == 0) {
                tar.truncate(tar.len() - 512);
            }
            tar
        })
        .collect();
    (manifest, config, layers)
}

fn config_json(layers: usize) -> String {
    let ids: Vec<String> = (0..layers).map(|i| format!("\"sha256:$D{i}\"")).collect();
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"User":"0"}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        ids.join(",")
    )
}

/// Templates for [`build_archive`]: (kind, sections).
fn archive_templates(tars: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    let n = tars.len();
    let oci_layers: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$L{i}","size":#L{i}}}"#
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$C","size":#C}},"layers":[{}]}}"#,
        oci_layers.join(",")
    );
    let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$M","size":#M,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}"#;
    let docker_legacy: Vec<String> = (0..n).map(|i| format!("\"$L{i}/layer.tar\"")).collect();
    let docker_25: Vec<String> = (0..n).map(|i| format!("\"blobs/sha256/$L{i}\"")).collect();
    let docker = |config: &str, layers: &[String]| {
        format!(
            r#"[{{"Config":"{config}","RepoTags":["app:latest"],"Layers":[{}]}}]"#,
            layers.join(",")
        )
    };
    let join = |parts: &[&[u8]]| -> Vec<u8> {
        let mut out = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(SECTION);
            }
            out.extend_from_slice(p);
        }
        out
    };
    let config = config_json(n);
    let mut oci: Vec<&[u8]> = vec![index.as_bytes(), manifest.as_bytes(), config.as_bytes()];
    oci.extend(tars.iter().map(|t| t.as_slice()));
    let legacy = docker("$C.json", &docker_legacy);
    let mut dl: Vec<&[u8]> = vec![legacy.as_bytes(), config.as_bytes()];
    dl.extend(tars.iter().map(|t| t.as_slice()));
    let modern = docker("blobs/sha256/$C", &docker_25);
    let mut dm: Vec<&[u8]> = vec![modern.as_bytes(), config.as_bytes()];
    dm.extend(tars.iter().map(|t| t.as_slice()));
    vec![
        (0b0000_0010, join(&oci)), // oci-archive, gzip layers
        (0b0000_1000, join(&oci)), // gzipped oci-archive, plain layers
        (0b0000_0111, join(&dl)),  // docker-archive (legacy), zstd layers
        (0b0001_0001, join(&dl)),  // docker-archive, layer.tar symlinks
        (0b0000_0101, join(&dm)),  // docker 25+ archive, two-member gzip layers
    ]
}

fn structured() -> Vec<(&'static str, Vec<u8>)> {
    // (op, a, b, c); see decode_structured. Names: 0 a, 1 b, 2 c, 3 a/b, 4 a/c, 5 b/a,
    // 6 a/b/c, 9 d, 12 a-b, 13 a0, 16 long, 17 prefix/long, 18 non-UTF-8, 22 root.
    let new_layer = |how: u8| (10, 0, how, 0);
    vec![
        (
            "whiteouts",
            encode_ops(&[
                (3, 0, 0, 4),
                (0, 3, 3, 0),
                (0, 4, 9, 0),
                (0, 12, 1, 0),
                (0, 13, 1, 0),
                new_layer(0),
                (6, 0, 0, 0),
                (0, 9, 2, 0),
            ]),
        ),
        (
            "opaque",
            encode_ops(&[
                (3, 0, 0, 0),
                (0, 3, 1, 0),
                (3, 6, 0, 0),
                new_layer(1),
                (0, 4, 2, 0),
                (7, 0, 0, 0),
                (0x13, 0, 0, 0),
            ]),
        ),
        (
            "hardlinks",
            encode_ops(&[
                (0, 0, 5, 0),
                (5, 1, 0, 0),
                (4, 2, 0, 0),
                (5, 9, 2, 0),
                new_layer(2),
                (0, 0, 3, 0),
                (5, 3, 1, 2),
                new_layer(3),
                (6, 0, 0, 0),
            ]),
        ),
        (
            "replace",
            encode_ops(&[
                (3, 0, 0, 0),
                (0, 3, 0, 0),
                (4, 1, 1, 0),
                new_layer(0),
                (0, 0, 0, 0),
                (0, 5, 0, 0),
                new_layer(0),
                (0x23, 0, 0, 0x24),
                (0, 6, 0, 0),
            ]),
        ),
        (
            "encodings",
            encode_ops(&[
                (0, 16, 1, 0x08),
                (0, 17, 1, 0x10),
                (0x80, 18, 1, 0x40),
                (3, 17, 0, 0x20),
                (0, 0, 2, 0x21),
                (0, 1, 200, 0x86),
                (8, 9, 0, 0),
                (9, 2, 3, 0),
                (4, 14, 6, 0x80),
                (3, 22, 0, 0),
            ]),
        ),
        (
            "hostile",
            encode_ops(&[(0, 0, 0, 0), (15, 0, 0, 0), new_layer(0), (15, 7, 0, 0)]),
        ),
    ]
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), data).unwrap();
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let small = small_image();
    let (manifest, config, example) = example_image();

    // Kept under 200 KB in all: the flags byte of a seed is mutated like any other.
    write(
        &dir,
        "flatten_layers",
        "small",
        &encode_flatten_layers(&small, 0b11_10_01),
    );
    write(
        &dir,
        "flatten_layers",
        "example",
        &encode_flatten_layers(&example, 0),
    );
    for (i, tar) in small.iter().enumerate() {
        write(
            &dir,
            "tar_reader",
            &format!("layer{i}"),
            &[&[1u8][..], tar].concat(),
        );
    }
    for (name, ops) in structured() {
        write(&dir, "flatten_structured", name, &ops);
    }
    let templates = archive_templates(&small);
    for i in [0, 3, 4] {
        let (kind, sections) = &templates[i];
        write(
            &dir,
            "archive",
            &format!("template{i}"),
            &[&[b'T', *kind][..], sections].concat(),
        );
    }
    let (kind, sections) = &templates[1];
    write(
        &dir,
        "archive",
        "gzipped-oci-archive",
        &build_archive(*kind, sections),
    );
    let (kind, sections) = &templates[2];
    let zstd_layers = build_archive(*kind & !8, sections);
    write(
        &dir,
        "archive",
        "docker-archive",
        &[&b"R"[..], &zstd_layers].concat(),
    );
    let index = std::fs::read(example_dir().join("index.json")).unwrap();
    let chain = |docs: &[&[u8]], declared: u8| -> Vec<u8> {
        let mut out = vec![declared];
        for (i, d) in docs.iter().enumerate() {
            if i > 0 {
                out.push(0);
            }
            out.extend_from_slice(d);
        }
        out
    };
    write(
        &dir,
        "manifest",
        "index-chain",
        &chain(&[&index, &manifest, &config], 0),
    );
    write(
        &dir,
        "manifest",
        "manifest-chain",
        &chain(&[&manifest, &config], 2),
    );
    write(&dir, "manifest", "config", &chain(&[&config], 0));
    let docker_list = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":10,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10,"platform":{"architecture":"unknown","os":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}},{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha512:22222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222","size":10,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
    write(
        &dir,
        "manifest",
        "docker-list",
        &chain(&[docker_list, &manifest, &config], 3),
    );

    let references = [
        "postgres",
        "postgres:16",
        "docker://ghcr.io/owner/app@sha256:5d5ef2345005aec65cf1c614d9f81c8decba5a1b32fbe860c5387d35aed203b1",
        "localhost:5000/team/app:v1.2-rc_3",
        "oci:/images/layout:latest",
        "oci:C:\\images\\layout@sha256:5d5ef2345005aec65cf1c614d9f81c8decba5a1b32fbe860c5387d35aed203b1",
        "oci-archive:-",
        "oci-archive:img.tar:tag",
        "docker-archive:save.tar:docker.io/library/app:1.2",
        "docker-archive:-",
        "[::1]:5000/app:1",
        "index.docker.io/library/debian:bookworm",
    ];
    for (i, r) in references.iter().enumerate() {
        write(&dir, "reference", &format!("ref{i}"), r.as_bytes());
    }
    let challenges = [
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/postgres:pull""#,
        r#"Basic realm="Registry Realm""#,
        r#"Bearer realm=http://x/token, service=svc, error="invalid_token""#,
        r#"Bearer realm="a\"b\\c",scope="repository:a:pull,push""#,
    ];
    for (i, c) in challenges.iter().enumerate() {
        write(
            &dir,
            "www_authenticate",
            &format!("challenge{i}"),
            c.as_bytes(),
        );
    }

    wsl_seeds(&dir);
}

/// The `wsl` target's input: a flags byte, then NUL-separated config, passwd, wsl.conf,
/// profile and `--user` (see `oci2wsl_fuzz::run_wsl`).
fn wsl_seeds(dir: &Path) {
    let passwd: &[u8] = b"root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000:App:/home/app:/bin/sh\n";
    let wsl_conf: &[u8] = b"[boot]\nsystemd=true\n\n[user]\ndefault=root\n";
    let profile: &[u8] = b"# /etc/profile\nfor i in /etc/profile.d/*.sh; do . \"$i\"; done\n";
    let config = serde_json::to_vec(&serde_json::json!({
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "User": "app",
            "WorkingDir": "/srv",
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["postgres", "-c", "it's"],
            "ExposedPorts": {"5432/tcp": {}},
        },
    }))
    .unwrap();
    let lines: &[u8] = b"1000:1000\n/work dir\n2020-02-29T12:00:00.5-08:00\n/bin/sh\t-c\n\
                         exec \"$@\"\tx\nFOO=bar baz\nEMPTY=\nHOME=/nowhere";
    let seeds: [(&str, u8, Vec<&[u8]>); 5] = [
        (
            "json-config-all-files",
            0b101,
            vec![&config, passwd, wsl_conf, profile],
        ),
        (
            "json-config-second-layer",
            0b1000,
            vec![&config, passwd, wsl_conf, profile],
        ),
        (
            "line-config-user-by-uid",
            0b1,
            vec![lines, passwd, b"", profile],
        ),
        (
            "line-config-user-flag",
            0b10,
            vec![b"\n\n\n\n", passwd, wsl_conf, profile, b"app"],
        ),
        ("no-files", 0, vec![b"root\n/\n"]),
    ];
    for (name, flags, parts) in seeds {
        let mut data = vec![flags];
        data.extend(parts.join(&0u8));
        write(dir, "wsl", name, &data);
    }
}
