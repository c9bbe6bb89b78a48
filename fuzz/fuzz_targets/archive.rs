//! Bytes as an oci-archive and a docker-archive (raw, or `T`+kind: JSON templates whose
//! digests and sizes are filled in): open, resolve, flatten, check the output invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_archive(data) {
        panic!("{broken}");
    }
});
