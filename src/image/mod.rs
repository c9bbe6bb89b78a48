//! The image model: what a source resolves a reference to, independent of where bytes live.
//!
//! A source (OCI layout, archive, registry) turns a reference into an [`Image`]: the chosen
//! manifest's config and an ordered list of [`Layer`]s, each with everything needed to verify
//! it. Everything downstream (layer application, output) sees only this model.

pub mod digest;
pub mod manifest;
pub mod platform;

use crate::error::bail_kind;
use anyhow::{Context, Result};
use digest::Digest;
use manifest::{Compression, Descriptor, Document};
use oci_spec::image::ImageConfiguration;
use platform::Platform;

/// One layer of the image, bottom first.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Position in the manifest, 0 = bottom.
    pub index: usize,
    pub count: usize,
    /// Digest of the blob as stored. A legacy `docker save` layer has none; its diff_id
    /// still covers every byte.
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    /// Compression the media type declares; `None` means "detect from magic bytes".
    pub compression: Option<Compression>,
    pub media_type: String,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Where the source finds the blob (a path in a layout or archive).
    pub location: String,
}

impl Layer {
    /// "layer 3/7 sha256:0123456789ab" for messages.
    pub fn describe(&self) -> String {
        let id = self.digest.as_ref().unwrap_or(&self.diff_id);
        format!("layer {}/{} {}", self.index + 1, self.count, id.short())
    }
}

/// A single-platform image, resolved and with its config verified and parsed.
#[derive(Debug)]
pub struct Image {
    /// How the user named it, for messages.
    pub name: String,
    /// Digest of the manifest bytes (what `docker images --digests` shows for a registry
    /// image), when the source has real manifest bytes.
    pub manifest_digest: Option<Digest>,
    /// Digest of the index the reference pointed at, when it pointed at one: the digest a
    /// user pins to get the same choice of manifest again.
    pub index_digest: Option<Digest>,
    pub config_digest: Digest,
    pub config_raw: Vec<u8>,
    pub config: ImageConfiguration,
    pub layers: Vec<Layer>,
    /// What resolving noticed that does not stop the run (the caller reports them).
    pub warnings: Vec<String>,
    /// The entries of the index the reference pointed at (empty without one), for a look at
    /// an image's platforms before pulling it.
    pub index_entries: Vec<IndexEntry>,
}

/// One entry of an image index, as listed (not fetched).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// `os/arch[/variant]` as the entry states it; `None` when it states none.
    pub platform: Option<String>,
    /// A BuildKit attestation (provenance, SBOM), not an image to convert.
    pub attestation: bool,
}

impl Image {
    /// The image's platform as its config states it, `os/arch[/variant]`.
    pub fn platform(&self) -> String {
        let os = self.config.os().to_string();
        let arch = self.config.architecture().to_string();
        match self.config.variant().as_deref() {
            Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
            _ => format!("{os}/{arch}"),
        }
    }
}

/// Fetches small JSON blobs (indexes, manifests, configs) by descriptor. Sources implement
/// this so that the index→manifest→config walk is written once.
pub trait JsonFetcher {
    fn fetch_json(&self, desc: &Descriptor) -> Result<Vec<u8>>;
}

/// Which platform the user asked for, and whether they asked explicitly: an explicit request
/// that a single-platform image does not satisfy is an error, the default only a warning.
#[derive(Clone, Debug)]
pub struct PlatformChoice {
    /// The platform wanted.
    pub platform: Platform,
    /// The user named it (`--platform`), rather than taking this machine's.
    pub explicit: bool,
}

impl Default for PlatformChoice {
    fn default() -> Self {
        PlatformChoice {
            platform: Platform::host_linux(),
            explicit: false,
        }
    }
}

/// Walks from a top-level document (index or manifest) to a single-platform [`Image`].
pub fn resolve(
    name: &str,
    fetcher: &dyn JsonFetcher,
    top_bytes: Vec<u8>,
    top_media_type: Option<&str>,
    top_digest: Option<Digest>,
    choice: &PlatformChoice,
) -> Result<Image> {
    let mut bytes = top_bytes;
    let mut media_type = top_media_type.map(str::to_string);
    let mut digest = top_digest;
    let mut index_digest = None;
    let mut index_entries = Vec::new();
    // Indexes may nest (an index of indexes); a small bound stops a cycle.
    for _ in 0..4 {
        match manifest::parse_document(&bytes, media_type.as_deref())? {
            Document::Index(list) => {
                if index_digest.is_none() {
                    index_digest = digest.clone();
                    index_entries = list
                        .iter()
                        .map(|d| IndexEntry {
                            digest: d.digest.clone(),
                            media_type: d.media_type.clone(),
                            size: d.size,
                            platform: d.platform.is_some().then(|| d.platform_string()),
                            attestation: d.is_attestation(),
                        })
                        .collect();
                }
                let chosen = choose_manifest(&list, &choice.platform, fetcher, false)?;
                bytes = fetcher.fetch_json(chosen).with_context(|| {
                    format!(
                        "reading manifest {} ({})",
                        chosen.digest,
                        chosen.platform_string()
                    )
                })?;
                media_type = Some(chosen.media_type.clone()).filter(|m| !m.is_empty());
                digest = Some(chosen.digest.clone());
            }
            Document::Manifest(m) => {
                let mut image = image_from_manifest(name, fetcher, *m, digest, choice)?;
                image.index_digest = index_digest;
                image.index_entries = index_entries;
                return Ok(image);
            }
        }
    }
    bail_kind!(HostileInput, "indexes nested more than 4 deep")
}

pub fn image_from_manifest(
    name: &str,
    fetcher: &dyn JsonFetcher,
    manifest: manifest::Manifest,
    manifest_digest: Option<Digest>,
    choice: &PlatformChoice,
) -> Result<Image> {
    if let Some(kind) = manifest.artifact_kind() {
        let digest = manifest_digest
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        bail_kind!(Unsupported, "{name}{digest} is not a container image but an OCI artifact ({kind}); it has no file system to convert");
    }
    check_layer_count(manifest.layers.len())?;
    let config_raw = fetcher
        .fetch_json(&manifest.config)
        .with_context(|| format!("reading config {}", manifest.config.digest))?;
    let config = parse_config(&config_raw)?;
    let warnings = check_platform(&config, choice)?.into_iter().collect();
    let diff_ids = diff_ids(&config)?;
    if diff_ids.len() != manifest.layers.len() {
        bail_kind!(
            HostileInput,
            "manifest lists {} layers but config rootfs.diff_ids lists {}",
            manifest.layers.len(),
            diff_ids.len()
        );
    }
    let count = manifest.layers.len();
    let layers = manifest
        .layers
        .into_iter()
        .zip(diff_ids)
        .enumerate()
        .map(|(index, (desc, diff_id))| {
            if !desc.urls.is_empty() {
                bail_kind!(Unsupported, "layer {} is a foreign layer (it has urls): foreign layers are Windows base layers and are not supported", desc.digest);
            }
            let compression = manifest::layer_compression(&desc.media_type)
                .with_context(|| format!("layer {}", desc.digest))?;
            Ok(Layer {
                index,
                count,
                location: blob_path(&desc.digest),
                digest: Some(desc.digest),
                size: Some(desc.size),
                compression: Some(compression),
                media_type: desc.media_type,
                diff_id,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Image {
        name: name.to_string(),
        manifest_digest,
        index_digest: None,
        config_digest: manifest.config.digest,
        config_raw,
        config,
        layers,
        warnings,
        index_entries: Vec::new(),
    })
}

/// Refuses images with more layers than `limits::MAX_LAYERS`.
pub fn check_layer_count(count: usize) -> Result<()> {
    if count > crate::limits::MAX_LAYERS {
        bail_kind!(
            HostileInput,
            "the image has {count} layers, more than the limit of {} (docker itself stops at 127)",
            crate::limits::MAX_LAYERS
        );
    }
    Ok(())
}

/// What an index entry that states no platform is, judged from its manifest and config.
enum Judged {
    Image(Platform),
    /// An artifact, an attestation without the usual markers, or a nested index.
    NotAnImage(String),
}

fn judge_entry(desc: &Descriptor, fetcher: &dyn JsonFetcher) -> Result<Judged> {
    let bytes = fetcher.fetch_json(desc)?;
    let media = Some(desc.media_type.as_str()).filter(|m| !m.is_empty());
    let m = match manifest::parse_document(&bytes, media)? {
        Document::Index(_) => return Ok(Judged::NotAnImage("an index".into())),
        Document::Manifest(m) => m,
    };
    if let Some(kind) = m.artifact_kind() {
        return Ok(Judged::NotAnImage(format!("an artifact, {kind}")));
    }
    let config: serde_json::Value = serde_json::from_slice(&fetcher.fetch_json(&m.config)?)
        .context("its config is not JSON")?;
    let text = |k: &str| config.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (os, arch) = (text("os"), text("architecture"));
    if os.is_empty() || arch.is_empty() || (os == "unknown" && arch == "unknown") {
        return Ok(Judged::NotAnImage(format!(
            "config platform {os:?}/{arch:?}"
        )));
    }
    Ok(Judged::Image(Platform {
        os: os.to_string(),
        architecture: arch.to_string(),
        variant: Some(text("variant"))
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    }))
}

/// Chooses the manifest for `want` from an index's entries.
///
/// An entry's stated platform decides first (the first match in index order wins). The
/// image spec makes `platform` optional, so entries without one are then judged by their
/// config's `os`/`architecture`/`variant`, as containerd does, and again the first match
/// wins, unless `unique` asks that two different matching images be called ambiguous (a
/// layout's top-level `index.json`, where entries are separate images, not one image's
/// platforms). A lone platform-less entry is taken as it is: the config check that follows
/// warns or refuses exactly as for a single-manifest image. Attestation manifests
/// (`unknown/unknown`, `vnd.docker.reference.type`) are never chosen.
pub fn choose_manifest<'a>(
    entries: &'a [Descriptor],
    want: &Platform,
    fetcher: &dyn JsonFetcher,
    unique: bool,
) -> Result<&'a Descriptor> {
    if let Some(d) = manifest::first_platform_match(entries, want) {
        return Ok(d);
    }
    let candidates: Vec<&Descriptor> = entries.iter().filter(|d| !d.is_attestation()).collect();
    match candidates.as_slice() {
        [] => bail_kind!(
            NotFound,
            "the index lists no image manifests (only attestations or nothing)"
        ),
        [one] if one.platform.is_none() => return Ok(one),
        _ => {}
    }
    let mut available = Vec::new();
    let mut matched: Vec<&Descriptor> = Vec::new();
    for d in &candidates {
        if d.platform.is_some() {
            available.push(d.platform_string());
            continue;
        }
        match judge_entry(d, fetcher)
            .with_context(|| format!("reading {} to learn its platform", d.digest))?
        {
            Judged::Image(p) if want.matches(&p.os, &p.architecture, p.variant.as_deref()) => {
                if !matched.iter().any(|m| m.digest == d.digest) {
                    matched.push(d);
                }
            }
            Judged::Image(p) => available.push(format!("{p} (from its config)")),
            Judged::NotAnImage(what) => available.push(format!("{} ({what})", d.digest.short())),
        }
    }
    match matched.as_slice() {
        [first] => return Ok(first),
        [first, ..] if !unique => return Ok(first),
        [] => {}
        several => {
            let digests: Vec<String> = several.iter().map(|d| d.digest.to_string()).collect();
            bail_kind!(Usage,
                "{} different images state no platform and are all for {want}: {}; name one with @DIGEST",
                several.len(),
                digests.join(", ")
            )
        }
    }
    available.dedup();
    bail_kind!(
        NotFound,
        "no image for platform {want}; the image has: {} (choose one with --platform)",
        available.join(", ")
    )
}

/// `blobs/<alg>/<hex>`: where OCI layouts (and Docker 25+ archives) keep a blob.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
}

pub fn parse_config(raw: &[u8]) -> Result<ImageConfiguration> {
    if raw.first().is_some_and(|b| *b == b'<') {
        bail_kind!(HostileInput, "image config is HTML, not JSON");
    }
    serde_json::from_slice(raw).context("image config is not a valid OCI/Docker image config")
}

pub fn diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| {
            Digest::parse(d)
                .map_err(anyhow::Error::msg)
                .context("invalid diff_id in image config")
        })
        .collect()
}

/// Checks the image's platform against the choice: an explicit choice it does not meet is
/// an error; the default choice only earns a warning (returned).
pub fn check_platform(
    config: &ImageConfiguration,
    choice: &PlatformChoice,
) -> Result<Option<String>> {
    let os = config.os().to_string();
    let arch = config.architecture().to_string();
    let variant = config.variant().as_deref();
    if choice.platform.matches(&os, &arch, variant) {
        return Ok(None);
    }
    let have = match variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    };
    if choice.explicit {
        bail_kind!(
            NotFound,
            "the image is for {have}, not the requested {}",
            choice.platform
        );
    }
    Ok(Some(format!(
        "the image is for {}, not {}; it may not run in WSL on this machine",
        crate::terminal::printable(&have),
        choice.platform
    )))
}
