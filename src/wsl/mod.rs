//! The WSL end of the pipeline: the image config as WSL configuration inside the tar
//! ([`config`]), and the hand-off to `wsl.exe --import` ([`import`]).

pub mod config;
pub mod import;
pub mod ini;

pub use config::{Report, Translation, WslOptions};
pub use import::ImportOptions;
