//! A layer blob as a verified stream of tar entries.
//!
//! The chain is: raw blob → blob digest/size check → decompressor (chosen by magic bytes) →
//! diff_id check → tar parser. Both checks fire inside `read` at end of stream, and
//! [`LayerStream::finish`] drains whatever the tar parser left (padding, trailing blocks, the
//! end of the compressed stream), so a layer is only "done" once every byte was verified.

use crate::image::digest::{Expected, VerifyingReader};
use crate::image::manifest::Compression;
use crate::image::Layer;
use crate::source::store::BlobReader;
use anyhow::{bail, Result};
use std::io::{self, BufRead, BufReader, Read};

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
    archive: tar::Archive<Uncompressed>,
    pub detected: Compression,
}

const BUFFER: usize = 256 * 1024;

impl LayerStream {
    pub fn new(blob: BlobReader, layer: &Layer) -> Result<LayerStream> {
        let raw = VerifyingReader::new(
            blob,
            Expected {
                digest: layer.digest.clone(),
                size: layer.size,
                what: "blob".into(),
            },
        );
        let mut raw = BufReader::with_capacity(BUFFER, raw);
        let head = raw.fill_buf()?;
        let detected = sniff(head);
        if let Some(declared) = layer.compression {
            // Magic bytes decide (as containerd does); a media type that disagrees is a
            // mistake of whoever pushed the image, worth a mention, not a failure: the
            // diff_id still proves the content.
            if declared != detected && !head.is_empty() {
                eprintln!(
                    "warning: {}: media type {} says {:?} but the data is {:?}; reading it as {:?}",
                    layer.describe(),
                    layer.media_type,
                    declared,
                    detected,
                    detected
                );
            }
        }
        if head.is_empty() && layer.compression.is_some_and(|c| c != Compression::None) {
            bail!(
                "the blob is empty, not {:?} data",
                layer.compression.unwrap()
            );
        }
        let decoded = match detected {
            Compression::None => Decoded::Plain(raw),
            Compression::Gzip => Decoded::Gzip(flate2::bufread::MultiGzDecoder::new(raw)),
            Compression::Zstd => Decoded::Zstd(zstd::stream::read::Decoder::with_buffer(raw)?),
        };
        let uncompressed = VerifyingReader::new(
            decoded,
            Expected {
                digest: Some(layer.diff_id.clone()),
                size: None,
                what: "uncompressed layer (diff_id)".into(),
            },
        );
        Ok(LayerStream {
            archive: tar::Archive::new(uncompressed),
            detected,
        })
    }

    pub fn archive(&mut self) -> &mut tar::Archive<Uncompressed> {
        &mut self.archive
    }

    /// Reads the rest of both streams so that both digests are checked; returns the
    /// uncompressed and compressed byte counts.
    pub fn finish(self) -> io::Result<(u64, u64)> {
        let mut uncompressed = self.archive.into_inner();
        io::copy(&mut uncompressed, &mut io::sink())?;
        let tar_bytes = uncompressed.bytes_read();
        let mut raw = uncompressed.into_inner().into_inner();
        io::copy(&mut raw, &mut io::sink())?;
        let blob = raw.into_inner();
        Ok((tar_bytes, blob.bytes_read()))
    }
}
