//! The layer rules: stacking changesets into the final file-system tree.
//!
//! Layers are applied bottom to top onto an in-memory tree of *metadata* only. Each non-
//! directory in the tree points at an inode: the (layer, entry) whose content it shows. A
//! hardlink points at the inode its target had at that moment, so an upper layer replacing
//! the target does not change what the link shows. Content never enters the tree; the emit
//! pass fetches it from the layer stream afterwards.
//!
//! Within one layer, whiteouts and opaque markers act on the layers *below* only, whatever
//! their position in the tar; so a layer's deletions are applied before its additions, and
//! the additions in tar order (a later entry for a path replaces an earlier one).

use super::entry::{display_name, join, Change, EntryKind, EntryMeta};
use crate::error::bail_kind;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

pub type InodeId = u32;

/// Symlinks followed to resolve one path, as Linux's `MAXSYMLINKS`: more is taken as a loop.
pub const MAX_LINK_HOPS: usize = 40;

#[derive(Debug)]
pub struct Inode {
    /// Index of the layer the entry came from; `layers` (one past the top) for files added
    /// after flattening (see [`Tree::add_extra`]).
    pub layer: usize,
    /// Position of the entry in its layer's tar (0-based, counting every entry).
    pub ordinal: u64,
    pub meta: EntryMeta,
    /// Content held in memory: small files captured in the index pass, and added files.
    pub content: Option<Arc<Vec<u8>>>,
    /// The entry's name in its layer, when a symlink of that layer resolved it to another
    /// path (`meta.path`): what the emit pass must find at `ordinal`.
    pub entry_name: Option<Box<[u8]>>,
    refs: u32,
}

#[derive(Debug)]
enum Node {
    /// `None`: implicit, no layer listed this directory.
    Dir(Option<Box<EntryMeta>>),
    Leaf(InodeId),
}

/// One entry of a layer as the index pass saw it.
#[derive(Debug)]
pub struct ScannedEntry {
    pub ordinal: u64,
    pub change: Change,
    /// The content, for the few small files a later stage asked to read.
    pub content: Option<Arc<Vec<u8>>>,
}

#[derive(Default)]
pub struct Tree {
    nodes: BTreeMap<Vec<u8>, Node>,
    inodes: HashMap<InodeId, Inode>,
    next_inode: InodeId,
}

/// What the final tree looks like, in output order.
pub struct Plan {
    /// Directories, symlinks, devices and FIFOs (no content), parents before children.
    /// A `Some(target)` means: write a hardlink to that earlier path.
    pub contentless: Vec<(Vec<u8>, EntryMeta, Option<Vec<u8>>)>,
    /// Regular files, per layer, in tar order.
    pub regular: Vec<Vec<RegularFile>>,
}

pub struct RegularFile {
    pub ordinal: u64,
    /// Set for files added after flattening: their content is here, not in a layer.
    pub content: Option<Arc<Vec<u8>>>,
    pub meta: EntryMeta,
    /// See [`Inode::entry_name`].
    pub entry_name: Option<Box<[u8]>>,
    /// Paths showing this content: the first gets the data, the rest hardlink to it.
    pub paths: Vec<Vec<u8>>,
}

/// Keys of every strict descendant of `path` in a byte-ordered map: `path/` up to `path0`
/// ('0' is the byte after '/').
fn descendant_range(path: &[u8]) -> (Vec<u8>, Vec<u8>) {
    ([path, b"/"].concat(), [path, b"0"].concat())
}

impl Tree {
    pub fn new() -> Tree {
        let mut t = Tree::default();
        t.nodes.insert(Vec::new(), Node::Dir(None));
        t
    }

    /// Paths in the tree, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    fn release(&mut self, node: Node) {
        if let Node::Leaf(id) = node {
            let inode = self
                .inodes
                .get_mut(&id)
                .expect("leaf points at a live inode");
            inode.refs -= 1;
            if inode.refs == 0 {
                self.inodes.remove(&id);
            }
        }
    }

    fn remove_descendants(&mut self, path: &[u8]) {
        let doomed: Vec<Vec<u8>> = if path.is_empty() {
            self.nodes
                .keys()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect()
        } else {
            let (lo, hi) = descendant_range(path);
            self.nodes.range(lo..hi).map(|(k, _)| k.clone()).collect()
        };
        for key in doomed {
            if let Some(node) = self.nodes.remove(&key) {
                self.release(node);
            }
        }
    }

    fn remove_subtree(&mut self, path: &[u8]) {
        if let Some(node) = self.nodes.remove(path) {
            self.release(node);
        }
        self.remove_descendants(path);
    }

    /// Makes every ancestor of `path` a directory. An ancestor that is a non-directory (a
    /// file, or a symlink: overlay storage takes the path literally) becomes an implicit
    /// directory, so the output never has a path below a non-directory.
    fn ensure_parents(&mut self, path: &[u8]) {
        let mut ends: Vec<usize> = path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i)
            .collect();
        ends.retain(|i| *i > 0);
        for end in ends {
            let ancestor = &path[..end];
            match self.nodes.get(ancestor) {
                Some(Node::Dir(_)) => {}
                Some(Node::Leaf(_)) => {
                    let node = self.nodes.remove(ancestor).expect("present");
                    self.release(node);
                    self.nodes.insert(ancestor.to_vec(), Node::Dir(None));
                }
                None => {
                    self.nodes.insert(ancestor.to_vec(), Node::Dir(None));
                }
            }
        }
    }

    /// Applies one layer's entries (in tar order) on top of the tree.
    ///
    /// A path that goes through a symlink this same layer made earlier is resolved through
    /// it, inside the root, as extracting the layer like a regular tar does (containerd,
    /// moby, umoci). A symlink of a *lower* layer is not followed: overlay storage extracts
    /// each layer on its own, so there the upper layer's real directory replaces it.
    pub fn apply_layer(&mut self, layer: usize, entries: Vec<ScannedEntry>) -> Result<()> {
        for e in &entries {
            match &e.change {
                Change::Whiteout(path) => self.remove_subtree(path),
                Change::Opaque(dir) => {
                    if let Some(Node::Dir(_)) = self.nodes.get(dir.as_slice()) {
                        self.remove_descendants(dir);
                    }
                }
                Change::Add(_) | Change::Ignore => {}
            }
        }
        let mut own_links: HashSet<Vec<u8>> = HashSet::new();
        for e in entries {
            let Change::Add(mut meta) = e.change else {
                continue;
            };
            let mut entry_name = None;
            if !own_links.is_empty() {
                let resolved = self.through_own_links(layer, &meta.path, &own_links)?;
                if resolved != meta.path {
                    entry_name = Some(std::mem::replace(&mut meta.path, resolved).into());
                }
                if meta.kind == EntryKind::Hardlink {
                    meta.link = self.through_own_links(layer, &meta.link, &own_links)?;
                }
            }
            // A hardlink to one of these symlinks is that symlink too.
            if matches!(meta.kind, EntryKind::Symlink | EntryKind::Hardlink) {
                own_links.insert(meta.path.clone());
            }
            self.add(layer, e.ordinal, meta, e.content, entry_name)?;
        }
        Ok(())
    }

    /// `path` with every ancestor that is a symlink made by `layer` itself replaced by where
    /// it points, as securejoin does: absolute targets from the image's root, `..` never above
    /// it, at most [`MAX_LINK_HOPS`] links. The last component is never followed: an entry
    /// replaces a symlink at its own path, and a hardlink to a symlink links the symlink.
    fn through_own_links(
        &self,
        layer: usize,
        path: &[u8],
        own_links: &HashSet<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let Some(last_slash) = path.iter().rposition(|b| *b == b'/') else {
            return Ok(path.to_vec());
        };
        let goes_through_own_link = path[..last_slash]
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| &path[..i])
            .chain(std::iter::once(&path[..last_slash]))
            .any(|a| own_links.contains(a));
        if !goes_through_own_link {
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
                    let link = own_links
                        .contains(&candidate)
                        .then(|| self.nodes.get(&candidate))
                        .flatten()
                        .and_then(|node| match node {
                            Node::Leaf(id) => Some(&self.inodes[id]),
                            Node::Dir(_) => None,
                        })
                        .filter(|i| i.layer == layer && i.meta.kind == EntryKind::Symlink);
                    match link {
                        Some(inode) => {
                            hops += 1;
                            if hops > MAX_LINK_HOPS {
                                bail_kind!(HostileInput,
                                    "entry {:?} goes through more than {MAX_LINK_HOPS} symlinks of its own layer (a symlink loop)",
                                    display_name(path)
                                );
                            }
                            let target = &inode.meta.link;
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

    fn add(
        &mut self,
        layer: usize,
        ordinal: u64,
        meta: EntryMeta,
        content: Option<Arc<Vec<u8>>>,
        entry_name: Option<Box<[u8]>>,
    ) -> Result<()> {
        let path = meta.path.clone();
        self.ensure_parents(&path);
        match meta.kind {
            EntryKind::Directory => match self.nodes.get_mut(&path) {
                // A directory over a directory merges: new metadata, children stay.
                Some(Node::Dir(existing)) => *existing = Some(Box::new(meta)),
                _ => {
                    self.remove_subtree(&path);
                    self.nodes.insert(path, Node::Dir(Some(Box::new(meta))));
                }
            },
            EntryKind::Hardlink => {
                let target = meta.link.clone();
                let id =
                    match self.nodes.get(&target) {
                        Some(Node::Leaf(id)) => *id,
                        Some(Node::Dir(_)) => bail_kind!(
                            HostileInput,
                            "hardlink {:?} names directory {:?}",
                            display_name(&path),
                            display_name(&target)
                        ),
                        None => bail_kind!(HostileInput,
                        "hardlink {:?} names {:?}, which does not exist in this or a lower layer",
                        display_name(&path),
                        display_name(&target)
                    ),
                    };
                // Take the reference before removing the old path: a link may replace the
                // very path it names.
                self.inodes.get_mut(&id).expect("live").refs += 1;
                self.remove_subtree(&path);
                self.nodes.insert(path, Node::Leaf(id));
            }
            _ => {
                let id = self.next_inode;
                self.next_inode += 1;
                self.inodes.insert(
                    id,
                    Inode {
                        layer,
                        ordinal,
                        meta,
                        content,
                        entry_name,
                        refs: 1,
                    },
                );
                self.remove_subtree(&path);
                self.nodes.insert(path, Node::Leaf(id));
            }
        }
        Ok(())
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
            return match self.nodes.get(&meta.path) {
                Some(Node::Dir(Some(_)) | Node::Leaf(_)) => Ok(()),
                Some(Node::Dir(None)) | None => self.add(layers, 0, meta, None, None),
            };
        }
        let ordinal = self.next_inode as u64;
        self.add(layers, ordinal, meta, Some(Arc::new(content)), None)
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
                if let Some(Node::Leaf(id)) = self.nodes.get(ancestor) {
                    let inode = &self.inodes[id];
                    if inode.meta.kind == EntryKind::Symlink {
                        hops += 1;
                        match link_target(ancestor, &inode.meta.link) {
                            Some(resolved) if hops <= 16 && !resolved.is_empty() => {
                                let mut next = resolved;
                                next.extend_from_slice(&current[end..]);
                                current = next;
                                continue 'restart;
                            }
                            _ => return path.to_vec(),
                        }
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
            let Node::Leaf(id) = self.nodes.get(&path)? else {
                return None;
            };
            let inode = self.inodes.get(id)?;
            match inode.meta.kind {
                EntryKind::Regular => return inode.content.clone(),
                EntryKind::Symlink => {
                    path = self.follow_parents(&link_target(&path, &inode.meta.link)?);
                }
                _ => return None,
            }
        }
        None
    }

    /// Orders the final tree for output. `layers` is the layer count; files added with
    /// [`Tree::add_extra`] come last.
    pub fn plan(self, layers: usize) -> Plan {
        let mut contentless = Vec::new();
        let mut paths_of: HashMap<InodeId, Vec<Vec<u8>>> = HashMap::new();
        for (path, node) in &self.nodes {
            match node {
                Node::Dir(meta) => {
                    let meta = match meta {
                        Some(m) => (**m).clone(),
                        None => EntryMeta::implicit_dir(path.clone()),
                    };
                    contentless.push((path.clone(), meta, None));
                }
                Node::Leaf(id) => paths_of.entry(*id).or_default().push(path.clone()),
            }
        }
        let mut regular: Vec<Vec<RegularFile>> = (0..=layers).map(|_| Vec::new()).collect();
        let mut non_regular: Vec<(Vec<u8>, EntryMeta, Option<Vec<u8>>)> = Vec::new();
        let mut inodes = self.inodes;
        for (id, mut paths) in paths_of {
            let inode = inodes.remove(&id).expect("referenced inode is live");
            // The inode's own path first when it still shows it, so the output resembles
            // the layer; the rest in byte order. Either way the choice is deterministic.
            paths.sort();
            if let Some(pos) = paths.iter().position(|p| *p == inode.meta.path) {
                let own = paths.remove(pos);
                paths.insert(0, own);
            }
            if inode.meta.kind == EntryKind::Regular {
                regular[inode.layer].push(RegularFile {
                    ordinal: inode.ordinal,
                    content: (inode.layer == layers).then_some(inode.content).flatten(),
                    meta: inode.meta,
                    entry_name: inode.entry_name,
                    paths,
                });
            } else {
                let first = paths[0].clone();
                for (i, p) in paths.into_iter().enumerate() {
                    let link = (i > 0).then(|| first.clone());
                    non_regular.push((p, inode.meta.clone(), link));
                }
            }
        }
        // Merge the non-regular leaves into path order, keeping each hardlink after the
        // path it names.
        non_regular.sort_by(|a, b| (a.2.is_some(), &a.0).cmp(&(b.2.is_some(), &b.0)));
        let (firsts, links): (Vec<_>, Vec<_>) =
            non_regular.into_iter().partition(|e| e.2.is_none());
        contentless.extend(firsts);
        contentless.sort_by(|a, b| a.0.cmp(&b.0));
        contentless.extend(links);
        for layer in &mut regular {
            layer.sort_by_key(|f| f.ordinal);
        }
        Plan {
            contentless,
            regular,
        }
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
            let entries = changes
                .into_iter()
                .enumerate()
                .map(|(o, change)| ScannedEntry {
                    ordinal: o as u64,
                    change,
                    content: None,
                })
                .collect();
            tree.apply_layer(i, entries)?;
        }
        let plan = tree.plan(count);
        let mut out = Vec::new();
        for (path, m, link) in plan.contentless {
            let p = String::from_utf8(path).unwrap();
            let p = if p.is_empty() { ".".to_string() } else { p };
            match link {
                Some(t) => out.push(format!("{p} -> {}", String::from_utf8(t).unwrap())),
                None => out.push(format!("{p} {:?}/{:o}", m.kind, m.mode)),
            }
        }
        for (layer, files) in plan.regular.into_iter().enumerate() {
            for f in files {
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
                    change: Change::Add(passwd),
                    content: Some(Arc::new(b"root".to_vec())),
                },
                ScannedEntry {
                    ordinal: 1,
                    change: symlink("etc/passwd", "../usr/share/passwd"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 2,
                    change: symlink("etc/abs", "/etc/passwd"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 3,
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
        let added: Vec<_> = plan.regular[1]
            .iter()
            .map(|f| (f.paths[0].clone(), f.content.clone().unwrap()))
            .collect();
        assert_eq!(added.len(), 2);
        assert_eq!(added[0].0, b"etc/wsl.conf");
        assert_eq!(added[0].1.as_slice(), b"new");
        assert!(plan.regular[0]
            .iter()
            .all(|f| f.paths[0] != b"etc/wsl.conf"));
        assert!(plan.contentless.iter().any(|(p, _, _)| p == b"opt/new"));
    }

    #[test]
    fn added_files_follow_symlinked_parents_and_stop_at_loops() {
        let mut tree = Tree::new();
        tree.apply_layer(
            0,
            vec![
                ScannedEntry {
                    ordinal: 0,
                    change: Change::Add(meta("private/etc", EntryKind::Directory)),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 1,
                    change: symlink("etc", "private/etc"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 2,
                    change: symlink("loop", "loop2"),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 3,
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
        assert_eq!(plan.regular[1][0].paths[0], b"private/etc/wsl.conf");
        assert!(plan
            .contentless
            .iter()
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
                    change: Change::Add(own),
                    content: None,
                },
                ScannedEntry {
                    ordinal: 1,
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
            plan.contentless
                .iter()
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
}
