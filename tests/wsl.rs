//! The image config as WSL configuration in the output, `.wsl` files, and `--import` into a
//! stand-in `wsl.exe` (tests/wsl-stand-in, built here) that checks the whole tarball.

mod common;
#[path = "common/wsl_conf_oracle.rs"]
mod wsl_conf_oracle;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\npostgres:x:999:999::/var/lib/postgresql:/bin/bash\n";
const PROFILE: &str = "for i in /etc/profile.d/*.sh; do . \"$i\"; done\n";

fn base_layer(extra: &[Entry]) -> Layer {
    let mut entries = vec![
        dir("etc"),
        file("etc/passwd", PASSWD),
        file("etc/profile", PROFILE),
        dir("usr"),
        dir("usr/bin"),
        file("usr/bin/sh", "#!/bin/false\n").mode(0o755),
    ];
    entries.extend_from_slice(extra);
    layer(entries)
}

fn image_with(config: Value, extra: &[Entry]) -> ImageBuilder {
    image(vec![base_layer(extra)])
        .runtime_config(config)
        .config_field("created", json!("2024-05-06T07:08:09Z"))
}

/// Runs oci2wsl with extra environment variables.
fn oci2wsl(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oci2wsl"));
    cmd.env("OCI2WSL_NO_CACHE", "1");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("OCI2WSL_WSL_EXE")
        // Tests run inside a WSL distribution too; only the interop tests play one.
        .env_remove("WSL_DISTRO_NAME");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs oci2wsl, expects exit 1, no output and a one-line error; returns the error.
fn failure(args: &[&str]) -> String {
    failure_with_code(args, 1)
}

/// A command line that is wrong in itself: exit 2, one error line, which is returned.
fn usage_failure(args: &[&str]) -> String {
    failure_with_code(args, 2)
}

fn failure_with_code(args: &[&str], code: i32) -> String {
    let o = oci2wsl(args, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(o.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

struct Flattened {
    tree: BTreeMap<String, Out>,
    stderr: String,
}

fn flatten(img: &ImageBuilder, extra_args: &[&str]) -> Flattened {
    let tmp = tempfile::tempdir().unwrap();
    let layout = oci_layout(tmp.path(), &img.build(), "t");
    let arg = layout_arg(&layout, "t");
    let mut args = vec![arg.as_str()];
    args.extend_from_slice(extra_args);
    let o = oci2wsl(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    Flattened {
        tree: tree(&o.stdout),
        stderr: stderr(&o),
    }
}

fn text(f: &Flattened, path: &str) -> String {
    String::from_utf8(content_of(&f.tree, path)).unwrap()
}

/// What WSL reads from a generated configuration file, which must parse without a warning.
fn wsl_reads(f: &Flattened, path: &str) -> wsl_conf_oracle::Reading {
    clean_reading(&content_of(&f.tree, path))
}

fn clean_reading(bytes: &[u8]) -> wsl_conf_oracle::Reading {
    let read = wsl_conf_oracle::read(bytes);
    assert!(
        read.warnings.is_empty() && !read.rejected,
        "WSL warns about\n{}\n{:?}",
        String::from_utf8_lossy(bytes),
        read.warnings
    );
    read
}

fn metadata(f: &Flattened) -> Value {
    serde_json::from_str(&text(f, "etc/oci2wsl/image.json")).unwrap()
}

#[test]
fn named_user_env_and_metadata() {
    let img = image_with(
        json!({
            "User": "app",
            "Env": ["PATH=/opt/app/bin:/usr/bin:/bin", "LANG=C.UTF-8", "TRICKY=it's `x` $HOME \"q\"\nline 2", "HOME=/build", "A-B=x"],
            "WorkingDir": "/home/app",
            "Entrypoint": ["/entry.sh"],
            "Cmd": ["serve", "--port", "80"],
            "Labels": {"org.opencontainers.image.version": "1.2"},
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "StopSignal": "SIGINT"
        }),
        &[],
    );
    let f = flatten(&img, &[]);
    let conf = text(&f, "etc/wsl.conf");
    assert!(conf.contains("[user]\ndefault = \"app\"\n"), "{conf}");
    let read = wsl_reads(&f, "etc/wsl.conf");
    assert_eq!(
        read.values,
        [("user.default".to_string(), "app".to_string())]
    );
    for generated in [
        "etc/wsl.conf",
        "etc/profile.d/oci2wsl-env.sh",
        "etc/oci2wsl/image.json",
    ] {
        let e = &f.tree[generated];
        assert_eq!(
            (e.kind, e.mode, e.uid, e.gid),
            ('f', 0o644, 0, 0),
            "{generated}"
        );
        assert_eq!(
            e.mtime, 1714979289,
            "{generated}: the image's creation time"
        );
    }
    assert_eq!(f.tree["etc/profile.d"].kind, 'd');
    // The directory only oci2wsl makes is dated like its files, not 1970.
    let d = &f.tree["etc/oci2wsl"];
    assert_eq!(
        (d.kind, d.mode, d.uid, d.gid, d.mtime),
        ('d', 0o755, 0, 0, 1714979289)
    );

    let m = metadata(&f);
    assert_eq!(m["user"], "app");
    assert_eq!(m["defaultUser"], "app");
    assert_eq!(m["workingDir"], "/home/app");
    assert_eq!(m["entrypoint"], json!(["/entry.sh"]));
    assert_eq!(m["cmd"], json!(["serve", "--port", "80"]));
    assert_eq!(m["labels"]["org.opencontainers.image.version"], "1.2");
    assert_eq!(m["exposedPorts"], json!(["53/udp", "80/tcp"]));
    assert_eq!(m["stopSignal"], "SIGINT");
    assert_eq!(m["platform"], "linux/amd64");
    assert!(m["source"].as_str().unwrap().starts_with("oci:"));
    assert!(m["manifestDigest"].as_str().unwrap().starts_with("sha256:"));
    assert!(m["configDigest"].as_str().unwrap().starts_with("sha256:"));

    // The summary says what was set; names that are not the image's to set are reported.
    assert!(
        f.stderr.contains("default user app (uid 1000)"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("environment variables"), "{}", f.stderr);
    assert!(f.stderr.contains("HOME, A-B"), "{}", f.stderr);

    // The script, run by a real POSIX shell the way a login shell sources it: every value
    // exact, the image's PATH first and WSL's Windows directories kept after it.
    let script = text(&f, "etc/profile.d/oci2wsl-env.sh");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("env.sh");
    fs::write(&path, &script).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". '{}' && printf '%s\\0' \"$PATH\" \"$LANG\" \"$TRICKY\" \"$HOME\"",
            path.display()
        ))
        .env_clear()
        .env(
            "PATH",
            "/usr/bin:/mnt/c/Windows/system32:/mnt/c/Program Files/Git/cmd:/bin",
        )
        .env("HOME", "/home/app")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .map(str::to_string)
        .collect();
    assert_eq!(
        values[0],
        "/opt/app/bin:/usr/bin:/bin:/mnt/c/Windows/system32:/mnt/c/Program Files/Git/cmd"
    );
    assert_eq!(values[1], "C.UTF-8");
    assert_eq!(values[2], "it's `x` $HOME \"q\"\nline 2");
    assert_eq!(
        values[3], "/home/app",
        "HOME is the session's, not the image's"
    );
}

#[test]
fn numeric_users_resolve_through_passwd() {
    for spec in ["1000", "1000:1000", "app:app", "999"] {
        let img = image_with(json!({ "User": spec }), &[]);
        let f = flatten(&img, &[]);
        let want = if spec == "999" { "postgres" } else { "app" };
        assert_eq!(
            wsl_reads(&f, "etc/wsl.conf").get("user.default"),
            Some(want),
            "{spec}"
        );
        assert!(!f.stderr.contains("warning"), "{spec}: {}", f.stderr);
    }
    // A group other than the user's own cannot be carried: said, not fatal.
    let f = flatten(&image_with(json!({ "User": "app:0" }), &[]), &[]);
    assert_eq!(
        wsl_reads(&f, "etc/wsl.conf").get("user.default"),
        Some("app")
    );
    assert!(f.stderr.contains("primary group"), "{}", f.stderr);
}

#[test]
fn user_without_passwd_entry_is_a_warning_not_a_broken_distribution() {
    let f = flatten(&image_with(json!({ "User": "4242:4242" }), &[]), &[]);
    assert!(!f.tree.contains_key("etc/wsl.conf"));
    assert!(
        f.stderr
            .contains("warning: the image's user \"4242\" has no entry in its /etc/passwd"),
        "{}",
        f.stderr
    );
    assert_eq!(metadata(&f)["user"], "4242:4242");
    assert_eq!(metadata(&f)["defaultUser"], Value::Null);
}

#[test]
fn no_user_means_root_and_no_wsl_conf() {
    let f = flatten(&image_with(json!({ "Env": ["X=1"] }), &[]), &[]);
    assert!(!f.tree.contains_key("etc/wsl.conf"));
    assert!(text(&f, "etc/profile.d/oci2wsl-env.sh").contains("export X='1'\n"));
    assert_eq!(metadata(&f)["user"], Value::Null);
    // An image without any config section still gets its metadata, and nothing else.
    let bare = image(vec![base_layer(&[])]).runtime_config(json!({}));
    let f = flatten(&bare, &[]);
    assert!(!f.tree.contains_key("etc/profile.d/oci2wsl-env.sh"));
    assert!(f.tree.contains_key("etc/oci2wsl/image.json"));
}

#[test]
fn the_images_own_wsl_conf_is_merged() {
    let own = "# shipped by the image\n[boot]\nsystemd=true\n\n[network]\nhostname = box\n";
    let f = flatten(
        &image_with(json!({ "User": "app" }), &[file("etc/wsl.conf", own)]),
        &[],
    );
    let conf = text(&f, "etc/wsl.conf");
    assert!(
        conf.contains("# shipped by the image\n[boot]\nsystemd=true\n"),
        "{conf}"
    );
    assert!(conf.contains("[network]\nhostname = box\n"), "{conf}");
    let read = wsl_reads(&f, "etc/wsl.conf");
    assert_eq!(read.get("user.default"), Some("app"));
    assert_eq!(read.get("boot.systemd"), Some("true"));
    assert_eq!(read.get("network.hostname"), Some("box"));

    // An image that names its WSL user keeps it; --user overrides it.
    let own = "[user]\ndefault=postgres\n";
    let img = image_with(json!({ "User": "app" }), &[file("etc/wsl.conf", own)]);
    let f = flatten(&img, &[]);
    assert!(!f.tree.contains_key("etc/oci2wsl/../wsl.conf"));
    assert_eq!(text(&f, "etc/wsl.conf"), own);
    assert!(
        f.stderr.contains("default user postgres kept"),
        "{}",
        f.stderr
    );
    let f = flatten(&img, &["--user", "app"]);
    assert_eq!(
        text(&f, "etc/wsl.conf"),
        "# Keys set by oci2wsl from the image config (see /etc/oci2wsl/image.json)\n[user]\ndefault = \"app\"\n"
    );
    assert_eq!(
        wsl_reads(&f, "etc/wsl.conf").get("user.default"),
        Some("app")
    );
}

#[test]
fn user_flag_must_name_a_user_of_the_image() {
    for flag in ["postgres", "999"] {
        let f = flatten(&image_with(json!({}), &[]), &["--user", flag]);
        assert_eq!(
            wsl_reads(&f, "etc/wsl.conf").get("user.default"),
            Some("postgres")
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let layout = oci_layout(tmp.path(), &image_with(json!({}), &[]).build(), "t");
    let err = failure(&[&layout_arg(&layout, "t"), "--user", "nobody"]);
    assert!(
        err.contains("--user nobody: the image's /etc/passwd has no such user"),
        "{err}"
    );
}

#[test]
fn no_wsl_config_gives_the_plain_file_system() {
    let img = image_with(json!({ "User": "app", "Env": ["X=1"] }), &[]);
    let f = flatten(&img, &["--no-wsl-config"]);
    let names: Vec<&String> = f.tree.keys().collect();
    assert_eq!(
        names,
        [
            "./",
            "etc",
            "etc/passwd",
            "etc/profile",
            "usr",
            "usr/bin",
            "usr/bin/sh"
        ]
    );
    assert!(!f.stderr.contains("WSL:"), "{}", f.stderr);
}

/// Runs a `[boot] command` as WSL does (`/bin/sh -c`), with `program` a stub on `PATH` that
/// prints its working directory and arguments; returns them.
fn run_boot_command(command: &str, program: &str) -> Vec<Vec<u8>> {
    let bin = tempfile::tempdir().unwrap();
    let stub = bin.path().join(program);
    fs::write(
        &stub,
        "#!/bin/sh\nprintf '%s\\0' \"$PWD\"\nfor a; do printf '%s\\0' \"$a\"; done\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = std::ffi::OsString::from(bin.path());
    path.push(":/usr/bin:/bin");
    let o = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PATH", path)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(o.status.success(), "{command}: {}", stderr(&o));
    let mut out: Vec<Vec<u8>> = o.stdout.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    assert_eq!(out.pop(), Some(vec![]), "{command}");
    out
}

fn bytes_of(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn boot_runs_the_entrypoint() {
    let img = image_with(
        json!({ "User": "postgres", "WorkingDir": "/usr/bin",
                "Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["postgres", "-c", "it's"] }),
        &[],
    );
    let f = flatten(&img, &["--boot"]);
    let read = wsl_reads(&f, "etc/wsl.conf");
    let command = read.get("boot.command").unwrap();
    assert_eq!(
        command,
        "cd '/usr/bin' || exit 1; [ ! -r /etc/profile.d/oci2wsl-env.sh ] || . /etc/profile.d/oci2wsl-env.sh; exec 'docker-entrypoint.sh' 'postgres' '-c' 'it'\\''s'"
    );
    assert_eq!(read.get("user.default"), Some("postgres"));
    // WSL runs it with /bin/sh -c: it must parse, and run the right argv.
    assert_eq!(
        run_boot_command(command, "docker-entrypoint.sh"),
        bytes_of(&["/usr/bin", "postgres", "-c", "it's"])
    );
    assert!(f
        .stderr
        .contains("runs [boot] command as root, not as postgres"));

    let tmp = tempfile::tempdir().unwrap();
    let layout = oci_layout(tmp.path(), &image_with(json!({}), &[]).build(), "t");
    let err = failure(&[&layout_arg(&layout, "t"), "--boot"]);
    assert!(
        err.contains("--boot: the image has neither Entrypoint nor Cmd"),
        "{err}"
    );
}

/// A WorkingDir or argument with a line break, `#`, quotes or backslashes cannot add keys or
/// sections to wsl.conf (it used to: `[user] default=root` from a WorkingDir), nor cut the
/// command short; it reaches the program unchanged.
#[test]
fn boot_command_survives_hostile_text() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_str().unwrap();
    let dir = format!("{base}/srv\n[user]\ndefault=root\n[automount]\noptions=umask=000 # x");
    fs::create_dir(&dir).unwrap();
    let args = [
        "it's # not a comment",
        "say \"hi\" \\ C:\\path\\",
        "two\nlines\n[interop]\n",
        "caf\u{e9} \u{4e2d}\u{6587}",
        "cr\rlf\r\n",
        "100% \\141 $HOME `id`",
        "\ttab ",
        "",
    ];
    let mut cmd = vec!["show-args"];
    cmd.extend(args);
    let img = image_with(
        json!({ "User": "postgres", "WorkingDir": dir, "Cmd": cmd }),
        &[],
    );
    let f = flatten(&img, &["--boot"]);
    let read = wsl_reads(&f, "etc/wsl.conf");
    let keys: Vec<&str> = read.values.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["user.default", "boot.command"]);
    assert_eq!(read.get("user.default"), Some("postgres"));
    let mut want = vec![dir.as_str()];
    want.extend(args);
    assert_eq!(
        run_boot_command(read.get("boot.command").unwrap(), "show-args"),
        bytes_of(&want)
    );
    // The summary says what WSL will run.
    assert!(f.stderr.contains("default user postgres"), "{}", f.stderr);

    let layout = oci_layout(
        tmp.path(),
        &image_with(json!({ "Cmd": ["a\u{0}b"] }), &[]).build(),
        "t",
    );
    let err = failure(&[&layout_arg(&layout, "t"), "--boot"]);
    assert!(err.contains("has a NUL character"), "{err}");
}

/// Property: for arbitrary argv and working directories (drawn from the characters that
/// matter to wsl.conf and to sh), what WSL reads from wsl.conf, run by sh, is that argv in
/// that directory.
#[test]
fn boot_command_round_trips_arbitrary_argv() {
    const ALPHABET: &[&str] = &[
        "a",
        "Z",
        "0",
        " ",
        "\t",
        "\n",
        "\r",
        "'",
        "\"",
        "\\",
        "#",
        "%",
        "$",
        "`",
        "=",
        "[",
        "]",
        ";",
        "&",
        "|",
        "*",
        "-",
        "_",
        "\u{e9}",
        "\u{1f600}",
        "\u{7}",
        "\u{8}",
        "\u{7f}",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let tmp = tempfile::tempdir().unwrap();
    for case in 0..12 {
        let mut word = |max: usize| -> String {
            (0..next(max + 1))
                .map(|_| ALPHABET[next(ALPHABET.len())])
                .collect()
        };
        let dir = format!("{}/{case}{}", tmp.path().display(), word(8));
        let argv: Vec<String> = (0..1 + case % 4).map(|_| word(10)).collect();
        fs::create_dir(&dir).unwrap();
        let mut cmd = vec!["show-args".to_string()];
        cmd.extend(argv.iter().cloned());
        let img = image_with(json!({ "WorkingDir": dir, "Cmd": cmd }), &[]);
        let f = flatten(&img, &["--boot"]);
        let read = wsl_reads(&f, "etc/wsl.conf");
        let mut want = vec![dir.as_str()];
        want.extend(argv.iter().map(String::as_str));
        assert_eq!(
            run_boot_command(read.get("boot.command").unwrap(), "show-args"),
            bytes_of(&want),
            "{argv:?} in {dir:?}"
        );
    }
}

/// An image's wsl.conf that repeats a key, or has a line WSL stops at: what we set is what
/// WSL reads, without a warning about our keys.
#[test]
fn merge_follows_wsls_reading_of_the_images_file() {
    let own = "[user]\ndefault = root # the first wins\n[user]\ndefault = app\n";
    let img = image_with(json!({ "Cmd": ["x"] }), &[file("etc/wsl.conf", own)]);
    let f = flatten(&img, &["--user", "postgres", "--boot"]);
    let read = wsl_reads(&f, "etc/wsl.conf");
    assert_eq!(read.get("user.default"), Some("postgres"));
    assert!(read.get("boot.command").is_some());

    let own = "[boot]\nsystemd=true\ncommand = C:\\Windows\n[user]\ndefault=app\n";
    let img = image_with(json!({ "User": "postgres" }), &[file("etc/wsl.conf", own)]);
    let f = flatten(&img, &[]);
    let read = wsl_conf_oracle::read(&content_of(&f.tree, "etc/wsl.conf"));
    assert!(read.rejected, "the image's own bad line stays");
    assert_eq!(read.get("boot.systemd"), Some("true"));
    assert_eq!(read.get("user.default"), Some("postgres"));
    assert!(
        f.stderr.contains("/etc/wsl.conf line 3") && f.stderr.contains("WSL ignores it"),
        "{}",
        f.stderr
    );
}

#[test]
fn generated_files_follow_a_symlinked_etc() {
    let mut img = image(vec![layer(vec![
        dir("private"),
        dir("private/etc"),
        file("private/etc/passwd", PASSWD),
        symlink("etc", "private/etc"),
        file("bin-sh-stand-in", ""),
    ])]);
    img = img.runtime_config(json!({ "User": "app", "Env": ["X=1"] }));
    let f = flatten(&img, &[]);
    assert_eq!(f.tree["etc"].kind, 'l');
    assert_eq!(
        wsl_reads(&f, "private/etc/wsl.conf").get("user.default"),
        Some("app")
    );
    assert!(f.tree.contains_key("private/etc/oci2wsl/image.json"));
    assert_eq!(f.tree["private/etc/oci2wsl"].kind, 'd');
    assert!(f.tree.contains_key("private/etc/profile.d/oci2wsl-env.sh"));
    assert!(!f.tree.keys().any(|k| k.starts_with("etc/")));
}

#[test]
fn hostile_passwd_links_end_in_a_warning() {
    // /etc/passwd as a symlink loop, and as a link out of the image: neither is followed
    // on the host, neither hangs; the user is just not found.
    for (passwd, other) in [
        (
            symlink("etc/passwd", "passwd2"),
            symlink("etc/passwd2", "/etc/passwd"),
        ),
        (
            symlink("etc/passwd", "/../../../../etc/passwd"),
            dir("unused"),
        ),
    ] {
        let mut img = image(vec![layer(vec![dir("etc"), passwd, other])]);
        img = img.runtime_config(json!({ "User": "root" }));
        let f = flatten(&img, &[]);
        assert!(!f.tree.contains_key("etc/wsl.conf"));
        assert!(
            f.stderr.contains("has no entry in its /etc/passwd"),
            "{}",
            f.stderr
        );
    }
}

#[test]
fn wsl_file_has_a_distribution_conf() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = oci_layout(
        tmp.path(),
        &image_with(json!({ "User": "app" }), &[]).build(),
        "t",
    );
    let out = tmp.path().join("my app.wsl");
    let o = oci2wsl(
        &[&layout_arg(&layout, "t"), "-o", out.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(&out).unwrap();
    assert_eq!(&bytes[..2], [0x1f, 0x8b], "a .wsl file is a gzip tar");
    let t = tree(&gunzip(&bytes));
    let read = clean_reading(&content_of(&t, "etc/wsl-distribution.conf"));
    assert_eq!(read.get("oobe.defaultUid"), Some("1000"));
    assert_eq!(read.get("oobe.defaultName"), Some("my-app"));
    assert_eq!(read.get("shortcut.enabled"), Some("true"));
    assert_eq!(read.get("windowsterminal.enabled"), Some("true"));
    clean_reading(&content_of(&t, "etc/wsl.conf"));
    assert!(stderr(&o).contains("/etc/wsl-distribution.conf (name my-app, uid 1000)"));
    // Other outputs do not get one.
    let f = flatten(&image_with(json!({ "User": "app" }), &[]), &[]);
    assert!(!f.tree.contains_key("etc/wsl-distribution.conf"));
}

#[test]
fn a_wsl_files_name_can_be_chosen_and_its_conf_is_never_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let own = "[oobe]\ndefaultName = ImagesOwn\n";
    let img = image_with(
        json!({ "User": "app" }),
        &[file("etc/wsl-distribution.conf", own)],
    );
    let layout = layout_arg(&oci_layout(tmp.path(), &img.build(), "t"), "t");
    let out = tmp.path().join("x.wsl");
    let out = out.to_str().unwrap();
    let name_in = |extra: &[&str]| {
        let mut args = vec![layout.as_str(), "-o", out, "--force"];
        args.extend_from_slice(extra);
        let o = oci2wsl(&args, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let t = tree(&gunzip(&fs::read(out).unwrap()));
        clean_reading(&content_of(&t, "etc/wsl-distribution.conf"))
            .get("oobe.defaultName")
            .map(str::to_string)
    };
    // The image's own name is kept over the file's name; --distribution-name wins.
    assert_eq!(name_in(&[]).as_deref(), Some("ImagesOwn"));
    assert_eq!(
        name_in(&["--distribution-name", "Pg.Server"]).as_deref(),
        Some("Pg.Server")
    );
    for (args, want) in [
        (
            vec!["--distribution-name", "two words"],
            "--distribution-name: \"two words\" is not a valid WSL distribution name",
        ),
        (
            vec!["--no-wsl-config"],
            "--no-wsl-config: a .wsl file needs /etc/wsl-distribution.conf",
        ),
    ] {
        let mut all = vec![layout.as_str(), "-o", out, "--force"];
        all.extend(args);
        assert!(usage_failure(&all).contains(want), "{all:?}");
    }
    let err = usage_failure(&[&layout, "--distribution-name", "pg"]);
    assert!(
        err.contains("only a .wsl file (-o NAME.wsl) carries a distribution name"),
        "{err}"
    );
}

// ------------------------------------------------------------------ --import

struct Wsl {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    local: PathBuf,
    layout: String,
}

impl Wsl {
    fn new(img: &ImageBuilder) -> Wsl {
        let tmp = tempfile::tempdir().unwrap();
        let layout = layout_arg(
            &oci_layout(&tmp.path().join("image"), &img.build(), "t"),
            "t",
        );
        let state = tmp.path().join("wsl state");
        let local = tmp.path().join("Local App Data ü");
        Wsl {
            _tmp: tmp,
            state,
            local,
            layout,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], extra: &[(&str, &Path)]) -> Output {
        let mut envs: Vec<(&str, &Path)> = vec![
            ("OCI2WSL_WSL_EXE", wsl_stand_in()),
            ("WSL_STAND_IN_DIR", &self.state),
            ("LOCALAPPDATA", &self.local),
        ];
        envs.extend_from_slice(extra);
        oci2wsl(args, &envs)
    }

    fn calls(&self) -> Vec<Vec<String>> {
        fs::read_to_string(self.state.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    fn imports(&self) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter(|c| c[0] == "--import")
            .collect()
    }

    fn record(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.state.join("distros").join(name)).ok()
    }

    fn received(&self, name: &str) -> Vec<u8> {
        fs::read(self.state.join(format!("{name}.tar"))).unwrap()
    }
}

fn example_image() -> ImageBuilder {
    image_with(json!({ "User": "app", "Env": ["X=1"] }), &[])
}

#[test]
fn import_streams_the_tar_into_wsl() {
    let wsl = Wsl::new(&example_image());
    let o = wsl.run(&[&wsl.layout, "--import", "pg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = wsl.local.join("Wsl").join("pg");
    assert_eq!(
        wsl.imports(),
        [vec!["--import", "pg", dir.to_str().unwrap(), "-"]]
    );
    // The name was checked first.
    assert_eq!(wsl.calls()[0], ["--list", "--quiet"]);
    assert!(dir.is_dir());
    // WSL received exactly what -o would have written, plain tar, and checked all of it.
    let direct = oci2wsl(&[&wsl.layout], &[]);
    assert_eq!(wsl.received("pg"), direct.stdout);
    let t = tree(&wsl.received("pg"));
    assert!(content_of(&t, "etc/wsl.conf").starts_with(b"#"));
    assert_eq!(
        clean_reading(&content_of(&t, "etc/wsl.conf")).get("user.default"),
        Some("app")
    );
    assert!(wsl.record("pg").unwrap().contains("version=default"));
    let err = stderr(&o);
    assert!(err.contains("-> wsl --import pg"), "{err}");
    assert!(err.contains("imported as WSL distribution pg"), "{err}");
    assert!(
        err.contains("The operation completed successfully."),
        "{err}"
    );
}

/// After an import, the image's own command is one copy-paste away.
#[test]
fn import_tells_how_to_start_the_images_command() {
    let img = image_with(
        json!({ "WorkingDir": "/srv", "Entrypoint": ["serve"], "Cmd": ["--port", "80"],
                "ExposedPorts": {"80/tcp": {}} }),
        &[],
    );
    let wsl = Wsl::new(&img);
    let o = wsl.run(&[&wsl.layout, "--import", "web"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("  the image's command: wsl -d web --cd /srv -- serve --port 80; it listens on 80/tcp (WSL 2 forwards localhost ports to Windows); --boot would start it with the distribution\n"),
        "{}",
        stderr(&o)
    );
    // Without a command there is nothing to say.
    let wsl = Wsl::new(&example_image());
    let o = wsl.run(&[&wsl.layout, "--import", "plain"]);
    assert!(
        !stderr(&o).contains("the image's command"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn import_from_a_written_file_with_version_and_directory() {
    let wsl = Wsl::new(&example_image());
    let out = wsl
        .local
        .parent()
        .unwrap()
        .join("out dir é/pg.rootfs.tar.gz");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let dir = wsl.local.join("deep/er/Distros ü/pg");
    let o = wsl.run(&[
        &wsl.layout,
        "-o",
        out.to_str().unwrap(),
        "--import",
        "pg-16",
        "--install-dir",
        dir.to_str().unwrap(),
        "--wsl-version",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        wsl.imports(),
        [vec![
            "--import",
            "pg-16",
            dir.to_str().unwrap(),
            out.to_str().unwrap(),
            "--version",
            "2"
        ]]
    );
    let record = wsl.record("pg-16").unwrap();
    assert!(record.contains("version=2"), "{record}");
    // The file stays, and WSL read the same bytes.
    assert_eq!(wsl.received("pg-16"), gunzip(&fs::read(&out).unwrap()));
}

#[test]
fn an_existing_name_is_refused_before_the_image_is_read() {
    let wsl = Wsl::new(&example_image());
    assert!(wsl.run(&[&wsl.layout, "--import", "pg"]).status.success());
    // Any case: WSL's names are case-insensitive. The image does not even exist.
    let o = wsl.run(&["oci:/nonexistent/layout", "--import", "PG"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(
        err.trim_end(),
        "oci2wsl: error: --import PG: a WSL distribution named PG already exists (wsl --unregister PG removes it)"
    );
    assert_eq!(wsl.imports().len(), 1);
}

#[test]
fn wsl_errors_are_relayed_and_nothing_stays_registered() {
    let wsl = Wsl::new(&example_image());
    let o = wsl.run_env(
        &[&wsl.layout, "--import", "pg"],
        &[(
            "WSL_STAND_IN_FAIL",
            Path::new("The operation ran out of disk space.\nError code: Wsl/Service/RegisterDistro/ERROR_DISK_FULL"),
        )],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "oci2wsl: error: wsl --import pg failed (exit 1): The operation ran out of disk space. Error code: Wsl/Service/RegisterDistro/ERROR_DISK_FULL"
    );
    assert!(wsl.record("pg").is_none());
}

#[test]
fn wsl_failing_mid_stream_is_relayed_not_a_broken_pipe() {
    let big: String = "0123456789abcdef".repeat(1 << 16);
    let wsl = Wsl::new(&image_with(json!({}), &[file("big", &big)]));
    let o = wsl.run_env(
        &[&wsl.layout, "--import", "pg"],
        &[("WSL_STAND_IN_FAIL_AFTER", Path::new("10000"))],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        "oci2wsl: error: wsl --import pg failed (exit 1): bsdtar: Write failed: No space left on device Error code: Wsl/Service/RegisterDistro/0x8007006e"
    );
    assert!(wsl.record("pg").is_none());
}

/// Whether process `pid` still runs: it exists and is not a zombie (which has ended but
/// waits for its parent, here whoever adopted it after oci2wsl exited).
#[cfg(target_os = "linux")]
fn process_is_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !matches!(rest.trim_start().chars().next(), Some('Z' | 'X'))),
        Err(_) => false,
    }
}

/// SIGTERM while WSL reads the stream: oci2wsl exits 130 and kills the import first, so WSL
/// never sees an end of input (a tar cut at an entry boundary could pass for a whole one).
#[cfg(target_os = "linux")]
#[test]
fn interrupted_streaming_import_is_killed_not_ended() {
    let big: String = "0123456789abcdef".repeat(1 << 18);
    let wsl = Wsl::new(&image_with(json!({}), &[file("big", &big)]));
    let child = Command::new(env!("CARGO_BIN_EXE_oci2wsl"))
        .env("OCI2WSL_NO_CACHE", "1")
        .args([&wsl.layout, "--import", "pg"])
        .env("OCI2WSL_WSL_EXE", wsl_stand_in())
        .env("WSL_STAND_IN_DIR", &wsl.state)
        .env("LOCALAPPDATA", &wsl.local)
        .env("WSL_STAND_IN_SLOW", "1")
        .env_remove("WSL_DISTRO_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while wsl.imports().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the import never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    // Once the stand-in has ended, it never read an end of input, and registered nothing.
    let pid: u32 = fs::read_to_string(wsl.state.join("pg.pid"))
        .unwrap()
        .parse()
        .unwrap();
    while process_is_running(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed import is still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !wsl.state.join("pg.eof").exists(),
        "WSL saw a clean end of input"
    );
    assert!(wsl.record("pg").is_none());
}

/// A WSL that is missing, switched off or failing is reported before the image is read
/// (here it does not even exist), in one line that says which and what to do.
#[test]
fn a_missing_or_broken_wsl_is_reported_before_the_download() {
    let wsl = Wsl::new(&example_image());
    for (state, want) in [
        ("not-installed", "--import pg: WSL is not installed (`wsl --install` in an administrator prompt installs it); "),
        ("not-enabled", "--import pg: WSL is installed but not enabled (`wsl --install` enables it, then restart Windows); "),
        ("Catastrophic failure\nError code: Wsl/Service/E_UNEXPECTED", "--import pg: WSL is not working: "),
    ] {
        let o = wsl.run_env(
            &["oci:/nonexistent/layout", "--import", "pg"],
            &[("WSL_STAND_IN_BROKEN", Path::new(state))],
        );
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{state}: {err}");
        let said = state.lines().next().unwrap();
        if !said.contains('-') {
            assert!(err.contains(said), "WSL's own words: {err}");
        }
    }
    assert!(wsl.imports().is_empty());
}

#[test]
fn a_bad_image_never_starts_an_import() {
    let img = example_image().corrupt(Corruption::BlobByte(0));
    let wsl = Wsl::new(&img);
    let o = wsl.run(&[&wsl.layout, "--import", "pg"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("digest"), "{}", stderr(&o));
    assert!(wsl.imports().is_empty(), "{:?}", wsl.calls());
}

#[test]
fn import_arguments_are_checked() {
    let wsl = Wsl::new(&example_image());
    for (name, want) in [
        ("my distro", "is not a valid WSL distribution name"),
        ("Legacy", "a name WSL reserves"),
    ] {
        let o = wsl.run(&[&wsl.layout, "--import", name]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
    let o = oci2wsl(
        &[&wsl.layout, "--import", "pg"],
        &[("OCI2WSL_WSL_EXE", Path::new("/nonexistent/wsl.exe"))],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("WSL is not installed: there is no /nonexistent/wsl.exe (`wsl --install`"),
        "{}",
        stderr(&o)
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oci2wsl"));
    cmd.env("OCI2WSL_NO_CACHE", "1");
    let o = cmd
        .args([&wsl.layout, "--import", "pg"])
        .env("OCI2WSL_WSL_EXE", wsl_stand_in())
        .env("WSL_STAND_IN_DIR", &wsl.state)
        .env_remove("LOCALAPPDATA")
        .env_remove("WSL_DISTRO_NAME")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--install-dir is needed"),
        "{}",
        stderr(&o)
    );
    let o = wsl.run(&[&wsl.layout, "--import", "pg", "--wsl-version", "3"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses it");
    assert!(wsl.imports().is_empty());
}

#[test]
fn listing_in_utf16_is_understood() {
    // WSL before 0.64 ignores WSL_UTF8 and lists names in UTF-16LE.
    let wsl = Wsl::new(&example_image());
    assert!(wsl
        .run(&[&wsl.layout, "--import", "first"])
        .status
        .success());
    let utf16 = Path::new("1");
    let o = wsl.run_env(
        &[&wsl.layout, "--import", "first"],
        &[("WSL_STAND_IN_UTF16", utf16)],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("named first already exists"),
        "{}",
        stderr(&o)
    );
    let listed = Command::new(wsl_stand_in())
        .args(["--list", "--quiet"])
        .env("WSL_STAND_IN_DIR", &wsl.state)
        .env("WSL_STAND_IN_UTF16", "1")
        .output()
        .unwrap();
    assert_eq!(
        &listed.stdout[..4],
        b"f\0i\0",
        "the stand-in really spoke UTF-16"
    );
}

// ------------------------------------------------------------------ --import inside WSL

/// A WSL distribution's view of Windows: drive C: is the directory `c` under `windows`,
/// and `bin` holds stand-ins for what interop puts on PATH: `cmd.exe` (which answers
/// `%LOCALAPPDATA%` as `cmd /u` does, in UTF-16LE, and logs its arguments) and `wslpath`
/// (which maps between the two spellings, and fails when `WSLPATH_FAIL` is set).
#[cfg(unix)]
struct Interop {
    windows: PathBuf,
    bin: PathBuf,
}

#[cfg(unix)]
const WINDOWS_LOCAL_APP_DATA: &str = "C:\\Users\\J\u{f6}rg\\AppData\\Local";

#[cfg(unix)]
impl Interop {
    fn new(wsl: &Wsl, with_cmd: bool) -> Interop {
        let root = wsl.state.parent().unwrap();
        let windows = root.join("windows");
        let bin = root.join(if with_cmd { "bin" } else { "bin-no-cmd" });
        fs::create_dir_all(windows.join("c/Users/J\u{f6}rg/AppData/Local")).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let script = |name: &str, text: String| {
            let path = bin.join(name);
            fs::write(&path, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        };
        let root = windows.to_str().unwrap();
        script(
            "wslpath",
            format!(
                r#"#!/bin/sh
root='{root}'
if [ -n "$WSLPATH_FAIL" ]; then echo "wslpath: $2: $WSLPATH_FAIL" >&2; exit 1; fi
case "$1" in
-u) drive=$(printf %s "$2" | cut -c1 | tr A-Z a-z)
    printf '%s%s\n' "$root/$drive" "$(printf %s "$2" | cut -c3- | tr '\\' /)" ;;
-w) case "$2" in
    "$root"/?/*) rest=${{2#"$root"/}}
        printf '%s:%s\n' "$(printf %s "$rest" | cut -c1 | tr a-z A-Z)" "$(printf %s "$rest" | cut -c2- | tr / '\\')" ;;
    *) printf '\\\\wsl.localhost\\Test%s\n' "$(printf %s "$2" | tr / '\\')" ;;
    esac ;;
*) echo "wslpath: bad option $1" >&2; exit 1 ;;
esac
"#
            ),
        );
        if with_cmd {
            let answer: Vec<u8> = format!("{WINDOWS_LOCAL_APP_DATA}\r\n")
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes())
                .collect();
            fs::write(bin.join("echo.out"), answer).unwrap();
            let bin_dir = bin.to_str().unwrap();
            script(
                "cmd.exe",
                format!(
                    r#"#!/bin/sh
printf '%s\n' "$*" >> '{bin_dir}/cmd.log'
echo "'\\wsl.localhost\Test\tmp' CMD.EXE was started with the above path as the current directory. UNC paths are not supported." >&2
cat '{bin_dir}/echo.out'
"#
                ),
            );
        }
        Interop { windows, bin }
    }

    fn run(&self, wsl: &Wsl, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let path = format!("{}:/usr/bin:/bin", self.bin.display());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oci2wsl"));
        cmd.env("OCI2WSL_NO_CACHE", "1");
        cmd.args(args)
            .stdin(Stdio::null())
            .env("OCI2WSL_WSL_EXE", wsl_stand_in())
            .env("WSL_STAND_IN_DIR", &wsl.state)
            .env("WSL_STAND_IN_WINDOWS_ROOT", &self.windows)
            .env("WSL_DISTRO_NAME", "Test")
            .env("PATH", path)
            .env_remove("LOCALAPPDATA")
            .env_remove("WSLPATH_FAIL");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

#[cfg(unix)]
#[test]
fn inside_wsl_the_default_install_dir_comes_from_windows() {
    let wsl = Wsl::new(&example_image());
    let interop = Interop::new(&wsl, true);
    let o = interop.run(&wsl, &[&wsl.layout, "--import", "pg"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let windows_dir = format!("{WINDOWS_LOCAL_APP_DATA}\\Wsl\\pg");
    assert_eq!(wsl.imports(), [vec!["--import", "pg", &windows_dir, "-"]]);
    // The parent was made where Windows will look for it, and WSL put its disk there.
    let ours = interop
        .windows
        .join("c/Users/J\u{f6}rg/AppData/Local/Wsl/pg");
    assert!(ours.join("ext4.vhdx").is_file());
    assert_eq!(
        fs::read_to_string(interop.bin.join("cmd.log")).unwrap(),
        "/u /c echo %LOCALAPPDATA%\n"
    );
    assert!(
        stderr(&o).contains(&format!("in {windows_dir}")),
        "{}",
        stderr(&o)
    );
}

#[cfg(unix)]
#[test]
fn inside_wsl_a_written_file_and_our_install_dir_are_handed_over_as_windows_paths() {
    let wsl = Wsl::new(&example_image());
    let interop = Interop::new(&wsl, true);
    let out = interop.windows.join("c/out dir/pg.rootfs.tar");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let dir = interop.windows.join("c/WSL Distros/deep/pg");
    let o = interop.run(
        &wsl,
        &[
            &wsl.layout,
            "-o",
            out.to_str().unwrap(),
            "--import",
            "pg",
            "--install-dir",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        wsl.imports(),
        [vec![
            "--import",
            "pg",
            "C:\\WSL Distros\\deep\\pg",
            "C:\\out dir\\pg.rootfs.tar"
        ]]
    );
    assert!(dir.join("ext4.vhdx").is_file());
    assert_eq!(wsl.received("pg"), fs::read(&out).unwrap());
    // A Windows path is handed over as it is.
    let o = interop.run(
        &wsl,
        &[
            &wsl.layout,
            "--import",
            "pg2",
            "--install-dir",
            "C:\\WSL Distros\\pg2",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(wsl.imports()[1][2], "C:\\WSL Distros\\pg2");
}

/// Without cmd.exe or a working wslpath, one line says what failed and what to pass.
#[cfg(unix)]
#[test]
fn inside_wsl_missing_interop_tools_name_the_way_around() {
    let wsl = Wsl::new(&example_image());
    let no_cmd = Interop::new(&wsl, false);
    let one_line = |o: &Output| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
        let err = stderr(o);
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let err = one_line(&no_cmd.run(&wsl, &[&wsl.layout, "--import", "pg"], &[]));
    assert!(err.contains("--import pg: --install-dir is needed: inside WSL the default %LOCALAPPDATA%\\Wsl\\pg comes from Windows, and cannot run cmd.exe"), "{err}");
    let with_cmd = Interop::new(&wsl, true);
    let broken = [("WSLPATH_FAIL", "Invalid argument")];
    let err = one_line(&with_cmd.run(&wsl, &[&wsl.layout, "--import", "pg"], &broken));
    assert!(err.contains("wslpath -u C:\\Users\\J\u{f6}rg\\AppData\\Local failed (exit 1): wslpath: C:\\Users\\J\u{f6}rg\\AppData\\Local: Invalid argument; pass --install-dir as a Windows path"), "{err}");
    let out = with_cmd.windows.join("c/pg.tar");
    let err = one_line(&with_cmd.run(
        &wsl,
        &[
            &wsl.layout,
            "-o",
            out.to_str().unwrap(),
            "--import",
            "pg",
            "--install-dir",
            "C:\\pg",
        ],
        &broken,
    ));
    assert!(err.contains("wsl.exe needs a Windows path to "), "{err}");
    assert!(
        err.contains("leave out -o to stream the image into WSL instead"),
        "{err}"
    );
    assert!(wsl.imports().is_empty());
    // What the errors suggest works: a Windows --install-dir needs neither cmd.exe nor
    // wslpath, and streaming needs no path for the file.
    let o = no_cmd.run(
        &wsl,
        &[&wsl.layout, "--import", "pg", "--install-dir", "C:\\pg"],
        &broken,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(wsl.imports(), [vec!["--import", "pg", "C:\\pg", "-"]]);
}
