//! Arbitrary bytes as 1-4 layer tars (split at "LAYR"), flattened; when flattening succeeds
//! the output must meet the invariants of oci2wsl::output::check.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci2wsl::layer::{flatten, FlattenOptions};
use oci2wsl::output::check::check_tar;
use oci2wsl::output::tar_writer::TarWriter;
use oci2wsl::source::memory::MemorySource;
use oci2wsl::source::ImageSource;

fuzz_target!(|data: &[u8]| {
    let mut layers: Vec<Vec<u8>> = Vec::new();
    let mut rest = data;
    while layers.len() < 3 {
        match rest.windows(4).position(|w| w == b"LAYR") {
            Some(i) => {
                layers.push(rest[..i].to_vec());
                rest = &rest[i + 4..];
            }
            None => break,
        }
    }
    layers.push(rest.to_vec());
    let source = MemorySource::from_tars(layers);
    let image = source.resolve(&Default::default()).expect("memory images resolve");
    let mut out = TarWriter::new(Vec::new());
    let options = FlattenOptions { jobs: 1, max_expansion: 100 };
    if flatten(&source, &image, &mut out, &options, None).is_ok() {
        let bytes = out.finish().expect("writing to memory");
        if let Err(e) = check_tar(&bytes) {
            panic!("invariant broken: {e}");
        }
    }
});
