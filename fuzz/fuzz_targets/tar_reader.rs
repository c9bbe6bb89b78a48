//! oci2wsl's layer tar parser on arbitrary bytes: errors are fine, panics and hangs are not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_tar_reader(data) {
        panic!("{broken}");
    }
});
