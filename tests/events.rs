//! `--progress=json`: real runs (an OCI layout, and a registry on 127.0.0.1) parsed line by
//! line and checked against the schema docs/events.md documents, which is written out here
//! as data; the doc's own examples are checked against the same schema, so the doc and the
//! stream cannot drift apart unnoticed.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};

/// A field's JSON type in the schema.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Str,
    OptStr,
    U64,
    OptU64,
    StrList,
    /// The `layers` list of `resolved`.
    Layers,
    /// The `import` object of `summary`, or null.
    OptImport,
}
use Ty::*;

/// docs/events.md, schema version 1: every event and its fields (besides `v` and `event`).
const SCHEMA: &[(&str, &[(&str, Ty)])] = &[
    (
        "resolved",
        &[
            ("image", Str),
            ("index_digest", OptStr),
            ("manifest_digest", OptStr),
            ("config_digest", Str),
            ("platform", Str),
            ("layers", Layers),
            ("download_bytes", U64),
        ],
    ),
    (
        "progress",
        &[
            ("phase", Str),
            ("layer", OptU64),
            ("done", U64),
            ("total", OptU64),
        ],
    ),
    (
        "layer-done",
        &[("phase", Str), ("layer", U64), ("bytes", U64)],
    ),
    ("emit-started", &[("tar_bytes", U64), ("paths", U64)]),
    (
        "retry",
        &[
            ("what", Str),
            ("attempt", U64),
            ("reason", Str),
            ("wait_ms", U64),
        ],
    ),
    (
        "request",
        &[
            ("method", Str),
            ("url", Str),
            ("status", OptU64),
            ("elapsed_ms", U64),
        ],
    ),
    ("import-started", &[("name", Str)]),
    ("import-finished", &[("name", Str), ("dir", Str)]),
    ("warning", &[("message", Str)]),
    (
        "summary",
        &[
            ("image", Str),
            ("index_digest", OptStr),
            ("manifest_digest", OptStr),
            ("config_digest", Str),
            ("platform", Str),
            ("layers", U64),
            ("paths", U64),
            ("compressed_bytes", U64),
            ("tar_bytes", U64),
            ("bytes_out", U64),
            ("output", OptStr),
            ("import", OptImport),
            ("wsl_set", StrList),
            ("wsl_warnings", StrList),
            ("elapsed_ms", U64),
        ],
    ),
    ("error", &[("code", Str), ("message", Str)]),
    ("other", &[("kind", Str)]),
];

const PHASES: [&str; 4] = ["download", "index", "emit", "output"];
const CODES: [&str; 11] = [
    "usage",
    "auth",
    "not-found",
    "network",
    "integrity",
    "hostile-input",
    "unsupported",
    "wsl",
    "output",
    "interrupted",
    "other",
];

fn is_digest(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.starts_with("sha256:") || s.starts_with("sha512:"))
}

fn check_type(event: &str, field: &str, ty: Ty, v: &Value) {
    let ok = match ty {
        Str => v.is_string(),
        OptStr => v.is_string() || v.is_null(),
        U64 => v.is_u64(),
        OptU64 => v.is_u64() || v.is_null(),
        StrList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Layers => v.as_array().is_some_and(|a| {
            a.iter().enumerate().all(|(i, l)| {
                l["index"].as_u64() == Some(i as u64)
                    && (is_digest(&l["digest"]) || l["digest"].is_null())
                    && is_digest(&l["diff_id"])
                    && (l["size"].is_u64() || l["size"].is_null())
                    && l["media_type"].is_string()
                    && l.as_object().unwrap().len() == 5
            })
        }),
        OptImport => {
            v.is_null()
                || (v["name"].is_string()
                    && v["dir"].is_string()
                    && v["wsl_said"].is_string()
                    && v.as_object().unwrap().len() == 3)
        }
    };
    assert!(ok, "{event}.{field} is not {ty:?}: {v}");
}

/// Checks one line against the schema; returns its event name.
fn check_line(line: &str) -> String {
    assert!(
        line.starts_with("{\"v\":1,\"event\":"),
        "a line leads with the version and the event: {line}"
    );
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let obj = v.as_object().unwrap();
    let event = obj["event"].as_str().unwrap().to_string();
    let fields = SCHEMA
        .iter()
        .find(|(name, _)| *name == event)
        .unwrap_or_else(|| panic!("event {event} is not in the schema: {line}"))
        .1;
    for (field, ty) in fields {
        let value = obj
            .get(*field)
            .unwrap_or_else(|| panic!("{event} lacks {field}: {line}"));
        check_type(&event, field, *ty, value);
    }
    assert_eq!(
        obj.len(),
        fields.len() + 2,
        "{event} has fields the schema does not list: {line}"
    );
    if let Some(phase) = obj.get("phase") {
        assert!(PHASES.contains(&phase.as_str().unwrap()), "{line}");
    }
    if event == "error" {
        assert!(CODES.contains(&obj["code"].as_str().unwrap()), "{line}");
    }
    event
}

struct JsonRun {
    code: i32,
    lines: Vec<Value>,
    events: Vec<String>,
}

impl JsonRun {
    fn of(&self, event: &str) -> Vec<&Value> {
        self.events
            .iter()
            .zip(&self.lines)
            .filter(|(e, _)| *e == event)
            .map(|(_, l)| l)
            .collect()
    }
}

/// Runs the binary with `--progress=json` and `args`; every stderr line must be a schema
/// event, the first one resolved or error, the last one summary or error.
fn run_json(args: &[&str]) -> JsonRun {
    run_json_env(args, &[])
}

fn run_json_env(args: &[&str], envs: &[(&str, &Path)]) -> JsonRun {
    // Off the user's layer cache: a blob cached by an earlier run would not be downloaded.
    let out = Command::new(bin())
        .env("OCI2WSL_NO_CACHE", "1")
        .arg("--progress=json")
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.is_empty(), "no events for {args:?}");
    let events: Vec<String> = stderr.lines().map(check_line).collect();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert!(
        last == "summary" || last == "error",
        "the last event is the outcome:\n{stderr}"
    );
    let outcomes = events
        .iter()
        .filter(|e| *e == "summary" || *e == "error")
        .count();
    assert_eq!(outcomes, 1, "one outcome:\n{stderr}");
    assert_eq!(out.status.code() == Some(0), last == "summary", "{stderr}");
    if last == "summary" {
        assert_eq!(events[0], "resolved", "resolved comes first:\n{stderr}");
    }
    if let Some(pos) = events.iter().position(|e| e == "resolved") {
        assert!(
            events[..pos]
                .iter()
                .all(|e| e == "warning" || e == "request" || e == "retry"),
            "nothing but warnings and requests before resolved:\n{stderr}"
        );
    }
    JsonRun {
        code: out.status.code().unwrap_or(-1),
        lines,
        events,
    }
}

/// Per counter (phase, layer): progress values never go back, the last one is the count
/// the counter's layer-done states (or, for emit, at most the summary's tar bytes), and a
/// layer's progress ends before its layer-done.
fn check_progress(run: &JsonRun) {
    let mut last: HashMap<(String, Option<u64>), u64> = HashMap::new();
    for (event, line) in run.events.iter().zip(&run.lines) {
        match event.as_str() {
            "progress" => {
                let key = (
                    line["phase"].as_str().unwrap().to_string(),
                    line["layer"].as_u64(),
                );
                let done = line["done"].as_u64().unwrap();
                if let Some(total) = line["total"].as_u64() {
                    if key.0 != "emit" {
                        assert!(done <= total, "{line}");
                    }
                }
                let before = last.insert(key, done).unwrap_or(0);
                assert!(done >= before, "progress went back: {line}");
            }
            "layer-done" => {
                let key = (
                    line["phase"].as_str().unwrap().to_string(),
                    line["layer"].as_u64(),
                );
                if let Some(done) = last.get(&key) {
                    assert_eq!(
                        Some(*done),
                        line["bytes"].as_u64(),
                        "the final progress of a layer is its size: {line}"
                    );
                }
            }
            _ => {}
        }
    }
}

fn sample_image(platform: &str) -> common::Image {
    let big: String = (0..200_000).map(|i| format!("{i}\n")).collect();
    let mut b = image(vec![
        layer(vec![
            dir("etc"),
            file(
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            file("etc/big", &big),
        ]),
        layer(vec![dir("home"), dir("home/app"), file("home/app/x", "x")]).zstd(),
    ])
    .platform(platform);
    b.runtime_config = json!({
        "User": "app",
        "Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        "WorkingDir": "/home/app",
        "Cmd": ["/bin/sh"],
    });
    b.build()
}

/// A platform that is not this machine's: the default choice then warns.
fn foreign_platform() -> String {
    if host_platform().arch == "arm64" {
        "linux/amd64".into()
    } else {
        "linux/arm64".into()
    }
}

#[test]
fn a_layout_run_streams_every_stage_and_ends_with_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample_image(&foreign_platform());
    let src = oci_dir(dir.path(), &img, "t");
    let out = dir.path().join("out.tar.gz");
    let run = run_json(&[&src, "-o", out.to_str().unwrap()]);
    assert_eq!(run.code, 0);
    check_progress(&run);

    let resolved = run.of("resolved")[0];
    assert_eq!(resolved["layers"].as_array().unwrap().len(), 2);
    assert_eq!(resolved["manifest_digest"], img.manifest.digest);
    assert_eq!(resolved["config_digest"], img.config.digest);
    let sizes: u64 = img.layers.iter().map(|l| l.bytes.len() as u64).sum();
    assert_eq!(resolved["download_bytes"], sizes);

    let warnings = run.of("warning");
    assert!(
        warnings
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("not linux/")),
        "the platform warning is an event: {warnings:?}"
    );
    let indexed: BTreeSet<u64> = run
        .of("layer-done")
        .iter()
        .filter(|l| l["phase"] == "index")
        .map(|l| l["layer"].as_u64().unwrap())
        .collect();
    assert_eq!(indexed, BTreeSet::from([0, 1]), "each layer indexed once");
    let emit = run.of("emit-started");
    assert_eq!(emit.len(), 1);
    let emit_at = run.events.iter().position(|e| e == "emit-started").unwrap();
    assert!(
        run.events[emit_at..]
            .iter()
            .zip(&run.lines[emit_at..])
            .all(|(e, l)| e != "layer-done" || l["phase"] != "index"),
        "indexing ends before the emit pass"
    );

    let summary = run.lines.last().unwrap();
    assert_eq!(summary["output"], out.to_str().unwrap());
    assert_eq!(summary["bytes_out"], std::fs::metadata(&out).unwrap().len());
    assert_eq!(summary["import"], Value::Null);
    assert_eq!(summary["layers"], 2);
    assert_eq!(summary["manifest_digest"], img.manifest.digest);
    let set: Vec<&str> = summary["wsl_set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        set.iter().any(|s| s.contains("app")),
        "the WSL settings written name the default user: {set:?}"
    );
}

#[test]
fn a_registry_pull_reports_each_layer_downloaded() {
    if !require_tools(REGISTRY_TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = sample_image(&host_platform().to_string());
    let src = oci_dir(dir.path(), &img, "t");
    let reg = start_registry(dir.path());
    let name = reg.name("events/app:1");
    push(&src, &name, false);
    let run = run_json(&["-o", "-", "--no-wsl-config", &name]);
    assert_eq!(run.code, 0, "{:?}", run.lines);
    check_progress(&run);
    let downloaded: HashMap<u64, u64> = run
        .of("layer-done")
        .iter()
        .filter(|l| l["phase"] == "download")
        .map(|l| (l["layer"].as_u64().unwrap(), l["bytes"].as_u64().unwrap()))
        .collect();
    let expected: HashMap<u64, u64> = img
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64, l.bytes.len() as u64))
        .collect();
    assert_eq!(downloaded, expected, "every layer downloaded, at its size");
    assert!(run.of("progress").iter().any(|p| p["phase"] == "download"));
    let summary = run.lines.last().unwrap();
    assert_eq!(summary["output"], "-");
    assert_eq!(summary["wsl_set"], json!([]));
    assert_eq!(summary["image"], run.of("resolved")[0]["image"]);
}

#[test]
fn an_import_reports_its_start_and_end_and_the_summary_names_the_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample_image(&host_platform().to_string());
    let src = oci_dir(dir.path(), &img, "t");
    let state = dir.path().join("wsl state");
    let local = dir.path().join("local");
    let run = run_json_env(
        &["--import", "pg", &src],
        &[
            ("OCI2WSL_WSL_EXE", wsl_stand_in()),
            ("WSL_STAND_IN_DIR", &state),
            ("LOCALAPPDATA", &local),
        ],
    );
    assert_eq!(run.code, 0, "{:?}", run.lines);
    let position = |name: &str| run.events.iter().position(|e| e == name).unwrap();
    let started = position("import-started");
    let finished = position("import-finished");
    assert!(position("emit-started") < finished && started < finished);
    let dir_written = local.join("Wsl").join("pg");
    assert_eq!(
        run.lines[finished],
        json!({"v": 1, "event": "import-finished", "name": "pg",
               "dir": dir_written.to_str().unwrap()})
    );
    let summary = run.lines.last().unwrap();
    assert_eq!(summary["output"], Value::Null, "streamed, no file");
    assert_eq!(summary["import"]["name"], "pg");
    assert_eq!(summary["import"]["dir"], dir_written.to_str().unwrap());
}

fn only_error(run: &JsonRun) -> &Value {
    assert_eq!(run.events, ["error"], "{:?}", run.lines);
    &run.lines[0]
}

#[test]
fn a_corrupted_layer_ends_in_an_integrity_error_event() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(vec![layer(vec![file("a", "some content")])])
        .corrupt(Corruption::LayerBytes(0))
        .build();
    let src = oci_dir(dir.path(), &img, "t");
    let out = dir.path().join("out.tar");
    let run = run_json(&[&src, "-o", out.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    let error = run.lines.last().unwrap();
    assert_eq!(error["code"], "integrity", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&img.layers[0].digest),
        "{error}"
    );
    assert!(!out.exists());
}

#[test]
fn a_missing_tag_is_not_found_in_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(vec![layer(vec![file("a", "x")])]).build();
    let src = oci_dir(dir.path(), &img, "t");
    let missing = format!("{}missing", &src[..src.len() - 1]);
    let run = run_json(&[&missing]);
    assert_eq!(run.code, 1);
    assert_eq!(only_error(&run)["code"], "not-found");
}

#[test]
fn a_missing_tag_is_not_found_in_a_registry() {
    if !require_tools(REGISTRY_TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = image(vec![layer(vec![file("a", "x")])]).build();
    let src = oci_dir(dir.path(), &img, "t");
    let reg = start_registry(dir.path());
    push(&src, &reg.name("events/app:1"), false);
    let run = run_json(&[&reg.name("events/app:missing")]);
    assert_eq!(run.code, 1);
    let error = only_error(&run);
    assert_eq!(error["code"], "not-found", "{error}");
    assert!(error["message"].as_str().unwrap().contains("missing"));
}

/// A registry that wants credentials the run does not have: a loopback server that answers
/// every request with 401 and a Basic challenge.
#[test]
fn a_registry_asking_for_credentials_is_an_auth_error() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let run = run_json(&[&format!("127.0.0.1:{port}/private/app:1")]);
    assert_eq!(run.code, 1);
    let error = only_error(&run);
    assert_eq!(error["code"], "auth", "{error}");
}

#[test]
fn command_line_mistakes_are_usage_errors_and_the_stream_stays_json() {
    // clap refuses this one, with its exit status 2.
    let run = run_json(&["--level", "abc", "oci:x:t"]);
    assert_eq!(run.code, 2);
    assert_eq!(only_error(&run)["code"], "usage");
    // The program refuses this one after parsing.
    let run = run_json(&["--level", "99", "-o", "x.tar.gz", "oci:x:t"]);
    assert_ne!(run.code, 0);
    let error = only_error(&run);
    assert_eq!(error["code"], "usage");
    assert!(
        error["message"].as_str().unwrap().contains("--level"),
        "{error}"
    );
}

#[test]
fn the_documented_examples_follow_the_schema_and_cover_every_event() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/events.md"))
        .unwrap();
    let mut in_json = false;
    let mut seen = BTreeSet::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            in_json = line == "```json";
            continue;
        }
        if in_json && line.starts_with('{') {
            seen.insert(check_line(line));
        }
    }
    let all: BTreeSet<String> = SCHEMA.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(seen, all, "one example per event");
    for code in CODES {
        assert!(
            doc.contains(&format!("`{code}`")),
            "the doc lists code {code}"
        );
    }
}
