//! Running the binary as a user would, and the checks on what a run leaves behind.
//!
//! ```ignore
//! let r = oci2wsl(&["-q", &src]);
//! let listing = r.listing();            // exit 0, stdout is a tar meeting the invariants
//! let r = oci2wsl(&[&src, "-o", out]);
//! r.assert_failure(&["digest"]);        // exit 1, one line on stderr naming the problem
//! ```

use super::image::{image, oci_dir, Layer};
use super::listing::Listing;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A run that takes longer than this is killed (a hang is a failure, not a slow test).
const KILL_AFTER: Duration = Duration::from_secs(120);

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_oci2wsl")
}

/// Runs the binary with `args` and no standard input.
pub fn oci2wsl<S: AsRef<OsStr>>(args: &[S]) -> Run {
    run_with(args, None, None)
}

/// Runs the binary with `args`, feeding `stdin`.
pub fn oci2wsl_stdin<S: AsRef<OsStr>>(args: &[S], stdin: &[u8]) -> Run {
    run_with(args, Some(stdin.to_vec()), None)
}

/// Runs the binary with `args` in the working directory `cwd`.
pub fn oci2wsl_in<S: AsRef<OsStr>>(cwd: &Path, args: &[S]) -> Run {
    run_with(args, None, Some(cwd))
}

/// The binary as every suite but tests/wsl.rs runs it, standard streams piped.
fn command<S: AsRef<OsStr>>(args: &[S], stdin: bool) -> Command {
    let mut cmd = Command::new(bin());
    // These suites test the flattened file system; tests/wsl.rs tests what WSL adds to it.
    cmd.arg("--no-wsl-config")
        .args(args)
        .env("NO_COLOR", "1")
        // Every run downloads afresh; tests/cache.rs tests the layer cache.
        .env("OCI2WSL_NO_CACHE", "1")
        .env_remove("RUST_LOG")
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_with<S: AsRef<OsStr>>(args: &[S], stdin: Option<Vec<u8>>, cwd: Option<&Path>) -> Run {
    let mut cmd = command(args, stdin.is_some());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("spawn oci2wsl");
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        // A broken pipe is fine: the product may stop reading early on an error.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > KILL_AFTER {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Run {
        args: args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect(),
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    }
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "oci2wsl {:?}\nexit code {}\nstderr:\n{}",
            self.args, self.code, self.stderr
        )
    }

    /// Asserts exit code 0.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success\n{}", self.describe());
        self
    }

    /// Asserts this exit code.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "expected exit {code}\n{}", self.describe());
        self
    }

    /// Asserts exit code 1 with a single-line error on stderr containing at least one of
    /// `any_of` (case-insensitive; an empty slice checks only the exit code and the line).
    pub fn assert_failure(&self, any_of: &[&str]) -> &Self {
        self.assert_failure_with(1, any_of)
    }

    /// As [`Run::assert_failure`], for a command line that must change (exit 2): a selector
    /// that names no single image, a usage mistake.
    pub fn assert_usage_failure(&self, any_of: &[&str]) -> &Self {
        self.assert_failure_with(2, any_of)
    }

    fn assert_failure_with(&self, code: i32, any_of: &[&str]) -> &Self {
        self.assert_code(code);
        let text = self.stderr.trim_end();
        assert!(!text.is_empty(), "no error message\n{}", self.describe());
        assert!(
            !text.contains('\n'),
            "the error must be one line\n{}",
            self.describe()
        );
        if !any_of.is_empty() {
            let lower = text.to_lowercase();
            assert!(
                any_of.iter().any(|w| lower.contains(&w.to_lowercase())),
                "stderr should mention one of {any_of:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Asserts that stderr contains every one of `words` (case-insensitive).
    pub fn assert_stderr_has_all(&self, words: &[&str]) -> &Self {
        let lower = self.stderr.to_lowercase();
        for w in words {
            assert!(
                lower.contains(&w.to_lowercase()),
                "stderr should mention {w:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Asserts success, parses stdout as a plain tar and checks the output invariants.
    pub fn listing(&self) -> Listing {
        self.assert_ok();
        let l = Listing::parse(&self.stdout);
        l.assert_invariants();
        l
    }
}

/// The names in `dir`, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts that `dir` holds exactly these names (no output, no temporary file left over).
pub fn assert_dir_holds(dir: &Path, names: &[&str]) {
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(dir_names(dir), want, "contents of {}", dir.display());
}

// ------------------------------------------------------------------------------ shortcuts

/// Builds an image of `layers`, writes it as an OCI layout in a fresh temp dir, flattens it
/// to stdout and returns the listing (success and the invariants asserted).
pub fn flatten(layers: Vec<Layer>) -> Listing {
    let tmp = tempfile::tempdir().unwrap();
    let src = oci_dir(tmp.path(), &image(layers).build(), "t");
    oci2wsl(&["-q", &src]).listing()
}

/// Builds an image of `layers` and flattens it with `-o` into an empty directory,
/// expecting failure: asserts exit 1 with a one-line error, that neither the output nor a
/// temporary file was left, and returns the run for further checks of stderr.
pub fn flatten_fails(layers: Vec<Layer>) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let src = oci_dir(tmp.path(), &image(layers).build(), "t");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("rootfs.tar");
    let r = oci2wsl(&[src.as_str(), "-o", out.to_str().unwrap()]);
    r.assert_failure(&[]);
    assert_dir_holds(&out_dir, &[]);
    r
}

// ------------------------------------------------------------------------------ plain outputs

/// Runs the binary as [`oci2wsl`] does and returns the raw [`Output`], for tests that look
/// at the exit status and the streams themselves.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = command(args, stdin.is_some())
        .spawn()
        .expect("spawn oci2wsl");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        // A broken pipe is fine: the product may stop reading early on an error.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
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

/// Runs the binary, expects exit 1 (the run failed), nothing on stdout and one
/// `oci2wsl: error: ` line; returns stderr.
pub fn flatten_err(args: &[&str]) -> String {
    failed_with(args, 1)
}

/// As [`flatten_err`] for exit 2: the command line is wrong, as the user guide promises.
pub fn usage_err(args: &[&str]) -> String {
    failed_with(args, 2)
}

fn failed_with(args: &[&str], code: i32) -> String {
    let r = oci2wsl(args);
    r.assert_failure_with(code, &[]);
    assert!(
        r.stdout.is_empty(),
        "a failed run wrote {} bytes to stdout",
        r.stdout.len()
    );
    assert!(r.stderr.starts_with("oci2wsl: error: "), "{}", r.stderr);
    r.stderr
}

/// The stand-in `wsl.exe` (tests/wsl-stand-in, a crate of its own), built once per test
/// binary: the `--import` tests run it as `OCI2WSL_WSL_EXE`.
pub fn wsl_stand_in() -> &'static Path {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/wsl-stand-in");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(root.join("tests/wsl-stand-in/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
        target.join("release/wsl-stand-in")
    })
}
