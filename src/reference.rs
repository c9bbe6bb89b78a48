//! Image references: which transport a user named and what it points at.
//!
//! The forms follow skopeo's transports (`oci:`, `oci-archive:`, `docker-archive:`), so a
//! command line that works with `skopeo copy` names the same image here.

use crate::image::digest::Digest;
use anyhow::{bail, Result};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// No tag given: the layout or archive must hold exactly one image.
    Only,
    Tag(String),
    Digest(Digest),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceRef {
    /// `oci:PATH[:TAG|@DIGEST]`
    OciLayout { path: String, selector: Selector },
    /// `oci-archive:FILE[:TAG]`, FILE `-` for standard input.
    OciArchive { path: String, selector: Selector },
    /// `docker-archive:FILE[:REPO:TAG]`, FILE `-` for standard input.
    DockerArchive {
        path: String,
        repo_tag: Option<String>,
    },
    /// `docker-daemon:NAME[:TAG]`, `NAME@DIGEST` or an image ID `sha256:HEX`: an image in a
    /// running Docker engine. `image` always carries a tag, a digest or is an ID.
    DockerDaemon { image: String },
    /// Anything else is a registry reference (`postgres:16`, `docker://ghcr.io/o/a@sha256:…`).
    Registry(String),
}

impl SourceRef {
    pub fn parse(text: &str) -> Result<SourceRef> {
        if let Some(rest) = text.strip_prefix("oci:") {
            let (path, selector) = split_path_and_selector(rest, "oci")?;
            return Ok(SourceRef::OciLayout { path, selector });
        }
        if let Some(rest) = text.strip_prefix("oci-archive:") {
            let (path, selector) = split_path_and_selector(rest, "oci-archive")?;
            return Ok(SourceRef::OciArchive { path, selector });
        }
        if let Some(rest) = text.strip_prefix("docker-archive:") {
            let (path, tail) = split_path(rest);
            if path.is_empty() {
                bail!("docker-archive: needs a file name (or - for standard input)");
            }
            let repo_tag = tail.filter(|t| !t.is_empty());
            if let Some(rt) = &repo_tag {
                if rt.starts_with('@') {
                    bail!("docker-archive: selects an image by REPO:TAG, not by digest ({rt:?})");
                }
            }
            return Ok(SourceRef::DockerArchive { path, repo_tag });
        }
        if let Some(rest) = text.strip_prefix("docker-daemon:") {
            return Ok(SourceRef::DockerDaemon {
                image: daemon_image(rest)?,
            });
        }
        for transport in ["dir:", "containers-storage:", "ostree:", "sif:"] {
            if text.starts_with(transport) {
                bail!(
                    "the {} transport is not supported; use oci:, oci-archive:, docker-archive:, docker-daemon: or a registry reference",
                    transport.trim_end_matches(':')
                );
            }
        }
        let name = text.strip_prefix("docker://").unwrap_or(text);
        if name.is_empty() {
            bail!("empty image reference");
        }
        Ok(SourceRef::Registry(name.to_string()))
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sel = |s: &Selector| match s {
            Selector::Only => String::new(),
            Selector::Tag(t) => format!(":{t}"),
            Selector::Digest(d) => format!("@{d}"),
        };
        match self {
            SourceRef::OciLayout { path, selector } => write!(f, "oci:{path}{}", sel(selector)),
            SourceRef::OciArchive { path, selector } => {
                write!(f, "oci-archive:{path}{}", sel(selector))
            }
            SourceRef::DockerArchive { path, repo_tag } => match repo_tag {
                Some(t) => write!(f, "docker-archive:{path}:{t}"),
                None => write!(f, "docker-archive:{path}"),
            },
            SourceRef::DockerDaemon { image } => write!(f, "docker-daemon:{image}"),
            // A name that would read back as another transport keeps its scheme.
            SourceRef::Registry(r) if SourceRef::parse(r).ok().as_ref() != Some(self) => {
                write!(f, "docker://{r}")
            }
            SourceRef::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// Checks a `docker-daemon:` image name and completes it as skopeo's transport and
/// `docker save` would read it. The name goes into the engine's URL path, so only the
/// characters image names, tags and digests use are allowed.
fn daemon_image(text: &str) -> Result<String> {
    const FORMS: &str = "NAME[:TAG], NAME@DIGEST or an image ID sha256:HEX";
    if text.is_empty() {
        bail!("docker-daemon: needs an image, as {FORMS}");
    }
    // An image ID: skopeo takes a bare `sha256:HEX` as one, never as repository `sha256`.
    if text.starts_with("sha256:") {
        let id = Digest::parse(text)
            .map_err(|e| anyhow::anyhow!("docker-daemon:{text}: not an image ID: {e}"))?;
        return Ok(id.to_string());
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    if let Some(c) = text.chars().find(|c| !allowed(*c)) {
        bail!("docker-daemon:{text}: {c:?} cannot be part of an image name; expected {FORMS}");
    }
    if text.starts_with(['/', ':', '@']) || text.ends_with(['/', ':', '@']) {
        bail!("docker-daemon:{text}: expected {FORMS}");
    }
    let (name, digest) = match text.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (text, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tagged = last.contains(':');
    match digest {
        Some(digest) => {
            if tagged {
                // As skopeo: engines differ on which of the two wins, so refuse to guess.
                bail!("docker-daemon:{text}: give a tag or a digest, not both");
            }
            Digest::parse(digest)
                .map_err(|e| anyhow::anyhow!("docker-daemon:{text}: bad digest: {e}"))?;
            Ok(text.to_string())
        }
        // Without a tag the engine would export every tag of the repository; `docker
        // pull` and `docker run` mean :latest, and so does this.
        None if !tagged => Ok(format!("{text}:latest")),
        None => Ok(text.to_string()),
    }
}

/// Splits `PATH[:REST]` at the first colon, skipping a Windows drive letter (`C:\x`, `C:/x`),
/// also after a `\\?\` or `\\.\` prefix (Windows' verbatim and device paths, which
/// `canonicalize` returns there), as skopeo does: paths cannot contain colons, tags can.
fn split_path(text: &str) -> (String, Option<String>) {
    let b = text.as_bytes();
    let prefix = if b.starts_with(b"\\\\?\\") || b.starts_with(b"\\\\.\\") {
        4
    } else {
        0
    };
    let d = &b[prefix..];
    let skip = if d.len() >= 3
        && d[0].is_ascii_alphabetic()
        && d[1] == b':'
        && (d[2] == b'\\' || d[2] == b'/')
    {
        prefix + 2
    } else {
        0
    };
    match text[skip..].find(':') {
        Some(i) => (
            text[..skip + i].to_string(),
            Some(text[skip + i + 1..].to_string()),
        ),
        None => (text.to_string(), None),
    }
}

fn split_path_and_selector(text: &str, transport: &str) -> Result<(String, Selector)> {
    // A digest selector contains a colon itself, so look for '@' first.
    if let Some(at) = text.rfind('@') {
        let tail = &text[at + 1..];
        if tail.starts_with("sha256:") || tail.starts_with("sha512:") {
            let digest = Digest::parse(tail).map_err(anyhow::Error::msg)?;
            let path = &text[..at];
            if path.is_empty() {
                bail!("{transport}: needs a path before @{digest}");
            }
            return Ok((path.to_string(), Selector::Digest(digest)));
        }
    }
    let (path, tail) = split_path(text);
    if path.is_empty() {
        bail!("{transport}: needs a path (or - for standard input)");
    }
    let selector = match tail {
        None => Selector::Only,
        Some(t) if t.is_empty() => Selector::Only,
        Some(t) => Selector::Tag(t),
    };
    Ok((path, selector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_forms() {
        assert_eq!(
            SourceRef::parse("oci:./lay:app").unwrap(),
            SourceRef::OciLayout {
                path: "./lay".into(),
                selector: Selector::Tag("app".into())
            }
        );
        assert_eq!(
            SourceRef::parse("oci:C:\\img\\lay:v1").unwrap(),
            SourceRef::OciLayout {
                path: "C:\\img\\lay".into(),
                selector: Selector::Tag("v1".into())
            }
        );
        for verbatim in ["\\\\?\\C:\\img\\lay", "\\\\.\\C:\\img\\lay"] {
            assert_eq!(
                SourceRef::parse(&format!("oci:{verbatim}:v1")).unwrap(),
                SourceRef::OciLayout {
                    path: verbatim.into(),
                    selector: Selector::Tag("v1".into())
                }
            );
        }
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            SourceRef::parse(&format!("oci:lay@{d}")).unwrap(),
            SourceRef::OciLayout {
                path: "lay".into(),
                selector: Selector::Digest(Digest::parse(d).unwrap())
            }
        );
        assert_eq!(
            SourceRef::parse("oci:lay").unwrap(),
            SourceRef::OciLayout {
                path: "lay".into(),
                selector: Selector::Only
            }
        );
        assert!(SourceRef::parse("oci:").is_err());
        assert!(SourceRef::parse("oci:lay@sha256:zz").is_err());
    }

    #[test]
    fn archive_forms() {
        assert_eq!(
            SourceRef::parse("docker-archive:-").unwrap(),
            SourceRef::DockerArchive {
                path: "-".into(),
                repo_tag: None
            }
        );
        assert_eq!(
            SourceRef::parse("docker-archive:./app.tar:app:1.2").unwrap(),
            SourceRef::DockerArchive {
                path: "./app.tar".into(),
                repo_tag: Some("app:1.2".into())
            }
        );
        assert_eq!(
            SourceRef::parse("oci-archive:-").unwrap(),
            SourceRef::OciArchive {
                path: "-".into(),
                selector: Selector::Only
            }
        );
        assert_eq!(
            SourceRef::parse("docker://postgres").unwrap(),
            SourceRef::Registry("postgres".into())
        );
    }

    #[test]
    fn printed_registry_names_read_back_as_registry_names() {
        for text in [
            "postgres:16",
            "docker://oci:x:y",
            "docker://docker://x",
            "docker://dir:x",
        ] {
            let r = SourceRef::parse(text).unwrap();
            assert_eq!(SourceRef::parse(&r.to_string()).unwrap(), r, "{text}");
        }
        assert_eq!(
            SourceRef::parse("postgres:16").unwrap().to_string(),
            "postgres:16"
        );
    }

    #[test]
    fn daemon_forms() {
        let image = |text: &str| match SourceRef::parse(text).unwrap() {
            SourceRef::DockerDaemon { image } => image,
            other => panic!("{text} parsed as {other:?}"),
        };
        assert_eq!(image("docker-daemon:alpine"), "alpine:latest");
        assert_eq!(image("docker-daemon:alpine:3.20"), "alpine:3.20");
        assert_eq!(
            image("docker-daemon:localhost:5000/team/app"),
            "localhost:5000/team/app:latest"
        );
        assert_eq!(
            image("docker-daemon:localhost:5000/team/app:v1"),
            "localhost:5000/team/app:v1"
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(image(&format!("docker-daemon:app@{d}")), format!("app@{d}"));
        assert_eq!(image(&format!("docker-daemon:{d}")), d);
        for bad in [
            "docker-daemon:".to_string(),
            format!("docker-daemon:app:1@{d}"),
            "docker-daemon:sha256:abc".to_string(),
            "docker-daemon:app@sha256:zz".to_string(),
            "docker-daemon:app:1?x=y".to_string(),
            "docker-daemon:app 1".to_string(),
            "docker-daemon:app:".to_string(),
            "docker-daemon:/app".to_string(),
        ] {
            assert!(SourceRef::parse(&bad).is_err(), "{bad}");
        }
        let r = SourceRef::parse("docker-daemon:app").unwrap();
        assert_eq!(r.to_string(), "docker-daemon:app:latest");
        assert_eq!(SourceRef::parse(&r.to_string()).unwrap(), r);
        // A registry image named like the transport keeps its scheme when printed.
        let r = SourceRef::parse("docker://docker-daemon:x").unwrap();
        assert_eq!(SourceRef::parse(&r.to_string()).unwrap(), r);
    }
}
