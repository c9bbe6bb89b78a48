//! oci2wsl: turn an OCI/Docker image into a WSL root file system in one streaming pass.
//!
//! The modules are the stages of the pipeline, in order:
//! - [`reference`]: what the user named (`oci:dir:tag`, `docker-archive:-`, a registry name);
//! - [`source`]: where bytes come from (layout directories, archives), behind [`source::ImageSource`];
//! - [`image`]: manifests, indexes, platforms, configs and digests: the resolved [`image::Image`];
//! - [`layer`]: the OCI layer semantics that stack the layers into one tree, and the two-pass
//!   flatten that streams it out;
//! - [`output`]: tar writing, compression and the atomic output file;
//! - [`wsl`]: the image config as WSL configuration, and `wsl.exe --import`.
//!
//! Below the stages, used by several of them and using none: [`tar`] (the tar codec and the
//! entry model), [`limits`] (every ceiling against hostile input), [`interrupt`] (what a
//! Ctrl-C undoes) and [`terminal`]. A stage uses only the stages before it and these; the
//! layer stage writes through [`layer::EntrySink`] so that it need not name the output stage.
//!
//! [`pipeline::run`] wires them together. It reports progress and warnings to an
//! [`events::Observer`] the caller supplies, and fails with an [`error::Error`] whose
//! [`error::ErrorKind`] is stable. `main.rs` (with `src/cli/`, the binary's own display)
//! only parses the command line and shows events.

#![warn(missing_docs)]

pub use cancel::Cancel;
pub use error::{Error, ErrorKind};
pub use events::{Event, Observer, Phase, Resolved, SharedObserver};
pub use image::PlatformChoice;
pub use output::{Destination, OutputCompression};
pub use pipeline::{run, Imported, Options, Summary};

pub mod cancel;
pub mod error;
pub mod events;
pub mod image;
pub mod interrupt;
pub mod layer;
pub mod limits;
pub mod output;
pub mod pipeline;
pub mod reference;
pub mod source;
pub mod tar;
pub mod terminal;
pub mod wsl;
