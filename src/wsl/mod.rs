//! The WSL stage: the image config as WSL configuration, and the hand-off to WSL.
//!
//! The configuration goes inside the tar ([`config`]); the tar goes to `wsl.exe --import`
//! ([`import`]).

pub mod config;
pub mod host;
pub mod import;
pub mod ini;

/// The tests' reading of WSL's configuration grammar, kept apart from `ini` on purpose.
#[cfg(test)]
#[path = "../../tests/common/wsl_conf_oracle.rs"]
pub(crate) mod wsl_conf_oracle;

pub use config::{DistributionName, Report, Translation, WslOptions};
pub use import::ImportOptions;
