//! Registry references as docker reads them: `postgres` is
//! `docker.io/library/postgres:latest`, served by `registry-1.docker.io`.

use crate::error::{bail_kind, kind_err};
use crate::image::digest::Digest;
use anyhow::Result;
use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRef {
    /// As written in references and credential stores: `docker.io`, `ghcr.io`,
    /// `localhost:5000`.
    pub registry: String,
    /// `library/postgres`, `org/app`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    pub fn parse(text: &str) -> Result<RegistryRef> {
        let original = text;
        let text = text.strip_prefix("docker://").unwrap_or(text);
        if text.is_empty() {
            bail_kind!(Usage, "empty image reference");
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let digest = Digest::parse(d)
                    .map_err(|e| kind_err!(Usage, "invalid reference {original:?}: {e}"))?;
                (r, Some(digest))
            }
            None => (text, None),
        };
        // A tag follows the last ':' only if no '/' comes after it (else it was a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            let valid = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                bail_kind!(Usage, "invalid reference {original:?}: tag {t:?} may contain only letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')");
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if path.is_empty() {
            bail_kind!(Usage, "invalid reference {original:?}: no repository name");
        }
        if !valid_host(&registry) {
            bail_kind!(Usage, "invalid reference {original:?}: {registry:?} is no registry host (HOST or HOST:PORT, the port in digits)");
        }
        for component in path.split('/') {
            let ok = !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && component
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                && component
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric());
            if !ok {
                bail_kind!(Usage, "invalid reference {original:?}: repository path component {component:?} must be lowercase letters, digits and separators ('.', '_', '-'), starting and ending with a letter or digit");
            }
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(RegistryRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the API is served from.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

/// `host[:port]` as docker's grammar has it: dot-separated labels of letters, digits and
/// `-`, or an IPv6 literal in brackets; a port is digits.
fn valid_host(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => (
                "v6",
                after
                    .strip_prefix(':')
                    .map(Some)
                    .unwrap_or(if after.is_empty() { None } else { Some("") }),
            ),
            _ => return false,
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    port_ok && host.split('.').all(label_ok)
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        RegistryRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_names() {
        assert_eq!(p("postgres"), "docker.io/library/postgres:latest");
        assert_eq!(p("postgres:16"), "docker.io/library/postgres:16");
        assert_eq!(
            p("docker://bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
        assert_eq!(
            p("index.docker.io/library/alpine:3"),
            "docker.io/library/alpine:3"
        );
        assert_eq!(
            RegistryRef::parse("postgres").unwrap().api_host(),
            "registry-1.docker.io"
        );
    }

    #[test]
    fn hosts_ports_and_digests() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            p("localhost:5000/team/dev:1.4"),
            "localhost:5000/team/dev:1.4"
        );
        assert_eq!(
            p("registry.internal:5000/team/dev"),
            "registry.internal:5000/team/dev:latest"
        );
        assert_eq!(
            p(&format!("ghcr.io/org/app@{d}")),
            format!("ghcr.io/org/app@{d}")
        );
        assert_eq!(
            p(&format!("app:1@{d}")),
            format!("docker.io/library/app:1@{d}")
        );
        let r = RegistryRef::parse("127.0.0.1:5000/x").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "x")
        );
        assert_eq!(
            RegistryRef::parse(&format!("a@{d}"))
                .unwrap()
                .manifest_reference(),
            d
        );
    }

    #[test]
    fn malformed_references_say_why() {
        for (bad, why) in [
            ("Postgres", "lowercase"),
            ("app:", "tag"),
            ("app:-x", "tag"),
            ("app@sha256:abc", "hex"),
            ("host.io/", "repository"),
            ("a//b", "component"),
            ("oci-archive:/x", "registry host"),
            ("reg.io:/x", "registry host"),
            ("reg.io:5x/x", "registry host"),
            ("[zz]:5000/x", "registry host"),
        ] {
            let err = RegistryRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
