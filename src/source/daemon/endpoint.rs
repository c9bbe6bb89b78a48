//! Which Docker engine to talk to, found the way the docker CLI finds it, so that
//! `docker-daemon:` reads from the engine `docker images` lists:
//!
//! 1. `DOCKER_HOST`, if set and not empty (then any context is ignored, as docker does);
//! 2. else the context named by `DOCKER_CONTEXT`, else by `currentContext` in
//!    `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`); the context `default` means
//!    step 3, any other is read from `contexts/meta/<sha256 of its name>/meta.json`;
//! 3. else the platform default: the named pipe `\\.\pipe\docker_engine` on Windows,
//!    `/var/run/docker.sock` elsewhere.

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where an engine listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket (`unix:///var/run/docker.sock`).
    Unix(PathBuf),
    /// Plain HTTP over TCP, as `host:port` (`tcp://127.0.0.1:2375`).
    Tcp(String),
    /// A Windows named pipe, as the Win32 path (`\\.\pipe\docker_engine`).
    NamedPipe(String),
}

pub const DEFAULT_UNIX_SOCKET: &str = "/var/run/docker.sock";
pub const DEFAULT_NAMED_PIPE: &str = r"\\.\pipe\docker_engine";
/// The port docker assumes for a `tcp://` host without one (2376 is its TLS port).
const DEFAULT_TCP_PORT: u16 = 2375;

impl Endpoint {
    pub fn platform_default() -> Endpoint {
        if cfg!(windows) {
            Endpoint::NamedPipe(DEFAULT_NAMED_PIPE.to_string())
        } else {
            Endpoint::Unix(PathBuf::from(DEFAULT_UNIX_SOCKET))
        }
    }

    /// Parses a docker host URL (`DOCKER_HOST`, a context's `Host`).
    pub fn parse(host: &str) -> Result<Endpoint> {
        let host = host.trim();
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(if path.is_empty() {
                Endpoint::Unix(PathBuf::from(DEFAULT_UNIX_SOCKET))
            } else {
                Endpoint::Unix(PathBuf::from(path))
            });
        }
        if let Some(path) = host.strip_prefix("npipe://") {
            // Written with forward slashes in URLs: npipe:////./pipe/docker_engine.
            return Ok(if path.is_empty() {
                Endpoint::NamedPipe(DEFAULT_NAMED_PIPE.to_string())
            } else {
                Endpoint::NamedPipe(path.replace('/', "\\"))
            });
        }
        if let Some(rest) = host.strip_prefix("tcp://") {
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if authority.is_empty() || authority.contains('/') {
                bail!("docker host {host:?}: expected tcp://HOST[:PORT] (a base path is not supported)");
            }
            let has_port = match authority.rfind(']') {
                // [::1] or [::1]:2375
                Some(close) => authority[close..].contains(':'),
                None => authority.contains(':'),
            };
            return Ok(Endpoint::Tcp(if has_port {
                authority.to_string()
            } else {
                format!("{authority}:{DEFAULT_TCP_PORT}")
            }));
        }
        if host.starts_with("ssh://") {
            bail!(
                "docker host {host:?}: ssh:// engines are not supported; forward the engine's \
                 socket (ssh -L /tmp/docker.sock:/var/run/docker.sock HOST) and set \
                 DOCKER_HOST=unix:///tmp/docker.sock"
            );
        }
        bail!("docker host {host:?}: expected unix://PATH, npipe://PATH or tcp://HOST:PORT")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
            Endpoint::NamedPipe(pipe) => write!(f, "npipe://{}", pipe.replace('\\', "/")),
        }
    }
}

/// Why this endpoint was chosen, for error messages: a user with a forgotten `DOCKER_HOST`
/// or context must see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    DockerHost,
    Context { name: String, set_by: String },
    Default,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub endpoint: Endpoint,
    pub origin: Origin,
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::DockerHost => write!(f, "{} (from DOCKER_HOST)", self.endpoint),
            Origin::Context { name, set_by } => {
                write!(
                    f,
                    "{} (docker context {name:?}, from {set_by})",
                    self.endpoint
                )
            }
            Origin::Default => write!(f, "{} (the default)", self.endpoint),
        }
    }
}

/// Resolves the engine from the process environment.
pub fn resolve() -> Result<Resolved> {
    resolve_with(&|name| std::env::var(name).ok())
}

/// Resolves the engine with `env` standing in for the environment (testable).
pub fn resolve_with(env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(host) = set("DOCKER_HOST") {
        let endpoint = Endpoint::parse(&host).context("DOCKER_HOST")?;
        if matches!(endpoint, Endpoint::Tcp(_)) && set("DOCKER_TLS_VERIFY").is_some() {
            bail!(
                "DOCKER_HOST={host} with DOCKER_TLS_VERIFY: TLS connections to the Docker \
                 engine are not supported; use the engine's unix socket or named pipe"
            );
        }
        return Ok(Resolved {
            endpoint,
            origin: Origin::DockerHost,
        });
    }
    let config_dir = config_dir(env);
    let (name, set_by) = match set("DOCKER_CONTEXT") {
        Some(name) => (name, "DOCKER_CONTEXT".to_string()),
        None => match config_dir.as_deref().map(current_context).transpose()? {
            Some(Some((name, file))) => (name, file.display().to_string()),
            _ => (String::new(), String::new()),
        },
    };
    if name.is_empty() || name == "default" {
        return Ok(Resolved {
            endpoint: Endpoint::platform_default(),
            origin: Origin::Default,
        });
    }
    let Some(config_dir) = config_dir else {
        bail!("docker context {name:?} (from {set_by}): no docker configuration directory (set DOCKER_CONFIG or HOME)");
    };
    let endpoint = context_endpoint(&config_dir, &name)
        .with_context(|| format!("docker context {name:?} (from {set_by})"))?;
    Ok(Resolved {
        endpoint,
        origin: Origin::Context { name, set_by },
    })
}

/// `$DOCKER_CONFIG`, else `.docker` in the home directory (`%USERPROFILE%` on Windows).
fn config_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(dir) = set("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir));
    }
    let home = if cfg!(windows) {
        set("USERPROFILE").or_else(|| set("HOME"))
    } else {
        set("HOME")
    }?;
    Some(Path::new(&home).join(".docker"))
}

/// The `currentContext` of config.json, with the file's path; none if the file or the key
/// is absent.
fn current_context(config_dir: &Path) -> Result<Option<(String, PathBuf)>> {
    let file = config_dir.join("config.json");
    let raw = match std::fs::read(&file) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let config: serde_json::Value = serde_json::from_slice(&raw)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    Ok(config
        .get("currentContext")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(|c| (c.to_string(), file)))
}

/// The docker endpoint of a named context. The CLI stores each context in a directory named
/// by the SHA-256 of its name, so any name is a safe directory name.
fn context_endpoint(config_dir: &Path, name: &str) -> Result<Endpoint> {
    let id = hex(&Sha256::digest(name.as_bytes()));
    let file = config_dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let raw = std::fs::read(&file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "no such context ({} is missing); `docker context ls` lists them",
                file.display()
            )
        } else {
            anyhow!("reading {}: {e}", file.display())
        }
    })?;
    let meta: serde_json::Value = serde_json::from_slice(&raw)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    let host = meta
        .pointer("/Endpoints/docker/Host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("{} names no docker endpoint Host", file.display()))?;
    let endpoint = Endpoint::parse(host)?;
    let tls = config_dir
        .join("contexts")
        .join("tls")
        .join(&id)
        .join("docker");
    if matches!(endpoint, Endpoint::Tcp(_)) && tls.is_dir() {
        bail!(
            "{host} uses TLS ({}): TLS connections to the Docker engine are not supported",
            tls.display()
        );
    }
    Ok(endpoint)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// Writes a context as `docker context create NAME --docker host=HOST` stores it.
    fn write_context(config_dir: &Path, name: &str, host: &str) {
        let id = hex(&Sha256::digest(name.as_bytes()));
        let dir = config_dir.join("contexts/meta").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = serde_json::json!({
            "Name": name,
            "Metadata": {"Description": ""},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
        });
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    }

    #[test]
    fn host_urls_parse_as_docker_reads_them() {
        assert_eq!(
            Endpoint::parse("unix:///run/user/1000/podman/podman.sock").unwrap(),
            Endpoint::Unix("/run/user/1000/podman/podman.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix://").unwrap(),
            Endpoint::Unix(DEFAULT_UNIX_SOCKET.into())
        );
        assert_eq!(
            Endpoint::parse("npipe:////./pipe/docker_engine").unwrap(),
            Endpoint::NamedPipe(r"\\.\pipe\docker_engine".into())
        );
        assert_eq!(
            Endpoint::parse("npipe:////./pipe/dockerDesktopLinuxEngine").unwrap(),
            Endpoint::NamedPipe(r"\\.\pipe\dockerDesktopLinuxEngine".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://localhost").unwrap(),
            Endpoint::Tcp("localhost:2375".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]").unwrap(),
            Endpoint::Tcp("[::1]:2375".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:2380/").unwrap(),
            Endpoint::Tcp("[::1]:2380".into())
        );
        for bad in [
            "/var/run/docker.sock",
            "http://x",
            "tcp://",
            "tcp://h:1/v1.41",
            "fd://",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        let err = Endpoint::parse("ssh://me@box").unwrap_err().to_string();
        assert!(err.contains("ssh -L"), "{err}");
    }

    #[test]
    fn endpoints_print_as_urls_that_parse_back() {
        for url in [
            "unix:///var/run/docker.sock",
            "tcp://127.0.0.1:2375",
            "npipe:////./pipe/docker_engine",
        ] {
            let endpoint = Endpoint::parse(url).unwrap();
            assert_eq!(endpoint.to_string(), url);
            assert_eq!(Endpoint::parse(&endpoint.to_string()).unwrap(), endpoint);
        }
    }

    #[test]
    fn nothing_set_means_the_platform_default() {
        let home = tempfile::tempdir().unwrap();
        let r = resolve_with(&env_of(&[("HOME", home.path().to_str().unwrap())])).unwrap();
        assert_eq!(r.origin, Origin::Default);
        if cfg!(windows) {
            assert_eq!(r.endpoint, Endpoint::NamedPipe(DEFAULT_NAMED_PIPE.into()));
        } else {
            assert_eq!(r.endpoint, Endpoint::Unix(DEFAULT_UNIX_SOCKET.into()));
        }
        let r = resolve_with(&env_of(&[])).unwrap();
        assert_eq!(r.origin, Origin::Default);
    }

    #[test]
    fn current_context_of_config_json_is_followed() {
        let home = tempfile::tempdir().unwrap();
        let docker = home.path().join(".docker");
        write_context(
            &docker,
            "colima",
            "unix:///home/me/.colima/default/docker.sock",
        );
        std::fs::write(docker.join("config.json"), r#"{"currentContext":"colima"}"#).unwrap();
        let r = resolve_with(&env_of(&[("HOME", home.path().to_str().unwrap())])).unwrap();
        assert_eq!(
            r.endpoint,
            Endpoint::Unix("/home/me/.colima/default/docker.sock".into())
        );
        assert!(
            matches!(&r.origin, Origin::Context { name, .. } if name == "colima"),
            "{r:?}"
        );
        assert!(r.to_string().contains("colima"), "{r}");
    }

    #[test]
    fn docker_context_variable_beats_config_and_docker_host_beats_both() {
        let config = tempfile::tempdir().unwrap();
        write_context(config.path(), "a", "unix:///a.sock");
        write_context(config.path(), "b", "tcp://127.0.0.1:2999");
        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext":"a"}"#,
        )
        .unwrap();
        let dir = config.path().to_str().unwrap();
        let r = resolve_with(&env_of(&[("DOCKER_CONFIG", dir)])).unwrap();
        assert_eq!(r.endpoint, Endpoint::Unix("/a.sock".into()));
        let r = resolve_with(&env_of(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "b")])).unwrap();
        assert_eq!(r.endpoint, Endpoint::Tcp("127.0.0.1:2999".into()));
        let r = resolve_with(&env_of(&[
            ("DOCKER_CONFIG", dir),
            ("DOCKER_CONTEXT", "b"),
            ("DOCKER_HOST", "unix:///h.sock"),
        ]))
        .unwrap();
        assert_eq!(
            (r.endpoint, r.origin),
            (Endpoint::Unix("/h.sock".into()), Origin::DockerHost)
        );
        // An empty variable counts as unset, as in docker.
        let r = resolve_with(&env_of(&[("DOCKER_CONFIG", dir), ("DOCKER_HOST", "")])).unwrap();
        assert_eq!(r.endpoint, Endpoint::Unix("/a.sock".into()));
    }

    #[test]
    fn the_default_context_is_the_default_endpoint() {
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext":"default"}"#,
        )
        .unwrap();
        let dir = config.path().to_str().unwrap();
        let r = resolve_with(&env_of(&[("DOCKER_CONFIG", dir)])).unwrap();
        assert_eq!(r.origin, Origin::Default);
        let r = resolve_with(&env_of(&[
            ("DOCKER_CONFIG", dir),
            ("DOCKER_CONTEXT", "default"),
        ]))
        .unwrap();
        assert_eq!(r.origin, Origin::Default);
    }

    #[test]
    fn a_missing_or_broken_context_is_a_clear_error() {
        let config = tempfile::tempdir().unwrap();
        let dir = config.path().to_str().unwrap();
        let err = resolve_with(&env_of(&[
            ("DOCKER_CONFIG", dir),
            ("DOCKER_CONTEXT", "gone"),
        ]))
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("\"gone\"")
                && msg.contains("DOCKER_CONTEXT")
                && msg.contains("docker context ls"),
            "{msg}"
        );
        std::fs::write(config.path().join("config.json"), "{not json").unwrap();
        let msg = format!(
            "{:#}",
            resolve_with(&env_of(&[("DOCKER_CONFIG", dir)])).unwrap_err()
        );
        assert!(msg.contains("config.json"), "{msg}");
    }

    #[test]
    fn tls_engines_are_refused_not_spoken_to_in_plain_text() {
        let err = resolve_with(&env_of(&[
            ("DOCKER_HOST", "tcp://10.0.0.1:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("TLS"), "{err}");
        let config = tempfile::tempdir().unwrap();
        write_context(config.path(), "remote", "tcp://10.0.0.1:2376");
        let id = hex(&Sha256::digest(b"remote"));
        std::fs::create_dir_all(config.path().join("contexts/tls").join(id).join("docker"))
            .unwrap();
        let err = resolve_with(&env_of(&[
            ("DOCKER_CONFIG", config.path().to_str().unwrap()),
            ("DOCKER_CONTEXT", "remote"),
        ]))
        .unwrap_err();
        assert!(format!("{err:#}").contains("TLS"), "{err:#}");
    }
}
