//! The wsl.conf writer and merge (`oci2wsl::wsl::ini`) and the `[boot] command` builder,
//! checked against the tests' separate reading of WSL's grammar
//! (tests/common/wsl_conf_oracle.rs, kept apart from `src/` on purpose).
//!
//! Input: fields separated by NUL bytes: an image's own file, a section, a key, a value,
//! then the arguments of a boot command.
//! - Parsing and printing an untouched file changes nothing but a missing last newline.
//! - `get` reads what WSL reads.
//! - After `set`, WSL reads the new value for that key with no warning about it, every
//!   other key reads as before, and a file WSL stopped reading still stops at the same line.
//! - A boot command for any argv without NUL can be written, and reads back unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_wsl_conf(data) {
        panic!("{broken}");
    }
});
