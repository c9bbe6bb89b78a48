//! The headers that introduce one output entry, and every field decision they make, since
//! each matters to the extractors at the other end:
//! - names up to 100 bytes, or splittable into ustar prefix+name, go in the header as raw
//!   bytes; longer ones in a PAX `path` record. PAX records are UTF-8 by definition: bsdtar
//!   (what `wsl --import` runs) fails on a PAX path it cannot convert, and GNU tar warns about
//!   the `hdrcharset=BINARY` escape, so a long name that is not UTF-8 goes in a GNU long-name
//!   record instead, which both read as raw bytes;
//! - numeric ids only: uname/gname stay empty so no extractor maps ids through the host's
//!   /etc/passwd; ids too large for octal go in PAX records (and base-256 for old readers);
//! - xattrs as `SCHILY.xattr.*`, which both GNU tar and bsdtar restore;
//! - no atime/ctime, fixed PAX header names: the same tree gives the same bytes.

use super::header::{padding_of, Header, OCTAL12_MAX, OCTAL8_MAX};
use super::pax::put_pax_record;
use super::{EntryKind, EntryMeta};

/// Appends to `out` the header blocks of an entry at `path` (normalised; the root is the
/// empty name): GNU long-name records if needed, a PAX header if needed, then the ustar
/// header. `meta` supplies the metadata; `kind`, `link` and `size` are what this entry is
/// written as (a file's second path is a hardlink of size 0). The content, if any, follows.
pub fn entry_headers(
    out: &mut Vec<u8>,
    path: &[u8],
    meta: &EntryMeta,
    kind: EntryKind,
    link: &[u8],
    size: u64,
    with_xattrs: bool,
) {
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
    let mut h = Header::new_ustar();

    match split_ustar_name(&name) {
        Some((prefix, base)) => h.set_name(prefix, base),
        None => {
            if std::str::from_utf8(&name).is_ok() {
                pax.push(("path", name.clone()));
            } else {
                gnu_long.push((b'L', &name));
            }
            // Old readers still get a usable (truncated) name.
            h.set_name(b"", truncate_at_char(&name, 100));
        }
    }
    if link.len() <= 100 {
        h.set_link_name(link);
    } else {
        if std::str::from_utf8(link).is_ok() {
            pax.push(("linkpath", link.to_vec()));
        } else {
            gnu_long.push((b'K', link));
        }
        h.set_link_name(truncate_at_char(link, 100));
    }
    h.set_mode(meta.mode);
    if meta.uid > OCTAL8_MAX {
        pax.push(("uid", meta.uid.to_string().into_bytes()));
    }
    h.set_uid(meta.uid);
    if meta.gid > OCTAL8_MAX {
        pax.push(("gid", meta.gid.to_string().into_bytes()));
    }
    h.set_gid(meta.gid);
    if size > OCTAL12_MAX {
        pax.push(("size", size.to_string().into_bytes()));
    }
    h.set_size(size);
    match &meta.mtime_exact {
        Some(exact) => pax.push(("mtime", exact.clone().into_bytes())),
        None if meta.mtime < 0 || meta.mtime as u64 > OCTAL12_MAX => {
            pax.push(("mtime", meta.mtime.to_string().into_bytes()))
        }
        None => {}
    }
    h.set_mtime(meta.mtime);
    h.set_typeflag(kind.tar_type());
    if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
        h.set_device(meta.dev_major, meta.dev_minor);
    }
    for (typeflag, long) in gnu_long {
        let mut l = Header::new_gnu();
        l.set_name(b"", b"././@LongLink");
        extension_fields(&mut l, typeflag, long.len() as u64 + 1);
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(long);
        out.push(0);
        pad(out, long.len() as u64 + 1);
    }
    let mut records = Vec::new();
    for (key, value) in &pax {
        put_pax_record(&mut records, key.as_bytes(), value);
    }
    if with_xattrs {
        for (key, value) in &meta.xattrs {
            put_pax_record(
                &mut records,
                &[b"SCHILY.xattr.", key.as_slice()].concat(),
                value,
            );
        }
    }
    if !records.is_empty() {
        let mut x = Header::new_ustar();
        x.set_name(b"", b"././@PaxHeader");
        extension_fields(&mut x, b'x', records.len() as u64);
        out.extend_from_slice(x.as_bytes());
        out.extend_from_slice(&records);
        pad(out, records.len() as u64);
    }
    h.set_checksum();
    out.extend_from_slice(h.as_bytes());
}

/// The fixed fields of an extension entry: nothing in them varies with the entry described.
fn extension_fields(h: &mut Header, typeflag: u8, size: u64) {
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(0);
    h.set_typeflag(typeflag);
    h.set_checksum();
}

fn pad(out: &mut Vec<u8>, len: u64) {
    out.resize(out.len() + padding_of(len) as usize, 0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_a_slash_that_leaves_both_parts_in_their_fields() {
        let name: Vec<u8> = [&[b'p'; 120][..], b"/", &[b'n'; 90][..]].concat();
        let (prefix, base) = split_ustar_name(&name).unwrap();
        assert_eq!((prefix.len(), base.len()), (120, 90));
        let dir: Vec<u8> = [&[b'p'; 120][..], b"/"].concat();
        assert_eq!(
            split_ustar_name(&dir),
            None,
            "not at a directory's own slash"
        );
        assert_eq!(split_ustar_name(&[b'n'; 101]), None);
    }

    #[test]
    fn truncation_keeps_utf8_sequences_whole() {
        let name = [&[b'a'; 99][..], "é".as_bytes()].concat();
        assert_eq!(truncate_at_char(&name, 100), &name[..99]);
    }
}
