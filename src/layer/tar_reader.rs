//! A streaming reader for layer tars, with the ceilings a hostile layer needs.
//!
//! Layers are read with our own parser rather than the `tar` crate because the crate reads
//! PAX and GNU long-name records into memory whatever their size, and silently returns a
//! short file when the stream ends inside an entry. Here every extension record has a size
//! limit, a stream that ends inside a header or an entry's content is an error naming the
//! entry, and nothing is ever turned into a host path.
//!
//! This is the streaming walker over the tar codec (`crate::tar`), which decodes the headers
//! and records of every format it knows (POSIX ustar and pax, GNU, old v7); global PAX
//! records are read and ignored. GNU sparse files (old GNU type `S` and the PAX forms 0.0,
//! 0.1 and 1.0) are expanded: the entry's size is its real size and its content has the
//! holes filled with zeros, as GNU tar and the `tar` crate extract them. The zeros a layer
//! synthesises this way are counted ([`TarReader::hole_bytes`]) so that the expansion limit
//! covers them too.

use crate::tar::sparse::{self, MapRest, Pax1Map, Segments, Step};
use crate::tar::{display_name, padding_of, Extension, Extensions, Header, BLOCK};
use std::io::{self, Read};

pub use crate::tar::RawEntry;

pub struct TarReader<R: Read> {
    inner: R,
    /// Content of the current entry not yet read, and the padding after it.
    remaining: u64,
    padding: u64,
    /// Name of the current entry, for "ends early" messages.
    current: Vec<u8>,
    done: bool,
    /// Set while the current entry is a sparse file being expanded.
    sparse: Option<Segments>,
    /// Zeros synthesised for holes, over all entries so far.
    hole_bytes: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads a whole block; `Ok(false)` at a clean end of stream before the block.
fn read_block(r: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match r.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(invalid(
                    "the tar stream ends inside a header block (truncated layer)".into(),
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            current: Vec::new(),
            done: false,
            sparse: None,
            hole_bytes: 0,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Stored content of the current entry not yet read (for a sparse file, its data
    /// segments, not the holes).
    pub fn stored_left(&self) -> u64 {
        self.remaining
    }

    /// Zeros that sparse files' holes add to the layer's content, over all entries so far.
    pub fn hole_bytes(&self) -> u64 {
        self.hole_bytes
    }

    /// Reads the map blocks that follow an old GNU sparse header.
    fn gnu_sparse_blocks(&mut self, map: &mut Vec<u64>) -> io::Result<()> {
        loop {
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? {
                return Err(invalid(
                    "the tar stream ends inside a sparse map (truncated layer)".into(),
                ));
            }
            if !sparse::gnu_extension_block(&block, map)? {
                return Ok(());
            }
        }
    }

    /// Reads a PAX 1.0 sparse map from the start of the entry's `size` bytes of data.
    /// Returns the map and the bytes it took.
    fn pax1_sparse_map(&mut self, size: u64) -> io::Result<(Vec<u64>, u64)> {
        let mut parser = Pax1Map::default();
        let mut consumed = 0u64;
        loop {
            if consumed + BLOCK as u64 > size {
                return Err(invalid(
                    "a sparse file's map is longer than its data".into(),
                ));
            }
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? {
                return Err(invalid(
                    "the tar stream ends inside a sparse map (truncated layer)".into(),
                ));
            }
            consumed += BLOCK as u64;
            if let Some(map) = parser.feed(&block)? {
                return Ok((map, consumed));
            }
        }
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(invalid(format!(
                        "the tar stream ends inside the content of {:?} (truncated layer)",
                        display_name(&self.current)
                    )))
                }
                Ok(k) => n -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads an extension record's content, within the codec's limit for its kind.
    fn read_extension(&mut self, size: u64, kind: Extension) -> io::Result<Vec<u8>> {
        kind.check_size(size)?;
        let mut data = vec![0u8; size as usize];
        self.inner.read_exact(&mut data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid(format!(
                    "the tar stream ends inside a {} (truncated layer)",
                    kind.what()
                ))
            } else {
                e
            }
        })?;
        self.skip(padding_of(size))?;
        Ok(data)
    }

    /// The next entry, after skipping whatever of the previous one was not read.
    pub fn next_entry(&mut self) -> io::Result<Option<RawEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;
        let mut ext = Extensions::default();
        loop {
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? {
                if ext.is_pending() {
                    return Err(invalid(
                        "the tar stream ends after an extension header (truncated layer)".into(),
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            let header = Header::from_block(block);
            if header.is_zero() {
                if ext.is_pending() {
                    return Err(invalid(
                        "an extension header is followed by the end of the archive".into(),
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            if !header.checksum_ok()? {
                return Err(invalid(
                    "tar header checksum mismatch (corrupt layer)".into(),
                ));
            }
            if let Some(kind) = Extension::of(header.typeflag()) {
                let data = self.read_extension(header.size()?, kind)?;
                ext.add(kind, &data)?;
                continue;
            }
            let (mut entry, sparse) = ext.take_entry(&header)?;
            // Hardlinks, symlinks, devices, FIFOs and directories have no content in any
            // writer we know of; tar readers still skip what the size says.
            let mut size = entry.size;
            self.remaining = size;
            self.padding = padding_of(size);
            self.current = entry.name.clone();
            self.sparse = None;
            if let Some(mut start) = sparse {
                match start.rest {
                    MapRest::Complete => {}
                    MapRest::GnuExtensionBlocks => self.gnu_sparse_blocks(&mut start.map)?,
                    MapRest::InData => {
                        let (map, consumed) = self.pax1_sparse_map(size)?;
                        start.map = map;
                        size -= consumed;
                        self.remaining = size;
                    }
                }
                self.sparse = Some(Segments::new(
                    &entry.name,
                    &start.map,
                    size,
                    start.real_size,
                )?);
                self.hole_bytes = self.hole_bytes.saturating_add(start.real_size - size);
                entry.size = start.real_size;
            }
            return Ok(Some(entry));
        }
    }

    /// The current entry's content. Reading past it returns end of stream; a stream that
    /// ends before the content does is an error.
    pub fn content(&mut self) -> Content<'_, R> {
        Content { tar: self }
    }
}

pub struct Content<'a, R: Read> {
    tar: &'a mut TarReader<R>,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut want = (buf.len() as u64).min(self.tar.remaining) as usize;
        if let Some(sparse) = &mut self.tar.sparse {
            match sparse.step() {
                Step::Zeros(zeros) => {
                    let n = (buf.len() as u64).min(zeros) as usize;
                    buf[..n].fill(0);
                    sparse.advance(n as u64);
                    return Ok(n);
                }
                Step::Data(len) => want = want.min(len as usize),
                Step::End => return Ok(0),
            }
        }
        if want == 0 {
            return Ok(0);
        }
        let n = self.tar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid(format!(
                "the tar stream ends inside the content of {:?} (truncated layer)",
                display_name(&self.tar.current)
            )));
        }
        self.tar.remaining -= n as u64;
        if let Some(sparse) = &mut self.tar.sparse {
            sparse.advance(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_PAX_SIZE;

    fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0001750");
        h[116..123].copy_from_slice(b"0001750");
        let s = format!("{size:011o}");
        h[124..135].copy_from_slice(s.as_bytes());
        h[136..147].copy_from_slice(b"14000000000");
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn entry(name: &[u8], typeflag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = header(name, typeflag, content.len() as u64).to_vec();
        v.extend_from_slice(content);
        v.resize(v.len() + padding_of(content.len() as u64) as usize, 0);
        v
    }

    fn pax(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            let base = k.len() + v.len() + 3;
            let mut len = base + 1;
            while len != base + len.to_string().len() {
                len = base + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} ").as_bytes());
            data.extend_from_slice(k);
            data.push(b'=');
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        entry(b"PaxHeader", b'x', &data)
    }

    fn read_all(data: &[u8]) -> io::Result<Vec<(RawEntry, Vec<u8>)>> {
        let mut t = TarReader::new(data);
        let mut out = Vec::new();
        while let Some(e) = t.next_entry()? {
            let mut content = Vec::new();
            t.content().read_to_end(&mut content)?;
            out.push((e, content));
        }
        Ok(out)
    }

    #[test]
    fn reads_ustar_pax_and_gnu_extensions() {
        let long = vec![b'n'; 300];
        let mut data = entry(b"a.txt", b'0', b"hello");
        data.extend(pax(&[
            (b"path", &long),
            (b"uid", b"3000000000"),
            (b"mtime", b"1700000000.5"),
            (b"SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
            (b"LIBARCHIVE.xattr.user.a%3Db", b"dmFsdWU="),
        ]));
        data.extend(entry(b"ignored", b'0', b"xy"));
        data.extend(entry(b"././@LongLink", b'L', b"gnu/long/name\0"));
        data.extend(entry(b"short", b'5', b""));
        data.extend([0u8; 1024]);
        let entries = read_all(&data).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0.name, b"a.txt");
        assert_eq!(entries[0].1, b"hello");
        assert_eq!(entries[0].0.uid, 1000);
        let e = &entries[1].0;
        assert_eq!(e.name, long);
        assert_eq!(e.uid, 3_000_000_000);
        assert_eq!(
            (e.mtime, e.mtime_exact.as_deref()),
            (1_700_000_000, Some("1700000000.5"))
        );
        assert_eq!(
            e.xattrs[0],
            (
                b"security.capability".to_vec(),
                b"\x01\x00\x00\x02".to_vec()
            )
        );
        assert_eq!(e.xattrs[1], (b"user.a=b".to_vec(), b"value".to_vec()));
        assert_eq!(entries[1].1, b"xy");
        assert_eq!(entries[2].0.name, b"gnu/long/name");
        // Extension records never leak into the next-but-one entry.
        assert!(entries[2].0.xattrs.is_empty());
    }

    #[test]
    fn base256_numbers_and_prefix() {
        let mut h = header(b"name", b'0', 0);
        h[108] = 0x80;
        h[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0xb2, 0xd0, 0x5e, 0x00]);
        h[345..351].copy_from_slice(b"prefix");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let entries = read_all(&h).unwrap();
        assert_eq!(entries[0].0.uid, 3_000_000_000);
        assert_eq!(entries[0].0.name, b"prefix/name");
    }

    #[test]
    fn truncation_is_an_error_never_a_short_file() {
        let data = entry(b"f", b'0', &[7u8; 1000]);
        let err = read_all(&data[..700]).unwrap_err();
        assert!(
            err.to_string().contains("ends inside the content of \"f\""),
            "{err}"
        );
        let err = read_all(&data[..300]).unwrap_err();
        assert!(err.to_string().contains("header"), "{err}");
        let mut data = pax(&[(b"path", b"x")]);
        data.truncate(512 + 100);
        assert!(read_all(&data).is_err());
        let data = pax(&[(b"path", b"x")]);
        assert!(read_all(&data)
            .unwrap_err()
            .to_string()
            .contains("extension"));
    }

    /// An old GNU sparse entry ('S') storing `data` for the map `segments`, `real` bytes long.
    fn old_gnu_sparse(segments: &[(u64, u64)], real: u64, data: &[u8]) -> Vec<u8> {
        let mut h = header(b"s", b'S', data.len() as u64);
        h[257..265].copy_from_slice(b"ustar  \0");
        for (i, (offset, len)) in segments.iter().enumerate() {
            let at = 386 + i * 24;
            h[at..at + 11].copy_from_slice(format!("{offset:011o}").as_bytes());
            h[at + 12..at + 23].copy_from_slice(format!("{len:011o}").as_bytes());
        }
        h[483..494].copy_from_slice(format!("{real:011o}").as_bytes());
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut v = h.to_vec();
        v.extend_from_slice(data);
        v.resize(v.len() + padding_of(data.len() as u64) as usize, 0);
        v
    }

    const EXPANDED: &[u8] = b"\0\0\0\0abc\0\0\0de\0\0\0\0";

    #[test]
    fn old_gnu_sparse_files_are_expanded() {
        let mut data = old_gnu_sparse(&[(4, 3), (10, 2)], 16, b"abcde");
        data.extend(entry(b"next", b'0', b"n"));
        let mut t = TarReader::new(data.as_slice());
        let e = t.next_entry().unwrap().unwrap();
        assert_eq!((e.typeflag, e.size), (b'0', 16));
        let mut content = Vec::new();
        t.content().read_to_end(&mut content).unwrap();
        assert_eq!(content, EXPANDED);
        assert_eq!(t.hole_bytes(), 11);
        // Reading stops at the next entry: the stored data was consumed exactly.
        assert_eq!(t.next_entry().unwrap().unwrap().name, b"next");
    }

    #[test]
    fn pax_sparse_files_are_expanded() {
        // 0.1: the map in one record, the real name in another.
        let mut v01 = pax(&[
            (b"GNU.sparse.map", b"4,3,10,2"),
            (b"GNU.sparse.size", b"16"),
            (b"GNU.sparse.name", b"real"),
        ]);
        v01.extend(entry(b"GNUSparseFile.0/real", b'0', b"abcde"));
        // 0.0: offset/numbytes pairs.
        let mut v00 = pax(&[
            (b"GNU.sparse.size", b"16"),
            (b"GNU.sparse.offset", b"4"),
            (b"GNU.sparse.numbytes", b"3"),
            (b"GNU.sparse.offset", b"10"),
            (b"GNU.sparse.numbytes", b"2"),
        ]);
        v00.extend(entry(b"real", b'0', b"abcde"));
        // 1.0: the map at the start of the data, padded to a block.
        let mut data = b"2\n4\n3\n10\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcde");
        let mut v10 = pax(&[
            (b"GNU.sparse.major", b"1"),
            (b"GNU.sparse.minor", b"0"),
            (b"GNU.sparse.name", b"real"),
            (b"GNU.sparse.realsize", b"16"),
        ]);
        v10.extend(entry(b"GNUSparseFile.0/real", b'0', &data));
        for (version, tar) in [("0.1", v01), ("0.0", v00), ("1.0", v10)] {
            let entries = read_all(&tar).unwrap();
            assert_eq!(entries.len(), 1, "{version}");
            assert_eq!(entries[0].0.name, b"real", "{version}");
            assert_eq!(entries[0].0.size, 16, "{version}");
            assert_eq!(entries[0].1, EXPANDED, "{version}");
        }
    }

    #[test]
    fn inconsistent_sparse_maps_are_refused() {
        for (segments, real, data) in [
            (&[(4u64, 3u64), (5, 2)][..], 16, &b"abcde"[..]),
            (&[(4, 3), (10, 2)], 11, b"abcde"),
            (&[(4, 3)], 16, b"abcde"),
        ] {
            let err = read_all(&old_gnu_sparse(segments, real, data)).unwrap_err();
            assert!(err.to_string().contains("sparse file \"s\""), "{err}");
        }
        let mut unknown = pax(&[(b"GNU.sparse.frobnicate", b"1")]);
        unknown.extend(entry(b"f", b'0', b""));
        assert!(read_all(&unknown)
            .unwrap_err()
            .to_string()
            .contains("GNU.sparse.frobnicate"));
    }

    #[test]
    fn oversized_extensions_and_corrupt_headers_are_refused() {
        let big = header(b"PaxHeader", b'x', MAX_PAX_SIZE + 1);
        let err = read_all(&big).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        let mut bad = entry(b"f", b'0', b"");
        bad[0] ^= 1;
        assert!(read_all(&bad).unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn end_without_zero_blocks_is_a_clean_end() {
        let data = entry(b"f", b'0', b"abc");
        assert_eq!(read_all(&data).unwrap().len(), 1);
    }
}
