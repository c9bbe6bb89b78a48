//! Images straight from a registry (distribution API v2).
//!
//! Each layer blob is downloaded once, into a temporary file, with its digest and size
//! checked on the way in. With the layer cache (the default) that file is in the cache and
//! becomes the cached blob once verified; without it (`--no-cache`) it is anonymous and the
//! OS deletes it when the process ends. Blobs the cache holds are not downloaded at all. Downloads start
//! as soon as the image is resolved, a few at a time and in layer order. The index pass
//! reads each spool *while it grows*, so inflating and parsing a layer overlaps its
//! download; its reader ends only when the download has verified the whole blob, and fails
//! when the download does. The emit pass reads the finished spools.

pub mod authn;
pub mod certs;
pub mod challenge;
pub mod client;
pub mod transport;

use super::store::{read_at, write_at, BlobRead, BlobReader, ConsumingReader, PositionedReader};
use super::ImageSource;
use crate::cache::{Cache, CacheSettings, PullPolicy, Record};
use crate::cancel::Cancel;
use crate::error::{bail_kind, kind_err};
use crate::error::{classify, tagged, tagged_io, ErrorKind};
use crate::events::{Event, Observer, Phase, SharedObserver, PROGRESS_STEP};
use crate::image::digest::{Digest, Hasher};
use crate::image::manifest::{self, Descriptor, MAX_JSON_SIZE};
use crate::image::{self, Image, JsonFetcher, Layer, PlatformChoice};
use crate::reference::registry::RegistryRef;
use anyhow::{anyhow, bail, Context, Result};
use authn::Credentials;
use client::Client;
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
    /// `--no-creds`: consult no credential source at all.
    pub no_creds: bool,
    /// Retries of a failed request (`--retry-times`), after its first attempt.
    pub retry_times: u32,
    /// Report every request to the observer (`-v`): method, URL without its query, status,
    /// time. Off, a front end's event stream stays free of them.
    pub log_requests: bool,
    /// Blobs downloaded at once.
    pub parallel_downloads: usize,
    /// The layer cache and the pull policy.
    pub cache: CacheSettings,
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
            no_creds: false,
            retry_times: client::DEFAULT_RETRIES,
            log_requests: false,
            parallel_downloads: 3,
            cache: CacheSettings::default(),
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
    /// Downloads still running, and the cache entry to record when the last one succeeds.
    pending: Mutex<(usize, Option<Record>)>,
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
    cache: Option<Arc<Cache>>,
    pull: PullPolicy,
    /// Stops the download threads (and the client's retries): when the run is cancelled, or
    /// when the source is dropped (the run failed, or no longer needs the blobs).
    cancel: Cancel,
    /// The download threads, joined on drop.
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// A dropped source stops its downloads and waits for them: a download removes its
/// temporary file as it fails, and a caller whose run has returned must find no thread of
/// it still running and no file of it left behind. A download checks the token between
/// reads and waits for a retry on it, so this wait is short, except behind a read that is
/// stalled: that ends within the stall window.
impl Drop for RegistrySource {
    fn drop(&mut self) {
        self.cancel.cancel();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// The one place this module warns.
fn warn(observer: &dyn Observer, message: &str) {
    observer.event(&Event::Warning {
        message: message.to_string(),
    });
}

impl RegistrySource {
    /// The source of the registry image `text`; `run` cancels its requests and downloads.
    pub fn new(
        text: &str,
        opts: &RegistryOptions,
        observer: SharedObserver,
        run: &Cancel,
    ) -> Result<RegistrySource> {
        // A child: dropping the source stops its downloads without cancelling the run.
        let cancel = run.child();
        let reference = RegistryRef::parse(text)?;
        let cache = match &opts.cache.dir {
            Some(dir) => match Cache::open(dir, opts.cache.max_size) {
                Ok(cache) => Some(Arc::new(cache)),
                Err(e) if opts.cache.pull == PullPolicy::Never => return Err(e),
                // A cache that cannot be used (read-only home, full disk) costs speed only.
                Err(e) => {
                    warn(
                        observer.as_ref(),
                        &format!("{e:#}; downloading without the cache"),
                    );
                    None
                }
            },
            None if opts.cache.no_place => {
                let why = "no place for the layer cache (HOME, XDG_CACHE_HOME and --cache-dir are unset; on Windows LOCALAPPDATA)";
                if opts.cache.pull == PullPolicy::Never {
                    return Err(tagged(
                        ErrorKind::Usage,
                        format!("--pull=never reads images from the cache, and there is {why}"),
                    ));
                }
                warn(
                    observer.as_ref(),
                    &format!(
                        "{why}; downloading without it (set --cache-dir or OCI2WSL_CACHE_DIR)"
                    ),
                );
                None
            }
            None if opts.cache.pull == PullPolicy::Never => {
                return Err(tagged(
                    ErrorKind::Usage,
                    "--pull=never reads images from the cache, which --no-cache turns off",
                ));
            }
            None => None,
        };
        let client = Client::new(
            &reference.registry,
            reference.api_host(),
            &reference.repository,
            opts,
            observer.clone(),
        )?
        .stopped_by(cancel.clone());
        Ok(RegistrySource {
            reference,
            client: Arc::new(client),
            parallel: opts.parallel_downloads.max(1),
            downloads: Arc::new(Downloads {
                slots: Mutex::new(Vec::new()),
                ready: Condvar::new(),
                shares: Mutex::new(Shares::default()),
                pending: Mutex::new((0, None)),
            }),
            observer,
            cache,
            pull: opts.cache.pull,
            cancel,
            workers: Mutex::new(Vec::new()),
        })
    }

    /// Whether cached blobs may stand in for downloads.
    fn reads_cache(&self) -> Option<&Cache> {
        self.cache
            .as_deref()
            .filter(|_| self.pull != PullPolicy::Always)
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

    /// Starts downloading every layer the cache does not hold in the background, `parallel`
    /// at a time, in order; records the image in the cache once all are there.
    fn start_downloads(&self, layers: &[Layer], record: Option<Record>) -> Result<()> {
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
        let mut slots: Vec<Slot> = (0..distinct.len()).map(|_| Slot::Pending).collect();
        let mut missing = Vec::new();
        for (d, layer) in distinct.iter().enumerate() {
            let cached = self
                .reads_cache()
                .zip(layer.digest.as_ref())
                .and_then(|(cache, digest)| cache.open_blob(digest, layer.size));
            if let Some(file) = cached {
                let size = file.metadata()?.len();
                slots[d] = Slot::Done {
                    file: Arc::new(file),
                    size,
                };
            } else {
                missing.push(d);
            }
        }
        if self.pull == PullPolicy::Never && !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .map(|d| {
                    let l = &distinct[*d];
                    format!(
                        "{} ({})",
                        l.describe(),
                        crate::terminal::human_size(l.size.unwrap_or(0))
                    )
                })
                .collect();
            return Err(tagged(
                ErrorKind::NotFound,
                format!(
                    "{}: --pull=never, and the cache {} lacks {} of its {} layer blobs: {}",
                    self.reference,
                    self.cache
                        .as_ref()
                        .map(|c| c.root().display().to_string())
                        .unwrap_or_default(),
                    missing.len(),
                    distinct.len(),
                    names.join(", ")
                ),
            ));
        }
        *self.downloads.slots.lock().unwrap() = slots;
        *self.downloads.pending.lock().unwrap() = (missing.len(), record);
        if missing.is_empty() {
            finish(
                &self.downloads,
                self.cache.as_deref(),
                self.observer.as_ref(),
            );
            return Ok(());
        }
        let distinct: Vec<Layer> = missing.iter().map(|d| distinct[*d].clone()).collect();
        let queue = Arc::new(Mutex::new(
            missing
                .iter()
                .copied()
                .zip(distinct.iter().cloned())
                .collect::<std::collections::VecDeque<_>>(),
        ));
        for _ in 0..self.parallel.min(distinct.len().max(1)) {
            let queue = queue.clone();
            let client = self.client.clone();
            let downloads = self.downloads.clone();
            let observer = self.observer.clone();
            let cache = self.cache.clone();
            let cancel = self.cancel.clone();
            let worker = std::thread::spawn(move || loop {
                let Some((d, layer)) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let publish = |state: Slot| {
                    downloads.slots.lock().unwrap()[d] = state;
                    downloads.ready.notify_all();
                };
                // Once cancelled, the queue drains as failures, so that no reader waits for
                // a download that will never start.
                let result = cancel.check().and_then(|()| {
                    download(
                        &client,
                        cache.as_deref(),
                        &layer,
                        observer.as_ref(),
                        &publish,
                        &cancel,
                    )
                });
                let last = {
                    let mut pending = downloads.pending.lock().unwrap();
                    pending.0 -= 1;
                    if result.is_err() {
                        pending.1 = None;
                    }
                    pending.0 == 0
                };
                // Before the last layer's end is published: once every layer is read, the
                // process may exit, and the record must not be lost to that.
                if last {
                    finish(&downloads, cache.as_deref(), observer.as_ref());
                }
                publish(match result {
                    Ok((file, size)) => Slot::Done { file, size },
                    Err(e) => Slot::Failed(classify(&e), format!("{e:#}")),
                });
            });
            self.workers.lock().unwrap().push(worker);
        }
        Ok(())
    }
}

/// Every blob of the image is in the cache: record it there (a failure only costs the
/// next run a download).
fn finish(downloads: &Downloads, cache: Option<&Cache>, observer: &dyn Observer) {
    let record = downloads.pending.lock().unwrap().1.take();
    if let (Some(cache), Some(record)) = (cache, record) {
        if let Err(e) = cache.record(&record) {
            warn(
                observer,
                &format!("{}: not recorded in the cache: {e:#}", record.name),
            );
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
    cache: Option<&Cache>,
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
    let (spool, cache_name) = match cache {
        Some(cache) => {
            let spool = cache.spool()?;
            (spool.file, Some(spool.temp))
        }
        None => (
            tempfile::tempfile().context("creating a temporary file for a layer")?,
            None,
        ),
    };
    let spool = Arc::new(spool);
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
                    cancel.sleep(std::time::Duration::from_millis(200 * interruptions))?;
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
    // Only now does the download get the digest's name in the cache.
    if let (Some(cache), Some(name)) = (cache, cache_name) {
        if let Err(e) = cache.commit(name, digest) {
            warn(observer, &format!("{e:#}"));
        }
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

/// A skip moves the position only: the next read waits for the download to reach it, as
/// any read does.
impl BlobRead for GrowingReader {
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        self.pos = self.pos.saturating_add(n);
        Ok(())
    }
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
        if let Some(bytes) = self
            .reads_cache()
            .and_then(|c| c.read_json(&desc.digest, MAX_JSON_SIZE))
            .filter(|b| b.len() as u64 == desc.size)
        {
            return Ok(bytes);
        }
        if self.pull == PullPolicy::Never {
            return Err(tagged(
                ErrorKind::NotFound,
                format!(
                    "{}: --pull=never, and {} ({}) is not in the cache",
                    self.reference, desc.digest, desc.media_type
                ),
            ));
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
        self.keep_json(&desc.digest, &bytes);
        Ok(bytes)
    }
}

impl RegistrySource {
    /// Stores a verified manifest or config in the cache; failing to only costs speed.
    fn keep_json(&self, digest: &Digest, bytes: &[u8]) {
        if let Some(cache) = &self.cache {
            if let Err(e) = cache.put_json(digest, bytes) {
                warn(self.observer.as_ref(), &format!("{e:#}"));
            }
        }
    }

    /// The top document (index or manifest) the reference names, its media type when the
    /// registry said it, and its digest. By policy: `always` GETs it; `missing` takes it
    /// from the cache when a digest reference, or the digest one `HEAD` resolves the tag
    /// to, is there; `never` takes it from the cache or fails.
    fn top_document(&self) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let name = self.reference.to_string();
        let Some(cache) = self.reads_cache() else {
            return self.fetch_top(
                &self.reference.manifest_reference(),
                self.reference.digest.as_ref(),
            );
        };
        let known: Option<Digest> = match (&self.reference.digest, self.pull) {
            (Some(pinned), _) => Some(pinned.clone()),
            (None, PullPolicy::Never) => cache
                .resolved(&name)
                .into_iter()
                .find(|d| cache.read_json(d, MAX_JSON_SIZE).is_some()),
            (None, _) => self
                .client
                .manifest_digest(&self.reference.manifest_reference(), &self.accept())?
                .and_then(|d| Digest::parse(&d).ok()),
        };
        if let Some(bytes) = known
            .as_ref()
            .and_then(|d| cache.read_json(d, MAX_JSON_SIZE))
        {
            return Ok((bytes, None, known.expect("read by it")));
        }
        if self.pull == PullPolicy::Never {
            return Err(tagged(
                ErrorKind::NotFound,
                format!(
                    "{name}: --pull=never, and the cache {} does not hold {}",
                    cache.root().display(),
                    match &known {
                        Some(d) => format!("its manifest {d}"),
                        None => "it (pull it once without --pull=never)".to_string(),
                    }
                ),
            ));
        }
        match known {
            // The same bytes the tag named a moment ago, fetched by digest so that they
            // cannot change in between.
            Some(d) => self.fetch_top(&d.to_string(), Some(&d)),
            None => self.fetch_top(&self.reference.manifest_reference(), None),
        }
    }

    fn accept(&self) -> String {
        // Schema 1 is listed so that such an image is refused by name, not as "not found".
        format!(
            "{}, {};q=0.1",
            manifest::ACCEPTED_MANIFEST_TYPES.join(", "),
            manifest::DOCKER_SCHEMA1_SIGNED
        )
    }

    fn fetch_top(
        &self,
        reference: &str,
        pinned: Option<&Digest>,
    ) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let (bytes, media, header_digest) =
            self.client
                .manifest(reference, &self.accept(), MAX_JSON_SIZE)?;
        let digest = match pinned {
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
        self.keep_json(&digest, &bytes);
        Ok((bytes, media, digest))
    }
}

impl ImageSource for RegistrySource {
    fn resolve(&self, choice: &PlatformChoice) -> Result<Image> {
        let (bytes, media, digest) = self.top_document()?;
        let resolved = digest.clone();
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
        let record = image.manifest_digest.clone().map(|manifest| Record {
            name: self.reference.to_string(),
            resolved,
            manifest,
            os: image.config.os().to_string(),
            architecture: image.config.architecture().to_string(),
            variant: image.config.variant().clone(),
        });
        self.start_downloads(&image.layers, record)?;
        Ok(image)
    }

    /// Without the cache, spools are anonymous files of this process, filled by `download`,
    /// which checks the digest of every byte written; a reader sees the end of a layer only
    /// after that check. Cached blobs sit in a directory other programs (of the same user)
    /// can write to, so with the cache the layer stage hashes them again as it reads.
    /// Only an integrity failure counts: a download that ended because the run is being
    /// cancelled (by the very failure being explained) says nothing about the blob.
    fn blob_failure(&self, layer: &Layer) -> Option<anyhow::Error> {
        let download = self.downloads.download_of(layer)?;
        let mut slots = self.downloads.slots.lock().unwrap();
        loop {
            match slots.get(download)? {
                Slot::Failed(ErrorKind::Integrity, e) => {
                    return Some(tagged(ErrorKind::Integrity, e.clone()))
                }
                Slot::Growing { .. } | Slot::Pending => {
                    slots = self.downloads.ready.wait(slots).unwrap();
                }
                _ => return None,
            }
        }
    }

    fn blobs_verified(&self) -> bool {
        self.cache.is_none()
    }

    /// The spool frees what has been read: its pages (never written to disk, the file being
    /// anonymous and short-lived) go straight to the output written next.
    fn open_layer_last(&self, layer: &Layer) -> Result<BlobReader> {
        match self.take_spool(layer) {
            // A cached blob is kept, not consumed.
            Some((file, size, true)) if self.cache.is_none() => {
                Ok(Box::new(ConsumingReader::new(file, size)))
            }
            Some((file, size, _)) => Ok(Box::new(PositionedReader::new(file, 0, size))),
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
