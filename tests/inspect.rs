//! `--inspect`: a look at an image without converting it, from a registry on 127.0.0.1 (a
//! multi-platform index with a BuildKit attestation), an OCI layout and a docker-archive.
//! Checks the text and the `--json` document against the image the test built, and that no
//! layer blob is fetched.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let out = Command::new(bin())
        .env("OCI2WSL_NO_CACHE", "1")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn inspect_json(image: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--inspect", "--json"];
    args.extend_from_slice(extra);
    args.push(image);
    let out = run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// An image whose config sets every field inspect shows.
fn app(platform: &str, marker: &str) -> common::Image {
    let mut b = image(vec![
        layer(vec![dir("etc"), file("etc/arch", marker)]),
        layer(vec![file("app", "x")]).zstd(),
    ])
    .platform(platform);
    b.runtime_config = json!({
        "User": "app",
        "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOSTNAME=x"],
        "WorkingDir": "/srv",
        "Entrypoint": ["/app"],
        "Cmd": ["--serve"],
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.opencontainers.image.title": "app"},
    });
    b.build()
}

fn layer_sizes(img: &common::Image) -> Vec<u64> {
    img.layers.iter().map(|l| l.bytes.len() as u64).collect()
}

/// The fields every source agrees on: the layers and the config.
fn check_image(v: &Value, img: &common::Image) {
    assert_eq!(v["v"], 1);
    assert_eq!(v["config_digest"], img.config.digest);
    let sizes: Vec<u64> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, layer_sizes(img));
    assert_eq!(v["download_bytes"], layer_sizes(img).iter().sum::<u64>());
    let diff_ids: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap())
        .collect();
    assert_eq!(diff_ids, img.diff_ids);
    let c = &v["config"];
    assert_eq!(c["user"], "app");
    assert_eq!(c["working_dir"], "/srv");
    assert_eq!(c["entrypoint"], json!(["/app"]));
    assert_eq!(c["cmd"], json!(["--serve"]));
    assert_eq!(c["exposed_ports"], json!(["8080/tcp"]));
    assert_eq!(
        c["labels"],
        json!({"org.opencontainers.image.title": "app"})
    );
    assert_eq!(
        c["env"],
        json!(["PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOSTNAME=x"])
    );
    let wsl = &v["wsl"];
    assert_eq!(wsl["default_user"], "app");
    assert_eq!(wsl["user_checked"], false);
    let script = wsl["environment_script"].as_str().unwrap();
    assert!(script.contains("export LANG='C.UTF-8'"), "{script}");
    assert!(!script.contains("HOSTNAME"), "{script}");
    assert!(
        wsl["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("HOSTNAME")),
        "the skipped variable is a warning: {wsl}"
    );
}

#[test]
fn a_registry_index_lists_every_platform_and_marks_the_attestation() {
    if !require_tools(REGISTRY_TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let amd = app("linux/amd64", "amd64");
    let arm = app("linux/arm64/v8", "arm64");
    let idx = index(&[&amd, &arm]).with_attestation().build();
    let src = oci_dir(dir.path(), &idx, "multi");
    let reg = start_registry(dir.path());
    let name = reg.name("inspect/app:1");
    push(&src, &name, true);

    let v = inspect_json(&name, &["--platform", "linux/arm64"]);
    check_image(&v, &arm);
    assert_eq!(v["index_digest"], idx.blob.digest);
    assert_eq!(v["manifest_digest"], arm.manifest.digest);
    assert_eq!(v["platform"], "linux/arm64/v8");
    let platforms = v["platforms"].as_array().unwrap();
    let listed: Vec<(String, bool, bool)> = platforms
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                p["attestation"].as_bool().unwrap(),
                p["chosen"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("unknown/unknown".to_string(), true, false),
            ("linux/amd64".to_string(), false, false),
            ("linux/arm64/v8".to_string(), false, true),
        ]
    );
    // The same facts as text.
    let text = run(&["--inspect", "--platform", "linux/arm64", &name]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    for expected in [
        format!("Index:       {}", idx.blob.digest),
        format!("Manifest:    {}", arm.manifest.digest),
        "unknown/unknown".to_string(),
        "attestation".to_string(),
        "* linux/arm64/v8".to_string(),
        "Layers:      2,".to_string(),
        "Entrypoint:   [\"/app\"]".to_string(),
        "export LANG='C.UTF-8'".to_string(),
        "8080/tcp".to_string(),
        "org.opencontainers.image.title=app".to_string(),
    ] {
        assert!(
            text.stdout.contains(&expected),
            "{expected:?} in:\n{}",
            text.stdout
        );
    }
}

#[test]
fn a_layout_is_inspected_without_reading_its_layers() {
    let dir = tempfile::tempdir().unwrap();
    let img = app("linux/amd64", "amd64");
    let src = oci_dir(dir.path(), &img, "t");
    // Layer blobs gone: a conversion would fail, a look must not need them.
    for l in &img.layers {
        std::fs::remove_file(dir.path().join("layout").join(l.layout_path())).unwrap();
    }
    let v = inspect_json(&src, &["--platform", "linux/amd64"]);
    check_image(&v, &img);
    assert_eq!(v["manifest_digest"], img.manifest.digest);
    assert_eq!(v["index_digest"], Value::Null);
    assert_eq!(v["platforms"], json!([]));
}

#[test]
fn a_docker_archive_is_inspected() {
    let dir = tempfile::tempdir().unwrap();
    let img = app("linux/amd64", "amd64");
    let tar = docker_archive(&[(&img, &["example/app:1"])], DockerStyle::default());
    let path = write_file(dir.path(), "app.tar", &tar);
    let v = inspect_json(
        &format!("docker-archive:{}", path.display()),
        &["--platform", "linux/amd64"],
    );
    assert_eq!(v["config_digest"], img.config.digest);
    assert_eq!(v["config"]["user"], "app");
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["manifest_digest"],
        Value::Null,
        "docker save has no manifest bytes"
    );
}

#[test]
fn an_image_named_like_the_flag_is_just_an_image() {
    // A layout tagged "inspect" in a directory named "inspect": the flag is a flag, the
    // positional argument is always the image.
    let dir = tempfile::tempdir().unwrap();
    let img = app("linux/amd64", "amd64");
    let layout = dir.path().join("inspect");
    write_oci_layout(&layout, &[(Some("inspect"), &img)]);
    let out = Command::new(bin())
        .env("OCI2WSL_NO_CACHE", "1")
        .current_dir(dir.path())
        .args([
            "--inspect",
            "--json",
            "--platform",
            "linux/amd64",
            "oci:inspect:inspect",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest_digest"], img.manifest.digest);
}

#[test]
fn no_wsl_config_shows_no_wsl_preview_and_inspect_refuses_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let img = app("linux/amd64", "amd64");
    let src = oci_dir(dir.path(), &img, "t");
    let v = inspect_json(&src, &["--no-wsl-config", "--platform", "linux/amd64"]);
    assert_eq!(v["wsl"], Value::Null);
    let out = run(&["--inspect", "-o", "x.tar", &src]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--inspect"), "{}", out.stderr);
}

#[test]
fn terminal_escapes_in_a_label_are_not_printed_and_survive_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = image(vec![layer(vec![file("a", "x")])]);
    let hostile = "red\u{1b}[31m\u{9b}2J\u{7f}";
    b.runtime_config = json!({"Labels": {"title": hostile}});
    let img = b.build();
    let src = oci_dir(dir.path(), &img, "t");
    let text = run(&["--inspect", "--platform", "linux/amd64", &src]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("title=red\\x1b[31m"),
        "{}",
        text.stdout
    );
    let out = run(&["--inspect", "--json", "--platform", "linux/amd64", &src]);
    for stdout in [&text.stdout, &out.stdout] {
        assert!(
            !stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{stdout:?}"
        );
    }
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["config"]["labels"]["title"], hostile);
}
