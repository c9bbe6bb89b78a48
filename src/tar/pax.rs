//! Extension records: PAX extended headers (`x`, and global `g`) and GNU long names (`L`,
//! `K`), which describe the header that follows them.

use super::header::{field_bytes, Header};
use super::sparse::{self, SparseRecords, SparseStart};
use super::{display_name, invalid, pax_decimal, RawEntry, MAX_LONG_NAME};
use crate::limits::MAX_PAX_SIZE;
use std::io;

/// An entry that only describes the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    Pax,
    /// Records for every later entry. None of the keys a global header may carry matters to
    /// a file system, so it is read (or skipped) and dropped.
    GlobalPax,
    LongName,
    LongLink,
}

impl Extension {
    pub fn of(typeflag: u8) -> Option<Extension> {
        match typeflag {
            b'x' => Some(Extension::Pax),
            b'g' => Some(Extension::GlobalPax),
            b'L' => Some(Extension::LongName),
            b'K' => Some(Extension::LongLink),
            _ => None,
        }
    }

    /// For messages.
    pub fn what(self) -> &'static str {
        match self {
            Extension::Pax => "PAX header",
            Extension::GlobalPax => "global PAX header",
            Extension::LongName => "GNU long name",
            Extension::LongLink => "GNU long link name",
        }
    }

    /// Refuses a record larger than any real one before it is read into memory: a PAX
    /// header holds a long name and a few xattrs; a long name is a path.
    pub fn check_size(self, size: u64) -> io::Result<()> {
        let limit = match self {
            Extension::Pax | Extension::GlobalPax => MAX_PAX_SIZE,
            Extension::LongName | Extension::LongLink => MAX_LONG_NAME,
        };
        if size > limit {
            return Err(invalid(format!(
                "{} of {size} bytes exceeds the {limit}-byte limit",
                self.what()
            )));
        }
        Ok(())
    }
}

/// The `LEN KEY=VALUE\n` records of a PAX extended header, as (key, value) pairs. Trailing
/// NUL padding ends them.
pub fn pax_records(data: &[u8]) -> io::Result<Vec<(&[u8], &[u8])>> {
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

/// Appends one `LEN KEY=VALUE\n` record, where LEN counts its own digits.
pub fn put_pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let start = out.len();
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    debug_assert_eq!(out.len() - start, len);
}

/// Decodes `LIBARCHIVE.xattr.*` names (percent-encoded).
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

/// What the extension entries before a header say about it. Each walker collects them
/// while it reads extension entries and hands them over with the header they describe.
#[derive(Default)]
pub struct Extensions {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, Option<String>)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: SparseRecords,
    /// An extension for the next entry was read: the archive may not end here.
    pending: bool,
}

impl Extensions {
    /// Takes in one extension entry's content.
    pub fn add(&mut self, kind: Extension, data: &[u8]) -> io::Result<()> {
        match kind {
            Extension::Pax => self.add_pax(data)?,
            Extension::GlobalPax => return Ok(()),
            Extension::LongName => self.path = Some(field_bytes(data).to_vec()),
            Extension::LongLink => self.link = Some(field_bytes(data).to_vec()),
        }
        self.pending = true;
        Ok(())
    }

    /// Whether an extension waits for the entry it describes.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// The entry's name: a PAX `path` or GNU long name, else the header's.
    pub fn name(&self, header: &Header) -> Vec<u8> {
        match &self.path {
            Some(p) => p.clone(),
            None => header.name(),
        }
    }

    /// The link target: a PAX `linkpath` or GNU long link name, else the header's.
    pub fn link_name(&self, header: &Header) -> Vec<u8> {
        match &self.link {
            Some(l) => l.clone(),
            None => header.link_name().to_vec(),
        }
    }

    /// The content size: a PAX `size` record, else the header's.
    pub fn size(&self, header: &Header) -> io::Result<u64> {
        match self.size {
            Some(s) => Ok(s),
            None => header.size(),
        }
    }

    /// The whole entry, every field from a record where one was given, and whether it is a
    /// sparse file. The extensions are used up: they never reach the entry after.
    pub fn take_entry(&mut self, header: &Header) -> io::Result<(RawEntry, Option<SparseStart>)> {
        let ext = std::mem::take(self);
        let mut name = match ext.path {
            Some(p) => p,
            None => header.name(),
        };
        let mut typeflag = header.typeflag();
        let sparse = sparse::start(header, ext.sparse, &mut name, &mut typeflag)?;
        let size = match ext.size {
            Some(s) => s,
            None => header.size()?,
        };
        // No real entry comes near 2^63 bytes; a size whose padding overflows would
        // otherwise wrap a reader's skip and let the next "entry" start inside this one.
        if size > i64::MAX as u64 {
            return Err(invalid(format!(
                "{:?} claims an impossible size of {size} bytes",
                display_name(&name)
            )));
        }
        let (mtime, mtime_exact) = match ext.mtime {
            Some(m) => m,
            None => (header.mtime()?, None),
        };
        let (dev_major, dev_minor) = header.device()?;
        let entry = RawEntry {
            name,
            link: match ext.link {
                Some(l) => l,
                None => header.link_name().to_vec(),
            },
            typeflag,
            mode: header.mode()?,
            uid: match ext.uid {
                Some(u) => u,
                None => header.uid()?,
            },
            gid: match ext.gid {
                Some(g) => g,
                None => header.gid()?,
            },
            mtime,
            mtime_exact,
            size,
            dev_major,
            dev_minor,
            xattrs: ext.xattrs,
        };
        Ok((entry, sparse))
    }

    fn add_pax(&mut self, data: &[u8]) -> io::Result<()> {
        for (key, value) in pax_records(data)? {
            let num = |what: &str| pax_decimal(what, value);
            match key {
                b"path" => self.path = Some(value.to_vec()),
                b"linkpath" => self.link = Some(value.to_vec()),
                b"size" => self.size = Some(num("size")?),
                b"uid" => self.uid = Some(num("uid")?),
                b"gid" => self.gid = Some(num("gid")?),
                b"mtime" => {
                    let text = String::from_utf8_lossy(value).into_owned();
                    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
                    let secs: i64 = whole
                        .parse()
                        .map_err(|_| invalid(format!("bad PAX mtime {text:?}")))?;
                    let exact = (!frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()))
                        .then_some(text);
                    self.mtime = Some((secs, exact));
                }
                k if k.starts_with(b"SCHILY.xattr.") => {
                    self.xattrs.push((k[13..].to_vec(), value.to_vec()));
                }
                k if k.starts_with(b"LIBARCHIVE.xattr.") => {
                    let value = base64_decode(value)
                        .ok_or_else(|| invalid("bad base64 in a LIBARCHIVE.xattr record".into()))?;
                    self.xattrs.push((percent_decode(&k[17..]), value));
                }
                k if k.starts_with(b"GNU.sparse.") => self.sparse.add(&k[11..], value)?,
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut r = Vec::new();
        put_pax_record(&mut r, b"a", b"b");
        assert_eq!(r, b"6 a=b\n");
        let mut r = Vec::new();
        put_pax_record(&mut r, b"path", &[b'x'; 95]);
        assert_eq!(r.len(), 105);
        assert!(r.starts_with(b"105 path="));
        assert_eq!(pax_records(&r).unwrap(), [(&b"path"[..], &[b'x'; 95][..])]);
    }

    #[test]
    fn malformed_records_are_refused() {
        for bad in [&b"5 a=b\n"[..], b"x a=b\n", b"6 ab\n\n", b"6 a=bc"] {
            assert!(pax_records(bad).is_err(), "{:?}", bad.escape_ascii());
        }
        assert!(pax_records(b"6 a=b\n\0\0\0").is_ok());
    }

    #[test]
    fn base64_and_percent() {
        assert_eq!(base64_decode(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode(b"aGVsbG8").unwrap(), b"hello");
        assert_eq!(percent_decode(b"a%2Fb%zz"), b"a/b%zz");
    }

    #[test]
    fn extension_limits_depend_on_the_kind() {
        assert!(Extension::Pax.check_size(MAX_PAX_SIZE).is_ok());
        let err = Extension::LongName
            .check_size(MAX_LONG_NAME + 1)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("GNU long name of"), "{err}");
        assert!(err.contains("limit"), "{err}");
    }
}
