//! Manifest, index and config parsing, and the index → manifest → config walk.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_manifest(data) {
        panic!("{broken}");
    }
});
