//! OCI image layouts (`oci-layout`, `index.json`, `blobs/`), in a directory or an archive.

use super::store::{BlobReader, BlobStore};
use super::ImageSource;
use crate::error::{bail_kind, kind_err};
use crate::image::digest::Digest;
use crate::image::manifest::{Descriptor, RawDescriptor, MAX_JSON_SIZE};
use crate::image::{self, Image, JsonFetcher, Layer, PlatformChoice};
use crate::reference::Selector;
use anyhow::{Context, Result};
use serde::Deserialize;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

pub struct LayoutSource {
    name: String,
    store: Box<dyn BlobStore>,
    selector: Selector,
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
}

impl LayoutSource {
    pub fn new(name: String, store: Box<dyn BlobStore>, selector: Selector) -> LayoutSource {
        LayoutSource {
            name,
            store,
            selector,
        }
    }

    fn index(&self) -> Result<Vec<Descriptor>> {
        let raw = self
            .store
            .read_small("index.json", MAX_JSON_SIZE)?
            .ok_or_else(|| {
                if self.store.open("manifest.json").ok().flatten().is_some() {
                    kind_err!(Unsupported, "no index.json: this looks like a docker-archive (docker save), use docker-archive:")
                } else {
                    kind_err!(NotFound, "no index.json: not an OCI image layout")
                }
            })?;
        let index: IndexJson =
            serde_json::from_slice(&raw).context("index.json is not a valid OCI index")?;
        index
            .manifests
            .into_iter()
            .map(Descriptor::from_raw)
            .collect::<Result<Vec<_>>>()
            .context("invalid descriptor in index.json")
    }
}

/// Which entries of index.json the selector names.
fn select<'a>(entries: &'a [Descriptor], selector: &Selector) -> Result<Vec<&'a Descriptor>> {
    let tag_of = |d: &Descriptor| d.annotations.get(REF_NAME).cloned();
    match selector {
        Selector::Digest(want) => Ok(entries.iter().filter(|d| &d.digest == want).collect()),
        Selector::Tag(tag) => {
            let by_ref: Vec<_> = entries
                .iter()
                .filter(|d| tag_of(d).as_deref() == Some(tag.as_str()))
                .collect();
            if !by_ref.is_empty() {
                return Ok(by_ref);
            }
            // containerd exports carry the full name instead ("docker.io/library/app:1.2").
            let by_name: Vec<_> = entries
                .iter()
                .filter(|d| {
                    d.annotations.get(CONTAINERD_NAME).is_some_and(|n| {
                        n == tag || n.rsplit_once(':').is_some_and(|(_, t)| t == tag)
                    })
                })
                .collect();
            if by_name.is_empty() {
                return Err(crate::error::tagged(
                    crate::error::ErrorKind::NotFound,
                    format!(
                        "no image tagged {tag:?}; the layout has: {}",
                        describe_tags(entries)
                    ),
                ));
            }
            Ok(by_name)
        }
        Selector::Only => {
            if entries.len() <= 1 {
                return Ok(entries.iter().collect());
            }
            let mut tags: Vec<String> = entries.iter().filter_map(tag_of).collect();
            tags.sort();
            tags.dedup();
            // Several untagged per-platform manifests (or one tag on all of them) form one
            // multi-platform image: let platform selection decide, reading the config of
            // entries that state no platform (and calling a tie ambiguous).
            if tags.len() <= 1 {
                return Ok(entries.iter().collect());
            }
            bail_kind!(
                Usage,
                "the layout holds {} images, name one with :TAG or @DIGEST: {}",
                entries.len(),
                describe_tags(entries)
            )
        }
    }
}

/// One tag on several manifests is one multi-platform image only when each states a
/// different platform (what per-platform exports write). Otherwise the layout is
/// ambiguous: picking one would convert an image the user may not have meant.
fn check_tag_unambiguous(tag: &str, list: &[Descriptor]) -> Result<()> {
    let mut platforms: Vec<String> = Vec::new();
    for d in list {
        if d.platform.is_none() || platforms.contains(&d.platform_string()) {
            let digests: Vec<String> = list.iter().map(|d| d.digest.to_string()).collect();
            bail_kind!(Usage,
                "tag {tag:?} is ambiguous: {} different manifests in the layout carry it ({}); name one with @DIGEST",
                list.len(),
                digests.join(", ")
            );
        }
        platforms.push(d.platform_string());
    }
    Ok(())
}

fn describe_tags(entries: &[Descriptor]) -> String {
    let names: Vec<String> = entries
        .iter()
        .map(|d| match d.annotations.get(REF_NAME) {
            Some(t) => t.clone(),
            None => format!("@{}", d.digest),
        })
        .collect();
    if names.is_empty() {
        "no images".into()
    } else {
        names.join(", ")
    }
}

impl JsonFetcher for LayoutSource {
    fn fetch_json(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_JSON_SIZE {
            bail_kind!(HostileInput,
                "{} claims {} bytes, more than the {MAX_JSON_SIZE}-byte limit for manifests and configs",
                desc.digest,
                desc.size
            );
        }
        let path = image::blob_path(&desc.digest);
        let bytes = self
            .store
            .read_small(&path, MAX_JSON_SIZE)?
            .ok_or_else(|| {
                kind_err!(
                    NotFound,
                    "blob {} is missing from the layout ({path})",
                    desc.digest
                )
            })?;
        if bytes.len() as u64 != desc.size {
            bail_kind!(
                Integrity,
                "blob {} is {} bytes, but its descriptor says {}",
                desc.digest,
                bytes.len(),
                desc.size
            );
        }
        desc.digest
            .verify(&bytes)
            .map_err(|e| kind_err!(Integrity, "blob {}: {e}", desc.digest))?;
        Ok(bytes)
    }
}

impl LayoutSource {
    fn resolve_descriptor(&self, desc: &Descriptor, choice: &PlatformChoice) -> Result<Image> {
        let bytes = self.fetch_json(desc)?;
        let media = Some(desc.media_type.as_str()).filter(|m| !m.is_empty());
        image::resolve(
            &self.name,
            self,
            bytes,
            media,
            Some(desc.digest.clone()),
            choice,
        )
    }
}

impl ImageSource for LayoutSource {
    fn resolve(&self, choice: &PlatformChoice) -> Result<Image> {
        let entries = self.index()?;
        let chosen = select(&entries, &self.selector)?;
        match chosen.as_slice() {
            [] => {
                let Selector::Digest(d) = &self.selector else {
                    bail_kind!(NotFound, "the layout's index.json lists no images");
                };
                // A digest that index.json does not list may still name a blob in the layout
                // (a platform manifest inside a multi-platform index, say).
                let path = image::blob_path(d);
                let bytes = self
                    .store
                    .read_small(&path, MAX_JSON_SIZE)?
                    .ok_or_else(|| kind_err!(NotFound, "no manifest {d} in the layout"))?;
                d.verify(&bytes)
                    .map_err(|e| kind_err!(Integrity, "blob {d}: {e}"))?;
                image::resolve(&self.name, self, bytes, None, Some(d.clone()), choice)
            }
            [one] => self.resolve_descriptor(one, choice),
            several => {
                let mut list: Vec<Descriptor> = Vec::new();
                for d in several {
                    if !list.iter().any(|l| l.digest == d.digest) {
                        list.push((*d).clone());
                    }
                }
                if let Selector::Tag(tag) = &self.selector {
                    check_tag_unambiguous(tag, &list)?;
                }
                let chosen = image::choose_manifest(&list, &choice.platform, self, true)?;
                self.resolve_descriptor(chosen, choice)
            }
        }
    }

    fn open_layer(&self, layer: &Layer) -> Result<BlobReader> {
        let (reader, _) = self.store.open(&layer.location)?.ok_or_else(|| {
            kind_err!(
                NotFound,
                "blob is missing from the layout ({})",
                layer.location
            )
        })?;
        Ok(reader)
    }
}

/// Used by the docker-archive reader for Docker 25+ archives, whose layers are OCI blobs.
pub fn digest_from_blob_path(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}
