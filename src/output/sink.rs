//! The byte stream from the tar writer to the destination: compression, counting, 1 MiB
//! writes, and a file that appears only when complete.

use super::pgzip;
use super::stdout::raw_stdout;
use super::target;
use super::writeback::Writeback;
use super::{Destination, OutputCompression};
use crate::events::{Event, Phase, SharedObserver};
use crate::interrupt;
use anyhow::{bail, Context, Result};
use std::io::{self, Write};
use std::path::PathBuf;

/// The compressed byte stream into the destination. Dropping it without [`Sink::commit`]
/// discards a file output (the target is never touched).
pub struct Sink {
    writer: Option<Box<dyn FinishWrite>>,
    temp: Option<tempfile::NamedTempFile>,
    target: Option<(PathBuf, bool)>,
    counter: CountingShared,
}

trait FinishWrite: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W: Write + Send>(W);
impl<W: Write + Send> Write for Plain<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write + Send> FinishWrite for Plain<W> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> FinishWrite for pgzip::ParallelGzWriter<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut inner = (*self).finish()?;
        inner.flush()
    }
}

impl<W: Write + Send> FinishWrite for zstd::stream::write::Encoder<'static, W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut inner = (*self).finish()?;
        inner.flush()
    }
}

/// Counts the bytes that reach the destination (after compression), and reports them as
/// [`Phase::Output`] progress once an observer is attached.
#[derive(Clone, Default)]
struct CountingShared(std::sync::Arc<Count>);

#[derive(Default)]
struct Count {
    bytes: std::sync::atomic::AtomicU64,
    observer: std::sync::OnceLock<SharedObserver>,
}

struct Counting<W> {
    inner: W,
    count: CountingShared,
}
impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        let count = &self.count.0;
        let before = count
            .bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        // The writes arrive in 1 MiB pieces (see `Sink::wrap`), so this is an event per MiB.
        if let Some(observer) = count.observer.get() {
            observer.event(&Event::Progress {
                phase: Phase::Output,
                layer: None,
                done: before + n as u64,
                total: None,
            });
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Sink {
    /// `threads`: cores to compress on.
    pub fn open(
        dest: &Destination,
        compression: OutputCompression,
        level: i32,
        threads: usize,
    ) -> Result<Sink> {
        let (raw, temp, target): (Box<dyn Write + Send>, _, _) = match dest {
            Destination::Stdout => {
                super::check_destination(dest)?;
                (Box::new(raw_stdout()?), None, None)
            }
            Destination::File { path, force }
                if target::inspect(path, *force)? == target::Target::WriteThrough =>
            {
                (Box::new(target::open_write_through(path)?), None, None)
            }
            Destination::File { path, force } => {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let file_name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "output".into());
                let prefix = target::temp_prefix(&file_name);
                let mut builder = tempfile::Builder::new();
                builder.prefix(&prefix).suffix(target::TEMP_SUFFIX);
                // A normal file when renamed into place (0666 less the umask), not the
                // private 0600 of a temporary file.
                #[cfg(unix)]
                builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
                let create = || {
                    builder.tempfile_in(&dir).with_context(|| {
                        format!("cannot create a temporary file in {}", dir.display())
                    })
                };
                let mut temp = create()?;
                // Another run's stale-file cleanup can only take a file in the instant
                // between its creation and our lock; a second name is then enough.
                for _ in 0..3 {
                    if target::hold(temp.as_file()).with_context(|| {
                        format!("cannot lock the temporary file {}", temp.path().display())
                    })? {
                        break;
                    }
                    temp = create()?;
                }
                interrupt::remove_on_interrupt(temp.path());
                let file = temp
                    .reopen()
                    .context("reopening the temporary output file")?;
                (
                    Box::new(Writeback::new(file)),
                    Some(temp),
                    Some((path.clone(), *force)),
                )
            }
        };
        Sink::wrap(raw, temp, target, compression, level, threads)
    }

    /// A sink into any stream (a child process's stdin): no file to commit, so a failure
    /// is the caller's to signal to the reader. Like every destination, it is written in
    /// 1 MiB pieces.
    pub fn to_writer(
        raw: Box<dyn Write + Send>,
        compression: OutputCompression,
        level: i32,
        threads: usize,
    ) -> Result<Sink> {
        Sink::wrap(raw, None, None, compression, level, threads)
    }

    fn wrap(
        raw: Box<dyn Write + Send>,
        temp: Option<tempfile::NamedTempFile>,
        target: Option<(PathBuf, bool)>,
        compression: OutputCompression,
        level: i32,
        threads: usize,
    ) -> Result<Sink> {
        let counter = CountingShared::default();
        // Every destination gets its bytes in 1 MiB writes, whatever sizes the compressor
        // or the tar writer produce.
        let counted = io::BufWriter::with_capacity(
            1 << 20,
            Counting {
                inner: raw,
                count: counter.clone(),
            },
        );
        let writer: Box<dyn FinishWrite> = match compression {
            OutputCompression::None => Box::new(Plain(counted)),
            // libdeflate's gzip members carry no name and no timestamp: the same input gives
            // the same bytes.
            OutputCompression::Gzip => {
                Box::new(pgzip::ParallelGzWriter::new(counted, level, threads)?)
            }
            OutputCompression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(counted, level)?;
                enc.include_checksum(true)?;
                // zstd's own workers. With one or more workers the output does not depend on
                // their number (zero workers would give other bytes), so -j never changes it.
                enc.multithread(threads.max(1) as u32)?;
                // 2 MiB jobs instead of the default 8 MiB: measured on a 1.1 GiB tar, peak
                // RSS 97 MB instead of 180 MB, 0.7% larger output, and no slower. zstd's own
                // overlap between jobs stays: it costs under 2% of zstd's work (the table in
                // docs/performance.md, "zstd settings (session 22)").
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(2 << 20))?;
                Box::new(enc)
            }
        };
        Ok(Sink {
            writer: Some(writer),
            temp,
            target,
            counter,
        })
    }

    /// Bytes written to the destination so far (compressed).
    pub fn bytes_out(&self) -> u64 {
        self.counter
            .0
            .bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reports the bytes that reach the destination to `observer`, from now on.
    pub fn report_to(&self, observer: SharedObserver) {
        let _ = self.counter.0.observer.set(observer);
    }

    /// Finishes compression and, for a file, moves it into place.
    pub fn commit(mut self) -> Result<u64> {
        self.writer
            .take()
            .expect("commit once")
            .finish()
            .context("writing the output")?;
        if let (Some(temp), Some((path, force))) = (self.temp.take(), self.target.take()) {
            temp.as_file()
                .sync_all()
                .context("flushing the output to disk")?;
            let temp_path = temp.path().to_path_buf();
            // The target may have become a device or a directory during the download:
            // checked again, so it is never replaced.
            if let Err(e) = target::inspect(&path, force).and_then(|t| match t {
                target::Target::Replace => Ok(()),
                target::Target::WriteThrough => bail!(
                    "{} became a device or FIFO during the run; it was not replaced",
                    path.display()
                ),
            }) {
                interrupt::forget(&temp_path);
                return Err(e);
            }
            let result = target::retry_while_held(
                temp,
                |temp| {
                    let moved = if force {
                        temp.persist(&path).map(|_| ())
                    } else {
                        temp.persist_noclobber(&path).map(|_| ())
                    };
                    moved.map_err(|e| (e.error, e.file))
                },
                target::is_sharing_violation,
                &target::rename_delays(),
            );
            interrupt::forget(&temp_path);
            result.map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "{} already exists; use --force to replace it",
                        path.display()
                    )
                } else {
                    // The OS's reason alone: tempfile's error names the temporary file,
                    // which the user never asked for.
                    let reason = e
                        .raw_os_error()
                        .map(io::Error::from_raw_os_error)
                        .unwrap_or(e);
                    anyhow::Error::new(reason).context(format!(
                        "moving the output into place at {}",
                        path.display()
                    ))
                }
            })?;
        }
        Ok(self.bytes_out())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            interrupt::forget(temp.path());
            // NamedTempFile's own drop removes the file.
        }
    }
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().expect("not committed").write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("not committed").flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn failed_sink_leaves_no_file_and_commit_does_not_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        let dest = Destination::File {
            path: target.clone(),
            force: false,
        };
        let mut sink = Sink::open(&dest, OutputCompression::None, 0, 1).unwrap();
        sink.write_all(b"partial").unwrap();
        drop(sink);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut sink = Sink::open(&dest, OutputCompression::Gzip, 6, 2).unwrap();
        sink.write_all(b"whole").unwrap();
        fs::write(&target, b"appeared meanwhile").unwrap();
        let err = sink.commit().unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"appeared meanwhile");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn committed_file_has_ordinary_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.tar");
        let dest = Destination::File {
            path: target.clone(),
            force: false,
        };
        let sink = Sink::open(&dest, OutputCompression::None, 0, 1).unwrap();
        sink.commit().unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o044, 0o044 & !umask(), "mode {mode:o}");
    }

    #[cfg(unix)]
    fn umask() -> u32 {
        // Read the umask from a freshly created file rather than calling libc.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("probe");
        fs::write(&p, b"").unwrap();
        !fs::metadata(&p).unwrap().permissions().mode() & 0o666
    }
}
