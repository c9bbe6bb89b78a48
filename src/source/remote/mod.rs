//! Images straight from a registry (distribution API v2).
//!
//! Each layer blob is downloaded once, into an anonymous temporary file (deleted by the OS
//! when the process ends), with its digest and size checked on the way in. Downloads start
//! as soon as the image is resolved, a few at a time and in layer order. The index pass
//! reads each spool *while it grows*, so inflating and parsing a layer overlaps its
//! download; its reader ends only when the download has verified the whole blob, and fails
//! when the download does. The emit pass reads the finished spools.

pub mod auth;
pub mod client;
pub mod reference;

use super::store::{read_at, write_at, BlobReader, ConsumingReader, PositionedReader};
use super::ImageSource;
use crate::cancel::Cancel;
use crate::error::{bail_kind, kind_err};
use crate::error::{classify, tagged, tagged_io, ErrorKind};
use crate::events::{Event, Observer, Phase, SharedObserver, PROGRESS_STEP};
use crate::image::digest::{Digest, Hasher};
use crate::image::manifest::{self, Descriptor, MAX_JSON_SIZE};
use crate::image::{self, Image, JsonFetcher, Layer, PlatformChoice};
use anyhow::{anyhow, bail, Context, Result};
use auth::Credentials;
use client::Client;
use reference::RegistryRef;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

/// How to reach registries: each field is the command-line flag of its name (`--creds`,
/// `--authfile`, `--tls-verify`, `--ca-file`, `--cert-dir`, `--insecure-registry`).
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    pub creds: Option<Credentials>,
    pub authfile: Option<PathBuf>,
    pub tls_verify: bool,
    pub ca_files: Vec<PathBuf>,
    pub cert_dir: Option<PathBuf>,
    pub insecure_registries: Vec<String>,
    /// Blobs downloaded at once.
    pub parallel_downloads: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            creds: None,
            authfile: None,
            tls_verify: true,
            ca_files: Vec::new(),
            cert_dir: None,
            insecure_registries: Vec::new(),
            parallel_downloads: 3,
        }
    }
}

/// Where one layer's download is.
enum Slot {
    Pending,
    /// The first `written` bytes of the spool are this attempt's bytes of the blob.
    Growing {
        file: Arc<File>,
        written: u64,
    },
    /// Complete, digest and size checked.
    Done {
        file: Arc<File>,
        size: u64,
    },
    Failed(ErrorKind, String),
    /// The layer stage is done with it; the spool is closed (and so gone).
    Released,
}

/// One download per distinct blob: a digest listed many times in a manifest is fetched and
/// spooled once, and its layers share the spool.
struct Downloads {
    /// By download.
    slots: Mutex<Vec<Slot>>,
    ready: Condvar,
    shares: Mutex<Shares>,
}

#[derive(Default)]
struct Shares {
    /// The download of each layer (by layer index).
    of_layer: Vec<usize>,
    /// By download: how many layers use it, and how many have not been let go yet.
    layers: Vec<usize>,
    remaining: Vec<usize>,
}

impl Downloads {
    fn download_of(&self, layer: &Layer) -> Option<usize> {
        self.shares
            .lock()
            .unwrap()
            .of_layer
            .get(layer.index)
            .copied()
    }
}

pub struct RegistrySource {
    reference: RegistryRef,
    client: Arc<Client>,
    parallel: usize,
    downloads: Arc<Downloads>,
    observer: SharedObserver,
    /// Stops the download threads: when the run is cancelled, or when the source is dropped
    /// (the run failed, or no longer needs the blobs).
    cancel: Cancel,
}

impl Drop for RegistrySource {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RegistrySource {
    pub fn new(
        text: &str,
        opts: &RegistryOptions,
        observer: SharedObserver,
    ) -> Result<RegistrySource> {
        let reference = RegistryRef::parse(text)?;
        let client = Client::new(
            &reference.registry,
            reference.api_host(),
            &reference.repository,
            opts,
        )?;
        Ok(RegistrySource {
            reference,
            client: Arc::new(client),
            parallel: opts.parallel_downloads.max(1),
            downloads: Arc::new(Downloads {
                slots: Mutex::new(Vec::new()),
                ready: Condvar::new(),
                shares: Mutex::new(Shares::default()),
            }),
            observer,
            cancel: Cancel::new(),
        })
    }

    /// Stops the downloads when `run` is cancelled too.
    pub fn cancelled_by(mut self, run: &Cancel) -> RegistrySource {
        self.cancel = run.child();
        self
    }

    /// Lets a layer go. When it was the last layer of its download, the download is marked
    /// released and its spool handed over, the last handle the source held. Also says
    /// whether the spool belongs to this layer alone (only then may a reader free what it
    /// has read: another layer may be reading the same spool at the same time).
    fn take_spool(&self, layer: &Layer) -> Option<(Arc<File>, u64, bool)> {
        let mut shares = self.downloads.shares.lock().unwrap();
        let d = *shares.of_layer.get(layer.index)?;
        let mut slots = self.downloads.slots.lock().unwrap();
        let Slot::Done { file, size } = &slots[d] else {
            return None;
        };
        let (file, size) = (file.clone(), *size);
        shares.remaining[d] = shares.remaining[d].saturating_sub(1);
        if shares.remaining[d] == 0 {
            slots[d] = Slot::Released;
        }
        Some((file, size, shares.layers[d] == 1))
    }

    /// Starts downloading every layer in the background, `parallel` at a time, in order.
    fn start_downloads(&self, layers: &[Layer]) {
        let mut distinct: Vec<Layer> = Vec::new();
        let mut shares = Shares::default();
        for layer in layers {
            // The size too: a descriptor with a wrong size gets its own (failing) download
            // rather than borrowing another descriptor's verified spool.
            let same = distinct.iter().position(|d| {
                d.digest.is_some() && d.digest == layer.digest && d.size == layer.size
            });
            let d = same.unwrap_or_else(|| {
                distinct.push(layer.clone());
                shares.layers.push(0);
                distinct.len() - 1
            });
            shares.of_layer.push(d);
            shares.layers[d] += 1;
        }
        shares.remaining = shares.layers.clone();
        *self.downloads.shares.lock().unwrap() = shares;
        {
            let mut slots = self.downloads.slots.lock().unwrap();
            *slots = (0..distinct.len()).map(|_| Slot::Pending).collect();
        }
        let queue = Arc::new(Mutex::new(
            distinct
                .iter()
                .cloned()
                .enumerate()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        for _ in 0..self.parallel.min(distinct.len().max(1)) {
            let queue = queue.clone();
            let client = self.client.clone();
            let downloads = self.downloads.clone();
            let observer = self.observer.clone();
            let cancel = self.cancel.clone();
            std::thread::spawn(move || loop {
                let Some((d, layer)) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let publish = |state: Slot| {
                    downloads.slots.lock().unwrap()[d] = state;
                    downloads.ready.notify_all();
                };
                // Once cancelled, the queue drains as failures, so that no reader waits for
                // a download that will never start.
                let result = cancel
                    .check()
                    .and_then(|()| download(&client, &layer, observer.as_ref(), &publish, &cancel));
                publish(match result {
                    Ok((file, size)) => Slot::Done { file, size },
                    Err(e) => Slot::Failed(classify(&e), format!("{e:#}")),
                });
            });
        }
    }
}

/// Downloads one blob into a spool file, verifying digest and size, resuming an interrupted
/// transfer with a range request. `publish` hears of every stretch written.
///
/// The spool only ever grows: a byte written to it is never replaced, because a reader may
/// already have consumed it. When a later attempt sends bytes the spool already holds (the
/// registry answered the range with `200` and the whole blob, or with a `206` that starts
/// early), they are compared with the spool and the download fails if they differ; only the
/// bytes past the spool's end are hashed and appended. So every byte any reader sees is part
/// of the one sequence the digest check covers.
fn download(
    client: &Client,
    layer: &Layer,
    observer: &dyn Observer,
    publish: &dyn Fn(Slot),
    cancel: &Cancel,
) -> Result<(Arc<File>, u64)> {
    let digest = layer
        .digest
        .as_ref()
        .ok_or_else(|| anyhow!("registry layer without digest"))?;
    let size = layer.size.unwrap_or(u64::MAX);
    let spool = Arc::new(tempfile::tempfile().context("creating a temporary file for a layer")?);
    let mut hasher = Hasher::new(digest.algorithm());
    // Bytes in the spool: hashed, published, never rewritten.
    let mut have: u64 = 0;
    // Where the next attempt asks to start: `have`, or 0 after a 206 that cannot be placed.
    let mut ask_from: u64 = 0;
    let mut interruptions = 0;
    let mut reported: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    let mut spooled = vec![0u8; buf.len()];
    publish(Slot::Growing {
        file: spool.clone(),
        written: 0,
    });
    'attempts: loop {
        if have == size {
            break;
        }
        let client::BlobBody {
            mut body,
            start,
            total,
        } = client.blob(&digest.to_string(), ask_from)?;
        if let (Some(total), true) = (total, size != u64::MAX) {
            if total != size {
                bail_kind!(Integrity, "blob {digest}: the registry says it is {total} bytes, its descriptor says {size}");
            }
        }
        let mut pos = match start {
            Some(start) if start <= have => start,
            // A 206 that leaves a gap after the spool, or whose Content-Range cannot be read:
            // its bytes cannot be placed, so the next attempt asks for the whole blob.
            _ => {
                interruptions += 1;
                if interruptions > 5 {
                    bail_kind!(Network, "blob {digest}: the registry answered {interruptions} resumptions at byte {ask_from} with a range that does not continue the download");
                }
                ask_from = 0;
                continue 'attempts;
            }
        };
        loop {
            cancel.check()?;
            match body.read(&mut buf) {
                Ok(0) => break 'attempts,
                Ok(n) => {
                    if pos + n as u64 > size {
                        bail_kind!(Integrity, "blob {digest} is longer than the size its descriptor says ({size} bytes): wrong size or tampered");
                    }
                    let resent = (have.saturating_sub(pos)).min(n as u64) as usize;
                    if resent > 0 {
                        read_exact_at(&spool, &mut spooled[..resent], pos)?;
                        if let Some(i) = (0..resent).find(|&i| spooled[i] != buf[i]) {
                            bail_kind!(Integrity,
                                "blob {digest}: the registry sent byte {} differently when the download was resumed; refusing to mix two versions of the blob",
                                pos + i as u64
                            );
                        }
                    }
                    let fresh = &buf[resent..n];
                    if !fresh.is_empty() {
                        hasher.update(fresh);
                        // Positioned writes: readers use positioned reads of the same file.
                        write_at(&spool, fresh, have)?;
                        have += fresh.len() as u64;
                        publish(Slot::Growing {
                            file: spool.clone(),
                            written: have,
                        });
                        if have - reported >= PROGRESS_STEP {
                            reported = have;
                            observer.event(&Event::Progress {
                                phase: Phase::Download,
                                layer: Some(layer.index),
                                done: have,
                                total: layer.size,
                            });
                        }
                    }
                    pos += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    interruptions += 1;
                    if interruptions > 5 {
                        bail_kind!(
                            Network,
                            "downloading blob {digest}: the connection broke {interruptions} times: {e}"
                        );
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200 * interruptions));
                    ask_from = have;
                    continue 'attempts;
                }
            }
        }
    }
    if have != size {
        bail_kind!(Integrity, "blob {digest} is {have} bytes, but its descriptor says {size} (truncated or wrong size)");
    }
    let actual = hasher.finish();
    if &actual != digest {
        bail_kind!(
            Integrity,
            "blob has digest {actual}, expected {digest} (corrupted or tampered)"
        );
    }
    observer.event(&Event::Progress {
        phase: Phase::Download,
        layer: Some(layer.index),
        done: have,
        total: layer.size,
    });
    observer.event(&Event::LayerDone {
        phase: Phase::Download,
        layer: layer.index,
        bytes: have,
    });
    Ok((spool, have))
}

/// Fills `buf` from the spool at `offset` (bytes this download wrote there earlier).
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = read_at(file, &mut buf[done..], offset + done as u64)?;
        if n == 0 {
            bail!("the layer's temporary file is shorter than what was written to it");
        }
        done += n;
    }
    Ok(())
}

/// A layer's spool as it downloads: blocks for bytes not yet written, ends only when the
/// download verified the whole blob, and fails when it failed.
struct GrowingReader {
    downloads: Arc<Downloads>,
    /// The download, not the layer.
    download: usize,
    pos: u64,
}

impl Read for GrowingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut slots = self.downloads.slots.lock().unwrap();
        loop {
            let (file, available) = match &slots[self.download] {
                Slot::Failed(kind, e) => {
                    return Err(tagged_io(std::io::ErrorKind::Other, *kind, e.clone()))
                }
                Slot::Released => return Err(std::io::Error::other(RELEASED)),
                Slot::Done { file, size } => {
                    if self.pos >= *size {
                        return Ok(0);
                    }
                    (file.clone(), size - self.pos)
                }
                Slot::Growing { file, written } if *written > self.pos => {
                    (file.clone(), written - self.pos)
                }
                Slot::Growing { .. } | Slot::Pending => {
                    slots = self.downloads.ready.wait(slots).unwrap();
                    continue;
                }
            };
            drop(slots);
            let want = available.min(buf.len() as u64) as usize;
            let n = read_at(&file, &mut buf[..want], self.pos)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the layer's temporary file is shorter than what was written to it",
                ));
            }
            self.pos += n as u64;
            return Ok(n);
        }
    }
}

const RELEASED: &str = "internal: the layer was read after its download was released";

impl JsonFetcher for RegistrySource {
    fn fetch_json(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_JSON_SIZE {
            bail_kind!(
                HostileInput,
                "{} claims {} bytes, more than the {MAX_JSON_SIZE}-byte limit",
                desc.digest,
                desc.size
            );
        }
        let is_manifest = manifest::ACCEPTED_MANIFEST_TYPES.contains(&desc.media_type.as_str());
        let bytes = if is_manifest {
            self.client
                .manifest(
                    &desc.digest.to_string(),
                    &manifest::ACCEPTED_MANIFEST_TYPES.join(", "),
                    MAX_JSON_SIZE,
                )?
                .0
        } else {
            self.client
                .small_blob(&desc.digest.to_string(), MAX_JSON_SIZE)?
        };
        if bytes.len() as u64 != desc.size {
            bail_kind!(
                Integrity,
                "{} is {} bytes, but its descriptor says {}",
                desc.digest,
                bytes.len(),
                desc.size
            );
        }
        desc.digest
            .verify(&bytes)
            .map_err(|e| kind_err!(Integrity, "{}: {e}", desc.digest))?;
        Ok(bytes)
    }
}

impl ImageSource for RegistrySource {
    fn resolve(&self, choice: &PlatformChoice) -> Result<Image> {
        let reference = self.reference.manifest_reference();
        // Schema 1 is listed so that such an image is refused by name, not as "not found".
        let accept = format!(
            "{}, {};q=0.1",
            manifest::ACCEPTED_MANIFEST_TYPES.join(", "),
            manifest::DOCKER_SCHEMA1_SIGNED
        );
        let (bytes, media, header_digest) =
            self.client.manifest(&reference, &accept, MAX_JSON_SIZE)?;
        let digest = match &self.reference.digest {
            Some(pinned) => {
                pinned
                    .verify(&bytes)
                    .map_err(|e| kind_err!(Integrity, "manifest of {}: {e} (the registry sent other bytes than the pinned digest)", self.reference))?;
                pinned.clone()
            }
            None => {
                let computed = Digest::sha256_of(&bytes);
                if let Some(h) = header_digest.as_deref().and_then(|h| Digest::parse(h).ok()) {
                    if h.algorithm() == computed.algorithm() && h != computed {
                        bail_kind!(Integrity, "manifest of {}: the registry says its digest is {h} but the bytes hash to {computed}", self.reference);
                    }
                }
                computed
            }
        };
        let image = image::resolve(
            &self.reference.to_string(),
            self,
            bytes,
            media
                .as_deref()
                .filter(|m| !m.is_empty() && *m != "application/json" && *m != "text/plain"),
            Some(digest),
            choice,
        )?;
        self.start_downloads(&image.layers);
        Ok(image)
    }

    /// Spools are anonymous files of this process, filled by `download`, which checks the
    /// digest of every byte written; a reader sees the end of a layer only after that check.
    fn blobs_verified(&self) -> bool {
        true
    }

    /// The spool frees what has been read: its pages (never written to disk, the file being
    /// anonymous and short-lived) go straight to the output written next.
    fn open_layer_last(&self, layer: &Layer) -> Result<BlobReader> {
        match self.take_spool(layer) {
            Some((file, size, true)) => Ok(Box::new(ConsumingReader::new(file, size))),
            Some((file, size, false)) => Ok(Box::new(PositionedReader::new(file, 0, size))),
            // Not downloaded (failed, or released already): open_layer says why.
            None => self.open_layer(layer),
        }
    }

    /// Closing the last handle of an anonymous spool frees its pages at once, unwritten.
    fn release_layer(&self, layer: &Layer) {
        self.take_spool(layer);
    }

    fn open_layer(&self, layer: &Layer) -> Result<BlobReader> {
        let download = self.downloads.download_of(layer);
        let slots = self.downloads.slots.lock().unwrap();
        match download.and_then(|d| slots.get(d)) {
            None => bail!("layer {} was never scheduled for download", layer.index),
            Some(Slot::Done { file, size }) => {
                Ok(Box::new(PositionedReader::new(file.clone(), 0, *size)))
            }
            Some(Slot::Failed(kind, e)) => Err(tagged(*kind, e.clone())),
            Some(Slot::Released) => Err(anyhow!(RELEASED)),
            Some(Slot::Growing { .. } | Slot::Pending) => Ok(Box::new(GrowingReader {
                downloads: self.downloads.clone(),
                download: download.expect("a slot was found for it"),
                pos: 0,
            })),
        }
    }
}
