//! The index pass's bookkeeping alone, at the scale of issue 16's many-paths image: a
//! node_modules-like layer of a million files, a layer deleting a tenth of the packages and
//! one rewriting another tenth, stacked into the tree and ordered for output.
//! `cargo bench --bench tree`; the whole run with peak RSS is `scripts/bench.py`'s
//! many-paths rows.

use oci2wsl::layer::entry::{Change, EntryKind, EntryMeta};
use oci2wsl::layer::tree::{ScannedEntry, ScannedLayer, Tree};

fn main() {
    divan::main();
}

const FILES_PER_PACKAGE: usize = 50;

fn entry(ordinal: &mut u64, path: String, kind: EntryKind, size: u64) -> ScannedEntry {
    let mut meta = EntryMeta::implicit_dir(path.into_bytes());
    meta.kind = kind;
    meta.size = size;
    meta.mtime = 499_162_500;
    *ordinal += 1;
    ScannedEntry {
        ordinal: *ordinal - 1,
        // As a tar lays it out: a header block per entry, content rounded up to blocks.
        end: *ordinal * 1024 + size,
        change: Change::Add(meta),
        content: None,
    }
}

fn package(layer: &mut ScannedLayer, ordinal: &mut u64, p: usize) {
    let base = format!("app/node_modules/pkg-{p}");
    for d in [
        base.clone(),
        format!("{base}/lib"),
        format!("{base}/lib/util"),
    ] {
        layer.push(entry(ordinal, d, EntryKind::Directory, 0));
    }
    for f in 0..FILES_PER_PACKAGE - 3 {
        let dir = if f < 24 { "lib" } else { "lib/util" };
        let path = format!("{base}/{dir}/m{f}.js");
        layer.push(entry(ordinal, path, EntryKind::Regular, 200 + f as u64));
    }
}

/// The three layers for `paths` files.
fn layers(paths: usize) -> Vec<ScannedLayer> {
    let packages = paths / FILES_PER_PACKAGE;
    let mut all = ScannedLayer::default();
    let mut deletions = ScannedLayer::default();
    let mut rewrites = ScannedLayer::default();
    let (mut o1, mut o2, mut o3) = (0, 0, 0);
    for p in 0..packages {
        package(&mut all, &mut o1, p);
    }
    for p in (0..packages).step_by(10) {
        let path = format!("app/node_modules/pkg-{p}").into_bytes();
        deletions.push(ScannedEntry {
            ordinal: o2,
            end: 0,
            change: Change::Whiteout(path),
            content: None,
        });
        o2 += 1;
    }
    for p in (5..packages).step_by(10) {
        package(&mut rewrites, &mut o3, p);
    }
    vec![all, deletions, rewrites]
}

#[divan::bench(args = [100_000, 1_000_000], sample_count = 3, sample_size = 1)]
fn apply_and_plan(bencher: divan::Bencher, paths: usize) {
    bencher
        .counter(divan::counter::ItemsCount::new(paths))
        .with_inputs(|| layers(paths))
        .bench_values(|layers| {
            let mut tree = Tree::new();
            let count = layers.len();
            for (i, layer) in layers.into_iter().enumerate() {
                tree.apply_layer(i, layer).unwrap();
            }
            let plan = tree.plan(count);
            let dirs = plan.contentless().count();
            let files: usize = (0..count).map(|l| plan.regular(l).count()).sum();
            (dirs, files)
        });
}
