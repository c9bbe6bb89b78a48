//! GNU sparse files: the maps that say where a file's stored data lies and where its holes
//! are, in all three places GNU tar puts them (the old `S` header and its extension blocks,
//! PAX 0.0/0.1 records, and the PAX 1.0 map at the start of the data), and the expansion
//! that fills the holes with zeros, as GNU tar and the `tar` crate extract them.

use super::display_name;
use super::header::{number, Header, BLOCK, GNU_IS_EXTENDED, GNU_SPARSE};
use super::{invalid, pax_decimal};
use std::collections::VecDeque;
use std::io;

/// Data segments one sparse file may list. GNU tar's own maps stay far below this; the cap
/// only keeps a hostile map from holding memory.
pub const MAX_SPARSE_SEGMENTS: usize = 1 << 16;

fn too_many() -> io::Error {
    invalid(format!(
        "a sparse file lists more than {MAX_SPARSE_SEGMENTS} data segments"
    ))
}

/// The `GNU.sparse.*` PAX records of one entry.
#[derive(Default)]
pub(super) struct SparseRecords {
    /// Any record seen: the entry is sparse.
    any: bool,
    /// 1.0 keeps the map at the start of the data; 0.x in the records.
    major: Option<u64>,
    name: Option<Vec<u8>>,
    real_size: Option<u64>,
    /// 0.0 (`offset`/`numbytes` pairs) and 0.1 (`map`) both end up here, flattened.
    map: Vec<u64>,
}

impl SparseRecords {
    /// One record; `key` is what follows `GNU.sparse.`.
    pub(super) fn add(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let num = |what: &str| pax_decimal(what, value);
        self.any = true;
        match key {
            b"major" => self.major = Some(num("GNU.sparse.major")?),
            b"minor" | b"numblocks" => {}
            b"name" => self.name = Some(value.to_vec()),
            b"size" | b"realsize" => self.real_size = Some(num("GNU.sparse.size")?),
            b"offset" | b"numbytes" => self.map.push(num("GNU.sparse.offset")?),
            b"map" => {
                for n in value.split(|b| *b == b',').filter(|n| !n.is_empty()) {
                    let n = std::str::from_utf8(n)
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| invalid("bad GNU.sparse.map record".into()))?;
                    self.map.push(n);
                }
            }
            other => {
                return Err(invalid(format!(
                    "unknown sparse-file record GNU.sparse.{}",
                    String::from_utf8_lossy(other)
                )))
            }
        }
        if self.map.len() > 2 * MAX_SPARSE_SEGMENTS {
            return Err(too_many());
        }
        Ok(())
    }
}

/// Where the rest of a sparse file's map is, beyond what its header and records held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRest {
    Complete,
    /// Old GNU: more pairs in extension blocks after the header ([`gnu_extension_block`]).
    GnuExtensionBlocks,
    /// PAX 1.0: the whole map at the start of the data ([`Pax1Map`]).
    InData,
}

/// A sparse entry as its header and records describe it.
#[derive(Debug)]
pub struct SparseStart {
    pub real_size: u64,
    /// Offset and length, flattened.
    pub map: Vec<u64>,
    pub rest: MapRest,
}

/// Whether the entry about to be returned is sparse, and what of its map is known. `name`
/// and `typeflag` are the entry's as decoded so far; a PAX `GNU.sparse.name` replaces the
/// placeholder name, and an old `S` entry becomes a regular file.
pub(super) fn start(
    header: &Header,
    records: SparseRecords,
    name: &mut Vec<u8>,
    typeflag: &mut u8,
) -> io::Result<Option<SparseStart>> {
    if *typeflag == b'S' {
        let real_size = header.gnu_sparse_real_size()?;
        let mut map = Vec::new();
        gnu_pairs(&header.raw()[GNU_SPARSE], &mut map)?;
        *typeflag = b'0';
        return Ok(Some(SparseStart {
            real_size,
            map,
            rest: if header.raw()[GNU_IS_EXTENDED] != 0 {
                MapRest::GnuExtensionBlocks
            } else {
                MapRest::Complete
            },
        }));
    }
    if !records.any || !matches!(*typeflag, b'0' | 0 | b'7') {
        return Ok(None);
    }
    if let Some(real) = records.name {
        *name = real;
    }
    let real_size = records.real_size.ok_or_else(|| {
        invalid(format!(
            "sparse file {:?} has no real size",
            display_name(name)
        ))
    })?;
    Ok(Some(SparseStart {
        real_size,
        map: records.map,
        rest: if records.major == Some(1) {
            MapRest::InData
        } else {
            MapRest::Complete
        },
    }))
}

/// The (offset, length) pairs of an old GNU map area, 24 bytes each; empty pairs are unused.
fn gnu_pairs(field: &[u8], map: &mut Vec<u64>) -> io::Result<()> {
    for pair in field.chunks_exact(24) {
        if pair.iter().all(|b| *b == 0) {
            continue;
        }
        map.push(number(&pair[..12], "sparse offset")?);
        map.push(number(&pair[12..], "sparse length")?);
    }
    if map.len() > 2 * MAX_SPARSE_SEGMENTS {
        return Err(too_many());
    }
    Ok(())
}

/// One old GNU extension block: 21 more pairs; returns whether another block follows.
pub fn gnu_extension_block(block: &[u8; BLOCK], map: &mut Vec<u64>) -> io::Result<bool> {
    gnu_pairs(&block[..504], map)?;
    Ok(block[504] != 0)
}

/// A PAX 1.0 sparse map, read block by block: decimal numbers, one per line (the count,
/// then offset and length pairs), padded to a block.
#[derive(Default)]
pub struct Pax1Map {
    numbers: Vec<u64>,
    digits: Vec<u8>,
    wanted: Option<usize>,
}

impl Pax1Map {
    /// Takes the next block of the data; returns the map once it is complete.
    pub fn feed(&mut self, block: &[u8; BLOCK]) -> io::Result<Option<Vec<u64>>> {
        for &b in block.iter() {
            if self.wanted.is_some_and(|w| self.numbers.len() == w) {
                break;
            }
            match b {
                b'0'..=b'9' if self.digits.len() < 20 => self.digits.push(b),
                b'\n' if !self.digits.is_empty() => {
                    let n: u64 = std::str::from_utf8(&self.digits)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .ok_or_else(|| invalid("bad number in a sparse map".into()))?;
                    self.digits.clear();
                    if self.wanted.is_none() {
                        if n as usize > MAX_SPARSE_SEGMENTS {
                            return Err(too_many());
                        }
                        self.wanted = Some(n as usize * 2);
                    } else {
                        self.numbers.push(n);
                    }
                }
                _ => return Err(invalid("malformed sparse map".into())),
            }
        }
        if self.wanted.is_some_and(|w| self.numbers.len() == w) {
            return Ok(Some(std::mem::take(&mut self.numbers)));
        }
        Ok(None)
    }
}

/// What comes next in a sparse file's expanded content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// This many zeros of a hole.
    Zeros(u64),
    /// Up to this many bytes of stored data.
    Data(u64),
    End,
}

/// A sparse file's data segments not yet passed, in file order, and the position reached
/// in its expanded content.
#[derive(Debug)]
pub struct Segments {
    segments: VecDeque<(u64, u64)>,
    pos: u64,
    real_size: u64,
}

impl Segments {
    /// Checks a map against the stored and real sizes: segments in order, not overlapping,
    /// inside the file, their lengths adding up to the stored data. `name` is for messages.
    pub fn new(name: &[u8], map: &[u64], stored: u64, real_size: u64) -> io::Result<Segments> {
        let bad = |why: &str| invalid(format!("sparse file {:?}: {why}", display_name(name)));
        if map.len() % 2 != 0 {
            return Err(bad("its map has an offset without a length"));
        }
        if real_size > i64::MAX as u64 {
            return Err(bad("it claims an impossible size"));
        }
        let mut segments = VecDeque::new();
        let mut end = 0u64;
        let mut total = 0u64;
        for pair in map.chunks_exact(2) {
            let (offset, len) = (pair[0], pair[1]);
            let seg_end = offset
                .checked_add(len)
                .filter(|e| *e <= real_size)
                .ok_or_else(|| bad("a data segment lies beyond its size"))?;
            if offset < end {
                return Err(bad("its data segments overlap or are out of order"));
            }
            end = seg_end;
            total += len;
            if len > 0 {
                segments.push_back((offset, len));
            }
        }
        if total != stored {
            return Err(bad(&format!(
                "its map lists {total} bytes of data but the entry stores {stored}"
            )));
        }
        Ok(Segments {
            segments,
            pos: 0,
            real_size,
        })
    }

    pub fn step(&self) -> Step {
        match self.segments.front() {
            Some(&(offset, len)) if offset <= self.pos => Step::Data(offset + len - self.pos),
            Some(&(offset, _)) => Step::Zeros(offset - self.pos),
            None if self.pos < self.real_size => Step::Zeros(self.real_size - self.pos),
            None => Step::End,
        }
    }

    /// Moves past `n` bytes of what [`Segments::step`] said comes next.
    pub fn advance(&mut self, n: u64) {
        self.pos += n;
        if let Some(&(offset, len)) = self.segments.front() {
            if self.pos == offset + len {
                self.segments.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(map: &[u64], stored: &[u8], real: u64) -> Vec<u8> {
        let mut s = Segments::new(b"f", map, stored.len() as u64, real).unwrap();
        let mut out = Vec::new();
        let mut data = stored;
        loop {
            match s.step() {
                Step::Zeros(n) => {
                    out.resize(out.len() + n as usize, 0);
                    s.advance(n);
                }
                Step::Data(n) => {
                    out.extend_from_slice(&data[..n as usize]);
                    data = &data[n as usize..];
                    s.advance(n);
                }
                Step::End => return out,
            }
        }
    }

    #[test]
    fn segments_expand_to_holes_and_data() {
        assert_eq!(
            expand(&[4, 3, 10, 2], b"abcde", 16),
            b"\0\0\0\0abc\0\0\0de\0\0\0\0"
        );
        assert_eq!(expand(&[0, 2, 2, 0], b"ab", 2), b"ab");
        assert_eq!(expand(&[], b"", 3), b"\0\0\0");
    }

    #[test]
    fn pax1_maps_span_blocks() {
        // 2000 numbers over 12 blocks, some cut in two by a block boundary.
        let mut text = b"1000\n".to_vec();
        for _ in 0..2000 {
            text.extend_from_slice(b"12\n");
        }
        text.resize(text.len().div_ceil(BLOCK) * BLOCK, 0);
        let mut map = Pax1Map::default();
        let blocks: Vec<&[u8]> = text.chunks(BLOCK).collect();
        for block in &blocks[..blocks.len() - 1] {
            assert_eq!(map.feed((*block).try_into().unwrap()).unwrap(), None);
        }
        let last = map.feed(blocks[blocks.len() - 1].try_into().unwrap());
        assert_eq!(last.unwrap(), Some(vec![12; 2000]));

        let mut block = [0u8; BLOCK];
        block[..4].copy_from_slice(b"2\n4\n");
        let err = Pax1Map::default().feed(&block).unwrap_err().to_string();
        assert!(err.contains("malformed"), "{err}");
    }

    #[test]
    fn hostile_maps_are_refused() {
        let mut records = SparseRecords::default();
        let err = records.add(b"frobnicate", b"1").unwrap_err().to_string();
        assert!(err.contains("GNU.sparse.frobnicate"), "{err}");
        let mut block = [0u8; BLOCK];
        block[..11].copy_from_slice(format!("{:010}\n", MAX_SPARSE_SEGMENTS + 1).as_bytes());
        assert!(Pax1Map::default().feed(&block).is_err());
        assert!(Segments::new(b"f", &[4], 0, 8).is_err());
        assert!(Segments::new(b"f", &[4, 3, 5, 2], 5, 16).is_err());
    }
}
