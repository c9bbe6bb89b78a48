//! oci2wsl: turn an OCI/Docker image into a WSL root file system in one streaming pass.
//!
//! # As a library
//!
//! [`run`] converts one image with [`Options`] and reports to an [`Observer`] while it works;
//! it returns a [`Summary`], or an [`Error`] whose [`ErrorKind`] has a stable
//! [`code`](ErrorKind::code). [`Options::cancel`] is a [`Cancel`] token: cancel it from any
//! thread and the run stops, removes its temporary files and fails with
//! [`ErrorKind::Interrupted`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use oci2wsl::{Destination, ErrorKind, Event, Observer, Options};
//!
//! struct Print;
//! impl Observer for Print {
//!     fn event(&self, event: &Event) {
//!         if let Event::Warning { message } = event {
//!             eprintln!("warning: {message}");
//!         }
//!     }
//! }
//!
//! let options = Options::new(
//!     "oci:./layout:latest",
//!     Destination::File { path: "rootfs.tar.gz".into(), force: true },
//! );
//! match oci2wsl::run(&options, Arc::new(Print)) {
//!     Ok(summary) => println!("{} paths", summary.stats.paths_written),
//!     Err(e) if e.kind() == ErrorKind::NotFound => eprintln!("no such image: {e}"),
//!     Err(e) => eprintln!("{}: {e}", e.code()),
//! }
//! ```
//!
//! [`inspect::inspect`] resolves an image without reading its layers, to show what a
//! conversion would do.
//!
//! The items at the crate root and the modules [`pipeline`], [`events`], [`error`],
//! [`cancel`] and [`inspect`] are the API. The other modules are public only so that the project's own tests,
//! benchmarks and fuzz harness can reach the stages; they are hidden from the documentation
//! and may change in any release.
//!
//! # Inside
//!
//! The modules are the stages of the pipeline, in order: `reference` (what the user named),
//! `source` (where bytes come from), `image` (manifests, indexes, platforms, configs and
//! digests), `layer` (the OCI layer semantics and the two-pass flatten), `output` (tar
//! writing, compression and the atomic output file) and `wsl` (the image config as WSL
//! configuration, and `wsl.exe --import`). Below the stages, used by several of them and
//! using none: `tar` (the tar codec and the entry model), `limits` (every ceiling against
//! hostile input), [`error`], [`events`], [`cancel`], `interrupt` (what a Ctrl-C undoes) and
//! `terminal`. A stage uses only the stages before it and these (a unit test here checks
//! it); the layer stage writes through `layer::EntrySink` so that it need not name the
//! output stage. `cache`, between `reference` and `source`, keeps registry pulls as an OCI
//! layout for the next run. [`pipeline::run`] wires them together; `main.rs` (with
//! `src/cli/`, the binary's own display) only parses the command line and shows events.

#![warn(missing_docs)]

pub use cancel::Cancel;
pub use error::{Error, ErrorKind};
pub use events::{Event, Observer, Phase, Resolved, SharedObserver};
pub use image::platform::Platform;
pub use image::PlatformChoice;
pub use layer::FlattenStats;
pub use output::{Destination, OutputCompression};
pub use pipeline::{run, Imported, Options, Summary};
pub use source::remote::authn::Credentials;
pub use source::remote::RegistryOptions;
pub use wsl::{ImportOptions, Report as WslReport, WslOptions};

pub mod cancel;
pub mod error;
pub mod events;
pub mod inspect;
pub mod pipeline;

// Internals: public for tests, benchmarks and the fuzz harness, not for embedders.
#[doc(hidden)]
pub mod cache;
#[doc(hidden)]
pub mod image;
#[doc(hidden)]
pub mod interrupt;
#[doc(hidden)]
pub mod layer;
#[doc(hidden)]
pub mod limits;
#[doc(hidden)]
pub mod output;
#[doc(hidden)]
pub mod reference;
#[doc(hidden)]
pub mod source;
#[doc(hidden)]
pub mod tar;
#[doc(hidden)]
pub mod terminal;
#[doc(hidden)]
pub mod wsl;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// What each module of the library may use (`crate::NAME`), from the shared modules at
    /// the bottom up through the stages to the ones that wire them: the module graph of
    /// `docs/design.md`. A module not listed here fails the test until it is placed.
    const ALLOWED: &[(&str, &[&str])] = &[
        // Shared below the stages: they use no stage.
        ("error", &[]),
        ("limits", &[]),
        ("terminal", &[]),
        ("cancel", &["error"]),
        ("interrupt", &["cancel"]),
        ("events", &[]),
        ("tar", &["error", "limits"]),
        // The stages, each using only those before it and the shared modules.
        ("image", &["error", "limits", "terminal"]),
        ("reference", &["error", "image"]),
        ("cache", &["error", "image", "terminal"]),
        (
            "source",
            &[
                "error",
                "limits",
                "terminal",
                "cancel",
                "events",
                "tar",
                "image",
                "reference",
                "cache",
            ],
        ),
        (
            "layer",
            &[
                "error", "limits", "terminal", "cancel", "events", "tar", "image", "source",
            ],
        ),
        (
            "output",
            &[
                "error",
                "limits",
                "terminal",
                "cancel",
                "events",
                "interrupt",
                "tar",
                "layer",
            ],
        ),
        (
            "wsl",
            &[
                "error",
                "limits",
                "terminal",
                "cancel",
                "events",
                "interrupt",
                "image",
                "layer",
            ],
        ),
    ];

    /// The modules `path` (a file, or a folder read whole) names as `crate::NAME` in code;
    /// comments, doc comments included, do not count.
    fn uses(path: &Path, found: &mut BTreeSet<String>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                uses(&entry.unwrap().path(), found);
            }
            return;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            return;
        }
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let code = line.split("//").next().unwrap_or_default();
            for (i, _) in code.match_indices("crate::") {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let name: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    !name.is_empty(),
                    "{}: `crate::{{…}}` hides which modules it uses; name each",
                    path.display()
                );
                found.insert(name);
            }
        }
    }

    #[test]
    fn the_graph_check_reads_code_not_comments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("m.rs"),
            "//! [`crate::wsl`] in a doc\nuse crate::pipeline::human;\n\
             let x = crate::image::X; // crate::layer\nlet y = other_crate::output::Y;\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.md"), "crate::cache").unwrap();
        let mut found = BTreeSet::new();
        uses(dir.path(), &mut found);
        assert_eq!(
            found,
            BTreeSet::from(["image".to_string(), "pipeline".to_string()])
        );
    }

    #[test]
    fn each_stage_uses_only_the_stages_before_it_and_the_shared_modules() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let wiring = ["lib", "main", "cli", "pipeline", "inspect"];
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if wiring.contains(&name.as_str()) {
                continue;
            }
            let allowed = ALLOWED
                .iter()
                .find(|(module, _)| *module == name)
                .unwrap_or_else(|| {
                    panic!("src/{name} is not placed in the module graph (ALLOWED, docs/design.md)")
                })
                .1;
            let mut used = BTreeSet::new();
            uses(&path, &mut used);
            used.remove(&name);
            let wrong: Vec<&String> = used
                .iter()
                .filter(|u| !allowed.contains(&u.as_str()))
                .collect();
            assert!(
                wrong.is_empty(),
                "src/{name} uses {wrong:?}, which come after it in the module graph of docs/design.md"
            );
        }
    }
}
