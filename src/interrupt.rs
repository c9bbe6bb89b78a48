//! What an interrupt (Ctrl-C, SIGTERM, a closed console) must undo before the process exits:
//! temporary output files to remove and child processes to stop. The output stage and
//! `wsl::import` register here; `main` installs the handler.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::cancel::Cancel;

/// Temporary files that a Ctrl-C must not leave behind.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

type Stop = Box<dyn Fn() + Send>;

/// What to stop before exiting on an interrupt: a `wsl --import` reading our stream must
/// be killed, not shown a clean end of input (see `wsl::import`).
static STOP_ON_INTERRUPT: Mutex<Vec<Stop>> = Mutex::new(Vec::new());

/// Registers `stop` to run if the process is interrupted, for the rest of the run.
pub fn stop_on_interrupt(stop: Stop) {
    if let Ok(mut stops) = STOP_ON_INTERRUPT.lock() {
        stops.push(stop);
    }
}

/// Registers a temporary file to remove if the process is interrupted before [`forget`].
pub fn remove_on_interrupt(path: &Path) {
    if let Ok(mut pending) = PENDING.lock() {
        pending.push(path.to_path_buf());
    }
}

/// The file was committed or removed: an interrupt no longer concerns it.
pub fn forget(path: &Path) {
    if let Ok(mut pending) = PENDING.lock() {
        pending.retain(|p| p != path);
    }
}

/// How long a cancelled run has to unwind before the handler exits anyway: a thread blocked
/// in a read (a stalled registry, a FIFO) sees the cancellation only when the read returns.
const GRACE: Duration = Duration::from_secs(2);

/// On Ctrl-C (or SIGTERM, or closing the console on Windows) cancel the run: it unwinds as
/// after any failure, removing its temporary files, and `main` exits 130. If it has not
/// within `GRACE`, or on a second Ctrl-C, stop what must be stopped, remove our temporary
/// output files and exit 130 from here, so an interrupted run leaves the directory as it
/// found it either way.
pub fn install_cleanup(run: Cancel) {
    let _ = ctrlc::set_handler(move || {
        if run.is_cancelled() {
            exit_now();
        }
        run.cancel();
        std::thread::spawn(|| {
            std::thread::sleep(GRACE);
            exit_now();
        });
    });
}

fn exit_now() -> ! {
    if let Ok(stops) = STOP_ON_INTERRUPT.lock() {
        for stop in stops.iter() {
            stop();
        }
    }
    if let Ok(pending) = PENDING.lock() {
        for p in pending.iter() {
            let _ = fs::remove_file(p);
        }
    }
    eprintln!("oci2wsl: interrupted; no output was written");
    std::process::exit(130);
}
