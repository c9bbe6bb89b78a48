//! Micro-benchmarks of the stages that bound a run: layer application (index + emit),
//! inflate, deflate (our parallel libdeflate writer against flate2's single stream) and
//! hashing, on generated data. `cargo bench --bench pipeline`; the end-to-end comparison
//! with the reference tools is `scripts/bench.py`.

use oci2wsl::image::digest::{Algorithm, Hasher};
use oci2wsl::layer::{flatten, FlattenOptions};
use oci2wsl::output::pgzip::ParallelGzWriter;
use oci2wsl::output::tar_writer::TarWriter;
use oci2wsl::source::memory::MemorySource;
use oci2wsl::source::ImageSource;
use std::io::{Read, Write};
use std::sync::OnceLock;

fn main() {
    divan::main();
}

/// Text-like file content: compresses about as well as a Debian root file system.
fn content(seed: u32, len: usize) -> Vec<u8> {
    let words = [
        "usr", "lib", "share", "config", "value", "the", "package", "version", "install", "debian",
    ];
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(words[(x % 10) as usize].as_bytes());
        out.push(if x % 7 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// A layer tar of `files` files in 50 directories.
fn layer_tar(layer: u32, files: u32, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for d in 0..50 {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, format!("usr/share/d{d}/"), std::io::empty())
            .unwrap();
    }
    for f in 0..files {
        let data = content(layer * 100_000 + f, size);
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, format!("usr/share/d{}/file{f}", f % 50), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Uncompressed layer tars and their gzip blobs.
type Layers = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Three gzip layers, the upper ones replacing part of the lower: about 24 MiB of tar.
fn image() -> &'static Layers {
    static IMAGE: OnceLock<Layers> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tars: Vec<Vec<u8>> = (0..3).map(|l| layer_tar(l, 2000, 4096)).collect();
        let blobs = tars.iter().map(|t| gzip(t)).collect();
        (tars, blobs)
    })
}

fn tar_bytes() -> u64 {
    image().0.iter().map(|t| t.len() as u64).sum()
}

#[divan::bench(args = [1, 2])]
fn flatten_gzip_layers_to_tar(bencher: divan::Bencher, jobs: usize) {
    let (tars, blobs) = image();
    let source = MemorySource::new(blobs.iter().cloned().zip(tars.iter().cloned()).collect());
    let img = source.resolve(&Default::default()).unwrap();
    bencher
        .counter(divan::counter::BytesCount::new(tar_bytes()))
        .bench(|| {
            let mut out = TarWriter::new(std::io::sink());
            flatten(
                &source,
                &img,
                &mut out,
                &FlattenOptions {
                    jobs,
                    ..Default::default()
                },
                None,
            )
            .unwrap();
        });
}

#[divan::bench]
fn flatten_uncompressed_layers_to_tar(bencher: divan::Bencher) {
    let (tars, _) = image();
    let source = MemorySource::from_tars(tars.clone());
    let img = source.resolve(&Default::default()).unwrap();
    bencher
        .counter(divan::counter::BytesCount::new(tar_bytes()))
        .bench(|| {
            let mut out = TarWriter::new(std::io::sink());
            flatten(
                &source,
                &img,
                &mut out,
                &FlattenOptions {
                    jobs: 2,
                    ..Default::default()
                },
                None,
            )
            .unwrap();
        });
}

#[divan::bench]
fn inflate(bencher: divan::Bencher) {
    let (tars, blobs) = image();
    bencher
        .counter(divan::counter::BytesCount::new(tars[0].len()))
        .bench(|| {
            let mut d = flate2::read::MultiGzDecoder::new(&blobs[0][..]);
            std::io::copy(&mut d, &mut std::io::sink()).unwrap()
        });
}

#[divan::bench(args = [1, 2])]
fn deflate_parallel_libdeflate(bencher: divan::Bencher, threads: usize) {
    let data = &image().0[0];
    bencher
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            let mut w = ParallelGzWriter::new(std::io::sink(), 6, threads).unwrap();
            w.write_all(data).unwrap();
            w.finish().unwrap();
        });
}

#[divan::bench]
fn deflate_flate2_single_stream(bencher: divan::Bencher) {
    let data = &image().0[0];
    bencher
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            let mut e = flate2::write::GzEncoder::new(std::io::sink(), flate2::Compression::new(6));
            e.write_all(data).unwrap();
            e.finish().unwrap();
        });
}

#[divan::bench(args = ["sha256", "sha512"])]
fn hash(bencher: divan::Bencher, algorithm: &str) {
    let data = &image().0[0];
    let alg = if algorithm == "sha256" {
        Algorithm::Sha256
    } else {
        Algorithm::Sha512
    };
    bencher
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            let mut h = Hasher::new(alg);
            h.update(data);
            h.finish()
        });
}

#[divan::bench]
fn read_tar_headers_only(bencher: divan::Bencher) {
    let data = &image().0[0];
    bencher
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| {
            let mut a = tar::Archive::new(&data[..]);
            let mut n = 0;
            for e in a.entries().unwrap() {
                let mut e = e.unwrap();
                n += e.path_bytes().len();
                let mut sink = [0u8; 1];
                let _ = e.read(&mut sink[..0]);
            }
            n
        });
}
