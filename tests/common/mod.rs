//! Fixture toolkit for the integration tests of `oci2wsl`.
//!
//! * [`layer`]: a raw tar encoder for layer contents. Headers are written byte by byte, so an
//!   entry can carry any name (hostile `..`, absolute, non-UTF-8, > 255 bytes via PAX or GNU
//!   long names), any type (file, dir, symlink, hardlink, char/block device, FIFO), xattrs,
//!   huge uids/gids, whiteouts and opaque markers.
//! * [`image`]: images built from layers (gzip / zstd / none / multi-member gzip / multi-frame
//!   zstd) with correct digests, sizes and diff_ids unless a [`Corruption`] is asked for;
//!   multi-platform indexes with attestations; written as an OCI layout directory, an
//!   oci-archive tar, or a docker-archive tar (legacy and Docker 25+).
//! * [`listing`]: a normalised listing of an output tar and the invariants every output
//!   must meet ([`Listing::assert_invariants`]).
//! * [`run`]: running the binary with arguments / stdin and checking exit code, stderr and
//!   the files left behind; [`flatten`] / [`flatten_fails`] do the common round trip.
//!
//! Only the crates already in Cargo.toml are used (tar, flate2, zstd, sha2, serde_json,
//! tempfile). The `tar` crate is used for reading output only, never for writing layers.
//!
//! A test file starts with `mod common; use common::*;`.
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
pub use tools::{have, is_root, require_root_and_tools, require_tools};
