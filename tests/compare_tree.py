#!/usr/bin/env python3
"""Compares a flattened tar with a directory tree (what `umoci unpack` made), entry by entry.

    compare_tree.py OUTPUT.tar ROOTFS_DIR

Compared for every path: type, permission bits (with setuid/setgid/sticky), uid, gid, size,
sha256 of content, symlink target, device numbers, xattrs (user.*, trusted.*,
security.capability), mtime of non-directories, and hardlink groups (paths sharing an inode
on disk must be exactly the paths that the tar links together). Prints one line per
difference and exits 1 if there is any; prints a summary line and exits 0 otherwise.
"""

import hashlib
import os
import stat
import sys
import tarfile

XATTR_PREFIXES = ("user.", "trusted.", "security.capability")


def wanted_xattr(name):
    return name.startswith(XATTR_PREFIXES)


def from_tar(path):
    entries, links = {}, {}
    with tarfile.open(path, encoding="utf-8", errors="surrogateescape") as t:
        for m in t:
            name = m.name.rstrip("/")
            if name in (".", ""):
                continue
            name = name[2:] if name.startswith("./") else name
            if m.islnk():
                target = m.linkname[2:] if m.linkname.startswith("./") else m.linkname
                links[name] = target
                continue
            kind = {tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l",
                    tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b", tarfile.FIFOTYPE: "p"}[m.type]
            digest = hashlib.sha256(t.extractfile(m).read()).hexdigest() if kind == "f" else ""
            xattrs = {k[len("SCHILY.xattr."):]: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            entries[name] = {
                "kind": kind, "mode": m.mode & 0o7777, "uid": m.uid, "gid": m.gid,
                "size": m.size if kind == "f" else 0, "sha256": digest,
                "link": m.linkname if kind == "l" else "",
                "dev": (m.devmajor, m.devminor) if kind in "cb" else (0, 0),
                "mtime": int(m.mtime) if kind != "d" else None,
                "xattrs": {k: v.encode("utf-8", "surrogateescape") for k, v in xattrs.items() if wanted_xattr(k)},
            }
    # Resolve hardlinks to their target's description; remember the groups.
    groups = {}
    for name, target in links.items():
        root = target
        while root in links:
            root = links[root]
        entries[name] = dict(entries[root])
        groups.setdefault(root, {root}).add(name)
    return entries, [g for g in groups.values()]


def from_dir(root):
    entries, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                kind = "f"
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                inodes.setdefault(st.st_ino, set()).add(rel)
            else:
                digest = ""
                kind = "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "c" if stat.S_ISCHR(mode) \
                    else "b" if stat.S_ISBLK(mode) else "p" if stat.S_ISFIFO(mode) else "?"
                if kind in "cbpl":
                    inodes.setdefault(st.st_ino, set()).add(rel)
            try:
                names = os.listxattr(full, follow_symlinks=False)
            except OSError:
                names = []
            xattrs = {}
            for x in names:
                if wanted_xattr(x):
                    xattrs[x] = os.getxattr(full, x, follow_symlinks=False)
            entries[rel] = {
                "kind": kind, "mode": stat.S_IMODE(mode), "uid": st.st_uid, "gid": st.st_gid,
                "size": st.st_size if kind == "f" else 0, "sha256": digest,
                "link": os.readlink(full) if kind == "l" else "",
                "dev": (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in "cb" else (0, 0),
                "mtime": int(st.st_mtime) if kind != "d" else None,
                "xattrs": xattrs,
            }
    groups = [g for g in inodes.values() if len(g) > 1]
    return entries, groups


def main():
    tar_path, root = sys.argv[1], sys.argv[2]
    a, a_groups = from_tar(tar_path)
    b, b_groups = from_dir(root)
    diffs = []
    for p in sorted(set(a) | set(b)):
        if p not in a:
            diffs.append(f"only in {root}: {p!r}")
        elif p not in b:
            diffs.append(f"only in the tar: {p!r}")
        else:
            for k in a[p]:
                if a[p][k] != b[p][k]:
                    diffs.append(f"{p!r}: {k} tar={a[p][k]!r} dir={b[p][k]!r}")
    norm = lambda gs: sorted(sorted(g) for g in gs)
    if norm(a_groups) != norm(b_groups):
        diffs.append(f"hardlink groups differ: tar={norm(a_groups)} dir={norm(b_groups)}")
    for d in diffs:
        print(d)
    if diffs:
        sys.exit(1)
    print(f"identical: {len(a)} paths, {len(a_groups)} hardlink groups")


if __name__ == "__main__":
    main()
