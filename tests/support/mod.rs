//! Fixtures for the integration tests: layers written byte by byte (so that hostile names are
//! possible), images written as OCI layouts and archives, the binary run as a user would, and
//! a normalised listing of its output with the invariants every output must meet.
#![allow(dead_code, unused_imports)]

use sha2::{Digest, Sha256, Sha512};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// ------------------------------------------------------------------ layer entries

#[derive(Clone, Debug)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Clone, Debug)]
pub struct E {
    pub name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Write the name in a GNU long-name record instead of PAX when it is long.
    pub gnu_long: bool,
}

fn e(name: &[u8], kind: Kind, mode: u32) -> E {
    E {
        name: name.to_vec(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        xattrs: Vec::new(),
        gnu_long: false,
    }
}

pub fn file(name: &str, data: &str) -> E {
    e(name.as_bytes(), Kind::File(data.as_bytes().to_vec()), 0o644)
}
pub fn file_bytes(name: &[u8], data: &[u8]) -> E {
    e(name, Kind::File(data.to_vec()), 0o644)
}
pub fn dir(name: &str) -> E {
    e(name.as_bytes(), Kind::Dir, 0o755)
}
pub fn symlink(name: &str, target: &str) -> E {
    e(
        name.as_bytes(),
        Kind::Symlink(target.as_bytes().to_vec()),
        0o777,
    )
}
pub fn hardlink(name: &str, target: &str) -> E {
    e(
        name.as_bytes(),
        Kind::Hardlink(target.as_bytes().to_vec()),
        0o644,
    )
}
pub fn whiteout(path: &str) -> E {
    let (dir, base) = match path.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b),
        None => (String::new(), path),
    };
    file(&format!("{dir}.wh.{base}"), "")
}
pub fn opaque(dir: &str) -> E {
    file(&format!("{dir}/.wh..wh..opq"), "")
}
pub fn fifo(name: &str) -> E {
    e(name.as_bytes(), Kind::Fifo, 0o644)
}
pub fn chardev(name: &str, major: u32, minor: u32) -> E {
    e(name.as_bytes(), Kind::Char(major, minor), 0o666)
}
pub fn blockdev(name: &str, major: u32, minor: u32) -> E {
    e(name.as_bytes(), Kind::Block(major, minor), 0o660)
}

impl E {
    pub fn mode(mut self, mode: u32) -> E {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> E {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn xattr(mut self, name: &str, value: &[u8]) -> E {
        self.xattrs.push((name.to_string(), value.to_vec()));
        self
    }
    pub fn gnu(mut self) -> E {
        self.gnu_long = true;
        self
    }
}

// ------------------------------------------------------------------ raw tar encoding

fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn checksum(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % 512 != 0 {
        out.push(0);
    }
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    [format!("{len} ").as_bytes(), key, b"=", value, b"\n"].concat()
}

#[allow(clippy::too_many_arguments)] // the ustar header fields, in order
fn raw_header(
    name: &[u8],
    typeflag: u8,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: &[u8],
) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], uid.min(0o7777777));
    octal(&mut h[116..124], gid.min(0o7777777));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h
}

/// Encodes entries as a tar, writing names and links exactly as given.
pub fn tar(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for en in entries {
        let (typeflag, data, link, dev): (u8, &[u8], &[u8], (u32, u32)) = match &en.kind {
            Kind::File(d) => (b'0', d, b"", (0, 0)),
            Kind::Dir => (b'5', b"", b"", (0, 0)),
            Kind::Symlink(t) => (b'2', b"", t, (0, 0)),
            Kind::Hardlink(t) => (b'1', b"", t, (0, 0)),
            Kind::Char(a, b) => (b'3', b"", b"", (*a, *b)),
            Kind::Block(a, b) => (b'4', b"", b"", (*a, *b)),
            Kind::Fifo => (b'6', b"", b"", (0, 0)),
        };
        let mut records = Vec::new();
        if en.name.len() > 100 && !en.gnu_long {
            records.extend(pax_record(b"path", &en.name));
        }
        if link.len() > 100 {
            records.extend(pax_record(b"linkpath", link));
        }
        if en.uid > 0o7777777 {
            records.extend(pax_record(b"uid", en.uid.to_string().as_bytes()));
        }
        if en.gid > 0o7777777 {
            records.extend(pax_record(b"gid", en.gid.to_string().as_bytes()));
        }
        for (k, v) in &en.xattrs {
            records.extend(pax_record(format!("SCHILY.xattr.{k}").as_bytes(), v));
        }
        if en.name.len() > 100 && en.gnu_long {
            let mut l = raw_header(
                b"././@LongLink",
                b'L',
                en.name.len() as u64 + 1,
                0o644,
                0,
                0,
                0,
                b"",
            );
            l[257..265].copy_from_slice(b"ustar  \0");
            checksum(&mut l);
            out.extend_from_slice(&l);
            out.extend_from_slice(&en.name);
            out.push(0);
            pad(&mut out);
        }
        if !records.is_empty() {
            let mut x = raw_header(
                b"PaxHeader",
                b'x',
                records.len() as u64,
                0o644,
                0,
                0,
                0,
                b"",
            );
            checksum(&mut x);
            out.extend_from_slice(&x);
            out.extend_from_slice(&records);
            pad(&mut out);
        }
        let mut h = raw_header(
            &en.name,
            typeflag,
            data.len() as u64,
            en.mode,
            en.uid,
            en.gid,
            en.mtime,
            link,
        );
        if typeflag == b'3' || typeflag == b'4' {
            octal(&mut h[329..337], dev.0 as u64);
            octal(&mut h[337..345], dev.1 as u64);
        }
        checksum(&mut h);
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

// ------------------------------------------------------------------ compression and digests

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Comp {
    None,
    Gzip,
    /// Two gzip members, split in the middle (pigz -i, eStargz).
    GzipMulti,
    Zstd,
}

pub fn compress(data: &[u8], comp: Comp) -> Vec<u8> {
    let gz = |d: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    match comp {
        Comp::None => data.to_vec(),
        Comp::Gzip => gz(data),
        Comp::GzipMulti => {
            let mid = data.len() / 2;
            [gz(&data[..mid]), gz(&data[mid..])].concat()
        }
        Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}
pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{:x}", Sha512::digest(data))
}

// ------------------------------------------------------------------ images

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub comp: Comp,
}

pub fn layer(entries: &[E]) -> Layer {
    Layer {
        tar: tar(entries),
        comp: Comp::Gzip,
    }
}

impl Layer {
    pub fn comp(mut self, comp: Comp) -> Layer {
        self.comp = comp;
        self
    }
}

/// Ways to break an image on purpose.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Corrupt {
    None,
    /// Flip a byte of the last layer's blob (its digest no longer matches).
    BlobByte,
    /// Declare a wrong size for the last layer.
    BlobSize,
    /// A wrong diff_id for the last layer (blob digest right, content "wrong").
    DiffId,
}

#[derive(Clone)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub arch: String,
    pub docker_types: bool,
    pub sha512: bool,
    pub corrupt: Corrupt,
    pub config_extra: serde_json::Value,
}

pub fn image(layers: Vec<Layer>) -> Image {
    Image {
        layers,
        arch: "amd64".into(),
        docker_types: false,
        sha512: false,
        corrupt: Corrupt::None,
        config_extra: serde_json::json!({}),
    }
}

/// Blobs by digest, plus the top-level descriptors to list.
#[derive(Default)]
pub struct Blobs {
    pub blobs: BTreeMap<String, Vec<u8>>,
}

impl Blobs {
    pub fn add(&mut self, data: Vec<u8>, sha512_digest: bool) -> (String, usize) {
        let digest = if sha512_digest {
            sha512(&data)
        } else {
            sha256(&data)
        };
        let size = data.len();
        self.blobs.insert(digest.clone(), data);
        (digest, size)
    }
}

impl Image {
    pub fn arch(mut self, a: &str) -> Image {
        self.arch = a.into();
        self
    }
    pub fn docker(mut self) -> Image {
        self.docker_types = true;
        self
    }
    pub fn sha512(mut self) -> Image {
        self.sha512 = true;
        self
    }
    pub fn corrupt(mut self, c: Corrupt) -> Image {
        self.corrupt = c;
        self
    }

    pub fn config_json(&self) -> serde_json::Value {
        let mut diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(&l.tar)).collect();
        if self.corrupt == Corrupt::DiffId {
            *diff_ids.last_mut().unwrap() = sha256(b"something else");
        }
        let mut cfg = serde_json::json!({
            "architecture": self.arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {"Env": ["PATH=/usr/bin:/bin"]},
        });
        if let serde_json::Value::Object(extra) = &self.config_extra {
            for (k, v) in extra {
                cfg[k] = v.clone();
            }
        }
        cfg
    }

    /// Writes config, layers and manifest into `blobs`; returns the manifest's descriptor.
    pub fn write(&self, blobs: &mut Blobs) -> serde_json::Value {
        let config = serde_json::to_vec(&self.config_json()).unwrap();
        let (cd, cs) = blobs.add(config, self.sha512);
        let layer_type = |c: Comp| -> &str {
            match (self.docker_types, c) {
                (true, Comp::None) => "application/vnd.docker.image.rootfs.diff.tar",
                (true, Comp::Zstd) => "application/vnd.docker.image.rootfs.diff.tar.zstd",
                (true, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                (false, Comp::None) => "application/vnd.oci.image.layer.v1.tar",
                (false, Comp::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
                (false, _) => "application/vnd.oci.image.layer.v1.tar+gzip",
            }
        };
        let mut layers = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let mut blob = compress(&l.tar, l.comp);
            let last = i == self.layers.len() - 1;
            let (digest, mut size) = blobs.add(blob.clone(), self.sha512);
            if last && self.corrupt == Corrupt::BlobByte {
                let mid = blob.len() / 2;
                blob[mid] ^= 0x55;
                blobs.blobs.insert(digest.clone(), blob);
            }
            if last && self.corrupt == Corrupt::BlobSize {
                size += 10;
            }
            layers.push(serde_json::json!({"mediaType": layer_type(l.comp), "digest": digest, "size": size}));
        }
        let (config_type, manifest_type) = if self.docker_types {
            (
                "application/vnd.docker.container.image.v1+json",
                DOCKER_MANIFEST,
            )
        } else {
            ("application/vnd.oci.image.config.v1+json", OCI_MANIFEST)
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": cd, "size": cs},
            "layers": layers,
        });
        let (md, ms) = blobs.add(serde_json::to_vec(&manifest).unwrap(), self.sha512);
        serde_json::json!({"mediaType": manifest_type, "digest": md, "size": ms,
                           "platform": {"os": "linux", "architecture": self.arch}})
    }
}

/// Writes an OCI layout with the given (tag, descriptor) entries in index.json.
pub fn write_layout(dir: &Path, blobs: &Blobs, entries: &[(Option<&str>, serde_json::Value)]) {
    for (digest, data) in &blobs.blobs {
        let (alg, hex) = digest.split_once(':').unwrap();
        fs::create_dir_all(dir.join("blobs").join(alg)).unwrap();
        fs::write(dir.join("blobs").join(alg).join(hex), data).unwrap();
    }
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(tag, desc)| {
            let mut d = desc.clone();
            if let Some(t) = tag {
                d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": t});
            }
            d
        })
        .collect();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap(),
    )
    .unwrap();
}

/// A single-image layout tagged `tag`. Returns the layout directory.
pub fn oci_layout(dir: &Path, img: &Image, tag: &str) -> PathBuf {
    let mut blobs = Blobs::default();
    let desc = img.write(&mut blobs);
    let layout = dir.join("layout");
    write_layout(&layout, &blobs, &[(Some(tag), desc)]);
    layout
}

/// A multi-platform index (plus an attestation manifest) tagged `tag`.
pub fn oci_multiarch(dir: &Path, images: &[Image], tag: &str, docker_list: bool) -> PathBuf {
    let mut blobs = Blobs::default();
    let mut list: Vec<serde_json::Value> = images.iter().map(|i| i.write(&mut blobs)).collect();
    // An attestation manifest, as buildkit adds: platform unknown/unknown.
    let att = image(vec![layer(&[file("att.json", "{}")])]).arch("unknown");
    let mut ad = att.write(&mut blobs);
    ad["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
    ad["annotations"] = serde_json::json!({"vnd.docker.reference.type": "attestation-manifest"});
    list.push(ad);
    let index_type = if docker_list { DOCKER_LIST } else { OCI_INDEX };
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": index_type, "manifests": list});
    let (d, s) = blobs.add(serde_json::to_vec(&index).unwrap(), false);
    let layout = dir.join("layout");
    write_layout(
        &layout,
        &blobs,
        &[(
            Some(tag),
            serde_json::json!({"mediaType": index_type, "digest": d, "size": s}),
        )],
    );
    layout
}

/// Packs a directory into a tar file (an oci-archive, from a layout).
pub fn tar_dir(dir: &Path, out: &Path) {
    let file = fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(file);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

fn tar_members(members: &[(String, Vec<u8>)], symlinks: &[(String, String)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    for (name, target) in symlinks {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(0);
        b.append_link(&mut h, name, target).unwrap();
    }
    b.into_inner().unwrap()
}

/// A legacy `docker save` archive: `<id>/layer.tar` (uncompressed unless the layer says
/// otherwise), `<config-hex>.json`, `manifest.json`. With `link_dup`, a later layer identical
/// to the first is written as a symlink to the first one's file, as docker does.
pub fn docker_archive(images: &[(&Image, &[&str])], link_dup: bool) -> Vec<u8> {
    let mut members = Vec::new();
    let mut symlinks = Vec::new();
    let mut manifest = Vec::new();
    for (n, (img, tags)) in images.iter().enumerate() {
        let config = serde_json::to_vec(&img.config_json()).unwrap();
        let config_name = format!("{}.json", &sha256(&config)[7..]);
        members.push((config_name.clone(), config));
        let mut layer_files: Vec<String> = Vec::new();
        for (i, l) in img.layers.iter().enumerate() {
            let name = format!("{n}{i:063}/layer.tar");
            let repeat_of_first =
                i > 0 && l.tar == img.layers[0].tar && l.comp == img.layers[0].comp;
            if link_dup && repeat_of_first {
                // docker save writes a layer that repeats an earlier one as a symlink.
                symlinks.push((name.clone(), format!("../{}", layer_files[0])));
            } else {
                members.push((name.clone(), compress(&l.tar, l.comp)));
            }
            layer_files.push(name);
        }
        manifest.push(
            serde_json::json!({"Config": config_name, "RepoTags": tags, "Layers": layer_files}),
        );
    }
    members.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    tar_members(&members, &symlinks)
}

/// A Docker 25+ `docker save` archive: OCI blobs under blobs/sha256 plus manifest.json.
pub fn docker_archive_oci(img: &Image, tag: &str) -> Vec<u8> {
    let mut blobs = Blobs::default();
    let desc = img.write(&mut blobs);
    let manifest_hex = desc["digest"].as_str().unwrap()[7..].to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blobs.blobs[desc["digest"].as_str().unwrap()]).unwrap();
    let mut members: Vec<(String, Vec<u8>)> = blobs
        .blobs
        .iter()
        .map(|(d, data)| (format!("blobs/sha256/{}", &d[7..]), data.clone()))
        .collect();
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("blobs/sha256/{}", &l["digest"].as_str().unwrap()[7..]))
        .collect();
    let config = format!(
        "blobs/sha256/{}",
        &manifest["config"]["digest"].as_str().unwrap()[7..]
    );
    let dm = serde_json::json!([{"Config": config, "RepoTags": [tag], "Layers": layers}]);
    members.push(("manifest.json".into(), serde_json::to_vec(&dm).unwrap()));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST,
        "digest": format!("sha256:{manifest_hex}"), "size": desc["size"]}]});
    members.push(("index.json".into(), serde_json::to_vec(&index).unwrap()));
    members.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    tar_members(&members, &[])
}

// ------------------------------------------------------------------ external tools

#[path = "../common/tools.rs"]
pub mod tools;
// Each test binary uses its own subset of these.
#[allow(unused_imports)]
pub use tools::{have, is_root, require_root_and_tools, require_tools};

/// Runs a command that must succeed; returns its standard output.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ------------------------------------------------------------------ running the binary

/// Runs the binary on the plain flattened file system (`--no-wsl-config`): what these
/// suites check. tests/wsl.rs runs it without.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oci2wsl"));
    cmd.arg("--no-wsl-config")
        .args(args)
        // Every run downloads afresh; tests/cache.rs tests the layer cache.
        .env("OCI2WSL_NO_CACHE", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        let mut si = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = si.write_all(&data);
        });
    }
    child.wait_with_output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the binary, expects success, returns the plain tar from stdout.
pub fn flatten_ok(args: &[&str]) -> Vec<u8> {
    let o = run(args, None);
    assert!(
        o.status.success(),
        "oci2wsl {args:?} failed: {}",
        stderr(&o)
    );
    o.stdout
}

/// Runs the binary, expects exit 1 (the run failed) and an error line; returns stderr.
pub fn flatten_err(args: &[&str]) -> String {
    failed_with(args, 1)
}

/// Runs the binary, expects exit 2 (the command line is wrong, as the user guide promises)
/// and an error line; returns stderr.
pub fn usage_err(args: &[&str]) -> String {
    failed_with(args, 2)
}

fn failed_with(args: &[&str], code: i32) -> String {
    let o = run(args, None);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "oci2wsl {args:?} should fail with exit {code}: {err}"
    );
    assert!(
        o.stdout.is_empty(),
        "a failed run wrote {} bytes to stdout",
        o.stdout.len()
    );
    assert!(err.starts_with("oci2wsl: error: "), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error is not one line: {err}"
    );
    err
}

// ------------------------------------------------------------------ reading the output

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub path: Vec<u8>,
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub content: Vec<u8>,
    pub link: Vec<u8>,
    pub dev: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub uname: Vec<u8>,
}

impl Out {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

pub fn list(tar_bytes: &[u8]) -> Vec<Out> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for en in a.entries().unwrap() {
        let mut en = en.unwrap();
        let mut xattrs = Vec::new();
        if let Some(p) = en.pax_extensions().unwrap() {
            for x in p {
                let x = x.unwrap();
                if let Some(k) = x.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((
                        String::from_utf8_lossy(k).into_owned(),
                        x.value_bytes().to_vec(),
                    ));
                }
            }
        }
        let h = en.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            other => panic!("unexpected type {other:?}"),
        };
        let mut content = Vec::new();
        en.read_to_end(&mut content).unwrap();
        let mut path = en.path_bytes().into_owned();
        if path.len() > 1 && path.ends_with(b"/") {
            path.pop();
        }
        // The root is written as "./"; name it that way whatever the reader trimmed.
        if path == b"." || path == b"./" {
            path = b"./".to_vec();
        }
        out.push(Out {
            path,
            kind,
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            content,
            link: en
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default(),
            dev: (
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
            xattrs,
            uname: h.username_bytes().map(|u| u.to_vec()).unwrap_or_default(),
        });
    }
    out
}

/// The invariants every output meets: root first, each path once, no `..`/absolute names,
/// no path below an earlier non-directory, every hardlink after a regular file it names,
/// no whiteouts, numeric owners only.
pub fn check_invariants(entries: &[Out]) {
    assert_eq!(
        entries.first().map(|e| e.path.as_slice()),
        Some(&b"./"[..]),
        "root first"
    );
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut non_dirs: HashSet<Vec<u8>> = HashSet::new();
    let mut regular: HashSet<Vec<u8>> = HashSet::new();
    for en in entries {
        let p = &en.path;
        assert!(seen.insert(p.clone()), "{} appears twice", en.name());
        assert!(!p.starts_with(b"/"), "absolute {}", en.name());
        assert!(
            !p.split(|b| *b == b'/').any(|c| c == b".."),
            "dotdot {}",
            en.name()
        );
        // A `.wh.` name is a whiteout only as a layer's last component; a directory of that
        // name is what an entry below it (`.wh.etc/file`) leaves, as containerd extracts it.
        let base = p.rsplit(|b| *b == b'/').next().unwrap();
        assert!(
            !base.starts_with(b".wh.") || en.kind == 'd',
            "whiteout {} in output",
            en.name()
        );
        // AUFS bookkeeping (`.wh..wh.plnk` and what lies below) is never output (the same
        // rule as tests/common).
        assert!(
            !p.split(|b| *b == b'/').any(|c| c.starts_with(b".wh..wh.")),
            "AUFS bookkeeping {} in output",
            en.name()
        );
        for (i, b) in p.iter().enumerate() {
            if *b == b'/' && i + 1 < p.len() {
                assert!(
                    !non_dirs.contains(&p[..i]),
                    "{} is below a non-directory",
                    en.name()
                );
            }
        }
        assert!(en.uname.is_empty(), "uname set on {}", en.name());
        match en.kind {
            'd' => {}
            'h' => {
                assert!(
                    regular.contains(&en.link) || non_dirs.contains(&en.link),
                    "hardlink {} names {} which was not written before",
                    en.name(),
                    String::from_utf8_lossy(&en.link)
                );
                non_dirs.insert(p.clone());
            }
            'f' => {
                regular.insert(p.clone());
                non_dirs.insert(p.clone());
            }
            _ => {
                non_dirs.insert(p.clone());
            }
        }
    }
}

/// Output entries by name, after checking the invariants.
pub fn tree(tar_bytes: &[u8]) -> BTreeMap<String, Out> {
    let entries = list(tar_bytes);
    check_invariants(&entries);
    entries.into_iter().map(|e| (e.name(), e)).collect()
}

/// The content a path shows: its own for a file, its target's for a hardlink.
pub fn content_of(t: &BTreeMap<String, Out>, path: &str) -> Vec<u8> {
    let e = &t[path];
    match e.kind {
        'f' => e.content.clone(),
        'h' => content_of(t, &String::from_utf8_lossy(&e.link)),
        k => panic!("{path} is a {k}, not a file"),
    }
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn layout_arg(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}
