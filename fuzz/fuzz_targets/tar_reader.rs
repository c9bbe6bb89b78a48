//! The layer tar parser on arbitrary bytes: errors are fine, panics and hangs are not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci2wsl::layer::tar_reader::TarReader;
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let mut tar = TarReader::new(data);
    let mut buf = [0u8; 4096];
    while let Ok(Some(_)) = tar.next_entry() {
        let mut content = tar.content();
        while let Ok(n) = content.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
});
