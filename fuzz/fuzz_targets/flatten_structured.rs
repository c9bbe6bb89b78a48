//! Layers of entries from a small alphabet of names (files, directories, symlinks, hardlinks,
//! whiteouts, opaque markers, devices; PAX, GNU and v7 encodings; gzip and zstd), flattened
//! with 1 and 3 threads and compared with a model of docs/layer-semantics.md. See
//! `oci2wsl_fuzz::decode_structured` for the input format.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_structured(data) {
        panic!("{broken}");
    }
});
