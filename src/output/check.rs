//! The invariants every output tar must meet, checked on the bytes: used by the fuzz targets
//! on whatever the flattener produced from arbitrary layers.
//!
//! - each path appears once; the root, if present, is `./`;
//! - no name is absolute or has a `..` component;
//! - no path lies below a path written earlier as a non-directory;
//! - every hardlink names a path written earlier as a regular file (or another non-directory).

use crate::layer::tar_reader::TarReader;
use std::collections::HashSet;

pub fn check_tar(bytes: &[u8]) -> Result<usize, String> {
    let mut tar = TarReader::new(bytes);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut non_dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut count = 0;
    while let Some(e) = tar
        .next_entry()
        .map_err(|e| format!("output is not a readable tar: {e}"))?
    {
        count += 1;
        let mut name = e.name.clone();
        if name.len() > 1 && name.ends_with(b"/") {
            name.pop();
        }
        let show = String::from_utf8_lossy(&name).into_owned();
        if name.starts_with(b"/") || name.split(|b| *b == b'/').any(|c| c == b"..") {
            return Err(format!("unsafe name {show:?}"));
        }
        if !seen.insert(name.clone()) {
            return Err(format!("{show:?} appears twice"));
        }
        for (i, b) in name.iter().enumerate() {
            if *b == b'/' && non_dirs.contains(&name[..i]) {
                return Err(format!("{show:?} lies below a non-directory"));
            }
        }
        match e.typeflag {
            b'5' => {}
            b'1' => {
                if !non_dirs.contains(&e.link) {
                    return Err(format!(
                        "hardlink {show:?} names {:?}, not written before",
                        String::from_utf8_lossy(&e.link)
                    ));
                }
                non_dirs.insert(name);
            }
            _ => {
                non_dirs.insert(name);
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::entry::{EntryKind, EntryMeta};
    use crate::output::tar_writer::TarWriter;

    fn meta(kind: EntryKind) -> EntryMeta {
        let mut m = EntryMeta::implicit_dir(Vec::new());
        m.kind = kind;
        m
    }

    #[test]
    fn accepts_good_and_names_each_violation() {
        let mut w = TarWriter::new(Vec::new());
        w.append_contentless(b"", &meta(EntryKind::Directory))
            .unwrap();
        w.append_file(b"a", &meta(EntryKind::Regular), &mut &b""[..])
            .unwrap();
        w.append_hardlink(b"b", b"a", &meta(EntryKind::Regular))
            .unwrap();
        assert_eq!(check_tar(&w.finish().unwrap()), Ok(3));

        let mut w = TarWriter::new(Vec::new());
        w.append_hardlink(b"b", b"a", &meta(EntryKind::Regular))
            .unwrap();
        assert!(check_tar(&w.finish().unwrap())
            .unwrap_err()
            .contains("not written before"));

        let mut w = TarWriter::new(Vec::new());
        w.append_file(b"a", &meta(EntryKind::Regular), &mut &b""[..])
            .unwrap();
        w.append_file(b"a/b", &meta(EntryKind::Regular), &mut &b""[..])
            .unwrap();
        assert!(check_tar(&w.finish().unwrap())
            .unwrap_err()
            .contains("below"));

        let mut w = TarWriter::new(Vec::new());
        w.append_file(b"a", &meta(EntryKind::Regular), &mut &b""[..])
            .unwrap();
        w.append_file(b"a", &meta(EntryKind::Regular), &mut &b""[..])
            .unwrap();
        assert!(check_tar(&w.finish().unwrap())
            .unwrap_err()
            .contains("twice"));
    }
}
