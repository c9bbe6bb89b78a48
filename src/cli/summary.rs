//! The few lines printed at the end of a run.

use oci2wsl::output::Destination;
use oci2wsl::pipeline::{human, Summary};
use oci2wsl::terminal::printable;

/// The summary, a fact per line, each short enough for an 80-column terminal (a digest
/// takes 71 columns, so each has a line of its own).
pub fn lines(summary: &Summary, destination: &Destination) -> Vec<String> {
    let dest = match (destination, &summary.imported) {
        (Destination::Stdout, Some(imported)) => format!("wsl --import {}", imported.name),
        (Destination::Stdout, None) => "standard output".to_string(),
        (Destination::File { path, .. }, _) => path.display().to_string(),
    };
    let mut lines = vec![format!(
        "{} -> {} in {:.1}s",
        summary.image,
        dest,
        summary.elapsed.as_secs_f64()
    )];
    let label = |name: &str, value: &str| format!("  {name:<17}{value}");
    lines.push(label("platform", &summary.platform));
    if let Some(index) = &summary.index_digest {
        lines.push(label("index digest", index));
    }
    match &summary.manifest_digest {
        Some(manifest) => lines.push(label("manifest digest", manifest)),
        // A legacy `docker save` layer list has no manifest: the config digest is the ID.
        None => lines.push(label("image ID", &summary.config_digest)),
    }
    let stats = &summary.stats;
    lines.push(format!(
        "  {} layer{}, {} path{}: {} read, {} of tar, {} written",
        stats.layers,
        if stats.layers == 1 { "" } else { "s" },
        stats.paths_written,
        if stats.paths_written == 1 { "" } else { "s" },
        human(stats.compressed_bytes),
        human(summary.tar_bytes),
        human(summary.bytes_out),
    ));
    lines
        .into_iter()
        .map(|l| printable(&l).into_owned())
        .collect()
}
