//! What an interrupt (Ctrl-C, SIGTERM, a closed console) must undo before the process exits:
//! temporary output files to remove and child processes to stop. The output stage and
//! `wsl::import` register here; `main` installs the handler.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// On Ctrl-C (or SIGTERM, or closing the console on Windows) stop what must be stopped,
/// remove our temporary output files and exit 130, so an interrupted run leaves the
/// directory as it found it.
pub fn install_cleanup() {
    let _ = ctrlc::set_handler(|| {
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
    });
}
