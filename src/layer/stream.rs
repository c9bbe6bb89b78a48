//! A layer blob as a verified stream of tar entries.
//!
//! The chain is: raw blob → blob digest/size check → decompressor (chosen by magic bytes) →
//! diff_id check → tar parser. Both checks fire inside `read` at end of stream, and
//! [`LayerStream::finish`] drains whatever the tar parser left (padding, trailing blocks, the
//! end of the compressed stream), so a layer is only "done" once every byte was verified.

use super::tar_reader::TarReader;
use crate::error::bail_kind;
use crate::image::digest::{Expected, VerifyingReader};
use crate::image::manifest::Compression;
use crate::image::Layer;
use crate::source::store::BlobReader;
use anyhow::Result;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc;

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

type Raw = BufReader<VerifyingReader<BlobReader>>;
pub type Uncompressed = VerifyingReader<Decoded<Raw>>;

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

const CHUNK: usize = 1 << 20;

impl ReadAhead {
    /// `open` runs on the new thread (opening a blob may block on a download).
    pub fn spawn<'scope, F, R>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        depth: usize,
        open: F,
    ) -> ReadAhead
    where
        F: FnOnce() -> Result<R> + Send + 'scope,
        R: Read,
    {
        let (tx, rx) = mpsc::sync_channel(depth.max(1));
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
                chunk.resize(CHUNK, 0);
                let mut filled = 0;
                while filled < CHUNK {
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
                digest: if blob_verified {
                    None
                } else {
                    layer.digest.clone()
                },
                size: layer.size,
                max: None,
                what: "blob".into(),
            },
        );
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
                digest: Some(layer.diff_id.clone()),
                size: None,
                max: max.clone(),
                what: "uncompressed layer (diff_id)".into(),
            },
        );
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
            let expanded = self.tar.get_ref().bytes_read().saturating_add(holes);
            if holes > 0 && expanded > *max {
                bail_kind!(HostileInput,
                    "the uncompressed layer with its sparse files expanded is larger than {max} bytes: {why}"
                );
            }
        }
        Ok(entry)
    }

    pub fn tar(&mut self) -> &mut TarReader<Uncompressed> {
        &mut self.tar
    }

    /// After a failure inside the layer (a corrupt tar, a broken gzip stream), reads the rest
    /// of the blob itself: if the blob does not match its digest, that is the real cause and
    /// the better message ("corrupted or tampered" rather than "checksum mismatch").
    pub fn blob_mismatch(self) -> Option<io::Error> {
        let raw = self.tar.into_inner().into_inner().into_inner();
        let mut raw = raw;
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
        let tar_bytes = uncompressed.bytes_read();
        let mut raw = uncompressed.into_inner().into_inner();
        io::copy(&mut raw, &mut io::sink())?;
        let blob = raw.into_inner();
        Ok((tar_bytes, blob.bytes_read()))
    }
}
