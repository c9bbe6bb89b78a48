//! WWW-Authenticate challenge parsing on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = oci2wsl::source::remote::auth::parse_challenge(text);
    }
});
