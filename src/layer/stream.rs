//! A layer blob as a verified stream of tar entries.
//!
//! The chain is: raw blob → blob digest/size check → decompressor (chosen by magic bytes) →
//! diff_id check → tar parser. Both checks fire inside `read` at end of stream, and
//! [`LayerStream::finish`] drains whatever the tar parser left (padding, trailing blocks, the
//! end of the compressed stream), so a layer is only "done" once every byte was verified.
//!
//! Both digests are computed on helper threads ([`HashedAside`]): a layer's own thread then
//! only reads, inflates and parses, so the largest layer, which bounds the index pass, is no
//! longer also bound by hashing each of its bytes twice.

use super::inflate::{GzipDecoder, ResumePoint, ResumePoints};
use super::tar_reader::TarReader;
use crate::error::bail_kind;
use crate::image::digest::{Digest, Expected, Hasher, VerifyingReader};
use crate::image::manifest::Compression;
use crate::image::Layer;
use crate::source::store::BlobReader;
use anyhow::Result;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

// The gzip decoder's state is large, but there is one Decoded per layer stream: boxing it
// would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Decoded<R: BufRead> {
    Plain(R),
    Gzip(GzipDecoder<R>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(r) => r.read(buf),
            Decoded::Gzip(r) => r.read(buf),
            Decoded::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> Decoded<R> {
    fn into_inner(self) -> R {
        match self {
            Decoded::Plain(r) => r,
            Decoded::Gzip(r) => r.into_inner(),
            Decoded::Zstd(r) => r.finish(),
        }
    }
}

type Raw = BufReader<HashedAside<VerifyingReader<BlobReader>>>;
pub type Uncompressed = HashedAside<VerifyingReader<Decoded<Raw>>>;

/// Checks the digest of the bytes read through it, hashing them on a helper thread. Length
/// limits stay with the [`VerifyingReader`] inside, which checks them inline: a stream that
/// runs too long is still cut off at once, and a truncated one is reported as truncated
/// (the inner reader fails at end of stream before the digest is looked at).
pub struct HashedAside<R> {
    inner: R,
    helper: Option<Helper>,
    /// Bytes not yet handed to the helper: reads can be a few bytes (tar headers), and one
    /// message per read would cost more than the copy into a batch.
    batch: Vec<u8>,
    done: bool,
}

struct Helper {
    batches: mpsc::SyncSender<Vec<u8>>,
    /// Batches the helper has hashed, to be filled again.
    spent: mpsc::Receiver<Vec<u8>>,
    digest: JoinHandle<Digest>,
    expected: Digest,
    what: String,
}

const HASH_BATCH: usize = 256 * 1024;

impl<R: Read> HashedAside<R> {
    /// `expected: None` hashes nothing (the digest is unknown or was checked elsewhere).
    pub fn new(inner: R, expected: Option<Digest>, what: &str) -> io::Result<HashedAside<R>> {
        let helper = match expected {
            None => None,
            Some(expected) => {
                // A few batches in flight: enough that neither side waits for the other,
                // and at most a MiB or so per stream.
                let (batches, incoming) = mpsc::sync_channel::<Vec<u8>>(4);
                let (give_back, spent) = mpsc::channel::<Vec<u8>>();
                let mut hasher = Hasher::new(expected.algorithm());
                let digest = std::thread::Builder::new()
                    .name("oci2wsl-hash".into())
                    .spawn(move || {
                        for batch in incoming {
                            hasher.update(&batch);
                            let _ = give_back.send(batch);
                        }
                        hasher.finish()
                    })
                    .map_err(|e| {
                        io::Error::other(format!("cannot start a thread to hash the {what}: {e}"))
                    })?;
                Some(Helper {
                    batches,
                    spent,
                    digest,
                    expected,
                    what: what.to_string(),
                })
            }
        };
        Ok(HashedAside {
            inner,
            helper,
            batch: Vec::new(),
            done: false,
        })
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn send_batch(&mut self) -> io::Result<()> {
        let Some(helper) = &self.helper else {
            return Ok(());
        };
        let fresh = helper.spent.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, fresh);
        self.batch.clear();
        helper.batches.send(full).map_err(|_| {
            io::Error::other(format!("the thread hashing the {} stopped", helper.what))
        })
    }

    fn check_at_end(&mut self) -> io::Result<()> {
        self.done = true;
        if self.helper.is_none() {
            return Ok(());
        }
        if !self.batch.is_empty() {
            self.send_batch()?;
        }
        let Helper {
            batches,
            digest,
            expected,
            what,
            ..
        } = self.helper.take().expect("checked above");
        drop(batches);
        let actual = digest
            .join()
            .map_err(|_| io::Error::other(format!("the thread hashing the {what} failed")))?;
        if actual != expected {
            return Err(crate::error::tagged_io(
                io::ErrorKind::InvalidData,
                crate::error::ErrorKind::Integrity,
                format!("{what} has digest {actual}, expected {expected} (corrupted or tampered)"),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for HashedAside<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.check_at_end()?;
            return Ok(0);
        }
        if self.helper.is_some() {
            self.batch.extend_from_slice(&buf[..n]);
            if self.batch.len() >= HASH_BATCH {
                self.send_batch()?;
            }
        }
        Ok(n)
    }
}

/// Compression as the first bytes show it.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

pub struct LayerStream {
    tar: TarReader<Uncompressed>,
    /// The expansion ceiling, also applied to the zeros that sparse files' holes add.
    max: Option<(u64, String)>,
    /// Where the emit pass may start reading this layer again (gzip layers only).
    points: ResumePoints,
    gzip: bool,
}

/// What the index pass leaves the emit pass for reading a layer again.
#[derive(Default)]
pub struct Resume {
    /// The emit pass may read the layer in two parts at once: a gzip blob long enough for
    /// resume points throughout (decided by its kind and size only, so that the output
    /// order, which follows from the parts, does not depend on where points fell).
    pub splittable: bool,
    pub points: Vec<ResumePoint>,
}

/// One stretch of a layer that the emit pass reads: from a resume point (or the blob's
/// start) to the end of the last file it needs before the next jump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The resume point to start from (an index into the layer's points); `None` for the
    /// blob's start, or to read on from where the segment before stopped.
    pub point: Option<usize>,
    /// The tar entry the segment's bytes start with: its ordinal and its offset.
    pub start_ordinal: u64,
    pub start: u64,
    /// Where the segment's bytes end: its last file's end, rounded up to a block.
    pub stop: u64,
}

/// Jumping to a resume point pays only past this much output: restarting costs a state copy
/// and inflating from the point to the next entry.
pub const JUMP_MIN: u64 = 1 << 20;

/// Splits a layer's surviving files (`(ordinal, end)` in tar order) into the segments the
/// emit pass reads, jumping over each stretch where a resume point lies at least
/// [`JUMP_MIN`] past the end of the file before. `points` are the resume points in stream
/// order, as (where in the uncompressed tar, boundary: see [`ResumePoint`]).
pub fn plan_segments(
    files: impl Iterator<Item = (u64, u64)>,
    points: &[(u64, Option<(u64, u64)>)],
) -> Vec<Segment> {
    let mut segments = vec![Segment {
        point: None,
        start_ordinal: 0,
        start: 0,
        stop: 0,
    }];
    let mut has_files = false;
    let mut next_point = 0;
    let mut pos = 0u64;
    for (ordinal, end) in files {
        let mut jump = None;
        while let Some(&(at, boundary)) = points.get(next_point) {
            let Some((offset, first)) = boundary else {
                next_point += 1;
                continue;
            };
            if first > ordinal {
                break;
            }
            if at >= pos.saturating_add(JUMP_MIN) {
                jump = Some((next_point, offset, first));
            }
            next_point += 1;
        }
        if let Some((k, offset, first)) = jump {
            let segment = Segment {
                point: Some(k),
                start_ordinal: first,
                start: offset,
                stop: end,
            };
            if has_files {
                segments.push(segment);
            } else {
                segments[0] = segment;
            }
        } else {
            segments.last_mut().expect("one segment at least").stop = end;
        }
        has_files = true;
        pos = end;
    }
    segments
}

/// How the emit pass reads one layer: its segments, and the resume points they start from.
#[derive(Clone)]
pub struct ReadPlan {
    pub segments: Arc<[Segment]>,
    points: Arc<[ResumePoint]>,
}

impl ReadPlan {
    /// Plans the segments for a layer's surviving files, `(ordinal, end, size)` (see
    /// [`plan_segments`]), from the layer's resume points.
    pub fn new(
        files: impl Iterator<Item = (u64, u64, u64)>,
        points: Arc<[ResumePoint]>,
    ) -> ReadPlan {
        let at: Vec<_> = points
            .iter()
            .map(|p| (p.uncompressed, p.boundary))
            .collect();
        ReadPlan {
            segments: plan_segments(files.map(|(ordinal, end, _)| (ordinal, end)), &at).into(),
            points,
        }
    }
}

/// A layer's uncompressed tar read again by the emit pass, which the index pass has
/// already verified (so nothing is hashed a second time): the bytes of each [`Segment`]
/// in turn, each ending in an end of stream; [`Reread::next_segment`] moves on.
pub struct Reread {
    decoded: Option<Decoded<BufReader<BlobReader>>>,
    /// Offset in the uncompressed tar of the next byte `decoded` yields.
    position: u64,
    plan: ReadPlan,
    current: usize,
    /// Bytes jumped over, added up over the layers of a run.
    skipped: Arc<AtomicU64>,
}

/// Moves `blob` `n` bytes ahead: what its buffer holds is dropped, the rest skipped without
/// reading where the source can (a file, a spool).
fn skip_ahead(blob: &mut BufReader<BlobReader>, n: u64) -> io::Result<()> {
    let buffered = blob
        .buffer()
        .len()
        .min(usize::try_from(n).unwrap_or(usize::MAX));
    blob.consume(buffered);
    blob.get_mut().skip(n - buffered as u64)
}

impl Reread {
    pub fn new(
        blob: BlobReader,
        layer: &Layer,
        plan: ReadPlan,
        skipped: Arc<AtomicU64>,
    ) -> Result<Reread> {
        let decoded = Decoded::detect(BufReader::with_capacity(BUFFER, blob), layer, None, None)?;
        let mut reread = Reread {
            decoded: Some(decoded),
            position: 0,
            plan,
            current: 0,
            skipped,
        };
        reread.start_segment()?;
        Ok(reread)
    }

    /// Moves to the start of the current segment: by a resume point when it has one that
    /// lies ahead, else by inflating up to it.
    fn start_segment(&mut self) -> io::Result<()> {
        let segment = &self.plan.segments[self.current];
        if let Some(point) = segment.point.map(|k| &self.plan.points[k]) {
            if point.uncompressed > self.position {
                let Some(Decoded::Gzip(gzip)) = self.decoded.take() else {
                    return Err(io::Error::other(
                        "internal: a resume point in a layer that is not gzip",
                    ));
                };
                let consumed = gzip.compressed();
                let mut blob = gzip.into_inner();
                skip_ahead(&mut blob, point.compressed - consumed)?;
                self.decoded = Some(Decoded::Gzip(GzipDecoder::resume(blob, point)?));
                self.skipped
                    .fetch_add(point.uncompressed - self.position, Ordering::Relaxed);
                self.position = point.uncompressed;
            }
        }
        let start = segment.start;
        if start < self.position {
            return Err(io::Error::other(
                "internal: a segment starts behind the reader",
            ));
        }
        let decoded = self.decoded.as_mut().expect("a decoder between segments");
        io::copy(&mut decoded.take(start - self.position), &mut io::sink())?;
        self.position = start;
        Ok(())
    }

    /// On to the next segment; false when there is none.
    pub fn next_segment(&mut self) -> io::Result<bool> {
        if self.current + 1 >= self.plan.segments.len() {
            return Ok(false);
        }
        self.current += 1;
        self.start_segment()?;
        Ok(true)
    }
}

impl Read for Reread {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stop = self.plan.segments[self.current].stop;
        let want = (stop.saturating_sub(self.position)).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let decoded = self.decoded.as_mut().expect("a decoder between segments");
        let n = decoded.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the layer ends early (it changed since it was read)",
            ));
        }
        self.position += n as u64;
        Ok(n)
    }
}

/// Reads a stream on its own thread, a bounded number of chunks ahead of the consumer, so
/// that decompressing a layer overlaps with writing the previous one.
pub struct ReadAhead {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    /// Read chunks go back to the producer to be filled again: a fresh zeroed MiB for every
    /// MiB of every layer cost more than the copy out of it.
    spent: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

/// How far a [`ReadAhead`] runs ahead of its consumer: `depth` chunks of `chunk` bytes.
#[derive(Clone, Copy, Debug)]
pub struct ReadAheadSize {
    pub depth: usize,
    pub chunk: usize,
}

impl Default for ReadAheadSize {
    fn default() -> Self {
        ReadAheadSize {
            depth: 8,
            chunk: 1 << 20,
        }
    }
}

impl ReadAhead {
    /// `open` runs on the new thread (opening a blob may block on a download). Each of the
    /// reader's segments ends in an end of stream of the `ReadAhead` too.
    pub fn spawn<'scope, F>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        size: ReadAheadSize,
        open: F,
    ) -> ReadAhead
    where
        F: FnOnce() -> Result<Reread> + Send + 'scope,
    {
        let (tx, rx) = mpsc::sync_channel(size.depth.max(1));
        let chunk_size = size.chunk.max(1);
        let (spent, recycled) = mpsc::channel::<Vec<u8>>();
        scope.spawn(move || {
            let mut reader = match open() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(format!("{e:#}"))));
                    return;
                }
            };
            loop {
                let mut chunk = recycled.try_recv().unwrap_or_default();
                chunk.resize(chunk_size, 0);
                let mut filled = 0;
                while filled < chunk_size {
                    match reader.read(&mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if filled > 0 {
                    chunk.truncate(filled);
                    // A closed channel means the consumer is done with this layer.
                    if tx.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                if filled < chunk_size {
                    // The end of a segment: an empty chunk tells the consumer.
                    match reader.next_segment() {
                        Ok(true) => {
                            if tx.send(Ok(Vec::new())).is_err() {
                                return;
                            }
                        }
                        Ok(false) => return,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            }
        });
        ReadAhead {
            chunks: rx,
            spent,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.current.len() {
            match self.chunks.recv() {
                // The end of a segment: an end of stream, once.
                Ok(Ok(chunk)) if chunk.is_empty() => return Ok(0),
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.current, chunk);
                    // The producer may be gone already; then the buffer is simply freed.
                    let _ = self.spent.send(spent);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

const BUFFER: usize = 256 * 1024;

impl<R: BufRead> Decoded<R> {
    /// Picks the decompressor from the first bytes of `raw`. Magic bytes decide (as in
    /// containerd); a media type that disagrees is a mistake of whoever pushed the image,
    /// worth a warning, not a failure: the diff_id still proves the content.
    /// `points`: where a gzip decoder records its resume points.
    pub fn detect(
        mut raw: R,
        layer: &Layer,
        warn: Option<&dyn crate::events::Observer>,
        points: Option<ResumePoints>,
    ) -> Result<Decoded<R>> {
        let head = raw.fill_buf()?;
        let detected = sniff(head);
        if head.is_empty() && layer.compression.is_some_and(|c| c != Compression::None) {
            bail_kind!(
                HostileInput,
                "the blob is empty, not {:?} data",
                layer.compression.unwrap()
            );
        }
        if let Some(declared) = layer.compression {
            if let (Some(observer), true) = (warn, declared != detected && !head.is_empty()) {
                crate::events::warn(
                    observer,
                    format!(
                        "{}: media type {} says {:?} but the data is {:?}; reading it as {:?}",
                        layer.describe(),
                        crate::terminal::printable(&layer.media_type),
                        declared,
                        detected,
                        detected
                    ),
                );
            }
        }
        Ok(match detected {
            Compression::None => Decoded::Plain(raw),
            Compression::Gzip => {
                let mut gzip = match points {
                    Some(points) => GzipDecoder::recording(raw, points, super::inflate::SPAN)?,
                    None => GzipDecoder::new(raw)?,
                };
                // Every layer's diff_id covers each byte the CRC would, and more strongly:
                // the index pass checks it (a member whose CRC alone is wrong fails there,
                // as a diff_id mismatch), and the emit pass reads what it checked.
                gzip.skip_crc()?;
                Decoded::Gzip(gzip)
            }
            Compression::Zstd => Decoded::Zstd(zstd::stream::read::Decoder::with_buffer(raw)?),
        })
    }
}

impl LayerStream {
    /// `blob_verified`: the source already checked the blob's digest on these very bytes
    /// (a registry download into our own spool), so it is not hashed a second time; its size
    /// still is, and the diff_id always.
    pub fn new(
        blob: BlobReader,
        layer: &Layer,
        max_expansion: u64,
        blob_verified: bool,
        observer: &dyn crate::events::Observer,
    ) -> Result<LayerStream> {
        let raw = VerifyingReader::new(
            blob,
            Expected {
                digest: None,
                size: layer.size,
                max: None,
                what: "blob".into(),
            },
        );
        let blob_digest = if blob_verified {
            None
        } else {
            layer.digest.clone()
        };
        let raw = HashedAside::new(raw, blob_digest, "blob")?;
        let max = layer.size.map(|compressed| {
            (
                crate::limits::max_uncompressed(compressed, max_expansion),
                format!(
                    "more than {max_expansion} times its compressed size, refusing a possible decompression bomb (raise --max-expansion if the image is genuine)"
                ),
            )
        });
        let points = ResumePoints::default();
        let decoded = Decoded::detect(
            BufReader::with_capacity(BUFFER, raw),
            layer,
            Some(observer),
            Some(points.clone()),
        )?;
        let gzip = matches!(decoded, Decoded::Gzip(_));
        let uncompressed = VerifyingReader::new(
            decoded,
            Expected {
                digest: None,
                size: None,
                max: max.clone(),
                what: "uncompressed layer (diff_id)".into(),
            },
        );
        let uncompressed = HashedAside::new(
            uncompressed,
            Some(layer.diff_id.clone()),
            "uncompressed layer (diff_id)",
        )?;
        Ok(LayerStream {
            tar: TarReader::new(uncompressed),
            max,
            points,
            gzip,
        })
    }

    /// The entry just read starts at `offset` of the uncompressed tar and has `ordinal`:
    /// the boundary of every resume point recorded at or before `offset` that has none yet.
    pub fn mark_boundary(&mut self, offset: u64, ordinal: u64) {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        // Boundaries are given in stream order, so the points without one are the last few
        // (usually none or one); thinning keeps that order.
        for point in points.iter_mut().rev() {
            if point.boundary.is_some() {
                break;
            }
            if point.uncompressed <= offset {
                point.boundary = Some((offset, ordinal));
            }
        }
    }

    /// The resume points recorded, each with its boundary; `splittable` only says whether
    /// the blob is gzip, its size is the caller's to add.
    pub fn take_resume(&mut self) -> Resume {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken = std::mem::take(&mut *points);
        taken.retain(|p| p.boundary.is_some());
        Resume {
            splittable: self.gzip,
            points: taken,
        }
    }

    /// The next entry; a sparse file whose holes would take the layer past the expansion
    /// ceiling is refused here, before anything is written.
    pub fn next_entry(&mut self) -> Result<Option<super::tar_reader::RawEntry>> {
        let entry = self.tar.next_entry()?;
        if let Some((max, why)) = &self.max {
            let holes = self.tar.hole_bytes();
            let expanded = self
                .tar
                .get_ref()
                .get_ref()
                .bytes_read()
                .saturating_add(holes);
            if holes > 0 && expanded > *max {
                bail_kind!(HostileInput,
                    "the uncompressed layer with its sparse files expanded is larger than {max} bytes: {why}"
                );
            }
        }
        Ok(entry)
    }

    /// Where the current entry's stored content ends in the uncompressed stream, in bytes.
    pub fn entry_end(&self) -> u64 {
        self.tar.get_ref().get_ref().bytes_read() + self.tar.stored_left()
    }

    pub fn tar(&mut self) -> &mut TarReader<Uncompressed> {
        &mut self.tar
    }

    /// After a failure inside the layer (a corrupt tar, a broken gzip stream), reads the rest
    /// of the blob itself: if the blob does not match its digest, that is the real cause and
    /// the better message ("corrupted or tampered" rather than "checksum mismatch").
    pub fn blob_mismatch(self) -> Option<io::Error> {
        let mut raw = self.tar.into_inner().into_inner().into_inner().into_inner();
        match io::copy(&mut raw, &mut io::sink()) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Some(e),
            _ => None,
        }
    }

    /// Reads the rest of both streams so that both digests are checked; returns the
    /// uncompressed and compressed byte counts.
    pub fn finish(self) -> io::Result<(u64, u64)> {
        let mut uncompressed = self.tar.into_inner();
        io::copy(&mut uncompressed, &mut io::sink())?;
        let uncompressed = uncompressed.into_inner();
        let tar_bytes = uncompressed.bytes_read();
        let mut raw = uncompressed.into_inner().into_inner();
        io::copy(&mut raw, &mut io::sink())?;
        let blob = raw.into_inner().into_inner();
        Ok((tar_bytes, blob.bytes_read()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1000) as u8).collect()
    }

    /// Reads in pieces of `piece` bytes, as the tar parser does (headers, then content).
    fn read_all(reader: &mut impl Read, piece: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn hashed_aside_passes_matching_bytes_through() {
        // More than a few batches, read in small and large pieces.
        let bytes = data(3 * HASH_BATCH + 12345);
        for piece in [512, 1 << 20] {
            let mut r =
                HashedAside::new(&bytes[..], Some(Digest::sha256_of(&bytes)), "blob").unwrap();
            assert_eq!(read_all(&mut r, piece).unwrap(), bytes);
            // After the end, it stays at the end.
            assert_eq!(r.read(&mut [0u8; 16]).unwrap(), 0);
        }
    }

    #[test]
    fn hashed_aside_fails_at_the_end_on_other_bytes() {
        let bytes = data(HASH_BATCH + 1);
        let mut other = bytes.clone();
        other[HASH_BATCH / 2] ^= 1;
        let mut r = HashedAside::new(
            &other[..],
            Some(Digest::sha256_of(&bytes)),
            "uncompressed layer (diff_id)",
        )
        .unwrap();
        let err = read_all(&mut r, 4096).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let msg = err.to_string();
        assert!(
            msg.starts_with("uncompressed layer (diff_id) has digest sha256:")
                && msg.contains(&format!("expected {}", Digest::sha256_of(&bytes)))
                && msg.ends_with("(corrupted or tampered)"),
            "{msg}"
        );
        assert_eq!(
            crate::error::classify(&anyhow::Error::new(err)),
            crate::error::ErrorKind::Integrity
        );
    }

    #[test]
    fn hashed_aside_empty_stream_and_empty_reads() {
        let mut r = HashedAside::new(&b""[..], Some(Digest::sha256_of(b"")), "blob").unwrap();
        // A read into an empty buffer is not the end of the stream.
        assert_eq!(r.read(&mut []).unwrap(), 0);
        assert!(!r.done);
        assert_eq!(read_all(&mut r, 10).unwrap(), b"");
        assert!(r.done);
        let mut r = HashedAside::new(&b"x"[..], Some(Digest::sha256_of(b"")), "blob").unwrap();
        assert!(read_all(&mut r, 10).is_err());
    }

    #[test]
    fn hashed_aside_size_error_comes_before_the_digest() {
        // A truncated blob is reported as truncated, as the inline check alone did.
        let bytes = data(1000);
        let inner = VerifyingReader::new(
            &bytes[..999],
            Expected {
                digest: None,
                size: Some(1000),
                max: None,
                what: "blob".into(),
            },
        );
        let mut r = HashedAside::new(inner, Some(Digest::sha256_of(&bytes)), "blob").unwrap();
        let msg = read_all(&mut r, 100).unwrap_err().to_string();
        assert!(msg.contains("truncated or wrong size"), "{msg}");
    }

    #[test]
    fn hashed_aside_dropped_midway_does_not_hang() {
        let bytes = data(10 * HASH_BATCH);
        let mut r = HashedAside::new(&bytes[..], Some(Digest::sha256_of(&bytes)), "blob").unwrap();
        let mut buf = vec![0u8; 2 * HASH_BATCH];
        r.read_exact(&mut buf).unwrap();
        drop(r);
    }

    fn segment(point: Option<usize>, start_ordinal: u64, start: u64, stop: u64) -> Segment {
        Segment {
            point,
            start_ordinal,
            start,
            stop,
        }
    }

    #[test]
    fn segments_without_points_read_to_the_last_file() {
        let files = [(3, 1024), (9, 8 << 20)];
        assert_eq!(
            plan_segments(files.into_iter(), &[]),
            [segment(None, 0, 0, 8 << 20)]
        );
        assert_eq!(plan_segments([].into_iter(), &[]), [segment(None, 0, 0, 0)]);
    }

    #[test]
    fn segments_jump_where_a_point_lies_far_enough_past_the_file_before() {
        const M: u64 = 1 << 20;
        let files = [(0, M), (40, 20 * M), (41, 21 * M), (90, 40 * M)];
        let points = [
            // Too close after the first file's end to pay.
            (M + 1000, Some((M + 4096, 5))),
            // The last point before entry 40: the jump starts at its boundary.
            (10 * M, Some((10 * M + 512, 12))),
            (15 * M, Some((15 * M + 1536, 33))),
            // No boundary (the layer ended first): never used.
            (16 * M, None),
            // Between files 40 and 41, but not JUMP_MIN past file 40's end.
            (20 * M + 100, Some((20 * M + 512, 41))),
            // Boundary after the last file: never used.
            (50 * M, Some((50 * M, 95))),
        ];
        // Files 41 and 90 are read on from file 40: no point lies far enough past 40's end
        // with a boundary before them.
        assert_eq!(
            plan_segments(files.into_iter(), &points),
            [
                segment(None, 0, 0, M),
                segment(Some(2), 33, 15 * M + 1536, 40 * M)
            ]
        );
    }

    #[test]
    fn a_point_before_the_first_file_starts_the_first_segment() {
        const M: u64 = 1 << 20;
        let points = [(4 * M, Some((4 * M + 512, 7)))];
        assert_eq!(
            plan_segments([(7, 5 * M), (8, 6 * M)].into_iter(), &points),
            [segment(Some(0), 7, 4 * M + 512, 6 * M)]
        );
    }

    #[test]
    fn no_expected_digest_hashes_nothing() {
        let mut r = HashedAside::new(&b"anything"[..], None, "blob").unwrap();
        assert_eq!(read_all(&mut r, 3).unwrap(), b"anything");
        assert!(r.batch.is_empty());
    }
}
