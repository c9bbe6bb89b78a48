//! oci2wsl: turn an OCI/Docker image into a WSL root file system in one streaming pass.
//!
//! # As a library
//!
//! [`run`] converts one image with [`Options`] and reports to an [`Observer`] while it works;
//! it returns a [`Summary`], or an [`Error`] whose [`ErrorKind`] has a stable
//! [`code`](ErrorKind::code). [`Options::cancel`] is a [`Cancel`] token: cancel it from any
//! thread and the run stops, removes its temporary files and fails with
//! [`ErrorKind::Interrupted`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use oci2wsl::{Destination, ErrorKind, Event, Observer, Options};
//!
//! struct Print;
//! impl Observer for Print {
//!     fn event(&self, event: &Event) {
//!         if let Event::Warning { message } = event {
//!             eprintln!("warning: {message}");
//!         }
//!     }
//! }
//!
//! let options = Options::new(
//!     "oci:./layout:latest",
//!     Destination::File { path: "rootfs.tar.gz".into(), force: true },
//! );
//! match oci2wsl::run(&options, Arc::new(Print)) {
//!     Ok(summary) => println!("{} paths", summary.stats.paths_written),
//!     Err(e) if e.kind() == ErrorKind::NotFound => eprintln!("no such image: {e}"),
//!     Err(e) => eprintln!("{}: {e}", e.code()),
//! }
//! ```
//!
//! [`inspect::inspect`] resolves an image without reading its layers, to show what a
//! conversion would do.
//!
//! The items at the crate root and the modules [`pipeline`], [`events`], [`error`],
//! [`cancel`] and [`inspect`] are the API. The other modules are public only so that the project's own tests,
//! benchmarks and fuzz harness can reach the stages; they are hidden from the documentation
//! and may change in any release.
//!
//! # Inside
//!
//! The modules are the stages of the pipeline, in order: `reference` (what the user named),
//! `source` (where bytes come from), `image` (manifests, indexes, platforms, configs and
//! digests), `layer` (the OCI layer semantics and the two-pass flatten), `output` (tar
//! writing, compression and the atomic output file) and `wsl` (the image config as WSL
//! configuration, and `wsl.exe --import`). Below the stages, used by several of them and
//! using none: `tar` (the tar codec and the entry model), `limits` (every ceiling against
//! hostile input), `interrupt` (what a Ctrl-C undoes) and `terminal`. A stage uses only the
//! stages before it and these; the layer stage writes through `layer::EntrySink` so that it
//! need not name the output stage. `cache` keeps registry pulls as an OCI layout for the next
//! run. [`pipeline::run`] wires them together; `main.rs` (with
//! `src/cli/`, the binary's own display) only parses the command line and shows events.

#![warn(missing_docs)]

pub use cancel::Cancel;
pub use error::{Error, ErrorKind};
pub use events::{Event, Observer, Phase, Resolved, SharedObserver};
pub use image::platform::Platform;
pub use image::PlatformChoice;
pub use layer::FlattenStats;
pub use output::{Destination, OutputCompression};
pub use pipeline::{run, Imported, Options, Summary};
pub use source::remote::authn::Credentials;
pub use source::remote::RegistryOptions;
pub use wsl::{ImportOptions, Report as WslReport, WslOptions};

pub mod cancel;
pub mod error;
pub mod events;
pub mod inspect;
pub mod pipeline;

// Internals: public for tests, benchmarks and the fuzz harness, not for embedders.
#[doc(hidden)]
pub mod cache;
#[doc(hidden)]
pub mod image;
#[doc(hidden)]
pub mod interrupt;
#[doc(hidden)]
pub mod layer;
#[doc(hidden)]
pub mod limits;
#[doc(hidden)]
pub mod output;
#[doc(hidden)]
pub mod reference;
#[doc(hidden)]
pub mod source;
#[doc(hidden)]
pub mod tar;
#[doc(hidden)]
pub mod terminal;
#[doc(hidden)]
pub mod wsl;
