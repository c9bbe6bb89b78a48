//! The one fixture toolkit of the integration tests of `oci2wsl`, one file per topic.
//!
//! * [`layer`]: the tar encoder. Headers are written byte by byte, so an entry can carry
//!   any name (hostile `..`, absolute, non-UTF-8, > 255 bytes via PAX or GNU long names),
//!   any type (file, dir, symlink, hardlink, char/block device, FIFO, or a raw type flag),
//!   xattrs, huge uids/gids (PAX or base-256), whiteouts and opaque markers. Every tar the
//!   tests write (layers, oci-archives, docker-archives, Go-style archives) goes through it.
//! * [`image`]: images built from layers (gzip / zstd / none / multi-member gzip /
//!   multi-frame zstd, or a raw tar from elsewhere) with correct digests, sizes and diff_ids
//!   unless a [`Corruption`] is asked for; multi-platform indexes with attestations; written
//!   as an OCI layout directory, an oci-archive tar, or a docker-archive tar (legacy and
//!   Docker 25+).
//! * [`listing`]: the output read back, and the one set of invariants every output must
//!   meet ([`Listing::assert_invariants`]; [`tree`] gives a map view after checking them).
//! * [`run`]: running the binary with arguments / stdin and checking exit code, stderr and
//!   the files left behind.
//! * [`registry`]: a real registry on 127.0.0.1, and a proxy that logs the requests.
//! * [`tools`]: the external tools a test needs ([`require_tools`]).
//!
//! Nothing here uses `src/`: see docs/design.md, "How it is tested". The `tar` crate only
//! frames the output for reading, never writes.
//!
//! A test file starts with `mod common; use common::*;`.
//
// Each test binary compiles this whole module and uses its own part of it, so unused items
// and re-exports are expected per binary.
#![allow(dead_code, unused_imports)]

pub mod image;
pub mod layer;
pub mod listing;
pub mod registry;
pub mod run;
pub mod tools;

pub use image::*;
pub use layer::*;
pub use listing::*;
pub use registry::*;
pub use run::*;
pub use tools::{have, is_root, require_root_and_tools, require_tools, sh};
