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

use super::tar_reader::TarReader;
use crate::error::bail_kind;
use crate::image::digest::{Digest, Expected, Hasher, VerifyingReader};
use crate::image::manifest::Compression;
use crate::image::Layer;
use crate::source::store::BlobReader;
use anyhow::Result;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc;
use std::thread::JoinHandle;

// The gzip decoder's state is large, but there is one Decoded per layer stream: boxing it
// would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Decoded<R: BufRead> {
    Plain(R),
    Gzip(flate2::bufread::MultiGzDecoder<R>),
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
}

/// The uncompressed bytes of a layer that the index pass has already verified: the emit
/// pass reads the same blob again and need not hash it a second time.
pub fn reread(blob: BlobReader, layer: &Layer) -> Result<Decoded<BufReader<BlobReader>>> {
    Decoded::detect(BufReader::with_capacity(BUFFER, blob), layer, None)
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
    /// `open` runs on the new thread (opening a blob may block on a download).
    pub fn spawn<'scope, F, R>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        size: ReadAheadSize,
        open: F,
    ) -> ReadAhead
    where
        F: FnOnce() -> Result<R> + Send + 'scope,
        R: Read,
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
                if filled == 0 {
                    return;
                }
                chunk.truncate(filled);
                // A closed channel means the consumer is done with this layer.
                if tx.send(Ok(chunk)).is_err() {
                    return;
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
    pub fn detect(
        mut raw: R,
        layer: &Layer,
        warn: Option<&dyn crate::events::Observer>,
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
            Compression::Gzip => Decoded::Gzip(flate2::bufread::MultiGzDecoder::new(raw)),
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
        let decoded =
            Decoded::detect(BufReader::with_capacity(BUFFER, raw), layer, Some(observer))?;
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
        })
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

    #[test]
    fn no_expected_digest_hashes_nothing() {
        let mut r = HashedAside::new(&b"anything"[..], None, "blob").unwrap();
        assert_eq!(read_all(&mut r, 3).unwrap(), b"anything");
        assert!(r.batch.is_empty());
    }
}
