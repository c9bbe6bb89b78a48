//! One 512-byte tar header: its fields read (octal, GNU base-256, NUL-terminated text) and
//! written, and its checksum. Formats: POSIX ustar, GNU (`ustar  \0`) and old v7.

use super::invalid;
use std::io;
use std::ops::Range;

pub const BLOCK: usize = 512;

// Field positions, as POSIX ustar lays them out; GNU differs only after the device numbers.
const NAME: Range<usize> = 0..100;
const MODE: Range<usize> = 100..108;
const UID: Range<usize> = 108..116;
const GID: Range<usize> = 116..124;
const SIZE: Range<usize> = 124..136;
const MTIME: Range<usize> = 136..148;
const CHECKSUM: Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: Range<usize> = 157..257;
const MAGIC: Range<usize> = 257..265;
const DEVMAJOR: Range<usize> = 329..337;
const DEVMINOR: Range<usize> = 337..345;
const PREFIX: Range<usize> = 345..500;
/// Old GNU sparse files: four (offset, length) pairs, the "another map block follows" flag
/// and the file's real size.
pub(super) const GNU_SPARSE: Range<usize> = 386..482;
pub(super) const GNU_IS_EXTENDED: usize = 482;
const GNU_REAL_SIZE: Range<usize> = 483..495;

const USTAR_MAGIC: &[u8; 8] = b"ustar\x0000";
const GNU_MAGIC: &[u8; 8] = b"ustar  \0";

/// Largest values the octal fields hold; larger ones need a PAX record (and base-256 for
/// readers without PAX).
pub const OCTAL8_MAX: u64 = 0o7777777;
pub const OCTAL12_MAX: u64 = 0o77777777777;

/// Padding after `size` bytes of content, up to the next block.
pub fn padding_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// A numeric field: octal (NUL/space padded, blank = 0) or GNU base-256.
pub fn number(field: &[u8], what: &str) -> io::Result<u64> {
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
    let start = field
        .iter()
        .position(|b| *b != b' ' && *b != 0)
        .unwrap_or(field.len());
    let text = &field[start..];
    let text = &text[..text
        .iter()
        .position(|b| *b == b' ' || *b == 0)
        .unwrap_or(text.len())];
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(text).map_err(|_| invalid(format!("bad {what} in tar header")))?;
    u64::from_str_radix(s, 8).map_err(|_| invalid(format!("bad {what} {s:?} in tar header")))
}

/// A text field up to its first NUL.
pub fn field_bytes(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// Octal when it fits, GNU base-256 otherwise.
fn put_number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if value < 8u64.pow(digits as u32) {
        put_octal(field, value);
    } else {
        field.fill(0);
        let n = field.len();
        field[n - 8..].copy_from_slice(&value.to_be_bytes());
        field[0] |= 0x80;
    }
}

/// A header block.
#[derive(Clone)]
pub struct Header {
    block: [u8; BLOCK],
}

impl Header {
    pub fn from_block(block: [u8; BLOCK]) -> Header {
        Header { block }
    }

    /// An empty POSIX ustar header.
    pub fn new_ustar() -> Header {
        let mut block = [0u8; BLOCK];
        block[MAGIC].copy_from_slice(USTAR_MAGIC);
        Header { block }
    }

    /// An empty GNU header (for `././@LongLink` records, which GNU tar writes that way).
    pub fn new_gnu() -> Header {
        let mut block = [0u8; BLOCK];
        block[MAGIC].copy_from_slice(GNU_MAGIC);
        Header { block }
    }

    pub fn as_bytes(&self) -> &[u8; BLOCK] {
        &self.block
    }

    /// A zero block: the end of an archive.
    pub fn is_zero(&self) -> bool {
        self.block.iter().all(|b| *b == 0)
    }

    /// The stored checksum matches, summed as unsigned bytes (POSIX) or as signed ones (what
    /// some old writers computed).
    pub fn checksum_ok(&self) -> io::Result<bool> {
        let stored = number(&self.block[CHECKSUM], "checksum")?;
        let mut unsigned: u64 = 0;
        let mut signed: i64 = 0;
        for (i, b) in self.block.iter().enumerate() {
            let b = if CHECKSUM.contains(&i) { b' ' } else { *b };
            unsigned += b as u64;
            signed += (b as i8) as i64;
        }
        Ok(stored == unsigned || stored as i64 == signed)
    }

    fn is_ustar(&self) -> bool {
        &self.block[MAGIC] == USTAR_MAGIC
    }

    fn is_gnu(&self) -> bool {
        &self.block[MAGIC] == GNU_MAGIC
    }

    pub fn typeflag(&self) -> u8 {
        self.block[TYPEFLAG]
    }

    /// The size field: bytes of content that follow (a PAX `size` record overrides it).
    pub fn size(&self) -> io::Result<u64> {
        number(&self.block[SIZE], "size")
    }

    /// The name, with the ustar prefix joined on. Only a ustar header has a prefix: in a GNU
    /// header the same bytes hold access times and sparse maps.
    pub fn name(&self) -> Vec<u8> {
        let base = field_bytes(&self.block[NAME]);
        let prefix = if self.is_ustar() {
            field_bytes(&self.block[PREFIX])
        } else {
            b""
        };
        if prefix.is_empty() {
            base.to_vec()
        } else {
            [prefix, b"/", base].concat()
        }
    }

    pub fn link_name(&self) -> &[u8] {
        field_bytes(&self.block[LINKNAME])
    }

    /// Permission bits, setuid, setgid and sticky; any file-type bits are dropped.
    pub fn mode(&self) -> io::Result<u32> {
        Ok((number(&self.block[MODE], "mode")? & 0o7777) as u32)
    }

    pub fn uid(&self) -> io::Result<u64> {
        number(&self.block[UID], "uid")
    }

    pub fn gid(&self) -> io::Result<u64> {
        number(&self.block[GID], "gid")
    }

    pub fn mtime(&self) -> io::Result<i64> {
        Ok(number(&self.block[MTIME], "mtime")? as i64)
    }

    /// Device numbers; v7 headers have none.
    pub fn device(&self) -> io::Result<(u32, u32)> {
        if !(self.is_ustar() || self.is_gnu()) {
            return Ok((0, 0));
        }
        Ok((
            number(&self.block[DEVMAJOR], "devmajor")? as u32,
            number(&self.block[DEVMINOR], "devminor")? as u32,
        ))
    }

    /// An old GNU sparse header (`S`): the file's real size.
    pub fn gnu_sparse_real_size(&self) -> io::Result<u64> {
        number(&self.block[GNU_REAL_SIZE], "sparse real size")
    }

    pub(super) fn raw(&self) -> &[u8; BLOCK] {
        &self.block
    }

    pub fn set_typeflag(&mut self, typeflag: u8) {
        self.block[TYPEFLAG] = typeflag;
    }

    /// Copies `name` into the name field (and `prefix` into the ustar prefix). Both must fit:
    /// what does not goes in an extension record, which is the writer's decision.
    pub fn set_name(&mut self, prefix: &[u8], name: &[u8]) {
        self.block[NAME][..name.len()].copy_from_slice(name);
        self.block[PREFIX][..prefix.len()].copy_from_slice(prefix);
    }

    pub fn set_link_name(&mut self, link: &[u8]) {
        self.block[LINKNAME][..link.len()].copy_from_slice(link);
    }

    pub fn set_mode(&mut self, mode: u32) {
        put_octal(&mut self.block[MODE], mode as u64 & 0o7777);
    }

    pub fn set_uid(&mut self, uid: u64) {
        put_number(&mut self.block[UID], uid);
    }

    pub fn set_gid(&mut self, gid: u64) {
        put_number(&mut self.block[GID], gid);
    }

    pub fn set_size(&mut self, size: u64) {
        put_number(&mut self.block[SIZE], size);
    }

    /// Octal seconds, clamped to what the field holds (a PAX record carries the rest).
    pub fn set_mtime(&mut self, mtime: i64) {
        put_octal(
            &mut self.block[MTIME],
            mtime.clamp(0, OCTAL12_MAX as i64) as u64,
        );
    }

    pub fn set_device(&mut self, major: u32, minor: u32) {
        put_number(&mut self.block[DEVMAJOR], major as u64);
        put_number(&mut self.block[DEVMINOR], minor as u64);
    }

    /// Computes and stores the checksum; the last change to a header.
    pub fn set_checksum(&mut self) {
        self.block[CHECKSUM].fill(b' ');
        let sum: u32 = self.block.iter().map(|b| *b as u32).sum();
        self.block[CHECKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_octal_blank_and_base256() {
        assert_eq!(number(b"0000644\0", "mode").unwrap(), 0o644);
        assert_eq!(number(b"  644 \0\0", "mode").unwrap(), 0o644);
        assert_eq!(number(b"\0\0\0\0\0\0\0\0", "mode").unwrap(), 0);
        assert_eq!(
            number(&[0x80, 0, 0, 0, 0xb2, 0xd0, 0x5e, 0x00], "uid").unwrap(),
            3_000_000_000
        );
        assert!(number(&[0xff; 8], "uid")
            .unwrap_err()
            .to_string()
            .contains("negative uid"));
        assert!(number(
            &[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "size"
        )
        .unwrap_err()
        .to_string()
        .contains("overflows"));
        assert!(number(b"0009\0", "size").is_err());
    }

    #[test]
    fn numbers_written_are_numbers_read() {
        for value in [0, 0o7777777, 0o10000000, 3_000_000_000, 1 << 60] {
            let mut field = [0u8; 8];
            put_number(&mut field, value);
            assert_eq!(number(&field, "uid").unwrap(), value, "{value}");
        }
        let mut field = [0u8; 12];
        put_number(&mut field, OCTAL12_MAX + 1);
        assert_eq!(number(&field, "size").unwrap(), OCTAL12_MAX + 1);
    }

    #[test]
    fn a_written_header_reads_back_and_checks() {
        let mut h = Header::new_ustar();
        h.set_name(b"usr/share", b"file");
        h.set_link_name(b"target");
        h.set_mode(0o104755);
        h.set_uid(3_000_000_000);
        h.set_gid(7);
        h.set_size(5);
        h.set_mtime(1_700_000_000);
        h.set_typeflag(b'3');
        h.set_device(1, 3);
        h.set_checksum();
        assert!(h.checksum_ok().unwrap());
        assert_eq!(h.name(), b"usr/share/file");
        assert_eq!(h.link_name(), b"target");
        assert_eq!(h.mode().unwrap(), 0o4755);
        assert_eq!(h.uid().unwrap(), 3_000_000_000);
        assert_eq!(h.gid().unwrap(), 7);
        assert_eq!(h.size().unwrap(), 5);
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
        assert_eq!(h.device().unwrap(), (1, 3));
        let mut corrupt = h.as_bytes().to_owned();
        corrupt[0] ^= 1;
        assert!(!Header::from_block(corrupt).checksum_ok().unwrap());
    }

    #[test]
    fn only_ustar_headers_have_a_prefix_and_v7_no_devices() {
        let mut gnu = Header::new_gnu();
        gnu.set_name(b"not-a-prefix", b"name");
        assert_eq!(gnu.name(), b"name");
        let mut v7 = Header::from_block([0u8; BLOCK]);
        v7.set_device(1, 3);
        assert_eq!(v7.device().unwrap(), (0, 0));
    }
}
