//! A normalised listing of an output tar, and the invariants every output must meet.
//!
//! The output is read with the `tar` crate, but only through `path_bytes()`,
//! `link_name_bytes()` and `pax_extensions()`: names stay bytes, never host paths.
//!
//! ```ignore
//! let l = Listing::parse(&tar_bytes);
//! l.assert_invariants();
//! assert_eq!(l.get("etc/passwd").content, b"root:x:0:0::/root:/bin/sh\n");
//! assert_eq!(l.get("etc").kind, OutKind::Dir);
//! ```

use super::image::sha256_hex;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Read;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    /// Any other type flag (which the output must not contain).
    Other(u8),
}

impl OutKind {
    fn from_flag(f: u8) -> OutKind {
        match f {
            b'0' | 0 | b'7' => OutKind::File,
            b'5' => OutKind::Dir,
            b'2' => OutKind::Symlink,
            b'1' => OutKind::Hardlink,
            b'3' => OutKind::Char,
            b'4' => OutKind::Block,
            b'6' => OutKind::Fifo,
            o => OutKind::Other(o),
        }
    }
    fn letter(self) -> char {
        match self {
            OutKind::File => '-',
            OutKind::Dir => 'd',
            OutKind::Symlink => 'l',
            OutKind::Hardlink => 'h',
            OutKind::Char => 'c',
            OutKind::Block => 'b',
            OutKind::Fifo => 'p',
            OutKind::Other(_) => '?',
        }
    }
    /// Regular files and hardlinks come after everything else in the output.
    pub fn is_file_like(self) -> bool {
        matches!(self, OutKind::File | OutKind::Hardlink)
    }
}

/// One entry of the output, with PAX overrides applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutEntry {
    /// The name exactly as the tar holds it (after PAX `path` / GNU long names).
    pub raw_path: Vec<u8>,
    /// The normalised key: the raw name less one trailing `/`; the root is `.`.
    pub path: Vec<u8>,
    pub kind: OutKind,
    /// Permission bits, setuid/setgid/sticky included (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub content: Vec<u8>,
    /// Hex sha256 of `content`.
    pub sha256: String,
    /// Symlink or hardlink target, verbatim.
    pub link: Option<Vec<u8>>,
    /// `SCHILY.xattr.*` records, name (without the prefix) to value.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub dev: Option<(u32, u32)>,
    /// uname/gname as written (header field or PAX).
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    /// Every PAX record of the entry (key, value), in order.
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
}

impl OutEntry {
    pub fn path_str(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
    pub fn link_str(&self) -> Option<String> {
        self.link
            .as_ref()
            .map(|l| String::from_utf8_lossy(l).into_owned())
    }
    /// One line: `TYPE MODE UID:GID SIZE SHA12 PATH [-> LINK] [xattrs]`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} {:04o} {}:{} {:>5} {} {:?}",
            self.kind.letter(),
            self.mode,
            self.uid,
            self.gid,
            self.size,
            &self.sha256[..12],
            String::from_utf8_lossy(&self.raw_path)
        );
        if let Some(l) = &self.link {
            let _ = write!(s, " -> {:?}", String::from_utf8_lossy(l));
        }
        if let Some((a, b)) = self.dev {
            let _ = write!(s, " dev {a},{b}");
        }
        for k in self.xattrs.keys() {
            let _ = write!(s, " xattr:{}", String::from_utf8_lossy(k));
        }
        s
    }
}

/// Normalises a name the way the product must: drop leading `/` and `./`, collapse `//`,
/// drop `.` components and the trailing `/`. The root is `.`.
pub fn normalize(name: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = name
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if parts.is_empty() {
        b".".to_vec()
    } else {
        parts.join(&b'/')
    }
}

fn parse_num(v: &[u8]) -> u64 {
    let s = std::str::from_utf8(v).expect("numeric PAX value");
    let int = s.split('.').next().unwrap();
    int.parse()
        .unwrap_or_else(|_| panic!("bad PAX number {s:?}"))
}

/// The output tar, entry by entry.
#[derive(Clone, Debug)]
pub struct Listing {
    pub entries: Vec<OutEntry>,
}

impl Listing {
    /// Reads a plain (uncompressed) tar.
    ///
    /// The `tar` crate frames the entries (headers, sizes, padding, base-256 numbers), but
    /// extension records are applied here: its PAX parser splits records at `\n` instead of
    /// using their length, so a binary xattr value holding a newline would read as
    /// malformed, and a long name holding one would silently fall back to the header's.
    pub fn parse(tar_bytes: &[u8]) -> Listing {
        let mut ar = tar::Archive::new(tar_bytes);
        let mut entries = Vec::new();
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut global: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut gnu_name: Option<Vec<u8>> = None;
        let mut gnu_link: Option<Vec<u8>> = None;
        for e in ar.entries().expect("output is a tar").raw(true) {
            let mut e = e.expect("output tar entry readable");
            let h = e.header().clone();
            let flag = h.entry_type().as_byte();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("entry content readable");
            match flag {
                b'x' => {
                    pax.extend(parse_pax_records(&data));
                    continue;
                }
                b'g' => {
                    global.extend(parse_pax_records(&data));
                    continue;
                }
                b'L' => {
                    gnu_name = Some(trim_nuls(data));
                    continue;
                }
                b'K' => {
                    gnu_link = Some(trim_nuls(data));
                    continue;
                }
                _ => {}
            }
            let pax = std::mem::take(&mut pax);
            let all: Vec<&(Vec<u8>, Vec<u8>)> = global.iter().chain(pax.iter()).collect();
            let last = |key: &[u8]| {
                all.iter()
                    .rev()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let raw_path = last(b"path")
                .or(gnu_name.take())
                .unwrap_or_else(|| h.path_bytes().into_owned());
            let header_link = last(b"linkpath")
                .or(gnu_link.take())
                .or_else(|| h.link_name_bytes().map(|l| l.into_owned()));
            let kind = OutKind::from_flag(flag);
            let link = match kind {
                OutKind::Symlink | OutKind::Hardlink => Some(header_link.unwrap_or_default()),
                _ => None,
            };
            let mut uid = h.uid().expect("uid field");
            let mut gid = h.gid().expect("gid field");
            let mut mtime = h.mtime().expect("mtime field");
            let mut uname = h.username_bytes().map(<[u8]>::to_vec).unwrap_or_default();
            let mut gname = h.groupname_bytes().map(<[u8]>::to_vec).unwrap_or_default();
            let mut xattrs = BTreeMap::new();
            for (k, v) in &all {
                match k.as_slice() {
                    b"uid" => uid = parse_num(v),
                    b"gid" => gid = parse_num(v),
                    b"mtime" => mtime = parse_num(v),
                    b"uname" => uname = v.clone(),
                    b"gname" => gname = v.clone(),
                    _ => {
                        if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                            xattrs.insert(name.to_vec(), v.clone());
                        }
                    }
                }
            }
            let dev = match kind {
                OutKind::Char | OutKind::Block => Some((
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                )),
                _ => None,
            };
            let size = data.len() as u64;
            let content = data;
            let pax: Vec<(Vec<u8>, Vec<u8>)> = all.into_iter().cloned().collect();
            let path = if kind == OutKind::Dir || raw_path.ends_with(b"/") {
                normalize_key(&raw_path)
            } else {
                raw_path.clone()
            };
            entries.push(OutEntry {
                path,
                raw_path,
                kind,
                mode: h.mode().expect("mode field") & 0o7777,
                uid,
                gid,
                mtime,
                size,
                sha256: sha256_hex(&content),
                content,
                link,
                xattrs,
                dev,
                uname,
                gname,
                pax,
            });
        }
        Listing { entries }
    }

    /// Every entry as one line, for failure messages.
    pub fn dump(&self) -> String {
        self.entries
            .iter()
            .map(|e| e.line())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The entry at `path` (normalised: `./a/` finds `a`, `.` or `./` the root), if any.
    pub fn find(&self, path: impl AsRef<[u8]>) -> Option<&OutEntry> {
        let key = normalize(path.as_ref());
        self.entries.iter().find(|e| e.path == key)
    }

    /// The entry at `path`; panics with the listing when it is missing.
    pub fn get(&self, path: impl AsRef<[u8]>) -> &OutEntry {
        let p = path.as_ref();
        self.find(p).unwrap_or_else(|| {
            panic!(
                "no entry {:?} in output:\n{}",
                String::from_utf8_lossy(p),
                self.dump()
            )
        })
    }

    pub fn contains(&self, path: impl AsRef<[u8]>) -> bool {
        self.find(path).is_some()
    }

    /// Asserts that `path` is absent.
    pub fn assert_absent(&self, path: impl AsRef<[u8]>) {
        let p = path.as_ref();
        assert!(
            self.find(p).is_none(),
            "{:?} must not be in the output:\n{}",
            String::from_utf8_lossy(p),
            self.dump()
        );
    }

    /// The normalised paths in output order (the root `.` included), lossily as strings.
    pub fn paths(&self) -> Vec<String> {
        self.entries.iter().map(OutEntry::path_str).collect()
    }

    /// The normalised paths, root excluded, sorted: handy to compare with an expected set.
    pub fn sorted_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.path != b".")
            .map(OutEntry::path_str)
            .collect();
        v.sort();
        v
    }

    /// The content a reader of the extracted tree sees at `path`: a hardlink's is its target's.
    pub fn content(&self, path: impl AsRef<[u8]>) -> Vec<u8> {
        let mut e = self.get(path);
        let mut hops = 0;
        while e.kind == OutKind::Hardlink {
            e = self.get(e.link.as_ref().unwrap());
            hops += 1;
            assert!(hops < 64, "hardlink loop in output:\n{}", self.dump());
        }
        assert_eq!(
            e.kind,
            OutKind::File,
            "{:?} is not a regular file:\n{}",
            e.path_str(),
            self.dump()
        );
        e.content.clone()
    }

    /// The rules every output must follow (layer-semantics.md, "Output tar content rules"):
    /// the root `./` first; clean names; each path once; no whiteouts; every parent an
    /// earlier directory (so nothing sits below a non-directory); directories, symlinks,
    /// FIFOs and devices first, in sorted order, then regular files and hardlinks; every
    /// hardlink after the entry it names, which is no directory (a regular file, or a
    /// symlink or device linked as such); uname/gname empty.
    pub fn assert_invariants(&self) {
        let dump = self.dump();
        let ctx = |msg: String| -> String { format!("{msg}\noutput:\n{dump}") };
        assert!(!self.entries.is_empty(), "empty output");
        let first = &self.entries[0];
        assert!(
            first.raw_path == b"./" && first.kind == OutKind::Dir,
            "{}",
            ctx("the first entry must be the root directory `./`".into())
        );

        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        let mut in_files = false;
        let mut prev_nonfile: Option<&[u8]> = None;
        let mut bytewise_sorted = true;
        let mut componentwise_sorted = true;
        for (i, e) in self.entries.iter().enumerate() {
            let name = String::from_utf8_lossy(&e.raw_path).into_owned();
            if i > 0 {
                // Clean names.
                let mut body: &[u8] = &e.raw_path;
                if e.kind == OutKind::Dir {
                    body = body.strip_suffix(b"/").unwrap_or(body);
                }
                assert!(
                    !body.is_empty(),
                    "{}",
                    ctx(format!("empty name at entry {i}"))
                );
                assert!(
                    !body.starts_with(b"/"),
                    "{}",
                    ctx(format!("absolute name {name:?}"))
                );
                for c in body.split(|&b| b == b'/') {
                    assert!(
                        !c.is_empty() && c != b"." && c != b"..",
                        "{}",
                        ctx(format!("unclean name {name:?}"))
                    );
                    // AUFS bookkeeping (`.wh..wh.plnk` and what lies below) is never output.
                    assert!(
                        !c.starts_with(b".wh..wh."),
                        "{}",
                        ctx(format!("AUFS bookkeeping in output: {name:?}"))
                    );
                }
                // A `.wh.` name is a whiteout only as a layer's last component; a directory of
                // that name is what an entry below it (`.wh.etc/file`) leaves, as containerd
                // extracts it.
                let base = body.rsplit(|&b| b == b'/').next().unwrap_or(body);
                assert!(
                    !base.starts_with(b".wh.") || e.kind == OutKind::Dir,
                    "{}",
                    ctx(format!("whiteout in output: {name:?}"))
                );
                assert_eq!(body, e.path.as_slice());
                // Parent directory earlier.
                let parent: &[u8] = match e.path.iter().rposition(|&b| b == b'/') {
                    Some(p) => &e.path[..p],
                    None => b".",
                };
                match seen.get(parent) {
                    Some(&j) => assert_eq!(
                        self.entries[j].kind,
                        OutKind::Dir,
                        "{}",
                        ctx(format!("{name:?} sits below a non-directory"))
                    ),
                    None => panic!(
                        "{}",
                        ctx(format!(
                            "the parent of {name:?} is not an earlier directory"
                        ))
                    ),
                }
            }
            // Each path once.
            if let Some(j) = seen.insert(&e.path, i) {
                panic!(
                    "{}",
                    ctx(format!("{name:?} appears twice (entries {j} and {i})"))
                );
            }
            assert!(
                !matches!(e.kind, OutKind::Other(_)),
                "{}",
                ctx(format!("unexpected entry type for {name:?}"))
            );
            // Phases and order.
            if e.kind.is_file_like() {
                in_files = true;
            } else {
                assert!(
                    !in_files,
                    "{}",
                    ctx(format!(
                        "{name:?} (not a regular file) comes after regular files"
                    ))
                );
                if i > 0 {
                    if let Some(p) = prev_nonfile {
                        if p >= e.path.as_slice() {
                            bytewise_sorted = false;
                        }
                        let pc: Vec<&[u8]> = p.split(|&b| b == b'/').collect();
                        let ec: Vec<&[u8]> = e.path.split(|&b| b == b'/').collect();
                        if pc >= ec {
                            componentwise_sorted = false;
                        }
                    }
                    prev_nonfile = Some(&e.path);
                }
            }
            // Hardlinks after their targets.
            if e.kind == OutKind::Hardlink {
                let target = e.link.as_deref().unwrap_or_default();
                // Usually a regular file; a hardlink to a symlink (or a device) is legal too
                // and stays one. A directory never is.
                match seen.get(target) {
                    Some(&j) if j < i => assert!(
                        !matches!(
                            self.entries[j].kind,
                            OutKind::Dir | OutKind::Hardlink | OutKind::Other(_)
                        ),
                        "{}",
                        ctx(format!(
                            "hardlink {name:?} names a {:?}",
                            self.entries[j].kind
                        ))
                    ),
                    _ => panic!(
                        "{}",
                        ctx(format!(
                            "hardlink {name:?} -> {:?} does not name an earlier entry",
                            String::from_utf8_lossy(target)
                        ))
                    ),
                }
                assert_eq!(e.size, 0, "{}", ctx(format!("hardlink {name:?} has data")));
            }
            // Numeric ids only.
            assert!(
                e.uname.is_empty() && e.gname.is_empty(),
                "{}",
                ctx(format!("{name:?} carries uname/gname"))
            );
        }
        assert!(
            bytewise_sorted || componentwise_sorted,
            "{}",
            ctx("directories/symlinks/devices are not in sorted path order".into())
        );
    }
}

fn trim_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Parses PAX extended header data: records `LEN KEY=VALUE\n`, LEN counting the whole
/// record, so values may hold any byte. Panics on a malformed record.
pub fn parse_pax_records(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .expect("PAX record length");
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "malformed PAX record length in {:?}",
                    String::from_utf8_lossy(rest)
                )
            });
        assert!(
            len > sp + 1 && len <= rest.len(),
            "PAX record length out of range"
        );
        let record = &rest[sp + 1..len];
        assert_eq!(
            record.last(),
            Some(&b'\n'),
            "PAX record must end with a newline"
        );
        let record = &record[..record.len() - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .expect("PAX record has a key");
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    out
}

fn normalize_key(raw: &[u8]) -> Vec<u8> {
    if raw == b"./" || raw == b"." {
        return b".".to_vec();
    }
    raw.strip_suffix(b"/").unwrap_or(raw).to_vec()
}

/// The raw headers of a tar, extension headers included: (type flag, magic+version bytes).
pub fn raw_headers(tar_bytes: &[u8]) -> Vec<(u8, [u8; 8])> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap().raw(true) {
        let e = e.unwrap();
        let h = e.header().as_bytes();
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&h[257..265]);
        out.push((h[156], magic));
    }
    out
}

// ------------------------------------------------------------------------------ map view

/// One output entry in the compact form map-style assertions read best in
/// (`t["etc"].kind == 'd'`): a view of an [`OutEntry`], never parsed on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    /// The normalised path; the root is `./`.
    pub path: Vec<u8>,
    /// `f` file, `d` directory, `l` symlink, `h` hardlink, `c`/`b` devices, `p` FIFO.
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub content: Vec<u8>,
    /// Symlink or hardlink target; empty for anything else.
    pub link: Vec<u8>,
    /// (major, minor) of a device; (0, 0) for anything else.
    pub dev: (u32, u32),
    /// Extended attributes by name, sorted.
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub uname: Vec<u8>,
}

impl Out {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

impl From<&OutEntry> for Out {
    fn from(e: &OutEntry) -> Out {
        let kind = match e.kind {
            OutKind::File => 'f',
            OutKind::Other(f) => panic!("unexpected type flag {:?}", f as char),
            k => k.letter(),
        };
        Out {
            path: if e.path == b"." {
                b"./".to_vec()
            } else {
                e.path.clone()
            },
            kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            content: e.content.clone(),
            link: e.link.clone().unwrap_or_default(),
            dev: e.dev.unwrap_or((0, 0)),
            xattrs: e
                .xattrs
                .iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.clone()))
                .collect(),
            uname: e.uname.clone(),
        }
    }
}

/// The output's entries in order, in the compact form; the invariants are NOT checked
/// (for a test that looks at an order or a duplicate itself).
pub fn list(tar_bytes: &[u8]) -> Vec<Out> {
    Listing::parse(tar_bytes)
        .entries
        .iter()
        .map(Out::from)
        .collect()
}

/// The output's entries by name (the root is `./`), after [`Listing::assert_invariants`].
pub fn tree(tar_bytes: &[u8]) -> BTreeMap<String, Out> {
    let listing = Listing::parse(tar_bytes);
    listing.assert_invariants();
    listing
        .entries
        .iter()
        .map(|e| {
            let out = Out::from(e);
            (out.name(), out)
        })
        .collect()
}

/// The content a path shows in a [`tree`]: its own for a file, its target's for a hardlink.
pub fn content_of(t: &BTreeMap<String, Out>, path: &str) -> Vec<u8> {
    let e = &t[path];
    match e.kind {
        'f' => e.content.clone(),
        'h' => content_of(t, &String::from_utf8_lossy(&e.link)),
        k => panic!("{path} is a {k}, not a file"),
    }
}
