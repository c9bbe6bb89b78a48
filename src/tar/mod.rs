//! The tar codec: the format, read and written in one place, below every stage that uses it.
//!
//! Header fields, PAX and GNU extension records, sparse maps, the entry model, and the
//! ceilings that keep a hostile archive from holding memory.
//!
//! Three walkers use it and none parses a field itself: the streaming layer reader
//! (`layer::tar_reader`), the seeking index of outer archives (`source::store`) and the
//! output writer (`output::tar_writer`). So an octal number, a checksum or a PAX record
//! means the same thing wherever the product opens or writes a tar. (tar-rs shares its
//! `header.rs` and `pax.rs` between its reader and its builder in the same way.) Nothing
//! here reads or writes a stream: the walkers own their I/O, their errors' context (a layer
//! digest, a byte offset) and what they skip.

pub mod entry;
pub mod header;
pub mod pax;
pub mod sparse;
pub mod write;

pub use entry::{display_name, EntryKind, EntryMeta, RawEntry};
pub use header::{padding_of, Header, BLOCK};
pub use pax::{Extension, Extensions};

use crate::limits::MAX_PATH_LEN;
use std::io;

/// Largest GNU long-name record: a raw name may be twice [`MAX_PATH_LEN`] before
/// normalisation removes its `./` and `//`, plus the terminating NUL.
pub const MAX_LONG_NAME: u64 = MAX_PATH_LEN as u64 * 2 + 1;

/// Format errors are `InvalidData`, so a walker can tell a hostile archive from a failing
/// disk or network.
pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A PAX record's decimal value; `what` names the record in the error.
pub(crate) fn pax_decimal(what: &str, value: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            invalid(format!(
                "bad PAX {what} {:?}",
                String::from_utf8_lossy(value)
            ))
        })
}
