//! The layer cache: registry pulls keep their verified blobs in an OCI image layout.
//!
//! Being a plain layout (`oci-layout`, `index.json`, `blobs/ALG/HEX`), the cache is also an
//! image source (`oci:CACHE:REF`) and skopeo and umoci read it. Each `index.json` entry is
//! one image of one platform: the platform manifest, named by the registry reference it
//! was pulled as (`org.opencontainers.image.ref.name`), with two annotations of ours: the
//! digest the reference resolved to (the index, for a multi-platform image) and when the
//! entry was last used, for least-recently-used eviction.
//!
//! Blobs are content-addressed and written once: a download goes to a temporary file in
//! `tmp/` and is renamed to its digest only after the digest was checked, so no process,
//! killed at any point, leaves a wrong blob under a digest name. `index.json` is rewritten
//! whole (temporary file, then rename) under a lock (`oci2wsl.lock`), so a reader always sees
//! a complete file and two writers never lose each other's entries.

use crate::image::digest::Digest;
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default size cap: room for a dozen or so large images (a 500 MiB postgres-like
/// image, a 1-2 GiB development image) and many small ones, yet small against the free
/// space of a machine that holds WSL distributions, each of which is larger still.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The digest the entry's reference resolved to when it was pulled (an index, or the
/// manifest itself).
pub const RESOLVED_FROM: &str = "io.github.oci2wsl.cache.resolved";
/// Milliseconds since the Unix epoch of the last run that used the entry.
pub const LAST_USED: &str = "io.github.oci2wsl.cache.last-used";

/// A blob (or temporary file) that no entry references is left alone for this long: it may
/// belong to a run that is still downloading, or that has not yet recorded its image.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// When to ask the registry, podman's `--pull` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Download everything again and refresh the cache with it.
    Always,
    /// Use what the cache holds; a tag is re-resolved with one `HEAD`.
    #[default]
    Missing,
    /// Never contact the registry.
    Never,
}

/// Where the cache is and how it is used: from the command line.
#[derive(Clone, Debug, Default)]
pub struct CacheSettings {
    /// `None`: no cache (`--no-cache`, or no place for one), anonymous temporary files.
    pub dir: Option<PathBuf>,
    /// The size cap (`--cache-max-size`).
    pub max_size: u64,
    /// `--pull`.
    pub pull: PullPolicy,
    /// The cache was wanted but there is no place for it (no `HOME`, `XDG_CACHE_HOME` or
    /// `LOCALAPPDATA`, and no `--cache-dir`): a registry pull warns and goes without.
    pub no_place: bool,
}

/// `%LOCALAPPDATA%\oci2wsl\cache` on Windows, `$XDG_CACHE_HOME/oci2wsl` or
/// `~/.cache/oci2wsl` elsewhere.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        return var("LOCALAPPDATA").map(|d| d.join("oci2wsl").join("cache"));
    }
    // The XDG spec says to ignore a relative XDG_CACHE_HOME.
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("oci2wsl"));
    }
    var("HOME").map(|h| h.join(".cache").join("oci2wsl"))
}

/// `10G`, `500MiB`, `0`: binary units, as the cache listing prints them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 10G, 500M or 0"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?}: unknown unit (use K, M, G or T)")),
    };
    Ok((number * (1u64 << shift) as f64) as u64)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Cache {
    root: PathBuf,
    max_size: u64,
}

/// A blob being downloaded into the cache: the open file, and its temporary name, which
/// [`Cache::commit`] turns into the digest name.
pub struct Spool {
    pub file: File,
    pub temp: tempfile::TempPath,
}

/// What a new entry says: set by a run once every blob of its image is in the cache.
pub struct Record {
    /// The registry reference as pulled (`registry/repository:tag` or `…@digest`).
    pub name: String,
    pub resolved: Digest,
    pub manifest: Digest,
    /// `os/arch[/variant]` from the image config.
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// One image in the cache, as listed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    pub name: String,
    pub platform: String,
    pub manifest: String,
    pub resolved: Option<String>,
    /// Bytes of its blobs, shared ones included.
    pub size: u64,
    pub last_used_ms: Option<u64>,
}

#[derive(Debug, serde::Serialize)]
pub struct Listing {
    pub dir: PathBuf,
    pub max_size: u64,
    /// Bytes of every blob in the cache, each counted once.
    pub size: u64,
    pub images: Vec<Entry>,
}

/// An entry that eviction or a prune removed, and the bytes its blobs freed (those no
/// remaining entry shares).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Removed {
    pub name: String,
    pub platform: String,
    pub manifest: String,
    pub freed: u64,
}

impl Cache {
    /// Opens the cache at `root`, making it (an empty layout) if needed.
    pub fn open(root: &Path, max_size: u64) -> Result<Cache> {
        let cache = Cache {
            root: root.to_path_buf(),
            max_size,
        };
        let what = || format!("cannot use the cache directory {}", root.display());
        fs::create_dir_all(root.join("blobs").join("sha256")).with_context(what)?;
        fs::create_dir_all(root.join("tmp")).with_context(what)?;
        if !root.join("oci-layout").is_file() || !root.join("index.json").is_file() {
            let _lock = cache.lock()?;
            if !root.join("oci-layout").is_file() {
                cache.write_atomically("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            if !root.join("index.json").is_file() {
                cache.write_index(&[])?;
            }
        }
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// The blob, opened, if the cache holds it with the expected size. Opening it is what
    /// keeps it: a prune that removes it afterwards takes only its name.
    pub fn open_blob(&self, digest: &Digest, size: Option<u64>) -> Option<File> {
        let file = File::open(self.blob_path(digest)).ok()?;
        let len = file.metadata().ok()?.len();
        if size.is_some_and(|s| s != len) {
            return None;
        }
        // A fresh time tells an orphan sweep (see ORPHAN_GRACE) that a run uses it.
        let _ = file.set_modified(SystemTime::now());
        Some(file)
    }

    /// A small blob (a manifest, an index, a config), checked against its digest: a file
    /// that does not match is treated as missing.
    pub fn read_json(&self, digest: &Digest, limit: u64) -> Option<Vec<u8>> {
        let file = self.open_blob(digest, None)?;
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes).ok()?;
        (bytes.len() as u64 <= limit && digest.verify(&bytes).is_ok()).then_some(bytes)
    }

    /// Stores a small blob the caller has verified.
    pub fn put_json(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let mut spool = self.spool()?;
        spool.file.write_all(bytes)?;
        self.commit(spool.temp, digest)
    }

    /// A temporary file for a download, on the cache's file system so that the rename
    /// into `blobs/` is atomic.
    pub fn spool(&self) -> Result<Spool> {
        let named = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.root.join("tmp"))
            .with_context(|| format!("creating a download file in {}", self.root.display()))?;
        let (file, temp) = named.into_parts();
        Ok(Spool { file, temp })
    }

    /// Names a verified download by its digest. Another run may have stored the same blob
    /// meanwhile; the bytes are the same, so either copy will do.
    pub fn commit(&self, temp: tempfile::TempPath, digest: &Digest) -> Result<()> {
        let target = self.blob_path(digest);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        match temp.persist(&target) {
            Ok(()) => Ok(()),
            Err(_) if target.is_file() => Ok(()),
            Err(e) => Err(anyhow!(e.error))
                .with_context(|| format!("storing blob {digest} in {}", self.root.display())),
        }
    }

    /// The digests `name` resolved to in recorded entries, most recently used first.
    pub fn resolved(&self, name: &str) -> Vec<Digest> {
        let Ok(entries) = self.read_index() else {
            return Vec::new();
        };
        let mut found: Vec<(u64, Digest)> = entries
            .iter()
            .filter(|e| annotation(e, REF_NAME) == Some(name))
            .filter_map(|e| {
                let d = annotation(e, RESOLVED_FROM).or_else(|| e["digest"].as_str())?;
                Some((last_used(e), Digest::parse(d).ok()?))
            })
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found.into_iter().map(|(_, d)| d).collect()
    }

    /// Records (or refreshes) an image whose blobs are all in the cache, as the most
    /// recently used, then evicts down to the size cap. `Ok(false)`: a blob vanished (a
    /// prune ran meanwhile), so the entry was not recorded; the next pull fetches it again.
    pub fn record(&self, record: &Record) -> Result<(bool, Vec<Removed>)> {
        let _lock = self.lock()?;
        let mut entries = self.read_index()?;
        let Some(blobs) = self.blobs_of_manifest(&record.manifest) else {
            return Ok((false, Vec::new()));
        };
        let mut all = blobs;
        all.insert(record.resolved.to_string());
        if all.iter().any(|d| self.blob_size(d).is_none()) {
            return Ok((false, Vec::new()));
        }
        let manifest_bytes = fs::read(self.blob_path(&record.manifest))?;
        let media_type = serde_json::from_slice::<Value>(&manifest_bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
        let mut platform = json!({"os": record.os, "architecture": record.architecture});
        if let Some(v) = record.variant.as_ref().filter(|v| !v.is_empty()) {
            platform["variant"] = json!(v);
        }
        let entry = json!({
            "mediaType": media_type,
            "digest": record.manifest.to_string(),
            "size": manifest_bytes.len(),
            "platform": platform,
            "annotations": {
                REF_NAME: record.name,
                RESOLVED_FROM: record.resolved.to_string(),
                LAST_USED: now_ms().to_string(),
            }
        });
        // One entry per name and platform: a tag that moved replaces its old image.
        let replaced: Vec<Value> = entries
            .iter()
            .filter(|e| {
                annotation(e, REF_NAME) == Some(record.name.as_str())
                    && platform_string(e) == platform_string(&entry)
            })
            .cloned()
            .collect();
        entries.retain(|e| !replaced.contains(e));
        entries.push(entry);
        let mut removed = Vec::new();
        self.drop_blobs_of(&replaced, &entries);
        let protect = entries.len() - 1;
        let (kept, evicted) = self.shrink(entries, self.max_size, Some(protect));
        removed.extend(evicted);
        self.write_index(&kept)?;
        Ok((true, removed))
    }

    /// Evicts least recently used images until the cache holds at most `keep` bytes, and
    /// sweeps files no entry references that are older than the grace period.
    pub fn prune(&self, keep: u64) -> Result<Vec<Removed>> {
        let _lock = self.lock()?;
        let entries = self.read_index()?;
        let (kept, removed) = self.shrink(entries, keep, None);
        self.write_index(&kept)?;
        Ok(removed)
    }

    pub fn list(&self) -> Result<Listing> {
        let entries = self.read_index()?;
        let mut images = Vec::new();
        for e in &entries {
            let blobs = self.blobs_of_entry(e);
            images.push(Entry {
                name: annotation(e, REF_NAME).unwrap_or("").to_string(),
                platform: platform_string(e),
                manifest: e["digest"].as_str().unwrap_or("").to_string(),
                resolved: annotation(e, RESOLVED_FROM).map(str::to_string),
                size: blobs.iter().filter_map(|d| self.blob_size(d)).sum(),
                last_used_ms: annotation(e, LAST_USED).and_then(|t| t.parse().ok()),
            });
        }
        images.sort_by_key(|e| std::cmp::Reverse(e.last_used_ms));
        Ok(Listing {
            dir: self.root.clone(),
            max_size: self.max_size,
            size: self.stored_blobs().values().sum(),
            images,
        })
    }

    /// Removes entries, least recently used first (never `protect`), until the blobs total
    /// at most `cap`; deletes the blobs no remaining entry shares, and old orphans.
    fn shrink(
        &self,
        mut entries: Vec<Value>,
        cap: u64,
        protect: Option<usize>,
    ) -> (Vec<Value>, Vec<Removed>) {
        let stored = self.stored_blobs();
        let referenced: BTreeSet<String> = entries
            .iter()
            .flat_map(|e| self.blobs_of_entry(e))
            .collect();
        let mut total: u64 = stored.values().sum();
        // Orphans: a failed or killed run's blobs, once no run can still be finishing them.
        for (digest, size) in &stored {
            if !referenced.contains(digest)
                && self.older_than_grace(&self.path_of(digest))
                && fs::remove_file(self.path_of(digest)).is_ok()
            {
                total -= size;
            }
        }
        self.sweep_tmp();
        let mut order: Vec<usize> = (0..entries.len()).filter(|i| Some(*i) != protect).collect();
        // Oldest first; equal times keep index order, which is recording order.
        order.sort_by_key(|i| (last_used(&entries[*i]), *i));
        let mut gone = BTreeSet::new();
        let mut removed = Vec::new();
        for i in order {
            if total <= cap {
                break;
            }
            gone.insert(i);
            let remaining: Vec<Value> = entries
                .iter()
                .enumerate()
                .filter(|(j, _)| !gone.contains(j))
                .map(|(_, e)| e.clone())
                .collect();
            let freed = self.drop_blobs_of(std::slice::from_ref(&entries[i]), &remaining);
            total = total.saturating_sub(freed);
            removed.push(Removed {
                name: annotation(&entries[i], REF_NAME).unwrap_or("").to_string(),
                platform: platform_string(&entries[i]),
                manifest: entries[i]["digest"].as_str().unwrap_or("").to_string(),
                freed,
            });
        }
        let mut i = 0;
        entries.retain(|_| {
            i += 1;
            !gone.contains(&(i - 1))
        });
        (entries, removed)
    }

    /// Deletes the blobs of `dropped` that no entry of `remaining` references; returns the
    /// bytes freed.
    fn drop_blobs_of(&self, dropped: &[Value], remaining: &[Value]) -> u64 {
        let keep: BTreeSet<String> = remaining
            .iter()
            .flat_map(|e| self.blobs_of_entry(e))
            .collect();
        let mut freed = 0;
        let candidates: BTreeSet<String> = dropped
            .iter()
            .flat_map(|e| self.blobs_of_entry(e))
            .collect();
        for digest in candidates.difference(&keep) {
            let size = self.blob_size(digest).unwrap_or(0);
            if fs::remove_file(self.path_of(digest)).is_ok() {
                freed += size;
            }
        }
        freed
    }

    fn path_of(&self, digest: &str) -> PathBuf {
        match Digest::parse(digest) {
            Ok(d) => self.blob_path(&d),
            // Not a digest: a path that cannot exist, so nothing is touched.
            Err(_) => self.root.join("blobs").join("invalid"),
        }
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        fs::metadata(self.path_of(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Every file under `blobs/ALG/` whose name is a digest, with its size.
    fn stored_blobs(&self) -> BTreeMap<String, u64> {
        let mut found = BTreeMap::new();
        let Ok(algs) = fs::read_dir(self.root.join("blobs")) else {
            return found;
        };
        for alg in algs.flatten() {
            let Ok(files) = fs::read_dir(alg.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = format!(
                    "{}:{}",
                    alg.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                );
                if let (Ok(d), Ok(m)) = (Digest::parse(&name), f.metadata()) {
                    found.insert(d.to_string(), m.len());
                }
            }
        }
        found
    }

    fn older_than_grace(&self, path: &Path) -> bool {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > ORPHAN_GRACE)
    }

    /// Downloads of killed runs (a download in progress writes, and so keeps its time).
    fn sweep_tmp(&self) {
        let Ok(files) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for f in files.flatten() {
            if self.older_than_grace(&f.path()) {
                let _ = fs::remove_file(f.path());
            }
        }
    }

    /// The manifest and what it references: config and layers.
    fn blobs_of_manifest(&self, manifest: &Digest) -> Option<BTreeSet<String>> {
        let bytes = self.read_json(manifest, crate::image::manifest::MAX_JSON_SIZE)?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let mut set = BTreeSet::new();
        set.insert(manifest.to_string());
        set.insert(v["config"]["digest"].as_str()?.to_string());
        for layer in v["layers"].as_array()? {
            set.insert(layer["digest"].as_str()?.to_string());
        }
        Some(set)
    }

    fn blobs_of_entry(&self, entry: &Value) -> BTreeSet<String> {
        let mut set = entry["digest"]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
            .and_then(|d| {
                self.blobs_of_manifest(&d).or_else(|| {
                    // Its manifest is gone or damaged: the entry still owns that name.
                    Some(BTreeSet::from([d.to_string()]))
                })
            })
            .unwrap_or_default();
        if let Some(r) = annotation(entry, RESOLVED_FROM) {
            set.insert(r.to_string());
        }
        set
    }

    fn read_index(&self) -> Result<Vec<Value>> {
        let path = self.root.join("index.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        Ok(v["manifests"].as_array().cloned().unwrap_or_default())
    }

    /// Callers hold the lock.
    fn write_index(&self, entries: &[Value]) -> Result<()> {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        self.write_atomically("index.json", &serde_json::to_vec_pretty(&index)?)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let target = self.root.join(name);
        let mut temp = tempfile::Builder::new()
            .prefix(name)
            .tempfile_in(self.root.join("tmp"))
            .with_context(|| format!("writing {}", target.display()))?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(&target)
            .map_err(|e| anyhow!(e.error))
            .with_context(|| format!("writing {}", target.display()))?;
        Ok(())
    }

    /// Serialises `index.json` updates (and the deletions that go with them) between runs.
    fn lock(&self) -> Result<lock::Guard> {
        let path = self.root.join("oci2wsl.lock");
        lock::acquire(&path).with_context(|| format!("locking {}", path.display()))
    }
}

fn annotation<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry["annotations"][key].as_str()
}

fn last_used(entry: &Value) -> u64 {
    annotation(entry, LAST_USED)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn platform_string(entry: &Value) -> String {
    let p = &entry["platform"];
    let mut s = format!(
        "{}/{}",
        p["os"].as_str().unwrap_or("?"),
        p["architecture"].as_str().unwrap_or("?")
    );
    if let Some(v) = p["variant"].as_str().filter(|v| !v.is_empty()) {
        s = format!("{s}/{v}");
    }
    s
}

impl Listing {
    /// The listing for people: one line per image, most recently used first.
    pub fn human(&self) -> String {
        let mut out = format!(
            "cache {}: {} images, {} of {}\n",
            self.dir.display(),
            self.images.len(),
            crate::terminal::human_size(self.size),
            crate::terminal::human_size(self.max_size)
        );
        for e in &self.images {
            let age = e
                .last_used_ms
                .map(|t| describe_age(now_ms().saturating_sub(t)))
                .unwrap_or_else(|| "never".into());
            let short = e.manifest.get(..19).unwrap_or(&e.manifest);
            out += &format!(
                "  {}  {}  {}  {}  used {age}\n",
                crate::terminal::printable(&e.name),
                e.platform,
                short,
                crate::terminal::human_size(e.size)
            );
        }
        out
    }

    pub fn json(&self, removed: Option<&[Removed]>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(r), Value::Object(map)) = (removed, &mut v) {
            map.insert(
                "removed".into(),
                serde_json::to_value(r).unwrap_or(Value::Null),
            );
        }
        let mut out = Map::new();
        out.insert("version".into(), json!(1));
        if let Value::Object(map) = v {
            out.extend(map);
        }
        Value::Object(out)
    }
}

fn describe_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
    }
}

mod lock {
    //! An exclusive lock on a file, held by an open handle and so released by the OS when
    //! the process dies, however it dies.
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub struct Guard {
        _file: File,
    }

    #[cfg(target_os = "linux")]
    pub fn acquire(path: &Path) -> io::Result<Guard> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        loop {
            // SAFETY: a plain system call on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Guard { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Windows: a handle that shares nothing is the lock; another open fails with a
    /// sharing violation until it is closed.
    #[cfg(windows)]
    pub fn acquire(path: &Path) -> io::Result<Guard> {
        use std::os::windows::fs::OpenOptionsExt;
        const ERROR_SHARING_VIOLATION: i32 = 32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .share_mode(0)
                .open(path)
            {
                Ok(file) => return Ok(Guard { _file: file }),
                Err(e)
                    if e.raw_os_error() == Some(ERROR_SHARING_VIOLATION)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Elsewhere (no libc dependency there): best effort, the handle only.
    #[cfg(not(any(target_os = "linux", windows)))]
    pub fn acquire(path: &Path) -> io::Result<Guard> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        Ok(Guard { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5X").is_err());
    }

    #[test]
    fn a_blob_enters_only_by_commit_and_a_failed_download_leaves_no_name() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), DEFAULT_MAX_SIZE).unwrap();
        let bytes = b"{\"a\":1}";
        let digest = Digest::sha256_of(bytes);
        let mut spool = cache.spool().unwrap();
        spool.file.write_all(bytes).unwrap();
        assert!(cache.open_blob(&digest, None).is_none());
        drop(spool); // an abandoned download
        assert!(fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none());
        cache.put_json(&digest, bytes).unwrap();
        assert_eq!(cache.read_json(&digest, 100).unwrap(), bytes);
        // A file under the name that does not match it is not served.
        fs::write(cache.blob_path(&digest), b"{\"a\":2}").unwrap();
        assert!(cache.read_json(&digest, 100).is_none());
    }

    #[test]
    fn default_dir_follows_xdg_rules() {
        if cfg!(windows) {
            return;
        }
        // Only checks the shape; the variables belong to the test process.
        let d = default_dir().unwrap();
        assert!(d.ends_with("oci2wsl"), "{}", d.display());
    }
}
