//! `docker save` archives (also written by `podman save` and `skopeo copy … docker-archive:`).
//!
//! `manifest.json` lists, per image, the config file, its tags and its layer files. Legacy
//! archives name layers `<id>/layer.tar` (possibly symlinks to another layer's file) and carry
//! no blob digests: the config's diff_ids are what verifies them. Docker 25+ archives put
//! OCI blobs under `blobs/sha256/`, whose names are their digests and are checked too.

use super::layout::digest_from_blob_path;
use super::store::{check_relative, BlobReader, BlobStore};
use super::ImageSource;
use crate::error::{bail_kind, kind_err};
use crate::image::digest::Digest;
use crate::image::manifest::{self, Descriptor, RawDescriptor, MAX_JSON_SIZE};
use crate::image::{self, Image, Layer, PlatformChoice};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
    /// Docker 25+ writes a descriptor here for every layer, keyed by diff_id; older
    /// writers (and go-containerregistry) only for foreign layers.
    #[serde(default)]
    layer_sources: Option<HashMap<String, RawDescriptor>>,
}

pub struct DockerArchiveSource {
    name: String,
    store: Box<dyn BlobStore>,
    repo_tag: Option<String>,
}

impl DockerArchiveSource {
    pub fn new(name: String, store: Box<dyn BlobStore>, repo_tag: Option<String>) -> Self {
        DockerArchiveSource {
            name,
            store,
            repo_tag,
        }
    }
}

/// `app:1.2`, `docker.io/library/app:1.2` and `localhost/app:1.2` (podman) are one name to a
/// person; compare them as docker would after normalising.
fn normalize_tag(tag: &str) -> String {
    // go-containerregistry writes Docker Hub names in full: `index.docker.io/library/app:1`.
    let tag = tag.strip_prefix("index.docker.io/").unwrap_or(tag);
    let tag = tag.strip_prefix("docker.io/").unwrap_or(tag);
    let tag = tag.strip_prefix("library/").unwrap_or(tag);
    let tag = tag.strip_prefix("localhost/").unwrap_or(tag);
    let last = tag.rsplit('/').next().unwrap_or(tag);
    if last.contains(':') || last.contains('@') {
        tag.to_string()
    } else {
        format!("{tag}:latest")
    }
}

impl ImageSource for DockerArchiveSource {
    fn resolve(&self, choice: &PlatformChoice) -> Result<Image> {
        let raw = self
            .store
            .read_small("manifest.json", MAX_JSON_SIZE)?
            .ok_or_else(|| {
                if self.store.open("index.json").ok().flatten().is_some() {
                    kind_err!(Unsupported, "no manifest.json: this looks like an OCI archive, use oci-archive:")
                } else if self.store.open("repositories").ok().flatten().is_some() {
                    kind_err!(Unsupported, "no manifest.json: this is a pre-1.10 docker save archive (per-layer json and VERSION files only), which is not supported; load it into Docker and save it again")
                } else {
                    kind_err!(NotFound, "no manifest.json: not a docker-archive (docker save) tarball")
                }
            })?;
        let entries: Vec<ManifestEntry> = serde_json::from_slice(&raw)
            .context("manifest.json is not a valid docker-archive manifest")?;
        let all_tags = || {
            let tags: Vec<String> = entries
                .iter()
                .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
                .collect();
            if tags.is_empty() {
                "untagged images only".to_string()
            } else {
                tags.join(", ")
            }
        };
        let entry = match &self.repo_tag {
            None => match entries.as_slice() {
                [] => bail_kind!(NotFound, "manifest.json lists no images"),
                [one] => one,
                _ => bail_kind!(
                    Usage,
                    "the archive holds {} images, name one with :REPO:TAG: {}",
                    entries.len(),
                    all_tags()
                ),
            },
            Some(want) => {
                let want_n = normalize_tag(want);
                entries
                    .iter()
                    .find(|e| {
                        e.repo_tags
                            .iter()
                            .flatten()
                            .any(|t| t == want || normalize_tag(t) == want_n)
                    })
                    .ok_or_else(|| {
                        kind_err!(
                            NotFound,
                            "no image tagged {want:?} in the archive; it has: {}",
                            all_tags()
                        )
                    })?
            }
        };
        check_relative(&entry.config)?;
        let config_raw = self
            .store
            .read_small(&entry.config, MAX_JSON_SIZE)?
            .ok_or_else(|| {
                kind_err!(
                    NotFound,
                    "config {} named by manifest.json is missing",
                    entry.config
                )
            })?;
        let mut config_digest = Digest::sha256_of(&config_raw);
        let mut warnings = Vec::new();
        // Writers name the config after its digest (`<hex>.json`, `blobs/sha256/<hex>`,
        // go-containerregistry's `sha256:<hex>`). Old `docker save` versions did not always
        // (images with empty-layer history), and docker load, skopeo and
        // go-containerregistry all accept that: the diff_ids in the config still cover
        // every layer byte, so a mismatch is only worth a warning.
        if let Some(named) = config_digest_from_name(&entry.config) {
            if named.verify(&config_raw).is_ok() {
                config_digest = named;
            } else {
                warnings.push(format!(
                    "{}: config file {} is not named after its content ({}); reading it anyway, the layers are still checked against its diff_ids",
                    self.name, entry.config, config_digest
                ));
            }
        }
        let config = image::parse_config(&config_raw)?;
        let diff_ids = image::diff_ids(&config)?;
        if diff_ids.len() != entry.layers.len() {
            bail_kind!(
                HostileInput,
                "manifest.json lists {} layers but the config's rootfs.diff_ids lists {}",
                entry.layers.len(),
                diff_ids.len()
            );
        }
        image::check_layer_count(entry.layers.len())?;
        warnings.extend(image::check_platform(&config, choice)?);
        let count = entry.layers.len();
        let mut layers = Vec::with_capacity(count);
        for (index, (path, diff_id)) in entry.layers.iter().zip(diff_ids).enumerate() {
            check_relative(path)?;
            let source = entry
                .layer_sources
                .as_ref()
                .and_then(|sources| sources.get(&diff_id.to_string()))
                .map(|raw| {
                    Descriptor::from_raw(raw.clone())
                        .with_context(|| format!("LayerSources entry for layer {diff_id}"))
                })
                .transpose()?;
            let stored = self.store.open(path)?.map(|(_, size)| size);
            // Older moby wrote a foreign layer's descriptor (the remote, compressed blob)
            // beside the layer's own uncompressed tar: the descriptor does not describe those
            // bytes, so they are read as a plain layer, which the diff_id still covers.
            let source = source.filter(|d| !(stored.is_some() && is_foreign(&d.media_type)));
            let layer = match (source, stored) {
                (None, None) => bail_kind!(
                    NotFound,
                    "layer file {path} named by manifest.json is missing"
                ),
                (None, Some(size)) => Layer {
                    index,
                    count,
                    digest: digest_from_blob_path(path),
                    size: Some(size),
                    compression: None,
                    media_type: String::new(),
                    diff_id,
                    location: path.clone(),
                },
                // A descriptor with bytes in the archive is an ordinary layer (Docker 25+
                // lists every layer this way); the descriptor is then one more check.
                (Some(desc), Some(size)) => {
                    if size != desc.size {
                        bail_kind!(Integrity,
                            "layer file {path} is {size} bytes, but its LayerSources descriptor says {}",
                            desc.size
                        );
                    }
                    if let Some(named) = digest_from_blob_path(path) {
                        if named != desc.digest {
                            bail_kind!(Integrity, "layer file {path} is not the blob its LayerSources descriptor names ({})", desc.digest);
                        }
                    }
                    let compression = manifest::layer_compression(&desc.media_type)
                        .with_context(|| format!("layer {path}"))?;
                    Layer {
                        index,
                        count,
                        digest: Some(desc.digest),
                        size: Some(size),
                        compression: Some(compression),
                        media_type: desc.media_type,
                        diff_id,
                        location: path.clone(),
                    }
                }
                // Only a descriptor whose bytes are not in the archive is a foreign layer.
                (Some(desc), None) => {
                    let kind = if is_foreign(&desc.media_type) {
                        "a foreign (non-distributable) layer, a Windows base layer whose bytes live outside the image: not supported"
                    } else {
                        "missing from the archive"
                    };
                    bail_kind!(
                        Unsupported,
                        "layer {} ({}, {path}) is {kind}",
                        desc.digest,
                        desc.media_type
                    );
                }
            };
            layers.push(layer);
        }
        Ok(Image {
            name: self.name.clone(),
            manifest_digest: None,
            index_digest: None,
            config_digest,
            config_raw,
            config,
            layers,
            warnings,
            index_entries: Vec::new(),
        })
    }

    fn open_layer(&self, layer: &Layer) -> Result<BlobReader> {
        let (reader, _) = self.store.open(&layer.location)?.ok_or_else(|| {
            kind_err!(
                NotFound,
                "layer file {} is missing from the archive",
                layer.location
            )
        })?;
        Ok(reader)
    }
}

fn is_foreign(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// The digest a config's file name claims, in any of the forms writers use.
fn config_digest_from_name(path: &str) -> Option<Digest> {
    if let Some(d) = digest_from_blob_path(path) {
        return Some(d);
    }
    let file = path.rsplit('/').next()?;
    if file.contains(':') {
        return Digest::parse(file).ok();
    }
    Digest::parse(&format!("sha256:{}", file.strip_suffix(".json")?)).ok()
}

#[cfg(test)]
mod tests {
    use super::{config_digest_from_name, normalize_tag};

    #[test]
    fn config_names_in_every_writer_form() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for name in [
            format!("{hex}.json"),
            format!("blobs/sha256/{hex}"),
            format!("sha256:{hex}"),
        ] {
            assert_eq!(
                config_digest_from_name(&name).map(|d| d.to_string()),
                Some(format!("sha256:{hex}")),
                "{name}"
            );
        }
        assert!(config_digest_from_name("config.json").is_none());
    }

    #[test]
    fn tags_normalise_like_docker() {
        assert_eq!(normalize_tag("app"), "app:latest");
        assert_eq!(normalize_tag("docker.io/library/app:1.2"), "app:1.2");
        assert_eq!(normalize_tag("localhost/app:1.2"), "app:1.2");
        assert_eq!(normalize_tag("index.docker.io/library/app:1.2"), "app:1.2");
        assert_eq!(
            normalize_tag("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
    }
}
