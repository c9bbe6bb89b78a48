//! Every ceiling that protects a run from hostile or broken input, in one place.
//!
//! Images are data from strangers. Each limit here is far above what a real image needs and
//! low enough that a crafted one cannot exhaust memory or disk; each error that a limit
//! raises says which limit it was and, where a flag can raise it, which flag.

/// Largest manifest, index, config, `index.json` or `manifest.json` held in memory. Real ones
/// are a few KiB; Docker Hub itself refuses manifests over 4 MiB.
pub const MAX_JSON_SIZE: u64 = 8 * 1024 * 1024;

/// Longest entry name (bytes after normalisation) and deepest path (components). Linux's
/// PATH_MAX is 4096; nothing longer can be created by an extractor in one call anyway.
pub const MAX_PATH_LEN: usize = 4096;
pub const MAX_PATH_DEPTH: usize = 256;

/// Largest PAX extended header of one entry. Real ones hold a long name and a few xattrs;
/// the largest xattr Linux allows is 64 KiB.
pub const MAX_PAX_SIZE: u64 = 1024 * 1024;

/// Largest number of tar entries in one image, over all layers: the index pass keeps
/// about 60 bytes per path, so this bounds its memory (a Debian root file system has
/// about 10,000 paths; the largest images seen have a few hundred thousand).
pub const MAX_ENTRIES: u64 = 5_000_000;

/// Largest number of members in an outer archive (a docker-archive or oci-archive). A
/// `docker save` of one image holds a few files per layer; a few hundred images with 127
/// layers each stay far below this. Each member costs the index a name and two numbers.
pub const MAX_ARCHIVE_MEMBERS: u64 = 1_000_000;

/// Most layers one image may have. Docker's overlay2 driver stops at 128 lower layers and
/// `docker build` refuses more than 127; anything well beyond that is a crafted image meant
/// to make a run open, download or hold many layers at once.
pub const MAX_LAYERS: usize = 256;

/// Default ceiling of a layer's uncompressed size as a multiple of its compressed size
/// (`--max-expansion`). Root file systems compress 3-10x; a zero-filled file can reach 1000x,
/// hence the flag.
pub const DEFAULT_MAX_EXPANSION: u64 = 100;

/// Below this many uncompressed bytes a layer is never called a decompression bomb, so tiny
/// layers with large sparse-looking files still work.
pub const EXPANSION_FLOOR: u64 = 1 << 30;

/// The uncompressed-size ceiling for a layer of `compressed` bytes.
pub fn max_uncompressed(compressed: u64, max_expansion: u64) -> u64 {
    compressed
        .saturating_mul(max_expansion)
        .max(EXPANSION_FLOOR)
}
