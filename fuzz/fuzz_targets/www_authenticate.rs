//! `WWW-Authenticate` challenge parsing: what parses, written back quoted, parses the same.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_www_authenticate(data) {
        panic!("{broken}");
    }
});
