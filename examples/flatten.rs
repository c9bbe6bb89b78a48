//! Flattens an OCI image layout into a WSL root file system tarball through the library,
//! printing its own progress: what a program that embeds oci2wsl does.
//!
//!     cargo run --example flatten -- LAYOUT_DIR[:TAG] OUTPUT.tar[.gz|.zst]

use oci2wsl::{run, Destination, Event, Observer, Options, Phase};
use std::process::ExitCode;
use std::sync::Arc;

/// Prints one line per phase and layer; a GUI would move its progress bars here.
struct Lines;

impl Observer for Lines {
    fn event(&self, event: &Event) {
        match event {
            Event::Resolved(image) => {
                println!("{}: {} layers", image.platform, image.layers.len())
            }
            Event::LayerDone {
                phase,
                layer,
                bytes,
            } => {
                println!("{} layer {layer}: {bytes} bytes", phase.name())
            }
            Event::EmitStarted { paths, .. } => println!("writing {paths} paths"),
            Event::Warning { message } => eprintln!("warning: {message}"),
            Event::Progress {
                phase: Phase::Emit, ..
            } => {}
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layout, output] = args.as_slice() else {
        eprintln!("usage: flatten LAYOUT_DIR[:TAG] OUTPUT.tar[.gz|.zst]");
        return ExitCode::from(2);
    };
    let options = Options::new(
        format!("oci:{layout}"),
        Destination::File {
            path: output.into(),
            force: true,
        },
    );
    match run(&options, Arc::new(Lines)) {
        Ok(summary) => {
            println!(
                "{} ({}): {} paths, {} bytes written to {output}",
                summary.image,
                summary.config_digest,
                summary.stats.paths_written,
                summary.bytes_out
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The kind's code is stable: match on it, not on the message.
            eprintln!("{} error: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}
