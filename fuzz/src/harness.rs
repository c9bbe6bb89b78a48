//! The fuzz oracle. It is written apart from `src/` ON PURPOSE: an independent
//! implementation of the invariants and of the layer rules catches what an oracle sharing
//! code with the product would hide (both would agree on the same wrong answer). Do not
//! replace its checks with calls into `oci2wsl`, nor with `tests/common/`.
//!
//! What the fuzz targets run, shared with `tests/fuzz_regressions.rs` (which includes this
//! file with `#[path]`), so that a regression test runs an input through exactly the calls
//! and checks of the target that found it. Only crates that oci2wsl itself depends on are
//! used here, for the same reason.
//!
//! Each `run_*` function returns `Err(description)` when a property is broken; a panic inside
//! the library is a finding by itself. The checks are independent of `src/`: the output tar is
//! read with the `tar` crate (`path_bytes`/`link_name_bytes` only), never with oci2wsl's
//! reader, and the structured target compares against a small model of
//! docs/layer-semantics.md written here.

use oci2wsl::layer::{flatten, FlattenOptions};
use oci2wsl::output::tar_writer::TarWriter;
use oci2wsl::reference::Selector;
use oci2wsl::source::docker_archive::DockerArchiveSource;
use oci2wsl::source::layout::LayoutSource;
use oci2wsl::source::memory::MemorySource;
use oci2wsl::source::store::TarStore;
use oci2wsl::source::ImageSource;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};

/// Flattened output kept in memory is capped: a small compressed fuzz input may legitimately
/// expand to a GiB (the decompression-bomb floor), which is no bug but would exhaust memory.
pub const OUTPUT_CAP: usize = 64 << 20;

pub struct Capped(pub Vec<u8>);

impl Write for Capped {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.0.len() + b.len() > OUTPUT_CAP {
            return Err(io::Error::other("fuzz harness: output cap reached"));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

// ---------------------------------------------------------------------------------------
// Output invariants
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Regular,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
}

/// One path of the flattened output, hardlinks resolved to what they share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    /// File content, or symlink target.
    pub data: Vec<u8>,
    pub dev: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct Listing {
    pub nodes: BTreeMap<Vec<u8>, Node>,
    /// Groups of paths that are one inode (a first entry and the hardlinks naming it).
    pub groups: BTreeSet<Vec<Vec<u8>>>,
}

/// `./a//b/` → `a/b`; the root is the empty name. Refuses absolute names and `..`.
fn output_name(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.starts_with(b"/") {
        return Err(format!("absolute name {:?} in the output", show(raw)));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(format!("name {:?} with '..' in the output", show(raw))),
            c => parts.push(c),
        }
    }
    Ok(parts.join(&b'/'))
}

fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(move |(i, _)| &path[..i])
}

/// Reads a flattened tar with the `tar` crate and checks the invariants of
/// docs/layer-semantics.md rules 7-9: each path once, no absolute or `..` names, nothing below
/// a non-directory (anywhere in the tar), every parent present as a directory, every hardlink
/// naming a non-directory written earlier. Returns the tree it describes.
pub fn check_output(bytes: &[u8]) -> Result<Listing, String> {
    let mut archive = tar::Archive::new(bytes);
    let entries = archive
        .entries()
        .map_err(|e| format!("output unreadable: {e}"))?;
    let mut nodes: BTreeMap<Vec<u8>, Node> = BTreeMap::new();
    let mut group_of: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("output unreadable: {e}"))?;
        let raw = entry.path_bytes().into_owned();
        let path = output_name(&raw)?;
        if nodes.contains_key(&path) {
            return Err(format!("{:?} appears twice in the output", show(&path)));
        }
        for a in ancestors(&path) {
            if nodes.get(a).is_some_and(|n| n.kind != Kind::Dir) {
                return Err(format!(
                    "{:?} follows non-directory {:?} in the output",
                    show(&path),
                    show(a)
                ));
            }
        }
        let header = entry.header().clone();
        let mut uid = header.uid().map_err(|e| format!("bad uid: {e}"))?;
        let mut xattrs = Vec::new();
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| format!("bad pax: {e}"))?
        {
            for rec in pax {
                let rec = rec.map_err(|e| format!("bad pax record: {e}"))?;
                let key = rec.key_bytes();
                if key == b"uid" {
                    uid = std::str::from_utf8(rec.value_bytes())
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or("bad PAX uid in the output")?;
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), rec.value_bytes().to_vec()));
                }
            }
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let ty = header.entry_type();
        let kind = match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::Regular,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            tar::EntryType::Link => {
                let target = output_name(&link.unwrap_or_default())?;
                let Some(t) = nodes.get(&target) else {
                    return Err(format!(
                        "hardlink {:?} names {:?}, which the output has not written before",
                        show(&path),
                        show(&target)
                    ));
                };
                if t.kind == Kind::Dir {
                    return Err(format!(
                        "hardlink {:?} names directory {:?}",
                        show(&path),
                        show(&target)
                    ));
                }
                let t = t.clone();
                let g = group_of[&target];
                groups[g].push(path.clone());
                group_of.insert(path.clone(), g);
                nodes.insert(path, t);
                continue;
            }
            other => return Err(format!("unexpected entry type {other:?} in the output")),
        };
        let data = match kind {
            Kind::Regular => {
                let mut c = Vec::new();
                entry
                    .read_to_end(&mut c)
                    .map_err(|e| format!("output content unreadable: {e}"))?;
                c
            }
            Kind::Symlink => link.unwrap_or_default(),
            _ => Vec::new(),
        };
        if kind != Kind::Dir {
            group_of.insert(path.clone(), groups.len());
            groups.push(vec![path.clone()]);
        }
        let dev = match kind {
            Kind::Char | Kind::Block => (
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            ),
            _ => (0, 0),
        };
        xattrs.sort();
        nodes.insert(
            path,
            Node {
                kind,
                mode: header.mode().map_err(|e| format!("bad mode: {e}"))? & 0o7777,
                uid,
                data,
                dev,
                xattrs,
            },
        );
    }
    // Rule 8 and bsdtar's "Can't replace existing directory with non-directory": every
    // ancestor of every path is a directory of this same tar.
    for path in nodes.keys() {
        for a in ancestors(path) {
            match nodes.get(a) {
                Some(n) if n.kind == Kind::Dir => {}
                Some(_) => {
                    return Err(format!(
                        "{:?} lies below non-directory {:?}",
                        show(path),
                        show(a)
                    ))
                }
                None => {
                    return Err(format!(
                        "{:?} has no parent directory {:?} in the output",
                        show(path),
                        show(a)
                    ))
                }
            }
        }
    }
    let groups = groups
        .into_iter()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    Ok(Listing { nodes, groups })
}

/// Errors that no input may cause: the sources here never change between the two passes.
fn check_error(e: &anyhow::Error) -> Result<(), String> {
    let text = format!("{e:#}");
    if text.contains("changed while it was being read") || text.contains("internal") {
        return Err(format!("impossible error: {text}"));
    }
    Ok(())
}

/// Flattens `image` of `source`; `Ok(None)` when flattening fails (with a plausible error).
fn flatten_checked(
    source: &dyn ImageSource,
    jobs: usize,
) -> Result<Option<(Vec<u8>, Listing)>, String> {
    let Ok(image) = source.resolve(&Default::default()) else {
        return Ok(None);
    };
    let mut out = TarWriter::new(Capped(Vec::new()));
    let options = FlattenOptions {
        jobs,
        max_expansion: 100,
        ..Default::default()
    };
    match flatten(source, &image, &mut out, &options, None) {
        Ok(_) => {
            let bytes = out.finish().map_err(|e| format!("finish: {e}"))?.0;
            let listing = check_output(&bytes)?;
            Ok(Some((bytes, listing)))
        }
        Err(e) => {
            check_error(&e)?;
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------

/// 0 none, 1 gzip, 2 gzip in two members (pigz -i), 3 zstd.
pub fn compress(tar: &[u8], how: u8) -> Vec<u8> {
    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("memory");
        e.finish().expect("memory")
    }
    match how % 4 {
        0 => tar.to_vec(),
        1 => gz(tar),
        2 => {
            let cut = (tar.len() / 2) & !511;
            [gz(&tar[..cut]), gz(&tar[cut..])].concat()
        }
        _ => zstd::encode_all(tar, 1).expect("memory"),
    }
}

// ---------------------------------------------------------------------------------------
// Target: flatten_layers (raw bytes)
// ---------------------------------------------------------------------------------------

pub const LAYER_SEPARATOR: &[u8] = b"LAYR";

/// Writes a valid checksum into every 512-byte block that is not all zeros. Mutating a tar
/// header almost always breaks its checksum, and then nothing after the checksum test is
/// ever reached; content blocks get eight changed bytes, which does no harm.
pub fn repair_checksums(tar: &mut [u8]) {
    for block in tar.chunks_exact_mut(512) {
        if block.iter().all(|b| *b == 0) {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| *b as u32).sum();
        block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    }
}

/// `data[0]`: two bits per layer, the compression ([`compress`]); the rest: 1-4 layer tars
/// separated by `LAYR`, whose header checksums are repaired ([`repair_checksums`]).
pub fn run_flatten_layers(data: &[u8]) -> Result<(), String> {
    let Some((&flags, mut rest)) = data.split_first() else {
        return Ok(());
    };
    let mut tars: Vec<&[u8]> = Vec::new();
    while tars.len() < 3 {
        match rest
            .windows(LAYER_SEPARATOR.len())
            .position(|w| w == LAYER_SEPARATOR)
        {
            Some(i) => {
                tars.push(&rest[..i]);
                rest = &rest[i + LAYER_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    tars.push(rest);
    let layers = tars
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut tar = t.to_vec();
            repair_checksums(&mut tar);
            (compress(&tar, flags >> (2 * i)), tar)
        })
        .collect();
    let source = MemorySource::new(layers);
    flatten_checked(&source, 1).map(|_| ())
}

pub fn encode_flatten_layers(tars: &[Vec<u8>], flags: u8) -> Vec<u8> {
    let mut out = vec![flags];
    for (i, t) in tars.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(LAYER_SEPARATOR);
        }
        out.extend_from_slice(t);
    }
    out
}

// ---------------------------------------------------------------------------------------
// A tiny tar encoder, for layers that say exactly what a test wants (and hostile things)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ustar,
    Gnu,
    V7,
}

#[derive(Clone, Debug)]
pub struct TarEntry {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub content: Vec<u8>,
    pub dev: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub format: Format,
    /// Put the name in a PAX `path` record (or a GNU `L` record with `gnu_long`) even if
    /// it fits the header.
    pub pax_path: bool,
    pub gnu_long: bool,
    pub mtime_fraction: bool,
}

impl TarEntry {
    pub fn new(name: &[u8], typeflag: u8) -> TarEntry {
        TarEntry {
            name: name.to_vec(),
            typeflag,
            link: Vec::new(),
            mode: if typeflag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            content: Vec::new(),
            dev: (0, 0),
            xattrs: Vec::new(),
            format: Format::Ustar,
            pax_path: false,
            gnu_long: false,
            mtime_fraction: false,
        }
    }
    pub fn file(name: &str, content: &[u8]) -> TarEntry {
        let mut e = TarEntry::new(name.as_bytes(), b'0');
        e.content = content.to_vec();
        e
    }
    pub fn dir(name: &str) -> TarEntry {
        TarEntry::new(name.as_bytes(), b'5')
    }
    pub fn link(name: &str, typeflag: u8, target: &str) -> TarEntry {
        let mut e = TarEntry::new(name.as_bytes(), typeflag);
        e.link = target.as_bytes().to_vec();
        e
    }
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    let s = &s.as_bytes()[s.len() - w..];
    field[..w].copy_from_slice(s);
    field[w] = 0;
}

fn number(field: &mut [u8], v: u64) {
    if v < 8u64.pow(field.len() as u32 - 1) {
        octal(field, v);
    } else {
        field.fill(0);
        let n = field.len();
        field[n - 8..].copy_from_slice(&v.to_be_bytes());
        field[0] |= 0x80;
    }
}

fn block(name: &[u8], typeflag: u8, size: u64, format: Format) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    number(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = typeflag;
    match format {
        Format::Ustar => {
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
        }
        Format::Gnu => h[257..265].copy_from_slice(b"ustar  \0"),
        Format::V7 => {}
    }
    h
}

fn seal(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

fn push_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    [
        format!("{len} ").as_bytes(),
        key,
        b"=",
        value,
        b"\n".as_slice(),
    ]
    .concat()
}

fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    (0..name.len().min(156))
        .rev()
        .filter(|i| name[*i] == b'/')
        .map(|i| (&name[..i], &name[i + 1..]))
        .find(|(p, n)| p.len() <= 155 && n.len() <= 100 && !n.is_empty() && !p.is_empty())
}

pub fn encode_entry(out: &mut Vec<u8>, e: &TarEntry) {
    let mut pax: Vec<u8> = Vec::new();
    let mut header_name: Vec<u8> = e.name.clone();
    let mut prefix: &[u8] = b"";
    let fits = e.name.len() <= 100;
    if e.gnu_long || (!fits && e.format == Format::Gnu) {
        let mut l = block(b"././@LongLink", b'L', e.name.len() as u64 + 1, Format::Gnu);
        seal(&mut l);
        out.extend_from_slice(&l);
        push_padded(out, &[&e.name[..], b"\0"].concat());
    } else if e.pax_path || (!fits && e.format == Format::V7) {
        pax.extend(pax_record(b"path", &e.name));
    } else if !fits {
        match split_ustar(&e.name) {
            Some((p, n)) => {
                prefix = p;
                header_name = n.to_vec();
            }
            None => pax.extend(pax_record(b"path", &e.name)),
        }
    }
    if e.link.len() > 100 {
        if e.format == Format::Gnu {
            let mut l = block(b"././@LongLink", b'K', e.link.len() as u64 + 1, Format::Gnu);
            seal(&mut l);
            out.extend_from_slice(&l);
            push_padded(out, &[&e.link[..], b"\0"].concat());
        } else {
            pax.extend(pax_record(b"linkpath", &e.link));
        }
    }
    if e.uid > 0o7777777 && e.format != Format::Gnu {
        pax.extend(pax_record(b"uid", e.uid.to_string().as_bytes()));
    }
    if e.mtime_fraction {
        pax.extend(pax_record(b"mtime", b"1700000000.25"));
    }
    for (k, v) in &e.xattrs {
        pax.extend(pax_record(&[b"SCHILY.xattr.", &k[..]].concat(), v));
    }
    if !pax.is_empty() {
        let mut x = block(b"PaxHeaders/x", b'x', pax.len() as u64, Format::Ustar);
        seal(&mut x);
        out.extend_from_slice(&x);
        push_padded(out, &pax);
    }
    let mut h = block(&header_name, e.typeflag, e.content.len() as u64, e.format);
    if !prefix.is_empty() {
        h[345..345 + prefix.len()].copy_from_slice(prefix);
    }
    octal(&mut h[100..108], e.mode as u64);
    number(&mut h[108..116], e.uid);
    let l = e.link.len().min(100);
    h[157..157 + l].copy_from_slice(&e.link[..l]);
    if e.format != Format::V7 {
        octal(&mut h[329..337], e.dev.0 as u64);
        octal(&mut h[337..345], e.dev.1 as u64);
    }
    seal(&mut h);
    out.extend_from_slice(&h);
    push_padded(out, &e.content);
}

pub fn encode_tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        encode_entry(&mut out, e);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

// ---------------------------------------------------------------------------------------
// Target: flatten_structured (layers of entries from a small alphabet, against a model)
// ---------------------------------------------------------------------------------------

/// Paths the structured target builds its entries from (normalised forms). Siblings that
/// sort between `a/…` and the rest (`a-b`, `a0`, `a.b`) catch prefix-range mistakes; long
/// ones take the ustar prefix, PAX and GNU paths; non-UTF-8 and backslashes are names too.
pub const NAMES: [&[u8]; 32] = [
    b"a",
    b"b",
    b"c",
    b"a/b",
    b"a/c",
    b"b/a",
    b"a/b/c",
    b"a/b/d",
    b"c/a",
    b"d",
    b"a/d",
    b"b/c",
    b"a-b",
    b"a0",
    b"a.b",
    b"a/b0",
    b"a/llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
    b"pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp/qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
    b"\xff\xfe",
    b"a/\xe9t\xe9",
    b"sp ace",
    b"back\\slash",
    b"",
    b"e/f/g/h",
    b"e",
    b"e/f",
    b"b/a/c",
    b"c/b",
    b"a/b/c/d",
    b"d/a",
    b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    b"\xff\xfe/x",
];

/// Raw names used as they are: hostile, odd or metadata-only.
pub const WEIRD: [&[u8]; 16] = [
    b"..",
    b"a/../b",
    b"/",
    b".",
    b".wh.",
    b".wh..wh.aufs",
    b".wh..wh.plnk/x",
    b".wh.a/b",
    b"a//b/./c/",
    b"./a/./b",
    b"a/.wh..wh..opq",
    b"a/.wh..",
    b"/../x",
    b".wh..wh..opq/x",
    b"a/b/..",
    b"./",
];

pub const SYMLINK_TARGETS: [&[u8]; 8] = [
    b"a",
    b"../a",
    b"/a/b",
    b"b/c",
    b".",
    b"/etc/../..",
    b"tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt",
    b"\xff",
];

const MODES: [u32; 8] = [0o644, 0o755, 0o4755, 0o700, 0o1777, 0o600, 0o2750, 0o444];
const UIDS: [u64; 2] = [0, 3_000_000_000];

/// One op = 4 bytes `[op, a, b, c]`:
/// - `op & 15`: 0-2, 12 file; 3, 11 dir; 4 symlink (`b` target); 5, 13 hardlink to
///   `NAMES[b]`; 6, 14 whiteout of `NAMES[a]`; 7 opaque marker in `NAMES[a]`; 8 FIFO;
///   9 char device; 10 next layer (`b & 3` its compression); 15 `WEIRD[a]` as a file
///   (or a directory if `b & 1`).
/// - `op >> 4`: bits 0-2 the mode (`MODES`), bit 3 a big uid (needs PAX).
/// - `a`: the name (`NAMES[a % 32]`).
/// - `c`: bit 0 `./` prefix, 1 `/` prefix, 2 directory with trailing `/` / long content,
///   3 PAX path, 4 GNU long name, 5 old style (v7 header, `\0` or `0` type),
///   6 an xattr and a fractional mtime, 7 GNU format.
pub fn decode_structured(data: &[u8]) -> Vec<(u8, Vec<TarEntry>)> {
    let mut layers: Vec<(u8, Vec<TarEntry>)> = vec![(0, Vec::new())];
    for (index, op) in data.chunks_exact(4).take(64).enumerate() {
        let (code, a, b, c) = (op[0] & 15, op[1], op[2], op[3]);
        if code == 10 {
            if layers.len() < 4 {
                layers.push((b & 3, Vec::new()));
            }
            continue;
        }
        let layer = layers.len() - 1;
        let name = NAMES[a as usize % NAMES.len()];
        let (mut raw, typeflag): (Vec<u8>, u8) = match code {
            0..=2 | 12 => (name.to_vec(), b'0'),
            3 | 11 => (name.to_vec(), b'5'),
            4 => (name.to_vec(), b'2'),
            5 | 13 => (name.to_vec(), b'1'),
            6 | 14 => {
                let (dir, base) = match name.iter().rposition(|x| *x == b'/') {
                    Some(i) => (&name[..i + 1], &name[i + 1..]),
                    None => (&b""[..], name),
                };
                ([dir, b".wh.", base].concat(), b'0')
            }
            7 => {
                let sep: &[u8] = if name.is_empty() { b"" } else { b"/" };
                ([name, sep, b".wh..wh..opq"].concat(), b'0')
            }
            8 => (name.to_vec(), b'6'),
            9 => (name.to_vec(), b'3'),
            _ => (
                WEIRD[a as usize % WEIRD.len()].to_vec(),
                if b & 1 == 1 { b'5' } else { b'0' },
            ),
        };
        if c & 1 != 0 {
            raw.splice(0..0, *b"./");
        } else if c & 2 != 0 {
            raw.insert(0, b'/');
        }
        let mut e = TarEntry::new(&raw, typeflag);
        e.mode = MODES[(op[0] >> 4) as usize & 7];
        e.uid = UIDS[(op[0] >> 7) as usize];
        match typeflag {
            b'0' if code != 15 && !(6..=7).contains(&code) && code != 14 => {
                let tag = format!("L{layer}E{index};");
                let len = if c & 4 != 0 {
                    700 + b as usize
                } else {
                    b as usize % 8
                };
                e.content = tag
                    .bytes()
                    .chain((0..len).map(|i| b'a' + (i % 26) as u8))
                    .collect();
            }
            b'5' if c & 4 != 0 && !e.name.ends_with(b"/") => e.name.push(b'/'),
            b'2' => e.link = SYMLINK_TARGETS[b as usize % SYMLINK_TARGETS.len()].to_vec(),
            b'1' => {
                let mut t = NAMES[b as usize % NAMES.len()].to_vec();
                if c & 2 != 0 {
                    t.insert(0, b'/');
                }
                e.link = t;
            }
            b'3' => e.dev = (b as u32 % 4 + 1, a as u32),
            _ => {}
        }
        e.pax_path = c & 8 != 0;
        e.gnu_long = c & 16 != 0;
        if c & 32 != 0 {
            match e.typeflag {
                b'0' if e.name.ends_with(b"/") => {}
                b'0' => {
                    e.typeflag = 0;
                    e.format = Format::V7;
                }
                b'5' => {
                    e.typeflag = b'0';
                    if !e.name.ends_with(b"/") {
                        e.name.push(b'/');
                    }
                    e.format = Format::V7;
                }
                _ => {}
            }
        }
        if c & 64 != 0 {
            e.xattrs
                .push((b"user.fuzz".to_vec(), format!("v{index}").into_bytes()));
            e.mtime_fraction = true;
        }
        if c & 128 != 0 && e.format == Format::Ustar {
            e.format = Format::Gnu;
        }
        layers[layer].1.push(e);
    }
    layers
}

/// The inverse, for seeds: ops from (code, a, b, c) tuples.
pub fn encode_ops(ops: &[(u8, u8, u8, u8)]) -> Vec<u8> {
    ops.iter()
        .flat_map(|(o, a, b, c)| [*o, *a, *b, *c])
        .collect()
}

/// The model: docs/layer-semantics.md applied the simple way, to a map of paths.
pub mod model {
    use super::{Kind, Node};
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Entry {
        Dir(Option<Node>),
        Leaf(usize),
    }

    #[derive(Debug, PartialEq, Eq)]
    pub enum Outcome {
        /// The flattened tree: path → node, and the hardlink groups.
        Tree(BTreeMap<Vec<u8>, Node>, Vec<Vec<Vec<u8>>>),
        /// The image must be refused (why).
        Refused(String),
        /// The rules do not say (a hardlink to something its own layer whited out, …).
        Unspecified(String),
    }

    pub struct Raw<'a> {
        pub name: &'a [u8],
        pub typeflag: u8,
        pub link: &'a [u8],
        pub node: Node,
    }

    /// `..` is resolved by name; only one that climbs above the root is refused.
    fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    if parts.pop().is_none() {
                        return Err(format!(
                            "'..' above the root in {:?}",
                            raw.escape_ascii().to_string()
                        ));
                    }
                }
                c => parts.push(c),
            }
        }
        Ok(parts.join(&b'/'))
    }

    fn parent(p: &[u8]) -> &[u8] {
        p.iter()
            .rposition(|b| *b == b'/')
            .map_or(&b""[..], |i| &p[..i])
    }

    fn below(p: &[u8], dir: &[u8]) -> bool {
        dir.is_empty() && !p.is_empty()
            || p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
    }

    enum Change {
        Add(Vec<u8>, Kind, Option<Vec<u8>>, Node),
        Whiteout(Vec<u8>),
        Opaque(Vec<u8>),
    }

    fn classify(e: &Raw) -> Result<Option<Change>, String> {
        let path = normalize(e.name)?;
        let comps: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
        let base = *comps.last().unwrap();
        // Only the last component is a whiteout; below `.wh.X/` is an ordinary path, except
        // AUFS's own `.wh..wh.*` directories.
        for c in &comps[..comps.len() - 1] {
            if c.starts_with(b".wh..wh.") {
                return Ok(None);
            }
        }
        if base == b".wh..wh..opq" {
            return Ok(Some(Change::Opaque(parent(&path).to_vec())));
        }
        if base.starts_with(b".wh..wh.") {
            return Ok(None);
        }
        if let Some(rest) = base.strip_prefix(b".wh.") {
            if rest.is_empty() || rest == b"." || rest == b".." {
                return Err("bad whiteout".into());
            }
            let p = parent(&path);
            let sep: &[u8] = if p.is_empty() { b"" } else { b"/" };
            return Ok(Some(Change::Whiteout([p, sep, rest].concat())));
        }
        let kind = match e.typeflag {
            b'0' | 0 if e.name.ends_with(b"/") => Kind::Dir,
            b'0' | 0 | b'7' => Kind::Regular,
            b'1' => Kind::Regular, // a hardlink: see the target below
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            t => return Err(format!("type {t}")),
        };
        let target = if e.typeflag == b'1' {
            let t = normalize(e.link)?;
            if t.is_empty() {
                return Err("hardlink to the root".into());
            }
            Some(t)
        } else {
            None
        };
        if path.is_empty() && (kind != Kind::Dir || target.is_some()) {
            return Err("non-directory at the root".into());
        }
        let mut node = e.node.clone();
        node.kind = kind;
        if kind == Kind::Symlink {
            node.mode = 0o777;
        }
        match kind {
            Kind::Regular | Kind::Symlink => {}
            _ => node.data.clear(),
        }
        if !matches!(kind, Kind::Char | Kind::Block) {
            node.dev = (0, 0);
        }
        node.xattrs.sort();
        node.xattrs.dedup_by(|a, b| a.0 == b.0);
        Ok(Some(Change::Add(path, kind, target, node)))
    }

    pub fn implicit_dir() -> Node {
        Node {
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            data: Vec::new(),
            dev: (0, 0),
            xattrs: Vec::new(),
        }
    }

    struct State {
        tree: BTreeMap<Vec<u8>, Entry>,
        inodes: Vec<Node>,
    }

    impl State {
        fn remove_subtree(&mut self, p: &[u8], include_self: bool) {
            self.tree
                .retain(|k, _| !(below(k, p) || include_self && k.as_slice() == p));
        }

        /// Resolves every parent of `path` that is a symlink made by this same layer (inodes
        /// from `first_own` on), as a tar extractor does inside the root: absolute targets
        /// from the root, `..` stops at the root, 40 links at most. The last component is
        /// taken as it is. `None`: a loop.
        fn resolve_own(&self, path: &[u8], first_own: usize) -> Option<Vec<u8>> {
            let comps: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
            let (last, parents) = comps.split_last()?;
            let mut todo: Vec<Vec<u8>> = parents.iter().rev().map(|c| c.to_vec()).collect();
            let mut done: Vec<Vec<u8>> = Vec::new();
            let mut hops = 0;
            while let Some(c) = todo.pop() {
                match c.as_slice() {
                    b"" | b"." => {}
                    b".." => {
                        done.pop();
                    }
                    _ => {
                        let mut next = done.clone();
                        next.push(c);
                        let joined = next.join(&b'/');
                        match self.tree.get(&joined) {
                            Some(Entry::Leaf(id))
                                if *id >= first_own && self.inodes[*id].kind == Kind::Symlink =>
                            {
                                hops += 1;
                                if hops > 40 {
                                    return None;
                                }
                                let target = &self.inodes[*id].data;
                                if target.starts_with(b"/") {
                                    done.clear();
                                }
                                for t in target.split(|b| *b == b'/').rev() {
                                    todo.push(t.to_vec());
                                }
                            }
                            _ => done = next,
                        }
                    }
                }
            }
            done.push(last.to_vec());
            Some(done.join(&b'/'))
        }
    }

    pub fn flatten(layers: &[Vec<Raw>]) -> Outcome {
        let mut s = State {
            tree: BTreeMap::from([(Vec::new(), Entry::Dir(None))]),
            inodes: Vec::new(),
        };
        for layer in layers {
            let mut changes = Vec::new();
            for e in layer {
                match classify(e) {
                    Ok(Some(c)) => changes.push(c),
                    Ok(None) => {}
                    Err(why) => return Outcome::Refused(why),
                }
            }
            let lower = s.tree.clone();
            for c in &changes {
                match c {
                    Change::Whiteout(p) => s.remove_subtree(p, true),
                    Change::Opaque(d) => {
                        if matches!(s.tree.get(d), Some(Entry::Dir(_))) {
                            s.remove_subtree(d, false)
                        }
                    }
                    Change::Add(..) => {}
                }
            }
            let first_own = s.inodes.len();
            for c in changes {
                let Change::Add(path, kind, target, node) = c else {
                    continue;
                };
                // Through this layer's own symlinks (a lower layer's are taken literally).
                let Some(path) = s.resolve_own(&path, first_own) else {
                    return Outcome::Refused("symlink loop".into());
                };
                let target = match target {
                    Some(t) => match s.resolve_own(&t, first_own) {
                        Some(t) => Some(t),
                        None => return Outcome::Refused("symlink loop".into()),
                    },
                    None => None,
                };
                if path.split(|b| *b == b'/').count() > 256 || path.len() > 4096 {
                    return Outcome::Unspecified("a resolved path past the limits".into());
                }
                if let Some(t) = &target {
                    if below(&path, t) {
                        return Outcome::Unspecified("hardlink below its own target".into());
                    }
                }
                // Parents: missing ones and non-directories become implicit directories.
                for (i, _) in path.iter().enumerate().filter(|(_, b)| **b == b'/') {
                    let a = &path[..i];
                    if !matches!(s.tree.get(a), Some(Entry::Dir(_))) {
                        s.tree.insert(a.to_vec(), Entry::Dir(None));
                    }
                }
                match (kind, target) {
                    (_, Some(t)) => {
                        let id = match s.tree.get(&t) {
                            Some(Entry::Leaf(id)) => *id,
                            Some(Entry::Dir(_)) => {
                                return Outcome::Refused("hardlink to a directory".into())
                            }
                            None if lower.contains_key(&t) => {
                                return Outcome::Unspecified(
                                    "hardlink to a lower path this layer removed".into(),
                                )
                            }
                            None => return Outcome::Refused("hardlink to nothing".into()),
                        };
                        s.remove_subtree(&path, true);
                        s.tree.insert(path, Entry::Leaf(id));
                    }
                    (Kind::Dir, None) => {
                        if let Some(Entry::Dir(meta)) = s.tree.get_mut(&path) {
                            *meta = Some(node);
                        } else {
                            s.remove_subtree(&path, true);
                            s.tree.insert(path, Entry::Dir(Some(node)));
                        }
                    }
                    (_, None) => {
                        s.inodes.push(node);
                        s.remove_subtree(&path, true);
                        s.tree.insert(path, Entry::Leaf(s.inodes.len() - 1));
                    }
                }
            }
        }
        let mut nodes = BTreeMap::new();
        let mut groups: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for (path, entry) in s.tree {
            let node = match entry {
                Entry::Dir(meta) => meta.unwrap_or_else(implicit_dir),
                Entry::Leaf(id) => {
                    groups.entry(id).or_default().push(path.clone());
                    s.inodes[id].clone()
                }
            };
            nodes.insert(path, node);
        }
        Outcome::Tree(nodes, groups.into_values().collect())
    }
}

/// Flattens the structured layers with oci2wsl (1 and 3 threads) and compares with the model.
pub fn run_structured(data: &[u8]) -> Result<(), String> {
    let layers = decode_structured(data);
    let raws: Vec<Vec<model::Raw>> = layers
        .iter()
        .map(|(_, entries)| {
            entries
                .iter()
                .map(|e| model::Raw {
                    name: &e.name,
                    typeflag: e.typeflag,
                    link: &e.link,
                    node: Node {
                        kind: Kind::Regular,
                        mode: e.mode,
                        uid: e.uid,
                        data: if e.typeflag == b'2' {
                            e.link.clone()
                        } else {
                            e.content.clone()
                        },
                        dev: e.dev,
                        xattrs: e.xattrs.clone(),
                    },
                })
                .collect()
        })
        .collect();
    let expected = model::flatten(&raws);
    let blobs: Vec<(Vec<u8>, Vec<u8>)> = layers
        .iter()
        .map(|(how, entries)| {
            let tar = encode_tar(entries);
            (compress(&tar, *how), tar)
        })
        .collect();
    let source = MemorySource::new(blobs);
    let one = flatten_checked(&source, 1)?;
    let three = flatten_checked(&source, 3)?;
    if one.as_ref().map(|o| &o.0) != three.as_ref().map(|o| &o.0) {
        return Err("1 and 3 threads give different outputs".into());
    }
    match (expected, one) {
        (model::Outcome::Unspecified(_), _) => Ok(()),
        (model::Outcome::Refused(_), None) => Ok(()),
        (model::Outcome::Refused(why), Some(_)) => {
            Err(format!("flattened an image that must be refused ({why})"))
        }
        (model::Outcome::Tree(..), None) => {
            let image = source.resolve(&Default::default()).expect("memory");
            let mut out = TarWriter::new(Capped(Vec::new()));
            let options = FlattenOptions {
                jobs: 1,
                max_expansion: 100,
                ..Default::default()
            };
            let e = flatten(&source, &image, &mut out, &options, None).unwrap_err();
            Err(format!("refused a valid image: {e:#}"))
        }
        (model::Outcome::Tree(want, want_groups), Some((_, got))) => {
            for (path, node) in &want {
                match got.nodes.get(path) {
                    None => return Err(format!("{:?} is missing from the output", show(path))),
                    Some(g) if g != node => {
                        return Err(format!(
                            "{:?}: output has {g:?}, the rules say {node:?}",
                            show(path)
                        ))
                    }
                    Some(_) => {}
                }
            }
            if let Some(extra) = got.nodes.keys().find(|p| !want.contains_key(*p)) {
                return Err(format!("{:?} should not be in the output", show(extra)));
            }
            let want_groups: BTreeSet<Vec<Vec<u8>>> = want_groups.into_iter().collect();
            if want_groups != got.groups {
                return Err(format!(
                    "hardlink groups differ: output {:?}, rules {:?}",
                    got.groups, want_groups
                ));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Target: archive (oci-archive / docker-archive files)
// ---------------------------------------------------------------------------------------

pub const SECTION: &[u8] = b"@@@@";

fn hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fills `$C`/`#C` (config digest hex / size), `$M`/`#M` (manifest), `$Ln`/`#Ln` (layer
/// blob n), `$Dn` (diff_id of layer n) into a JSON template.
fn fill(template: &[u8], values: &[(String, String)]) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(template).into_owned();
    for (k, v) in values {
        text = text.replace(k.as_str(), v);
    }
    text.into_bytes()
}

/// A templated archive: `kind` byte (bit 0 docker-archive, bits 1-2 layer compression,
/// bit 3 a gzipped archive, bit 4 legacy docker layer symlinks), then sections separated by
/// `@@@@`: the top JSON (index.json or manifest.json), the manifest (OCI only), the config,
/// then the layer tars.
pub fn build_archive(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut sections: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while sections.len() < 8 {
        match rest.windows(SECTION.len()).position(|w| w == SECTION) {
            Some(i) => {
                sections.push(&rest[..i]);
                rest = &rest[i + SECTION.len()..];
            }
            None => break,
        }
    }
    sections.push(rest);
    let docker = kind & 1 != 0;
    // A docker-archive has no manifest section.
    let first_config = if docker { 1 } else { 2 };
    let top = sections[0];
    let manifest_t: &[u8] = if docker {
        b""
    } else {
        sections.get(1).copied().unwrap_or(b"")
    };
    let config_t = sections.get(first_config).copied().unwrap_or(b"");
    let layer_tars = sections.get(first_config + 1..).unwrap_or(&[]);
    let mut values: Vec<(String, String)> = Vec::new();
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layer_blobs = Vec::new();
    for (i, tar) in layer_tars.iter().enumerate().rev() {
        let blob = compress(tar, (kind >> 1) & 3);
        values.push((format!("$L{i}"), hex(&blob)));
        values.push((format!("#L{i}"), blob.len().to_string()));
        values.push((format!("$D{i}"), hex(tar)));
        layer_blobs.push(blob);
    }
    layer_blobs.reverse();
    let config = fill(config_t, &values);
    values.push(("$C".into(), hex(&config)));
    values.push(("#C".into(), config.len().to_string()));
    let manifest = fill(manifest_t, &values);
    values.push(("$M".into(), hex(&manifest)));
    values.push(("#M".into(), manifest.len().to_string()));
    let top = fill(top, &values);
    if docker {
        blobs.push(("manifest.json".into(), top));
        blobs.push((format!("{}.json", hex(&config)), config.clone()));
        for (i, blob) in layer_blobs.iter().enumerate() {
            if kind & 16 != 0 && i > 0 {
                continue; // written as symlinks below
            }
            blobs.push((format!("{}/layer.tar", hex(blob)), blob.clone()));
        }
    } else {
        blobs.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        blobs.push(("index.json".into(), top));
        blobs.push((format!("blobs/sha256/{}", hex(&manifest)), manifest));
    }
    blobs.push((format!("blobs/sha256/{}", hex(&config)), config));
    for blob in &layer_blobs {
        blobs.push((format!("blobs/sha256/{}", hex(blob)), blob.clone()));
    }
    let mut entries: Vec<TarEntry> = blobs
        .iter()
        .map(|(name, data)| TarEntry::file(name, data))
        .collect();
    if docker && kind & 16 != 0 {
        // Legacy archives: layer.tar of a later layer is a symlink to another's.
        for blob in layer_blobs.iter().skip(1) {
            let h = hex(blob);
            entries.push(TarEntry::link(
                &format!("{h}/layer.tar"),
                b'2',
                &format!("../blobs/sha256/{h}"),
            ));
        }
    }
    let tar = encode_tar(&entries);
    if kind & 8 != 0 {
        compress(&tar, 1)
    } else {
        tar
    }
}

/// `data[0] == b'T'`: a templated archive ([`build_archive`], `data[1]` its kind);
/// `data[0] == b'R'`: the rest is the archive file, checksums repaired; anything else: the
/// bytes are the archive file. Opened as both an oci-archive and a docker-archive.
pub fn run_archive(data: &[u8]) -> Result<(), String> {
    let bytes = match data {
        [b'T', kind, rest @ ..] => build_archive(*kind, rest),
        [b'R', rest @ ..] => {
            let mut tar = rest.to_vec();
            repair_checksums(&mut tar);
            tar
        }
        _ => data.to_vec(),
    };
    let mut file = tempfile::NamedTempFile::new().map_err(|e| format!("temp file: {e}"))?;
    file.write_all(&bytes)
        .map_err(|e| format!("temp file: {e}"))?;
    let path = file.path().to_string_lossy().into_owned();
    for docker in [false, true] {
        let Ok(store) = TarStore::open(&path) else {
            continue;
        };
        let source: Box<dyn ImageSource> = if docker {
            Box::new(DockerArchiveSource::new(
                "fuzz".into(),
                Box::new(store),
                None,
            ))
        } else {
            Box::new(LayoutSource::new(
                "fuzz".into(),
                Box::new(store),
                Selector::Only,
            ))
        };
        flatten_checked(source.as_ref(), 2)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Targets: manifest, reference, www_authenticate, tar_reader
// ---------------------------------------------------------------------------------------

const MEDIA_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
];

struct Docs(Vec<Vec<u8>>, std::cell::Cell<usize>);

impl oci2wsl::image::JsonFetcher for Docs {
    fn fetch_json(&self, _desc: &oci2wsl::image::manifest::Descriptor) -> anyhow::Result<Vec<u8>> {
        let i = self.1.get();
        self.1.set(i + 1);
        self.0
            .get(i)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no more documents"))
    }
}

/// `data[0]`: the declared media type; then NUL-separated JSON documents: the top one, then
/// what each fetch returns in turn (a manifest after an index, then the config).
pub fn run_manifest(data: &[u8]) -> Result<(), String> {
    let Some((&declared, rest)) = data.split_first() else {
        return Ok(());
    };
    let declared = MEDIA_TYPES[declared as usize % MEDIA_TYPES.len()];
    let docs: Vec<Vec<u8>> = rest.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    let _ = oci2wsl::image::manifest::parse_document(&docs[0], declared);
    if let Ok(config) = oci2wsl::image::parse_config(&docs[0]) {
        let _ = oci2wsl::image::diff_ids(&config);
    }
    let fetcher = Docs(docs[1..].to_vec(), Default::default());
    let _ = oci2wsl::image::resolve(
        "fuzz",
        &fetcher,
        docs[0].clone(),
        declared,
        None,
        &Default::default(),
    );
    Ok(())
}

/// Parses a reference; what parses must print as text that parses to the same reference.
pub fn run_reference(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    use oci2wsl::reference::registry::RegistryRef;
    use oci2wsl::reference::SourceRef;
    if let Ok(r) = SourceRef::parse(text) {
        // `docker://docker://x` is `Registry("docker://x")`, printed without the first
        // prefix; harmless (the registry parser strips the second), so not checked.
        if matches!(&r, SourceRef::Registry(s) if s.starts_with("docker://")) {
            return Ok(());
        }
        let printed = r.to_string();
        match SourceRef::parse(&printed) {
            Ok(again) if again == r => {}
            other => {
                return Err(format!(
                    "{text:?} parses to {r:?}, printed {printed:?}, which parses to {other:?}"
                ))
            }
        }
    }
    if let Ok(r) = RegistryRef::parse(text) {
        let printed = r.to_string();
        match RegistryRef::parse(&printed) {
            Ok(again) if again == r => {}
            other => {
                return Err(format!(
                    "{text:?} parses to {r:?}, printed {printed:?}, which parses to {other:?}"
                ))
            }
        }
        let _ = (r.api_host(), r.manifest_reference());
    }
    Ok(())
}

/// Parses a `WWW-Authenticate` value; a parsed challenge, written back with every value
/// quoted and escaped, parses to the same challenge.
pub fn run_www_authenticate(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    use oci2wsl::source::remote::challenge::parse_challenge;
    let Some(c) = parse_challenge(text) else {
        return Ok(());
    };
    let mut params: Vec<_> = c.params.iter().collect();
    params.sort();
    let written = format!(
        "{} {}",
        c.scheme,
        params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match parse_challenge(&written) {
        Some(again) if again == c => Ok(()),
        other => Err(format!(
            "{text:?} parses to {c:?}; written as {written:?} it parses to {other:?}"
        )),
    }
}

/// oci2wsl's own layer tar parser on arbitrary bytes: errors are fine, panics are not.
/// `data[0]` odd: the checksums of the rest are repaired first.
pub fn run_tar_reader(data: &[u8]) -> Result<(), String> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let mut data = rest.to_vec();
    if mode & 1 == 1 {
        repair_checksums(&mut data);
    }
    let mut tar = oci2wsl::layer::tar_reader::TarReader::new(data.as_slice());
    let mut buf = [0u8; 4096];
    let mut skip_content = false;
    while let Ok(Some(_)) = tar.next_entry() {
        // Alternate between reading an entry's content and leaving it to next_entry.
        skip_content = !skip_content;
        if skip_content {
            continue;
        }
        let mut content = tar.content();
        while let Ok(n) = content.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The WSL stage
// ---------------------------------------------------------------------------------------

/// The image config for [`run_wsl`]: a JSON object is used as it is, with `architecture`,
/// `os` and `rootfs` added if missing (so that hostile values, not a missing field, are what
/// gets tested); anything else is read as lines, `User`, `WorkingDir`, `created`, the
/// Entrypoint and the Cmd (arguments separated by tabs), then one `Env` entry a line, so that
/// the fuzzer reaches the translation with any strings without having to write JSON.
pub fn wsl_config(part: &[u8]) -> Vec<u8> {
    use serde_json::{json, Value};
    let mut config = match serde_json::from_slice::<Value>(part) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => {
            let text = String::from_utf8_lossy(part);
            let mut lines = text.split('\n');
            let mut line = || lines.next().unwrap_or("").to_string();
            let (user, workdir, created) = (line(), line(), line());
            let args = |l: String| -> Vec<String> {
                if l.is_empty() {
                    Vec::new()
                } else {
                    l.split('\t').map(str::to_string).collect()
                }
            };
            let (entrypoint, cmd) = (args(line()), args(line()));
            let env: Vec<String> = lines.map(str::to_string).collect();
            json!({
                "created": created,
                "config": {
                    "User": user,
                    "WorkingDir": workdir,
                    "Entrypoint": entrypoint,
                    "Cmd": cmd,
                    "Env": env,
                    "ExposedPorts": {"80/tcp": {}},
                },
            })
        }
    };
    let map = config.as_object_mut().expect("an object");
    map.entry("architecture").or_insert(json!("amd64"));
    map.entry("os").or_insert(json!("linux"));
    map.entry("rootfs")
        .or_insert(json!({"type": "layers", "diff_ids": []}));
    serde_json::to_vec(&config).expect("memory")
}

/// The `wsl` target: any image config plus any `/etc/passwd`, `/etc/wsl.conf` and
/// `/etc/profile` in the image give either an output or a clean error, never a panic.
///
/// Input: a flags byte (bit 0 `--boot`, bit 1 `--user` from the sixth part, bit 2 a `.wsl`
/// output, bit 3 the image files in a second layer, over placeholder files in the first,
/// bit 4 the `.wsl` name chosen on the command line),
/// then NUL-separated parts: config (see [`wsl_config`]), passwd, wsl.conf, profile, user.
/// A missing part is a missing file.
pub fn run_wsl(data: &[u8]) -> Result<(), String> {
    wsl_output(data).map(|_| ())
}

/// [`run_wsl`], returning the output tar when there is one (`None` for a clean error).
pub fn wsl_output(data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    use oci2wsl::wsl::{DistributionName, Translation, WslOptions};
    let Some((&flags, rest)) = data.split_first() else {
        return Ok(None);
    };
    let parts: Vec<&[u8]> = rest.splitn(5, |b| *b == 0).collect();
    let config_raw = wsl_config(parts[0]);
    let mut entries = vec![TarEntry::dir("etc")];
    for (name, part) in [
        ("etc/passwd", parts.get(1)),
        ("etc/wsl.conf", parts.get(2)),
        ("etc/profile", parts.get(3)),
    ] {
        if let Some(content) = part {
            entries.push(TarEntry::file(name, content));
        }
    }
    let tars = if flags & 8 != 0 {
        let placeholders = encode_tar(&[
            TarEntry::dir("etc"),
            TarEntry::file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
            TarEntry::file("etc/wsl.conf", b"[boot]\nsystemd=true\n"),
        ]);
        vec![placeholders, encode_tar(&entries)]
    } else {
        vec![encode_tar(&entries)]
    };
    let source = MemorySource::from_tars(tars);
    let Ok(mut image) = source.resolve(&Default::default()) else {
        return Err("the memory source did not resolve".into());
    };
    image.config = match oci2wsl::image::parse_config(&config_raw) {
        Ok(config) => config,
        // Refused as a config: a clean error, as the real sources give.
        Err(_) => return Ok(None),
    };
    image.config_raw = config_raw;
    let options = WslOptions {
        user: (flags & 2 != 0)
            .then(|| String::from_utf8_lossy(parts.get(4).copied().unwrap_or(b"")).into_owned()),
        boot: flags & 1 != 0,
        distribution_name: (flags & 4 != 0).then(|| {
            if flags & 16 != 0 {
                DistributionName::Chosen("fuzz".to_string())
            } else {
                DistributionName::FromFileName("fuzz".to_string())
            }
        }),
    };
    let mut translation = Translation::new(&image, "fuzz".into(), options);
    let mut out = TarWriter::new(Capped(Vec::new()));
    let flatten_options = FlattenOptions {
        jobs: 1,
        max_expansion: 100,
        ..Default::default()
    };
    match flatten(
        &source,
        &image,
        &mut out,
        &flatten_options,
        Some(&mut translation),
    ) {
        Ok(_) => {
            let bytes = out.finish().map_err(|e| format!("finish: {e}"))?.0;
            check_output(&bytes)?;
            Ok(Some(bytes))
        }
        Err(e) => {
            check_error(&e)?;
            let text = format!("{e:#}");
            if text.trim().is_empty() || text.contains('\n') {
                return Err(format!("the error is not one line: {text:?}"));
            }
            Ok(None)
        }
    }
}

// ------------------------------------------------------------------ wsl.conf writer

#[path = "../../tests/common/wsl_conf_oracle.rs"]
mod wsl_conf_oracle;

/// The `wsl_conf` target: the wsl.conf writer and merge (`oci2wsl::wsl::ini`) and the
/// `[boot] command` builder, checked against the tests' separate reading of WSL's grammar
/// (tests/common/wsl_conf_oracle.rs, kept apart from `src/` on purpose).
///
/// Input: fields separated by NUL bytes: an image's own file, a section, a key, a value,
/// then the arguments of a boot command. A broken property panics (as an assertion).
pub fn run_wsl_conf(data: &[u8]) -> Result<(), String> {
    use oci2wsl::wsl::config::boot_script;
    use oci2wsl::wsl::ini::Ini;
    let mut fields = data.split(|b| *b == 0);
    let text = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let section = wsl_conf_name_or(fields.next().unwrap_or_default(), "boot");
    let key = wsl_conf_name_or(fields.next().unwrap_or_default(), "command");
    let value = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let argv: Vec<String> = fields
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();

    let ini = Ini::parse(&text);
    let printed = ini.text();
    assert!(
        printed == text || printed == format!("{text}\n"),
        "parse and print changed the file"
    );
    let before = wsl_conf_oracle::read(printed.as_bytes());
    for (full, read) in &before.values {
        if let Some((s, k)) = full.split_once('.') {
            assert_eq!(ini.get(s, k).as_deref(), Some(read.as_str()), "get {full}");
        }
    }
    assert_eq!(ini.first_invalid().is_some(), before.rejected);

    let mut edited = ini.clone();
    if edited.set(&section, &key, &value).is_ok() {
        let after = wsl_conf_oracle::read(edited.text().as_bytes());
        let full = format!("{section}.{key}");
        assert_eq!(after.get(&full), Some(value.as_str()), "{full} after set");
        assert!(
            !after.warnings.iter().any(|w| w
                .to_ascii_lowercase()
                .contains(&format!(": {} duplicates", full.to_ascii_lowercase()))),
            "a duplicate of {full} is left: {:?}",
            after.warnings
        );
        for (other, read) in &before.values {
            if !other.eq_ignore_ascii_case(&full) {
                assert_eq!(after.get(other), Some(read.as_str()), "{other} changed");
            }
        }
        assert_eq!(after.rejected, before.rejected);
    }

    if !argv.is_empty() && !argv.iter().any(|a| a.contains('\0')) {
        let script = boot_script(Some(&value), &argv);
        if !value.contains('\0') {
            let script = script.expect("a boot command without NUL");
            let mut conf = Ini::parse("");
            conf.set("boot", "command", &script)
                .expect("a boot command is always representable");
            let read = wsl_conf_oracle::read(conf.text().as_bytes());
            assert!(read.warnings.is_empty(), "{:?}", read.warnings);
            assert_eq!(read.get("boot.command"), Some(script.as_str()));
        }
    }
    Ok(())
}

fn wsl_conf_name_or(field: &[u8], default: &str) -> String {
    let valid = field.first().is_some_and(u8::is_ascii_alphabetic)
        && field.iter().all(u8::is_ascii_alphanumeric);
    if valid {
        String::from_utf8_lossy(field).into_owned()
    } else {
        default.to_string()
    }
}
