//! A raw tar encoder for layers.
//!
//! Every header is written byte by byte (name/prefix split, octal fields, checksum), so an
//! entry may carry any name at all: `../x`, `/etc/x`, non-UTF-8 bytes, a backslash, names
//! longer than 255 bytes (PAX `path` or a GNU `././@LongLink` record), whiteouts and opaque
//! markers. Nothing here goes through `tar::Builder` or the host's path type.
//!
//! ```ignore
//! let entries = vec![
//!     dir("etc"),
//!     file("etc/passwd", "root:x:0:0::/root:/bin/sh\n").mode(0o644),
//!     symlink("bin", "usr/bin"),
//!     hardlink("etc/passwd-", "etc/passwd"),
//!     whiteout("var/cache"),
//!     file(b"caf\xe9".as_slice(), "latin-1 name").owner(3_000_000, 3_000_000),
//! ];
//! let tar_bytes = encode_tar(&entries);
//! ```

/// What an entry is. Names and link targets are bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    /// A hard link naming another path (in this layer or a lower one).
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// Any other type flag, written as given with this content: a bare GNU `L` record, a
    /// type the product must refuse.
    Other(u8, Vec<u8>),
}

/// How a name or link target longer than the ustar fields is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongNames {
    /// PAX extended header records `path` / `linkpath` (the default).
    Pax,
    /// GNU `././@LongLink` records, type `L` (name) and `K` (link target).
    Gnu,
}

/// How a uid/gid larger than the octal field (0o7777777 = 2097151) is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BigIds {
    /// PAX `uid` / `gid` records (the default).
    Pax,
    /// GNU base-256: the field's first byte has its high bit set, the number follows big endian.
    Base256,
}

/// One tar entry of a layer, as written. Build with [`file`], [`dir`], [`symlink`], … and
/// adjust with the builder methods.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Extended attributes, written as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Extra PAX records written verbatim (key, value), after the ones derived above.
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
    pub long_names: LongNames,
    pub big_ids: BigIds,
}

/// The mtime every entry gets unless told otherwise (2023-11-14T22:13:20Z).
pub const DEFAULT_MTIME: u64 = 1_700_000_000;

fn entry(name: impl AsRef<[u8]>, kind: Kind, mode: u32) -> Entry {
    Entry {
        name: name.as_ref().to_vec(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: DEFAULT_MTIME,
        uname: Vec::new(),
        gname: Vec::new(),
        xattrs: Vec::new(),
        pax: Vec::new(),
        long_names: LongNames::Pax,
        big_ids: BigIds::Pax,
    }
}

/// A regular file, mode 0644.
pub fn file(name: impl AsRef<[u8]>, content: impl AsRef<[u8]>) -> Entry {
    entry(name, Kind::File(content.as_ref().to_vec()), 0o644)
}

/// A directory, mode 0755. The name is written as given (add a trailing `/` yourself if wanted).
pub fn dir(name: impl AsRef<[u8]>) -> Entry {
    entry(name, Kind::Dir, 0o755)
}

/// A symbolic link, mode 0777, target verbatim.
pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
    entry(name, Kind::Symlink(target.as_ref().to_vec()), 0o777)
}

/// A hard link to `target` (a path of this layer or a lower one), mode 0644.
pub fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Entry {
    entry(name, Kind::Hardlink(target.as_ref().to_vec()), 0o644)
}

/// A character device, mode 0666.
pub fn chardev(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
    entry(name, Kind::Char(major, minor), 0o666)
}

/// A block device, mode 0660.
pub fn blockdev(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Entry {
    entry(name, Kind::Block(major, minor), 0o660)
}

/// A FIFO, mode 0644.
pub fn fifo(name: impl AsRef<[u8]>) -> Entry {
    entry(name, Kind::Fifo, 0o644)
}

/// The whiteout that removes `path` from the layers below: `DIR/.wh.BASE` (an empty file).
pub fn whiteout(path: &str) -> Entry {
    let path = path.trim_end_matches('/');
    let name = match path.rsplit_once('/') {
        Some((d, base)) => format!("{d}/.wh.{base}"),
        None => format!(".wh.{path}"),
    };
    file(name, "")
}

/// The opaque marker of `dir`: `DIR/.wh..wh..opq` (an empty file).
pub fn opaque(dir: &str) -> Entry {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        file(".wh..wh..opq", "")
    } else {
        file(format!("{dir}/.wh..wh..opq"), "")
    }
}

impl Entry {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }
    /// Sets the ustar uname/gname fields (the output must not carry them).
    pub fn names(mut self, uname: &str, gname: &str) -> Self {
        self.uname = uname.as_bytes().to_vec();
        self.gname = gname.as_bytes().to_vec();
        self
    }
    /// Adds an extended attribute (PAX `SCHILY.xattr.NAME`).
    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.xattrs
            .push((name.as_bytes().to_vec(), value.as_ref().to_vec()));
        self
    }
    /// Adds a raw PAX record.
    pub fn pax_record(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.pax
            .push((key.as_bytes().to_vec(), value.as_ref().to_vec()));
        self
    }
    /// Writes a long name / link target with GNU `L`/`K` records instead of PAX.
    pub fn gnu_long_names(mut self) -> Self {
        self.long_names = LongNames::Gnu;
        self
    }
    /// Writes a uid/gid above 2097151 in GNU base-256 instead of PAX.
    pub fn base256_ids(mut self) -> Self {
        self.big_ids = BigIds::Base256;
        self
    }
    /// The content of a regular file (empty for anything else).
    pub fn content(&self) -> &[u8] {
        match &self.kind {
            Kind::File(c) | Kind::Other(_, c) => c,
            _ => &[],
        }
    }
}

// ------------------------------------------------------------------------------ encoding

const MAX_OCTAL_7: u64 = 0o7777777;

/// Writes `value` as zero-padded octal filling the field but its last byte (a NUL).
fn put_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    assert!(
        s.len() <= width,
        "{value} does not fit an octal field of {width}"
    );
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

/// GNU base-256: high bit of the first byte set, the value big endian in the rest.
fn put_base256(field: &mut [u8], value: u64) {
    field.fill(0);
    let n = field.len();
    let bytes = value.to_be_bytes();
    field[n - 8..].copy_from_slice(&bytes);
    field[0] |= 0x80;
}

fn put_id(field: &mut [u8], id: u64, big: BigIds) {
    if id <= MAX_OCTAL_7 {
        put_octal(field, id);
    } else if big == BigIds::Base256 {
        put_base256(field, id);
    } else {
        // The PAX record carries the real value; the header keeps the largest octal one.
        put_octal(field, MAX_OCTAL_7);
    }
}

fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Fills the checksum field of a complete header.
pub fn set_checksum(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// One PAX record: `LEN KEY=VALUE\n`, LEN counting itself.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = 1 + key.len() + 1 + value.len() + 1; // ' ' key '=' value '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Splits `name` into ustar (prefix, name) if it fits: name <= 100 bytes, or prefix <= 155
/// and rest <= 100 split at a `/`.
fn ustar_split(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    if name.len() > 256 {
        return None;
    }
    // Try each '/' as the split point, the first one that fits both fields.
    (0..name.len())
        .filter(|&i| name[i] == b'/')
        .find(|&i| i <= 155 && name.len() - i - 1 <= 100 && i > 0)
        .map(|i| (&name[..i], &name[i + 1..]))
}

struct HeaderFields<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &'a [u8],
    uname: &'a [u8],
    gname: &'a [u8],
    dev: (u32, u32),
    big_ids: BigIds,
    gnu_magic: bool,
}

fn header(f: &HeaderFields) -> [u8; 512] {
    let mut h = [0u8; 512];
    put_bytes(&mut h[0..100], f.name);
    put_octal(&mut h[100..108], u64::from(f.mode));
    put_id(&mut h[108..116], f.uid, f.big_ids);
    put_id(&mut h[116..124], f.gid, f.big_ids);
    put_octal(&mut h[124..136], f.size);
    put_octal(&mut h[136..148], f.mtime);
    h[156] = f.typeflag;
    put_bytes(&mut h[157..257], f.link);
    if f.gnu_magic {
        h[257..265].copy_from_slice(b"ustar  \0");
    } else {
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
    }
    put_bytes(&mut h[265..297], f.uname);
    put_bytes(&mut h[297..329], f.gname);
    put_octal(&mut h[329..337], u64::from(f.dev.0));
    put_octal(&mut h[337..345], u64::from(f.dev.1));
    if !f.gnu_magic {
        put_bytes(&mut h[345..500], f.prefix);
    }
    set_checksum(&mut h);
    h
}

fn pad_to_block(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// A whole extension member (PAX `x` or GNU `L`/`K`) with its data.
fn extension_member(out: &mut Vec<u8>, name: &[u8], typeflag: u8, data: &[u8], gnu: bool) {
    let h = header(&HeaderFields {
        name,
        prefix: b"",
        typeflag,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: data.len() as u64,
        mtime: 0,
        link: b"",
        uname: b"",
        gname: b"",
        dev: (0, 0),
        big_ids: BigIds::Pax,
        gnu_magic: gnu,
    });
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    pad_to_block(out);
}

/// Encodes one entry (its extension records, header and content), a multiple of 512 bytes.
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let (typeflag, link, dev): (u8, &[u8], (u32, u32)) = match &e.kind {
        Kind::File(_) => (b'0', b"", (0, 0)),
        Kind::Dir => (b'5', b"", (0, 0)),
        Kind::Symlink(t) => (b'2', t.as_slice(), (0, 0)),
        Kind::Hardlink(t) => (b'1', t.as_slice(), (0, 0)),
        Kind::Char(a, b) => (b'3', b"", (*a, *b)),
        Kind::Block(a, b) => (b'4', b"", (*a, *b)),
        Kind::Fifo => (b'6', b"", (0, 0)),
        Kind::Other(flag, _) => (*flag, b"", (0, 0)),
    };
    let content = e.content();
    let gnu = e.long_names == LongNames::Gnu;
    let mut out = Vec::new();

    let split = if gnu {
        if e.name.len() <= 100 {
            Some((&[][..], e.name.as_slice()))
        } else {
            None
        }
    } else {
        ustar_split(&e.name)
    };
    let link_fits = link.len() <= 100;

    // Extension records first.
    let mut pax = Vec::new();
    if split.is_none() && !gnu {
        pax.extend(pax_record(b"path", &e.name));
    }
    if !link_fits && !gnu {
        pax.extend(pax_record(b"linkpath", link));
    }
    if e.big_ids == BigIds::Pax {
        if e.uid > MAX_OCTAL_7 {
            pax.extend(pax_record(b"uid", e.uid.to_string().as_bytes()));
        }
        if e.gid > MAX_OCTAL_7 {
            pax.extend(pax_record(b"gid", e.gid.to_string().as_bytes()));
        }
    }
    for (k, v) in &e.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(k);
        pax.extend(pax_record(&key, v));
    }
    for (k, v) in &e.pax {
        pax.extend(pax_record(k, v));
    }
    if gnu && !link_fits {
        let mut data = link.to_vec();
        data.push(0);
        extension_member(&mut out, b"././@LongLink", b'K', &data, true);
    }
    if gnu && split.is_none() {
        let mut data = e.name.clone();
        data.push(0);
        extension_member(&mut out, b"././@LongLink", b'L', &data, true);
    }
    if !pax.is_empty() {
        let mut pax_name = b"PaxHeaders/".to_vec();
        let base: &[u8] = e
            .name
            .rsplit(|&b| b == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b"x");
        pax_name.extend_from_slice(&base[..base.len().min(80)]);
        extension_member(&mut out, &pax_name, b'x', &pax, false);
    }

    // Header fields that overflowed carry a truncated copy (readers use the extension).
    let (prefix, name): (&[u8], &[u8]) = match split {
        Some((p, n)) => (p, n),
        None => (b"", &e.name[..e.name.len().min(100)]),
    };
    let h = header(&HeaderFields {
        name,
        prefix,
        typeflag,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: content.len() as u64,
        mtime: e.mtime,
        link: &link[..link.len().min(100)],
        uname: &e.uname,
        gname: &e.gname,
        dev,
        big_ids: e.big_ids,
        gnu_magic: gnu,
    });
    out.extend_from_slice(&h);
    out.extend_from_slice(content);
    pad_to_block(&mut out);
    out
}

/// The end-of-archive marker: two zero blocks.
pub const TAR_TRAILER: [u8; 1024] = [0; 1024];

/// Encodes each entry separately (for splitting a layer across gzip members / zstd frames);
/// the last chunk is the end-of-archive marker.
pub fn encode_chunks(entries: &[Entry]) -> Vec<Vec<u8>> {
    let mut chunks: Vec<Vec<u8>> = entries.iter().map(encode_entry).collect();
    chunks.push(TAR_TRAILER.to_vec());
    chunks
}

/// Encodes a whole tar: the entries then the end-of-archive marker.
pub fn encode_tar(entries: &[Entry]) -> Vec<u8> {
    encode_chunks(entries).concat()
}
