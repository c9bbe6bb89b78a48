//! `docker save` archives (also written by `podman save` and `skopeo copy … docker-archive:`).
//!
//! `manifest.json` lists, per image, the config file, its tags and its layer files. Legacy
//! archives name layers `<id>/layer.tar` (possibly symlinks to another layer's file) and carry
//! no blob digests: the config's diff_ids are what verifies them. Docker 25+ archives put
//! OCI blobs under `blobs/sha256/`, whose names are their digests and are checked too.

use super::layout::digest_from_blob_path;
use super::store::{check_relative, BlobReader, BlobStore};
use super::ImageSource;
use crate::image::digest::Digest;
use crate::image::manifest::MAX_JSON_SIZE;
use crate::image::{self, Image, Layer, PlatformChoice};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
    #[serde(default)]
    layer_sources: Option<HashMap<String, serde_json::Value>>,
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
                    anyhow!("no manifest.json: this looks like an OCI archive, use oci-archive:")
                } else {
                    anyhow!("no manifest.json: not a docker-archive (docker save) tarball")
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
                [] => bail!("manifest.json lists no images"),
                [one] => one,
                _ => bail!(
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
                        anyhow!(
                            "no image tagged {want:?} in the archive; it has: {}",
                            all_tags()
                        )
                    })?
            }
        };
        if entry.layer_sources.as_ref().is_some_and(|s| !s.is_empty()) {
            bail!("the image has foreign layers (LayerSources): they are Windows base layers whose bytes live outside the image, not supported");
        }
        check_relative(&entry.config)?;
        let config_raw = self
            .store
            .read_small(&entry.config, MAX_JSON_SIZE)?
            .ok_or_else(|| anyhow!("config {} named by manifest.json is missing", entry.config))?;
        // The config's file name is its digest (`<hex>.json`, or `blobs/sha256/<hex>`).
        let named = digest_from_blob_path(&entry.config).or_else(|| {
            let file = entry.config.rsplit('/').next()?;
            Digest::parse(&format!("sha256:{}", file.strip_suffix(".json")?)).ok()
        });
        let config_digest = match named {
            Some(d) => {
                d.verify(&config_raw)
                    .map_err(|e| anyhow!("config {}: {e}", entry.config))?;
                d
            }
            None => Digest::sha256_of(&config_raw),
        };
        let config = image::parse_config(&config_raw)?;
        let diff_ids = image::diff_ids(&config)?;
        if diff_ids.len() != entry.layers.len() {
            bail!(
                "manifest.json lists {} layers but the config's rootfs.diff_ids lists {}",
                entry.layers.len(),
                diff_ids.len()
            );
        }
        image::check_platform(&config, choice)?;
        let count = entry.layers.len();
        let mut layers = Vec::with_capacity(count);
        for (index, (path, diff_id)) in entry.layers.iter().zip(diff_ids).enumerate() {
            check_relative(path)?;
            let (_, size) = self
                .store
                .open(path)?
                .ok_or_else(|| anyhow!("layer file {path} named by manifest.json is missing"))?;
            layers.push(Layer {
                index,
                count,
                digest: digest_from_blob_path(path),
                size: Some(size),
                compression: None,
                media_type: String::new(),
                diff_id,
                location: path.clone(),
            });
        }
        Ok(Image {
            name: self.name.clone(),
            manifest_digest: None,
            config_digest,
            config_raw,
            config,
            layers,
        })
    }

    fn open_layer(&self, layer: &Layer) -> Result<BlobReader> {
        let (reader, _) = self
            .store
            .open(&layer.location)?
            .ok_or_else(|| anyhow!("layer file {} is missing from the archive", layer.location))?;
        Ok(reader)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_tag;

    #[test]
    fn tags_normalise_like_docker() {
        assert_eq!(normalize_tag("app"), "app:latest");
        assert_eq!(normalize_tag("docker.io/library/app:1.2"), "app:1.2");
        assert_eq!(normalize_tag("localhost/app:1.2"), "app:1.2");
        assert_eq!(
            normalize_tag("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
    }
}
