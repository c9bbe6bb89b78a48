//! The whole run: reference → source → image → layers → output.

use crate::cancel::Cancel;
use crate::error::{Error, ErrorKind, ResultExt};
use crate::events::{self, Event, LayerSummary, Resolved, SharedObserver};
use crate::image::{Image, PlatformChoice};
use crate::layer::{self, FlattenStats};
use crate::output::tar_writer::TarWriter;
use crate::output::{self, Destination, OutputCompression, Sink};
use crate::source;
use crate::source::remote::RegistryOptions;
use crate::wsl::import::{abort_import, ImportGate};
use crate::wsl::{self, ImportOptions, WslOptions};
use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to convert, where to, and how. [`Options::new`] gives the command line's defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// The image, in any form the command line takes (`oci:DIR[:TAG]`, `docker-archive:FILE`,
    /// `docker://NAME`, a registry name…).
    pub image: String,
    /// A file (written atomically) or standard output.
    pub destination: Destination,
    /// Compression of the output.
    pub compression: OutputCompression,
    /// Compression level (see [`OutputCompression::default_level`]).
    pub level: i32,
    /// Which platform to pick from a multi-platform image.
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
    /// Cancels the run from another thread: every thread of the run stops, temporary files
    /// are removed, and [`run`] fails with [`ErrorKind::Interrupted`].
    pub cancel: Cancel,
}

impl Options {
    /// The command line's defaults: a file's compression follows its name (`.tar.gz`,
    /// `.tar.zst`, `.wsl`…) at its default level, the platform is `linux` on this machine's
    /// architecture, every CPU is used, the WSL configuration is written, nothing is imported.
    pub fn new(image: impl Into<String>, destination: Destination) -> Options {
        let compression = match &destination {
            Destination::File { path, .. } => {
                OutputCompression::from_file_name(&path.to_string_lossy())
            }
            Destination::Stdout => OutputCompression::None,
        };
        Options {
            image: image.into(),
            destination,
            compression,
            level: compression.default_level(),
            platform: PlatformChoice::default(),
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_expansion: crate::limits::DEFAULT_MAX_EXPANSION,
            registry: RegistryOptions::default(),
            wsl: Some(WslOptions::default()),
            import: None,
            cancel: Cancel::new(),
        }
    }
}

/// What a finished run did.
#[derive(Debug)]
pub struct Summary {
    /// The image as the user named it.
    pub image: String,
    /// The index digest, when the reference pointed at an index: the one a user pins.
    pub index_digest: Option<String>,
    /// The chosen single-platform manifest's digest, when the source has manifest bytes.
    pub manifest_digest: Option<String>,
    /// The image config's digest (the image ID docker shows).
    pub config_digest: String,
    /// The image's platform, `os/arch[/variant]`.
    pub platform: String,
    /// Layers, bytes and paths.
    pub stats: FlattenStats,
    /// Bytes of tar written (before compression).
    pub tar_bytes: u64,
    /// Bytes written to the destination (after compression).
    pub bytes_out: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// What the WSL translation set and warned about.
    pub wsl: wsl::Report,
    /// `--import`: the distribution made.
    pub imported: Option<Imported>,
}

/// A distribution `wsl --import` registered.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Its name.
    pub name: String,
    /// Where its disk lives.
    pub dir: PathBuf,
    /// What `wsl.exe` printed, if anything.
    pub wsl_said: String,
}

/// Bytes in binary units, one decimal (`45.1 MiB`).
pub fn human(bytes: u64) -> String {
    crate::terminal::human_size(bytes)
}

/// Puts the image's name in front of an error about it, unless the message names where the
/// image is already: a registry's `manifest v1 not found in HOST/REPO`, a store's `cannot
/// open archive PATH`. A line names the image once.
pub(crate) fn about_the_image(
    reference: &crate::reference::SourceRef,
) -> impl Fn(anyhow::Error) -> anyhow::Error + '_ {
    move |e| {
        if names(&format!("{e:#}"), &location(reference)) {
            e
        } else {
            e.context(reference.to_string())
        }
    }
}

/// Where the image is, as the sources' own messages write it.
fn location(reference: &crate::reference::SourceRef) -> String {
    use crate::reference::SourceRef;
    match reference {
        SourceRef::OciLayout { path, .. }
        | SourceRef::OciArchive { path, .. }
        | SourceRef::DockerArchive { path, .. } => path.clone(),
        SourceRef::DockerDaemon { image } => image.clone(),
        SourceRef::Registry(text) => match crate::reference::registry::RegistryRef::parse(text) {
            Ok(r) => format!("{}/{}", r.registry, r.repository),
            Err(_) => text.clone(),
        },
    }
}

/// `message` has `name` as a word of its own: not inside a longer name (a path `1` is not
/// named by `layer 1/2`).
fn names(message: &str, name: &str) -> bool {
    let bounded_before = |at: usize| at == 0 || message[..at].ends_with([' ', '(', '"']);
    let bounded_after = |end: usize| {
        message[end..].is_empty() || message[end..].starts_with([' ', ':', ')', ',', '"', ';'])
    };
    !name.is_empty()
        && message
            .match_indices(name)
            .any(|(at, _)| bounded_before(at) && bounded_after(at + name.len()))
}

/// Runs the whole conversion: resolves `opts.image`, reads and verifies every layer, writes
/// the flattened tar to `opts.destination` (atomically, for a file) or into `wsl --import`,
/// and reports progress and warnings to `observer` on the way.
///
/// Nothing is written to a destination unless every layer verified; a failed run leaves an
/// existing output file as it was.
pub fn run(opts: &Options, observer: SharedObserver) -> Result<Summary, Error> {
    run_inner(opts, observer).map_err(Error::from)
}

fn run_inner(opts: &Options, observer: SharedObserver) -> anyhow::Result<Summary> {
    let start = Instant::now();
    // Before any download: the name is free, WSL answers, the destination is writable.
    let import_dir = opts
        .import
        .as_ref()
        .map(|i| {
            i.preflight()
                .with_context(|| format!("--import {}", i.name))
                .kind(ErrorKind::Wsl)
        })
        .transpose()?;
    let streaming = opts.import.is_some() && matches!(opts.destination, Destination::Stdout);
    if !streaming {
        output::check_destination(&opts.destination).kind(ErrorKind::Output)?;
    }
    let reference = source::parse_reference(&opts.image).kind(ErrorKind::Usage)?;
    opts.cancel.check()?;
    let source = source::open(&reference, &opts.registry, observer.clone(), &opts.cancel)
        .map_err(about_the_image(&reference))?;
    let image = source
        .resolve(&opts.platform)
        .map_err(about_the_image(&reference))?;
    observer.event(&Event::Resolved(resolved(&reference.to_string(), &image)));
    for warning in &image.warnings {
        events::warn(observer.as_ref(), warning.clone());
    }
    let mut translation = opts
        .wsl
        .clone()
        .map(|w| wsl::Translation::new(&image, reference.to_string(), w));

    let gate = match (&opts.import, &import_dir) {
        (Some(import), Some(dir)) if streaming => Some(ImportGate::new(
            import.clone(),
            dir.clone(),
            observer.clone(),
        )),
        _ => None,
    };
    let sink = match &gate {
        Some(gate) => Sink::to_writer(
            Box::new(gate.writer()),
            opts.compression,
            opts.level,
            opts.jobs,
        )?,
        None => Sink::open(&opts.destination, opts.compression, opts.level, opts.jobs)
            .kind(ErrorKind::Output)?,
    };
    sink.report_to(observer.clone());
    let close = || gate.as_ref().and_then(|g| g.close());
    let mut tar = TarWriter::new(sink);
    let flattened = layer::flatten(
        source.as_ref(),
        &image,
        &mut tar,
        &layer::FlattenOptions {
            jobs: opts.jobs,
            max_expansion: opts.max_expansion,
            observer: observer.clone(),
            cancel: opts.cancel.clone(),
        },
        translation.as_mut().map(|t| t as &mut dyn layer::Augment),
    );
    let stats = match flattened {
        Ok(stats) => stats,
        Err(e) => {
            // Stop WSL before the stream closes (`tar` still holds it open): a clean end of
            // input could let it register what it has so far.
            let e = abort_import(close(), e);
            drop(tar);
            return Err(e);
        }
    };
    // The last moment a cancellation can stop the run: after it the output is committed.
    if let Err(e) = opts.cancel.check() {
        let e = abort_import(close(), e);
        drop(tar);
        return Err(e);
    }
    let tar_bytes = tar.bytes_written();
    let committed = tar
        .finish()
        .context("writing the output")
        .and_then(|sink| sink.commit())
        .kind(ErrorKind::Output);
    let running = close();
    let bytes_out = match committed {
        Ok(n) => n,
        Err(e) => return Err(abort_import(running, e)),
    };
    let imported = match (&opts.import, import_dir) {
        (Some(import), Some(dir)) => {
            let said = match (running, &opts.destination) {
                (Some(stream), _) => stream.finish(),
                (None, Destination::File { path, .. }) => {
                    observer.event(&Event::ImportStarted {
                        name: import.name.clone(),
                    });
                    import.import_file(&dir, path)
                }
                (None, Destination::Stdout) => {
                    Err(anyhow::anyhow!("internal: the import stream never started"))
                }
            }
            .kind(ErrorKind::Wsl)?;
            observer.event(&Event::ImportFinished {
                name: import.name.clone(),
                dir: dir.clone(),
            });
            Some(Imported {
                name: import.name.clone(),
                dir,
                wsl_said: said,
            })
        }
        _ => None,
    };
    Ok(Summary {
        image: reference.to_string(),
        index_digest: image.index_digest.as_ref().map(|d| d.to_string()),
        manifest_digest: image.manifest_digest.as_ref().map(|d| d.to_string()),
        config_digest: image.config_digest.to_string(),
        platform: image.platform(),
        stats,
        tar_bytes,
        bytes_out,
        elapsed: start.elapsed(),
        wsl: translation.map(|t| t.report).unwrap_or_default(),
        imported,
    })
}

/// What the front end shows once the reference is resolved.
fn resolved(name: &str, image: &Image) -> Resolved {
    Resolved {
        image: name.to_string(),
        index_digest: image.index_digest.as_ref().map(|d| d.to_string()),
        manifest_digest: image.manifest_digest.as_ref().map(|d| d.to_string()),
        config_digest: image.config_digest.to_string(),
        platform: image.platform(),
        layers: image
            .layers
            .iter()
            .map(|l| LayerSummary {
                index: l.index,
                digest: l.digest.as_ref().map(|d| d.to_string()),
                diff_id: l.diff_id.to_string(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_counts_only_as_a_word_of_its_own() {
        assert!(names(
            "manifest v1 not found in reg:5000/x/app: unknown",
            "reg:5000/x/app"
        ));
        assert!(names("cannot open archive /tmp/a.tar: gone", "/tmp/a.tar"));
        assert!(!names("layer 1/2: bad", "1"));
        assert!(!names(
            "not found in reg:5000/x/application",
            "reg:5000/x/app"
        ));
        assert!(!names("anything", ""));
    }
}
