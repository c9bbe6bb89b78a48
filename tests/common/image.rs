//! Images built in memory and written in every form the product reads.
//!
//! * [`image`] turns layers (entries + compression) into blobs with correct digests, sizes and
//!   `rootfs.diff_ids`, unless a [`Corruption`] says otherwise.
//! * [`index`] makes a multi-platform OCI index or Docker manifest list, optionally with an
//!   attestation manifest (platform `unknown/unknown`).
//! * [`write_oci_layout`] / [`oci_archive`] / [`docker_archive`] write the result as an OCI image
//!   layout directory, an OCI layout packed in a tar, or a `docker save` tarball (legacy
//!   `<id>/layer.tar`, or the Docker 25+ `blobs/sha256` form).
//!
//! ```ignore
//! let img = image(vec![
//!     layer(vec![dir("etc"), file("etc/hostname", "box\n")]),
//!     layer(vec![whiteout("etc/hostname")]).zstd(),
//! ])
//! .build();
//! let src = oci_dir(tmp.path(), &img, "latest"); // "oci:/tmp/…/layout:latest"
//! ```

use super::layer::{encode_chunks, encode_tar, file as tar_file, Entry, Kind};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------------------ media types

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

// ------------------------------------------------------------------------------ digests

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Sha256,
    Sha512,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }
    /// `ALGO:HEX` of `bytes`.
    pub fn digest(self, bytes: &[u8]) -> String {
        match self {
            Algo::Sha256 => format!("sha256:{}", hex(&Sha256::digest(bytes))),
            Algo::Sha512 => format!("sha512:{}", hex(&Sha512::digest(bytes))),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:HEX` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    Algo::Sha256.digest(bytes)
}

/// Plain hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

// ------------------------------------------------------------------------------ blobs

/// A content-addressed blob as a descriptor names it, and the bytes stored for it (which a
/// corruption may have made disagree with the descriptor).
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    /// `ALGO:HEX` as written in the descriptor.
    pub digest: String,
    /// `size` as written in the descriptor.
    pub size: i64,
    /// The bytes stored under the digest.
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, algo: Algo, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: algo.digest(&bytes),
            size: bytes.len() as i64,
            bytes,
        }
    }
    pub fn algo(&self) -> &str {
        self.digest.split_once(':').unwrap().0
    }
    pub fn hex(&self) -> &str {
        self.digest.split_once(':').unwrap().1
    }
    /// `blobs/ALGO/HEX`, the path inside an OCI layout.
    pub fn layout_path(&self) -> String {
        format!("blobs/{}/{}", self.algo(), self.hex())
    }
    /// The descriptor JSON (mediaType, digest, size).
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

// ------------------------------------------------------------------------------ platforms

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Platform {
        let mut parts = s.split('/');
        Platform {
            os: parts.next().unwrap().to_string(),
            arch: parts.next().expect("os/arch").to_string(),
            variant: parts.next().map(str::to_string),
        }
    }
    pub fn json(&self) -> Value {
        let mut v = json!({"os": self.os, "architecture": self.arch});
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The platform the product picks by default: linux and this machine's architecture.
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform::parse(&format!("linux/{arch}"))
}

// ------------------------------------------------------------------------------ layers

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    /// One gzip member per tar entry (like `pigz -i` / eStargz): a reader that stops after
    /// the first member loses entries silently.
    MultiGzip,
    Zstd,
    /// One zstd frame per tar entry.
    ZstdFrames,
    /// Two gzip members split at the middle of the tar, so that the member boundary falls
    /// inside an entry's header or content, not between entries.
    GzipHalves,
}

/// A layer: its tar entries and how the blob is compressed.
#[derive(Clone, Debug)]
pub struct Layer {
    pub entries: Vec<Entry>,
    /// A tar written elsewhere (GNU tar's sparse files, a hand-broken header), used verbatim
    /// instead of encoding `entries`.
    pub raw_tar: Option<Vec<u8>>,
    pub compression: Compression,
    /// Media type written in the manifest, if not the one matching the compression.
    pub media_type: Option<String>,
}

/// A gzip-compressed layer (change with [`Layer::uncompressed`], [`Layer::zstd`], …).
pub fn layer(entries: Vec<Entry>) -> Layer {
    Layer {
        entries,
        raw_tar: None,
        compression: Compression::Gzip,
        media_type: None,
    }
}

/// A gzip-compressed layer whose tar is `tar`, byte for byte.
pub fn raw_layer(tar: Vec<u8>) -> Layer {
    Layer {
        raw_tar: Some(tar),
        ..layer(Vec::new())
    }
}

impl Layer {
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    pub fn uncompressed(self) -> Self {
        self.compression(Compression::None)
    }
    pub fn gzip(self) -> Self {
        self.compression(Compression::Gzip)
    }
    pub fn multi_gzip(self) -> Self {
        self.compression(Compression::MultiGzip)
    }
    pub fn zstd(self) -> Self {
        self.compression(Compression::Zstd)
    }
    pub fn zstd_frames(self) -> Self {
        self.compression(Compression::ZstdFrames)
    }
    pub fn media_type(mut self, mt: &str) -> Self {
        self.media_type = Some(mt.to_string());
        self
    }
    /// The uncompressed tar.
    pub fn tar(&self) -> Vec<u8> {
        match &self.raw_tar {
            Some(t) => t.clone(),
            None => encode_tar(&self.entries),
        }
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// Every gzip member of `data`, decompressed and concatenated.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Compresses a layer (`entries` as given, or the layer's raw tar); returns
/// (uncompressed tar, blob bytes).
fn compress_layer(l: &Layer, entries: &[Entry]) -> (Vec<u8>, Vec<u8>) {
    let chunks = match &l.raw_tar {
        Some(t) => vec![t.clone()],
        None => encode_chunks(entries),
    };
    let tar = chunks.concat();
    let blob = match l.compression {
        Compression::None => tar.clone(),
        Compression::Gzip => gzip(&tar),
        Compression::Zstd => zstd_compress(&tar),
        Compression::MultiGzip => chunks.iter().flat_map(|c| gzip(c)).collect(),
        Compression::ZstdFrames => chunks.iter().flat_map(|c| zstd_compress(c)).collect(),
        Compression::GzipHalves => {
            let mid = tar.len() / 2;
            [gzip(&tar[..mid]), gzip(&tar[mid..])].concat()
        }
    };
    (tar, blob)
}

// ------------------------------------------------------------------------------ images

/// A deliberate defect, to check that the product notices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// Layer N's stored blob is the same layer with one content byte changed (the first
    /// non-empty regular file), recompressed: its blob digest and its diff_id both mismatch.
    /// For an uncompressed layer the size stays the same.
    LayerBytes(usize),
    /// Layer N's stored blob has its middle byte flipped after compression: the blob digest
    /// mismatches and the compressed stream itself is broken.
    BlobByte(usize),
    /// Layer N's descriptor names another digest; the real bytes are stored under that name.
    /// Only the blob digest check can catch this (the diff_id is right).
    LayerDigest(usize),
    /// Layer N's descriptor size is off by this much (the digest is right).
    LayerSize(usize, i64),
    /// Layer N's `rootfs.diff_ids` entry is wrong (the blob is right).
    DiffId(usize),
    /// The config's stored bytes differ from its digest (same size).
    ConfigBytes,
    /// The manifest's stored bytes differ from its digest (same size).
    ManifestBytes,
}

/// Builds an [`Image`]; start with [`image`].
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    pub layers: Vec<Layer>,
    pub platform: Platform,
    pub docker_media_types: bool,
    pub algo: Algo,
    pub corruptions: Vec<Corruption>,
    /// The config's `config` object (Env, Cmd, User, …).
    pub runtime_config: Value,
    /// Top-level config fields set after the defaults (`created`, …).
    pub config_fields: Vec<(String, Value)>,
}

/// An image of these layers for linux/amd64 with OCI media types and sha256 digests.
pub fn image(layers: Vec<Layer>) -> ImageBuilder {
    ImageBuilder {
        layers,
        platform: Platform::parse("linux/amd64"),
        docker_media_types: false,
        algo: Algo::Sha256,
        corruptions: Vec::new(),
        runtime_config: json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        }),
        config_fields: Vec::new(),
    }
}

impl ImageBuilder {
    /// `os/arch[/variant]` written in the config (and in an index descriptor).
    pub fn platform(mut self, p: &str) -> Self {
        self.platform = Platform::parse(p);
        self
    }
    /// Docker v2 schema 2 manifest and config media types, and
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip` for gzip layers.
    pub fn docker_media_types(mut self) -> Self {
        self.docker_media_types = true;
        self
    }
    /// sha512 digests for the blobs (diff_ids stay sha256).
    pub fn sha512(mut self) -> Self {
        self.algo = Algo::Sha512;
        self
    }
    pub fn corrupt(mut self, c: Corruption) -> Self {
        self.corruptions.push(c);
        self
    }
    /// Replaces the config's `config` object (`{}` for an image that states nothing).
    pub fn runtime_config(mut self, config: Value) -> Self {
        self.runtime_config = config;
        self
    }
    /// Sets a top-level config field (`created`, …), over the default.
    pub fn config_field(mut self, key: &str, value: Value) -> Self {
        self.config_fields.push((key.to_string(), value));
        self
    }

    pub fn build(&self) -> Image {
        let algo = self.algo;
        let mut layer_blobs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut tars = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let (tar, bytes) = compress_layer(l, &l.entries);
            let media_type = l.media_type.clone().unwrap_or_else(|| {
                match (l.compression, self.docker_media_types) {
                    (Compression::None, _) => OCI_LAYER_TAR,
                    (
                        Compression::Gzip | Compression::MultiGzip | Compression::GzipHalves,
                        false,
                    ) => OCI_LAYER_GZIP,
                    (
                        Compression::Gzip | Compression::MultiGzip | Compression::GzipHalves,
                        true,
                    ) => DOCKER_LAYER_GZIP,
                    (Compression::Zstd | Compression::ZstdFrames, _) => OCI_LAYER_ZSTD,
                }
                .to_string()
            });
            let mut blob = Blob::new(&media_type, algo, bytes);
            let mut diff_id = sha256_digest(&tar);
            for c in &self.corruptions {
                match c {
                    Corruption::LayerBytes(n) if *n == i => {
                        let mut entries = l.entries.clone();
                        let victim = entries
                            .iter_mut()
                            .find(|e| matches!(&e.kind, Kind::File(c) if !c.is_empty()))
                            .expect("LayerBytes needs a non-empty regular file in the layer");
                        if let Kind::File(c) = &mut victim.kind {
                            c[0] ^= 0x01;
                        }
                        blob.bytes = compress_layer(l, &entries).1;
                    }
                    Corruption::BlobByte(n) if *n == i => {
                        let mid = blob.bytes.len() / 2;
                        blob.bytes[mid] ^= 0x55;
                    }
                    Corruption::LayerDigest(n) if *n == i => {
                        blob.digest = algo.digest(b"some other blob");
                    }
                    Corruption::LayerSize(n, delta) if *n == i => blob.size += delta,
                    Corruption::DiffId(n) if *n == i => {
                        diff_id = sha256_digest(b"not this layer");
                    }
                    _ => {}
                }
            }
            layer_blobs.push(blob);
            diff_ids.push(diff_id);
            tars.push(tar);
        }

        let mut config = json!({
            "created": "2023-11-14T22:13:20Z",
            "author": "oci2wsl-tests",
            "architecture": self.platform.arch,
            "os": self.platform.os,
            "config": self.runtime_config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": (0..self.layers.len())
                .map(|i| json!({"created": "2023-11-14T22:13:20Z", "created_by": format!("layer {i}")}))
                .collect::<Vec<_>>(),
        });
        if let Some(v) = &self.platform.variant {
            config["variant"] = json!(v);
        }
        for (k, v) in &self.config_fields {
            config[k.as_str()] = v.clone();
        }
        let config_mt = if self.docker_media_types {
            DOCKER_CONFIG
        } else {
            OCI_CONFIG
        };
        let mut config_blob = Blob::new(config_mt, algo, serde_json::to_vec(&config).unwrap());
        if self.corruptions.contains(&Corruption::ConfigBytes) {
            config_blob.bytes =
                replace_same_len(&config_blob.bytes, b"oci2wsl-tests", b"OCI2WSL-TESTS");
        }

        let manifest_mt = if self.docker_media_types {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_mt,
            "config": config_blob.descriptor(),
            "layers": layer_blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        if !self.docker_media_types {
            manifest["annotations"] = json!({"org.opencontainers.image.description": "fixture"});
        }
        let mut manifest_blob = Blob::new(
            manifest_mt,
            algo,
            serde_json::to_vec_pretty(&manifest).unwrap(),
        );
        if self.corruptions.contains(&Corruption::ManifestBytes) {
            assert!(
                !self.docker_media_types,
                "ManifestBytes needs OCI media types"
            );
            manifest_blob.bytes = replace_same_len(&manifest_blob.bytes, b"fixture", b"FIXTURE");
        }

        Image {
            manifest: manifest_blob,
            config: config_blob,
            layers: layer_blobs,
            diff_ids: config["rootfs"]["diff_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            layer_tars: tars,
            platform: self.platform.clone(),
        }
    }
}

fn replace_same_len(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let pos = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern to corrupt is present");
    let mut out = bytes.to_vec();
    out[pos..pos + from.len()].copy_from_slice(to);
    out
}

/// A built single-platform image.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The config's `rootfs.diff_ids` as written.
    pub diff_ids: Vec<String>,
    /// Each layer's uncompressed tar (before any corruption).
    pub layer_tars: Vec<Vec<u8>>,
    pub platform: Platform,
}

impl Image {
    /// Writes the manifest again from the current config and layer blobs, after a test
    /// replaced one of them (a truncated layer whose descriptor matches its cut bytes).
    pub fn refresh_manifest(&mut self) {
        let mut m: Value = serde_json::from_slice(&self.manifest.bytes).unwrap();
        m["config"] = self.config.descriptor();
        m["layers"] = json!(self.layers.iter().map(Blob::descriptor).collect::<Vec<_>>());
        let algo = if self.manifest.algo() == "sha512" {
            Algo::Sha512
        } else {
            Algo::Sha256
        };
        self.manifest = Blob::new(
            &self.manifest.media_type.clone(),
            algo,
            serde_json::to_vec_pretty(&m).unwrap(),
        );
    }
}

/// Something a top-level descriptor can name: an image manifest, an index, or a raw manifest.
pub trait Artifact {
    /// The blob the descriptor names.
    fn top(&self) -> &Blob;
    /// Every blob to store, the top one included.
    fn blobs(&self) -> Vec<&Blob>;
    /// The platform to write in an index descriptor, if any.
    fn platform(&self) -> Option<&Platform> {
        None
    }
}

impl Artifact for Image {
    fn top(&self) -> &Blob {
        &self.manifest
    }
    fn blobs(&self) -> Vec<&Blob> {
        let mut v = vec![&self.config];
        v.extend(self.layers.iter());
        v.push(&self.manifest);
        v
    }
    fn platform(&self) -> Option<&Platform> {
        Some(&self.platform)
    }
}

/// A manifest written verbatim (e.g. a schema 1 manifest), with no other blobs.
#[derive(Clone, Debug)]
pub struct RawManifest {
    pub blob: Blob,
}

impl Artifact for RawManifest {
    fn top(&self) -> &Blob {
        &self.blob
    }
    fn blobs(&self) -> Vec<&Blob> {
        vec![&self.blob]
    }
}

/// A Docker schema 1 manifest (signed form), which the product must refuse.
pub fn schema1_manifest() -> RawManifest {
    let layer = gzip(&encode_tar(&[tar_file("hello", "world")]));
    let m = json!({
        "schemaVersion": 1,
        "name": "library/old",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256_digest(&layer)}],
        "history": [{"v1Compatibility": "{\"id\":\"0123\",\"architecture\":\"amd64\",\"os\":\"linux\"}"}],
        "signatures": [],
    });
    RawManifest {
        blob: Blob::new(
            DOCKER_SCHEMA1,
            Algo::Sha256,
            serde_json::to_vec_pretty(&m).unwrap(),
        ),
    }
}

// ------------------------------------------------------------------------------ indexes

/// A multi-platform index (OCI) or manifest list (Docker) and everything below it.
#[derive(Clone, Debug)]
pub struct Index {
    pub blob: Blob,
    pub children: Vec<Blob>,
}

impl Artifact for Index {
    fn top(&self) -> &Blob {
        &self.blob
    }
    fn blobs(&self) -> Vec<&Blob> {
        let mut v: Vec<&Blob> = self.children.iter().collect();
        v.push(&self.blob);
        v
    }
}

/// Builds an [`Index`]; start with [`index`].
pub struct IndexBuilder<'a> {
    pub images: Vec<&'a Image>,
    pub attestation: bool,
    pub docker: bool,
}

/// An index of these images, each descriptor carrying the image's platform.
pub fn index<'a>(images: &[&'a Image]) -> IndexBuilder<'a> {
    IndexBuilder {
        images: images.to_vec(),
        attestation: false,
        docker: false,
    }
}

impl<'a> IndexBuilder<'a> {
    /// Adds a BuildKit attestation manifest (platform unknown/unknown) for the first image,
    /// listed FIRST in the index so that "take the first entry" goes wrong.
    pub fn with_attestation(mut self) -> Self {
        self.attestation = true;
        self
    }
    /// A Docker manifest list media type instead of an OCI index.
    pub fn docker_manifest_list(mut self) -> Self {
        self.docker = true;
        self
    }
    pub fn build(&self) -> Index {
        let mut children = Vec::new();
        let mut descriptors = Vec::new();
        if self.attestation {
            let subject = &self.images[0].manifest;
            let statement = Blob::new(
                "application/vnd.in-toto+json",
                Algo::Sha256,
                br#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[],"predicate":{}}"#.to_vec(),
            );
            let config = Blob::new(OCI_CONFIG, Algo::Sha256, br#"{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#.to_vec());
            let mut layer_desc = statement.descriptor();
            layer_desc["annotations"] =
                json!({"in-toto.io/predicate-type": "https://spdx.dev/Document"});
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer_desc],
            });
            let manifest = Blob::new(
                OCI_MANIFEST,
                Algo::Sha256,
                serde_json::to_vec(&manifest).unwrap(),
            );
            let mut d = manifest.descriptor();
            d["platform"] = json!({"architecture": "unknown", "os": "unknown"});
            d["annotations"] = json!({
                "vnd.docker.reference.digest": subject.digest,
                "vnd.docker.reference.type": "attestation-manifest",
            });
            descriptors.push(d);
            children.extend([statement, config, manifest]);
        }
        for img in &self.images {
            let mut d = img.manifest.descriptor();
            d["platform"] = img.platform.json();
            descriptors.push(d);
            children.extend(img.blobs().into_iter().cloned());
        }
        let mt = if self.docker { DOCKER_LIST } else { OCI_INDEX };
        let idx = json!({"schemaVersion": 2, "mediaType": mt, "manifests": descriptors});
        Index {
            blob: Blob::new(mt, Algo::Sha256, serde_json::to_vec_pretty(&idx).unwrap()),
            children,
        }
    }
}

// ------------------------------------------------------------------------------ OCI layout

/// A top-level entry of an OCI layout's `index.json`: an artifact and its optional tag
/// (`org.opencontainers.image.ref.name`).
pub type Ref<'a> = (Option<&'a str>, &'a dyn Artifact);

/// The files of an OCI image layout, as (relative path, bytes), blobs first, then
/// `oci-layout` and `index.json` (the order `buildx -o type=oci` uses, hard for streaming).
pub fn oci_layout_files(refs: &[Ref]) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (_, art) in refs {
        for b in art.blobs() {
            let p = b.layout_path();
            if !files.iter().any(|(q, _)| *q == p) {
                files.push((p, b.bytes.clone()));
            }
        }
    }
    let manifests: Vec<Value> = refs
        .iter()
        .map(|(tag, art)| {
            let mut d = art.top().descriptor();
            if let Some(t) = tag {
                d["annotations"] = json!({ REF_NAME: t });
            }
            d
        })
        .collect();
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    files.push((
        "index.json".into(),
        serde_json::to_vec_pretty(&index).unwrap(),
    ));
    files
}

/// Writes an OCI image layout directory at `dir` (created).
pub fn write_oci_layout(dir: &Path, refs: &[Ref]) {
    for (p, bytes) in oci_layout_files(refs) {
        let path = dir.join(&p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

/// Writes `img` as an OCI layout at `base/layout` tagged `tag`; returns `oci:PATH:TAG`.
pub fn oci_dir(base: &Path, img: &dyn Artifact, tag: &str) -> String {
    layout_arg(&oci_layout(base, img, tag), tag)
}

/// Writes `img` as an OCI layout at `base/layout` tagged `tag`; returns the directory.
pub fn oci_layout(base: &Path, img: &dyn Artifact, tag: &str) -> PathBuf {
    let dir = base.join("layout");
    write_oci_layout(&dir, &[(Some(tag), img)]);
    dir
}

/// The layer digests of the first image in the OCI layout at `layout`, as its manifest
/// lists them (after a push or a cache, to name the blobs a registry or a cache holds).
pub fn layout_layer_digests(layout: &Path) -> Vec<String> {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let (alg, hex) = m.split_once(':').unwrap();
    let manifest: Value =
        serde_json::from_slice(&fs::read(layout.join("blobs").join(alg).join(hex)).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// `oci:LAYOUT:TAG`, the product's argument for a tag in a layout directory.
pub fn layout_arg(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}

/// Packs files (and the directories they need) into a tar, with the one encoder: the
/// archives an image arrives in are written the way layers are.
pub fn pack(files: &[(String, Vec<u8>)], symlinks: &[(String, String)]) -> Vec<u8> {
    use super::layer::{dir, file, symlink};
    let mut entries = Vec::new();
    let mut dirs_seen: Vec<String> = Vec::new();
    let mut add_dirs = |path: &str, entries: &mut Vec<Entry>| {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            acc.push_str(part);
            acc.push('/');
            if !dirs_seen.contains(&acc) {
                dirs_seen.push(acc.clone());
                entries.push(dir(&acc));
            }
        }
    };
    for (p, bytes) in files {
        add_dirs(p, &mut entries);
        entries.push(file(p, bytes));
    }
    for (p, target) in symlinks {
        add_dirs(p, &mut entries);
        entries.push(symlink(p, target));
    }
    encode_tar(&entries)
}

/// An `oci-archive:` tarball: the OCI layout of `refs` in a tar.
pub fn oci_archive(refs: &[Ref]) -> Vec<u8> {
    pack(&oci_layout_files(refs), &[])
}

// ------------------------------------------------------------------------------ docker archive

/// How to write a `docker save` tarball.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DockerStyle {
    /// Docker 25+: `blobs/sha256/<hex>` paths in manifest.json, plus `index.json` and
    /// `oci-layout` (the image's blobs stored as they are).
    pub modern: bool,
    /// Legacy form: store each layer's blob as it is (gzip/zstd) in `<id>/layer.tar` instead
    /// of the uncompressed tar.
    pub compressed_layers: bool,
}

/// One image in a docker archive and its `RepoTags`.
pub type DockerImage<'a> = (&'a Image, &'a [&'a str]);

/// A `docker save` tarball holding these images. In the legacy form a layer whose content
/// was already written under another layer id becomes a symlink `../<id>/layer.tar`, as
/// Docker writes it; `manifest.json` and `repositories` come last.
pub fn docker_archive(images: &[DockerImage], style: DockerStyle) -> Vec<u8> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut symlinks: Vec<(String, String)> = Vec::new();
    let mut manifest = Vec::new();
    let mut repositories = serde_json::Map::new();
    let add = |files: &mut Vec<(String, Vec<u8>)>, p: String, b: Vec<u8>| {
        if !files.iter().any(|(q, _)| *q == p) {
            files.push((p, b));
        }
    };
    for (img, tags) in images {
        let (config_path, layer_paths, top_id) = if style.modern {
            for b in img.blobs() {
                add(&mut files, b.layout_path(), b.bytes.clone());
            }
            let layers: Vec<String> = img.layers.iter().map(Blob::layout_path).collect();
            (
                img.config.layout_path(),
                layers,
                img.config.hex().to_string(),
            )
        } else {
            let mut parent = String::new();
            let mut paths = Vec::new();
            // content digest -> path already written
            let mut written: Vec<(String, String)> = files
                .iter()
                .filter(|(p, _)| p.ends_with("/layer.tar"))
                .map(|(p, b)| (sha256_hex(b), p.clone()))
                .collect();
            for (i, blob) in img.layers.iter().enumerate() {
                let id = sha256_hex(format!("{parent} {}", img.diff_ids[i]).as_bytes());
                let bytes = if style.compressed_layers {
                    blob.bytes.clone()
                } else {
                    img.layer_tars[i].clone()
                };
                let path = format!("{id}/layer.tar");
                let already = files.iter().any(|(p, _)| *p == path)
                    || symlinks.iter().any(|(p, _)| *p == path);
                if !already {
                    add(&mut files, format!("{id}/VERSION"), b"1.0".to_vec());
                    let mut j = json!({"id": id, "created": "2023-11-14T22:13:20Z"});
                    if !parent.is_empty() {
                        j["parent"] = json!(parent);
                    }
                    add(
                        &mut files,
                        format!("{id}/json"),
                        serde_json::to_vec(&j).unwrap(),
                    );
                    let h = sha256_hex(&bytes);
                    if let Some((_, first)) = written.iter().find(|(d, _)| *d == h) {
                        symlinks.push((path.clone(), format!("../{first}")));
                    } else {
                        written.push((h, path.clone()));
                        add(&mut files, path.clone(), bytes);
                    }
                }
                paths.push(path);
                parent = id;
            }
            let cfg = format!("{}.json", img.config.hex());
            add(&mut files, cfg.clone(), img.config.bytes.clone());
            (cfg, paths, parent)
        };
        manifest.push(json!({"Config": config_path, "RepoTags": tags, "Layers": layer_paths}));
        for t in tags.iter() {
            let (repo, tag) = t.rsplit_once(':').unwrap();
            let e = repositories
                .entry(repo.to_string())
                .or_insert_with(|| json!({}));
            e[tag] = json!(top_id);
        }
    }
    if style.modern {
        let manifests: Vec<Value> = images
            .iter()
            .flat_map(|(img, tags)| {
                let tags: Vec<&str> = if tags.is_empty() {
                    vec![""]
                } else {
                    tags.to_vec()
                };
                tags.into_iter().map(move |t| {
                    let mut d = img.manifest.descriptor();
                    if let Some((_, tag)) = t.rsplit_once(':') {
                        d["annotations"] = json!({
                            "io.containerd.image.name": format!("docker.io/library/{t}"),
                            REF_NAME: tag,
                        });
                    }
                    d
                })
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        files.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
    }
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    files.push((
        "repositories".into(),
        serde_json::to_vec(&Value::Object(repositories)).unwrap(),
    ));
    pack(&files, &symlinks)
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

// ==============================================================================================
// Formats other tools write, byte for byte (tests/formats.rs). Each writer follows its tool's
// source: moby `image/tarexport/save.go` (Docker 25+ `docker save`), containerd
// `core/images/archive/exporter.go` (Docker's containerd image store), go-containerregistry
// `pkg/v1/tarball/write.go` (`crane pull --format tarball`, `tarball.Write`). JSON is written
// as Go's encoding/json writes it: compact, struct field order, map keys sorted.
// ==============================================================================================

/// One member of a tar as Go's archive/tar writes it: a USTAR header with octal fields
/// zero-padded and NUL-terminated, checksum `%06o\0 `, empty user and group names, device
/// numbers written as zeros, no padding after the two end blocks. That is exactly what the
/// layer encoder writes for an entry owned by 0:0 without names, so [`go_tar`] goes
/// through it.
pub struct GoTarMember {
    pub name: String,
    pub typeflag: u8,
    pub mode: u32,
    pub mtime: u64,
    pub content: Vec<u8>,
}

pub fn go_tar_file(name: &str, mtime: u64, content: Vec<u8>) -> GoTarMember {
    GoTarMember {
        name: name.to_string(),
        typeflag: b'0',
        mode: 0o644,
        mtime,
        content,
    }
}

pub fn go_tar_dir(name: &str, mtime: u64) -> GoTarMember {
    GoTarMember {
        name: name.to_string(),
        typeflag: b'5',
        mode: 0o755,
        mtime,
        content: Vec::new(),
    }
}

impl GoTarMember {
    fn entry(&self) -> Entry {
        assert!(
            self.name.len() <= 100,
            "GoTarMember names stay in the ustar name field"
        );
        let kind = match self.typeflag {
            b'0' => Kind::File(self.content.clone()),
            b'5' => Kind::Dir,
            other => Kind::Other(other, self.content.clone()),
        };
        Entry {
            kind,
            ..tar_file(&self.name, "")
        }
        .mode(self.mode)
        .mtime(self.mtime)
    }
}

pub fn go_tar(members: &[GoTarMember]) -> Vec<u8> {
    encode_tar(&members.iter().map(GoTarMember::entry).collect::<Vec<_>>())
}

/// Go's encoding/json string: HTML-safe escapes for `<`, `>`, `&`.
fn go_str(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// ocispec.Platform: architecture, os, variant.
fn go_platform(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!(
            r#"{{"architecture":{},"os":{},"variant":{}}}"#,
            go_str(&p.arch),
            go_str(&p.os),
            go_str(v)
        ),
        None => format!(
            r#"{{"architecture":{},"os":{}}}"#,
            go_str(&p.arch),
            go_str(&p.os)
        ),
    }
}

/// ocispec.Descriptor field order: mediaType, digest, size, annotations, platform.
fn go_descriptor(media_type: &str, digest: &str, size: usize, tail: &str) -> String {
    format!(
        r#"{{"mediaType":{},"digest":{},"size":{size}{tail}}}"#,
        go_str(media_type),
        go_str(digest)
    )
}

/// distribution.Descriptor (moby's LayerSources values): mediaType, size, digest.
fn go_distribution_descriptor(media_type: &str, digest: &str, size: usize) -> String {
    format!(
        r#"{{"mediaType":{},"size":{size},"digest":{}}}"#,
        go_str(media_type),
        go_str(digest)
    )
}

/// Splits `app:1.0` the way docker does for the index annotations: the full name
/// (`docker.io/library/app:1.0`) and the tag.
fn docker_full_name(tag: &str) -> (String, String) {
    let (repo, t) = tag.rsplit_once(':').unwrap();
    let full = if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    (format!("{full}:{t}"), t.to_string())
}

/// Which Docker 25+ `docker save` to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Docker25Store {
    /// The classic graph-driver store (overlay2): layers saved uncompressed under their
    /// diff_id, a per-layer v1 JSON blob, and `LayerSources` naming every layer.
    GraphDriver,
    /// The containerd image store: the image's own blobs (compressed layers, its manifest)
    /// saved as stored, the index entry without a platform.
    Containerd,
}

/// `docker save IMAGE` from Docker 25 or later, for one image tagged `tag` (`app:1.0`).
/// Members are in the order archive.Tar walks the export directory (sorted), with the
/// timestamps save.go sets: blobs at the image's `created` time, manifest.json,
/// repositories and oci-layout at the epoch.
pub fn docker25_save(img: &Image, tag: &str, store: Docker25Store) -> Vec<u8> {
    let created = 1_700_000_000; // the fixtures' "2023-11-14T22:13:20Z"
    let (full_name, short_tag) = docker_full_name(tag);
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest_layers = Vec::new();
    let mut layer_paths = Vec::new();
    let mut layer_sources = Vec::new();
    let mut parent = String::new();
    for (i, blob) in img.layers.iter().enumerate() {
        let diff_id = &img.diff_ids[i];
        let (media_type, digest, bytes) = match store {
            Docker25Store::GraphDriver => {
                (OCI_LAYER_TAR, diff_id.clone(), img.layer_tars[i].clone())
            }
            Docker25Store::Containerd => (
                blob.media_type.as_str(),
                blob.digest.clone(),
                blob.bytes.clone(),
            ),
        };
        let hex = digest.split_once(':').unwrap().1.to_string();
        manifest_layers.push(go_descriptor(media_type, &digest, bytes.len(), ""));
        layer_sources.push((
            diff_id.clone(),
            go_distribution_descriptor(media_type, &digest, bytes.len()),
        ));
        layer_paths.push(format!("blobs/sha256/{hex}"));
        if store == Docker25Store::GraphDriver {
            // The legacy v1 image JSON save.go still writes for each layer; only the last
            // carries the image's own fields, which no reader of this format uses.
            let id = sha256_hex(format!("{parent}{diff_id}").as_bytes());
            let mut v1 = format!(r#"{{"id":"{id}""#);
            if !parent.is_empty() {
                v1.push_str(&format!(r#","parent":"{parent}""#));
            }
            v1.push_str(r#","created":"1970-01-01T00:00:00Z","container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null},"os":"linux"}"#);
            blobs.push((
                format!("blobs/sha256/{}", sha256_hex(v1.as_bytes())),
                v1.into_bytes(),
            ));
            parent = id;
        }
        blobs.push((format!("blobs/sha256/{hex}"), bytes));
    }
    blobs.push((img.config.layout_path(), img.config.bytes.clone()));
    let platform = go_platform(&img.platform);
    let (manifest_bytes, index_entry_platform) = match store {
        Docker25Store::GraphDriver => {
            let config = go_descriptor(
                OCI_CONFIG,
                &img.config.digest,
                img.config.bytes.len(),
                &format!(r#","platform":{platform}"#),
            );
            let m = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config},"layers":[{}]}}"#,
                manifest_layers.join(",")
            );
            (m.into_bytes(), format!(r#","platform":{platform}"#))
        }
        Docker25Store::Containerd => (img.manifest.bytes.clone(), String::new()),
    };
    let manifest_digest = sha256_digest(&manifest_bytes);
    let manifest_len = manifest_bytes.len();
    blobs.push((
        format!("blobs/sha256/{}", sha256_hex(&manifest_bytes)),
        manifest_bytes,
    ));
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    blobs.dedup_by(|a, b| a.0 == b.0);

    let index_entry = go_descriptor(
        OCI_MANIFEST,
        &manifest_digest,
        manifest_len,
        &format!(
            r#","annotations":{{"io.containerd.image.name":{},"org.opencontainers.image.ref.name":{}}}{index_entry_platform}"#,
            go_str(&full_name),
            go_str(&short_tag)
        ),
    );
    let index =
        format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{index_entry}]}}"#);
    layer_sources.sort();
    let sources: Vec<String> = layer_sources
        .iter()
        .map(|(k, v)| format!("{}:{v}", go_str(k)))
        .collect();
    // json.Encoder adds the newline.
    let manifest_json = format!(
        "[{{\"Config\":{},\"RepoTags\":[{}],\"Layers\":[{}],\"LayerSources\":{{{}}}}}]\n",
        go_str(&img.config.layout_path()),
        go_str(tag),
        layer_paths
            .iter()
            .map(|p| go_str(p))
            .collect::<Vec<_>>()
            .join(","),
        sources.join(",")
    );
    let (repo, t) = tag.rsplit_once(':').unwrap();
    let top_id = if parent.is_empty() {
        img.diff_ids
            .last()
            .unwrap()
            .split_once(':')
            .unwrap()
            .1
            .to_string()
    } else {
        parent.clone()
    };
    let repositories = format!(
        "{{{}:{{{}:{}}}}}\n",
        go_str(repo),
        go_str(t),
        go_str(&top_id)
    );

    let mut members = vec![
        go_tar_dir("blobs/", created),
        go_tar_dir("blobs/sha256/", created),
    ];
    for (path, bytes) in blobs {
        members.push(go_tar_file(&path, created, bytes));
    }
    members.push(go_tar_file("index.json", 0, index.into_bytes()));
    members.push(go_tar_file("manifest.json", 0, manifest_json.into_bytes()));
    members.push(go_tar_file(
        "oci-layout",
        0,
        br#"{"imageLayoutVersion": "1.0.0"}"#.to_vec(),
    ));
    if store == Docker25Store::GraphDriver {
        members.push(go_tar_file("repositories", 0, repositories.into_bytes()));
    }
    go_tar(&members)
}

/// go-containerregistry's `tarball.Write(ref, img, w)` (what `crane pull --format tarball`
/// writes): the config named `sha256:<hex>`, each distinct layer blob as it is stored
/// (compressed) named `<hex>.tar.gz`, then manifest.json naming the tag in full
/// (`index.docker.io/library/app:1.0`), with no LayerSources (omitempty, no foreign layers).
pub fn ggcr_tarball(img: &Image, full_tag: &str) -> Vec<u8> {
    let mut members = vec![go_tar_file(
        &format!("sha256:{}", img.config.hex()),
        0,
        img.config.bytes.clone(),
    )];
    let mut layer_files = Vec::new();
    for blob in &img.layers {
        let name = format!("{}.tar.gz", blob.hex());
        if !layer_files.contains(&name) {
            members.push(go_tar_file(&name, 0, blob.bytes.clone()));
        }
        layer_files.push(name);
    }
    let manifest = format!(
        r#"[{{"Config":{},"RepoTags":[{}],"Layers":[{}]}}]"#,
        go_str(&format!("sha256:{}", img.config.hex())),
        go_str(full_tag),
        layer_files
            .iter()
            .map(|p| go_str(p))
            .collect::<Vec<_>>()
            .join(",")
    );
    members.push(go_tar_file("manifest.json", 0, manifest.into_bytes()));
    go_tar(&members)
}

/// An OCI image index whose entries state no platform (the image spec makes it optional:
/// `crane index append` without `--platform`, indexes assembled by hand or by older
/// tools), optionally with a BuildKit attestation first. Written as Go writes an
/// ocispec.Index: compact.
pub fn platformless_index(images: &[&Image], with_attestation: bool) -> Index {
    let built = if with_attestation {
        index(images).with_attestation().build()
    } else {
        index(images).build()
    };
    let mut idx: Value = serde_json::from_slice(&built.blob.bytes).unwrap();
    let mut entries = Vec::new();
    for d in idx["manifests"].as_array_mut().unwrap() {
        let attestation = d.get("annotations").is_some();
        let tail = if attestation {
            format!(
                r#","annotations":{{"vnd.docker.reference.digest":{},"vnd.docker.reference.type":"attestation-manifest"}},"platform":{{"architecture":"unknown","os":"unknown"}}"#,
                go_str(
                    d["annotations"]["vnd.docker.reference.digest"]
                        .as_str()
                        .unwrap()
                )
            )
        } else {
            String::new()
        };
        entries.push(go_descriptor(
            d["mediaType"].as_str().unwrap(),
            d["digest"].as_str().unwrap(),
            d["size"].as_u64().unwrap() as usize,
            &tail,
        ));
    }
    let bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    Index {
        blob: Blob::new(OCI_INDEX, Algo::Sha256, bytes.into_bytes()),
        children: built.children,
    }
}

/// The small image the source and format tests share: three layers exercising files,
/// directories, symlinks, hardlinks, whiteouts and an opaque directory.
pub fn sample_layers(c: Compression) -> Vec<Layer> {
    use super::layer::{dir, file, hardlink, opaque, symlink, whiteout};
    vec![
        layer(vec![
            dir("etc"),
            file("etc/os-release", "ID=fixture\n"),
            file("etc/hostname", "old\n"),
            dir("usr"),
            dir("usr/bin"),
            file("usr/bin/tool", "#!/bin/sh\necho tool\n").mode(0o755),
            symlink("bin", "usr/bin"),
            dir("var"),
            dir("var/cache"),
            file("var/cache/junk", "junk"),
        ])
        .compression(c),
        layer(vec![
            file("etc/hostname", "new\n"),
            hardlink("usr/bin/tool2", "usr/bin/tool"),
            whiteout("var/cache"),
            dir("opt"),
            file("opt/a", "a"),
        ])
        .compression(c),
        layer(vec![
            dir("opt"),
            file("opt/b", "b"),
            opaque("opt"),
            file("etc/motd", "welcome\n").owner(1000, 1000),
        ])
        .compression(c),
    ]
}
