//! `docker-daemon:NAME[:TAG]`: an image held by a running Docker-compatible engine (Docker
//! Engine, Docker Desktop, podman's API service), read through the engine's HTTP API.
//!
//! `GET /images/{name}/get` answers with the same tar `docker save` writes, so the image is
//! then read by the docker-archive reader. That tar is a stream, but the reader needs random
//! access (`manifest.json` may come last, after the layers it names), so the stream is first
//! spooled to an anonymous temporary file, as `docker-archive:-` does with standard input.
//! A cancelled run stops reading the export and closes the connection; the spool, being
//! anonymous, goes with it.

pub mod endpoint;
pub mod http;

use super::docker_archive::DockerArchiveSource;
use super::store::TarStore;
use crate::cancel::Cancel;
use anyhow::{anyhow, Context, Result};
use endpoint::{Endpoint, Resolved};
use std::io::{self, Read, Write};

/// Longest error body read from the engine: its errors are one JSON object with a message.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// Exports `image` (`NAME:TAG`, `NAME@DIGEST` or an image ID) from the engine the
/// environment names, and opens the export as a docker-archive. `name` is the reference as
/// the user gave it, for messages. Cancelling `cancel` ends the export.
pub fn open(image: &str, name: &str, cancel: &Cancel) -> Result<DockerArchiveSource> {
    let engine = endpoint::resolve()?;
    let spool = export(&engine, image, cancel)?;
    let store = TarStore::from_spool(
        spool,
        &format!(
            "{image} exported by the Docker engine at {}",
            engine.endpoint
        ),
    )?;
    // The export holds just the image asked for, whatever its tags, so no tag selects it.
    Ok(DockerArchiveSource::new(
        name.to_string(),
        Box::new(store),
        None,
    ))
}

/// Streams the engine's export of `image` into a private temporary file. The token is
/// checked after every read (and the socket's reads wake to check it during a silence), so
/// a cancellation drops the connection within one read.
fn export(engine: &Resolved, image: &str, cancel: &Cancel) -> Result<std::fs::File> {
    cancel.check()?;
    let stream = http::connect(&engine.endpoint, cancel).map_err(|e| connect_error(engine, e))?;
    let host = match &engine.endpoint {
        Endpoint::Tcp(addr) => addr.as_str(),
        // Local transports have no host name; docker's own client sends a placeholder too.
        _ => "docker",
    };
    let path = format!("/images/{image}/get");
    let response = http::get(stream, host, &path).map_err(|e| {
        cancel.check().err().unwrap_or_else(|| {
            anyhow!("the Docker engine at {engine} did not answer GET {path}: {e}")
        })
    })?;
    match response.status {
        200 => {}
        404 => {
            let said = engine_message(response.body);
            let hint = if image.starts_with("sha256:") {
                String::new()
            } else {
                format!(
                    "; pull it into the engine, or convert it from its registry: oci2wsl {image}"
                )
            };
            return Err(anyhow!(
                "image {image} is not in the Docker engine at {engine} (the engine says: {said}){hint}"
            ));
        }
        status => {
            let reason = response.reason.clone();
            let said = engine_message(response.body);
            return Err(anyhow!(
                "the Docker engine at {engine} refused to export {image}: HTTP {status} {reason}: {said}"
            ));
        }
    }
    let mut spool =
        tempfile::tempfile().context("creating a temporary file to hold the engine's export")?;
    let mut body = response.body;
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    loop {
        let read = body.read(&mut buf);
        // Before the result is used: bytes (or the end) that arrive after a cancellation
        // must not complete the export.
        cancel.check()?;
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(anyhow!(
                    "reading {image} from the Docker engine at {engine}: {e} (after {total} bytes)"
                ))
            }
        };
        spool
            .write_all(&buf[..n])
            .context("writing the engine's export to a temporary file")?;
        total += n as u64;
    }
    Ok(spool)
}

/// The `message` of an engine's JSON error body, else the body's text.
fn engine_message(body: http::Body) -> String {
    let mut raw = Vec::new();
    if let Err(e) = body.take(MAX_ERROR_BODY).read_to_end(&mut raw) {
        return format!("no readable error message ({e})");
    }
    let text = match serde_json::from_slice::<serde_json::Value>(&raw) {
        Ok(v) => match v.get("message").and_then(|m| m.as_str()) {
            Some(m) => m.to_string(),
            None => String::from_utf8_lossy(&raw).into_owned(),
        },
        Err(_) => String::from_utf8_lossy(&raw).into_owned(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "nothing".to_string()
    } else {
        text.chars().take(500).collect()
    }
}

/// One line that says what failed and what to do about it.
fn connect_error(engine: &Resolved, e: io::Error) -> anyhow::Error {
    let what = match &engine.endpoint {
        Endpoint::Unix(_) => "socket",
        Endpoint::NamedPipe(_) => "named pipe",
        Endpoint::Tcp(_) => "address",
    };
    match e.kind() {
        io::ErrorKind::NotFound => anyhow!(
            "no Docker engine at {engine}: the {what} does not exist; start the engine \
             (Docker Desktop, dockerd, or `podman system service`) or point DOCKER_HOST at it"
        ),
        io::ErrorKind::ConnectionRefused => anyhow!(
            "the Docker engine at {engine} is not running (connection refused); start it, \
             or point DOCKER_HOST at a running one"
        ),
        io::ErrorKind::PermissionDenied => anyhow!(
            "permission denied on the {what} of the Docker engine at {engine}; add your user \
             to the group that owns it (usually `docker`, then log in again) or run as root"
        ),
        _ => anyhow!("cannot connect to the Docker engine at {engine}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use endpoint::Origin;

    fn engine(endpoint: Endpoint) -> Resolved {
        Resolved {
            endpoint,
            origin: Origin::DockerHost,
        }
    }

    #[test]
    fn connect_errors_name_the_endpoint_and_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        let missing = engine(Endpoint::Unix(dir.path().join("no.sock")));
        let err = http::connect(&missing.endpoint, &Cancel::new())
            .err()
            .unwrap();
        let msg = connect_error(&missing, err).to_string();
        assert!(
            msg.contains("no.sock")
                && msg.contains("does not exist")
                && msg.contains("DOCKER_HOST"),
            "{msg}"
        );
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let msg = connect_error(&missing, denied).to_string();
        assert!(
            msg.contains("permission denied") && msg.contains("docker"),
            "{msg}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_socket_nobody_listens_on_is_an_engine_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.sock");
        // A socket file whose listener is gone: what a crashed engine leaves behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let dead = engine(Endpoint::Unix(path));
        let err = export(&dead, "app:1", &Cancel::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not running") && err.contains("dead.sock"),
            "{err}"
        );
    }
}
