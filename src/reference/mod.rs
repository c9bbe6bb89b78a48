//! What the user typed as IMAGE: which transport it names and what that points at, and the
//! mistakes people make when naming one (a bare path, a URL, a transport in capitals).
//!
//! The forms follow skopeo's transports (`oci:`, `oci-archive:`, `docker-archive:`), so a
//! command line that works with `skopeo copy` names the same image here. The line between
//! the two parsers: this module decides what kind of reference the text is and refuses what
//! is no reference at all; [`registry`] reads a registry name by docker's grammar (default
//! registry, `library/`, tag or digest). Every error of either comes before anything runs.

pub mod registry;

use crate::image::digest::Digest;
use anyhow::{bail, Result};
use std::fmt;
use std::path::Path;

/// The transports, as they must be written: their names are case-sensitive, as skopeo's.
pub const TRANSPORTS: &str = "oci:, oci-archive:, docker-archive:, docker-daemon: and docker://";

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

/// What a file named as IMAGE holds, as far as a look inside it tells. The reference stage
/// knows only names; the source stage, which reads archives, answers this (see
/// `source::parse_reference`), so that a bare path is met with the transport it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A tar with `manifest.json`: `docker save` output.
    Docker,
    /// A tar with `index.json` or `oci-layout`: an OCI layout in a tar.
    Oci,
    /// Something else.
    Neither,
    /// Nobody looked inside.
    Unknown,
}

impl SourceRef {
    /// Parses what the user typed. A bare path gets advice without a look inside the file;
    /// `source::parse_reference` looks.
    pub fn parse(text: &str) -> Result<SourceRef> {
        Self::parse_with(text, &|_| ArchiveKind::Unknown)
    }

    /// Parses what the user typed; `sniff` says what a file named without a transport holds.
    pub fn parse_with(text: &str, sniff: &dyn Fn(&Path) -> ArchiveKind) -> Result<SourceRef> {
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
        let name = match text.strip_prefix("docker://") {
            Some(name) => name,
            None => {
                refuse_what_is_no_registry_name(text, sniff)?;
                text
            }
        };
        if name.is_empty() {
            bail!("empty image reference");
        }
        registry::RegistryRef::parse(name)?;
        Ok(SourceRef::Registry(name.to_string()))
    }
}

/// The text is no transport and is about to be read as a registry name: refuse what a user
/// meant as something else, saying what to type instead. `docker://` in front skips this.
fn refuse_what_is_no_registry_name(text: &str, sniff: &dyn Fn(&Path) -> ArchiveKind) -> Result<()> {
    let lower = text.to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        if lower.starts_with(scheme) {
            let rest = &text[scheme.len()..];
            let suggestion = docker_hub_page(rest)
                .unwrap_or_else(|| rest.trim_end_matches('/').replacen("/v2/", "/", 1));
            bail!("{text} is a URL, not an image reference: write HOST/REPOSITORY[:TAG] without the scheme, as in {suggestion}");
        }
    }
    if let Some(suggestion) = docker_hub_page(text) {
        bail!("{text} is a Docker Hub web page, not an image reference: write {suggestion}");
    }
    if let Some(kind) = PathKind::of(text, sniff) {
        bail!("{}", kind.advice(text));
    }
    if let Some((prefix, rest)) = text.split_once(':') {
        let scheme_like = !prefix.is_empty()
            && prefix.starts_with(|c: char| c.is_ascii_alphabetic())
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-_".contains(c));
        let known = [
            "oci",
            "oci-archive",
            "docker-archive",
            "docker-daemon",
            "docker",
        ]
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(prefix));
        if let Some(known) = known.filter(|_| scheme_like && prefix != prefix.to_ascii_lowercase())
        {
            let written = if known == "docker" {
                "docker://"
            } else {
                &format!("{known}:")
            };
            bail!("unknown transport {prefix}: transport names are case-sensitive: write {written}{} (the transports are {TRANSPORTS})", rest.trim_start_matches("//"));
        }
        // A registry name has a port (digits, then `/` or the end) or a tag (no `/`) after
        // its first colon; a path or `//` there means a transport this program lacks.
        let path_follows = rest.starts_with(['/', '\\', '.', '~']);
        if scheme_like && !prefix.contains('.') && path_follows {
            bail!("unknown transport {prefix}: (transport names are case-sensitive; the transports are {TRANSPORTS})");
        }
    }
    Ok(())
}

/// `hub.docker.com/_/postgres` or `hub.docker.com/r/bitnami/redis[/tags]`: the reference
/// that page is about.
fn docker_hub_page(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("hub.docker.com/")
        .or_else(|| lower.strip_prefix("www.hub.docker.com/"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["_", name, ..] => Some(name.to_string()),
        ["r", namespace, name, ..] => Some(format!("{namespace}/{name}")),
        _ => Some("NAME[:TAG] (the name the page shows after docker pull)".to_string()),
    }
}

/// What a bare path given as IMAGE points at, as far as its first bytes tell.
#[derive(Debug, PartialEq, Eq)]
enum PathKind {
    Missing,
    OciLayout,
    OtherDirectory,
    DockerArchive,
    OciArchive,
    CompressedArchive,
    OtherFile,
    /// A file nobody looked inside.
    UnknownFile,
}

impl PathKind {
    /// `None`: the text is no path (or names nothing that could be an image, and reads as a
    /// registry name). Path syntax (`./`, `/`, `~`, `C:\`, a backslash) is always a path;
    /// a plain name is one only when a file or directory of that name holds an image.
    fn of(text: &str, sniff: &dyn Fn(&Path) -> ArchiveKind) -> Option<PathKind> {
        let b = text.as_bytes();
        let drive = b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && (b[2] == b'\\' || b[2] == b'/');
        let path_syntax = drive
            || text.starts_with(['/', '~', '\\'])
            || text.starts_with("./")
            || text.starts_with("../")
            || text.starts_with(".\\")
            || text.starts_with("..\\")
            || text.contains('\\');
        let path = Path::new(text);
        let kind = match std::fs::metadata(path) {
            Err(_) => PathKind::Missing,
            Ok(m) if m.is_dir() => {
                if path.join("oci-layout").is_file() || path.join("index.json").is_file() {
                    PathKind::OciLayout
                } else {
                    PathKind::OtherDirectory
                }
            }
            Ok(_) => sniff_archive(path, sniff),
        };
        match kind {
            _ if path_syntax => Some(kind),
            PathKind::OciLayout
            | PathKind::DockerArchive
            | PathKind::OciArchive
            | PathKind::CompressedArchive => Some(kind),
            _ => None,
        }
    }

    fn advice(&self, text: &str) -> String {
        let need = "a local image needs its transport";
        match self {
            PathKind::Missing => format!("{text} looks like a path, and there is no such file or directory; {need}: docker-archive:FILE (docker save), oci-archive:FILE or oci:DIR"),
            PathKind::OciLayout => format!("{text} is an OCI layout directory, not an image reference: write oci:{text}"),
            PathKind::OtherDirectory => format!("{text} is a directory without an oci-layout file, so not an OCI layout; {need}: oci:DIR for a layout, docker-archive:FILE or oci-archive:FILE for a tar"),
            PathKind::DockerArchive => format!("{text} is a docker save archive, not an image reference: write docker-archive:{text}"),
            PathKind::OciArchive => format!("{text} is an OCI layout in a tar, not an image reference: write oci-archive:{text}"),
            PathKind::CompressedArchive => format!("{text} is a compressed archive, not an image reference: write docker-archive:{text} for docker save output, oci-archive:{text} for an OCI layout"),
            PathKind::OtherFile => format!("{text} is a file that holds no image archive (no manifest.json, no index.json); {need}: docker-archive:FILE, oci-archive:FILE or oci:DIR"),
            PathKind::UnknownFile => format!("{text} is a file, not an image reference; {need}: docker-archive:FILE (docker save) or oci-archive:FILE (an OCI layout in a tar)"),
        }
    }
}

/// Which image archive a file is: a compressed file is not opened further, as that could
/// mean inflating gigabytes to say one line; a plain tar's member names decide (`sniff`).
fn sniff_archive(path: &Path, sniff: &dyn Fn(&Path) -> ArchiveKind) -> PathKind {
    let mut head = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head));
    match read {
        Ok(4) if head.starts_with(&[0x1f, 0x8b]) || head == [0x28, 0xb5, 0x2f, 0xfd] => {
            return PathKind::CompressedArchive
        }
        Ok(_) => {}
        Err(_) => return PathKind::OtherFile,
    }
    match sniff(path) {
        ArchiveKind::Docker => PathKind::DockerArchive,
        ArchiveKind::Oci => PathKind::OciArchive,
        ArchiveKind::Neither => PathKind::OtherFile,
        ArchiveKind::Unknown => PathKind::UnknownFile,
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
            "docker://docker:latest",
            "docker://localhost:5000/a",
            "docker://docker://x",
            "docker://dir:x",
        ] {
            let r = SourceRef::parse(text).unwrap();
            assert_eq!(SourceRef::parse(&r.to_string()).unwrap(), r, "{text}");
        }
        // Named like another transport, these are no registry names either: refused when
        // parsed, rather than printed in a form that reads back as something else.
        for text in ["docker://oci:x:y", "docker://oci-archive:/x"] {
            assert!(SourceRef::parse(text).is_err(), "{text}");
        }
        assert_eq!(
            SourceRef::parse("postgres:16").unwrap().to_string(),
            "postgres:16"
        );
    }

    #[test]
    fn what_is_no_registry_name_is_refused_with_what_to_write() {
        let err = |text: &str| SourceRef::parse(text).unwrap_err().to_string();
        assert!(err("Oci-Archive:x.tar").contains("write oci-archive:x.tar"));
        assert!(err("DOCKER://postgres").contains("write docker://postgres"));
        assert!(err("oci-layout:/x").contains("unknown transport oci-layout:"));
        assert!(err("containers-storage:x").contains("not supported"));
        assert!(err("https://reg.io/v2/a/b/").contains("as in reg.io/a/b"));
        assert!(err("hub.docker.com/r/bitnami/redis").contains("write bitnami/redis"));
        assert!(err("./x.tar").contains("no such file"));
        assert!(err(".\\x.tar").contains("no such file"));
        // Ports, tags and a registry image called `docker` stay registry names.
        for ok in [
            "localhost:5000/a",
            "reg.io:443/a/b:1",
            "docker:latest",
            "app:v1.0",
        ] {
            assert!(
                matches!(SourceRef::parse(ok), Ok(SourceRef::Registry(_))),
                "{ok}"
            );
        }
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
