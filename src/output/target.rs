//! What `-o PATH` names, and how to write there without replacing what must not be replaced.
//!
//! A regular file (or nothing) is written as a temporary file beside it and renamed over it
//! when complete. A character device or FIFO (`/dev/null`, `/dev/stdout` on a pipe, a named
//! pipe read by another program) is written through, in place: renaming over it would put a
//! regular file where the system expects a device (docker/cli#1514 was that bug). Anything
//! else (directory, block device, socket, dangling symlink) is refused before any download.

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

/// How a destination path is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nothing there yet, or a regular file that `--force` allows to replace: temporary file
    /// and rename.
    Replace,
    /// A character device or FIFO: opened and written in place, never replaced.
    WriteThrough,
}

/// Decides how `path` is written, or refuses it. Follows symlinks for the decision (so
/// `-o /dev/stdout` writes through to whatever standard output is), but a symlink that leads
/// nowhere is refused: the final rename would either fail after the whole download or
/// replace the link.
pub fn inspect(path: &Path, force: bool) -> Result<Target> {
    let shown = path.display();
    let link = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::Replace),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect the output {shown}")),
    };
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if link.file_type().is_symlink() && e.kind() == io::ErrorKind::NotFound => {
            let to = fs::read_link(path).unwrap_or_default();
            bail!(
                "the output {shown} is a symlink to {}, which does not exist; \
                 remove the link or name another file",
                to.display()
            );
        }
        Err(e) => return Err(e).with_context(|| format!("cannot inspect the output {shown}")),
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        bail!("the output {shown} is a directory");
    }
    if kind.is_file() {
        if !force {
            bail!("{shown} already exists; use --force to replace it");
        }
        return Ok(Target::Replace);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() || kind.is_fifo() {
            return Ok(Target::WriteThrough);
        }
        let what = if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        bail!(
            "the output {shown} is {what}; oci2wsl writes only to a regular file, \
             a character device or a FIFO, and never replaces a device"
        );
    }
    #[cfg(not(unix))]
    bail!("the output {shown} is not a regular file; oci2wsl does not replace it");
}

/// Opens a [`Target::WriteThrough`] destination for writing, in place. What was opened is
/// checked again, since the path may have changed since [`inspect`].
pub fn open_write_through(path: &Path) -> Result<fs::File> {
    let shown = path.display();
    // No create, no truncate: the device or FIFO is there, and is written, not made.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the output {shown} for writing"))?;
    let kind = file
        .metadata()
        .with_context(|| format!("cannot inspect the output {shown}"))?
        .file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if !(kind.is_char_device() || kind.is_fifo()) {
            bail!("the output {shown} changed while it was being opened; nothing was written");
        }
    }
    #[cfg(not(unix))]
    let _ = kind;
    if file.is_terminal() {
        bail!("refusing to write a tar archive to the terminal {shown}");
    }
    Ok(file)
}

/// The temporary file for `target` is named `.NAME.oci2wsl.PID.XXXXXX.partial`: recognisable
/// as ours, as belonging to NAME, and to which process.
pub fn temp_prefix(file_name: &str) -> String {
    format!(".{file_name}.oci2wsl.{}.", std::process::id())
}

pub const TEMP_SUFFIX: &str = ".partial";

/// Whether `entry` is one of our temporary files for `file_name` (any process's).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn is_temp_name(entry: &str, file_name: &str) -> bool {
    let Some(rest) = entry
        .strip_prefix(&format!(".{file_name}.oci2wsl."))
        .and_then(|r| r.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    match rest.split_once('.') {
        Some((pid, random)) => {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && !random.is_empty()
                && !random.contains(['.', '/'])
        }
        None => false,
    }
}

/// Marks `file` as in use by this process for as long as it stays open, so that another
/// run's [`remove_stale_temp_files`] leaves it alone. A lock rather than the process id in the
/// name: a process id says nothing across PID namespaces (containers sharing a directory),
/// a lock does, and the kernel drops it when the process dies, however it dies.
///
/// `Ok(false)`: another run's cleanup got to the fresh file first (it locked it before we
/// did, and removes it); make another. A file system without locks is no error: there the
/// cleanup cannot lock either, so it removes nothing.
pub fn hold(file: &fs::File) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        // SAFETY: plain system call on a file descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(false)
            } else {
                Ok(true)
            };
        }
        // Locked, but a cleanup may have locked, unlinked and released it just before.
        Ok(file.metadata()?.nlink() > 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Ok(true)
    }
}

/// Whether some live process holds `path` (see [`hold`]).
#[cfg(target_os = "linux")]
fn held(path: &Path) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: a symlink with our name is not ours to follow or delete.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    // SAFETY: plain system call on a file descriptor we own; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(false);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(true)
    } else {
        Err(e)
    }
}

/// Removes temporary files of earlier runs to the same `target` whose process is gone
/// (killed with SIGKILL, or the machine went down: nothing could clean up then). Returns
/// what was removed, for a warning. Errors are not fatal here: a file that cannot be checked
/// or removed is left alone. Only Linux can tell a dead owner from a live one (by the lock of
/// [`hold`]); elsewhere nothing is removed.
#[cfg(target_os = "linux")]
pub fn remove_stale_temp_files(target: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Some(file_name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return removed;
    };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_name(name, &file_name) {
            continue;
        }
        let path = entry.path();
        let regular = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if regular && held(&path).ok() == Some(false) && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

#[cfg(not(target_os = "linux"))]
pub fn remove_stale_temp_files(_target: &Path) -> Vec<PathBuf> {
    Vec::new()
}

/// Renames with `rename` (which hands back what it was given on failure), retrying for a
/// few seconds while `held_by_another` says the failure is another process holding the
/// target open. On Windows an antivirus scanner or an indexer briefly opens a freshly
/// written file; Go's own build tool retries the same errors for 2 seconds
/// (cmd/go/internal/robustio).
pub fn retry_while_held<T, E>(
    mut item: T,
    mut rename: impl FnMut(T) -> std::result::Result<(), (E, T)>,
    held_by_another: impl Fn(&E) -> bool,
    delays: &[std::time::Duration],
) -> std::result::Result<(), E> {
    let mut delays = delays.iter();
    loop {
        match rename(item) {
            Ok(()) => return Ok(()),
            Err((e, back)) => match delays.next() {
                Some(delay) if held_by_another(&e) => {
                    std::thread::sleep(*delay);
                    item = back;
                }
                _ => return Err(e),
            },
        }
    }
}

/// The waits between rename attempts: 50 ms doubling to 1 s, about 5 s in all.
pub fn rename_delays() -> Vec<std::time::Duration> {
    let mut delays = Vec::new();
    let mut ms = 50u64;
    let mut total = 0;
    while total < 5000 {
        delays.push(std::time::Duration::from_millis(ms));
        total += ms;
        ms = (ms * 2).min(1000);
    }
    delays
}

/// A rename failure that means "another process has the file open" on Windows:
/// ERROR_ACCESS_DENIED (5), ERROR_SHARING_VIOLATION (32), ERROR_LOCK_VIOLATION (33).
pub fn is_sharing_violation(e: &io::Error) -> bool {
    cfg!(windows) && matches!(e.raw_os_error(), Some(5 | 32 | 33))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn temp_names() {
        let ours = format!("{}abc123{TEMP_SUFFIX}", temp_prefix("out.tar"));
        assert!(is_temp_name(&ours, "out.tar"));
        assert!(is_temp_name(".out.tar.oci2wsl.1.x.partial", "out.tar"));
        assert!(!is_temp_name(&ours, "out"));
        assert!(!is_temp_name(".out.tar.oci2wsl.x1.abc.partial", "out.tar"));
        assert!(!is_temp_name(".out.tar.oci2wsl.1.partial", "out.tar"));
        assert!(!is_temp_name(".out.tar.oci2wsl.1.a.b.partial", "out.tar"));
        // The old naming (no owner): never touched, it could be anyone's.
        assert!(!is_temp_name(".out.tar.Ab12Cd.partial", "out.tar"));
        assert!(!is_temp_name("out.tar", "out.tar"));
    }

    #[test]
    fn rename_is_retried_only_while_held() {
        let delays = [Duration::ZERO; 3];
        // Held twice, then free: succeeds on the third attempt.
        let mut attempts = 0;
        let result = retry_while_held(
            "file",
            |f| {
                attempts += 1;
                if attempts < 3 {
                    Err(("held", f))
                } else {
                    Ok(())
                }
            },
            |e| *e == "held",
            &delays,
        );
        assert_eq!((result, attempts), (Ok(()), 3));
        // Another error: no retry.
        let mut attempts = 0;
        let result = retry_while_held(
            "file",
            |f| {
                attempts += 1;
                Err(("denied", f))
            },
            |e| *e == "held",
            &delays,
        );
        assert_eq!((result, attempts), (Err("denied"), 1));
        // Held for good: the budget runs out and the last error is returned.
        let mut attempts = 0;
        let result = retry_while_held(
            "file",
            |f| {
                attempts += 1;
                Err(("held", f))
            },
            |e| *e == "held",
            &delays,
        );
        assert_eq!((result, attempts), (Err("held"), 4));
    }

    #[test]
    fn rename_budget_is_a_few_seconds() {
        let total: Duration = rename_delays().iter().sum();
        assert!(total >= Duration::from_secs(4) && total <= Duration::from_secs(6));
    }

    #[test]
    fn only_windows_sharing_errors_are_retried() {
        let e = io::Error::from_raw_os_error(32);
        assert_eq!(is_sharing_violation(&e), cfg!(windows));
        assert!(!is_sharing_violation(&io::Error::other("x")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stale_temp_files_go_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        let stale = dir.path().join(".out.tar.oci2wsl.4242.aaaaaa.partial");
        let live = dir.path().join(".out.tar.oci2wsl.4243.bbbbbb.partial");
        let other = dir.path().join(".other.tar.oci2wsl.4242.cccccc.partial");
        for p in [&stale, &live, &other] {
            fs::write(p, b"partial").unwrap();
        }
        let live_file = fs::File::open(&live).unwrap();
        assert!(hold(&live_file).unwrap());
        assert_eq!(remove_stale_temp_files(&target), vec![stale.clone()]);
        assert!(!stale.exists() && live.exists() && other.exists());
        drop(live_file);
        assert_eq!(remove_stale_temp_files(&target), vec![live.clone()]);
    }
}
