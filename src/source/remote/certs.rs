//! Which CA files to trust for a registry: `--cert-dir`, or the per-registry `certs.d`
//! folders docker and podman read (`ROOT/HOST[:PORT]/*.crt`).
//!
//! Roots, first to last (all are read, as containers/image does):
//! - `$XDG_CONFIG_HOME/containers/certs.d` (else `~/.config/containers/certs.d`)
//! - `/etc/containers/certs.d`
//! - `/etc/docker/certs.d`
//! - on Windows: `%ProgramData%\docker\certs.d` and `%USERPROFILE%\.config\containers\certs.d`;
//!   docker there names a folder `HOSTPORT`, without the colon Windows does not allow.
//!
//! `OCI2WSL_CERTS_D` (paths separated as in `PATH`) replaces the roots: for tests, and for a
//! machine whose certificates live elsewhere. Client certificates (`*.cert`, `*.key`) are not
//! used.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The `certs.d` roots searched when `--cert-dir` is not given.
fn roots() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("OCI2WSL_CERTS_D") {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let mut roots = Vec::new();
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from);
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    roots.extend(config.map(|c| c.join("containers").join("certs.d")));
    if cfg!(windows) {
        if let Some(data) = std::env::var_os("ProgramData") {
            roots.push(PathBuf::from(data).join("docker").join("certs.d"));
        }
    } else {
        roots.push(PathBuf::from("/etc/containers/certs.d"));
        roots.push(PathBuf::from("/etc/docker/certs.d"));
    }
    roots
}

/// The folder names a registry's certificates may be under: `HOST[:PORT]`, or on Windows
/// docker's `HOSTPORT`.
fn folder_names(hosts: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for host in hosts {
        let name = if cfg!(windows) {
            host.replace(':', "")
        } else {
            host.to_string()
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The `*.crt` files directly in `dir`, sorted (the order docker reads them in).
fn crt_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "crt") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The CA files for a registry known by `hosts` (its name and API host). `--cert-dir DIR`
/// is either one registry's folder (`DIR/*.crt`) or a `certs.d` root (`DIR/HOST[:PORT]/`);
/// finding neither is an error, as the user pointed at it. Without it, every default root's
/// folder for the registry is read, and none is fine.
pub fn ca_files(cert_dir: Option<&Path>, hosts: &[&str]) -> Result<Vec<PathBuf>> {
    let names = folder_names(hosts);
    if let Some(dir) = cert_dir {
        let direct = crt_files(dir).with_context(|| format!("--cert-dir {}", dir.display()))?;
        if !direct.is_empty() {
            return Ok(direct);
        }
        for name in &names {
            let sub = dir.join(name);
            if sub.is_dir() {
                let found = crt_files(&sub)?;
                if !found.is_empty() {
                    return Ok(found);
                }
            }
        }
        bail!(
            "--cert-dir {}: no CA certificate (*.crt) in it, nor in a folder for the registry in it ({})",
            dir.display(),
            names
                .iter()
                .map(|n| format!("{n}/"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut files = Vec::new();
    for root in roots() {
        for name in &names {
            let sub = root.join(name);
            if sub.is_dir() {
                files.extend(crt_files(&sub)?);
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_dir_is_a_registry_folder_or_a_certs_d_root() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("reg.example:5000");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "x").unwrap();
        std::fs::write(host.join("client.cert"), "x").unwrap();
        let hosts = ["reg.example:5000"];
        assert_eq!(
            ca_files(Some(&host), &hosts).unwrap(),
            vec![host.join("ca.crt")]
        );
        assert_eq!(
            ca_files(Some(root.path()), &hosts).unwrap(),
            vec![host.join("ca.crt")]
        );
        let err = ca_files(Some(root.path()), &["other.example"]).unwrap_err();
        assert!(format!("{err:#}").contains("other.example/"), "{err:#}");
    }
}
