//! The whole run: reference → source → image → layers → output.

use crate::image::PlatformChoice;
use crate::layer::{self, FlattenStats};
use crate::output::tar_writer::TarWriter;
use crate::output::{self, Destination, OutputCompression, Sink};
use crate::reference::SourceRef;
use crate::source;
use crate::source::remote::RegistryOptions;
use crate::wsl::{self, ImportOptions, WslOptions};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::ChildStdin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Options {
    pub image: String,
    pub destination: Destination,
    pub compression: OutputCompression,
    pub level: i32,
    pub platform: PlatformChoice,
    /// Threads that read layers in the index pass and compress the output.
    pub jobs: usize,
    /// Ceiling of a layer's uncompressed size over its compressed size (`--max-expansion`).
    pub max_expansion: u64,
    /// How to reach registries (credentials, TLS).
    pub registry: RegistryOptions,
    /// The image config as WSL configuration; `None` for `--no-wsl-config`.
    pub wsl: Option<WslOptions>,
    /// `--import NAME`: hand the result to `wsl.exe --import`. With `Destination::Stdout`
    /// the tar streams into WSL and no tarball is written to disk.
    pub import: Option<ImportOptions>,
}

#[derive(Debug)]
pub struct Summary {
    pub image: String,
    pub manifest_digest: Option<String>,
    pub config_digest: String,
    pub stats: FlattenStats,
    pub tar_bytes: u64,
    pub bytes_out: u64,
    pub elapsed: Duration,
    /// What the WSL translation set and warned about.
    pub wsl: wsl::Report,
    /// `--import`: the distribution, where it lives, and what WSL said.
    pub imported: Option<(String, PathBuf, String)>,
}

impl Summary {
    /// The one line printed at the end of a run.
    pub fn line(&self, destination: &Destination) -> String {
        let dest = match (destination, &self.imported) {
            (Destination::Stdout, Some((name, _, _))) => format!("wsl --import {name}"),
            (Destination::Stdout, None) => "standard output".to_string(),
            (Destination::File { path, .. }, _) => path.display().to_string(),
        };
        let id = self
            .manifest_digest
            .as_deref()
            .unwrap_or(&self.config_digest);
        format!(
            "{} ({id}): {} layers, {} paths, {} read, {} tar, {} written to {dest} in {:.1}s",
            self.image,
            self.stats.layers,
            self.stats.paths_written,
            human(self.stats.compressed_bytes),
            human(self.tar_bytes),
            human(self.bytes_out),
            self.elapsed.as_secs_f64()
        )
    }
}

pub fn human(bytes: u64) -> String {
    crate::terminal::human_size(bytes)
}

/// `--import` without `-o`: the tar goes straight into `wsl --import NAME DIR -`, which is
/// started only when the first byte is ready, that is after every layer verified, so a bad
/// image never starts an import at all.
struct ImportStream {
    options: ImportOptions,
    dir: PathBuf,
    started: Arc<Mutex<ImportState>>,
    stdin: Option<ChildStdin>,
}

enum ImportState {
    NotStarted,
    Running(wsl::import::StreamingImport),
    /// The run is over, by success or failure. Bytes still buffered in front of the stream
    /// (flushed when the failed sink is dropped) must not start an import of half a tar.
    Closed,
}

/// Closes the import stream to new starts; returns the running import, if any.
fn close_import(started: &Mutex<ImportState>) -> Option<wsl::import::StreamingImport> {
    match std::mem::replace(&mut *started.lock().unwrap(), ImportState::Closed) {
        ImportState::Running(import) => Some(import),
        ImportState::NotStarted | ImportState::Closed => None,
    }
}

impl Write for ImportStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stdin.is_none() {
            let mut state = self.started.lock().unwrap();
            if matches!(*state, ImportState::Closed) {
                return Err(std::io::Error::other(
                    "the run failed before WSL was started; nothing was imported",
                ));
            }
            let mut import = self
                .options
                .start_streaming(&self.dir)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            self.stdin = Some(import.take_stdin());
            *state = ImportState::Running(import);
        }
        self.stdin.as_mut().expect("started").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

/// Our run failed with `e`: stop a running import, and report WSL's own failure instead
/// when WSL stopped reading first (our broken pipe was only its consequence).
fn abort_import(running: Option<wsl::import::StreamingImport>, e: anyhow::Error) -> anyhow::Error {
    let pipe_closed = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    match running.and_then(|s| s.abort(pipe_closed)) {
        Some(said) => anyhow::anyhow!(said),
        None => e,
    }
}

pub fn run(opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    // Before any download: the name is free, WSL answers, the destination is writable.
    let import_dir = opts
        .import
        .as_ref()
        .map(|i| {
            i.preflight()
                .with_context(|| format!("--import {}", i.name))
        })
        .transpose()?;
    let streaming = opts.import.is_some() && matches!(opts.destination, Destination::Stdout);
    if !streaming {
        output::check_destination(&opts.destination)?;
    }
    let reference = SourceRef::parse(&opts.image)?;
    let source =
        source::open(&reference, &opts.registry).with_context(|| format!("{reference}"))?;
    let image = source
        .resolve(&opts.platform)
        .with_context(|| format!("{reference}"))?;
    let mut translation = opts
        .wsl
        .clone()
        .map(|w| wsl::Translation::new(&image, reference.to_string(), w));

    let started = Arc::new(Mutex::new(ImportState::NotStarted));
    let sink = match (&opts.import, &import_dir) {
        (Some(import), Some(dir)) if streaming => Sink::to_writer(
            Box::new(ImportStream {
                options: import.clone(),
                dir: dir.clone(),
                started: started.clone(),
                stdin: None,
            }),
            opts.compression,
            opts.level,
            opts.jobs,
        )?,
        _ => Sink::open(&opts.destination, opts.compression, opts.level, opts.jobs)?,
    };
    let mut tar = TarWriter::new(sink);
    let flattened = layer::flatten(
        source.as_ref(),
        &image,
        &mut tar,
        &layer::FlattenOptions {
            jobs: opts.jobs,
            max_expansion: opts.max_expansion,
        },
        translation.as_mut().map(|t| t as &mut dyn layer::Augment),
    );
    let stats = match flattened {
        Ok(stats) => stats,
        Err(e) => {
            // Stop WSL before the stream closes (`tar` still holds it open): a clean end of
            // input could let it register what it has so far.
            let e = abort_import(close_import(&started), e);
            drop(tar);
            return Err(e);
        }
    };
    let tar_bytes = tar.bytes_written();
    let committed = tar
        .finish()
        .context("writing the output")
        .and_then(|sink| sink.commit());
    let running = close_import(&started);
    let bytes_out = match committed {
        Ok(n) => n,
        Err(e) => return Err(abort_import(running, e)),
    };
    let imported = match (&opts.import, import_dir) {
        (Some(import), Some(dir)) => {
            let said = match (running, &opts.destination) {
                (Some(stream), _) => stream.finish()?,
                (None, Destination::File { path, .. }) => import.import_file(&dir, path)?,
                (None, Destination::Stdout) => {
                    anyhow::bail!("internal: the import stream never started")
                }
            };
            Some((import.name.clone(), dir, said))
        }
        _ => None,
    };
    Ok(Summary {
        image: reference.to_string(),
        manifest_digest: image.manifest_digest.as_ref().map(|d| d.to_string()),
        config_digest: image.config_digest.to_string(),
        stats,
        tar_bytes,
        bytes_out,
        elapsed: start.elapsed(),
        wsl: translation.map(|t| t.report).unwrap_or_default(),
        imported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(state: ImportState) -> (ImportStream, Arc<Mutex<ImportState>>) {
        let started = Arc::new(Mutex::new(state));
        let stream = ImportStream {
            options: ImportOptions {
                name: "test".into(),
                install_dir: None,
                version: None,
                wsl_exe: PathBuf::from("/nonexistent/wsl.exe"),
            },
            dir: PathBuf::from("/nonexistent/dir"),
            started: started.clone(),
            stdin: None,
        };
        (stream, started)
    }

    #[test]
    fn a_closed_import_stream_never_starts_wsl() {
        // Open: the first byte tries to start WSL (and here fails to find it).
        let (mut open, _) = stream(ImportState::NotStarted);
        let err = open.write(b"x").unwrap_err().to_string();
        assert!(err.contains("cannot run"), "{err}");

        // Closed after a failed run: buffered bytes flushed on drop start nothing.
        let (mut closed, started) = stream(ImportState::NotStarted);
        assert!(close_import(&started).is_none());
        let err = closed.write(b"x").unwrap_err().to_string();
        assert!(err.contains("nothing was imported"), "{err}");
        assert!(matches!(*started.lock().unwrap(), ImportState::Closed));
    }
}
