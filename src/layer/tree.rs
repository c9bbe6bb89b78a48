//! The layer rules: stacking changesets into the final file-system tree.
//!
//! Layers are applied bottom to top onto an in-memory tree of *metadata* only. Each non-
//! directory in the tree points at an inode: the (layer, entry) whose content it shows. A
//! hardlink points at the inode its target had at that moment, so an upper layer replacing
//! the target does not change what the link shows. Content never enters the tree; the emit
//! pass fetches it from the layer stream afterwards, and with it a regular file's metadata,
//! which the tree does not keep either.
//!
//! Within one layer, whiteouts and opaque markers act on the layers *below* only, whatever
//! their position in the tar; so a layer's deletions are applied before its additions, and
//! the additions in tar order (a later entry for a path replaces an earlier one).
//!
//! Memory is what bounds the number of paths, so the tree is flat arrays (docs/design.md,
//! "The tree in memory"): a node is a parent id and a name in one byte arena, found through
//! an open-addressing table keyed by (parent, name); an inode is (layer, entry, size). A
//! deleted node is only marked: whatever hangs below it is unreachable from then on, and a
//! parent is always older (a smaller id) than its children, so one pass in id order tells
//! which nodes are still in the tree.

use super::entry::{display_name, join, Change, EntryKind, EntryMeta};
use crate::error::bail_kind;
use anyhow::{bail, Result};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

pub type InodeId = u32;
type NodeId = u32;
/// "No node", "no inode", "no metadata" (an implicit directory).
const NONE: u32 = u32::MAX;

/// Symlinks followed to resolve one path, as Linux's `MAXSYMLINKS`: more is taken as a loop.
pub const MAX_LINK_HOPS: usize = 40;

// ------------------------------------------------------------------ compact encoding

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

fn get_bytes<'a>(bytes: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let len = get_varint(bytes, pos) as usize;
    let out = &bytes[*pos..*pos + len];
    *pos += len;
    out
}

fn kind_code(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Regular => 0,
        EntryKind::Directory => 1,
        EntryKind::Symlink => 2,
        EntryKind::Hardlink => 3,
        EntryKind::CharDevice => 4,
        EntryKind::BlockDevice => 5,
        EntryKind::Fifo => 6,
    }
}

fn kind_of(code: u8) -> EntryKind {
    match code {
        0 => EntryKind::Regular,
        1 => EntryKind::Directory,
        2 => EntryKind::Symlink,
        3 => EntryKind::Hardlink,
        4 => EntryKind::CharDevice,
        5 => EntryKind::BlockDevice,
        _ => EntryKind::Fifo,
    }
}

/// Everything of `meta` but its path, kind and size, in a few bytes (a directory: about 12).
fn encode_meta(buf: &mut Vec<u8>, m: &EntryMeta) {
    put_varint(buf, m.mode.into());
    put_varint(buf, m.uid);
    put_varint(buf, m.gid);
    put_varint(buf, ((m.mtime << 1) ^ (m.mtime >> 63)) as u64);
    match &m.mtime_exact {
        Some(s) => put_bytes(buf, &[s.as_bytes(), b"+"].concat()),
        None => put_varint(buf, 0),
    }
    put_bytes(buf, &m.link);
    put_varint(buf, m.dev_major.into());
    put_varint(buf, m.dev_minor.into());
    put_varint(buf, m.xattrs.len() as u64);
    for (name, value) in &m.xattrs {
        put_bytes(buf, name);
        put_bytes(buf, value);
    }
}

fn decode_meta(
    bytes: &[u8],
    pos: &mut usize,
    path: Vec<u8>,
    kind: EntryKind,
    size: u64,
) -> EntryMeta {
    let mode = get_varint(bytes, pos) as u32;
    let uid = get_varint(bytes, pos);
    let gid = get_varint(bytes, pos);
    let z = get_varint(bytes, pos);
    let mtime = ((z >> 1) as i64) ^ -((z & 1) as i64);
    let exact = get_bytes(bytes, pos);
    let mtime_exact = (!exact.is_empty()).then(|| {
        String::from_utf8(exact[..exact.len() - 1].to_vec()).expect("encoded from a String")
    });
    let link = get_bytes(bytes, pos).to_vec();
    let dev_major = get_varint(bytes, pos) as u32;
    let dev_minor = get_varint(bytes, pos) as u32;
    let count = get_varint(bytes, pos) as usize;
    let mut xattrs = Vec::with_capacity(count);
    for _ in 0..count {
        let name = get_bytes(bytes, pos).to_vec();
        xattrs.push((name, get_bytes(bytes, pos).to_vec()));
    }
    EntryMeta {
        path,
        kind,
        mode,
        uid,
        gid,
        mtime,
        mtime_exact,
        size,
        link,
        dev_major,
        dev_minor,
        xattrs,
    }
}

// ------------------------------------------------------------------ one scanned layer

/// One entry of a layer as the index pass saw it.
#[derive(Debug)]
pub struct ScannedEntry {
    pub ordinal: u64,
    /// Where a regular file's stored content ends in the layer's uncompressed tar, in bytes:
    /// how far the emit pass must read the layer to copy it (its merge order, see
    /// `super::emit_order`). Must not decrease within a layer; ignored for other entries.
    pub end: u64,
    pub change: Change,
    /// The content, for the few small files a later stage asked to read.
    pub content: Option<Arc<Vec<u8>>>,
}

const TAG_WHITEOUT: u8 = 7;
const TAG_OPAQUE: u8 = 8;
const TAG_CONTENT: u8 = 0x80;
const CHUNK: usize = 1 << 20;

/// A layer's changes from its scan until its turn to be applied (layers are read in
/// parallel, applied in order), packed: each name stored as the length it shares with the
/// previous one plus the rest, a regular file's metadata left out (the emit pass reads it
/// again with the content). A node_modules-like layer takes about 12 bytes per entry.
#[derive(Default)]
pub struct ScannedLayer {
    /// Records never span chunks, so that applying the layer frees it as it goes.
    chunks: Vec<Vec<u8>>,
    contents: Vec<Option<Arc<Vec<u8>>>>,
    last_path: Vec<u8>,
    last_ordinal: u64,
    last_end: u64,
    entries: u64,
    deletions: bool,
}

/// The running state of reading a [`ScannedLayer`] back.
#[derive(Default)]
struct Unpacker {
    path: Vec<u8>,
    ordinal: u64,
    end: u64,
}

impl Unpacker {
    fn next(
        &mut self,
        chunk: &[u8],
        pos: &mut usize,
        contents: &mut [Option<Arc<Vec<u8>>>],
        take: bool,
    ) -> ScannedEntry {
        let tag = chunk[*pos];
        *pos += 1;
        self.ordinal += get_varint(chunk, pos);
        let shared = get_varint(chunk, pos) as usize;
        self.path.truncate(shared);
        self.path.extend_from_slice(get_bytes(chunk, pos));
        let path = self.path.clone();
        let change = match tag & !TAG_CONTENT {
            TAG_WHITEOUT => Change::Whiteout(path),
            TAG_OPAQUE => Change::Opaque(path),
            code => {
                let kind = kind_of(code);
                Change::Add(if kind == EntryKind::Regular {
                    let size = get_varint(chunk, pos);
                    self.end += get_varint(chunk, pos);
                    EntryMeta {
                        size,
                        kind,
                        ..EntryMeta::implicit_dir(path)
                    }
                } else {
                    decode_meta(chunk, pos, path, kind, 0)
                })
            }
        };
        let content = (tag & TAG_CONTENT != 0).then(|| {
            let slot = &mut contents[get_varint(chunk, pos) as usize];
            if take {
                slot.take().expect("content taken once")
            } else {
                slot.clone().expect("content present")
            }
        });
        ScannedEntry {
            ordinal: self.ordinal,
            end: self.end,
            change,
            content,
        }
    }
}

impl ScannedLayer {
    /// Adds the next entry; ordinals must increase.
    pub fn push(&mut self, entry: ScannedEntry) {
        self.entries += 1;
        let (tag, path, meta) = match &entry.change {
            Change::Add(m) => (kind_code(m.kind), &m.path[..], Some(m)),
            Change::Whiteout(p) => (TAG_WHITEOUT, &p[..], None),
            Change::Opaque(p) => (TAG_OPAQUE, &p[..], None),
            Change::Ignore => return,
        };
        self.deletions |= meta.is_none();
        if self.chunks.last().is_none_or(|c| c.len() >= CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK + 1024));
        }
        let buf = self.chunks.last_mut().expect("a chunk");
        buf.push(
            tag | if entry.content.is_some() {
                TAG_CONTENT
            } else {
                0
            },
        );
        put_varint(buf, entry.ordinal - self.last_ordinal);
        self.last_ordinal = entry.ordinal;
        let shared = self
            .last_path
            .iter()
            .zip(path)
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(buf, shared as u64);
        put_bytes(buf, &path[shared..]);
        self.last_path.truncate(shared);
        self.last_path.extend_from_slice(&path[shared..]);
        match meta {
            Some(m) if m.kind == EntryKind::Regular => {
                put_varint(buf, m.size);
                // A decreasing end (never from a tar) is kept at the previous one.
                let grown = entry.end.saturating_sub(self.last_end);
                put_varint(buf, grown);
                self.last_end += grown;
            }
            Some(m) => encode_meta(buf, m),
            None => {}
        }
        if let Some(content) = entry.content {
            put_varint(buf, self.contents.len() as u64);
            self.contents.push(Some(content));
        }
    }

    /// Entries pushed, ignored ones included.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Every entry in order, the layer kept.
    fn each(&mut self, mut f: impl FnMut(ScannedEntry) -> Result<()>) -> Result<()> {
        let mut unpacker = Unpacker::default();
        for chunk in &self.chunks {
            let mut pos = 0;
            while pos < chunk.len() {
                f(unpacker.next(chunk, &mut pos, &mut self.contents, false))?;
            }
        }
        Ok(())
    }

    /// Every entry in order, each chunk freed once read.
    fn drain(mut self, mut f: impl FnMut(ScannedEntry) -> Result<()>) -> Result<()> {
        let mut unpacker = Unpacker::default();
        for chunk in std::mem::take(&mut self.chunks) {
            let mut pos = 0;
            while pos < chunk.len() {
                f(unpacker.next(&chunk, &mut pos, &mut self.contents, true))?;
            }
        }
        Ok(())
    }
}

impl From<Vec<ScannedEntry>> for ScannedLayer {
    fn from(entries: Vec<ScannedEntry>) -> ScannedLayer {
        let mut layer = ScannedLayer::default();
        for e in entries {
            layer.push(e);
        }
        layer
    }
}

// ------------------------------------------------------------------ the tree

/// A path component. 16 bytes.
#[derive(Clone, Copy, Debug)]
struct Node {
    parent: NodeId,
    name_start: u32,
    name_len: u16,
    flags: u8,
    /// A directory: offset of its metadata in `metas` (`NONE`: implicit, no layer listed
    /// it). Anything else: its inode.
    payload: u32,
}

const DIR: u8 = 1;
/// Removed: the node and everything below it are no longer in the tree.
const DEAD: u8 = 2;

/// The content (and, but for regular files, the metadata) that one or more paths show.
/// 24 bytes.
#[derive(Clone, Copy, Debug)]
struct Inode {
    /// A regular file: its size. Anything else: offset of its metadata in `metas`.
    data: [u32; 2],
    /// Position of the entry in its layer's tar (0-based, counting every entry).
    ordinal: u32,
    /// A regular file: where its content ends in the layer's tar, in 512-byte blocks
    /// (saturating; only the emit pass's merge order uses it).
    end_block: u32,
    /// The node the inode was added at (its own path).
    node: NodeId,
    /// Index of the layer the entry came from; `layers` (one past the top) for files added
    /// after flattening (see [`Tree::add_extra`]).
    layer: u16,
    kind: u8,
    /// Set by [`Tree::plan`].
    flags: u8,
}

/// Shown by at least one path of the final tree.
const SEEN: u8 = 1;
/// Its paths are in `Plan::paths_of` (several, or one that is not its own).
const MULTI: u8 = 2;

impl Inode {
    fn data(&self) -> u64 {
        u64::from(self.data[0]) | u64::from(self.data[1]) << 32
    }
    fn kind(&self) -> EntryKind {
        kind_of(self.kind)
    }
}

pub struct Tree {
    nodes: Vec<Node>,
    /// Node names, back to back.
    names: Vec<u8>,
    /// Open addressing, linear probing: node ids by (parent, name). Removed nodes stay until
    /// the table is rebuilt; lookups skip them.
    slots: Vec<NodeId>,
    used_slots: usize,
    hasher: RandomState,
    root: NodeId,
    inodes: Vec<Inode>,
    /// Metadata of directories, symlinks, devices and FIFOs ([`encode_meta`]).
    metas: Vec<u8>,
    /// Captured content of a few regular files, and the content of added ones.
    contents: HashMap<InodeId, Arc<Vec<u8>>>,
    /// The entry's name in its layer, when a symlink of that layer resolved it to another
    /// path: what the emit pass must find at the inode's ordinal.
    entry_names: HashMap<InodeId, Box<[u8]>>,
    /// Metadata of the regular files added after flattening (they have no layer to re-read).
    added_metas: HashMap<InodeId, EntryMeta>,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree::new()
    }
}

fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

fn too_large() -> anyhow::Error {
    anyhow::anyhow!(
        "the image's names and metadata exceed the 4 GiB (or 4 billion paths) this tool indexes"
    )
}

impl Tree {
    pub fn new() -> Tree {
        let mut t = Tree {
            nodes: Vec::new(),
            names: Vec::new(),
            slots: vec![NONE; 1024],
            used_slots: 0,
            hasher: RandomState::new(),
            root: 0,
            inodes: Vec::new(),
            metas: Vec::new(),
            contents: HashMap::new(),
            entry_names: HashMap::new(),
            added_metas: HashMap::new(),
        };
        t.nodes.push(Node {
            parent: NONE,
            name_start: 0,
            name_len: 0,
            flags: DIR,
            payload: NONE,
        });
        t
    }

    fn name(&self, id: NodeId) -> &[u8] {
        let n = &self.nodes[id as usize];
        &self.names[n.name_start as usize..n.name_start as usize + n.name_len as usize]
    }

    fn is_dir(&self, id: NodeId) -> bool {
        self.nodes[id as usize].flags & DIR != 0
    }

    /// The path of a node, also of one no longer in the tree (where it was).
    fn path_of(&self, id: NodeId) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut cur = id;
        while self.nodes[cur as usize].parent != NONE {
            parts.push(self.name(cur));
            cur = self.nodes[cur as usize].parent;
        }
        parts.reverse();
        parts.join(&b'/')
    }

    fn slot_of(&self, parent: NodeId, name: &[u8]) -> usize {
        self.hasher.hash_one((parent, name)) as usize & (self.slots.len() - 1)
    }

    /// The child `name` of directory `parent`.
    fn lookup(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(parent, name);
        loop {
            let id = self.slots[i];
            if id == NONE {
                return None;
            }
            let n = &self.nodes[id as usize];
            if n.parent == parent && n.flags & DEAD == 0 && self.name(id) == name {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }

    /// The node at `path`, if the tree has one.
    fn find(&self, path: &[u8]) -> Option<NodeId> {
        let mut cur = self.root;
        if path.is_empty() {
            return Some(cur);
        }
        for c in path.split(|b| *b == b'/') {
            if !self.is_dir(cur) {
                return None;
            }
            cur = self.lookup(cur, c)?;
        }
        Some(cur)
    }

    /// One bit per node: still in the tree (not removed, and neither is any ancestor).
    fn live_nodes(&self) -> Vec<u64> {
        let mut bits = vec![0u64; self.nodes.len().div_ceil(64)];
        for (i, n) in self.nodes.iter().enumerate() {
            let live = n.flags & DEAD == 0
                && if n.parent == NONE {
                    i as NodeId == self.root
                } else {
                    // A parent is always older than its children, so already decided.
                    bits[n.parent as usize / 64] >> (n.parent % 64) & 1 != 0
                };
            if live {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    }

    fn table_put(&mut self, id: NodeId) {
        let n = self.nodes[id as usize];
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(n.parent, self.name(id));
        while self.slots[i] != NONE {
            i = (i + 1) & mask;
        }
        self.slots[i] = id;
        self.used_slots += 1;
    }

    /// Makes room: a table of the live nodes alone, at most half full. Its size also grows
    /// with all nodes ever made, so that a layer replacing one directory over and over (few
    /// live nodes, many dead) does not pay a pass over every node each few hundred entries.
    fn rebuild_table(&mut self) {
        let live = self.live_nodes();
        let count: usize = live.iter().map(|w| w.count_ones() as usize).sum();
        let size = (count * 2 + self.nodes.len() / 4 + 2).next_power_of_two();
        self.slots = vec![NONE; size.max(1024)];
        self.used_slots = 0;
        for id in 0..self.nodes.len() {
            if live[id / 64] >> (id % 64) & 1 != 0 && self.nodes[id].parent != NONE {
                self.table_put(id as NodeId);
            }
        }
    }

    /// A new node below `parent`, named like `named_as` (a node it replaces) or `name`.
    fn new_node(
        &mut self,
        parent: NodeId,
        name: &[u8],
        named_as: Option<NodeId>,
        flags: u8,
        payload: u32,
    ) -> Result<NodeId> {
        let (name_start, name_len) = match named_as {
            Some(old) => {
                let n = &self.nodes[old as usize];
                (n.name_start, n.name_len)
            }
            None => {
                let start = u32::try_from(self.names.len()).map_err(|_| too_large())?;
                let len = u16::try_from(name.len()).map_err(|_| {
                    anyhow::anyhow!(
                        "a name of {} bytes is longer than one path component may be",
                        name.len()
                    )
                })?;
                self.names.extend_from_slice(name);
                (start, len)
            }
        };
        let id = NodeId::try_from(self.nodes.len())
            .ok()
            .filter(|id| *id != NONE)
            .ok_or_else(too_large)?;
        self.nodes.push(Node {
            parent,
            name_start,
            name_len,
            flags,
            payload,
        });
        if (self.used_slots + 1) * 4 > self.slots.len() * 3 {
            self.rebuild_table();
        } else {
            self.table_put(id);
        }
        Ok(id)
    }

    fn kill(&mut self, id: NodeId) {
        self.nodes[id as usize].flags |= DEAD;
    }

    fn push_meta(&mut self, meta: &EntryMeta) -> Result<u32> {
        let start = u32::try_from(self.metas.len())
            .ok()
            .filter(|s| *s != NONE)
            .ok_or_else(too_large)?;
        encode_meta(&mut self.metas, meta);
        Ok(start)
    }

    fn meta_at(&self, offset: u32, path: Vec<u8>, kind: EntryKind) -> EntryMeta {
        let mut pos = offset as usize;
        decode_meta(&self.metas, &mut pos, path, kind, 0)
    }

    fn is_own_symlink(&self, layer: usize, node: NodeId) -> bool {
        if self.is_dir(node) {
            return false;
        }
        let inode = &self.inodes[self.nodes[node as usize].payload as usize];
        inode.layer as usize == layer && inode.kind() == EntryKind::Symlink
    }

    /// The symlink target of `node`, when it is a symlink that `layer` made.
    fn own_symlink(&self, layer: usize, node: NodeId) -> Option<Vec<u8>> {
        self.is_own_symlink(layer, node)
            .then(|| self.symlink_target(node))
            .flatten()
    }

    /// The link target of `node`, when it is a symlink of any layer.
    fn symlink_target(&self, node: NodeId) -> Option<Vec<u8>> {
        if self.is_dir(node) {
            return None;
        }
        let inode = &self.inodes[self.nodes[node as usize].payload as usize];
        (inode.kind() == EntryKind::Symlink).then(|| {
            self.meta_at(inode.data[0], Vec::new(), EntryKind::Symlink)
                .link
        })
    }

    /// Removes the node at `path` and everything below it.
    fn remove_subtree(&mut self, path: &[u8]) {
        if let Some(id) = self.find(path) {
            if id != self.root {
                self.kill(id);
            }
        }
    }

    /// Empties the directory at `path` (a directory of the same name and metadata, without
    /// children, replaces it).
    fn remove_children(&mut self, path: &[u8]) -> Result<()> {
        let Some(id) = self.find(path).filter(|id| self.is_dir(*id)) else {
            return Ok(());
        };
        let old = self.nodes[id as usize];
        self.kill(id);
        if id == self.root {
            self.nodes.push(Node { flags: DIR, ..old });
            self.root = NodeId::try_from(self.nodes.len() - 1).map_err(|_| too_large())?;
        } else {
            self.new_node(old.parent, &[], Some(id), DIR, old.payload)?;
        }
        Ok(())
    }

    /// Makes every ancestor of `path` a directory and returns its parent. An ancestor that is
    /// a non-directory (a file, or a symlink: overlay storage takes the path literally)
    /// becomes an implicit directory, so the output never has a path below a non-directory.
    ///
    /// With `own_links_of`, an ancestor that is a symlink made by that layer stops the walk
    /// instead, before anything changed (`None`): the path must be resolved through it. (Only
    /// a missing or replaced ancestor changes the tree, and nothing exists below either.)
    fn ensure_parents(
        &mut self,
        path: &[u8],
        own_links_of: Option<usize>,
    ) -> Result<Option<NodeId>> {
        let mut cur = self.root;
        let Some(last_slash) = path.iter().rposition(|b| *b == b'/') else {
            return Ok(Some(cur));
        };
        for c in path[..last_slash].split(|b| *b == b'/') {
            if c.is_empty() {
                continue;
            }
            cur = match self.lookup(cur, c) {
                Some(id) if self.is_dir(id) => id,
                Some(id) => {
                    if own_links_of.is_some_and(|layer| self.is_own_symlink(layer, id)) {
                        return Ok(None);
                    }
                    self.kill(id);
                    self.new_node(cur, c, Some(id), DIR, NONE)?
                }
                None => self.new_node(cur, c, None, DIR, NONE)?,
            };
        }
        Ok(Some(cur))
    }

    /// Puts a non-directory showing `inode` at `name` in `parent`, replacing what was there.
    fn set_leaf(&mut self, parent: NodeId, name: &[u8], inode: InodeId) -> Result<NodeId> {
        match self.lookup(parent, name) {
            Some(id) if !self.is_dir(id) => {
                self.nodes[id as usize].payload = inode;
                Ok(id)
            }
            Some(id) => {
                self.kill(id);
                self.new_node(parent, name, Some(id), 0, inode)
            }
            None => self.new_node(parent, name, None, 0, inode),
        }
    }

    /// Applies one layer's entries (in tar order) on top of the tree.
    ///
    /// A path that goes through a symlink this same layer made earlier is resolved through
    /// it, inside the root, as extracting the layer like a regular tar does (containerd,
    /// moby, umoci). A symlink of a *lower* layer is not followed: overlay storage extracts
    /// each layer on its own, so there the upper layer's real directory replaces it.
    pub fn apply_layer(&mut self, layer: usize, entries: impl Into<ScannedLayer>) -> Result<()> {
        let mut scanned: ScannedLayer = entries.into();
        if scanned.deletions {
            scanned.each(|e| {
                match &e.change {
                    Change::Whiteout(path) => self.remove_subtree(path),
                    Change::Opaque(dir) => self.remove_children(dir)?,
                    Change::Add(_) | Change::Ignore => {}
                }
                Ok(())
            })?;
        }
        // Whether this layer made a symlink (or a hardlink, which may name one) yet: only
        // then can a path go through one.
        let mut own_links = false;
        scanned.drain(|e| {
            let Change::Add(mut meta) = e.change else {
                return Ok(());
            };
            if own_links && meta.kind == EntryKind::Hardlink {
                meta.link = self.through_own_links(layer, &meta.link)?;
            }
            let mut entry_name = None;
            let mut parent = self.ensure_parents(&meta.path, own_links.then_some(layer))?;
            if parent.is_none() {
                let resolved = self.through_own_links(layer, &meta.path)?;
                if resolved != meta.path {
                    entry_name = Some(std::mem::replace(&mut meta.path, resolved).into());
                }
                parent = self.ensure_parents(&meta.path, None)?;
            }
            own_links |= matches!(meta.kind, EntryKind::Symlink | EntryKind::Hardlink);
            self.add(
                layer,
                (e.ordinal, e.end),
                meta,
                e.content,
                entry_name,
                parent,
            )?;
            Ok(())
        })
    }

    /// Whether an ancestor of `path` (its parent included) is a symlink made by `layer`.
    fn goes_through_own_link(&self, layer: usize, dir: &[u8]) -> bool {
        let mut cur = self.root;
        for c in dir.split(|b| *b == b'/') {
            match self.lookup(cur, c) {
                None => return false,
                Some(id) if self.is_dir(id) => cur = id,
                Some(id) => return self.own_symlink(layer, id).is_some(),
            }
        }
        false
    }

    /// `path` with every ancestor that is a symlink made by `layer` itself replaced by where
    /// it points, as securejoin does: absolute targets from the image's root, `..` never above
    /// it, at most [`MAX_LINK_HOPS`] links. The last component is never followed: an entry
    /// replaces a symlink at its own path, and a hardlink to a symlink links the symlink.
    fn through_own_links(&self, layer: usize, path: &[u8]) -> Result<Vec<u8>> {
        let Some(last_slash) = path.iter().rposition(|b| *b == b'/') else {
            return Ok(path.to_vec());
        };
        if !self.goes_through_own_link(layer, &path[..last_slash]) {
            return Ok(path.to_vec());
        }
        let mut resolved: Vec<u8> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = path[..last_slash]
            .split(|b| *b == b'/')
            .map(<[u8]>::to_vec)
            .collect();
        let mut hops = 0;
        while let Some(component) = todo.pop_front() {
            match component.as_slice() {
                b"" | b"." => {}
                b".." => {
                    let parent = super::entry::parent_of(&resolved).len();
                    resolved.truncate(parent);
                }
                c => {
                    let candidate = join(&resolved, c);
                    match self
                        .find(&candidate)
                        .and_then(|id| self.own_symlink(layer, id))
                    {
                        Some(target) => {
                            hops += 1;
                            if hops > MAX_LINK_HOPS {
                                bail_kind!(HostileInput,
                                    "entry {:?} goes through more than {MAX_LINK_HOPS} symlinks of its own layer (a symlink loop)",
                                    display_name(path)
                                );
                            }
                            if target.starts_with(b"/") {
                                resolved.clear();
                            }
                            for c in target.split(|b| *b == b'/').rev() {
                                todo.push_front(c.to_vec());
                            }
                        }
                        None => resolved = candidate,
                    }
                }
            }
        }
        let out = join(&resolved, &path[last_slash + 1..]);
        let depth = out.iter().filter(|b| **b == b'/').count() + 1;
        if out.len() > crate::limits::MAX_PATH_LEN || depth > crate::limits::MAX_PATH_DEPTH {
            bail_kind!(HostileInput,
                "entry {:?} resolves through its layer's symlinks to a path beyond the limits of {} bytes and {} levels",
                display_name(path),
                crate::limits::MAX_PATH_LEN,
                crate::limits::MAX_PATH_DEPTH
            );
        }
        Ok(out)
    }

    fn new_inode(
        &mut self,
        layer: usize,
        (ordinal, end): (u64, u64),
        meta: &EntryMeta,
    ) -> Result<InodeId> {
        let data = if meta.kind == EntryKind::Regular {
            meta.size
        } else {
            u64::from(self.push_meta(meta)?)
        };
        let id = InodeId::try_from(self.inodes.len())
            .ok()
            .filter(|id| *id != NONE)
            .ok_or_else(too_large)?;
        // The emit pass finds a layer's files by walking the inodes in id order.
        if self.inodes.last().is_some_and(|i| i.layer as usize > layer) {
            bail!("internal: layers must be applied bottom to top");
        }
        self.inodes.push(Inode {
            data: [data as u32, (data >> 32) as u32],
            ordinal: u32::try_from(ordinal).map_err(|_| too_large())?,
            end_block: u32::try_from(end.div_ceil(512)).unwrap_or(u32::MAX),
            node: NONE,
            layer: u16::try_from(layer).map_err(|_| too_large())?,
            kind: kind_code(meta.kind),
            flags: 0,
        });
        Ok(id)
    }

    /// Adds one entry below `parent` (its parent directory when the caller already made
    /// it); returns the inode it made, if any.
    /// `at`: the entry's ordinal and content end ([`ScannedEntry`]).
    fn add(
        &mut self,
        layer: usize,
        at: (u64, u64),
        meta: EntryMeta,
        content: Option<Arc<Vec<u8>>>,
        entry_name: Option<Box<[u8]>>,
        parent: Option<NodeId>,
    ) -> Result<Option<InodeId>> {
        if meta.path.is_empty() {
            if meta.kind != EntryKind::Directory {
                bail!("internal: only a directory can be the root");
            }
            let root = self.root;
            self.nodes[root as usize].payload = self.push_meta(&meta)?;
            return Ok(None);
        }
        let parent = match parent {
            Some(parent) => parent,
            None => self
                .ensure_parents(&meta.path, None)?
                .expect("stops only at a layer's own links"),
        };
        let name = base_name(&meta.path);
        match meta.kind {
            EntryKind::Directory => {
                let at = self.push_meta(&meta)?;
                match self.lookup(parent, name) {
                    // A directory over a directory merges: new metadata, children stay.
                    Some(id) if self.is_dir(id) => self.nodes[id as usize].payload = at,
                    Some(id) => {
                        self.kill(id);
                        self.new_node(parent, name, Some(id), DIR, at)?;
                    }
                    None => {
                        self.new_node(parent, name, None, DIR, at)?;
                    }
                }
                Ok(None)
            }
            EntryKind::Hardlink => {
                let target = &meta.link;
                let inode = match self.find(target) {
                    Some(id) if !self.is_dir(id) => self.nodes[id as usize].payload,
                    Some(_) => bail!(
                        "hardlink {:?} names directory {:?}",
                        display_name(&meta.path),
                        display_name(target)
                    ),
                    None => bail!(
                        "hardlink {:?} names {:?}, which does not exist in this or a lower layer",
                        display_name(&meta.path),
                        display_name(target)
                    ),
                };
                self.set_leaf(parent, name, inode)?;
                Ok(None)
            }
            _ => {
                let inode = self.new_inode(layer, at, &meta)?;
                if let Some(content) = content {
                    self.contents.insert(inode, content);
                }
                if let Some(entry_name) = entry_name {
                    self.entry_names.insert(inode, entry_name);
                }
                let node = self.set_leaf(parent, name, inode)?;
                self.inodes[inode as usize].node = node;
                Ok(Some(inode))
            }
        }
    }

    /// Adds (or replaces) a regular file whose content is in memory, after all layers:
    /// how configuration generated from the image gets into the output. A directory given
    /// after the files in it gives them a parent with metadata instead of an implicit one.
    ///
    /// A symlinked parent (`etc -> private/etc`) is followed inside the image, as a program
    /// writing the file in the running distribution would, instead of being replaced by a
    /// directory that would hide everything the link pointed at.
    pub fn add_extra(
        &mut self,
        layers: usize,
        mut meta: EntryMeta,
        content: Vec<u8>,
    ) -> Result<()> {
        let well_formed = match meta.kind {
            EntryKind::Regular => meta.size == content.len() as u64,
            EntryKind::Directory => content.is_empty(),
            _ => false,
        };
        if !well_formed {
            bail!("internal: an added entry must be a directory, or a regular file of its content's size");
        }
        meta.path = self.follow_parents(&meta.path);
        if meta.kind == EntryKind::Directory {
            // Dates a directory that only exists because files were added into it. What
            // the layers put at the path (their own directory, a symlink) stays theirs.
            let made_by_layers = self
                .find(&meta.path)
                .is_some_and(|id| !self.is_dir(id) || self.nodes[id as usize].payload != NONE);
            if !made_by_layers {
                self.add(layers, (0, 0), meta, None, None, None)?;
            }
            return Ok(());
        }
        let ordinal = self.inodes.len() as u64;
        let kept = meta.clone();
        let content = Some(Arc::new(content));
        if let Some(inode) = self.add(layers, (ordinal, 0), meta, content, None, None)? {
            self.added_metas.insert(inode, kept);
        }
        Ok(())
    }

    /// `path` with every symlinked ancestor replaced by its target, at most 16 links; past
    /// that, or when a target leaves the tree's names behind, the path as given.
    fn follow_parents(&self, path: &[u8]) -> Vec<u8> {
        let mut current = path.to_vec();
        let mut hops = 0;
        'restart: loop {
            let mut end = 0;
            while let Some(slash) = current[end..].iter().position(|b| *b == b'/') {
                end += slash;
                let ancestor = &current[..end];
                if let Some(target) = self.find(ancestor).and_then(|id| self.symlink_target(id)) {
                    hops += 1;
                    match link_target(ancestor, &target) {
                        Some(resolved) if hops <= 16 && !resolved.is_empty() => {
                            let mut next = resolved;
                            next.extend_from_slice(&current[end..]);
                            current = next;
                            continue 'restart;
                        }
                        _ => return path.to_vec(),
                    }
                }
                end += 1;
            }
            return current;
        }
    }

    /// The content of a regular file in the final tree, if it was captured in the index
    /// pass. Symlinks are followed (absolute ones from the root of the image, never the
    /// host's), at most 16 of them.
    pub fn captured(&self, path: &[u8]) -> Option<Arc<Vec<u8>>> {
        let mut path = self.follow_parents(path);
        for _ in 0..16 {
            let id = self.find(&path)?;
            if self.is_dir(id) {
                return None;
            }
            let inode_id = self.nodes[id as usize].payload;
            match self.inodes[inode_id as usize].kind() {
                EntryKind::Regular => return self.contents.get(&inode_id).cloned(),
                EntryKind::Symlink => {
                    let target = self.symlink_target(id)?;
                    path = self.follow_parents(&link_target(&path, &target)?);
                }
                _ => return None,
            }
        }
        None
    }

    /// Orders the final tree for output. `layers` is the layer count; files added with
    /// [`Tree::add_extra`] come last.
    pub fn plan(mut self, layers: usize) -> Plan {
        // Only the arrays are needed from here on.
        self.slots = Vec::new();
        let live = self.live_nodes();
        let is_live = |id: usize| live[id / 64] >> (id % 64) & 1 != 0;
        let mut regular_files = vec![0usize; layers + 1];
        let mut paths_of: HashMap<InodeId, Vec<NodeId>> = HashMap::new();
        for id in 0..self.nodes.len() {
            if !is_live(id) || self.is_dir(id as NodeId) {
                continue;
            }
            let inode_id = self.nodes[id].payload;
            let inode = &mut self.inodes[inode_id as usize];
            let id = id as NodeId;
            if inode.flags & SEEN == 0 {
                inode.flags |= SEEN;
                if inode.kind() == EntryKind::Regular {
                    regular_files[inode.layer as usize] += 1;
                }
                if inode.node != id {
                    inode.flags |= MULTI;
                    paths_of.insert(inode_id, vec![id]);
                }
            } else if inode.flags & MULTI == 0 {
                inode.flags |= MULTI;
                paths_of.insert(inode_id, vec![inode.node, id]);
            } else {
                paths_of.get_mut(&inode_id).expect("listed").push(id);
            }
        }
        for (inode_id, nodes) in paths_of.iter_mut() {
            // The inode's own path first when it still shows it, so the output resembles
            // the layer; the rest in byte order. Either way the choice is deterministic.
            let own = self.path_of(self.inodes[*inode_id as usize].node);
            let mut named: Vec<(Vec<u8>, NodeId)> =
                nodes.iter().map(|n| (self.path_of(*n), *n)).collect();
            named.sort();
            if let Some(pos) = named.iter().position(|(p, _)| *p == own) {
                let first = named.remove(pos);
                named.insert(0, first);
            }
            *nodes = named.into_iter().map(|(_, n)| n).collect();
        }

        // Directories and the first path of each other non-regular inode, by parent and
        // name; the other paths of those inodes become hardlinks, written after them.
        let mut children: Vec<(NodeId, NodeId)> = Vec::new();
        let mut links: Vec<(Vec<u8>, NodeId, NodeId)> = Vec::new();
        for id in 0..self.nodes.len() {
            let node = &self.nodes[id];
            if !is_live(id) || node.parent == NONE {
                continue;
            }
            let id = id as NodeId;
            if !self.is_dir(id) {
                let inode = &self.inodes[node.payload as usize];
                if inode.kind() == EntryKind::Regular {
                    continue;
                }
                if inode.flags & MULTI != 0 {
                    let first = paths_of[&node.payload][0];
                    if first != id {
                        links.push((self.path_of(id), id, first));
                        continue;
                    }
                }
            }
            children.push((node.parent, id));
        }
        children.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| self.name(a.1).cmp(self.name(b.1)))
        });
        links.sort();

        // Byte order of whole paths, walked directory by directory: below a directory, its
        // child `x` sorts as `x` and everything under `x` as `x/` followed by more, so the
        // subtree of `x` is placed by the key `x/` (`a-b` comes before `a/c`, `a0` after).
        let children_of = |dir: NodeId| -> &[(NodeId, NodeId)] {
            let start = children.partition_point(|c| c.0 < dir);
            let end = children.partition_point(|c| c.0 <= dir);
            &children[start..end]
        };
        let listing = |dir: NodeId| -> Vec<(NodeId, bool)> {
            let mut items = Vec::new();
            for &(_, c) in children_of(dir) {
                items.push((c, false));
                if self.is_dir(c) && !children_of(c).is_empty() {
                    items.push((c, true));
                }
            }
            items.sort_by(|a, b| {
                let key = |(id, below): &(NodeId, bool)| {
                    self.name(*id).iter().copied().chain(below.then_some(b'/'))
                };
                key(a).cmp(key(b))
            });
            items
        };
        let mut order = vec![self.root];
        let mut stack = vec![(listing(self.root), 0usize)];
        while let Some((items, next)) = stack.last_mut() {
            let Some(&(id, below)) = items.get(*next) else {
                stack.pop();
                continue;
            };
            *next += 1;
            if below {
                stack.push((listing(id), 0));
            } else {
                order.push(id);
            }
        }
        drop(children);
        Plan {
            order,
            links: links
                .into_iter()
                .map(|(_, id, first)| (id, first))
                .collect(),
            paths_of,
            regular_files,
            tree: self,
        }
    }
}

/// What the final tree looks like, in output order.
pub struct Plan {
    tree: Tree,
    /// Directories, symlinks, devices and FIFOs in path order.
    order: Vec<NodeId>,
    /// Further paths of non-regular inodes, and the first path of each.
    links: Vec<(NodeId, NodeId)>,
    /// The paths of inodes marked `MULTI`, the one to get the data first.
    paths_of: HashMap<InodeId, Vec<NodeId>>,
    /// Regular files per layer (the last: added files).
    regular_files: Vec<usize>,
}

/// A regular file of the final tree: where its content is and which paths show it.
pub struct RegularFile {
    pub ordinal: u64,
    pub size: u64,
    /// Where the content ends in the layer's uncompressed tar, rounded up to a 512-byte block.
    pub end: u64,
    /// The entry's normalised name in its layer, which the emit pass must find at `ordinal`.
    pub entry_name: Vec<u8>,
    /// Set for files added after flattening: their content and metadata are here, not in a
    /// layer.
    pub content: Option<Arc<Vec<u8>>>,
    pub meta: Option<EntryMeta>,
    /// Paths showing this content: the first gets the data, the rest hardlink to it.
    pub paths: Vec<Vec<u8>>,
}

impl Plan {
    fn paths(&self, inode_id: InodeId) -> Vec<Vec<u8>> {
        let inode = &self.tree.inodes[inode_id as usize];
        if inode.flags & MULTI != 0 {
            self.paths_of[&inode_id]
                .iter()
                .map(|n| self.tree.path_of(*n))
                .collect()
        } else {
            vec![self.tree.path_of(inode.node)]
        }
    }

    fn meta_of(&self, id: NodeId, path: Vec<u8>) -> EntryMeta {
        let node = &self.tree.nodes[id as usize];
        if self.tree.is_dir(id) {
            match node.payload {
                NONE => EntryMeta::implicit_dir(path),
                at => self.tree.meta_at(at, path, EntryKind::Directory),
            }
        } else {
            let inode = &self.tree.inodes[node.payload as usize];
            self.tree.meta_at(inode.data[0], path, inode.kind())
        }
    }

    /// Directories, symlinks, devices and FIFOs (no content), parents before children,
    /// in byte order of their paths; then hardlinks among them, each naming an earlier path.
    pub fn contentless(&self) -> impl Iterator<Item = (Vec<u8>, EntryMeta, Option<Vec<u8>>)> + '_ {
        let firsts = self.order.iter().map(|&id| {
            let path = self.tree.path_of(id);
            (path.clone(), self.meta_of(id, path), None)
        });
        let links = self.links.iter().map(|&(id, first)| {
            let target = self.tree.path_of(first);
            (
                self.tree.path_of(id),
                self.meta_of(first, target.clone()),
                Some(target),
            )
        });
        firsts.chain(links)
    }

    /// What the emit pass will write, as far as the plan knows: bytes of tar (a header
    /// block per path, content rounded up to blocks, the two end blocks; long names and PAX
    /// records add a little that only the writing knows) and paths.
    pub fn estimate(&self) -> (u64, u64) {
        let block = |n: u64| n.div_ceil(512) * 512;
        let contentless = (self.order.len() + self.links.len()) as u64;
        let (mut bytes, mut paths) = (1024 + 512 * contentless, contentless);
        for (k, inode) in self.tree.inodes.iter().enumerate() {
            if inode.flags & SEEN == 0 || inode.kind() != EntryKind::Regular {
                continue;
            }
            let names = if inode.flags & MULTI != 0 {
                self.paths_of[&(k as InodeId)].len() as u64
            } else {
                1
            };
            bytes += 512 * names + block(inode.data());
            paths += names;
        }
        (bytes, paths)
    }

    /// Whether any regular file of the final tree has its content in `layer`.
    pub fn has_regular(&self, layer: usize) -> bool {
        self.regular_files.get(layer).is_some_and(|n| *n > 0)
    }

    /// The surviving regular files whose content is in `layer`, in tar order, with their
    /// inode ids: the inodes of a layer are consecutive, in the order it was applied.
    fn regular_inodes(&self, layer: usize) -> impl Iterator<Item = (InodeId, &Inode)> + Clone {
        let inodes = &self.tree.inodes;
        let start = inodes.partition_point(|i| (i.layer as usize) < layer);
        inodes[start..]
            .iter()
            .enumerate()
            .take_while(move |(_, i)| i.layer as usize == layer)
            .filter(|(_, i)| i.flags & SEEN != 0 && i.kind() == EntryKind::Regular)
            .map(move |(k, inode)| ((start + k) as InodeId, inode))
    }

    /// Where each regular file whose content is in `layer` is in its tar: (ordinal, end as
    /// in [`RegularFile::end`], size), in tar order: the order of [`Plan::regular`].
    pub fn regular_extents(
        &self,
        layer: usize,
    ) -> impl Iterator<Item = (u64, u64, u64)> + Clone + '_ {
        self.regular_inodes(layer)
            .map(|(_, i)| (u64::from(i.ordinal), u64::from(i.end_block) * 512, i.data()))
    }

    /// The regular files whose content is in `layer`, in tar order.
    pub fn regular(&self, layer: usize) -> impl Iterator<Item = RegularFile> + '_ {
        self.regular_in(layer, 0..=u64::MAX)
    }

    /// [`Plan::regular`], of the entries with these ordinals only.
    pub fn regular_in(
        &self,
        layer: usize,
        ordinals: std::ops::RangeInclusive<u64>,
    ) -> impl Iterator<Item = RegularFile> + '_ {
        self.regular_inodes(layer)
            .filter(move |(_, i)| ordinals.contains(&u64::from(i.ordinal)))
            .map(move |(id, inode)| {
                let entry_name = match self.tree.entry_names.get(&id) {
                    Some(name) => name.to_vec(),
                    None => self.tree.path_of(inode.node),
                };
                RegularFile {
                    ordinal: inode.ordinal.into(),
                    size: inode.data(),
                    end: u64::from(inode.end_block) * 512,
                    entry_name,
                    content: self
                        .tree
                        .added_metas
                        .contains_key(&id)
                        .then(|| self.tree.contents[&id].clone()),
                    meta: self.tree.added_metas.get(&id).cloned(),
                    paths: self.paths(id),
                }
            })
    }
}

/// Where the symlink at `at` points, as a tree path: absolute targets from the image's root
/// (never the host's), relative ones from the link's directory.
fn link_target(at: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    let base: &[u8] = if target.starts_with(b"/") {
        b""
    } else {
        super::entry::parent_of(at)
    };
    resolve_lexically(base, target)
}

/// Joins a symlink target onto a directory, resolving `.` and `..` without leaving the root.
fn resolve_lexically(base: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = base
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    Some(parts.join(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str, kind: EntryKind) -> EntryMeta {
        EntryMeta {
            path: path.as_bytes().to_vec(),
            kind,
            mode: if kind == EntryKind::Directory {
                0o755
            } else {
                0o644
            },
            uid: 0,
            gid: 0,
            mtime: 1,
            mtime_exact: None,
            size: 0,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }
    fn file(path: &str) -> Change {
        Change::Add(meta(path, EntryKind::Regular))
    }
    fn file_mode(path: &str, mode: u32) -> Change {
        let mut m = meta(path, EntryKind::Regular);
        m.mode = mode;
        Change::Add(m)
    }
    fn dir(path: &str) -> Change {
        Change::Add(meta(path, EntryKind::Directory))
    }
    fn dir_mode(path: &str, mode: u32) -> Change {
        let mut m = meta(path, EntryKind::Directory);
        m.mode = mode;
        Change::Add(m)
    }
    fn symlink(path: &str, target: &str) -> Change {
        let mut m = meta(path, EntryKind::Symlink);
        m.link = target.as_bytes().to_vec();
        Change::Add(m)
    }
    fn hardlink(path: &str, target: &str) -> Change {
        let mut m = meta(path, EntryKind::Hardlink);
        m.link = target.as_bytes().to_vec();
        Change::Add(m)
    }
    fn whiteout(path: &str) -> Change {
        Change::Whiteout(path.as_bytes().to_vec())
    }
    fn opaque(dir: &str) -> Change {
        Change::Opaque(dir.as_bytes().to_vec())
    }

    /// Applies the layers and describes the result, one string per output entry:
    /// `path kind@layer:ordinal` for content, `path -> target` for hardlinks.
    fn flatten(layers: Vec<Vec<Change>>) -> Result<Vec<String>> {
        let count = layers.len();
        let mut tree = Tree::new();
        for (i, changes) in layers.into_iter().enumerate() {
            let entries: Vec<ScannedEntry> = changes
                .into_iter()
                .enumerate()
                .map(|(o, change)| ScannedEntry {
                    ordinal: o as u64,
                    end: 0,
                    change,
                    content: None,
                })
                .collect();
            tree.apply_layer(i, entries)?;
        }
        let plan = tree.plan(count);
        let mut out = Vec::new();
        for (path, m, link) in plan.contentless() {
            let p = String::from_utf8(path).unwrap();
            let p = if p.is_empty() { ".".to_string() } else { p };
            match link {
                Some(t) => out.push(format!("{p} -> {}", String::from_utf8(t).unwrap())),
                None => out.push(format!("{p} {:?}/{:o}", m.kind, m.mode)),
            }
        }
        for layer in 0..=count {
            for f in plan.regular(layer) {
                for (i, p) in f.paths.iter().enumerate() {
                    let p = String::from_utf8(p.clone()).unwrap();
                    if i == 0 {
                        out.push(format!("{p} file@{layer}:{}", f.ordinal));
                    } else {
                        out.push(format!(
                            "{p} -> {}",
                            String::from_utf8(f.paths[0].clone()).unwrap()
                        ));
                    }
                }
            }
        }
        Ok(out)
    }

    fn has(out: &[String], line: &str) -> bool {
        out.iter().any(|l| l == line)
    }

    #[test]
    fn rule1_later_entry_in_same_layer_wins() {
        let out = flatten(vec![vec![file("a"), file_mode("a", 0o600)]]).unwrap();
        assert_eq!(out, [". Directory/755", "a file@0:1"]);
    }

    #[test]
    fn rule1_upper_layer_replaces_lower() {
        let out = flatten(vec![vec![file("a")], vec![file("a")]]).unwrap();
        assert_eq!(out, [". Directory/755", "a file@1:0"]);
    }

    #[test]
    fn rule2_whiteout_removes_lower_subtree_only() {
        let out = flatten(vec![
            vec![dir("d"), file("d/x"), file("d/y"), file("keep")],
            vec![whiteout("d"), whiteout("absent")],
        ])
        .unwrap();
        assert_eq!(out, [". Directory/755", "keep file@0:3"]);
    }

    #[test]
    fn rule2_whiteout_keeps_same_layer_file_in_either_order() {
        for upper in [
            vec![whiteout("a"), file("a")],
            vec![file("a"), whiteout("a")],
        ] {
            let out = flatten(vec![vec![file("a")], upper]).unwrap();
            assert_eq!(out.len(), 2, "{out:?}");
            assert!(out[1].starts_with("a file@1:"), "{out:?}");
        }
    }

    #[test]
    fn rule3_opaque_hides_lower_children_keeps_own_even_when_marker_is_last() {
        let out = flatten(vec![
            vec![dir("d"), file("d/old"), dir("d/sub"), file("d/sub/deep")],
            vec![dir_mode("d", 0o700), file("d/new"), opaque("d")],
        ])
        .unwrap();
        assert_eq!(
            out,
            [". Directory/755", "d Directory/700", "d/new file@1:1"]
        );
    }

    #[test]
    fn rule3_opaque_root() {
        let out = flatten(vec![
            vec![file("a"), file("b")],
            vec![opaque(""), file("c")],
        ])
        .unwrap();
        assert_eq!(out, [". Directory/755", "c file@1:1"]);
    }

    #[test]
    fn rule4_dir_file_dir_across_three_layers() {
        let out = flatten(vec![
            vec![dir("p"), file("p/child")],
            vec![file("p")],
            vec![dir_mode("p", 0o750), file("p/again")],
        ])
        .unwrap();
        assert_eq!(
            out,
            [". Directory/755", "p Directory/750", "p/again file@2:1"]
        );
    }

    #[test]
    fn rule4_directory_over_directory_merges_with_upper_metadata() {
        let out = flatten(vec![
            vec![dir_mode("d", 0o755), file("d/lower")],
            vec![dir_mode("d", 0o1777), file("d/upper")],
        ])
        .unwrap();
        assert_eq!(
            out,
            [
                ". Directory/755",
                "d Directory/1777",
                "d/lower file@0:1",
                "d/upper file@1:1"
            ]
        );
    }

    #[test]
    fn rule4_symlink_replaces_directory_subtree() {
        let out = flatten(vec![
            vec![dir("d"), file("d/x")],
            vec![symlink("d", "/elsewhere")],
        ])
        .unwrap();
        assert_eq!(out, [". Directory/755", "d Symlink/644"]);
    }

    #[test]
    fn rule5_hardlink_to_lower_layer() {
        let out = flatten(vec![vec![file("bin/a")], vec![hardlink("bin/b", "bin/a")]]).unwrap();
        assert_eq!(
            out,
            [
                ". Directory/755",
                "bin Directory/755",
                "bin/a file@0:0",
                "bin/b -> bin/a"
            ]
        );
    }

    #[test]
    fn rule5_hardlink_keeps_old_content_when_target_replaced() {
        let out = flatten(vec![vec![file("a"), hardlink("b", "a")], vec![file("a")]]).unwrap();
        assert!(has(&out, "b file@0:0"), "{out:?}");
        assert!(has(&out, "a file@1:0"), "{out:?}");
    }

    #[test]
    fn rule5_hardlink_whose_target_was_whited_out_becomes_the_file() {
        let out = flatten(vec![
            vec![file("a"), hardlink("b", "a"), hardlink("c", "b")],
            vec![whiteout("a")],
        ])
        .unwrap();
        assert_eq!(out, [". Directory/755", "b file@0:0", "c -> b"]);
    }

    #[test]
    fn rule5_hardlink_to_missing_or_directory_is_an_error() {
        let err = flatten(vec![vec![hardlink("b", "nowhere")]])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nowhere") && err.contains("does not exist"),
            "{err}"
        );
        let err = flatten(vec![vec![dir("d"), hardlink("b", "d")]])
            .unwrap_err()
            .to_string();
        assert!(err.contains("directory"), "{err}");
    }

    #[test]
    fn rule5_hardlinked_symlink_comes_after_its_target() {
        let out = flatten(vec![vec![symlink("z", "t"), hardlink("a", "z")]]).unwrap();
        assert_eq!(out, [". Directory/755", "z Symlink/644", "a -> z"]);
    }

    #[test]
    fn rule8_implicit_parents() {
        let out = flatten(vec![vec![file("x/y/z")]]).unwrap();
        assert_eq!(
            out,
            [
                ". Directory/755",
                "x Directory/755",
                "x/y Directory/755",
                "x/y/z file@0:0"
            ]
        );
    }

    #[test]
    fn entry_below_lower_symlink_replaces_it_with_a_directory() {
        let out = flatten(vec![vec![symlink("lib", "usr/lib")], vec![file("lib/x")]]).unwrap();
        assert_eq!(
            out,
            [". Directory/755", "lib Directory/755", "lib/x file@1:0"]
        );
    }

    #[test]
    fn entry_below_same_layer_symlink_resolves_through_it() {
        let out = flatten(vec![vec![
            dir("etc"),
            symlink("localetc", "/etc"),
            file("localetc/unbroken"),
            symlink("rel", "sub/../etc"),
            file("rel/relative"),
        ]])
        .unwrap();
        assert_eq!(
            out,
            [
                ". Directory/755",
                "etc Directory/755",
                "localetc Symlink/644",
                "rel Symlink/644",
                "etc/unbroken file@0:2",
                "etc/relative file@0:4"
            ]
        );
    }

    #[test]
    fn same_layer_symlink_dotdot_stays_inside_the_root() {
        let out = flatten(vec![vec![symlink("a/up", "../../../../x"), file("a/up/f")]]).unwrap();
        assert!(has(&out, "x/f file@0:1"), "{out:?}");
        assert!(has(&out, "a/up Symlink/644"), "{out:?}");
    }

    #[test]
    fn hardlink_target_through_same_layer_symlink() {
        let out = flatten(vec![vec![
            file("etc/passwd"),
            symlink("localetc", "/etc"),
            hardlink("localpasswd", "localetc/passwd"),
        ]])
        .unwrap();
        assert!(has(&out, "etc/passwd file@0:0"), "{out:?}");
        assert!(has(&out, "localpasswd -> etc/passwd"), "{out:?}");
    }

    #[test]
    fn same_layer_symlink_loop_is_an_error() {
        let err = flatten(vec![vec![
            symlink("a", "b"),
            symlink("b", "a"),
            file("a/x"),
        ]])
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"a/x\"") && err.contains("loop"), "{err}");
    }

    #[test]
    fn own_link_to_a_lower_symlink_stops_at_the_lower_one() {
        let out = flatten(vec![
            vec![symlink("lib", "usr/lib")],
            vec![symlink("l", "lib"), file("l/x")],
        ])
        .unwrap();
        assert!(has(&out, "lib Directory/755"), "{out:?}");
        assert!(has(&out, "lib/x file@1:1"), "{out:?}");
    }

    #[test]
    fn entry_at_a_same_layer_symlink_replaces_it() {
        let out = flatten(vec![vec![symlink("l", "etc"), file("l")]]).unwrap();
        assert_eq!(out, [". Directory/755", "l file@0:1"]);
    }

    #[test]
    fn same_layer_file_then_child_makes_directory() {
        let out = flatten(vec![vec![file("a"), file("a/b")]]).unwrap();
        assert_eq!(out, [". Directory/755", "a Directory/755", "a/b file@0:1"]);
    }

    #[test]
    fn same_layer_directory_then_file_drops_subtree() {
        let out = flatten(vec![vec![dir("a"), file("a/b"), file("a")]]).unwrap();
        assert_eq!(out, [". Directory/755", "a file@0:2"]);
    }

    #[test]
    fn sibling_prefixes_are_not_descendants() {
        let out = flatten(vec![
            vec![dir("a"), file("a/x"), file("a-b"), file("a0")],
            vec![whiteout("a")],
        ])
        .unwrap();
        assert_eq!(out, [". Directory/755", "a-b file@0:2", "a0 file@0:3"]);
    }

    #[test]
    fn root_directory_metadata_from_top_layer() {
        let out = flatten(vec![vec![dir_mode("", 0o700)], vec![dir_mode("", 0o755)]]).unwrap();
        assert_eq!(out, [". Directory/755"]);
    }

    #[test]
    fn captured_content_follows_symlinks_and_extras_replace() {
        let mut tree = Tree::new();
        let mut passwd = meta("usr/share/passwd", EntryKind::Regular);
        passwd.size = 4;
        tree.apply_layer(
            0,
            vec![
                ScannedEntry {
                    ordinal: 0,
                    end: 0,
                    change: Change::Add(passwd),
                    content: Some(Arc::new(b"root".to_vec())),
                },
                ScannedEntry {
                    ordinal: 1,
                    end: 0,
                    change: symlink("etc/passwd", "../usr/share/passwd"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 2,
                    end: 0,
                    change: symlink("etc/abs", "/etc/passwd"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 3,
                    end: 0,
                    change: file("etc/wsl.conf"),
                    content: None,
                },
            ],
        )
        .unwrap();
        assert_eq!(tree.captured(b"etc/abs").unwrap().as_slice(), b"root");
        assert!(tree.captured(b"etc/missing").is_none());
        let mut conf = meta("etc/wsl.conf", EntryKind::Regular);
        conf.size = 3;
        tree.add_extra(1, conf, b"new".to_vec()).unwrap();
        let mut extra = meta("opt/new/file", EntryKind::Regular);
        extra.size = 1;
        tree.add_extra(1, extra, b"x".to_vec()).unwrap();
        let plan = tree.plan(1);
        let added: Vec<_> = plan
            .regular(1)
            .map(|f| (f.paths[0].clone(), f.content.clone().unwrap()))
            .collect();
        assert_eq!(added.len(), 2);
        assert_eq!(added[0].0, b"etc/wsl.conf");
        assert_eq!(added[0].1.as_slice(), b"new");
        assert!(plan.regular(0).all(|f| f.paths[0] != b"etc/wsl.conf"));
        assert!(plan.contentless().any(|(p, _, _)| p == b"opt/new"));
    }

    #[test]
    fn added_files_follow_symlinked_parents_and_stop_at_loops() {
        let mut tree = Tree::new();
        tree.apply_layer(
            0,
            vec![
                ScannedEntry {
                    ordinal: 0,
                    end: 0,
                    change: Change::Add(meta("private/etc", EntryKind::Directory)),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 1,
                    end: 0,
                    change: symlink("etc", "private/etc"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 2,
                    end: 0,
                    change: symlink("loop", "loop2"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 3,
                    end: 0,
                    change: symlink("loop2", "/loop"),
                    content: None,
                },
            ],
        )
        .unwrap();
        assert_eq!(
            tree.follow_parents(b"etc/wsl.conf"),
            b"private/etc/wsl.conf"
        );
        assert_eq!(tree.follow_parents(b"loop/x"), b"loop/x");
        assert!(tree.captured(b"loop").is_none());
        let mut conf = meta("etc/wsl.conf", EntryKind::Regular);
        conf.size = 1;
        tree.add_extra(1, conf, b"x".to_vec()).unwrap();
        let plan = tree.plan(1);
        assert_eq!(
            plan.regular(1).next().unwrap().paths[0],
            b"private/etc/wsl.conf"
        );
        assert!(plan
            .contentless()
            .any(|(p, m, _)| p == b"etc" && m.kind == EntryKind::Symlink));
    }

    #[test]
    fn an_added_directory_dates_only_what_the_layers_did_not_make() {
        let mut tree = Tree::new();
        let mut own = meta("etc/own", EntryKind::Directory);
        own.mtime = 5;
        tree.apply_layer(
            0,
            vec![
                ScannedEntry {
                    ordinal: 0,
                    end: 0,
                    change: Change::Add(own),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 1,
                    end: 0,
                    change: symlink("etc/linked", "own"),
                    content: None,
                },
            ],
        )
        .unwrap();
        let dated = |path: &str| {
            let mut m = meta(path, EntryKind::Directory);
            m.mtime = 1_700_000_000;
            m
        };
        let mut json = meta("etc/gen/image.json", EntryKind::Regular);
        json.size = 2;
        tree.add_extra(1, json, b"{}".to_vec()).unwrap();
        for path in ["etc/gen", "etc/own", "etc/linked", "new"] {
            tree.add_extra(1, dated(path), Vec::new()).unwrap();
        }
        let mut bad = meta("etc/gen", EntryKind::Directory);
        bad.size = 0;
        assert!(tree.add_extra(1, bad, b"x".to_vec()).is_err());
        let plan = tree.plan(1);
        let entry = |path: &str| {
            plan.contentless()
                .find(|(p, _, _)| p == path.as_bytes())
                .map(|(_, m, _)| (m.kind, m.mtime))
        };
        assert_eq!(
            entry("etc/gen"),
            Some((EntryKind::Directory, 1_700_000_000))
        );
        assert_eq!(entry("new"), Some((EntryKind::Directory, 1_700_000_000)));
        assert_eq!(entry("etc/own"), Some((EntryKind::Directory, 5)));
        assert_eq!(entry("etc/linked").map(|e| e.0), Some(EntryKind::Symlink));
        // Its implicit parent keeps the default.
        assert_eq!(entry("etc"), Some((EntryKind::Directory, 0)));
    }

    #[test]
    fn ignored_entries_leave_no_trace() {
        let out = flatten(vec![vec![Change::Ignore, file("a")]]).unwrap();
        assert_eq!(out, [". Directory/755", "a file@0:1"]);
    }

    #[test]
    fn a_scanned_layer_gives_back_what_was_pushed() {
        let mut rich = meta("dev/sda", EntryKind::BlockDevice);
        rich.mode = 0o4755;
        rich.uid = u64::MAX;
        rich.gid = 3_000_000_000;
        rich.mtime = -86_400;
        rich.mtime_exact = Some("-86400.25".to_string());
        rich.dev_major = 8;
        rich.dev_minor = u32::MAX;
        rich.xattrs = vec![
            (b"security.capability".to_vec(), vec![0, 1, 2, 255]),
            (b"user.empty".to_vec(), Vec::new()),
        ];
        let mut link = meta("dev/l", EntryKind::Symlink);
        link.path = b"dev/sda/l\xff".to_vec();
        link.link = b"/abs/target".to_vec();
        let mut big = meta("dev/big", EntryKind::Regular);
        big.size = 1 << 40;
        let changes = vec![
            Change::Add(rich.clone()),
            Change::Add(link.clone()),
            Change::Whiteout(b"dev/gone".to_vec()),
            Change::Ignore,
            Change::Opaque(Vec::new()),
            Change::Add(big.clone()),
        ];
        let mut layer = ScannedLayer::default();
        for (i, change) in changes.into_iter().enumerate() {
            layer.push(ScannedEntry {
                ordinal: i as u64 * 1000,
                end: 512 + (1 << 41) * i as u64,
                content: (i == 5).then(|| Arc::new(b"kept".to_vec())),
                change,
            });
        }
        assert_eq!(layer.entries(), 6);
        let mut seen = Vec::new();
        let mut ends = Vec::new();
        layer
            .each(|e| {
                ends.push(e.end);
                seen.push((e.ordinal, e.change, e.content));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen.len(), 5, "the ignored entry is not kept");
        // Only a regular file carries its end; the others show the last one read.
        assert_eq!(ends, [0, 0, 0, 0, 512 + (1 << 41) * 5]);
        assert_eq!(seen[0].0, 0);
        assert_eq!(seen[0].1, Change::Add(rich));
        assert_eq!(seen[1].1, Change::Add(link));
        assert_eq!(
            (seen[2].0, &seen[2].1),
            (2000, &Change::Whiteout(b"dev/gone".to_vec()))
        );
        assert_eq!((seen[3].0, &seen[3].1), (4000, &Change::Opaque(Vec::new())));
        let Change::Add(file) = &seen[4].1 else {
            panic!("{:?}", seen[4].1)
        };
        // A regular file keeps its name and size; the emit pass re-reads the rest.
        assert_eq!(
            (&file.path, file.kind, file.size),
            (&big.path, EntryKind::Regular, 1 << 40)
        );
        assert_eq!(
            seen[4].2.as_deref().map(|c| c.as_slice()),
            Some(&b"kept"[..])
        );
    }

    #[test]
    fn directories_come_in_byte_order_of_whole_paths() {
        // '-' and '.' sort before '/', '0' after it: a directory's subtree is not contiguous.
        let names = [
            "a", "a/c", "a-b", "a.d", "a.d/x", "a0", "a/c/d", "b", "a/!", "a/c!",
        ];
        let out = flatten(vec![names.iter().map(|n| dir(n)).collect()]).unwrap();
        let mut expected: Vec<String> =
            names.iter().map(|n| format!("{n} Directory/755")).collect();
        expected.sort();
        expected.insert(0, ". Directory/755".to_string());
        assert_eq!(out, expected);
    }

    #[test]
    fn many_removals_and_replacements_survive_the_table_growing() {
        // Enough nodes for the lookup table to be rebuilt several times with removed ones in it.
        let lower: Vec<Change> = (0..3000)
            .flat_map(|i| {
                [
                    dir(&format!("d{}", i % 100)),
                    file(&format!("d{}/f{i}", i % 100)),
                ]
            })
            .collect();
        let mut upper: Vec<Change> = (0..100)
            .step_by(2)
            .map(|d| whiteout(&format!("d{d}")))
            .collect();
        upper.extend((0..100).step_by(2).map(|d| file(&format!("d{d}/new"))));
        upper.extend((1..100).step_by(2).map(|d| opaque(&format!("d{d}"))));
        upper.push(file("d1/f1"));
        let out = flatten(vec![lower, upper]).unwrap();
        let files: Vec<&String> = out.iter().filter(|l| l.contains(" file@")).collect();
        assert_eq!(files.len(), 51, "{files:?}");
        assert!(has(&out, "d0/new file@1:50"), "{out:?}");
        assert!(has(&out, "d1/f1 file@1:150"), "{out:?}");
        assert!(!out.iter().any(|l| l.starts_with("d1/f101 ")), "{out:?}");
    }

    #[test]
    fn a_path_replaced_thousands_of_times_shows_the_last() {
        // Each directory-to-file swap leaves a removed node behind in the lookup table.
        let mut layer = Vec::new();
        for i in 0..4000 {
            layer.push(dir("x"));
            layer.push(file(&format!("x/f{i}")));
            layer.push(file("x"));
        }
        layer.push(dir_mode("x", 0o700));
        layer.push(file("x/last"));
        let out = flatten(vec![layer]).unwrap();
        assert_eq!(
            out,
            [". Directory/755", "x Directory/700", "x/last file@0:12001"]
        );
    }
}
