//! The output stage: the flattened entries as a tar, compressed, into their destination.
//!
//! The destination is a file that appears only when complete, standard output, or a stream
//! (`wsl --import`'s standard input). The layer stage writes through `layer::EntrySink`,
//! which the tar writer implements; nothing here names a layer type.

pub mod compression;
pub mod pgzip;
pub mod sink;
mod stdout;
pub mod tar_writer;
pub mod target;
mod writeback;

pub use compression::OutputCompression;
pub use sink::Sink;

use anyhow::{bail, Result};
use std::io::{self, IsTerminal};
use std::path::PathBuf;

/// Where to write.
#[derive(Clone, Debug)]
pub enum Destination {
    /// Standard output (or, with an import, straight into `wsl --import`).
    Stdout,
    /// A file, written to a temporary name beside it and renamed when complete.
    File {
        /// The file.
        path: PathBuf,
        /// Replace it if it exists.
        force: bool,
    },
}

/// Fails early, before any download, when the target exists and `--force` was not given.
pub fn check_destination(dest: &Destination) -> Result<()> {
    match dest {
        Destination::Stdout => {
            if io::stdout().is_terminal() {
                bail!("refusing to write a tar archive to a terminal; use -o FILE or redirect standard output");
            }
        }
        Destination::File { path, force } => {
            target::inspect(path, *force)?;
        }
    }
    Ok(())
}

/// Removes the temporary files that earlier runs to the same file left when they were
/// killed (see [`target::remove_stale_temp_files`]); returns them, for a warning.
pub fn remove_stale_temp_files(dest: &Destination) -> Vec<PathBuf> {
    match dest {
        Destination::File { path, .. } => target::remove_stale_temp_files(path),
        Destination::Stdout => Vec::new(),
    }
}
