//! Arbitrary bytes as 1-4 layer tars (`data[0]` picks each layer's compression, `LAYR`
//! separates them), flattened; a successful flatten must meet the output invariants. See
//! `oci2wsl_fuzz::run_flatten_layers`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_flatten_layers(data) {
        panic!("{broken}");
    }
});
