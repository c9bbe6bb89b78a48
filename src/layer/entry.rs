//! One tar entry of a layer, reduced to what the flattened file system needs, with its name
//! normalised and judged (hostile names refused, whiteouts recognised).
//!
//! Names stay bytes from start to end: never a `Path`, which on Windows would reject
//! non-UTF-8 names and turn a backslash (an ordinary character in a Linux name) into `/`.

use crate::error::bail_kind;
use anyhow::Result;

use crate::tar::RawEntry;

/// The entry model is the tar codec's; the layer rules below are this module's.
pub use crate::tar::{display_name, EntryKind, EntryMeta};

/// What an entry does to the layers below, besides (or instead of) adding itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// An ordinary entry: add or replace this path.
    Add(EntryMeta),
    /// `DIR/.wh.NAME`: remove `DIR/NAME` of the layers below.
    Whiteout(Vec<u8>),
    /// `DIR/.wh..wh..opq`: hide all children of `DIR` from the layers below.
    Opaque(Vec<u8>),
    /// AUFS bookkeeping (`.wh..wh.plnk` and friends): never part of the file system.
    Ignore,
}

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Normalises an entry name as tar and containerd do (`./a//b/` is `a/b`, a leading `/` is
/// dropped, `a/b/..` is `a`) and refuses names that would leave the root.
pub fn normalize_name(name: &[u8]) -> Result<Vec<u8>> {
    normalize(name, "entry name")
}

/// A hardlink's target, normalised as its name is. A target that climbs above the root is
/// refused (as moby does) rather than clamped to it (containerd, umoci): no image builder
/// writes one, and a clamped link would silently name a different file than the layer says.
pub fn normalize_link_target(link: &[u8]) -> Result<Vec<u8>> {
    normalize(link, "hardlink target")
}

/// `what` says which name this is ("entry name", "hardlink target") in messages.
fn normalize(name: &[u8], what: &str) -> Result<Vec<u8>> {
    if name.contains(&0) {
        bail_kind!(
            HostileInput,
            "{what} {:?} contains a NUL byte",
            display_name(name)
        );
    }
    if name.len() > crate::limits::MAX_PATH_LEN * 2 {
        bail_kind!(
            HostileInput,
            "{what} is {} bytes long, more than the {}-byte limit",
            name.len(),
            crate::limits::MAX_PATH_LEN
        );
    }
    // A `..` is resolved lexically, before any symlink is looked at, as Go's filepath.Clean
    // does for containerd and moby: `a/b/..` is `a` whatever `a/b` is.
    let mut parts: Vec<&[u8]> = Vec::new();
    for component in name.split(|b| *b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    bail_kind!(HostileInput,
                        "{what} {:?} climbs above the root with '..': refusing a layer that could write outside the root file system",
                        display_name(name)
                    );
                }
            }
            c => parts.push(c),
        }
    }
    let depth = parts.len();
    let out = parts.join(&b'/');
    if out.len() > crate::limits::MAX_PATH_LEN || depth > crate::limits::MAX_PATH_DEPTH {
        bail_kind!(HostileInput,
            "{what} {:?}... is {} bytes and {depth} levels deep, beyond the limits of {} bytes and {} levels",
            display_name(&out[..out.len().min(64)]),
            out.len(),
            crate::limits::MAX_PATH_LEN,
            crate::limits::MAX_PATH_DEPTH
        );
    }
    Ok(out)
}

pub fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// Classifies one tar entry and reduces it to what the flattened tree needs.
pub fn read_entry(raw: RawEntry) -> Result<Change> {
    let path = normalize_name(&raw.name)?;
    let Some(kind) = EntryKind::from_typeflag(raw.typeflag, &raw.name) else {
        bail_kind!(
            Unsupported,
            "entry {:?} has unsupported tar type {:?}",
            display_name(&raw.name),
            raw.typeflag as char
        );
    };

    // AUFS keeps hardlink and orphan bookkeeping in `.wh..wh.plnk/` and friends: everything
    // at or below such a name is metadata. Any other `.wh.` prefix only means something in
    // the last component: `.wh.etc/file` is a file in a directory named `.wh.etc`, which is
    // what containerd extracts and what overlay storage then shows.
    let mut ancestors = path.split(|b| *b == b'/').rev().skip(1);
    if ancestors.any(|c| c.starts_with(b".wh..wh.")) {
        return Ok(Change::Ignore);
    }
    let base = base_name(&path);
    if let Some(rest) = base.strip_prefix(WHITEOUT_PREFIX) {
        let dir = parent_of(&path).to_vec();
        if base == OPAQUE {
            return Ok(Change::Opaque(dir));
        }
        if rest.starts_with(WHITEOUT_PREFIX) {
            return Ok(Change::Ignore);
        }
        if rest.is_empty() {
            bail_kind!(
                HostileInput,
                "entry {:?} is a whiteout without a name ('.wh.' alone is invalid)",
                display_name(&raw.name)
            );
        }
        if rest == b"." || rest == b".." {
            bail_kind!(
                HostileInput,
                "entry {:?} is a hostile whiteout",
                display_name(&raw.name)
            );
        }
        return Ok(Change::Whiteout(join(&dir, rest)));
    }

    let mut xattrs = raw.xattrs;
    xattrs.sort();
    xattrs.dedup_by(|a, b| a.0 == b.0);

    let link = match kind {
        EntryKind::Symlink => raw.link,
        EntryKind::Hardlink => {
            let normalized = normalize_link_target(&raw.link)?;
            if normalized.is_empty() {
                bail_kind!(
                    HostileInput,
                    "hardlink {:?} names the root directory",
                    display_name(&raw.name)
                );
            }
            normalized
        }
        _ => Vec::new(),
    };
    if path.is_empty() && kind != EntryKind::Directory {
        bail_kind!(
            HostileInput,
            "entry {:?} would replace the root directory with a non-directory",
            display_name(&raw.name)
        );
    }
    let (dev_major, dev_minor) = match kind {
        EntryKind::CharDevice | EntryKind::BlockDevice => (raw.dev_major, raw.dev_minor),
        _ => (0, 0),
    };
    // Linux ignores a symlink's mode and always shows 0777 (lstat, `docker export`); the
    // header's value (often 0644) would be a difference no extractor can reproduce.
    let mode = if kind == EntryKind::Symlink {
        0o777
    } else {
        raw.mode
    };
    let size = if kind == EntryKind::Regular {
        raw.size
    } else {
        0
    };
    Ok(Change::Add(EntryMeta {
        path,
        kind,
        mode,
        uid: raw.uid,
        gid: raw.gid,
        mtime: raw.mtime,
        mtime_exact: raw.mtime_exact,
        size,
        link,
        dev_major,
        dev_minor,
        xattrs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize_name(b"./a//b/").unwrap(), b"a/b");
        assert_eq!(normalize_name(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize_name(b"./").unwrap(), b"");
        assert_eq!(normalize_name(b"a\\b").unwrap(), b"a\\b");
        assert_eq!(normalize_name(b"caf\xe9").unwrap(), b"caf\xe9");
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [&b"../etc/passwd"[..], b"a/../../b", b"/..", b"./../x/.."] {
            let err = normalize_name(bad).unwrap_err();
            assert_eq!(
                crate::error::classify(&err),
                crate::error::ErrorKind::HostileInput
            );
            let err = err.to_string();
            assert!(
                err.contains("entry name") && err.contains("climbs above the root"),
                "{err}"
            );
        }
    }

    #[test]
    fn dotdot_that_stays_inside_the_root_is_resolved() {
        assert_eq!(normalize_name(b"a/..").unwrap(), b"");
        assert_eq!(normalize_name(b"localetc/sub/..").unwrap(), b"localetc");
        assert_eq!(normalize_name(b"dne/../.wh.etc").unwrap(), b".wh.etc");
        assert_eq!(normalize_name(b"/a/b/../../c").unwrap(), b"c");
    }

    #[test]
    fn hardlink_target_above_the_root_is_named_as_a_link_target() {
        let err = normalize_link_target(b"../../../link")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("hardlink target \"../../../link\" climbs above the root"),
            "{err}"
        );
    }

    #[test]
    fn overlong_and_overdeep_names_are_refused() {
        let long = vec![b'a'; crate::limits::MAX_PATH_LEN + 1];
        assert!(normalize_name(&long).is_err());
        let ok = vec![b'a'; crate::limits::MAX_PATH_LEN];
        assert!(normalize_name(&ok).is_ok());
        let deep = "d/".repeat(crate::limits::MAX_PATH_DEPTH + 1);
        assert!(normalize_name(deep.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("levels"));
    }

    #[test]
    fn parents_and_joins() {
        assert_eq!(parent_of(b"a/b/c"), b"a/b");
        assert_eq!(parent_of(b"a"), b"");
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a", b"x"), b"a/x");
    }
}
