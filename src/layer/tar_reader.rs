//! A streaming reader for layer tars, with the ceilings a hostile layer needs.
//!
//! Layers are read with our own parser rather than the `tar` crate because the crate reads
//! PAX and GNU long-name records into memory whatever their size, and silently returns a
//! short file when the stream ends inside an entry. Here every extension record has a size
//! limit, a stream that ends inside a header or an entry's content is an error naming the
//! entry, and nothing is ever turned into a host path.
//!
//! Formats: POSIX ustar and pax (local records; global ones are read and ignored), GNU
//! (`L`/`K` long names, base-256 numbers), old v7. GNU sparse files (old GNU type `S` and the
//! PAX forms 0.0, 0.1 and 1.0) are expanded: the entry's size is its real size and its
//! content has the holes filled with zeros, as GNU tar and the `tar` crate extract them. The
//! zeros a layer synthesises this way are counted ([`TarReader::hole_bytes`]) so that the
//! expansion limit covers them too.

use crate::limits::{MAX_PATH_LEN, MAX_PAX_SIZE};
use std::io::{self, Read};

const BLOCK: usize = 512;

/// Data segments one sparse file may list. GNU tar's own maps stay far below this; the cap
/// only keeps a hostile map from holding memory.
const MAX_SPARSE_SEGMENTS: usize = 1 << 16;

/// One entry as the tar stream states it, extension records already applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// The PAX `mtime` text when it has a fractional part.
    pub mtime_exact: Option<String>,
    /// Bytes of content that follow the header.
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct TarReader<R: Read> {
    inner: R,
    /// Content of the current entry not yet read, and the padding after it.
    remaining: u64,
    padding: u64,
    /// Name of the current entry, for "ends early" messages.
    current: Vec<u8>,
    done: bool,
    /// Set while the current entry is a sparse file being expanded.
    sparse: Option<Sparse>,
    /// Zeros synthesised for holes, over all entries so far.
    hole_bytes: u64,
}

/// A sparse file's data segments (offset, length) not yet passed, in file order, and the
/// position reached in its expanded content.
struct Sparse {
    segments: std::collections::VecDeque<(u64, u64)>,
    pos: u64,
    real_size: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn show(name: &[u8]) -> String {
    super::entry::display_name(name)
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

/// A numeric field: octal (NUL/space padded, blank = 0) or GNU base-256.
pub(crate) fn number(field: &[u8], what: &str) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] == 0xff {
            return Err(invalid(format!("negative {what} in tar header")));
        }
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(*b as u64))
                .ok_or_else(|| invalid(format!("{what} in tar header overflows")))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == 0)
        .take_while(|b| *b != b' ' && *b != 0)
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| invalid(format!("bad {what} in tar header")))?;
    u64::from_str_radix(s, 8).map_err(|_| invalid(format!("bad {what} {s:?} in tar header")))
}

pub(crate) fn field_bytes(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

pub(crate) fn checksum_ok(h: &[u8; BLOCK]) -> io::Result<bool> {
    let stored = number(&h[148..156], "checksum")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += b as u64;
        signed += (b as i8) as i64;
    }
    Ok(stored == unsigned || stored as i64 == signed)
}

/// Decodes `LIBARCHIVE.xattr.*` names (percent-encoded) and values (base64).
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&s[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// libarchive writes xattr values in base64 with or without padding; both are read.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let compact: Vec<u8> = s
        .iter()
        .copied()
        .filter(|c| !matches!(c, b'\n' | b'\r'))
        .collect();
    LENIENT.decode(compact).ok()
}

#[derive(Default)]
struct Extensions {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, Option<String>)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: SparseRecords,
}

/// The `GNU.sparse.*` PAX records of one entry.
#[derive(Default)]
struct SparseRecords {
    /// Any record seen: the entry is sparse.
    any: bool,
    /// 1.0 keeps the map at the start of the data; 0.x in the records.
    major: Option<u64>,
    name: Option<Vec<u8>>,
    real_size: Option<u64>,
    /// 0.0 (`offset`/`numbytes` pairs) and 0.1 (`map`) both end up here, flattened.
    map: Vec<u64>,
}

/// The `LEN KEY=VALUE\n` records of a PAX extended header, as (key, value) pairs. Trailing
/// NUL padding ends them. The outer-archive index (`source::store`) reads the same framing.
pub(crate) fn pax_records(data: &[u8]) -> io::Result<Vec<(&[u8], &[u8])>> {
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| invalid("malformed PAX record (no length)".into()))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("malformed PAX record length".into()))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(invalid(
                "malformed PAX record (bad length or missing newline)".into(),
            ));
        }
        let record = &rest[space + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| invalid("malformed PAX record (no '=')".into()))?;
        records.push((&record[..eq], &record[eq + 1..]));
    }
    Ok(records)
}

fn parse_pax(data: &[u8], ext: &mut Extensions) -> io::Result<()> {
    for (key, value) in pax_records(data)? {
        let num = |what: &str| -> io::Result<u64> {
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "bad PAX {what} {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })
        };
        match key {
            b"path" => ext.path = Some(value.to_vec()),
            b"linkpath" => ext.link = Some(value.to_vec()),
            b"size" => ext.size = Some(num("size")?),
            b"uid" => ext.uid = Some(num("uid")?),
            b"gid" => ext.gid = Some(num("gid")?),
            b"mtime" => {
                let text = String::from_utf8_lossy(value).into_owned();
                let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
                let secs: i64 = whole
                    .parse()
                    .map_err(|_| invalid(format!("bad PAX mtime {text:?}")))?;
                let exact =
                    (!frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())).then_some(text);
                ext.mtime = Some((secs, exact));
            }
            k if k.starts_with(b"SCHILY.xattr.") => {
                ext.xattrs.push((k[13..].to_vec(), value.to_vec()));
            }
            k if k.starts_with(b"LIBARCHIVE.xattr.") => {
                let value = base64_decode(value)
                    .ok_or_else(|| invalid("bad base64 in a LIBARCHIVE.xattr record".into()))?;
                ext.xattrs.push((percent_decode(&k[17..]), value));
            }
            k if k.starts_with(b"GNU.sparse.") => {
                let sparse = &mut ext.sparse;
                sparse.any = true;
                match &k[11..] {
                    b"major" => sparse.major = Some(num("GNU.sparse.major")?),
                    b"minor" | b"numblocks" => {}
                    b"name" => sparse.name = Some(value.to_vec()),
                    b"size" | b"realsize" => sparse.real_size = Some(num("GNU.sparse.size")?),
                    b"offset" | b"numbytes" => sparse.map.push(num("GNU.sparse.offset")?),
                    b"map" => {
                        for n in value.split(|b| *b == b',').filter(|n| !n.is_empty()) {
                            let n = std::str::from_utf8(n)
                                .ok()
                                .and_then(|n| n.parse().ok())
                                .ok_or_else(|| invalid("bad GNU.sparse.map record".into()))?;
                            sparse.map.push(n);
                        }
                    }
                    other => {
                        return Err(invalid(format!(
                            "unknown sparse-file record GNU.sparse.{}",
                            String::from_utf8_lossy(other)
                        )))
                    }
                }
                if sparse.map.len() > 2 * MAX_SPARSE_SEGMENTS {
                    return Err(invalid(format!(
                        "a sparse file lists more than {MAX_SPARSE_SEGMENTS} data segments"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
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

    /// Zeros that sparse files' holes add to the layer's content, over all entries so far.
    pub fn hole_bytes(&self) -> u64 {
        self.hole_bytes
    }

    /// An old GNU sparse header's map: four entries in the header, then 21 per extension
    /// block for as long as each block says another follows.
    fn old_gnu_sparse_map(&mut self, h: &[u8; BLOCK]) -> io::Result<Vec<u64>> {
        let mut map = Vec::new();
        let push = |field: &[u8], map: &mut Vec<u64>| -> io::Result<()> {
            for pair in field.chunks_exact(24) {
                if pair.iter().all(|b| *b == 0) {
                    continue;
                }
                map.push(number(&pair[..12], "sparse offset")?);
                map.push(number(&pair[12..], "sparse length")?);
            }
            Ok(())
        };
        push(&h[386..482], &mut map)?;
        let mut extended = h[482] != 0;
        while extended {
            let mut block = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut block)? {
                return Err(invalid(
                    "the tar stream ends inside a sparse map (truncated layer)".into(),
                ));
            }
            push(&block[..504], &mut map)?;
            extended = block[504] != 0;
            if map.len() > 2 * MAX_SPARSE_SEGMENTS {
                return Err(invalid(format!(
                    "a sparse file lists more than {MAX_SPARSE_SEGMENTS} data segments"
                )));
            }
        }
        Ok(map)
    }

    /// A PAX 1.0 sparse map, at the start of the entry's data: decimal numbers, one per
    /// line (the count, then offset and length pairs), padded to a block. Returns the map
    /// and the bytes it took.
    fn pax1_sparse_map(&mut self, size: u64) -> io::Result<(Vec<u64>, u64)> {
        let mut numbers: Vec<u64> = Vec::new();
        let mut digits: Vec<u8> = Vec::new();
        let mut consumed = 0u64;
        let mut wanted: Option<usize> = None;
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
            for &b in block.iter() {
                if wanted.is_some_and(|w| numbers.len() == w) {
                    break;
                }
                match b {
                    b'0'..=b'9' if digits.len() < 20 => digits.push(b),
                    b'\n' if !digits.is_empty() => {
                        let n: u64 = std::str::from_utf8(&digits)
                            .ok()
                            .and_then(|d| d.parse().ok())
                            .ok_or_else(|| invalid("bad number in a sparse map".into()))?;
                        digits.clear();
                        if wanted.is_none() {
                            if n as usize > MAX_SPARSE_SEGMENTS {
                                return Err(invalid(format!(
                                    "a sparse file lists more than {MAX_SPARSE_SEGMENTS} data segments"
                                )));
                            }
                            wanted = Some(n as usize * 2);
                        } else {
                            numbers.push(n);
                        }
                    }
                    _ => return Err(invalid("malformed sparse map".into())),
                }
            }
            if wanted.is_some_and(|w| numbers.len() == w) {
                return Ok((numbers, consumed));
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
                        show(&self.current)
                    )))
                }
                Ok(k) => n -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads an extension record's content, refusing more than `limit` bytes.
    fn read_extension(&mut self, size: u64, limit: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > limit {
            return Err(invalid(format!(
                "{what} of {size} bytes exceeds the {limit}-byte limit"
            )));
        }
        let mut data = vec![0u8; size as usize];
        self.inner.read_exact(&mut data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid(format!(
                    "the tar stream ends inside a {what} (truncated layer)"
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
        let mut pending_extension = false;
        loop {
            let mut h = [0u8; BLOCK];
            if !read_block(&mut self.inner, &mut h)? {
                if pending_extension {
                    return Err(invalid(
                        "the tar stream ends after an extension header (truncated layer)".into(),
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            if h.iter().all(|b| *b == 0) {
                if pending_extension {
                    return Err(invalid(
                        "an extension header is followed by the end of the archive".into(),
                    ));
                }
                self.done = true;
                return Ok(None);
            }
            if !checksum_ok(&h)? {
                return Err(invalid(
                    "tar header checksum mismatch (corrupt layer)".into(),
                ));
            }
            let typeflag = h[156];
            let size = number(&h[124..136], "size")?;
            match typeflag {
                b'x' => {
                    let data = self.read_extension(size, MAX_PAX_SIZE, "PAX header")?;
                    parse_pax(&data, &mut ext)?;
                    pending_extension = true;
                    continue;
                }
                b'g' => {
                    // Global records would apply to every later entry; layer writers do not
                    // use them for anything that matters here, so read and drop them.
                    self.read_extension(size, MAX_PAX_SIZE, "global PAX header")?;
                    continue;
                }
                b'L' => {
                    let data =
                        self.read_extension(size, MAX_PATH_LEN as u64 * 2 + 1, "GNU long name")?;
                    ext.path = Some(field_bytes(&data).to_vec());
                    pending_extension = true;
                    continue;
                }
                b'K' => {
                    let data = self.read_extension(
                        size,
                        MAX_PATH_LEN as u64 * 2 + 1,
                        "GNU long link name",
                    )?;
                    ext.link = Some(field_bytes(&data).to_vec());
                    pending_extension = true;
                    continue;
                }
                _ => {}
            }
            let ustar = &h[257..263] == b"ustar\0";
            let name = match ext.path.take() {
                Some(p) => p,
                None => {
                    let base = field_bytes(&h[..100]);
                    let prefix = if ustar {
                        field_bytes(&h[345..500])
                    } else {
                        b""
                    };
                    if prefix.is_empty() {
                        base.to_vec()
                    } else {
                        [prefix, b"/", base].concat()
                    }
                }
            };
            let mut name = name;
            let mut typeflag = typeflag;
            let sparse_records = std::mem::take(&mut ext.sparse);
            let mut sparse_map: Option<(Vec<u64>, u64)> = None;
            if typeflag == b'S' {
                let real_size = number(&h[483..495], "sparse real size")?;
                sparse_map = Some((self.old_gnu_sparse_map(&h)?, real_size));
                typeflag = b'0';
            } else if sparse_records.any && matches!(typeflag, b'0' | 0 | b'7') {
                if let Some(real) = sparse_records.name {
                    name = real;
                }
                let real_size = sparse_records.real_size.ok_or_else(|| {
                    invalid(format!("sparse file {:?} has no real size", show(&name)))
                })?;
                sparse_map = Some((sparse_records.map, real_size));
            }
            let link = ext
                .link
                .take()
                .unwrap_or_else(|| field_bytes(&h[157..257]).to_vec());
            let (mtime, mtime_exact) = match ext.mtime.take() {
                Some(m) => m,
                None => (number(&h[136..148], "mtime")? as i64, None),
            };
            let mut size = ext.size.unwrap_or(size);
            // No real entry comes near 2^63 bytes; a size whose padding overflows would
            // otherwise wrap the skip and let the next "entry" start inside this one's content.
            if size > i64::MAX as u64 {
                return Err(invalid(format!(
                    "{:?} claims an impossible size of {size} bytes",
                    show(&name)
                )));
            }
            // Only regular files (and old-style ones) carry content; a size on a link or a
            // directory is skipped as tar does.
            let entry = RawEntry {
                link,
                typeflag,
                mode: (number(&h[100..108], "mode")? & 0o7777) as u32,
                uid: match ext.uid {
                    Some(u) => u,
                    None => number(&h[108..116], "uid")?,
                },
                gid: match ext.gid {
                    Some(g) => g,
                    None => number(&h[116..124], "gid")?,
                },
                mtime,
                mtime_exact,
                size,
                dev_major: if ustar || &h[257..265] == b"ustar  \0" {
                    number(&h[329..337], "devmajor")? as u32
                } else {
                    0
                },
                dev_minor: if ustar || &h[257..265] == b"ustar  \0" {
                    number(&h[337..345], "devminor")? as u32
                } else {
                    0
                },
                xattrs: std::mem::take(&mut ext.xattrs),
                name,
            };
            // Hardlinks, symlinks, devices, FIFOs and directories have no content in any
            // writer we know of; tar readers still skip what the size says.
            self.remaining = size;
            self.padding = padding_of(size);
            self.current = entry.name.clone();
            self.sparse = None;
            let mut entry = entry;
            if let Some((mut map, real_size)) = sparse_map {
                if sparse_records.major == Some(1) {
                    let (in_data, consumed) = self.pax1_sparse_map(size)?;
                    map = in_data;
                    size -= consumed;
                    self.remaining = size;
                }
                self.sparse = Some(sparse_segments(&entry.name, &map, size, real_size)?);
                self.hole_bytes = self.hole_bytes.saturating_add(real_size - size);
                entry.size = real_size;
                entry.typeflag = typeflag;
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

/// Checks a sparse map against the stored and real sizes: segments in order, not
/// overlapping, inside the file, their lengths adding up to the stored data.
fn sparse_segments(name: &[u8], map: &[u64], stored: u64, real_size: u64) -> io::Result<Sparse> {
    let bad = |why: &str| invalid(format!("sparse file {:?}: {why}", show(name)));
    if map.len() % 2 != 0 {
        return Err(bad("its map has an offset without a length"));
    }
    if real_size > i64::MAX as u64 {
        return Err(bad("it claims an impossible size"));
    }
    let mut segments = std::collections::VecDeque::new();
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
    Ok(Sparse {
        segments,
        pos: 0,
        real_size,
    })
}

fn padding_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
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
            let pos = sparse.pos;
            let zeros = match sparse.segments.front() {
                Some(&(offset, len)) if offset <= pos => {
                    want = want.min((offset + len - pos) as usize);
                    0
                }
                Some(&(offset, _)) => offset - pos,
                None => sparse.real_size - pos,
            };
            if zeros > 0 {
                let n = (buf.len() as u64).min(zeros) as usize;
                buf[..n].fill(0);
                sparse.pos += n as u64;
                return Ok(n);
            }
            if sparse.segments.is_empty() {
                return Ok(0);
            }
        }
        if want == 0 {
            return Ok(0);
        }
        let n = self.tar.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid(format!(
                "the tar stream ends inside the content of {:?} (truncated layer)",
                show(&self.tar.current)
            )));
        }
        self.tar.remaining -= n as u64;
        if let Some(sparse) = &mut self.tar.sparse {
            sparse.pos += n as u64;
            if let Some(&(offset, len)) = sparse.segments.front() {
                if sparse.pos == offset + len {
                    sparse.segments.pop_front();
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn base64_and_percent() {
        assert_eq!(base64_decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(percent_decode(b"a%2Fb%zz"), b"a/b%zz");
    }
}
