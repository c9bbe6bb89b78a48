//! The progress display as a user sees it: the real binary in a tmux pane, its screen
//! captured while it reads, while it writes, after a resize, after Ctrl-C, and at the end.
//!
//! The run is paced by the test: the image's only layer blob is a FIFO that a thread of the
//! test feeds. The layer is read twice (the index pass, then the emit pass), and the feeder
//! stops half-way through each reading until the test has looked at the screen, so every
//! phase is on screen when it is captured, whatever the speed of the machine.
#![cfg(unix)]

mod common;
use common::*;

use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LAYER_MIB: usize = 8;
const PAUSE_AT: usize = 5 << 20;

/// Content that does not compress, so the written size grows with the tar.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Paced {
    _dir: tempfile::TempDir,
    image: String,
    out: PathBuf,
    /// A message per pause: which reading of the layer (0 = index pass, 1 = emit pass),
    /// plus 10 once that reading is complete.
    paused: mpsc::Receiver<usize>,
    resume: mpsc::Sender<()>,
}

/// An OCI layout whose one uncompressed layer is a FIFO fed by a thread that pauses at
/// [`PAUSE_AT`] bytes of each reading, and after each reading, until told to go on.
fn paced_image() -> Paced {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tar = encode_tar(&[file("data/noise.bin", noise(LAYER_MIB << 20))]);
    let layer_hex = format!("{:x}", Sha256::digest(&tar));
    let fifo = blobs.join(&layer_hex);
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let write_blob = |data: &[u8]| {
        let hex = format!("{:x}", Sha256::digest(data));
        fs::write(blobs.join(&hex), data).unwrap();
        hex
    };
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{layer_hex}"]}}}}"#,
        host_platform().arch
    );
    let config_hex = write_blob(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_hex}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_hex}","size":{}}}]}}"#,
        config.len(),
        tar.len()
    );
    let manifest_hex = write_blob(manifest.as_bytes());
    fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_hex}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"t"}}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();

    let (paused_tx, paused) = mpsc::channel();
    let (resume, resume_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for reading in 0.. {
            // Blocks until oci2wsl opens the blob; the thread dies with the test process.
            let Ok(mut fifo) = fs::OpenOptions::new().write(true).open(&fifo) else {
                return;
            };
            for (i, chunk) in tar.chunks(64 << 10).enumerate() {
                if i * (64 << 10) == PAUSE_AT
                    && (paused_tx.send(reading).is_err() || resume_rx.recv().is_err())
                {
                    return;
                }
                // The emit pass stops reading after the last file it needs.
                if fifo.write_all(chunk).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(fifo);
            // A writer that opened the FIFO again before the reader saw the end would
            // extend this reading: wait until the test has seen the next phase begin.
            if paused_tx.send(reading + 10).is_err() || resume_rx.recv().is_err() {
                return;
            }
        }
    });
    Paced {
        image: format!("oci:{}:t", layout.display()),
        out: dir.path().join("out.tar.gz"),
        _dir: dir,
        paused,
        resume,
    }
}

/// A tmux server of its own (so the user's sessions are never touched) with one pane.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(columns: u16, rows: u16) -> Tmux {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Tmux {
            socket: format!("oci2wsl-test-{}-{n}", std::process::id()),
        };
        let status = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &columns.to_string(), "-y", &rows.to_string()])
            .args([
                "env",
                "-i",
                "PATH=/usr/bin:/bin",
                "TERM=xterm-256color",
                "PS1=$ ",
            ])
            .args(["sh"])
            .status()
            .unwrap();
        assert!(status.success());
        tmux
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {:?}", out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn type_line(&self, line: &str) {
        self.tmux(&["send-keys", "-l", line]);
        self.tmux(&["send-keys", "Enter"]);
    }

    /// The visible screen and the scrollback, as plain text.
    fn capture(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-200"])
    }

    /// Captures until `want` holds of the screen, and returns that screen; fails after a
    /// minute (a hang, not a slow machine).
    fn wait_for(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.capture();
            if want(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn start_run(tmux: &Tmux, paced: &Paced) {
    start_run_with(tmux, paced, &format!("-o '{}'", paced.out.display()));
}

/// `output`: the command line's output part, as the shell takes it.
fn start_run_with(tmux: &Tmux, paced: &Paced, output: &str) {
    // `"EXIT""=…"`: the typed command never matches what the finished run prints.
    tmux.type_line(&format!(
        "'{}' '{}' {output}; echo \"EXIT\"\"=$?\"",
        env!("CARGO_BIN_EXE_oci2wsl"),
        paced.image,
    ));
}

/// The screen row that holds the bar of `stage`, if one does.
fn bar_row<'a>(screen: &'a str, stage: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{stage} [")))
}

/// A bar's count (`4.0 MiB/8.0 MiB`) is more than nothing and less than its total.
fn count_inside_the_total(row: &str) -> bool {
    let Some((_, figures)) = row.split_once("] ") else {
        return false;
    };
    let Some((done, total)) = figures.split_once('/') else {
        return false;
    };
    done.trim() != "0 B" && !total.starts_with(done.trim())
}

/// Bars are gone: no row holds a stage's bar, or a piece of one.
fn assert_no_bar_left(screen: &str) {
    for stage in ["reading", "downloading", "writing"] {
        assert!(
            bar_row(screen, stage).is_none(),
            "{stage} bar left:\n{screen}"
        );
    }
    assert!(
        !screen.lines().any(|l| l.contains("=>") || l.contains("] ")),
        "a piece of a bar left:\n{screen}"
    );
}

/// A bar fits its row: it starts and ends on it, and carries its figures.
fn assert_fits(screen: &str, stage: &str, columns: usize) {
    let row = bar_row(screen, stage).unwrap_or_else(|| panic!("no {stage} bar:\n{screen}"));
    assert!(row.contains(']'), "the {stage} bar wrapped:\n{screen}");
    assert!(row.trim_end().len() <= columns, "{row}");
    assert!(row.contains('%') || row.contains("MiB"), "{row}");
}

/// The first frames never claim a rate or a time left before there is one.
fn assert_no_empty_estimates(screen: &str) {
    assert!(!screen.contains("0 B/s"), "{screen}");
    assert!(!screen.contains("eta 0s"), "{screen}");
}

fn assert_summary(screen: &str) {
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains(" -> "), "{screen}");
    assert!(screen.contains("  platform "), "{screen}");
    assert!(screen.contains("  manifest digest  sha256:"), "{screen}");
    assert!(screen.contains("  1 layer, "), "{screen}");
}

impl Paced {
    /// The next pause of the feeder; fails with the screen after a minute (a hang, not a
    /// slow machine), so a run that stops never hangs the suite.
    fn pause(&self, tmux: &Tmux) -> usize {
        self.paused
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!(
                    "the image's feeder never paused ({e}); the screen:\n{}",
                    tmux.capture()
                )
            })
    }

    fn go_on(&self, tmux: &Tmux) {
        if self.resume.send(()).is_err() {
            panic!(
                "the image's feeder is gone; the screen:\n{}",
                tmux.capture()
            );
        }
    }
}

/// What a test does to the pane besides the run.
#[derive(Default)]
struct Actions<'a> {
    /// Before the run is typed.
    before: Option<&'a dyn Fn(&Tmux)>,
    /// While the index pass is held half-way.
    reading: Option<&'a dyn Fn(&Tmux)>,
    /// While the emit pass is held half-way.
    writing: Option<&'a dyn Fn(&Tmux)>,
}

fn act(action: Option<&dyn Fn(&Tmux)>, tmux: &Tmux) {
    if let Some(action) = action {
        action(tmux);
    }
}

/// Runs the paced image to its end in a pane of `columns`, checking the screen in both
/// passes, and returns the final screen.
fn full_run(columns: u16, actions: Actions) -> String {
    let tmux = Tmux::start(columns, 30);
    let paced = paced_image();
    act(actions.before, &tmux);
    start_run(&tmux, &paced);

    assert_eq!(paced.pause(&tmux), 0);
    let screen = tmux.wait_for("the reading bar", |s| bar_row(s, "reading").is_some());
    assert_fits(&screen, "reading", columns as usize);
    assert_no_empty_estimates(&screen);
    act(actions.reading, &tmux);
    paced.go_on(&tmux);
    assert_eq!(paced.pause(&tmux), 10);
    tmux.wait_for("the writing bar", |s| bar_row(s, "writing").is_some());
    paced.go_on(&tmux);

    assert_eq!(paced.pause(&tmux), 1);
    let screen = tmux.wait_for("the writing bar", |s| bar_row(s, "writing").is_some());
    assert_fits(&screen, "writing", columns as usize);
    assert!(bar_row(&screen, "reading").is_none(), "{screen}");
    act(actions.writing, &tmux);
    paced.go_on(&tmux);

    let screen = tmux.wait_for("the end of the run", |s| s.contains("EXIT="));
    assert_summary(&screen);
    assert_no_bar_left(&screen);
    screen
}

fn shrink_to_50(tmux: &Tmux) {
    tmux.tmux(&["resize-window", "-x", "50"]);
}

/// A terminal in use: the prompt, and so the bars, at the bottom of the screen.
fn fill_the_screen(tmux: &Tmux) {
    tmux.type_line("seq 40");
    tmux.wait_for("the screen filled", |s| s.lines().any(|l| l == "40"));
}

#[test]
fn wide_terminal_shows_reading_then_writing_then_the_summary() {
    if !require_tools(&["tmux"]) {
        return;
    }
    let screen = full_run(120, Actions::default());
    // The summary's rows are short: a digest and its label fit in 80 columns.
    for row in screen.lines().filter(|l| l.starts_with("  ")) {
        assert!(row.len() <= 90, "{row}");
    }
}

#[test]
fn fifty_columns_fit_every_bar() {
    if !require_tools(&["tmux"]) {
        return;
    }
    full_run(50, Actions::default());
}

/// As the reading case below: the terminal in use, the bars at its bottom. From an empty
/// screen tmux may push the first row the reflow adds into the scrollback, where no redraw
/// reaches it (seen once in a full-suite run; the user guide, "Messages and exit codes", says so).
#[test]
fn a_resize_while_writing_leaves_no_fragments() {
    if !require_tools(&["tmux"]) {
        return;
    }
    full_run(
        120,
        Actions {
            before: Some(&fill_the_screen),
            writing: Some(&shrink_to_50),
            ..Actions::default()
        },
    );
}

/// Two lines (a layer's and the stage's), each reflowed into three rows by the shrink.
/// With the bars near the top of an empty screen tmux pushes the top rows the reflow adds
/// into the scrollback, out of reach of any redraw (see `BarTerminal`): this is the
/// terminal in use, the bars at its bottom.
#[test]
fn a_resize_while_reading_leaves_no_fragments() {
    if !require_tools(&["tmux"]) {
        return;
    }
    full_run(
        120,
        Actions {
            before: Some(&fill_the_screen),
            reading: Some(&shrink_to_50),
            ..Actions::default()
        },
    );
}

#[test]
fn ctrl_c_clears_the_bars_before_the_interrupted_line() {
    if !require_tools(&["tmux"]) {
        return;
    }
    let tmux = Tmux::start(100, 30);
    let paced = paced_image();
    start_run(&tmux, &paced);
    assert_eq!(paced.pause(&tmux), 0);
    tmux.wait_for("the reading bar", |s| bar_row(s, "reading").is_some());
    tmux.tmux(&["send-keys", "C-c"]);
    let screen = tmux.wait_for("the end of the run", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(
        screen.contains("oci2wsl: interrupted; no output was written"),
        "{screen}"
    );
    assert_no_bar_left(&screen);
    assert!(!Path::new(&paced.out).exists());
}

/// Held half-way through the image's one 8 MiB file in the emit pass, the writing bar
/// shows a count strictly between nothing and the total, whatever the output: the count
/// moves inside a file, not only between files (a 1 GiB file showed 0 B until it was done).
#[test]
fn the_writing_count_moves_inside_a_large_file_in_every_output_form() {
    if !require_tools(&["tmux"]) {
        return;
    }
    for output in ["out.tar", "out.tar.gz", "out.tar.zst", "-"] {
        let tmux = Tmux::start(120, 30);
        let paced = paced_image();
        let dir = paced.out.parent().unwrap();
        let written = dir.join(if output == "-" { "stdout.tar" } else { output });
        let to = match output {
            "-" => format!("-o - > '{}'", written.display()),
            _ => format!("-o '{}'", written.display()),
        };
        start_run_with(&tmux, &paced, &to);
        assert_eq!(paced.pause(&tmux), 0);
        tmux.wait_for("the reading bar", |s| bar_row(s, "reading").is_some());
        paced.go_on(&tmux);
        assert_eq!(paced.pause(&tmux), 10);
        tmux.wait_for("the writing bar", |s| bar_row(s, "writing").is_some());
        paced.go_on(&tmux);
        assert_eq!(paced.pause(&tmux), 1);
        tmux.wait_for(&format!("a count inside the file ({output})"), |s| {
            bar_row(s, "writing").is_some_and(count_inside_the_total)
        });
        paced.go_on(&tmux);
        let screen = tmux.wait_for("the end of the run", |s| s.contains("EXIT="));
        assert!(screen.contains("EXIT=0"), "{screen}");
        assert_no_bar_left(&screen);
        assert!(fs::metadata(&written).unwrap().len() > 0, "{output}");
    }
}

/// `--import` streams the tar into WSL as it is written: the import line stands under the
/// writing bar while the emit pass runs, and both are gone before the summary.
#[test]
fn an_import_shows_under_the_writing_bar_and_is_cleared() {
    if !require_tools(&["tmux"]) {
        return;
    }
    let stand_in = wsl_stand_in();
    let tmux = Tmux::start(120, 30);
    let paced = paced_image();
    let dir = paced.out.parent().unwrap();
    let wsl = format!(
        "OCI2WSL_WSL_EXE='{}' WSL_STAND_IN_DIR='{}' LOCALAPPDATA='{}'",
        stand_in.display(),
        dir.join("wsl").display(),
        dir.join("local").display()
    );
    tmux.type_line(&format!(
        "{wsl} '{}' '{}' --import Paced; echo \"EXIT\"\"=$?\"",
        env!("CARGO_BIN_EXE_oci2wsl"),
        paced.image,
    ));
    assert_eq!(paced.pause(&tmux), 0);
    tmux.wait_for("the reading bar", |s| bar_row(s, "reading").is_some());
    paced.go_on(&tmux);
    assert_eq!(paced.pause(&tmux), 10);
    tmux.wait_for("the writing bar", |s| bar_row(s, "writing").is_some());
    paced.go_on(&tmux);
    assert_eq!(paced.pause(&tmux), 1);
    let importing = "importing into WSL as Paced";
    let screen = tmux.wait_for("the import under the writing bar", |s| {
        bar_row(s, "writing").is_some() && s.contains(importing)
    });
    let rows: Vec<&str> = screen.lines().collect();
    let writing = rows
        .iter()
        .position(|l| l.trim_start().starts_with("writing ["));
    let import = rows.iter().position(|l| l.contains(importing));
    assert!(writing < import, "{screen}");
    paced.go_on(&tmux);
    let screen = tmux.wait_for("the end of the run", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert_no_bar_left(&screen);
    assert!(!screen.contains(importing), "{screen}");
}

/// Issue 15, "retries are visible": with a terminal attached, each retry of a registry
/// request is a line of its own (as without one only the final error is), and no bar is
/// left around them.
#[test]
fn a_retry_is_a_line_of_its_own_on_a_terminal() {
    if !require_tools(&["tmux"]) {
        return;
    }
    // A port nobody listens on: every attempt is refused, and refusals are retried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmux = Tmux::start(120, 30);
    tmux.type_line(&format!(
        "OCI2WSL_NO_CACHE=1 '{}' --retry-times 2 127.0.0.1:{port}/x/y:1 -o /dev/null; echo \"EXIT\"\"=$?\"",
        env!("CARGO_BIN_EXE_oci2wsl"),
    ));
    let screen = tmux.wait_for("the end of the run", |s| s.contains("EXIT="));
    let retry = format!("oci2wsl: manifest 1 from 127.0.0.1:{port}: ");
    let retries = screen
        .lines()
        .filter(|l| l.starts_with(&retry) && l.contains("; retry "))
        .count();
    assert_eq!(retries, 2, "{screen}");
    assert!(screen.contains("EXIT=1"), "{screen}");
    assert_no_bar_left(&screen);
}
