//! The entry model: what a tar header says (`RawEntry`), and what the flattened file system
//! keeps of it (`EntryMeta`). Layers produce it and the output writer consumes it, so it
//! lives with the format rather than with either stage.
//!
//! Names stay bytes from start to end: never a `Path`, which on Windows would reject
//! non-UTF-8 names and turn a backslash (an ordinary character in a Linux name) into `/`.

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Regular,
    Directory,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

impl EntryKind {
    /// The kind a header's type flag names, or `None` for a type with no place in a file
    /// system (extension records, tape volumes...). `name` is the raw entry name: pre-POSIX
    /// tars mark directories only by a trailing slash.
    pub fn from_typeflag(typeflag: u8, name: &[u8]) -> Option<EntryKind> {
        Some(match typeflag {
            b'0' | 0 if name.ends_with(b"/") => EntryKind::Directory,
            b'0' | 0 | b'7' => EntryKind::Regular,
            b'1' => EntryKind::Hardlink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            _ => return None,
        })
    }

    pub fn tar_type(self) -> u8 {
        match self {
            EntryKind::Regular => b'0',
            EntryKind::Hardlink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::CharDevice => b'3',
            EntryKind::BlockDevice => b'4',
            EntryKind::Directory => b'5',
            EntryKind::Fifo => b'6',
        }
    }
}

/// Everything about an entry except its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Normalised: no leading `/` or `./`, no empty or `.` components, no trailing `/`.
    /// The root directory is the empty name.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (07777).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Whole seconds since the epoch.
    pub mtime: i64,
    /// The PAX `mtime` record as written, when it carried more than whole seconds.
    pub mtime_exact: Option<String>,
    /// Content length (regular files only; 0 for everything else).
    pub size: u64,
    /// Symlink target verbatim, or the normalised path a hardlink names.
    pub link: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes, sorted by name, so that output is deterministic.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryMeta {
    /// The parent directories a layer does not list: root-owned, 0755, as containerd and
    /// docker create them.
    pub fn implicit_dir(path: Vec<u8>) -> EntryMeta {
        EntryMeta {
            path,
            kind: EntryKind::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_exact: None,
            size: 0,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }
}

/// For messages: a name as printable text, with non-UTF-8 bytes escaped.
pub fn display_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(s) => s.to_string(),
        Err(_) => name.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_flags_and_kinds_round_trip() {
        for kind in [
            EntryKind::Regular,
            EntryKind::Directory,
            EntryKind::Symlink,
            EntryKind::Hardlink,
            EntryKind::CharDevice,
            EntryKind::BlockDevice,
            EntryKind::Fifo,
        ] {
            assert_eq!(EntryKind::from_typeflag(kind.tar_type(), b"x"), Some(kind));
        }
        assert_eq!(
            EntryKind::from_typeflag(0, b"old/"),
            Some(EntryKind::Directory)
        );
        assert_eq!(
            EntryKind::from_typeflag(b'7', b"c"),
            Some(EntryKind::Regular)
        );
        assert_eq!(EntryKind::from_typeflag(b'V', b"volume"), None);
    }
}
