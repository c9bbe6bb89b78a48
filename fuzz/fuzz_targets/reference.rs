//! Image reference parsing (transports and docker names): what parses prints as text that
//! parses to the same reference.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_reference(data) {
        panic!("{broken}");
    }
});
