//! Where registry credentials come from (go-containerregistry's `authn`): the command
//! line, auth files, Docker's config and its credential helpers. How they are presented to
//! a registry (the `WWW-Authenticate` challenge and the token exchange) is the transport's:
//! [`super::challenge`] and [`super::transport`].
//!
//! Precedence, first match wins (as podman/skopeo, then docker; `--no-creds` skips all):
//! 1. `--creds USER:PASS`
//! 2. `--authfile FILE`
//! 3. `$REGISTRY_AUTH_FILE`
//! 4. `$XDG_RUNTIME_DIR/containers/auth.json` (podman's primary file on Linux)
//! 5. `$XDG_CONFIG_HOME/containers/auth.json`, else `~/.config/containers/auth.json`
//!    (podman's primary file on Windows and macOS, its second everywhere)
//! 6. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!    `credHelpers[registry]`, then `credsStore`, then `auths[registry]`.
//!
//! A credential helper that cannot be run (Docker Desktop's `desktop.exe`, named in a WSL
//! user's config, without Docker Desktop) is a warning: an anonymous pull needs no helper.
//!
//! Secrets live only in [`Credentials`], whose `Debug` hides them, and in request headers.

use crate::error::{bail_kind, ErrorKind, ResultExt};
use crate::events::Observer;
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Registry credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <hidden>)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(<hidden>)"),
        }
    }
}

impl Credentials {
    pub fn parse_creds(text: &str) -> Result<Credentials> {
        match text.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => bail_kind!(Usage, "--creds must be USER:PASSWORD"),
        }
    }

    /// Credentials from the command line: `--creds USER:PASSWORD`; `--creds USER` with
    /// `--password-stdin` (the password is standard input, one trailing newline dropped);
    /// `--creds USER` alone asks for the password on the terminal, not echoed. A password on
    /// the command line is visible to every user of the machine in the process list.
    pub fn from_command_line(
        creds: Option<&str>,
        password_stdin: bool,
    ) -> Result<Option<Credentials>> {
        let Some(creds) = creds else {
            if password_stdin {
                bail_kind!(Usage, "--password-stdin needs --creds USER");
            }
            return Ok(None);
        };
        if creds.contains(':') {
            if password_stdin {
                bail_kind!(Usage, "--creds USER:PASSWORD and --password-stdin both give a password; use --creds USER");
            }
            return Credentials::parse_creds(creds).map(Some);
        }
        if creds.is_empty() {
            bail_kind!(Usage, "--creds needs a user name");
        }
        let password = if password_stdin {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_AUTH_FILE)
                .read_to_string(&mut text)
                .context("reading the password from standard input")?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_string()
        } else {
            prompt_password(creds)?
        };
        Ok(Some(Credentials::Basic {
            username: creds.to_string(),
            password,
        }))
    }

    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credentials::IdentityToken(_) => None,
        }
    }
}

/// Asks for `user`'s password on the terminal (standard input and error), with echo off.
fn prompt_password(user: &str) -> Result<String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail_kind!(Usage, "--creds {user} has no password and standard input is not a terminal to ask on: use --password-stdin or --creds USER:PASSWORD");
    }
    eprint!("Password for {}: ", crate::terminal::printable(user));
    let _ = std::io::stderr().flush();
    let echo = EchoOff::new();
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    drop(echo);
    eprintln!();
    read.context("reading the password from the terminal")?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}

/// Turns the terminal's echo off for as long as it lives.
struct EchoOff {
    #[cfg(target_os = "linux")]
    saved: Option<libc::termios>,
    #[cfg(windows)]
    saved: Option<(isize, u32)>,
}

#[cfg(target_os = "linux")]
impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: termios calls on standard input with a zeroed struct they fill in.
        unsafe {
            let mut term: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut term) != 0 {
                return EchoOff { saved: None };
            }
            let saved = term;
            term.c_lflag &= !libc::ECHO;
            term.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(0, libc::TCSANOW, &term) != 0 {
                return EchoOff { saved: None };
            }
            EchoOff { saved: Some(saved) }
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

#[cfg(windows)]
mod console {
    #[link(name = "kernel32")]
    extern "system" {
        pub fn GetStdHandle(which: u32) -> isize;
        pub fn GetConsoleMode(handle: isize, mode: *mut u32) -> i32;
        pub fn SetConsoleMode(handle: isize, mode: u32) -> i32;
    }
    pub const STD_INPUT_HANDLE: u32 = -10i32 as u32;
    pub const ENABLE_ECHO_INPUT: u32 = 0x0004;
}

#[cfg(windows)]
impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: console-mode calls on the standard input handle.
        unsafe {
            let handle = console::GetStdHandle(console::STD_INPUT_HANDLE);
            let mut mode = 0u32;
            if console::GetConsoleMode(handle, &mut mode) == 0 {
                return EchoOff { saved: None };
            }
            if console::SetConsoleMode(handle, mode & !console::ENABLE_ECHO_INPUT) == 0 {
                return EchoOff { saved: None };
            }
            EchoOff {
                saved: Some((handle, mode)),
            }
        }
    }
}

#[cfg(windows)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some((handle, mode)) = self.saved {
            // SAFETY: restores the mode read in `new`.
            unsafe {
                console::SetConsoleMode(handle, mode);
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
impl EchoOff {
    fn new() -> EchoOff {
        EchoOff {}
    }
}

/// The keys a registry may be stored under in auth files.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == "docker.io" {
        for k in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "https://index.docker.io",
            "registry-1.docker.io",
            "https://registry-1.docker.io",
        ] {
            keys.push(k.to_string());
        }
    }
    keys
}

fn decode_auth_entry(entry: &serde_json::Value) -> Result<Option<Credentials>> {
    if let Some(token) = entry
        .get("identitytoken")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credentials::IdentityToken(token.to_string())));
    }
    if let Some(auth) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .context("an \"auth\" entry is not valid base64")?;
        let text = String::from_utf8(decoded).context("an \"auth\" entry is not UTF-8")?;
        let (u, p) = text
            .split_once(':')
            .context("an \"auth\" entry is not USER:PASSWORD")?;
        return Ok(Some(Credentials::Basic {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(|v| v.as_str()),
        entry.get("password").and_then(|v| v.as_str()),
    ) {
        return Ok(Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }));
    }
    Ok(None)
}

/// Looks `registry/repository` up in an auth file's `auths`, longest match first (podman
/// allows entries for a namespace or repository).
fn from_auths(
    auths: &serde_json::Map<String, serde_json::Value>,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    let mut scoped: Vec<String> = Vec::new();
    let mut path = format!("{registry}/{repository}");
    while let Some(i) = path.rfind('/') {
        scoped.push(path.clone());
        path.truncate(i);
    }
    for key in scoped.into_iter().chain(keys_for(registry)) {
        if let Some(entry) = auths.get(&key) {
            if let Some(c) = decode_auth_entry(entry)? {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// An auth file larger than this is refused unread: real ones hold a few entries.
pub const MAX_AUTH_FILE: u64 = 4 << 20;

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_AUTH_FILE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_AUTH_FILE {
        bail!(
            "{} is larger than {} MiB, too large for a credentials file",
            path.display(),
            MAX_AUTH_FILE >> 20
        );
    }
    Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
        format!("{} is not valid JSON", path.display())
    })?))
}

/// A file the user did not name (found in its usual place): if it cannot be read, a pull
/// that needs no credentials still works, so that is a warning, not an error.
fn read_json_implicit(path: &Path, observer: &dyn Observer) -> Option<serde_json::Value> {
    read_json(path).unwrap_or_else(|e| {
        crate::events::warn(observer, format!("ignoring {e:#}"));
        None
    })
}

/// The result of a lookup: the credentials found, and a helper that should have been asked
/// but could not be run (named in the error when the registry then wants credentials).
#[derive(Debug, Default)]
pub struct Found {
    pub credentials: Option<Credentials>,
    pub unavailable_helper: Option<String>,
}

/// A helper program that is missing or cannot be started, as opposed to one that ran and
/// failed.
#[derive(Debug)]
struct HelperNotRunnable(String);

impl fmt::Display for HelperNotRunnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HelperNotRunnable {}

/// Runs `docker-credential-NAME get` (the helper protocol Docker Desktop uses on Windows).
/// Any failure of the helper is an authentication failure: the pull cannot get its
/// credentials.
fn from_helper(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    run_helper(helper, registry).kind(ErrorKind::Auth)
}

fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let server = if registry == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let mut child = match Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Err(HelperNotRunnable(format!(
                "credential helper {program} could not be run: {e}"
            ))
            .into())
        }
    };
    child.stdin.take().unwrap().write_all(server.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout);
        if msg.contains("credentials not found") {
            return Ok(None);
        }
        bail!(
            "credential helper {program} failed for {registry} (exit {})",
            out.status
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!("credential helper {program} answered something that is not JSON")
    })?;
    let user = v
        .get("Username")
        .and_then(|u| u.as_str())
        .unwrap_or_default();
    let secret = v.get("Secret").and_then(|s| s.as_str()).unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if user == "<token>" {
        Credentials::IdentityToken(secret.to_string())
    } else {
        Credentials::Basic {
            username: user.to_string(),
            password: secret.to_string(),
        }
    }))
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

/// podman's per-user auth file outside `$XDG_RUNTIME_DIR`.
fn containers_config_auth_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
            Some(PathBuf::from(home).join(".config"))
        })?;
    Some(config.join("containers").join("auth.json"))
}

/// Finds credentials for a repository, in the documented order.
pub fn lookup(
    creds: Option<&Credentials>,
    authfile: Option<&Path>,
    registry: &str,
    repository: &str,
    observer: &dyn Observer,
) -> Result<Found> {
    let found = |c: Option<Credentials>| Found {
        credentials: c,
        unavailable_helper: None,
    };
    if let Some(c) = creds {
        return Ok(found(Some(c.clone())));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(f) = authfile {
        if !f.exists() {
            bail_kind!(NotFound, "--authfile {} does not exist", f.display());
        }
        files.push(f.to_path_buf());
    }
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    let implicit = files.len();
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        files.push(PathBuf::from(dir).join("containers/auth.json"));
    }
    files.extend(containers_config_auth_file());
    for (i, f) in files.iter().enumerate() {
        let json = if i < implicit {
            read_json(f)?
        } else {
            read_json_implicit(f, observer)
        };
        if let Some(v) = json {
            if let Some(auths) = v.get("auths").and_then(|a| a.as_object()) {
                if let Some(c) = from_auths(auths, registry, repository)
                    .with_context(|| format!("in {}", f.display()))?
                {
                    return Ok(found(Some(c)));
                }
            }
        }
    }
    let Some(path) = docker_config_path() else {
        return Ok(found(None));
    };
    let Some(config) = read_json_implicit(&path, observer) else {
        return Ok(found(None));
    };
    let mut unavailable_helper = None;
    let mut ask = |helper: &str, key: &str| -> Result<Option<Credentials>> {
        match from_helper(helper, registry) {
            Err(e)
                if crate::error::causes(&e)
                    .iter()
                    .any(|c| c.is::<HelperNotRunnable>()) =>
            {
                let why = format!("{e} ({key} in {})", path.display());
                crate::events::warn(observer, format!("{why}; continuing without credentials"));
                unavailable_helper = Some(why);
                Ok(None)
            }
            other => other,
        }
    };
    if let Some(helpers) = config.get("credHelpers").and_then(|h| h.as_object()) {
        for key in keys_for(registry) {
            if let Some(helper) = helpers.get(&key).and_then(|h| h.as_str()) {
                let credentials = ask(helper, "credHelpers")?;
                return Ok(Found {
                    credentials,
                    unavailable_helper,
                });
            }
        }
    }
    if let Some(store) = config
        .get("credsStore")
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
    {
        if let Some(c) = ask(store, "credsStore")? {
            return Ok(found(Some(c)));
        }
    }
    let credentials = match config.get("auths").and_then(|a| a.as_object()) {
        Some(auths) => from_auths(auths, registry, repository)
            .with_context(|| format!("in {}", path.display()))?,
        None => None,
    };
    Ok(Found {
        credentials,
        unavailable_helper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_mistakes_are_usage_errors_and_helper_failures_auth_errors() {
        let kind = |r: Result<Option<Credentials>>| crate::error::classify(&r.unwrap_err());
        assert_eq!(
            kind(Credentials::from_command_line(None, true)),
            ErrorKind::Usage
        );
        assert_eq!(
            kind(Credentials::from_command_line(Some("bob:pw"), true)),
            ErrorKind::Usage
        );
        assert_eq!(
            kind(from_helper("oci2wsl-test-no-such-helper", "reg.io")),
            ErrorKind::Auth
        );
        let missing = std::path::Path::new("/nonexistent/oci2wsl/auth.json");
        let looked_up = lookup(None, Some(missing), "reg.io", "r", &crate::events::Silent);
        let Err(e) = looked_up else {
            panic!("a missing --authfile must fail")
        };
        assert_eq!(crate::error::classify(&e), ErrorKind::NotFound);
    }

    #[test]
    fn command_line_credentials() {
        assert_eq!(
            Credentials::from_command_line(Some("bob:pw:with:colons"), false).unwrap(),
            Some(Credentials::Basic {
                username: "bob".into(),
                password: "pw:with:colons".into()
            })
        );
        assert_eq!(Credentials::from_command_line(None, false).unwrap(), None);
        assert!(Credentials::from_command_line(None, true).is_err());
        assert!(Credentials::from_command_line(Some("bob:pw"), true).is_err());
        assert!(Credentials::from_command_line(Some(""), true).is_err());
    }

    #[test]
    fn auth_files_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &file,
            format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"reg.io/team":{{"auth":"{auth}"}},"tok.io":{{"identitytoken":"refresh"}}}}}}"#),
        )
        .unwrap();
        let hub = lookup(
            None,
            Some(&file),
            "docker.io",
            "library/postgres",
            &crate::events::Silent,
        )
        .unwrap()
        .credentials
        .unwrap();
        assert_eq!(
            hub,
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert!(lookup(
            None,
            Some(&file),
            "reg.io",
            "team/app",
            &crate::events::Silent
        )
        .unwrap()
        .credentials
        .is_some());
        assert_eq!(
            lookup(None, Some(&file), "tok.io", "x", &crate::events::Silent)
                .unwrap()
                .credentials,
            Some(Credentials::IdentityToken("refresh".into()))
        );
        let explicit = Credentials::parse_creds("bob:pw").unwrap();
        assert_eq!(
            lookup(
                Some(&explicit),
                Some(&file),
                "docker.io",
                "x",
                &crate::events::Silent
            )
            .unwrap()
            .credentials,
            Some(explicit.clone())
        );
        assert!(!format!("{explicit:?}").contains("pw"));
        assert!(Credentials::parse_creds("nopassword").is_err());
    }
}
