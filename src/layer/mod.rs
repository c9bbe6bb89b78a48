//! The layer stage: the OCI layer rules, from verified layer streams to one flattened tree.
//!
//! The flattened entries leave through an [`EntrySink`] (the output stage's tar writer).
//!
//! Two passes over each layer (see docs/design.md for why):
//! 1. *index*: read every layer's headers (layers in parallel), verify both digests, and stack
//!    the changesets into a metadata-only [`tree::Tree`]. Nothing is written yet, so a broken
//!    or tampered layer fails the run before a single output byte exists.
//! 2. *emit*: write the directories, symlinks and devices of the final tree, then stream each
//!    layer again and copy the content of exactly the regular files that survived, resuming
//!    past what later layers deleted from inflate states the index pass kept ([`inflate`]).
//!
//! Memory is proportional to the number of paths (about 60 bytes each, see tree.rs), never to
//! the size of a file or layer (resume points: at most 64 of about 45 KiB per layer).

pub mod emit_order;
pub mod entry;
pub mod inflate;
pub mod stream;
pub mod tar_reader;
pub mod tree;

use crate::cancel::Cancel;
use crate::error::bail_kind;
use crate::error::ResultExt;
use crate::events::{Event, Phase, ProgressReader, SharedObserver};
use crate::image::{Image, Layer};
use crate::source::ImageSource;
use anyhow::{anyhow, Context, Result};
use entry::{display_name, read_entry};
use entry::{Change, EntryKind, EntryMeta};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use stream::LayerStream;
use tar_reader::TarReader;
use tree::{ScannedEntry, ScannedLayer, Tree};

/// What a run read and wrote, for the summary line.
#[derive(Clone, Debug, Default)]
pub struct FlattenStats {
    /// Layers in the image.
    pub layers: usize,
    /// Layer bytes read, as stored (compressed).
    pub compressed_bytes: u64,
    /// Layer bytes after decompression.
    pub uncompressed_bytes: u64,
    /// Tar entries in all layers together.
    pub entries_read: u64,
    /// Paths in the flattened tree that were written.
    pub paths_written: u64,
    /// Bytes of uncompressed layer tar the emit pass jumped over instead of inflating them
    /// again (stretches that later layers deleted, see [`inflate`]).
    pub skipped_bytes: u64,
}

/// Where the flattened entries go, in output order: parents before children, and a hardlink
/// after the file it names. The output stage's tar writer is one; the layer stage names no
/// output type, so that the stages depend on each other in one direction only.
pub trait EntrySink {
    /// A directory, symlink, device or FIFO: metadata only.
    fn append_contentless(&mut self, path: &[u8], meta: &EntryMeta) -> io::Result<()>;

    /// Another name for the regular file already written at `target`.
    fn append_hardlink(&mut self, path: &[u8], target: &[u8], meta: &EntryMeta) -> io::Result<()>;

    /// A regular file whose content is exactly `meta.size` bytes of `content`; a shorter
    /// stream must be an error (a truncated layer), never a short file.
    fn append_file(
        &mut self,
        path: &[u8],
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> io::Result<()>;

    /// Bytes written so far, for the emit pass's progress reports.
    fn bytes_written(&self) -> u64;
}

/// A later stage that reads a few small files of the flattened tree and adds or replaces
/// files of its own: how the image's config becomes WSL configuration without a second pass.
pub trait Augment {
    /// Normalised paths (`etc/passwd`) whose final content to capture in the index pass.
    fn wanted(&self) -> Vec<Vec<u8>>;

    /// Given the captured contents (paths that are not regular files in the final tree are
    /// absent), returns files to add; each replaces whatever the image has at its path.
    fn files(
        &mut self,
        captured: &HashMap<Vec<u8>, Arc<Vec<u8>>>,
    ) -> Result<Vec<(EntryMeta, Vec<u8>)>>;
}

/// A wanted path, or one that may become it through a symlinked ancestor (`etc` linked to
/// `private/etc`): which one the final tree shows is only known after every layer.
fn is_wanted(wanted: &HashSet<Vec<u8>>, path: &[u8]) -> bool {
    wanted.contains(path)
        || wanted.iter().any(|w| {
            path.len() > w.len() && path.ends_with(w) && path[path.len() - w.len() - 1] == b'/'
        })
}

/// A path below one of its layer's own symlinks whose file name is that of a wanted path:
/// it may resolve to the wanted path, so its content is kept (a few small files at most).
fn below_own_link(own_links: &HashSet<Vec<u8>>, wanted: &HashSet<Vec<u8>>, path: &[u8]) -> bool {
    if own_links.is_empty() {
        return false;
    }
    let base = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
    let base_wanted = wanted
        .iter()
        .any(|w| w.rsplit(|b| *b == b'/').next() == Some(base));
    base_wanted
        && path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .any(|(i, _)| own_links.contains(&path[..i]))
}

/// Files we capture for an [`Augment`] are configuration files; anything larger is not read.
const MAX_CAPTURE: u64 = 4 * 1024 * 1024;

struct LayerScan {
    entries: ScannedLayer,
    compressed: u64,
    uncompressed: u64,
    resume: stream::Resume,
}

fn layer_error(layer: &Layer, image: &Image) -> impl Fn(anyhow::Error) -> anyhow::Error {
    let what = format!("{}: {}", image.name, layer.describe());
    move |e| e.context(what.clone())
}

/// How to flatten: threads, the ceilings that a flag can raise, and who hears of progress.
#[derive(Clone)]
pub struct FlattenOptions {
    /// Threads reading layers at once in the index pass. (The emit pass reads
    /// [`emit_order::LANES`] layers at once, whatever this is: its output order follows
    /// from that number.)
    pub jobs: usize,
    /// See [`crate::limits::DEFAULT_MAX_EXPANSION`].
    pub max_expansion: u64,
    /// Hears index and emit progress, and warnings about layers.
    pub observer: SharedObserver,
    /// Stops both passes between entries (see [`crate::cancel`]).
    pub cancel: Cancel,
}

impl Default for FlattenOptions {
    fn default() -> Self {
        FlattenOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_expansion: crate::limits::DEFAULT_MAX_EXPANSION,
            observer: crate::events::silent(),
            cancel: Cancel::new(),
        }
    }
}

fn scan_layer(
    source: &dyn ImageSource,
    layer: &Layer,
    wanted: &HashSet<Vec<u8>>,
    max_expansion: u64,
    observer: &SharedObserver,
    cancel: &Cancel,
) -> Result<LayerScan> {
    let blob = ProgressReader::new(
        source.open_layer(layer)?,
        observer.clone(),
        Phase::Index,
        Some(layer.index),
        layer.size,
    );
    let mut stream = LayerStream::new(
        Box::new(blob),
        layer,
        max_expansion,
        source.blobs_verified(),
        observer.as_ref(),
    )?;
    let mut entries = ScannedLayer::default();
    let scanned = read_entries(&mut stream, wanted, cancel, &mut entries);
    if let Err(e) = scanned {
        // A blob that does not match its digest explains any error inside it, whether this
        // pass hashed it or the source did (a download still in flight when the reader met
        // the damage).
        return Err(match stream.blob_mismatch() {
            Some(mismatch) => anyhow::Error::new(mismatch),
            None => source.blob_failure(layer).unwrap_or(e),
        });
    }
    let mut resume = stream.take_resume();
    let (uncompressed, compressed) = stream.finish().context("reading the layer")?;
    // Points are at least SPAN of input apart: from 8 spans of blob on, a layer holds
    // points at most an eighth of its length apart, so its second part starts close to its
    // middle. A smaller blob (or a highly compressible one, whose points are far apart in
    // its tar) would have the second reader inflate much of what the first one does.
    resume.splittable &= compressed >= 8 * inflate::SPAN;
    Ok(LayerScan {
        entries,
        compressed,
        uncompressed,
        resume,
    })
}

fn read_entries(
    stream: &mut LayerStream,
    wanted: &HashSet<Vec<u8>>,
    cancel: &Cancel,
    entries: &mut ScannedLayer,
) -> Result<()> {
    {
        let mut ordinal: u64 = 0;
        // This layer's symlinks: a wanted file may be written through one of them
        // (`localetc/passwd` with `localetc -> /etc`), and the tree only resolves it later.
        let mut own_links: HashSet<Vec<u8>> = HashSet::new();
        // Where the next entry's first header block starts: after the entry before's
        // content and padding (extension records belong to the entry they precede).
        let mut next_start = 0u64;
        while let Some(raw) = stream.next_entry().context("reading the layer's tar")? {
            cancel.check()?;
            stream.mark_boundary(next_start, ordinal);
            if ordinal >= crate::limits::MAX_ENTRIES {
                bail_kind!(
                    HostileInput,
                    "the layer has more than {} tar entries, the limit this tool holds in memory",
                    crate::limits::MAX_ENTRIES
                );
            }
            let name = raw.name.clone();
            let end = stream.entry_end();
            next_start = end.div_ceil(512) * 512;
            let change =
                read_entry(raw).with_context(|| format!("entry {:?}", display_name(&name)))?;
            if let Change::Add(m) = &change {
                if m.kind == EntryKind::Symlink && !wanted.is_empty() {
                    own_links.insert(m.path.clone());
                }
            }
            let content = match &change {
                Change::Add(m)
                    if m.kind == EntryKind::Regular
                        && m.size <= MAX_CAPTURE
                        && (is_wanted(wanted, &m.path)
                            || below_own_link(&own_links, wanted, &m.path)) =>
                {
                    let mut data = Vec::with_capacity(m.size as usize);
                    stream.tar().content().read_to_end(&mut data)?;
                    Some(Arc::new(data))
                }
                _ => None,
            };
            entries.push(ScannedEntry {
                ordinal,
                end,
                change,
                content,
            });
            ordinal += 1;
        }
    }
    Ok(())
}

/// Pass 1: scans layers on `jobs` threads and applies them in order as they arrive.
fn build_tree(
    source: &dyn ImageSource,
    image: &Image,
    wanted: &HashSet<Vec<u8>>,
    options: &FlattenOptions,
    stats: &mut FlattenStats,
    resume: &mut Vec<stream::Resume>,
) -> Result<Tree> {
    let jobs = options.jobs;
    let max_expansion = options.max_expansion;
    let layers = &image.layers;
    let next = AtomicUsize::new(0);
    // A child: a failed layer stops the other readers without cancelling the caller's run.
    let cancel = options.cancel.child();
    let mut tree = Tree::new();
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::channel::<(usize, Result<LayerScan>)>();
        for _ in 0..jobs.clamp(1, layers.len().max(1)) {
            let tx = tx.clone();
            let (next, cancel) = (&next, &cancel);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= layers.len() || cancel.is_cancelled() {
                    break;
                }
                let result = scan_layer(
                    source,
                    &layers[i],
                    wanted,
                    max_expansion,
                    &options.observer,
                    cancel,
                );
                if tx.send((i, result)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: std::collections::BTreeMap<usize, Result<LayerScan>> =
            std::collections::BTreeMap::new();
        let mut applied = 0;
        let outcome = (|| -> Result<()> {
            while applied < layers.len() {
                options.cancel.check()?;
                if let Some(result) = pending.remove(&applied) {
                    let scan: LayerScan = result.map_err(layer_error(&layers[applied], image))?;
                    stats.compressed_bytes += scan.compressed;
                    stats.uncompressed_bytes += scan.uncompressed;
                    stats.entries_read += scan.entries.entries();
                    resume.push(scan.resume);
                    if stats.entries_read > crate::limits::MAX_ENTRIES {
                        bail_kind!(HostileInput,
                            "the image has more than {} tar entries, the limit this tool holds in memory",
                            crate::limits::MAX_ENTRIES
                        );
                    }
                    // What the tree refuses (hardlinks to nothing, symlink loops, paths
                    // above the root) is the layer breaking a rule.
                    tree.apply_layer(applied, scan.entries)
                        .kind(crate::error::ErrorKind::HostileInput)
                        .map_err(layer_error(&layers[applied], image))?;
                    options.observer.event(&Event::LayerDone {
                        phase: Phase::Index,
                        layer: applied,
                        bytes: scan.compressed,
                    });
                    applied += 1;
                    continue;
                }
                let (i, result) = rx
                    .recv()
                    // Readers stop without a result only when the run was cancelled.
                    .map_err(|_| match options.cancel.check() {
                        Err(cancelled) => cancelled,
                        Ok(()) => anyhow!("a layer reader stopped without a result"),
                    })?;
                pending.insert(i, result);
            }
            Ok(())
        })();
        if outcome.is_err() {
            cancel.cancel();
        }
        outcome
    })?;
    stats.layers = layers.len();
    Ok(tree)
}

/// Flattens `image` into `out`. Nothing is written unless every layer verified.
pub fn flatten<S: EntrySink + ?Sized>(
    source: &dyn ImageSource,
    image: &Image,
    out: &mut S,
    options: &FlattenOptions,
    augment: Option<&mut dyn Augment>,
) -> Result<FlattenStats> {
    flatten_with(
        source,
        image,
        out,
        options,
        augment,
        stream::ReadAheadSize::default(),
    )
}

/// [`flatten`] with the emit pass's read-ahead given: tests show that it changes nothing
/// in the output.
fn flatten_with<S: EntrySink + ?Sized>(
    source: &dyn ImageSource,
    image: &Image,
    out: &mut S,
    options: &FlattenOptions,
    augment: Option<&mut dyn Augment>,
    read_ahead: stream::ReadAheadSize,
) -> Result<FlattenStats> {
    let mut stats = FlattenStats::default();
    let count = image.layers.len();
    let wanted: HashSet<Vec<u8>> = augment
        .as_ref()
        .map(|a| a.wanted())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut resume = Vec::with_capacity(count);
    let mut tree = build_tree(source, image, &wanted, options, &mut stats, &mut resume)?;
    if let Some(augment) = augment {
        let captured: HashMap<Vec<u8>, Arc<Vec<u8>>> = wanted
            .iter()
            .filter_map(|p| tree.captured(p).map(|c| (p.clone(), c)))
            .collect();
        for (meta, content) in augment.files(&captured)? {
            tree.add_extra(count, meta, content)?;
        }
    }
    let plan = tree.plan(count);
    let mut progress = EmitProgress::new(&plan, options.observer.clone());
    for (index, layer) in image.layers.iter().enumerate() {
        if !plan.has_regular(index) {
            source.release_layer(layer);
            resume[index] = Default::default();
        }
    }
    for (path, meta, link) in plan.contentless() {
        match link {
            Some(target) => out.append_hardlink(&path, &target, &meta)?,
            None => out.append_contentless(&path, &meta)?,
        }
        options.cancel.check()?;
        stats.paths_written += 1;
        progress.at(out.bytes_written());
    }

    // The layers still holding files, read `emit_order::LANES` at a time, each on its own
    // thread a few MiB ahead of the writer; their files interleaved by the emit order. A
    // large layer is read in two parts at once, from its start and from its middle.
    let mut parts: Vec<Part> = Vec::new();
    for layer in (0..count).filter(|i| plan.has_regular(*i)) {
        let resume = std::mem::take(&mut resume[layer]);
        let spans = emit_order::spans(plan.regular_extents(layer), resume.splittable);
        let split = spans.len() > 1;
        let points: Arc<[inflate::ResumePoint]> = resume.points.into();
        for span in spans {
            let (from, to) = span.ordinals;
            let files = plan
                .regular_extents(layer)
                .filter(move |f| (from..=to).contains(&f.0));
            parts.push(Part {
                layer,
                span,
                read: stream::ReadPlan::new(files, points.clone()),
                split,
            });
        }
    }
    let starts = emit_order::starts(&parts.iter().map(|p| p.span.cost).collect::<Vec<_>>());
    let files = emit_order::Merge::new(
        parts
            .iter()
            .zip(&starts)
            .map(|(part, &start)| (start, part.files(&plan)))
            .collect(),
        |(_, reached)| *reached,
    );
    let mut by_start: Vec<usize> = (0..parts.len()).collect();
    by_start.sort_by_key(|&k| (starts[k], k));
    let mut parts_left: HashMap<usize, usize> = HashMap::new();
    for part in &parts {
        *parts_left.entry(part.layer).or_default() += 1;
    }
    let skipped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::scope(|scope| -> Result<()> {
        let open = |k: usize| {
            let part = &parts[k];
            let layer = &image.layers[part.layer];
            let read_plan = part.read.clone();
            let segments = read_plan.segments.clone();
            let skipped = skipped.clone();
            let split = part.split;
            let reader = stream::ReadAhead::spawn(scope, read_ahead, move || {
                // The two parts of a split layer read the same blob at once, so neither
                // may free what it has read (see `ImageSource::open_layer_last`).
                let blob = if split {
                    source.open_layer(layer)?
                } else {
                    source.open_layer_last(layer)?
                };
                stream::Reread::new(blob, layer, read_plan, skipped)
            });
            LayerCursor::new(reader, segments)
        };
        let mut readers = Readers::new(by_start, open);
        readers.open_ahead();
        for (k, (file, _), last) in files {
            options.cancel.check()?;
            let layer = &image.layers[parts[k].layer];
            readers
                .get(k)
                .copy(&file, out, &mut stats, &mut progress)
                .map_err(layer_error(layer, image))?;
            if last {
                readers.close(k);
                let left = parts_left
                    .get_mut(&parts[k].layer)
                    .expect("a counted layer");
                *left -= 1;
                if *left == 0 && parts[k].split {
                    source.release_layer(layer);
                }
                readers.open_ahead();
            }
        }
        Ok(())
    })?;
    stats.skipped_bytes = skipped.load(Ordering::Relaxed);
    for file in plan.regular(count) {
        let content = file.content.as_ref().expect("added files carry content");
        let meta = file.meta.as_ref().expect("added files carry metadata");
        out.append_file(&file.paths[0], meta, &mut content.as_slice())?;
        stats.paths_written += 1;
    }
    progress.finish(out.bytes_written());
    Ok(stats)
}

/// A layer, or one of the two halves of a large one, as the emit pass reads it: by one
/// reader, front to back.
struct Part {
    layer: usize,
    /// Its files, where it starts and what it costs.
    span: emit_order::Span,
    read: stream::ReadPlan,
    /// Whether the layer is read in two parts.
    split: bool,
}

impl Part {
    /// The part's files in tar order, each with how far into the part reading it comes.
    fn files<'a>(
        &self,
        plan: &'a tree::Plan,
    ) -> Box<dyn Iterator<Item = (tree::RegularFile, u64)> + 'a> {
        let (from, to) = self.span.ordinals;
        let before = self.span.before;
        let reached = emit_order::reach(plan.regular_extents(self.layer))
            .filter(move |(ordinal, _)| (from..=to).contains(ordinal))
            .map(move |(_, reached)| reached - before);
        Box::new(plan.regular_in(self.layer, from..=to).zip(reached))
    }
}

/// The emit pass's open layer readers: opened in the order the layers start in the emit
/// order, one more than [`emit_order::LANES`] at most ahead of need, and closed after each
/// layer's last file, so memory stays a few read-ahead buffers whatever the layer count.
struct Readers<F: FnMut(usize) -> LayerCursor> {
    /// Positions in the list of needed layers, by their start in the emit order.
    by_start: Vec<usize>,
    opened: usize,
    cursors: Vec<Option<LayerCursor>>,
    open: F,
}

impl<F: FnMut(usize) -> LayerCursor> Readers<F> {
    fn new(by_start: Vec<usize>, open: F) -> Readers<F> {
        Readers {
            cursors: (0..by_start.len()).map(|_| None).collect(),
            by_start,
            opened: 0,
            open,
        }
    }

    fn open_next(&mut self) {
        let k = self.by_start[self.opened];
        self.opened += 1;
        self.cursors[k] = Some((self.open)(k));
    }

    /// Starts readers for the next layers to come while fewer than LANES + 1 are open.
    fn open_ahead(&mut self) {
        while self.opened < self.by_start.len()
            && self.cursors.iter().flatten().count() <= emit_order::LANES
        {
            self.open_next();
        }
    }

    /// The reader of layer `k`; a layer starts no later than every layer that is not open
    /// yet, so opening in start order reaches it.
    fn get(&mut self, k: usize) -> &mut LayerCursor {
        while self.cursors[k].is_none() && self.opened < self.by_start.len() {
            self.open_next();
        }
        self.cursors[k]
            .as_mut()
            .expect("a layer's reader opens before its files")
    }

    /// Done with layer `k`: its reader stops, its buffers are freed.
    fn close(&mut self, k: usize) {
        self.cursors[k] = None;
    }
}

/// Emit-pass progress: bytes of tar written, against the size the plan predicts.
struct EmitProgress {
    observer: SharedObserver,
    total: u64,
    reported: u64,
}

impl EmitProgress {
    fn new(plan: &tree::Plan, observer: SharedObserver) -> EmitProgress {
        let (total, paths) = plan.estimate();
        observer.event(&Event::EmitStarted {
            tar_bytes: total,
            paths,
        });
        EmitProgress {
            observer,
            total,
            reported: 0,
        }
    }

    fn at(&mut self, written: u64) {
        if written - self.reported >= crate::events::PROGRESS_STEP {
            self.report(written);
        }
    }

    fn report(&mut self, written: u64) {
        self.reported = written;
        self.observer.event(&Event::Progress {
            phase: Phase::Emit,
            layer: None,
            done: written,
            total: Some(self.total.max(written)),
        });
    }

    fn finish(&mut self, written: u64) {
        if written != self.reported {
            self.report(written);
        }
    }

    /// `content` as it is copied into the tar at `offset`: the count moves inside a large
    /// file too, not only between files (a 1 GiB file would show 0 B until it was done).
    fn within<R: Read>(&mut self, offset: u64, content: R) -> ProgressWithin<'_, R> {
        ProgressWithin {
            content,
            progress: self,
            at: offset,
        }
    }
}

struct ProgressWithin<'a, R> {
    content: R,
    progress: &'a mut EmitProgress,
    at: u64,
}

impl<R: Read> Read for ProgressWithin<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.content.read(buf)?;
        self.at += n as u64;
        self.progress.at(self.at);
        Ok(n)
    }
}

/// Pass 2 for one layer: where its second reading stands. Copies the content of the
/// surviving regular files, with the metadata of their headers (the tree does not keep it),
/// in tar order. The layer's digests were verified in pass 1; each entry used here is checked
/// to be the one pass 1 saw (same ordinal, name and size).
struct LayerCursor {
    /// The current segment's bytes (see [`stream::Reread`]); `None` only while moving on.
    tar: Option<TarReader<stream::ReadAhead>>,
    /// The ordinal of the next entry `tar` returns.
    ordinal: u64,
    segments: Arc<[stream::Segment]>,
    current: usize,
}

impl LayerCursor {
    fn new(uncompressed: stream::ReadAhead, segments: Arc<[stream::Segment]>) -> LayerCursor {
        LayerCursor {
            tar: Some(TarReader::new(uncompressed)),
            ordinal: segments[0].start_ordinal,
            segments,
            current: 0,
        }
    }

    /// Moves on to the segment that holds the entry `ordinal`: the rest of the current
    /// segment (the padding after its last file) is dropped, and the next one starts with
    /// a fresh tar reader at the entry it begins with.
    fn reach_segment_of(&mut self, ordinal: u64) -> Result<()> {
        while self
            .segments
            .get(self.current + 1)
            .is_some_and(|next| next.start_ordinal <= ordinal)
        {
            let mut rest = self.tar.take().expect("a tar reader").into_inner();
            io::copy(&mut rest, &mut io::sink()).context("reading the layer")?;
            self.current += 1;
            self.ordinal = self.segments[self.current].start_ordinal;
            self.tar = Some(TarReader::new(rest));
        }
        Ok(())
    }

    /// Reads on to `file`, an entry after the last one copied, and writes it with its other
    /// paths. This is where the emit pass copies content and counts the bytes written.
    fn copy<S: EntrySink + ?Sized>(
        &mut self,
        file: &tree::RegularFile,
        out: &mut S,
        stats: &mut FlattenStats,
        progress: &mut EmitProgress,
    ) -> Result<()> {
        self.reach_segment_of(file.ordinal)?;
        let tar = self.tar.as_mut().expect("a tar reader");
        let raw = loop {
            let Some(raw) = tar.next_entry().context("reading the layer's tar")? else {
                bail_kind!(
                    Integrity,
                    "the layer changed while it was being read (entry {:?} is gone)",
                    display_name(&file.entry_name)
                );
            };
            self.ordinal += 1;
            if self.ordinal - 1 == file.ordinal {
                break raw;
            }
        };
        let this = file.ordinal;
        let name = entry::normalize_name(&raw.name)?;
        let changed = || {
            crate::error::kind_err!(
                Integrity,
                "the layer changed while it was being read (entry {this} is now {:?})",
                display_name(&name)
            )
        };
        if name != file.entry_name || raw.size != file.size {
            return Err(changed());
        }
        let meta = match read_entry(raw)? {
            Change::Add(meta) if meta.kind == EntryKind::Regular => meta,
            _ => return Err(changed()),
        };
        let first = &file.paths[0];
        let before = out.bytes_written();
        out.append_file(first, &meta, &mut progress.within(before, tar.content()))
            .with_context(|| format!("copying {:?}", display_name(first)))?;
        for other in &file.paths[1..] {
            out.append_hardlink(other, first, &meta)?;
        }
        stats.paths_written += file.paths.len() as u64;
        progress.at(out.bytes_written());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::memory::MemorySource;

    /// Records what reaches it, to show that flattening needs no tar writer.
    #[derive(Default)]
    struct Recorder(Vec<(Vec<u8>, EntryKind, Vec<u8>)>);

    impl EntrySink for Recorder {
        fn append_contentless(&mut self, path: &[u8], meta: &EntryMeta) -> io::Result<()> {
            self.0.push((path.to_vec(), meta.kind, meta.link.clone()));
            Ok(())
        }
        fn append_hardlink(&mut self, path: &[u8], target: &[u8], _: &EntryMeta) -> io::Result<()> {
            self.0
                .push((path.to_vec(), EntryKind::Hardlink, target.to_vec()));
            Ok(())
        }
        fn append_file(
            &mut self,
            path: &[u8],
            meta: &EntryMeta,
            content: &mut dyn Read,
        ) -> io::Result<()> {
            let mut data = Vec::new();
            content.read_to_end(&mut data)?;
            assert_eq!(data.len() as u64, meta.size);
            self.0.push((path.to_vec(), meta.kind, data));
            Ok(())
        }
        fn bytes_written(&self) -> u64 {
            self.0.len() as u64
        }
    }

    fn layer(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        for (name, typeflag, data, link) in entries {
            let mut h = ::tar::Header::new_ustar();
            h.set_entry_type(::tar::EntryType::new(*typeflag));
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_path(name).unwrap();
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn flatten_writes_through_any_entry_sink() {
        let lower = layer(&[("etc/", b'5', b"", ""), ("etc/a", b'0', b"lower", "")]);
        let upper = layer(&[
            ("etc/a", b'0', b"upper", ""),
            ("etc/b", b'1', b"", "etc/a"),
            ("etc/.wh.gone", b'0', b"", ""),
        ]);
        let source = MemorySource::from_tars(vec![lower, upper]);
        let image = source.resolve(&Default::default()).unwrap();
        let mut sink = Recorder::default();
        let stats = flatten(&source, &image, &mut sink, &Default::default(), None).unwrap();
        let got: Vec<_> = sink
            .0
            .iter()
            .map(|(p, k, d)| (String::from_utf8_lossy(p), *k, String::from_utf8_lossy(d)))
            .collect();
        assert_eq!(
            got,
            [
                ("".into(), EntryKind::Directory, "".into()),
                ("etc".into(), EntryKind::Directory, "".into()),
                ("etc/a".into(), EntryKind::Regular, "upper".into()),
                ("etc/b".into(), EntryKind::Hardlink, "etc/a".into()),
            ]
        );
        assert_eq!(stats.paths_written, 4);
    }

    fn names(sink: &Recorder) -> Vec<String> {
        sink.0
            .iter()
            .map(|(p, k, _)| format!("{}:{k:?}", String::from_utf8_lossy(p)))
            .collect()
    }

    #[test]
    fn files_of_two_layers_interleave_by_how_far_each_is_read() {
        let hundred = [b'x'; 100];
        let lower = layer(&[
            ("a", b'0', &hundred, ""),
            ("b", b'0', &hundred, ""),
            ("c", b'0', &hundred, ""),
        ]);
        let upper = layer(&[("x", b'0', &hundred, ""), ("y", b'0', &hundred, "")]);
        let source = MemorySource::from_tars(vec![lower, upper]);
        let image = source.resolve(&Default::default()).unwrap();
        let mut sink = Recorder::default();
        flatten(&source, &image, &mut sink, &Default::default(), None).unwrap();
        // Each file ends one more 1 KiB block (header and content) into its layer; both
        // layers start together, a tie goes to the lower layer.
        assert_eq!(
            names(&sink),
            [
                ":Directory",
                "a:Regular",
                "x:Regular",
                "b:Regular",
                "y:Regular",
                "c:Regular"
            ]
        );
    }

    /// Layers of files of assorted sizes, with a hardlink to a lower layer's file, a
    /// whiteout, a replaced file and an opaque directory.
    fn assorted_layers() -> Vec<Vec<u8>> {
        let data = |seed: usize, len: usize| -> Vec<u8> {
            (0..len)
                .map(|i| (i * 31 + seed * 7 + i / 977) as u8)
                .collect()
        };
        let mut tars = Vec::new();
        for l in 0..5usize {
            let mut owned: Vec<(String, u8, Vec<u8>, String)> = Vec::new();
            owned.push((format!("d{l}/"), b'5', Vec::new(), String::new()));
            for f in 0..40usize {
                let len = (f * 7919 + l * 104_729) % 40_000;
                owned.push((
                    format!("d{l}/f{f}"),
                    b'0',
                    data(l * 100 + f, len),
                    String::new(),
                ));
                owned.push((
                    format!("shared/s{f}"),
                    b'0',
                    data(l + f, len / 3),
                    String::new(),
                ));
            }
            if l > 0 {
                owned.push((
                    format!("d{l}/link"),
                    b'1',
                    Vec::new(),
                    format!("d{}/f3", l - 1),
                ));
                owned.push((
                    format!("d{}/.wh.f5", l - 1),
                    b'0',
                    Vec::new(),
                    String::new(),
                ));
            }
            if l == 3 {
                owned.push(("d1/.wh..wh..opq".into(), b'0', Vec::new(), String::new()));
            }
            let entries: Vec<(&str, u8, &[u8], &str)> = owned
                .iter()
                .map(|(n, t, d, k)| (n.as_str(), *t, d.as_slice(), k.as_str()))
                .collect();
            tars.push(layer(&entries));
        }
        tars
    }

    /// What `flatten` writes with `jobs` threads and this read-ahead.
    fn flatten_entries(
        source: &MemorySource,
        image: &Image,
        jobs: usize,
        read_ahead: stream::ReadAheadSize,
    ) -> Vec<(Vec<u8>, EntryKind, Vec<u8>)> {
        let options = FlattenOptions {
            jobs,
            ..Default::default()
        };
        let mut sink = Recorder::default();
        flatten_with(source, image, &mut sink, &options, None, read_ahead).unwrap();
        sink.0
    }

    #[test]
    fn output_does_not_depend_on_threads_or_read_ahead_buffers() {
        let source = MemorySource::from_tars(assorted_layers());
        let image = source.resolve(&Default::default()).unwrap();
        let run = |jobs, read_ahead| flatten_entries(&source, &image, jobs, read_ahead);
        let reference = run(2, stream::ReadAheadSize::default());
        // The two lanes really interleave here: layer 1 has no file left (its directory is
        // made opaque, its shared files replaced), so layers 0 and 2 are read together.
        let position = |path: &str| reference.iter().position(|e| e.0 == path.as_bytes());
        assert!(position("d2/f0").unwrap() < position("d0/f39").unwrap());
        assert!(position("d1/f0").is_none());
        for (jobs, depth, chunk) in [(1, 1, 97), (1, 1, 4096), (8, 2, 513), (3, 64, 1 << 16)] {
            let got = run(jobs, stream::ReadAheadSize { depth, chunk });
            assert!(
                got == reference,
                "-j {jobs}, read-ahead {depth} x {chunk} bytes: the output differs"
            );
        }
    }

    /// Bytes no compressor can shrink, so that a stretch of them is as long compressed as
    /// not and resume points fall inside it (they need [`inflate::SPAN`] of both).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn gzip_members(tar: &[u8], cuts: &[usize]) -> Vec<u8> {
        use std::io::Write;
        let mut blob = Vec::new();
        let mut from = 0;
        for to in cuts.iter().copied().chain([tar.len()]) {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
            e.write_all(&tar[from..to]).unwrap();
            blob.extend(e.finish().unwrap());
            from = to;
        }
        blob
    }

    /// A lower layer whose middle (16 MiB under `dead/`) the upper layer deletes, and whose
    /// files around it survive: `dead/` before and after, so that the emit pass jumps twice.
    fn layers_with_a_deleted_middle() -> Vec<Vec<u8>> {
        let mile = noise(1, 1 << 20);
        let mut lower: Vec<(String, u8, Vec<u8>, String)> = vec![
            ("keep/".into(), b'5', Vec::new(), String::new()),
            ("keep/a".into(), b'0', noise(2, 100_000), String::new()),
            ("dead/".into(), b'5', Vec::new(), String::new()),
        ];
        for f in 0..8 {
            lower.push((
                format!("dead/f{f}"),
                b'0',
                noise(10 + f, 1 << 20),
                String::new(),
            ));
        }
        lower.push(("keep/b".into(), b'0', b"between".to_vec(), String::new()));
        lower.push(("more/".into(), b'5', Vec::new(), String::new()));
        for f in 0..8 {
            lower.push((format!("more/f{f}"), b'0', mile.clone(), String::new()));
        }
        lower.push(("keep/c".into(), b'0', noise(3, 3000), String::new()));
        let lower: Vec<(&str, u8, &[u8], &str)> = lower
            .iter()
            .map(|(n, t, d, l)| (n.as_str(), *t, d.as_slice(), l.as_str()))
            .collect();
        let upper = layer(&[
            (".wh.dead", b'0', b"", ""),
            ("more/.wh..wh..opq", b'0', b"", ""),
            ("keep/b", b'0', b"replaced", ""),
        ]);
        vec![layer(&lower), upper]
    }

    #[test]
    fn the_emit_pass_jumps_over_deleted_stretches_and_writes_the_same() {
        let tars = layers_with_a_deleted_middle();
        let plain = MemorySource::from_tars(tars.clone());
        let reference = {
            let image = plain.resolve(&Default::default()).unwrap();
            let mut sink = Recorder::default();
            let stats = flatten(&plain, &image, &mut sink, &Default::default(), None).unwrap();
            assert_eq!(
                stats.skipped_bytes, 0,
                "uncompressed layers have no resume points"
            );
            sink.0
        };
        // The upper layer's keep/b comes first: its layer's files end sooner.
        assert_eq!(
            names(&Recorder(reference.clone())),
            [
                ":Directory",
                "keep:Directory",
                "more:Directory",
                "keep/b:Regular",
                "keep/a:Regular",
                "keep/c:Regular"
            ]
        );
        // One gzip member; two, the second starting inside the deleted stretch; three.
        let size = tars[0].len();
        for cuts in [vec![], vec![size / 3], vec![size / 4, size / 2 + 1]] {
            let blobs = vec![gzip_members(&tars[0], &cuts), gzip_members(&tars[1], &[])];
            let source = MemorySource::new(blobs.into_iter().zip(tars.clone()).collect());
            let image = source.resolve(&Default::default()).unwrap();
            for (depth, chunk) in [(8, 1 << 20), (1, 97), (2, 4096)] {
                let mut sink = Recorder::default();
                let read_ahead = stream::ReadAheadSize { depth, chunk };
                let options = FlattenOptions::default();
                let stats =
                    flatten_with(&source, &image, &mut sink, &options, None, read_ahead).unwrap();
                assert!(
                    sink.0 == reference,
                    "members cut at {cuts:?}: the output differs"
                );
                // Both deleted stretches (8 MiB each) are mostly jumped over.
                assert!(
                    stats.skipped_bytes > 8 << 20,
                    "members cut at {cuts:?}: only {} bytes skipped",
                    stats.skipped_bytes
                );
            }
        }
    }

    #[test]
    fn a_large_gzip_layer_is_read_in_two_parts_at_once_in_a_fixed_order() {
        // 72 files of 1 MiB of noise: over SPLIT_MIN to read and over 4 spans compressed.
        let files: Vec<(String, Vec<u8>)> = (0..72u64)
            .map(|i| (format!("f{i:02}"), noise(100 + i, 1 << 20)))
            .collect();
        let entries: Vec<(&str, u8, &[u8], &str)> = files
            .iter()
            .map(|(n, d)| (n.as_str(), b'0', d.as_slice(), ""))
            .collect();
        let tar = layer(&entries);
        let blob = gzip_members(&tar, &[]);
        let source = MemorySource::new(vec![(blob, tar)]);
        let image = source.resolve(&Default::default()).unwrap();
        let run = |jobs, read_ahead| flatten_entries(&source, &image, jobs, read_ahead);
        let reference = run(2, stream::ReadAheadSize::default());
        let order: Vec<String> = reference
            .iter()
            .skip(1)
            .map(|(p, _, _)| String::from_utf8_lossy(p).into_owned())
            .collect();
        // The second half (from f36) starts with the first: its files alternate with the
        // first half's (ties to the first half, the lower part).
        assert_eq!(&order[..4], ["f00", "f36", "f01", "f37"], "{order:?}");
        let mut sorted = reference.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<_> = std::iter::once((Vec::new(), EntryKind::Directory, Vec::new()))
            .chain(
                files
                    .iter()
                    .map(|(n, d)| (n.as_bytes().to_vec(), EntryKind::Regular, d.clone())),
            )
            .collect();
        assert!(sorted == expected, "the content differs");
        for (jobs, depth, chunk) in [(1, 1, 97), (8, 2, 4096)] {
            assert!(
                run(jobs, stream::ReadAheadSize { depth, chunk }) == reference,
                "-j {jobs}, read-ahead {depth} x {chunk}: the output differs"
            );
        }
    }
}
