//! The output tar: the streaming writer over the tar codec (`crate::tar`), which makes
//! every header decision (`crate::tar::write` says which and why).
//!
//! Written here rather than with `tar::Builder` because names are bytes (never host paths),
//! and because a content stream shorter than its entry's size must fail, never pad.

use crate::layer::EntrySink;
use crate::tar::write::entry_headers;
use crate::tar::{padding_of, EntryKind, EntryMeta, BLOCK};
use std::io::{self, Read, Write};

pub struct TarWriter<W: Write> {
    out: W,
    bytes: u64,
    buf: Vec<u8>,
    /// The header blocks of the entry being written, reused from entry to entry.
    headers: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter {
            out,
            bytes: 0,
            buf: vec![0u8; 256 * 1024],
            headers: Vec::with_capacity(4 * BLOCK),
        }
    }

    /// Bytes of tar written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        match padding_of(len) as usize {
            0 => Ok(()),
            n => self.write(&[0u8; BLOCK][..n]),
        }
    }

    /// Directories, symlinks, devices, FIFOs: header only.
    pub fn append_contentless(&mut self, path: &[u8], meta: &EntryMeta) -> io::Result<()> {
        debug_assert!(meta.kind != EntryKind::Regular || meta.size == 0);
        self.header(path, meta, meta.kind, &meta.link, 0, true)
    }

    pub fn append_hardlink(
        &mut self,
        path: &[u8],
        target: &[u8],
        meta: &EntryMeta,
    ) -> io::Result<()> {
        self.header(path, meta, EntryKind::Hardlink, target, 0, false)
    }

    /// A regular file whose content is exactly `meta.size` bytes of `content`; a shorter
    /// stream is an error (a truncated layer), never a silently short file.
    pub fn append_file(
        &mut self,
        path: &[u8],
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> io::Result<()> {
        self.header(path, meta, EntryKind::Regular, b"", meta.size, true)?;
        let mut left = meta.size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match content.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("content ends {left} bytes early (truncated layer)"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out.write_all(&self.buf[..n])?;
            self.bytes += n as u64;
            left -= n as u64;
        }
        self.pad(meta.size)
    }

    /// Ends the archive (two zero blocks) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write(&[0u8; BLOCK * 2])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(
        &mut self,
        path: &[u8],
        meta: &EntryMeta,
        kind: EntryKind,
        link: &[u8],
        size: u64,
        with_xattrs: bool,
    ) -> io::Result<()> {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        entry_headers(&mut headers, path, meta, kind, link, size, with_xattrs);
        let written = self.write(&headers);
        self.headers = headers;
        written
    }
}

/// The layer stage writes through this; the methods above say what each entry becomes.
impl<W: Write> EntrySink for TarWriter<W> {
    fn append_contentless(&mut self, path: &[u8], meta: &EntryMeta) -> io::Result<()> {
        TarWriter::append_contentless(self, path, meta)
    }

    fn append_hardlink(&mut self, path: &[u8], target: &[u8], meta: &EntryMeta) -> io::Result<()> {
        TarWriter::append_hardlink(self, path, target, meta)
    }

    fn append_file(
        &mut self,
        path: &[u8],
        meta: &EntryMeta,
        content: &mut dyn Read,
    ) -> io::Result<()> {
        TarWriter::append_file(self, path, meta, content)
    }

    fn bytes_written(&self) -> u64 {
        TarWriter::bytes_written(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: EntryKind) -> EntryMeta {
        let mut m = EntryMeta::implicit_dir(Vec::new());
        m.kind = kind;
        m.mode = 0o644;
        m
    }

    type Entry = (
        Vec<u8>,
        ::tar::EntryType,
        u64,
        u64,
        Vec<u8>,
        Vec<(String, Vec<u8>)>,
    );

    fn read_back(bytes: &[u8]) -> Vec<Entry> {
        let mut a = ::tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut xattrs = Vec::new();
                if let Some(p) = e.pax_extensions().unwrap() {
                    for x in p {
                        let x = x.unwrap();
                        if let Ok(k) = x.key() {
                            if k.starts_with("SCHILY") {
                                xattrs.push((k.to_string(), x.value_bytes().to_vec()));
                            }
                        }
                    }
                }
                let h = e.header().clone();
                let mut content = Vec::new();
                e.read_to_end(&mut content).unwrap();
                (
                    e.path_bytes().into_owned(),
                    h.entry_type(),
                    h.uid().unwrap(),
                    h.size().unwrap(),
                    content,
                    xattrs,
                )
            })
            .collect()
    }

    #[test]
    fn long_binary_names_big_ids_xattrs_roundtrip() {
        let mut w = TarWriter::new(Vec::new());
        let long: Vec<u8> = [&b"d/"[..], &[b'\xe9'; 300][..]].concat();
        let mut m = meta(EntryKind::Regular);
        m.uid = 3_000_000_000;
        m.size = 3;
        m.xattrs = vec![(
            b"security.capability".to_vec(),
            vec![1, 0, 0, 2, 0x20, 0, 0, 0],
        )];
        w.append_file(&long, &m, &mut &b"abc"[..]).unwrap();
        let split: Vec<u8> = [&[b'p'; 120][..], b"/", &[b'n'; 90][..]].concat();
        w.append_file(&split, &meta(EntryKind::Regular), &mut &b""[..])
            .unwrap();
        w.append_hardlink(b"link", &long, &m).unwrap();
        let bytes = w.finish().unwrap();
        let entries = read_back(&bytes);
        assert_eq!(entries[0].0, long);
        assert_eq!(entries[0].2, 3_000_000_000);
        assert_eq!(entries[0].4, b"abc");
        assert_eq!(entries[0].5[0].0, "SCHILY.xattr.security.capability");
        assert_eq!(entries[1].0, split);
        assert_eq!(entries[2].1, ::tar::EntryType::Link);
        // A binary name must not reach a PAX path record (bsdtar would fail to convert it).
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(" path="));
        assert!(text.contains("././@LongLink"));
    }

    #[test]
    fn truncated_content_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        let mut m = meta(EntryKind::Regular);
        m.size = 10;
        let err = w.append_file(b"f", &m, &mut &b"abc"[..]).unwrap_err();
        assert!(err.to_string().contains("7 bytes early"), "{err}");
    }

    #[test]
    fn root_and_directories_get_slashes() {
        let mut w = TarWriter::new(Vec::new());
        w.append_contentless(b"", &meta(EntryKind::Directory))
            .unwrap();
        w.append_contentless(b"etc", &meta(EntryKind::Directory))
            .unwrap();
        let bytes = w.finish().unwrap();
        let names: Vec<_> = read_back(&bytes).into_iter().map(|e| e.0).collect();
        assert_eq!(names, [b"./".to_vec(), b"etc/".to_vec()]);
        assert_eq!(bytes.len() % 512, 0);
    }
}
