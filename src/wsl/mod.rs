//! The WSL end of the pipeline: the image config as WSL configuration inside the tar
//! ([`config`]), and the hand-off to `wsl.exe --import` ([`import`]).

pub mod config;
pub mod host;
pub mod import;
pub mod ini;

/// The tests' reading of WSL's configuration grammar, kept apart from `ini` on purpose.
#[cfg(test)]
#[path = "../../tests/support/wsl_conf_oracle.rs"]
pub(crate) mod wsl_conf_oracle;

pub use config::{DistributionName, Report, Translation, WslOptions};
pub use import::ImportOptions;
