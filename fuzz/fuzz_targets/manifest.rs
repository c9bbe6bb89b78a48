//! Manifest, index and config parsing on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = oci2wsl::image::manifest::parse_document(data, None);
    let _ = oci2wsl::image::manifest::parse_document(data, Some("application/vnd.oci.image.index.v1+json"));
    if let Ok(config) = oci2wsl::image::parse_config(data) {
        let _ = oci2wsl::image::diff_ids(&config);
    }
});
