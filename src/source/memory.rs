//! An image held in memory: layers as blobs built by code. Used by the fuzz targets, the
//! benchmarks and unit tests, where a file system would only add noise.

use super::store::BlobReader;
use super::ImageSource;
use crate::image::digest::Digest;
use crate::image::{Image, Layer, PlatformChoice};
use anyhow::{anyhow, Result};
use std::io::Cursor;
use std::sync::Arc;

pub struct MemorySource {
    blobs: Vec<Arc<Vec<u8>>>,
    layers: Vec<Layer>,
}

impl MemorySource {
    /// `layers` are (blob bytes, uncompressed tar bytes) pairs; the digests are computed here,
    /// so the verification path is exercised exactly as for a real image.
    pub fn new(layers: Vec<(Vec<u8>, Vec<u8>)>) -> MemorySource {
        let count = layers.len();
        let mut blobs = Vec::new();
        let mut descs = Vec::new();
        for (index, (blob, tar)) in layers.into_iter().enumerate() {
            let digest = Digest::sha256_of(&blob);
            descs.push(Layer {
                index,
                count,
                size: Some(blob.len() as u64),
                compression: None,
                media_type: String::new(),
                diff_id: Digest::sha256_of(&tar),
                location: digest.to_string(),
                digest: Some(digest),
            });
            blobs.push(Arc::new(blob));
        }
        MemorySource {
            blobs,
            layers: descs,
        }
    }

    /// Uncompressed layers: each blob is its own tar.
    pub fn from_tars(tars: Vec<Vec<u8>>) -> MemorySource {
        MemorySource::new(tars.into_iter().map(|t| (t.clone(), t)).collect())
    }
}

struct SharedCursor(Cursor<Arc<Vec<u8>>>);

impl std::io::Read for SharedCursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let data = self.0.get_ref().as_slice();
        let pos = (self.0.position() as usize).min(data.len());
        let n = (data.len() - pos).min(buf.len());
        buf[..n].copy_from_slice(&data[pos..pos + n]);
        self.0.set_position((pos + n) as u64);
        Ok(n)
    }
}

impl super::store::BlobRead for SharedCursor {
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let pos = self.0.position().saturating_add(n);
        if pos > self.0.get_ref().len() as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the blob ends before the place to skip to",
            ));
        }
        self.0.set_position(pos);
        Ok(())
    }
}

impl ImageSource for MemorySource {
    fn resolve(&self, _choice: &PlatformChoice) -> Result<Image> {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| l.diff_id.to_string()).collect();
        let config_raw = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))?;
        Ok(Image {
            name: "memory".into(),
            manifest_digest: None,
            index_digest: None,
            config_digest: Digest::sha256_of(&config_raw),
            config: crate::image::parse_config(&config_raw)?,
            config_raw,
            layers: self.layers.clone(),
            warnings: Vec::new(),
            index_entries: Vec::new(),
        })
    }

    fn open_layer(&self, layer: &Layer) -> Result<BlobReader> {
        let blob = self
            .blobs
            .get(layer.index)
            .ok_or_else(|| anyhow!("no layer {}", layer.index))?;
        Ok(Box::new(SharedCursor(Cursor::new(blob.clone()))))
    }
}
