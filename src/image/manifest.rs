//! Manifests and indexes: parsing the four media types that name an image (OCI and Docker v2
//! schema 2, single manifests and indexes/lists), and choosing one manifest per platform.
//!
//! These are deliberately our own small serde types rather than a full spec model: they accept
//! what registries and `docker save` really write (Docker media types, missing optional
//! fields), while everything this tool relies on (digests, sizes, media types) is validated.

use super::digest::Digest;
use super::platform::Platform;
use crate::error::bail_kind;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::HashMap;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type we can read, for HTTP `Accept` headers.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] =
    [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

pub use crate::limits::MAX_JSON_SIZE;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawDescriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    pub platform: Option<RawPlatform>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RawPlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A descriptor whose digest and size have been validated.
#[derive(Clone, Debug)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub urls: Vec<String>,
    pub annotations: HashMap<String, String>,
    pub platform: Option<RawPlatform>,
}

impl Descriptor {
    pub fn from_raw(raw: RawDescriptor) -> Result<Descriptor> {
        let digest = Digest::parse(&raw.digest).map_err(anyhow::Error::msg)?;
        if raw.size < 0 {
            bail_kind!(
                HostileInput,
                "descriptor {} has negative size {}",
                raw.digest,
                raw.size
            );
        }
        Ok(Descriptor {
            media_type: raw.media_type,
            digest,
            size: raw.size as u64,
            urls: raw.urls.unwrap_or_default(),
            annotations: raw.annotations.unwrap_or_default(),
            platform: raw.platform,
        })
    }

    pub fn platform_string(&self) -> String {
        match &self.platform {
            None => format!("no platform given ({})", self.digest.short()),
            Some(p) => match &p.variant {
                Some(v) if !v.is_empty() => format!("{}/{}/{}", p.os, p.architecture, v),
                _ => format!("{}/{}", p.os, p.architecture),
            },
        }
    }

    /// Buildkit's provenance/SBOM manifests: they sit in indexes as `unknown/unknown`.
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
            || self
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default, rename = "artifactType")]
    artifact_type: Option<String>,
    // Schema 1 has these instead of config/layers.
    #[serde(default, rename = "fsLayers")]
    fs_layers: Option<serde_json::Value>,
}

/// A parsed manifest-like document.
#[derive(Debug)]
pub enum Document {
    Index(Vec<Descriptor>),
    Manifest(Box<Manifest>),
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    /// Set by OCI 1.1 artifacts (signatures, SBOMs, Helm charts pushed with ORAS).
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// Parses an index or manifest. `declared` is the media type the source claimed (the
/// descriptor pointing here, or an HTTP Content-Type), if any.
pub fn parse_document(bytes: &[u8], declared: Option<&str>) -> Result<Document> {
    if bytes.first().is_some_and(|b| *b == b'<') {
        bail_kind!(
            HostileInput,
            "expected a JSON manifest but got what looks like HTML"
        );
    }
    if let Some(t) = declared {
        if t == DOCKER_SCHEMA1 || t == DOCKER_SCHEMA1_SIGNED {
            bail_kind!(Unsupported, "Docker image manifest schema 1 ({t}) is deprecated and not supported; re-push the image with a current client");
        }
    }
    let raw: RawDocument =
        serde_json::from_slice(bytes).context("manifest is not valid JSON of a known shape")?;
    if raw.schema_version == Some(1) || raw.fs_layers.is_some() {
        bail_kind!(Unsupported, "Docker image manifest schema 1 (schemaVersion 1) is deprecated and not supported; re-push the image with a current client");
    }
    match raw.schema_version {
        Some(2) => {}
        Some(v) => bail_kind!(
            Unsupported,
            "the manifest has schemaVersion {v}; only 2 is supported"
        ),
        None => bail_kind!(
            HostileInput,
            "the document has no schemaVersion, so it is no image manifest or index"
        ),
    }
    let media_type = raw
        .media_type
        .clone()
        .or_else(|| declared.map(str::to_string))
        .unwrap_or_default();
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        // OCI allows mediaType to be absent; the shape decides then.
        "" => raw.manifests.is_some(),
        other => bail_kind!(Unsupported, "unsupported manifest media type {other:?} (expected an OCI or Docker v2 image manifest or index)"),
    };
    if is_index {
        let manifests = raw
            .manifests
            .context("index has no \"manifests\" list")?
            .into_iter()
            .map(Descriptor::from_raw)
            .collect::<Result<Vec<_>>>()
            .context("invalid descriptor in index")?;
        return Ok(Document::Index(manifests));
    }
    let config = Descriptor::from_raw(raw.config.context("manifest has no \"config\"")?)
        .context("invalid config descriptor in manifest")?;
    let layers = raw
        .layers
        .context("manifest has no \"layers\" list")?
        .into_iter()
        .map(Descriptor::from_raw)
        .collect::<Result<Vec<_>>>()
        .context("invalid layer descriptor in manifest")?;
    Ok(Document::Manifest(Box::new(Manifest {
        media_type,
        artifact_type: raw.artifact_type.filter(|t| !t.is_empty()),
        config,
        layers,
    })))
}

/// The first entry in index order whose stated platform satisfies `want`, ignoring
/// attestations. Deterministic: indexes may list one platform twice (gzip and zstd
/// variants, say). Entries that state no platform are judged by `super::choose_manifest`.
pub fn first_platform_match<'a>(
    manifests: &'a [Descriptor],
    want: &Platform,
) -> Option<&'a Descriptor> {
    manifests.iter().filter(|d| !d.is_attestation()).find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| want.matches(&p.os, &p.architecture, p.variant.as_deref()))
    })
}

impl Manifest {
    /// Why this manifest is not a container image, when it is an OCI artifact (a Helm chart,
    /// a signature, an SBOM): its `artifactType`, a config that is not an image config, or
    /// layers that are not file-system layers. `None` for an image.
    pub fn artifact_kind(&self) -> Option<String> {
        if let Some(t) = &self.artifact_type {
            return Some(format!("artifactType {t}"));
        }
        let config = self.config.media_type.as_str();
        if !matches!(config, OCI_CONFIG | DOCKER_CONFIG | "") {
            return Some(format!("config media type {config}"));
        }
        self.layers
            .iter()
            .find(|l| is_artifact_layer(&l.media_type))
            .map(|l| format!("layer media type {}", l.media_type))
    }
}

/// A media type that no image builder uses for a file-system layer (cosign's
/// `application/vnd.dev.cosign.simplesigning.v1+json`, a Helm chart's content, …).
fn is_artifact_layer(media_type: &str) -> bool {
    !(media_type.is_empty()
        || media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs."))
}

/// Layer compression as a media type declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Classifies a layer media type; foreign layers are refused because their bytes live outside
/// the image (Windows base layers in practice).
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    Ok(match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Compression::Gzip,
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Compression::Zstd,
        t if t.contains("nondistributable") || t.contains("foreign") => {
            bail_kind!(Unsupported, "foreign (non-distributable) layer type {t:?} is not supported: such layers are Windows base layers whose bytes live outside the image")
        }
        "" => bail_kind!(HostileInput, "layer descriptor has no media type"),
        t => bail_kind!(Unsupported, "unsupported layer media type {t:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn index_json(entries: &[(&str, &str, Option<&str>)]) -> String {
        let m: Vec<String> = entries
            .iter()
            .map(|(os, arch, variant)| {
                let v = variant.map(|v| format!(",\"variant\":\"{v}\"")).unwrap_or_default();
                format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1,"platform":{{"os":"{os}","architecture":"{arch}"{v}}}}}"#)
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            m.join(",")
        )
    }

    #[test]
    fn refuses_schema1_and_html() {
        use crate::error::{classify, ErrorKind};
        let e = parse_document(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        assert_eq!(classify(&e), ErrorKind::Unsupported);
        let e = parse_document(b"{}", Some(DOCKER_SCHEMA1_SIGNED)).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
        assert_eq!(classify(&e), ErrorKind::Unsupported);
        let e = parse_document(b"<html>", None).unwrap_err();
        assert!(e.to_string().contains("HTML"), "{e}");
        assert_eq!(classify(&e), ErrorKind::HostileInput);
    }

    #[test]
    fn selects_platform_and_lists_alternatives() {
        let json = index_json(&[
            ("linux", "amd64", None),
            ("linux", "arm64", Some("v8")),
            ("unknown", "unknown", None),
        ]);
        let Document::Index(list) = parse_document(json.as_bytes(), None).unwrap() else {
            panic!("not an index")
        };
        let arm = first_platform_match(&list, &Platform::parse("linux/arm64").unwrap()).unwrap();
        assert_eq!(arm.platform_string(), "linux/arm64/v8");
        assert!(first_platform_match(&list, &Platform::parse("linux/s390x").unwrap()).is_none());
        assert!(
            first_platform_match(&list, &Platform::parse("unknown/unknown").unwrap()).is_none()
        );
    }

    #[test]
    fn manifest_without_media_type_is_classified_by_shape() {
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D}","size":0}},"layers":[]}}"#
        );
        assert!(matches!(
            parse_document(json.as_bytes(), None).unwrap(),
            Document::Manifest(_)
        ));
    }

    #[test]
    fn artifacts_are_told_from_images() {
        let doc = |config_mt: &str, layer_mt: &str, extra: &str| {
            let json = format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}"{extra},"config":{{"mediaType":"{config_mt}","digest":"{D}","size":0}},"layers":[{{"mediaType":"{layer_mt}","digest":"{D}","size":0}}]}}"#
            );
            let Document::Manifest(m) = parse_document(json.as_bytes(), None).unwrap() else {
                panic!("not a manifest")
            };
            m.artifact_kind()
        };
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(doc(OCI_CONFIG, gz, ""), None);
        assert_eq!(
            doc(
                "application/vnd.cncf.helm.config.v1+json",
                "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                ""
            )
            .unwrap(),
            "config media type application/vnd.cncf.helm.config.v1+json"
        );
        assert_eq!(
            doc(
                "application/vnd.oci.empty.v1+json",
                gz,
                r#","artifactType":"application/vnd.example.sbom""#
            )
            .unwrap(),
            "artifactType application/vnd.example.sbom"
        );
        assert!(doc(
            OCI_CONFIG,
            "application/vnd.dev.cosign.simplesigning.v1+json",
            ""
        )
        .unwrap()
        .contains("cosign"));
    }

    #[test]
    fn layer_types() {
        assert_eq!(
            layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(),
            Compression::Gzip
        );
        assert!(
            layer_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip").is_err()
        );
        assert!(layer_compression("text/html").is_err());
    }
}
