//! Arbitrary bytes as an oci-archive and as a docker-archive: open, resolve, flatten; a
//! successful flatten must meet the output invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci2wsl::layer::{flatten, FlattenOptions};
use oci2wsl::output::check::check_tar;
use oci2wsl::output::tar_writer::TarWriter;
use oci2wsl::reference::Selector;
use oci2wsl::source::docker_archive::DockerArchiveSource;
use oci2wsl::source::layout::LayoutSource;
use oci2wsl::source::store::TarStore;
use oci2wsl::source::ImageSource;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else { return };
    if file.write_all(data).is_err() {
        return;
    }
    let path = file.path().to_string_lossy().into_owned();
    let sources: Vec<Box<dyn ImageSource>> = [0, 1]
        .iter()
        .filter_map(|kind| {
            let store = TarStore::open(&path).ok()?;
            Some(if *kind == 0 {
                Box::new(LayoutSource::new("fuzz".into(), Box::new(store), Selector::Only)) as Box<dyn ImageSource>
            } else {
                Box::new(DockerArchiveSource::new("fuzz".into(), Box::new(store), None))
            })
        })
        .collect();
    for source in sources {
        let Ok(image) = source.resolve(&Default::default()) else { continue };
        let mut out = TarWriter::new(Vec::new());
        let options = FlattenOptions { jobs: 1, max_expansion: 100 };
        if flatten(source.as_ref(), &image, &mut out, &options, None).is_ok() {
            let bytes = out.finish().expect("writing to memory");
            if let Err(e) = check_tar(&bytes) {
                panic!("invariant broken: {e}");
            }
        }
    }
});
