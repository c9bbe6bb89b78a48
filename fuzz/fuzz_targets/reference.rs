//! Image reference parsing (transports and docker names) on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = oci2wsl::reference::SourceRef::parse(text) {
            let _ = r.to_string();
        }
        if let Ok(r) = oci2wsl::source::remote::reference::RegistryRef::parse(text) {
            // What we print must parse back to the same reference.
            let again = oci2wsl::source::remote::reference::RegistryRef::parse(&r.to_string())
                .expect("a printed reference parses");
            assert_eq!(again, r);
        }
    }
});
