//! A look at an image before pulling it: the digests, the platforms of its index, its layers
//! and config, and what the WSL stage would write. Fetches the index, manifest and config
//! only, never a layer.
//!
//! The default user is therefore the image's `User` (or `--user`) as written: whether it
//! exists, and its uid, is only known from the image's `/etc/passwd`, which lives in the
//! layers. [`WslPreview::user_checked`] says so rather than guessing.

use crate::error::{Error, ErrorKind, ResultExt};
use crate::events::{self, SharedObserver};
use crate::image::PlatformChoice;
use crate::source;
use crate::source::remote::RegistryOptions;
use crate::wsl::{self, WslOptions};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to inspect.
#[derive(Clone, Debug)]
pub struct InspectOptions {
    /// The image, as on the command line.
    pub image: String,
    /// Which platform to choose from an index.
    pub platform: PlatformChoice,
    /// How to reach registries.
    pub registry: RegistryOptions,
    /// The WSL options a conversion would use; `None` for `--no-wsl-config`.
    pub wsl: Option<WslOptions>,
}

/// Everything inspect learns.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The image as the user named it.
    pub image: String,
    /// The index the reference names, when it names one.
    pub index_digest: Option<String>,
    /// The single-platform manifest chosen for the platform asked for.
    pub manifest_digest: Option<String>,
    /// The image config's digest.
    pub config_digest: String,
    /// The chosen image's platform.
    pub platform: String,
    /// Every entry of the index (empty without one).
    pub platforms: Vec<PlatformEntry>,
    /// The chosen image's layers, bottom first.
    pub layers: Vec<InspectLayer>,
    /// Sum of the layer sizes: what a full pull downloads.
    pub download_bytes: u64,
    /// The parts of the image config a conversion uses.
    pub config: ConfigSummary,
    /// What the WSL stage would write; `None` with `--no-wsl-config`.
    pub wsl: Option<WslPreview>,
    /// What resolving noticed (a platform mismatch, …).
    pub warnings: Vec<String>,
}

/// One entry of the index.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformEntry {
    /// `os/arch[/variant]`, or `None` when the entry states none.
    pub platform: Option<String>,
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The manifest's media type.
    pub media_type: String,
    /// A BuildKit attestation (provenance, SBOM), never converted.
    pub attestation: bool,
    /// The entry this platform choice takes.
    pub chosen: bool,
}

/// One layer.
#[derive(Clone, Debug, Serialize)]
pub struct InspectLayer {
    /// The blob digest, when the source has one.
    pub digest: Option<String>,
    /// The uncompressed tar's digest.
    pub diff_id: String,
    /// Compressed size, when stated.
    pub size: Option<u64>,
    /// The layer's media type.
    pub media_type: String,
}

/// The parts of the image config a WSL user cares about.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConfigSummary {
    /// `User`.
    pub user: Option<String>,
    /// `Env`, as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `ExposedPorts`.
    pub exposed_ports: Vec<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

/// What the WSL stage would write, as far as it is known without the layers.
#[derive(Clone, Debug, Serialize)]
pub struct WslPreview {
    /// The default user a conversion sets (`--user`, else the image's `User`); `None`
    /// leaves WSL's default, root.
    pub default_user: Option<String>,
    /// Always false: the user is looked up in the image's `/etc/passwd` when converting
    /// (a missing user then stays root, with a warning); inspect reads no layer.
    pub user_checked: bool,
    /// The `/etc/profile.d/oci2wsl-env.sh` a conversion writes, if any.
    pub environment_script: Option<String>,
    /// What the translation warns about that is known from the config alone.
    pub warnings: Vec<String>,
}

/// Resolves `opts.image` and reports what converting it would read and write. `observer`
/// hears of retries and warnings (as in a conversion); no layer is fetched.
pub fn inspect(opts: &InspectOptions, observer: SharedObserver) -> Result<Inspection, Error> {
    inspect_inner(opts, observer).map_err(Error::from)
}

fn inspect_inner(opts: &InspectOptions, observer: SharedObserver) -> anyhow::Result<Inspection> {
    let reference = source::parse_reference(&opts.image).kind(ErrorKind::Usage)?;
    let source = source::open(
        &reference,
        &opts.registry,
        observer.clone(),
        &crate::cancel::Cancel::new(),
    )
    .map_err(crate::pipeline::about_the_image(&reference))?;
    let image = source
        .resolve(&opts.platform)
        .map_err(crate::pipeline::about_the_image(&reference))?;
    for warning in &image.warnings {
        events::warn(observer.as_ref(), warning.clone());
    }
    let chosen = image.manifest_digest.as_ref();
    let platforms = image
        .index_entries
        .iter()
        .map(|e| PlatformEntry {
            platform: e.platform.clone(),
            digest: e.digest.to_string(),
            size: e.size,
            media_type: e.media_type.clone(),
            attestation: e.attestation,
            chosen: Some(&e.digest) == chosen,
        })
        .collect();
    let layers: Vec<InspectLayer> = image
        .layers
        .iter()
        .map(|l| InspectLayer {
            digest: l.digest.as_ref().map(|d| d.to_string()),
            diff_id: l.diff_id.to_string(),
            size: l.size,
            media_type: l.media_type.clone(),
        })
        .collect();
    let config = match image.config.config() {
        Some(c) => {
            let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
            exposed_ports.sort();
            ConfigSummary {
                user: c.user().clone().filter(|u| !u.is_empty()),
                env: c.env().clone().unwrap_or_default(),
                working_dir: c.working_dir().clone().filter(|d| !d.is_empty()),
                entrypoint: c.entrypoint().clone().unwrap_or_default(),
                cmd: c.cmd().clone().unwrap_or_default(),
                exposed_ports,
                labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
            }
        }
        None => ConfigSummary::default(),
    };
    let wsl = opts.wsl.clone().map(|options| {
        let default_user = options.user.clone().or_else(|| config.user.clone());
        let mut translation = wsl::Translation::new(&image, reference.to_string(), options);
        let environment_script = translation.environment_script();
        WslPreview {
            default_user,
            user_checked: false,
            environment_script,
            warnings: translation.report.warnings,
        }
    });
    let download_bytes = image.layers.iter().filter_map(|l| l.size).sum();
    Ok(Inspection {
        image: reference.to_string(),
        index_digest: image.index_digest.as_ref().map(|d| d.to_string()),
        manifest_digest: image.manifest_digest.as_ref().map(|d| d.to_string()),
        config_digest: image.config_digest.to_string(),
        platform: image.platform(),
        platforms,
        layers,
        download_bytes,
        config,
        wsl,
        warnings: image.warnings.clone(),
    })
}
