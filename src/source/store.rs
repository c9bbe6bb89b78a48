//! Blob stores: a directory or a tar archive, addressed by relative `/`-separated paths.
//!
//! An OCI layout and a `docker save` archive are both "files at paths"; whether those files
//! sit in a directory or inside a tar (an oci-archive, a docker-archive, or either of them
//! arriving on standard input) is this module's business alone. Archives are indexed once
//! (member name → offset) and members are then read in place with positioned reads, so the
//! archive is never extracted and several layers can be read at once.

use crate::error::{bail_kind, kind_err};
use crate::limits::{MAX_ARCHIVE_MEMBERS, MAX_PATH_LEN};
use crate::reference::ArchiveKind;
use crate::tar;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A blob's bytes, front to back.
pub trait BlobRead: Read + Send {
    /// Moves `n` bytes ahead, as reading and dropping them would; a reader of a file moves
    /// its position instead (the emit pass skips to a resume point this way).
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        let mut left = n;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            match self.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the blob ends before the place to skip to",
                    ))
                }
                Ok(k) => left -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

pub type BlobReader = Box<dyn BlobRead>;

impl BlobRead for File {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).map_err(|_| io::Error::other("skip too large"))?;
        self.seek(SeekFrom::Current(n)).map(|_| ())
    }
}

impl BlobRead for PositionedReader {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        if n > self.end - self.pos {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob ends before the place to skip to",
            ));
        }
        self.pos += n;
        Ok(())
    }
}

/// The index pass counts a layer's bytes as it reads them; it never skips.
impl<R: Read + Send> BlobRead for crate::events::ProgressReader<R> {}

/// The skipped stretch is freed with the next stretch read.
impl BlobRead for ConsumingReader {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        self.inner.skip(n)
    }
}

pub trait BlobStore: Send + Sync {
    /// Opens the file at `path` and returns it with its size, or `None` if there is none.
    fn open(&self, path: &str) -> Result<Option<(BlobReader, u64)>>;

    /// Reads a small file whole, refusing anything larger than `limit`.
    fn read_small(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((reader, size)) = self.open(path)? else {
            return Ok(None);
        };
        if size > limit {
            bail_kind!(
                HostileInput,
                "{path} is {size} bytes, more than the {limit}-byte limit for metadata files"
            );
        }
        let mut buf = Vec::with_capacity(size as usize);
        reader
            .take(limit + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {path}"))?;
        Ok(Some(buf))
    }
}

/// Refuses store paths that could leave the store: they come from files inside the image
/// (a docker-archive's manifest.json names its layers). Only an absolute path, a `..`
/// component and NUL can do that; a colon is an ordinary character (go-containerregistry
/// names a config `sha256:<hex>`). What a directory store must refuse beyond this, because
/// the host would read it as a separator or a drive, `DirStore` checks itself.
pub fn check_relative(path: &str) -> Result<()> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path.split('/').any(|c| c == "..")
    {
        bail_kind!(
            HostileInput,
            "refusing unsafe path {path:?} inside the image"
        );
    }
    Ok(())
}

/// On Windows a backslash separates and `C:` names a drive, so a component holding either
/// could leave a directory store; inside an archive they are only characters.
fn check_host_component(path: &str) -> Result<()> {
    if cfg!(windows) && (path.contains('\\') || path.contains(':')) {
        bail_kind!(HostileInput, "refusing path {path:?}: this system would read its backslash or colon as a separator or drive");
    }
    Ok(())
}

pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: &Path) -> Result<DirStore> {
        let meta = std::fs::metadata(root)
            .with_context(|| format!("cannot open image layout {}", root.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        Ok(DirStore {
            root: root.to_path_buf(),
        })
    }
}

impl BlobStore for DirStore {
    fn open(&self, path: &str) -> Result<Option<(BlobReader, u64)>> {
        check_relative(path)?;
        check_host_component(path)?;
        let mut full = self.root.clone();
        for component in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            full.push(component);
        }
        match File::open(&full) {
            Ok(file) => {
                let size = file.metadata()?.len();
                Ok(Some((Box::new(file), size)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening {}", full.display())),
        }
    }
}

#[derive(Clone, Debug)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// A tar archive indexed for random access.
pub struct TarStore {
    file: Arc<File>,
    members: HashMap<String, Member>,
}

/// Archives may arrive compressed (`docker save | gzip`); the magic decides.
fn archive_compression(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else {
        None
    }
}

impl TarStore {
    /// Opens an archive file, or standard input for `-`. Standard input and compressed
    /// archives cannot be read at random, so they are first copied, as they are (never
    /// extracted), to an anonymous temporary file that the OS removes when we exit.
    pub fn open(path: &str) -> Result<TarStore> {
        let mut input: Box<dyn Read> = if path == "-" {
            Box::new(io::stdin().lock())
        } else {
            let mut file =
                File::open(path).with_context(|| format!("cannot open archive {path}"))?;
            let mut head = [0u8; 4];
            let n = read_up_to(&mut file, &mut head)?;
            if archive_compression(&head[..n]).is_none() {
                file.seek(SeekFrom::Start(0))?;
                return TarStore::index(file).with_context(|| format!("reading archive {path}"));
            }
            file.seek(SeekFrom::Start(0))?;
            Box::new(file)
        };
        let name = if path == "-" { "standard input" } else { path };
        let mut head = [0u8; 4];
        let n = read_up_to(&mut input, &mut head)?;
        if n == 0 && path == "-" {
            bail!("standard input is empty: pipe an archive in, as in docker save IMAGE | oci2wsl docker-archive:-");
        }
        let mut input: Box<dyn Read> = Box::new(io::Cursor::new(head[..n].to_vec()).chain(input));
        input = match archive_compression(&head[..n]) {
            Some("gzip") => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Some(_) => Box::new(zstd::stream::read::Decoder::new(input)?),
            None => input,
        };
        let mut spool =
            tempfile::tempfile().context("creating a temporary file to hold the archive")?;
        copy_large(&mut input, &mut spool)
            .with_context(|| format!("reading archive from {name}"))?;
        spool.flush()?;
        spool.seek(SeekFrom::Start(0))?;
        TarStore::index(spool).with_context(|| format!("reading archive {name}"))
    }

    /// Indexes an uncompressed archive that the caller has already spooled to a private
    /// temporary file (a Docker engine's image export), named `name` in errors.
    pub fn from_spool(file: File, name: &str) -> Result<TarStore> {
        TarStore::index(file).with_context(|| format!("reading archive {name}"))
    }

    fn index(file: File) -> Result<TarStore> {
        if file.metadata()?.len() == 0 {
            bail!("the file is empty (0 bytes)");
        }
        let members = index_members(&file)?;
        if members.is_empty() {
            bail_kind!(HostileInput, "not a tar archive, or an empty one");
        }
        Ok(TarStore {
            file: Arc::new(file),
            members,
        })
    }

    fn lookup(&self, path: &str) -> Option<(u64, u64)> {
        let mut name = normalize_member(path.as_bytes());
        // docker save writes layer.tar symlinks to another layer's file; follow a few.
        for _ in 0..8 {
            match self.members.get(&name)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target.clone(),
            }
        }
        None
    }
}

impl BlobStore for TarStore {
    fn open(&self, path: &str) -> Result<Option<(BlobReader, u64)>> {
        check_relative(path)?;
        Ok(self.lookup(path).map(|(offset, size)| {
            let reader: BlobReader = Box::new(PositionedReader {
                file: self.file.clone(),
                pos: offset,
                end: offset + size,
            });
            (reader, size)
        }))
    }
}

/// Which image archive a plain tar is, by its member names: `manifest.json` is docker
/// save's (newer dockers write it next to an OCI `index.json`), `index.json` or
/// `oci-layout` alone an OCI layout's.
pub fn archive_kind(path: &Path) -> ArchiveKind {
    let Ok(store) = TarStore::open(&path.to_string_lossy()) else {
        return ArchiveKind::Neither;
    };
    let has = |name: &str| store.open(name).ok().flatten().is_some();
    if has("manifest.json") {
        ArchiveKind::Docker
    } else if has("index.json") || has("oci-layout") {
        ArchiveKind::Oci
    } else {
        ArchiveKind::Neither
    }
}

/// Walks an archive's headers and records where each member's bytes are, seeking past the
/// content: the seeking walker over the tar codec (`crate::tar`), as the layer reader is the
/// streaming one. The outer archive is as hostile as a layer, so the codec's ceilings hold
/// here too: every PAX or GNU long-name record, every name and the number of members are
/// bounded before anything is held in memory. (The `tar` crate reads such records whole,
/// whatever their size.)
fn index_members(file: &File) -> Result<HashMap<String, Member>> {
    const BLOCK: u64 = tar::BLOCK as u64;
    let archive_len = file.metadata()?.len();
    let mut members = HashMap::new();
    let mut pos = 0u64;
    let mut count = 0u64;
    let mut ext = tar::Extensions::default();
    loop {
        let mut block = [0u8; tar::BLOCK];
        let got = read_full_at(file, &mut block, pos)?;
        let header = tar::Header::from_block(block);
        if got == 0 || header.is_zero() {
            // End of archive: two zero blocks, or (leniently, as tar does) none at all.
            break;
        }
        if got < tar::BLOCK {
            bail_kind!(
                HostileInput,
                "the archive ends inside a header at byte {pos} (truncated archive)"
            );
        }
        if !header.checksum_ok().unwrap_or(false) {
            bail_kind!(
                HostileInput,
                "bad tar header checksum at byte {pos}: not a tar archive, or a damaged one"
            );
        }
        let at = |e: io::Error| kind_err!(HostileInput, "{e} at byte {pos} of the archive");
        let extension = tar::Extension::of(header.typeflag());
        // An extension entry's own size is in its header; a member's may be in a PAX record.
        let size = match extension {
            Some(_) => header.size(),
            None => ext.size(&header),
        }
        .map_err(at)?;
        let data = pos + BLOCK;
        let next = data
            .checked_add(size)
            .filter(|end| *end <= archive_len)
            .map(|end| end.div_ceil(BLOCK) * BLOCK)
            .ok_or_else(|| {
                kind_err!(HostileInput, "archive member at byte {pos} claims {size} bytes, past the end of the archive (truncated archive)")
            })?;
        match extension {
            // A global PAX header applies to every later member; none of its keys matters
            // for finding files, so it is skipped unread (its size is still bounded by `next`).
            Some(tar::Extension::GlobalPax) => {
                pos = next;
                continue;
            }
            Some(kind) => {
                kind.check_size(size).map_err(at)?;
                let mut record = vec![0u8; size as usize];
                if read_full_at(file, &mut record, data)? < record.len() {
                    bail_kind!(HostileInput, "the archive ends inside an extended header at byte {pos} (truncated archive)");
                }
                ext.add(kind, &record).map_err(at)?;
                pos = next;
                continue;
            }
            None => {}
        }
        let typeflag = header.typeflag();
        let raw_name = ext.name(&header);
        let raw_link = ext.link_name(&header);
        ext = tar::Extensions::default();
        if raw_name.len() > MAX_PATH_LEN || raw_link.len() > MAX_PATH_LEN {
            bail_kind!(
                HostileInput,
                "an archive member name at byte {pos} is longer than {MAX_PATH_LEN} bytes"
            );
        }
        count += 1;
        if count > MAX_ARCHIVE_MEMBERS {
            bail_kind!(HostileInput, "the archive has more than {MAX_ARCHIVE_MEMBERS} members; no image needs that many files");
        }
        let name = normalize_member(&raw_name);
        let target = String::from_utf8_lossy(&raw_link).into_owned();
        let member = match typeflag {
            b'0' | 0 | b'7' => Some(Member::File { offset: data, size }),
            b'2' => Some(Member::Link(resolve_relative(&name, &target))),
            b'1' => Some(Member::Link(normalize_member(target.as_bytes()))),
            _ => None,
        };
        if let Some(member) = member {
            // A later member of the same name replaces an earlier one, as tar extracts it.
            members.insert(name, member);
        }
        pos = next;
    }
    Ok(members)
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_at(file, &mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn normalize_member(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    text.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Resolves a symlink target relative to the link's directory, lexically.
fn resolve_relative(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Reads a byte range of a shared file without moving a shared cursor.
pub struct PositionedReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl PositionedReader {
    pub fn new(file: Arc<File>, offset: u64, len: u64) -> PositionedReader {
        PositionedReader {
            file,
            pos: offset,
            end: offset + len,
        }
    }
}

impl Read for PositionedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = read_at(&self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive member ends early (truncated archive)",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads a private spool file front to back, freeing what it has read (on Linux, by
/// punching holes; elsewhere the file is freed whole when the last handle closes).
pub struct ConsumingReader {
    inner: PositionedReader,
    freed: u64,
}

/// How much read data may wait before it is freed.
const FREE_EVERY: u64 = 4 << 20;

impl ConsumingReader {
    pub fn new(file: Arc<File>, size: u64) -> ConsumingReader {
        ConsumingReader {
            inner: PositionedReader::new(file, 0, size),
            freed: 0,
        }
    }
}

impl Read for ConsumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = self.inner.pos;
        if read - self.freed >= FREE_EVERY {
            // Whole pages only; a failure only means the space is freed later, at close.
            let upto = read & !0xfff;
            free_range(&self.inner.file, self.freed, upto - self.freed);
            self.freed = upto;
        }
        Ok(n)
    }
}

#[cfg(target_os = "linux")]
fn free_range(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on a descriptor we own; no memory is passed.
    unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn free_range(_file: &File, _offset: u64, _len: u64) {}

/// A read at `offset` that does not depend on (or, on Unix, move) the file's cursor.
#[cfg(unix)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// A read at `offset`. seek_read moves the handle's cursor, so every reader and writer of a
/// shared file uses positioned calls only.
#[cfg(windows)]
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Writes all of `buf` at `offset`, without relying on the cursor (see `read_at`).
pub fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::write_at(file, buf, offset)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the disk took no bytes",
            ));
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn copy_large(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::limits::MAX_PAX_SIZE;

    #[test]
    fn consuming_reader_reads_everything_and_frees_what_it_read() {
        let data: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        file.sync_all().unwrap();
        let file = Arc::new(file);
        let mut reader = ConsumingReader::new(file.clone(), data.len() as u64);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 100_000];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == data, "content changed on the way");
        assert_eq!(
            file.metadata().unwrap().len(),
            data.len() as u64,
            "size kept"
        );
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            // 512-byte blocks still allocated: at most the last, not yet freed, stretch.
            let held = file.metadata().unwrap().blocks() * 512;
            assert!(held <= FREE_EVERY, "{held} bytes still held after reading");
        }
    }

    #[test]
    fn unsafe_paths_refused() {
        for p in ["../x", "a/../../b", "/etc/passwd", "a\0b", ""] {
            let e = check_relative(p).unwrap_err();
            assert_eq!(crate::error::classify(&e), ErrorKind::HostileInput, "{p}");
        }
        // go-containerregistry's config name, and a backslash that is only a character.
        for p in ["blobs/sha256/abc", "sha256:abc", "a\\b", "a/..b"] {
            assert!(check_relative(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn symlink_targets_resolve_lexically() {
        assert_eq!(
            resolve_relative("abc/layer.tar", "../def/layer.tar"),
            "def/layer.tar"
        );
        assert_eq!(resolve_relative("abc/layer.tar", "/x/y"), "x/y");
        assert_eq!(normalize_member(b"./a//b/"), "a/b");
    }

    #[test]
    fn tar_store_reads_members_and_follows_links() {
        let mut builder = ::tar::Builder::new(Vec::new());
        let mut h = ::tar::Header::new_ustar();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h.clone(), "a/layer.tar", &b"hello"[..])
            .unwrap();
        let mut l = ::tar::Header::new_ustar();
        l.set_entry_type(::tar::EntryType::Symlink);
        l.set_size(0);
        builder
            .append_link(&mut l, "b/layer.tar", "../a/layer.tar")
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let store = TarStore::index(file).unwrap();
        let mut s = String::new();
        let (mut r, size) = store.open("b/layer.tar").unwrap().unwrap();
        r.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), size), ("hello", 5));
        assert!(store.open("c/layer.tar").unwrap().is_none());
    }

    /// `LEN key=value\n`, where LEN counts its own digits.
    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}")
    }

    fn archive_of(entries: &[(&[u8], u8, Vec<u8>)]) -> File {
        let mut bytes = Vec::new();
        for (name, typeflag, content) in entries {
            let mut h = ::tar::Header::new_ustar();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_entry_type(::tar::EntryType::new(*typeflag));
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            bytes.extend_from_slice(h.as_bytes());
            bytes.extend_from_slice(content);
            bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        }
        bytes.resize(bytes.len() + 1024, 0);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    #[test]
    fn pax_and_gnu_long_names_name_the_next_member() {
        let long = "d/".repeat(80) + "layer.tar";
        let pax = pax_record("path", &long);
        let store = TarStore::index(archive_of(&[
            (b"PaxHeaders/x", b'x', pax.into_bytes()),
            (b"short", b'0', b"pax".to_vec()),
            (b"././@LongLink", b'L', format!("{long}2\0").into_bytes()),
            (b"short2", b'0', b"gnu".to_vec()),
        ]))
        .unwrap();
        let read = |p: &str| {
            let mut s = String::new();
            store
                .open(p)
                .unwrap()
                .unwrap()
                .0
                .read_to_string(&mut s)
                .unwrap();
            s
        };
        assert_eq!(read(&long), "pax");
        assert_eq!(read(&format!("{long}2")), "gnu");
        assert!(store.open("short").unwrap().is_none());
    }

    #[test]
    fn oversized_extension_records_and_names_are_refused() {
        let huge = vec![b'a'; MAX_PAX_SIZE as usize + 1];
        let e = TarStore::index(archive_of(&[
            (b"././@LongLink", b'L', huge),
            (b"x", b'0', Vec::new()),
        ]))
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("limit"), "{e:#}");
        assert_eq!(crate::error::classify(&e), ErrorKind::HostileInput);
        let name = "n".repeat(MAX_PATH_LEN + 1);
        let pax = pax_record("path", &name);
        let e = TarStore::index(archive_of(&[
            (b"PaxHeaders/x", b'x', pax.into_bytes()),
            (b"x", b'0', Vec::new()),
        ]))
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("longer than"), "{e:#}");
        assert_eq!(crate::error::classify(&e), ErrorKind::HostileInput);
    }

    #[test]
    fn a_member_claiming_more_bytes_than_the_archive_has_is_refused() {
        let mut h = ::tar::Header::new_ustar();
        h.set_path("big").unwrap();
        h.set_size(1 << 40);
        h.set_cksum();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(h.as_bytes()).unwrap();
        let e = TarStore::index(file).err().unwrap();
        assert!(format!("{e:#}").contains("past the end"), "{e:#}");
        assert_eq!(crate::error::classify(&e), ErrorKind::HostileInput);
    }
}
