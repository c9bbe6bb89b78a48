//! The whole run: reference → source → image → layers → output.

use crate::image::PlatformChoice;
use crate::layer::{self, FlattenStats};
use crate::output::tar_writer::TarWriter;
use crate::output::{self, Destination, OutputCompression, Sink};
use crate::reference::SourceRef;
use crate::source;
use crate::source::remote::RegistryOptions;
use anyhow::{Context, Result};
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
}

impl Summary {
    /// The one line printed at the end of a run.
    pub fn line(&self, destination: &Destination) -> String {
        let dest = match destination {
            Destination::Stdout => "standard output".to_string(),
            Destination::File { path, .. } => path.display().to_string(),
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
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn run(opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    output::check_destination(&opts.destination)?;
    let reference = SourceRef::parse(&opts.image)?;
    let source =
        source::open(&reference, &opts.registry).with_context(|| format!("{reference}"))?;
    let image = source
        .resolve(&opts.platform)
        .with_context(|| format!("{reference}"))?;
    let sink = Sink::open(&opts.destination, opts.compression, opts.level, opts.jobs)?;
    let mut tar = TarWriter::new(sink);
    let stats = layer::flatten(
        source.as_ref(),
        &image,
        &mut tar,
        &layer::FlattenOptions {
            jobs: opts.jobs,
            max_expansion: opts.max_expansion,
        },
        None,
    )?;
    let tar_bytes = tar.bytes_written();
    let sink = tar.finish().context("writing the output")?;
    let bytes_out = sink.commit()?;
    Ok(Summary {
        image: reference.to_string(),
        manifest_digest: image.manifest_digest.as_ref().map(|d| d.to_string()),
        config_digest: image.config_digest.to_string(),
        stats,
        tar_bytes,
        bytes_out,
        elapsed: start.elapsed(),
    })
}
