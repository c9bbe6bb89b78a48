//! Where image bytes come from: one [`ImageSource`] per transport.
//!
//! A source resolves its reference to an [`Image`] (manifest walk, platform choice, config)
//! and opens layer blobs by [`Layer`]. It hands out raw blob bytes; verification and
//! decompression belong to the layer stage, so every source gets them the same way.

pub mod daemon;
pub mod docker_archive;
pub mod layout;
pub mod memory;
pub mod remote;
pub mod store;

use crate::cancel::Cancel;
use crate::events::SharedObserver;
use crate::image::{Image, Layer, PlatformChoice};
use crate::reference::SourceRef;
use anyhow::Result;
use std::path::Path;
use store::{BlobReader, DirStore, TarStore};

pub trait ImageSource: Send + Sync {
    /// Resolves the reference to one single-platform image.
    fn resolve(&self, choice: &PlatformChoice) -> Result<Image>;

    /// Opens a layer blob as stored (compressed). Callable from several threads at once.
    fn open_layer(&self, layer: &Layer) -> Result<BlobReader>;

    /// True when `open_layer` only ever returns bytes this process already checked against
    /// the blob digest (and that nobody else can change), so the layer stage need not hash
    /// them again.
    fn blobs_verified(&self) -> bool {
        false
    }

    /// Opens a layer blob for the last time. A source that holds a private copy (a registry
    /// download) may free each part of it once read, so that the memory and disk it held
    /// serve the output instead.
    fn open_layer_last(&self, layer: &Layer) -> Result<BlobReader> {
        self.open_layer(layer)
    }

    /// The layer stage will not open this layer again (see `open_layer_last`).
    fn release_layer(&self, _layer: &Layer) {}

    /// Why the blob itself is bad, if a check this source makes found it so. Asked after
    /// reading a layer failed: a source that hands out a blob while it still downloads (see
    /// `blobs_verified`) may learn of a digest mismatch only after the reader met the damage
    /// as a broken gzip or tar stream, and the mismatch is the cause worth reporting. May wait
    /// for a download in flight.
    fn blob_failure(&self, _layer: &Layer) -> Option<anyhow::Error> {
        None
    }
}

/// Parses what the user typed, looking inside a file named without a transport to say which
/// transport it needs (`docker-archive:` or `oci-archive:`).
pub fn parse_reference(text: &str) -> Result<SourceRef> {
    SourceRef::parse_with(text, &store::archive_kind)
}

/// Opens the source a reference names. `observer` hears of downloads and retries.
pub fn open(
    reference: &SourceRef,
    registry: &remote::RegistryOptions,
    observer: SharedObserver,
    cancel: &Cancel,
) -> Result<Box<dyn ImageSource>> {
    let name = reference.to_string();
    Ok(match reference {
        SourceRef::OciLayout { path, selector } => Box::new(layout::LayoutSource::new(
            name,
            Box::new(DirStore::new(Path::new(path))?),
            selector.clone(),
        )),
        SourceRef::OciArchive { path, selector } => Box::new(layout::LayoutSource::new(
            name,
            Box::new(TarStore::open(path)?),
            selector.clone(),
        )),
        SourceRef::DockerArchive { path, repo_tag } => {
            Box::new(docker_archive::DockerArchiveSource::new(
                name,
                Box::new(TarStore::open(path)?),
                repo_tag.clone(),
            ))
        }
        SourceRef::DockerDaemon { image } => Box::new(daemon::open(image, &name, cancel)?),
        SourceRef::Registry(r) => {
            Box::new(remote::RegistrySource::new(r, registry, observer, cancel)?)
        }
    })
}
