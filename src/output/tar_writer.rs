//! A POSIX pax tar writer for flattened entries.
//!
//! Written here rather than with `tar::Builder` because names are bytes (never host paths),
//! and because every field decision matters to the extractors at the other end:
//! - names up to 100 bytes, or splittable into ustar prefix+name, go in the header as raw
//!   bytes; longer ones in a PAX `path` record. PAX records are UTF-8 by definition: bsdtar
//!   (what `wsl --import` runs) fails on a PAX path it cannot convert, and GNU tar warns about
//!   the `hdrcharset=BINARY` escape, so a long name that is not UTF-8 goes in a GNU long-name
//!   record instead, which both read as raw bytes;
//! - numeric ids only: uname/gname stay empty so no extractor maps ids through the host's
//!   /etc/passwd; ids too large for octal go in PAX records (and base-256 for old readers);
//! - xattrs as `SCHILY.xattr.*`, which both GNU tar and bsdtar restore;
//! - no atime/ctime, fixed PAX header names: the same tree gives the same bytes.

use crate::layer::entry::{EntryKind, EntryMeta};
use std::io::{self, Read, Write};

const BLOCK: usize = 512;
const OCTAL8_MAX: u64 = 0o7777777;
const OCTAL12_MAX: u64 = 0o77777777777;

pub struct TarWriter<W: Write> {
    out: W,
    bytes: u64,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> TarWriter<W> {
        TarWriter {
            out,
            bytes: 0,
            buf: vec![0u8; 256 * 1024],
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
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.write(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
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
        let mut name = if path.is_empty() {
            b"./".to_vec()
        } else {
            path.to_vec()
        };
        if kind == EntryKind::Directory && !path.is_empty() {
            name.push(b'/');
        }
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        // GNU long-name records for long names that are not UTF-8 (see the module comment).
        let mut gnu_long: Vec<(u8, &[u8])> = Vec::new();
        let mut h = [0u8; BLOCK];

        match split_ustar_name(&name) {
            Some((prefix, base)) => {
                h[..base.len()].copy_from_slice(base);
                h[345..345 + prefix.len()].copy_from_slice(prefix);
            }
            None => {
                if std::str::from_utf8(&name).is_ok() {
                    pax.push(("path", name.clone()));
                } else {
                    gnu_long.push((b'L', &name));
                }
                // Old readers still get a usable (truncated) name.
                let cut = truncate_at_char(&name, 100);
                h[..cut.len()].copy_from_slice(cut);
            }
        }
        if link.len() <= 100 {
            h[157..157 + link.len()].copy_from_slice(link);
        } else {
            if std::str::from_utf8(link).is_ok() {
                pax.push(("linkpath", link.to_vec()));
            } else {
                gnu_long.push((b'K', link));
            }
            h[157..257].copy_from_slice(truncate_at_char(link, 100));
        }
        put_octal(&mut h[100..108], meta.mode as u64 & 0o7777);
        if meta.uid > OCTAL8_MAX {
            pax.push(("uid", meta.uid.to_string().into_bytes()));
        }
        put_number(&mut h[108..116], meta.uid);
        if meta.gid > OCTAL8_MAX {
            pax.push(("gid", meta.gid.to_string().into_bytes()));
        }
        put_number(&mut h[116..124], meta.gid);
        if size > OCTAL12_MAX {
            pax.push(("size", size.to_string().into_bytes()));
        }
        put_number(&mut h[124..136], size);
        match &meta.mtime_exact {
            Some(exact) => pax.push(("mtime", exact.clone().into_bytes())),
            None if meta.mtime < 0 || meta.mtime as u64 > OCTAL12_MAX => {
                pax.push(("mtime", meta.mtime.to_string().into_bytes()))
            }
            None => {}
        }
        put_octal(
            &mut h[136..148],
            meta.mtime.clamp(0, OCTAL12_MAX as i64) as u64,
        );
        h[156] = kind.tar_type();
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
            put_number(&mut h[329..337], meta.dev_major as u64);
            put_number(&mut h[337..345], meta.dev_minor as u64);
        }
        for (typeflag, long) in gnu_long {
            let mut l = [0u8; BLOCK];
            l[..13].copy_from_slice(b"././@LongLink");
            put_octal(&mut l[100..108], 0o644);
            put_octal(&mut l[108..116], 0);
            put_octal(&mut l[116..124], 0);
            put_number(&mut l[124..136], long.len() as u64 + 1);
            put_octal(&mut l[136..148], 0);
            l[156] = typeflag;
            l[257..265].copy_from_slice(b"ustar  \0");
            checksum(&mut l);
            self.write(&l)?;
            self.write(long)?;
            self.write(&[0])?;
            self.pad(long.len() as u64 + 1)?;
        }
        let mut records = Vec::new();
        for (key, value) in &pax {
            records.extend(pax_record(key.as_bytes(), value));
        }
        if with_xattrs {
            for (key, value) in &meta.xattrs {
                records.extend(pax_record(
                    &[b"SCHILY.xattr.", key.as_slice()].concat(),
                    value,
                ));
            }
        }
        if !records.is_empty() {
            let mut x = [0u8; BLOCK];
            x[..14].copy_from_slice(b"././@PaxHeader");
            put_octal(&mut x[100..108], 0o644);
            put_octal(&mut x[108..116], 0);
            put_octal(&mut x[116..124], 0);
            put_number(&mut x[124..136], records.len() as u64);
            put_octal(&mut x[136..148], 0);
            x[156] = b'x';
            x[257..263].copy_from_slice(b"ustar\0");
            x[263..265].copy_from_slice(b"00");
            checksum(&mut x);
            self.write(&x)?;
            self.write(&records)?;
            self.pad(records.len() as u64)?;
        }
        checksum(&mut h);
        self.write(&h)
    }
}

/// Splits a name into ustar (prefix ≤ 155, name ≤ 100) at a `/`, or `None` if it cannot be.
fn split_ustar_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((b"", name));
    }
    if name.len() > 256 {
        return None;
    }
    // The split slash may not be the trailing one of a directory name.
    let body = name.strip_suffix(b"/").unwrap_or(name);
    (0..body.len().min(156))
        .rev()
        .filter(|i| body[*i] == b'/')
        .map(|i| (&name[..i], &name[i + 1..]))
        .find(|(p, n)| p.len() <= 155 && n.len() <= 100 && !n.is_empty() && !p.is_empty())
}

fn truncate_at_char(s: &[u8], max: usize) -> &[u8] {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    // Do not cut a UTF-8 sequence in half for readers that show the fallback name.
    while end > 0 && (s[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    &s[..end]
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    // "LEN KEY=VALUE\n", where LEN counts its own digits.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut rec = Vec::with_capacity(len);
    rec.extend_from_slice(len.to_string().as_bytes());
    rec.push(b' ');
    rec.extend_from_slice(key);
    rec.push(b'=');
    rec.extend_from_slice(value);
    rec.push(b'\n');
    debug_assert_eq!(rec.len(), len);
    rec
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// Octal when it fits, GNU base-256 otherwise (the PAX record is authoritative).
fn put_number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if value < 8u64.pow(digits as u32) {
        put_octal(field, value);
    } else {
        field.fill(0);
        let bytes = value.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
        field[0] |= 0x80;
    }
}

fn checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::entry::EntryMeta;

    fn meta(kind: EntryKind) -> EntryMeta {
        let mut m = EntryMeta::implicit_dir(Vec::new());
        m.kind = kind;
        m.mode = 0o644;
        m
    }

    type Entry = (
        Vec<u8>,
        tar::EntryType,
        u64,
        u64,
        Vec<u8>,
        Vec<(String, Vec<u8>)>,
    );

    fn read_back(bytes: &[u8]) -> Vec<Entry> {
        let mut a = tar::Archive::new(bytes);
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
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_record(b"a", b"b"), b"6 a=b\n");
        let r = pax_record(b"path", &[b'x'; 95]);
        assert_eq!(r.len(), 105);
        assert!(r.starts_with(b"105 path="));
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
        assert_eq!(entries[2].1, tar::EntryType::Link);
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
