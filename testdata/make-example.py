#!/usr/bin/env python3
"""Writes testdata/example/: a small OCI image layout (tag `latest`) for the README's first
command and for tests that want a real image without building one.

Three gzip layers that exercise the layer rules: a base tree; a layer with a hardlink to a
base file, a symlink and a whiteout; a layer with an opaque directory and a changed file.
The config has User, Env, WorkingDir, Cmd and Labels, as a real image would.

Deterministic: fixed mtimes, sorted JSON, gzip without name or timestamp, so running it
again gives byte-identical files (tests/example.rs checks that the committed copy is what
this script writes). Standard library only.

    python3 testdata/make-example.py [OUTPUT_DIR]     # default: testdata/example
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

MTIME = 1700000000


def entry(tar, name, kind="file", data=b"", mode=None, uid=0, gid=0, link=None):
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    if kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755 if mode is None else mode
    elif kind == "symlink":
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, link
    elif kind == "hardlink":
        info.type, info.mode, info.linkname = tarfile.LNKTYPE, 0o755 if mode is None else mode, link
    else:
        info.type, info.mode, info.size = tarfile.REGTYPE, 0o644 if mode is None else mode, len(data)
    tar.addfile(info, io.BytesIO(data) if kind == "file" else None)


def layer(build):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    data = raw.getvalue()
    return data, gzip.compress(data, compresslevel=9, mtime=0)


PASSWD = b"""root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:Example user:/home/app:/bin/sh
"""
GROUP = b"root:x:0:\ndaemon:x:1:\napp:x:1000:\n"
OS_RELEASE = b"""PRETTY_NAME="oci2wsl example"
NAME="oci2wsl example"
ID=oci2wsl-example
VERSION_ID=1
"""
HELLO = b"#!/bin/sh\necho \"hello from the oci2wsl example image ($APP_ENV)\"\n"


def base(tar):
    for d in ("etc", "home", "root", "usr", "usr/bin", "usr/sbin", "usr/share", "usr/share/doc",
              "usr/share/doc/example", "var", "var/log"):
        entry(tar, d, "dir")
    entry(tar, "root", "dir", mode=0o700)
    entry(tar, "tmp", "dir", mode=0o1777)
    entry(tar, "home/app", "dir", mode=0o750, uid=1000, gid=1000)
    entry(tar, "bin", "symlink", link="usr/bin")
    entry(tar, "etc/passwd", data=PASSWD)
    entry(tar, "etc/group", data=GROUP)
    entry(tar, "etc/shadow", data=b"root:*:19000:0:99999:7:::\napp:*:19000:0:99999:7:::\n", mode=0o640)
    entry(tar, "etc/os-release", data=OS_RELEASE)
    entry(tar, "etc/hostname", data=b"example\n")
    # A stand-in for a shell: the example shows the file system, it is not meant to boot.
    entry(tar, "usr/bin/sh", data=b"#!/usr/bin/sh\n# placeholder shell of the example image\n", mode=0o755)
    entry(tar, "usr/bin/hello", data=HELLO, mode=0o755)
    entry(tar, "usr/share/doc/example/README", data=b"The base layer's documentation.\n")
    entry(tar, "usr/share/doc/example/CHANGES", data=b"1: first version\n")
    entry(tar, "var/log/old.log", data=b"a log file that the second layer deletes\n")
    entry(tar, "home/app/.profile", data=b"# app's profile\n", uid=1000, gid=1000)


def second(tar):
    entry(tar, "usr/bin", "dir")
    entry(tar, "usr/bin/hello-again", "hardlink", link="usr/bin/hello")
    entry(tar, "usr/bin/greet", "symlink", link="hello")
    entry(tar, "var/log", "dir")
    entry(tar, "var/log/.wh.old.log")
    entry(tar, "etc/motd", data=b"Welcome to the oci2wsl example.\n")
    entry(tar, "opt", "dir")
    entry(tar, "opt/app", "dir")
    entry(tar, "opt/app/config.json", data=b'{"greeting": "hello"}\n', uid=1000, gid=1000)
    entry(tar, "usr/bin/passwd-like", data=b"#!/bin/sh\nexit 0\n", mode=0o4755)


def third(tar):
    entry(tar, "usr/share/doc/example", "dir")
    entry(tar, "usr/share/doc/example/NEWS", data=b"The third layer replaced this directory.\n")
    # The opaque marker after the directory's new child: the child stays, the base's go.
    entry(tar, "usr/share/doc/example/.wh..wh..opq")
    entry(tar, "etc/motd", data=b"Welcome to the oci2wsl example (layer 3).\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "example")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "blobs", "sha256"))

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def dumps(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    layers = [layer(b) for b in (base, second, third)]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "User": "app",
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "APP_ENV=example", "GREETING=it's a \"quoted\" $value"],
            "WorkingDir": "/home/app",
            "Cmd": ["/usr/bin/hello"],
            "Labels": {"org.opencontainers.image.title": "oci2wsl example"},
            "ExposedPorts": {"8080/tcp": {}},
        },
        "rootfs": {"type": "layers",
                   "diff_ids": [f"sha256:{hashlib.sha256(t).hexdigest()}" for t, _ in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"make-example.py layer {i}"}
                    for i in range(len(layers))],
    }
    config_desc = blob(dumps(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(gz)}
                   for _, gz in layers],
    }
    manifest_desc = blob(dumps(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_desc,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    }
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(dumps(index))
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(dumps({"imageLayoutVersion": "1.0.0"}))


if __name__ == "__main__":
    main()
