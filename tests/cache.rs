//! The layer cache against a real registry (Debian's docker-registry on 127.0.0.1), reached
//! through a logging proxy that counts requests: each pull policy, a tag that moves, a blob
//! missing from the cache, two runs at once, a prune during a pull, a run killed mid
//! download, eviction order, listing and pruning, and skopeo and umoci reading the cache as
//! the OCI layout it is. Needs docker-registry and skopeo (umoci for its part).

mod common;
use common::*;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn prerequisites() -> bool {
    require_tools(REGISTRY_TOOLS)
}

/// The binary with the cache in `cache` (and nothing from the environment about caches).
fn command(cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oci2wsl"));
    cmd.arg("--no-wsl-config")
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("OCI2WSL_NO_CACHE")
        .env_remove("OCI2WSL_CACHE_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn pull(cache: &Path, args: &[&str]) -> Output {
    command(cache, args).output().unwrap()
}

fn pull_ok(cache: &Path, args: &[&str]) -> Vec<u8> {
    let o = pull(cache, args);
    assert!(
        o.status.success(),
        "oci2wsl {args:?} failed: {}",
        stderr(&o)
    );
    o.stdout
}

fn pull_err(cache: &Path, args: &[&str]) -> String {
    failed_with(cache, args, 1)
}

/// Options that contradict each other: a usage error, exit 2.
fn pull_usage_err(cache: &Path, args: &[&str]) -> String {
    failed_with(cache, args, 2)
}

fn failed_with(cache: &Path, args: &[&str], code: i32) -> String {
    let o = pull(cache, args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?} should fail with exit {code}"
    );
    assert!(o.stdout.is_empty());
    stderr(&o)
}

fn list_json(cache: &Path) -> serde_json::Value {
    let o = pull(cache, &["--cache-list=json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn names_in(listing: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = listing["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Every file under a digest name in the cache hashes to that name.
fn assert_blobs_verify(cache: &Path) -> usize {
    let mut n = 0;
    for f in fs::read_dir(cache.join("blobs/sha256")).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().into_owned();
        let hex = format!("{:x}", Sha256::digest(fs::read(f.path()).unwrap()));
        assert_eq!(hex, name, "cache blob {name} does not match its name");
        n += 1;
    }
    n
}

/// A layer of about `kib` KiB of random bytes: gzip cannot shrink it, so sizes are
/// predictable. (Gzip, not uncompressed: skopeo compresses an uncompressed layer on its
/// way to a registry, which would change its digest.)
fn sized_image(seed: u64, kib: usize) -> ImageBuilder {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let data: Vec<u8> = (0..kib * 1024)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect();
    image(vec![layer(vec![file(b"data", &data)])])
}

fn two_layer_image(tag_text: &str) -> ImageBuilder {
    image(vec![
        layer(vec![dir("etc"), file("etc/os-release", "ID=cache\n")]),
        layer(vec![file("usr/bin/app", tag_text)]).zstd(),
    ])
}

/// `image` in a layout under `dir`, pushed to a fresh registry as `team/REPO`.
fn pushed(dir: &Path, image: ImageBuilder, repo: &str) -> (PathBuf, Registry) {
    let lay = oci_layout(dir, &image.build(), "t");
    let reg = start_registry(dir);
    push_layout(&lay, "t", &named(reg.port, repo), &[]);
    (lay, reg)
}

/// The pushed image's name at `port`: the registry's, or a proxy's in front of it.
fn named(port: u16, repo: &str) -> String {
    format!("127.0.0.1:{port}/team/{repo}")
}

/// What a run from the layout makes of the image: what every pull must equal.
fn layout_tar(lay: &Path) -> Vec<u8> {
    flatten_ok(&["-q", &layout_arg(lay, "t")])
}

/// The summary has a line `manifest digest  sha256:…`.
fn manifest_digest_of(o: &Output) -> String {
    let s = stderr(o);
    s.lines()
        .find_map(|l| l.trim().strip_prefix("manifest digest"))
        .map(|d| d.trim().to_string())
        .unwrap_or_else(|| panic!("no manifest digest in the summary: {s}"))
}

#[test]
fn missing_policy_resolves_a_tag_with_one_head_and_a_cached_digest_with_no_request() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (lay, reg) = pushed(dir.path(), two_layer_image("v1"), "app:1.0");
    let proxy = start_logging_proxy(reg.port, ProxyMode::Forward);
    let name = named(proxy.port, "app:1.0");
    let expected = layout_tar(&lay);

    let first = pull(&cache, &[&name, "-o", "-"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(first.stdout, expected);
    let log = proxy.take();
    assert_eq!(log.blob_gets(), 3, "config and two layers: {log:?}");
    assert_eq!(
        assert_blobs_verify(&cache),
        4,
        "manifest, config, two layers"
    );

    // Second pull by tag: one HEAD of the manifest, nothing else.
    assert_eq!(pull_ok(&cache, &["-q", &name]), expected);
    proxy
        .take()
        .assert_exactly(&["HEAD /v2/team/app/manifests/1.0"]);

    // By digest: no request at all.
    let digest = manifest_digest_of(&first);
    let pinned = format!("127.0.0.1:{}/team/app@{digest}", proxy.port);
    assert_eq!(pull_ok(&cache, &["-q", &pinned]), expected);
    proxy.take().assert_exactly(&[]);

    // --pull=always downloads everything again.
    assert_eq!(pull_ok(&cache, &["-q", "--pull=always", &name]), expected);
    let log = proxy.take();
    assert!(log.count("GET", PathKind::Manifest) > 0, "{log:?}");
    assert_eq!(log.blob_gets(), 3, "{log:?}");

    // --no-cache leaves the cache alone and downloads.
    let before = fs::read(cache.join("index.json")).unwrap();
    assert_eq!(pull_ok(&cache, &["-q", "--no-cache", &name]), expected);
    assert_eq!(proxy.take().blob_gets(), 3);
    assert_eq!(fs::read(cache.join("index.json")).unwrap(), before);
}

#[test]
fn only_the_blobs_missing_from_the_cache_are_fetched() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (lay, reg) = pushed(dir.path(), two_layer_image("v1"), "app:1.0");
    let proxy = start_logging_proxy(reg.port, ProxyMode::Forward);
    let name = named(proxy.port, "app:1.0");
    let expected = layout_tar(&lay);
    pull_ok(&cache, &["-q", &name]);
    proxy.take();
    let layers = layout_layer_digests(&lay);
    fs::remove_file(cache.join("blobs/sha256").join(&layers[1][7..])).unwrap();
    assert_eq!(pull_ok(&cache, &["-q", &name]), expected);
    proxy.take().assert_exactly(&[
        "HEAD /v2/team/app/manifests/1.0",
        &format!("GET /v2/team/app/blobs/{}", layers[1]),
    ]);
}

#[test]
fn never_works_offline_and_names_what_is_missing() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (lay, reg) = pushed(dir.path(), two_layer_image("v1"), "app:1.0");
    let name = named(reg.port, "app:1.0");
    let expected = layout_tar(&lay);
    let never_seen = format!("127.0.0.1:{}/team/other:1.0", reg.port);
    let err = pull_err(&cache, &["--pull=never", &never_seen]);
    assert!(
        err.contains("--pull=never") && err.contains("team/other:1.0"),
        "{err}"
    );
    let o = pull(&cache, &["-q", &name]);
    assert!(o.status.success());
    let pinned = format!("127.0.0.1:{}/team/app@{}", reg.port, {
        let o = pull(&cache, &[&name, "-o", "-"]);
        manifest_digest_of(&o)
    });
    drop(reg); // offline from here on
    assert_eq!(pull_ok(&cache, &["-q", "--pull=never", &name]), expected);
    assert_eq!(pull_ok(&cache, &["-q", "--pull=never", &pinned]), expected);
    // The default policy needs the registry for a tag (its HEAD), not for a digest.
    assert_eq!(pull_ok(&cache, &["-q", &pinned]), expected);
    let err = pull_err(&cache, &["-q", &name]);
    assert!(err.contains("cannot reach"), "{err}");
    let layers = layout_layer_digests(&lay);
    fs::remove_file(cache.join("blobs/sha256").join(&layers[0][7..])).unwrap();
    let err = pull_err(&cache, &["--pull=never", &name]);
    assert!(
        err.contains("--pull=never")
            && err.contains("layer 1/2")
            && err.contains(&layers[0][7..19]),
        "{err}"
    );
    let err = pull_usage_err(&cache, &["--pull=never", "--no-cache", &name]);
    assert!(err.contains("--no-cache"), "{err}");
}

#[test]
fn a_moved_tag_is_followed_and_replaces_its_entry() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let reg = start_registry(dir.path());
    let name = format!("127.0.0.1:{}/team/app:1.0", reg.port);
    let d1 = dir.path().join("one");
    let d2 = dir.path().join("two");
    fs::create_dir_all(&d1).unwrap();
    fs::create_dir_all(&d2).unwrap();
    let lay1 = oci_layout(&d1, &two_layer_image("v1").build(), "t");
    let lay2 = oci_layout(&d2, &two_layer_image("v2").build(), "t");
    push_layout(&lay1, "t", &name, &[]);
    assert_eq!(
        pull_ok(&cache, &["-q", &name]),
        flatten_ok(&["-q", &layout_arg(&lay1, "t")])
    );
    push_layout(&lay2, "t", &name, &[]);
    assert_eq!(
        pull_ok(&cache, &["-q", &name]),
        flatten_ok(&["-q", &layout_arg(&lay2, "t")])
    );
    let listing = list_json(&cache);
    assert_eq!(names_in(&listing), vec![name.clone()]);
    // v1's own layer went with its entry; the shared base layer stayed.
    let old = layout_layer_digests(&lay1);
    let new = layout_layer_digests(&lay2);
    assert_eq!(old[0], new[0]);
    assert!(cache.join("blobs/sha256").join(&new[0][7..]).exists());
    assert!(!cache.join("blobs/sha256").join(&old[1][7..]).exists());
}

#[test]
fn the_cache_is_an_oci_layout_that_oci2wsl_skopeo_and_umoci_read() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (lay, reg) = pushed(dir.path(), two_layer_image("v1"), "app:1.0");
    let name = named(reg.port, "app:1.0");
    let expected = layout_tar(&lay);
    let o = pull(&cache, &[&name, "-o", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let digest = manifest_digest_of(&o);
    drop(reg);
    let oci_ref = format!("oci:{}:{name}", cache.display());
    assert_eq!(flatten_ok(&["-q", &oci_ref]), expected);
    let inspect: serde_json::Value = serde_json::from_str(&sh(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(&oci_ref)))
    .unwrap();
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 2);
    let inspect: serde_json::Value =
        serde_json::from_str(&sh(Command::new("skopeo").arg("inspect").arg(&oci_ref))).unwrap();
    assert_eq!(inspect["Digest"].as_str().unwrap(), digest);
    // skopeo copies out of it, reading every blob.
    let copy = dir.path().join("copy");
    sh(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(&oci_ref)
        .arg(format!("oci:{}:c", copy.display())));
    assert_eq!(flatten_ok(&["-q", &layout_arg(&copy, "c")]), expected);
    // umoci's part fails without umoci like any test; under the opt-out it is skipped and
    // counted, never silently.
    if require_tools(&["umoci"]) {
        let tags = sh(Command::new("umoci").args(["ls", "--layout"]).arg(&cache));
        assert!(tags.lines().any(|l| l == name), "{tags}");
        let stat = sh(Command::new("umoci")
            .args(["stat", "--json", "--image"])
            .arg(format!("{}:{name}", cache.display())));
        assert!(stat.contains("history"), "{stat}");
    }
}

#[test]
fn two_runs_at_once_on_one_cache() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (lay, reg) = pushed(dir.path(), sized_image(1, 512), "big:1");
    let proxy = start_logging_proxy(reg.port, ProxyMode::Slow);
    let name = named(proxy.port, "big:1");
    let expected = layout_tar(&lay);
    let a = command(&cache, &["-q", &name]).spawn().unwrap();
    let b = command(&cache, &["-q", &name]).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    assert_eq!(a.stdout, expected);
    assert_eq!(b.stdout, expected);
    // Each run downloads what the cache lacked when it looked: config and layer for the
    // first, anything from nothing to both for the second.
    let fetched = proxy.take().blob_gets();
    assert!((2..=4).contains(&fetched), "{fetched} blob downloads");
    assert_eq!(names_in(&list_json(&cache)), vec![name.clone()]);
    assert_eq!(assert_blobs_verify(&cache), 3);
    assert_eq!(pull_ok(&cache, &["-q", "--pull=never", &name]), expected);
}

#[test]
fn a_prune_during_a_pull_leaves_both_whole() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let lay = oci_layout(dir.path(), &sized_image(2, 512).build(), "t");
    let other = dir.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let lay2 = oci_layout(&other, &sized_image(3, 64).build(), "t");
    let reg = start_registry(dir.path());
    push_layout(
        &lay,
        "t",
        &format!("127.0.0.1:{}/team/big:1", reg.port),
        &[],
    );
    push_layout(
        &lay2,
        "t",
        &format!("127.0.0.1:{}/team/small:1", reg.port),
        &[],
    );
    let proxy = start_logging_proxy(reg.port, ProxyMode::Slow);
    let big = format!("127.0.0.1:{}/team/big:1", proxy.port);
    let small = format!("127.0.0.1:{}/team/small:1", reg.port);
    pull_ok(&cache, &["-q", &small]);
    let expected = layout_tar(&lay);
    // Its tar goes to a file: nobody reads a pipe while the prunes run.
    let tar = dir.path().join("big.tar");
    let mut puller = command(&cache, &["-q", &big, "-o"])
        .arg(&tar)
        .spawn()
        .unwrap();
    let mut prunes = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while puller.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = puller.kill();
            let out = puller.wait_with_output().unwrap();
            panic!("the pull hung: {} {:?}", stderr(&out), proxy.take());
        }
        let o = pull(&cache, &["--cache-prune"]);
        assert!(o.status.success(), "{}", stderr(&o));
        prunes += 1;
        std::thread::sleep(Duration::from_millis(30));
    }
    let out = puller.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(&tar).unwrap(), expected);
    assert!(prunes > 1, "the pull ended before a prune could overlap it");
    // index.json stayed valid JSON, every stored blob verifies, and the pulled image, once
    // recorded after the last prune, is whole.
    let listing = list_json(&cache);
    assert!(!names_in(&listing).contains(&small));
    assert_blobs_verify(&cache);
    if names_in(&listing).contains(&big) {
        assert_eq!(pull_ok(&cache, &["-q", "--pull=never", &big]), expected);
    }
}

#[test]
fn a_killed_download_leaves_no_blob_under_a_digest_name() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (lay, reg) = pushed(dir.path(), sized_image(4, 512), "big:1");
    let stalled = Arc::new(AtomicBool::new(false));
    let layer = layout_layer_digests(&lay)[0].clone();
    let proxy = start_logging_proxy(reg.port, ProxyMode::StallOn(layer.clone(), stalled.clone()));
    let name = named(proxy.port, "big:1");
    let mut child = command(&cache, &["-q", &name]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stalled.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the download never started: {:?} {:?}",
            proxy.take(),
            child.try_wait()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the half blob reach the spool, then kill the run mid download.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cache.join("blobs/sha256").join(&layer[7..]).exists());
    assert_blobs_verify(&cache);
    let partial: Vec<PathBuf> = fs::read_dir(cache.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(partial.len(), 1, "the killed download's file: {partial:?}");
    assert!(names_in(&list_json(&cache)).is_empty());
    // The next run starts that blob over and completes the cache.
    assert_eq!(pull_ok(&cache, &["-q", &name]), layout_tar(&lay));
    assert!(cache.join("blobs/sha256").join(&layer[7..]).exists());
    assert_blobs_verify(&cache);
}

#[test]
fn eviction_takes_the_least_recently_used_image_and_keeps_shared_blobs() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let reg = start_registry(dir.path());
    let mut names = Vec::new();
    for (i, seed) in [10u64, 11, 12].iter().enumerate() {
        let d = dir.path().join(format!("img{i}"));
        fs::create_dir_all(&d).unwrap();
        let lay = oci_layout(&d, &sized_image(*seed, 100).build(), "t");
        let name = format!("127.0.0.1:{}/team/img{i}:1", reg.port);
        push_layout(&lay, "t", &name, &[]);
        names.push(name);
    }
    // Two of the three ~100 KiB images fit under the cap.
    let capped = |n: &str| pull_ok(&cache, &["--cache-max-size", "250K", "-q", n]);
    capped(&names[0]);
    capped(&names[1]);
    // Using img0 again makes img1 the least recently used.
    capped(&names[0]);
    capped(&names[2]);
    let listing = list_json(&cache);
    assert_eq!(names_in(&listing), vec![names[0].clone(), names[2].clone()]);
    assert!(listing["size"].as_u64().unwrap() <= 250 * 1024);
    assert_blobs_verify(&cache);
    // The listing is most recently used first.
    assert_eq!(listing["images"][0]["name"], names[2].as_str());
    // img3 shares img2's layer and has one of its own. Used after img3, img2 is the more
    // recent: a prune removes img0, then img3, whose removal must keep the shared layer.
    let d = dir.path().join("img3");
    fs::create_dir_all(&d).unwrap();
    let mut with_shared = sized_image(12, 100);
    with_shared
        .layers
        .push(sized_image(13, 100).layers.remove(0));
    let lay = oci_layout(&d, &with_shared.build(), "t");
    let name3 = format!("127.0.0.1:{}/team/img3:1", reg.port);
    push_layout(&lay, "t", &name3, &[]);
    pull_ok(&cache, &["--cache-max-size", "1G", "-q", &name3]);
    pull_ok(&cache, &["--cache-max-size", "1G", "-q", &names[2]]);
    let o = pull(&cache, &["--cache-prune=150K", "--cache-list=json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let removed: Vec<&str> = after["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(removed, vec![names[0].as_str(), name3.as_str()]);
    assert_eq!(names_in(&after), vec![names[2].clone()]);
    let shared = &layout_layer_digests(&lay)[0];
    assert!(
        cache.join("blobs/sha256").join(&shared[7..]).exists(),
        "{shared} {after:#} {:?}",
        fs::read_dir(cache.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    let freed = after["removed"][1]["freed"].as_u64().unwrap();
    assert!(
        freed > 100 * 1024 && freed < 150 * 1024,
        "img3 freed {freed} bytes: its own layer, not the shared one"
    );
    assert!(after["size"].as_u64().unwrap() <= 150 * 1024);
    assert_blobs_verify(&cache);
}

#[test]
fn listing_and_pruning_for_people_and_programs() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (_, reg) = pushed(dir.path(), two_layer_image("v1"), "app:1.0");
    let name = named(reg.port, "app:1.0");
    pull_ok(&cache, &["-q", &name]);
    let text = String::from_utf8(pull_ok(&cache, &["--cache-list"])).unwrap();
    assert!(
        text.contains(&name) && text.contains("linux/amd64") && text.contains("1 images"),
        "{text}"
    );
    let listing = list_json(&cache);
    assert_eq!(listing["version"], 1);
    assert_eq!(listing["images"][0]["name"], name.as_str());
    assert_eq!(listing["images"][0]["platform"], "linux/amd64");
    assert!(listing["images"][0]["size"].as_u64().unwrap() > 0);
    let text = String::from_utf8(pull_ok(&cache, &["--cache-prune"])).unwrap();
    assert!(
        text.contains(&format!("removed {name} linux/amd64")) && text.contains("0 images"),
        "{text}"
    );
    assert_eq!(assert_blobs_verify(&cache), 0);
    // IMAGE and a cache command do not mix: the name stays an image name.
    let o = pull(&cache, &["--cache-list", &name]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
