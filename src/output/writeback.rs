//! Starting the output file's write-back while it grows.

use std::fs;
use std::io::{self, Write};

/// The output file, with the kernel told to start writing it to disk as it grows, so that
/// the `fsync` before the rename (which makes the new file durable before it replaces an old
/// one) finds little left to do instead of the whole file. Elsewhere than Linux it is the
/// plain file and the `fsync` does all the work.
pub(super) struct Writeback {
    file: fs::File,
    #[cfg(target_os = "linux")]
    written: u64,
    #[cfg(target_os = "linux")]
    started: u64,
}

/// How much written data may wait before its write-back is started.
#[cfg(target_os = "linux")]
const WRITEBACK_EVERY: u64 = 8 << 20;

impl Writeback {
    pub(super) fn new(file: fs::File) -> Writeback {
        Writeback {
            file,
            #[cfg(target_os = "linux")]
            written: 0,
            #[cfg(target_os = "linux")]
            started: 0,
        }
    }

    #[cfg(target_os = "linux")]
    fn wrote(&mut self, n: usize) {
        use std::os::fd::AsRawFd;
        self.written += n as u64;
        if self.written - self.started < WRITEBACK_EVERY {
            return;
        }
        // SAFETY: plain system call on a file descriptor we own; no memory is passed. It only
        // starts asynchronous write-back: a failure changes nothing that the fsync at commit
        // does not check, so its result is ignored.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.started as libc::off64_t,
                (self.written - self.started) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.started = self.written;
    }

    #[cfg(not(target_os = "linux"))]
    fn wrote(&mut self, _n: usize) {}
}

impl Write for Writeback {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.file.write(b)?;
        self.wrote(n);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
