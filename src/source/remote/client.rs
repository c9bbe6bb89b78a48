//! The registry HTTP API (distribution v2) with the real-world details: scheme choice,
//! retries with backoff, `Retry-After`, resumed downloads, redirects followed hop by hop
//! with the `Authorization` header kept to the registry's own origin, proxies and
//! certificates per host. A `401` is handed to [`super::transport`], which answers the
//! challenge; the request is then sent again. Error messages name the registry, repository
//! and what failed, and never carry a credential or a token.

use super::authn;
use super::transport::Authorizer;
use super::RegistryOptions;
use crate::cancel::Cancel;
use crate::error::{bail_kind, kind_err, tagged, ErrorKind};
use crate::events::{Event, SharedObserver};
use crate::terminal::printable;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::http::{Response, StatusCode};
use ureq::Body;

/// Retries per request after its first attempt (`--retry-times`); the waits between
/// attempts are `backoff` or a capped `Retry-After`.
pub const DEFAULT_RETRIES: u32 = 5;
/// Redirect hops followed per request (blob downloads go to S3 or a CDN this way).
const MAX_REDIRECTS: u32 = 5;
/// A `Retry-After` longer than this is shortened to it: the whole retry budget of one
/// request stays under a minute of waiting.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The default stall window, overridable with `OCI2WSL_STALL_TIMEOUT` (seconds).
const DEFAULT_STALL: Duration = Duration::from_secs(30);
/// A body that brings fewer bytes than this in one stall window is stalled (a registry that
/// trickles one byte a second never trips a plain per-read timeout).
pub const STALL_MIN_BYTES: u64 = 16 * 1024;

pub struct Client {
    /// The options, with `--cert-dir`'s certificates added to the CA files.
    opts: RegistryOptions,
    /// One agent per (certificate checks, proxy): chosen per request by its target host.
    agents: Mutex<HashMap<(bool, Option<String>), ureq::Agent>>,
    registry: String,
    api_host: String,
    repository: String,
    /// Answers the registry's challenges with the credentials found.
    authorizer: Authorizer,
    /// Hears of retries, requests and warnings.
    observer: SharedObserver,
    /// The registry host itself is listed in `--insecure-registry`.
    insecure: bool,
    /// "https" or "http", decided by the first request.
    scheme: Mutex<Option<&'static str>>,
    stall: Duration,
    /// Ends a retry's wait, and the retries, when the run is cancelled.
    cancel: Cancel,
}

/// `host[:port]` / `[v6]:port` / a bare IPv6 literal, split; the host without brackets.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':'));
    }
    match authority.split_once(':') {
        Some((h, p)) if !p.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

fn host_of(authority: &str) -> &str {
    split_host_port(authority).0
}

/// Loopback is `localhost` and the IP literals in 127.0.0.0/8 and `::1`, nothing else: a
/// name like `127.attacker.example` resolves wherever its owner wants.
pub fn is_loopback(authority: &str) -> bool {
    let host = host_of(authority);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `NO_PROXY` (comma-separated: `*`, IP literals, CIDR blocks, domain names where
/// `example.com`, `.example.com` and `*.example.com` all cover the subdomains, each
/// optionally with `:port`) exempts `authority`.
pub fn no_proxy_matches(no_proxy: &str, authority: &str) -> bool {
    let (host, port) = split_host_port(authority);
    let host = host.to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some((net, bits)) = entry.split_once('/') {
                return match (net.parse::<IpAddr>(), bits.parse::<u32>(), ip) {
                    (Ok(net), Ok(bits), Some(ip)) => in_cidr(ip, net, bits),
                    _ => false,
                };
            }
            let (name, entry_port) = split_host_port(entry);
            if entry_port.is_some_and(|p| Some(p) != port) {
                return false;
            }
            let name = name.to_ascii_lowercase();
            if let (Ok(a), Some(b)) = (name.parse::<IpAddr>(), ip) {
                return a == b;
            }
            let domain = name.trim_start_matches('*').trim_start_matches('.');
            !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
        })
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The proxy for a request to `scheme://authority`, from `env` (the process environment in
/// use): never for loopback, as Go tools do; not for `NO_PROXY` hosts; else
/// `HTTPS_PROXY`/`HTTP_PROXY` by scheme, then `ALL_PROXY` (lowercase forms too).
pub fn proxy_for(
    scheme: &str,
    authority: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    proxy_source(scheme, authority, env).map(|(_, proxy)| proxy)
}

/// [`proxy_for`], with the variable the proxy came from (to name it in errors).
pub fn proxy_source(
    scheme: &str,
    authority: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, String)> {
    if is_loopback(authority) {
        return None;
    }
    let var = |name: &str| {
        let lower = name.to_ascii_lowercase();
        env(name)
            .map(|v| (name.to_string(), v))
            .or_else(|| env(&lower).map(|v| (lower, v)))
            .filter(|(_, v)| !v.trim().is_empty())
    };
    if var("NO_PROXY").is_some_and(|(_, np)| no_proxy_matches(&np, authority)) {
        return None;
    }
    let by_scheme = if scheme == "https" {
        var("HTTPS_PROXY")
    } else {
        var("HTTP_PROXY")
    };
    by_scheme.or_else(|| var("ALL_PROXY"))
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn agent(
    opts: &RegistryOptions,
    verify: bool,
    proxy: Option<&str>,
    stall: Duration,
) -> Result<ureq::Agent> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if !verify {
        tls = tls.disable_verification(true);
    } else if opts.ca_files.is_empty() {
        // The operating system's trust store: on Windows that is where corporate CAs live.
        tls = tls.root_certs(ureq::tls::RootCerts::PlatformVerifier);
    } else {
        let mut roots: Vec<ureq::tls::Certificate<'static>> = Vec::new();
        let native = rustls_native_certs::load_native_certs();
        for der in native.certs {
            roots.push(ureq::tls::Certificate::from_der(der.as_ref()).to_owned());
        }
        for file in &opts.ca_files {
            let pem = std::fs::read(file)
                .with_context(|| format!("reading CA file {}", file.display()))?;
            let mut found = 0;
            for item in ureq::tls::parse_pem(&pem) {
                if let ureq::tls::PemItem::Certificate(c) =
                    item.with_context(|| format!("parsing {}", file.display()))?
                {
                    roots.push(c);
                    found += 1;
                }
            }
            if found == 0 {
                bail!("{} holds no PEM certificate", file.display());
            }
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
    }
    let proxy = proxy
        .map(|p| ureq::Proxy::new(p).map_err(|e| anyhow!("the proxy {p} is not usable: {e}")))
        .transpose()?;
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .user_agent(concat!("oci2wsl/", env!("CARGO_PKG_VERSION")))
        // The proxy is chosen per request (`proxy_for`), never by ureq from the environment.
        .proxy(proxy)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(stall))
        // A stalled body: no byte for this long ends the attempt (and it is retried); a
        // trickle is caught by `StallGuard`.
        .timeout_recv_body(None)
        .timeout_per_read(Some(stall))
        // Redirects are followed by `Client::send`, which decides what each hop may get.
        .max_redirects(0)
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// A response body that fails with `TimedOut` when a stall window passes with fewer than
/// `STALL_MIN_BYTES` bytes: the attempt is then retried (or resumed) like a broken one.
pub struct StallGuard<R> {
    inner: R,
    window: Duration,
    started: Instant,
    bytes: u64,
}

impl<R: Read> StallGuard<R> {
    pub fn new(inner: R, window: Duration) -> StallGuard<R> {
        StallGuard {
            inner,
            window,
            started: Instant::now(),
            bytes: 0,
        }
    }
}

impl<R: Read> Read for StallGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.started.elapsed() >= self.window {
            if self.bytes < STALL_MIN_BYTES && n > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "stalled: {} bytes in {} s",
                        self.bytes,
                        self.window.as_secs_f32()
                    ),
                ));
            }
            self.started = Instant::now();
            self.bytes = 0;
        }
        Ok(n)
    }
}

/// The name does not exist (NXDOMAIN), as opposed to a resolver that did not answer: no
/// retry makes it exist.
fn is_unknown_host(e: &ureq::Error) -> bool {
    if matches!(e, ureq::Error::HostNotFound) {
        return true;
    }
    let text = e.to_string();
    // glibc's EAI_NONAME, macOS's, and Windows' WSAHOST_NOT_FOUND (11001).
    text.contains("Name or service not known")
        || text.contains("nodename nor servname provided")
        || text.contains("No such host is known")
        || text.contains("os error 11001")
}

fn is_certificate_error(e: &ureq::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("unknownissuer")
}

/// `Retry-After` in seconds, capped at `MAX_RETRY_AFTER`.
fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250u64 << attempt.min(6)).min(8_000))
}

/// The registry's own error text (`{"errors":[{"code":…,"message":…}]}`), shortened, with
/// control characters escaped.
/// `": MESSAGE"`, or nothing when the registry said nothing (a `HEAD` answer has no body).
fn because(message: String) -> String {
    if message.is_empty() {
        message
    } else {
        format!(": {message}")
    }
}

fn registry_message(resp: Response<Body>) -> String {
    let mut body = resp.into_body();
    let text = body
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(e) = v.get("errors").and_then(|e| e.get(0)) {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            let text: String = format!("{code}: {msg}").chars().take(400).collect();
            return printable(text.trim_matches([' ', ':'])).into_owned();
        }
    }
    let text: String = text.chars().take(200).collect();
    printable(&text).into_owned()
}

/// `scheme`, `authority` and the whole URL of an absolute `http(s)://` URL.
pub(super) fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty() && !authority.contains('@')).then_some((scheme, authority))
}

/// A `Location` header resolved against the URL that sent it.
fn resolve_location(base: &str, location: &str) -> Option<String> {
    let (scheme, authority) = split_url(base)?;
    let location = location.trim();
    if location.contains("://") {
        split_url(location)?;
        return Some(location.to_string());
    }
    if let Some(rest) = location.strip_prefix("//") {
        return resolve_location(base, &format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = &base[scheme.len() + 3 + authority.len()..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

/// A response and whether it came from the registry itself or from a host it redirected to.
struct Reply {
    resp: Response<Body>,
    /// The authority that answered, when it is not the registry's.
    redirected_to: Option<String>,
}

impl Client {
    pub fn new(
        registry: &str,
        api_host: &str,
        repository: &str,
        opts: &RegistryOptions,
        observer: SharedObserver,
    ) -> Result<Client> {
        let found = if opts.no_creds {
            authn::Found::default()
        } else {
            authn::lookup(
                opts.creds.as_ref(),
                opts.authfile.as_deref(),
                registry,
                repository,
                observer.as_ref(),
            )?
        };
        let insecure = opts
            .insecure_registries
            .iter()
            .any(|h| h == registry || h == api_host);
        let listed: Vec<&String> = opts.insecure_registries.iter().collect();
        let names_registry = |h: &&String| {
            [registry, api_host]
                .iter()
                .any(|r| h.as_str() == *r || h.as_str() == host_of(r))
        };
        if !listed.is_empty() && !listed.iter().any(names_registry) {
            crate::events::warn(observer.as_ref(), format!(
                "--insecure-registry {} does not name {registry}, so it changes nothing for it (give the registry's host, or host:port, as the image reference writes it)",
                listed.iter().map(|h| printable(h).into_owned()).collect::<Vec<_>>().join(", ")
            ));
        }
        let mut opts = opts.clone();
        if opts.tls_verify {
            let found = super::certs::ca_files(opts.cert_dir.as_deref(), &[registry, api_host])?;
            opts.ca_files.extend(found);
        }
        let stall = match std::env::var("OCI2WSL_STALL_TIMEOUT") {
            Ok(v) => {
                Duration::from_secs(v.trim().parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(
                    || anyhow!("OCI2WSL_STALL_TIMEOUT must be a number of seconds, not {v:?}"),
                )?)
            }
            Err(_) => DEFAULT_STALL,
        };
        // Built once here so that a bad CA file is an error before anything is fetched.
        let first = agent(&opts, opts.tls_verify, None, stall)?;
        Ok(Client {
            authorizer: Authorizer::new(found, opts.no_creds),
            agents: Mutex::new(HashMap::from([((opts.tls_verify, None), first)])),
            opts,
            registry: registry.to_string(),
            api_host: api_host.to_string(),
            repository: repository.to_string(),
            observer,
            insecure,
            scheme: Mutex::new(None),
            stall,
            cancel: Cancel::new(),
        })
    }

    /// Stops retrying, and waiting to retry, once `cancel` is cancelled.
    pub fn stopped_by(mut self, cancel: Cancel) -> Client {
        self.cancel = cancel;
        self
    }

    /// Attempts per request: the first and `--retry-times` more.
    fn attempts(&self) -> u32 {
        self.opts.retry_times.saturating_add(1)
    }

    /// A retry, for the observer (the CLI shows it on a terminal and with `-v`): a run that
    /// waits says why.
    fn note_retry(&self, what: &str, cause: &str, wait: Duration, attempt: u32) {
        self.observer.event(&Event::Retry {
            what: format!("{what} from {}", self.api_host),
            attempt,
            reason: cause.to_string(),
            wait,
        });
    }

    /// One exchange, for the observer. The query string is left out: a redirect to a CDN
    /// carries its signature there, and a token request its scope.
    pub(super) fn log_request(
        &self,
        method: &str,
        url: &str,
        outcome: Result<StatusCode, &ureq::Error>,
        took: Duration,
    ) {
        if !self.opts.log_requests {
            return;
        }
        self.observer.event(&Event::Request {
            method: method.to_string(),
            url: url.split(['?', '#']).next().unwrap_or(url).to_string(),
            status: outcome.ok().map(|s| s.as_u16()),
            elapsed: took,
        });
    }

    /// Why the registry could not be reached, and what to do about it.
    fn unreachable(&self, what: &str, e: &ureq::Error, attempts: u32) -> anyhow::Error {
        tagged(
            ErrorKind::Network,
            self.unreachable_message(what, e, attempts),
        )
    }

    fn unreachable_message(&self, what: &str, e: &ureq::Error, attempts: u32) -> String {
        let host = &self.api_host;
        if is_certificate_error(e) {
            return format!("{what}: {host} answered, but its TLS certificate is not trusted ({e}); trust its CA with --ca-file FILE or --cert-dir DIR, or skip the check with --tls-verify=false (insecure)");
        }
        if is_unknown_host(e) {
            return format!(
                "{what}: there is no host {} (the name does not resolve; check its spelling)",
                printable(host_of(host))
            );
        }
        let scheme = self.scheme.lock().unwrap().unwrap_or("https");
        if let Some((var, proxy)) = proxy_source(scheme, host, &env_var) {
            return format!("{what}: cannot reach the proxy {} (from {var}) on the way to {host}: {e}; fix or unset {var}, or exempt the host in NO_PROXY", printable(&proxy));
        }
        let tries = if attempts > 1 {
            format!(" ({attempts} attempts)")
        } else {
            String::new()
        };
        format!("{what}: cannot reach {host}{tries}: {e}")
    }

    /// Whether the registry is spoken to over TLS (or will be: the scheme is not chosen yet).
    pub(super) fn reached_over_tls(&self) -> bool {
        *self.scheme.lock().unwrap() != Some("http")
    }

    /// The stall window of every body read (see `StallGuard`).
    pub fn stall_window(&self) -> Duration {
        self.stall
    }

    pub(super) fn what(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    pub(super) fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// `--insecure-registry` names this host (or it is the registry, named either way).
    fn listed_insecure(&self, authority: &str) -> bool {
        (authority == self.api_host && self.insecure)
            || self
                .opts
                .insecure_registries
                .iter()
                .any(|h| h == authority || h == host_of(authority))
    }

    /// Plain HTTP is allowed for loopback and `--insecure-registry` hosts.
    pub(super) fn plain_allowed(&self, authority: &str) -> bool {
        self.listed_insecure(authority) || is_loopback(authority)
    }

    /// The agent for a request to this URL: certificate checks unless `--tls-verify=false`
    /// or the host itself is an `--insecure-registry`; the proxy `proxy_for` picks.
    pub(super) fn agent_for(&self, url: &str) -> Result<ureq::Agent> {
        let (scheme, authority) =
            split_url(url).ok_or_else(|| anyhow!("not an http(s) URL: {}", printable(url)))?;
        let verify = self.opts.tls_verify && !self.listed_insecure(authority);
        let key = (verify, proxy_for(scheme, authority, &env_var));
        let mut agents = self.agents.lock().unwrap();
        if let Some(a) = agents.get(&key) {
            return Ok(a.clone());
        }
        let made = agent(&self.opts, verify, key.1.as_deref(), self.stall)?;
        agents.insert(key, made.clone());
        Ok(made)
    }

    /// Sends one GET to the registry, choosing the scheme on first use (https, or for
    /// loopback and `--insecure-registry` hosts http when https does not answer, as docker
    /// does), and follows redirects itself: at most `MAX_REDIRECTS` hops, the
    /// `Authorization` header only to the registry's own origin, never from https down to
    /// http unless the target host may speak plain HTTP. The outer error is a refusal (not
    /// retried), the inner one a transport error.
    fn send(
        &self,
        head: bool,
        path: &str,
        accept: Option<&str>,
        range_from: u64,
        auth: Option<&str>,
    ) -> Result<Result<Reply, ureq::Error>> {
        let known = *self.scheme.lock().unwrap();
        let schemes: Vec<&'static str> = match known {
            Some(s) => vec![s],
            None if self.plain_allowed(&self.api_host) => vec!["https", "http"],
            None => vec!["https"],
        };
        let mut last = None;
        for scheme in schemes {
            let origin = format!("{scheme}://{}", self.api_host);
            let mut url = format!("{origin}{path}");
            let mut hops = 0;
            let mut tls_so_far = scheme == "https";
            loop {
                let (_, authority) = split_url(&url).expect("URLs here are checked");
                let at_registry = url.starts_with(&format!("{origin}/"));
                let agent = self.agent_for(&url)?;
                let mut req = if head {
                    agent.head(&url)
                } else {
                    agent.get(&url)
                };
                if let Some(a) = accept {
                    req = req.header("Accept", a);
                }
                if range_from > 0 {
                    req = req.header("Range", &format!("bytes={range_from}-"));
                }
                if let (Some(a), true) = (auth, at_registry) {
                    req = req.header("Authorization", a);
                }
                let started = Instant::now();
                let result = req.call();
                self.log_request(
                    "GET",
                    &url,
                    result.as_ref().map(|r| r.status()),
                    started.elapsed(),
                );
                let resp = match result {
                    Ok(resp) => resp,
                    // A server that speaks TLS but whose certificate we do not trust is not a
                    // plain-HTTP server: say so rather than trying http and hiding the cause.
                    Err(e) if is_certificate_error(&e) || hops > 0 => return Ok(Err(e)),
                    Err(e) => {
                        last = Some(e);
                        break;
                    }
                };
                *self.scheme.lock().unwrap() = Some(scheme);
                let status = resp.status();
                if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                    return Ok(Ok(Reply {
                        resp,
                        redirected_to: (!at_registry).then(|| authority.to_string()),
                    }));
                }
                hops += 1;
                if hops > MAX_REDIRECTS {
                    bail_kind!(
                        Network,
                        "{}: more than {MAX_REDIRECTS} redirects for {path}",
                        self.what()
                    );
                }
                let next = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| resolve_location(&url, l))
                    .ok_or_else(|| {
                        kind_err!(
                            Network,
                            "{}: {authority} answered {status} without a usable http(s) Location",
                            self.what()
                        )
                    })?;
                let (next_scheme, next_authority) = split_url(&next).expect("resolved above");
                if next_scheme == "http" && tls_so_far && !self.plain_allowed(next_authority) {
                    bail!(
                        "{}: refusing the redirect from https to plain http://{} (allow that host with --insecure-registry)",
                        self.what(),
                        printable(next_authority)
                    );
                }
                tls_so_far |= next_scheme == "https";
                url = next;
            }
        }
        Ok(Err(last.expect("at least one scheme")))
    }

    /// GET with authentication and retries. Returns a 2xx response (206 for ranges).
    pub fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        range_from: u64,
        what: &str,
    ) -> Result<Response<Body>> {
        self.request(false, path, accept, range_from, what)
    }

    /// GET, or HEAD when `head`, with authentication and retries.
    fn request(
        &self,
        head: bool,
        path: &str,
        accept: Option<&str>,
        range_from: u64,
        what: &str,
    ) -> Result<Response<Body>> {
        let mut token_fetches = 0;
        let mut attempt = 0;
        loop {
            self.cancel.check()?;
            let auth = self.authorizer.header(&self.scope());
            let Reply {
                resp,
                redirected_to,
            } = match self.send(head, path, accept, range_from, auth.as_deref())? {
                Ok(r) => r,
                Err(e) => {
                    attempt += 1;
                    let permanent = is_certificate_error(&e)
                        || is_unknown_host(&e)
                        || matches!(e, ureq::Error::Tls(_) | ureq::Error::BadUri(_));
                    if attempt >= self.attempts() || permanent {
                        return Err(self.unreachable(what, &e, attempt));
                    }
                    let wait = backoff(attempt);
                    self.note_retry(what, &e.to_string(), wait, attempt);
                    self.cancel.sleep(wait)?;
                    continue;
                }
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if let (401, Some(host)) = (status.as_u16(), &redirected_to) {
                // docker takes challenges only from the registry itself: a redirect target
                // that asks for credentials gets none, nor a token exchanged on our behalf.
                return Err(tagged(
                    ErrorKind::Auth,
                    format!(
                        "{what}: {} (where {} redirected) asks for authentication; credentials go only to the registry",
                        printable(host),
                        self.what()
                    ),
                ));
            }
            match status.as_u16() {
                401 => {
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|h| h.to_str().ok());
                    self.authorizer.answer(
                        self,
                        challenge,
                        auth.as_deref(),
                        &mut token_fetches,
                        what,
                    )?;
                }
                403 => {
                    return Err(tagged(
                        ErrorKind::Auth,
                        format!(
                            "access denied to {} ({what}){}",
                            self.what(),
                            because(registry_message(resp))
                        ),
                    ))
                }
                404 => {
                    return Err(tagged(
                        ErrorKind::NotFound,
                        format!(
                            "{what} not found in {}{}",
                            self.what(),
                            because(registry_message(resp))
                        ),
                    ))
                }
                416 if range_from > 0 => {
                    bail_kind!(
                        Network,
                        "{what}: the registry refused to resume at byte {range_from}"
                    )
                }
                429 | 500..=599 => {
                    attempt += 1;
                    if attempt >= self.attempts() {
                        bail_kind!(
                            Network,
                            "{what}: {} kept answering {status} after {attempt} attempts",
                            self.api_host
                        );
                    }
                    let wait = retry_after(&resp).unwrap_or_else(|| backoff(attempt));
                    drop(resp);
                    self.note_retry(what, &format!("answered {status}"), wait, attempt);
                    self.cancel.sleep(wait)?;
                }
                _ => bail!(
                    "{what}: {} answered {status}{}",
                    self.what(),
                    because(registry_message(resp))
                ),
            }
        }
    }

    /// A small document (manifest or config) whole: bytes, Content-Type and
    /// Docker-Content-Digest. A connection that breaks (or stalls) while the body is read is
    /// retried.
    fn small(
        &self,
        path: &str,
        accept: Option<&str>,
        limit: u64,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>)> {
        let mut attempt = 0;
        loop {
            let resp = self.get(path, accept, 0, what)?;
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            };
            let media = header("content-type")
                .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
            let digest = header("docker-content-digest");
            let mut body = Vec::new();
            let read = StallGuard::new(resp.into_body().into_reader(), self.stall)
                .take(limit + 1)
                .read_to_end(&mut body);
            match read {
                Ok(_) if body.len() as u64 > limit => {
                    bail_kind!(
                        HostileInput,
                        "{what} of {} is larger than the {limit}-byte limit",
                        self.what()
                    )
                }
                Ok(_) => return Ok((body, media, digest)),
                Err(e) => {
                    attempt += 1;
                    if attempt >= self.attempts() {
                        bail_kind!(Network, "{what} of {}: {e}", self.what());
                    }
                    let wait = backoff(attempt);
                    self.note_retry(what, &e.to_string(), wait, attempt);
                    self.cancel.sleep(wait)?;
                }
            }
        }
    }

    /// A manifest (by tag or digest): bytes, the declared media type, the registry's digest.
    pub fn manifest(
        &self,
        reference: &str,
        accept: &str,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>)> {
        self.small(
            &format!("/v2/{}/manifests/{reference}", self.repository),
            Some(accept),
            limit,
            &format!("manifest {reference}"),
        )
    }

    /// The digest a tag resolves to, from one `HEAD` of its manifest (Docker Hub does not
    /// count a `HEAD` against its pull limit). `None` when the registry sends no
    /// `Docker-Content-Digest`, which the distribution spec makes optional.
    pub fn manifest_digest(&self, reference: &str, accept: &str) -> Result<Option<String>> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let what = format!("manifest {reference}");
        let resp = match self.request(true, &path, Some(accept), 0, &what) {
            Ok(resp) => resp,
            // A refused HEAD has no body, so the registry's reason (MANIFEST_UNKNOWN,
            // DENIED: …) is lost; one GET gets the error a user can act on.
            Err(e)
                if matches!(
                    crate::error::classify(&e),
                    ErrorKind::NotFound | ErrorKind::Auth
                ) =>
            {
                self.request(false, &path, Some(accept), 0, &what)?
            }
            Err(e) => return Err(e),
        };
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|h| h.to_str().ok())
            .map(|h| h.trim().to_string()))
    }

    /// A small blob (a config) whole.
    pub fn small_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        Ok(self.small(&path, None, limit, &format!("blob {digest}"))?.0)
    }

    /// A blob's bytes from `offset` on, as a stream guarded against stalls, with the offset
    /// the body really starts at: 0 for a `200` (the registry ignored the range), the start
    /// of `Content-Range` for a `206`, `None` for a `206` without a readable one.
    pub fn blob(&self, digest: &str, offset: u64) -> Result<BlobBody> {
        let what = format!("blob {digest}");
        let resp = self.get(
            &format!("/v2/{}/blobs/{digest}", self.repository),
            None,
            offset,
            &what,
        )?;
        let (start, total) = if resp.status() == StatusCode::PARTIAL_CONTENT {
            match resp
                .headers()
                .get("content-range")
                .and_then(|h| h.to_str().ok())
                .and_then(parse_content_range)
            {
                Some((start, total)) => (Some(start), total),
                None => (None, None),
            }
        } else {
            (Some(0), None)
        };
        let body = StallGuard::new(resp.into_body().into_reader(), self.stall);
        Ok(BlobBody {
            body: Box::new(body),
            start,
            total,
        })
    }
}

/// A blob response: its body, the blob offset the body starts at (`None`: a `206` whose
/// `Content-Range` cannot be read) and the blob's total size when the registry said it.
pub struct BlobBody {
    pub body: Box<dyn Read + Send>,
    pub start: Option<u64>,
    pub total: Option<u64>,
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`): the start, and the total when given.
fn parse_content_range(header: &str) -> Option<(u64, Option<u64>)> {
    let rest = header.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start = start.trim().parse::<u64>().ok()?;
    let end = end.trim().parse::<u64>().ok()?;
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    Some((start, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::remote::authn::Credentials;

    #[test]
    fn loopback_is_ip_literals_and_localhost_only() {
        for h in [
            "localhost:5000",
            "LOCALHOST",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
            "localhost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.io",
            "10.0.0.1:5000",
            "localhost.evil.com",
            "127.attacker.example",
            "127.0.0.1.nip.io:5000",
            "[::2]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn no_proxy_entries() {
        let np = "10.0.0.0/8, .corp.example,*.lab.example, plain.example, 192.168.1.7, ports.example:5000, [fd00::1]";
        for h in [
            "10.1.2.3:443",
            "a.corp.example",
            "corp.example",
            "x.lab.example",
            "plain.example",
            "sub.plain.example:5000",
            "192.168.1.7",
            "ports.example:5000",
            "[fd00::1]:443",
        ] {
            assert!(no_proxy_matches(np, h), "{h}");
        }
        for h in [
            "11.0.0.1",
            "notcorp.example",
            "plain.example.evil",
            "192.168.1.8",
            "ports.example:443",
            "[fd00::2]",
        ] {
            assert!(!no_proxy_matches(np, h), "{h}");
        }
        assert!(no_proxy_matches("*", "anything.example"));
        assert!(no_proxy_matches("fd00::/16", "[fd00:1::5]:5000"));
    }

    #[test]
    fn proxy_choice() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("HTTPS_PROXY", "http://secure-proxy:3128"),
            ("http_proxy", "http://plain-proxy:3128"),
            ("NO_PROXY", "127.0.0.0/8,.internal"),
        ]);
        let get = |k: &str| env.get(k).map(|v| v.to_string());
        assert_eq!(
            proxy_for("https", "ghcr.io", &get).as_deref(),
            Some("http://secure-proxy:3128")
        );
        assert_eq!(
            proxy_for("http", "ghcr.io", &get).as_deref(),
            Some("http://plain-proxy:3128")
        );
        assert_eq!(proxy_for("https", "reg.internal:5000", &get), None);
        // Loopback never goes through a proxy, NO_PROXY or not.
        let all: HashMap<&str, &str> = HashMap::from([("ALL_PROXY", "http://p:1")]);
        let get = |k: &str| all.get(k).map(|v| v.to_string());
        assert_eq!(proxy_for("http", "localhost:5000", &get), None);
        assert_eq!(proxy_for("http", "[::1]:5000", &get), None);
        assert_eq!(
            proxy_for("https", "127.attacker.example", &get).as_deref(),
            Some("http://p:1")
        );
    }

    #[test]
    fn locations() {
        let base = "https://reg.io:5000/v2/a/blobs/sha256:ab?x=1";
        assert_eq!(
            resolve_location(base, "https://cdn.io/o?sig=1").as_deref(),
            Some("https://cdn.io/o?sig=1")
        );
        assert_eq!(
            resolve_location(base, "//cdn.io/o").as_deref(),
            Some("https://cdn.io/o")
        );
        assert_eq!(
            resolve_location(base, "/other").as_deref(),
            Some("https://reg.io:5000/other")
        );
        assert_eq!(
            resolve_location(base, "next").as_deref(),
            Some("https://reg.io:5000/v2/a/blobs/next")
        );
        assert_eq!(resolve_location(base, "ftp://x/y"), None);
        // user@host in a Location could disguise the host a request really goes to.
        assert_eq!(resolve_location(base, "https://reg.io@evil.io/"), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 4616-9727/9728"),
            Some((4616, Some(9728)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 9-0/10"), None);
        assert_eq!(parse_content_range("items 0-9/10"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
    }

    #[test]
    fn retry_after_is_capped() {
        let resp = Response::builder()
            .status(429)
            .header("Retry-After", "60")
            .body(Body::builder().data(""))
            .unwrap();
        assert_eq!(retry_after(&resp), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn insecure_is_per_host() {
        let opts = RegistryOptions {
            creds: Some(Credentials::parse_creds("u:p").unwrap()),
            insecure_registries: vec!["reg.io:5000".into(), "mirror.lan".into()],
            ..Default::default()
        };
        let client = Client::new(
            "reg.io:5000",
            "reg.io:5000",
            "a/b",
            &opts,
            crate::events::silent(),
        )
        .unwrap();
        // Plain http (a redirect or realm downgrade) only where --insecure-registry or
        // loopback allows it.
        assert!(client.plain_allowed("reg.io:5000"));
        assert!(client.plain_allowed("mirror.lan:8080"));
        assert!(client.plain_allowed("127.0.0.1:9000"));
        assert!(!client.plain_allowed("auth.reg.io"));
        assert!(!client.plain_allowed("127.attacker.example"));
        // The registry's --insecure-registry does not switch certificate checks off for a
        // realm or redirect target on another host.
        assert!(client.listed_insecure("reg.io:5000"));
        assert!(!client.listed_insecure("auth.reg.io"));
        assert!(!client.listed_insecure("reg.io:443"));
    }

    /// A loopback server that answers every request with `response`, and the client of a
    /// repository on it.
    fn answering(response: &'static str) -> Client {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.read(&mut [0u8; 4096]);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        let opts = RegistryOptions {
            creds: Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into(),
            }),
            ..RegistryOptions::default()
        };
        Client::new(&addr, &addr, "r", &opts, crate::events::silent()).unwrap()
    }

    #[test]
    fn registry_answers_have_kinds() {
        use crate::error::{classify, ErrorKind};
        let kind = |response| {
            let client = answering(response);
            classify(&client.manifest("latest", "*/*", 1024).unwrap_err())
        };
        assert_eq!(
            kind("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            ErrorKind::Auth
        );
        assert_eq!(
            kind("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            ErrorKind::Auth
        );
    }

    #[test]
    fn an_unreachable_registry_is_a_network_error() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let client = Client::new(
            &addr,
            &addr,
            "r",
            &RegistryOptions::default(),
            crate::events::silent(),
        )
        .unwrap();
        let e = client.manifest("latest", "*/*", 1024).unwrap_err();
        assert_eq!(crate::error::classify(&e), crate::error::ErrorKind::Network);
    }

    #[test]
    fn a_trickle_is_a_stall() {
        struct Trickle;
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                buf[0] = b'x';
                Ok(1)
            }
        }
        // A zero window makes every read the end of a window.
        let mut guard = StallGuard::new(Trickle, Duration::ZERO);
        let err = guard.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let mut plenty = StallGuard::new(&[7u8; 64 * 1024][..], Duration::ZERO);
        let mut buf = vec![0u8; 64 * 1024];
        assert_eq!(plenty.read(&mut buf).unwrap(), 64 * 1024);
    }
}
