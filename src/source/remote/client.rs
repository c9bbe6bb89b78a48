//! The registry HTTP API (distribution v2) with the real-world details: scheme choice,
//! bearer and basic auth with token caching, retries with backoff, `Retry-After`, resumed
//! downloads. Error messages name the registry, repository and what failed, and never carry
//! a credential or a token.

use super::auth::{self, Challenge, Credentials};
use super::RegistryOptions;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::{Response, StatusCode};
use ureq::Body;

const MAX_ATTEMPTS: u32 = 6;
const MAX_TOKEN_FETCHES: u32 = 2;

pub struct Client {
    agent: ureq::Agent,
    /// For hosts whose TLS may go unverified (`--insecure-registry`, `--tls-verify=false`).
    insecure_agent: ureq::Agent,
    registry: String,
    api_host: String,
    repository: String,
    credentials: Option<Credentials>,
    insecure: bool,
    /// "https" or "http", decided by the first request.
    scheme: Mutex<Option<&'static str>>,
    /// Authorization header values by scope.
    tokens: Mutex<HashMap<String, String>>,
}

fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost" || name.starts_with("127.") || name == "::1"
}

fn agent(opts: &RegistryOptions, verify: bool) -> Result<ureq::Agent> {
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
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .user_agent(concat!("oci2wsl/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // A stalled body: no byte for this long ends the attempt (and it is retried).
        .timeout_recv_body(None)
        .timeout_per_read(Some(Duration::from_secs(60)))
        .max_redirects(5)
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

fn is_certificate_error(e: &ureq::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("unknownissuer")
}

fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(60)))
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250u64 << attempt.min(6)).min(8_000))
}

/// The registry's own error text (`{"errors":[{"code":…,"message":…}]}`), shortened.
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
            return format!("{code}: {msg}")
                .trim_matches([' ', ':'])
                .to_string();
        }
    }
    text.chars().take(200).filter(|c| !c.is_control()).collect()
}

impl Client {
    pub fn new(
        registry: &str,
        api_host: &str,
        repository: &str,
        opts: &RegistryOptions,
    ) -> Result<Client> {
        let credentials = auth::lookup(
            opts.creds.as_ref(),
            opts.authfile.as_deref(),
            registry,
            repository,
        )?;
        let insecure = opts
            .insecure_registries
            .iter()
            .any(|h| h == registry || h == api_host);
        let mut opts = opts.clone();
        if let Some(dir) = &opts.cert_dir {
            // docker's certs.d layout: DIR/*.crt are CAs.
            for entry in std::fs::read_dir(dir)
                .with_context(|| format!("reading --cert-dir {}", dir.display()))?
            {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "crt") {
                    opts.ca_files.push(path);
                }
            }
        }
        Ok(Client {
            agent: agent(&opts, opts.tls_verify)?,
            insecure_agent: agent(&opts, false)?,
            registry: registry.to_string(),
            api_host: api_host.to_string(),
            repository: repository.to_string(),
            credentials,
            insecure,
            scheme: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn what(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// Sends one GET, choosing the scheme on first use: https, or for loopback and
    /// `--insecure-registry` hosts http when https does not answer, as docker does.
    fn send(
        &self,
        path: &str,
        accept: Option<&str>,
        range_from: u64,
        auth: Option<&str>,
    ) -> Result<Response<Body>, ureq::Error> {
        let known = *self.scheme.lock().unwrap();
        let plain_allowed = self.insecure || is_loopback(&self.api_host);
        let schemes: Vec<&'static str> = match known {
            Some(s) => vec![s],
            None if plain_allowed => vec!["https", "http"],
            None => vec!["https"],
        };
        let mut last = None;
        for scheme in schemes {
            let url = format!("{scheme}://{}{path}", self.api_host);
            let agent = if self.insecure {
                &self.insecure_agent
            } else {
                &self.agent
            };
            let mut req = agent.get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if range_from > 0 {
                req = req.header("Range", &format!("bytes={range_from}-"));
            }
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            match req.call() {
                Ok(resp) => {
                    *self.scheme.lock().unwrap() = Some(scheme);
                    return Ok(resp);
                }
                // A server that speaks TLS but whose certificate we do not trust is not a
                // plain-HTTP server: say so rather than trying http and hiding the cause.
                Err(e) if is_certificate_error(&e) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one scheme"))
    }

    fn cached_auth(&self) -> Option<String> {
        if let Some(t) = self.tokens.lock().unwrap().get(&self.scope()) {
            return Some(t.clone());
        }
        None
    }

    /// Exchanges a bearer challenge for a token (anonymous, with basic credentials, or
    /// with an identity token as a refresh token).
    fn fetch_token(&self, challenge: &Challenge) -> Result<String> {
        let realm = challenge.params.get("realm").ok_or_else(|| {
            anyhow!(
                "{}: the registry's bearer challenge has no realm",
                self.what()
            )
        })?;
        let scope = challenge
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| self.scope());
        let service = challenge.params.get("service").cloned().unwrap_or_default();
        let agent = if self.insecure {
            &self.insecure_agent
        } else {
            &self.agent
        };
        let resp = match &self.credentials {
            Some(Credentials::IdentityToken(refresh)) => agent.post(realm).send_form([
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("service", service.as_str()),
                ("scope", scope.as_str()),
                ("client_id", "oci2wsl"),
            ]),
            other => {
                let mut req = agent.get(realm).query("scope", &scope);
                if !service.is_empty() {
                    req = req.query("service", &service);
                }
                if let Some(h) = other.as_ref().and_then(|c| c.basic_header()) {
                    req = req.header("Authorization", &h);
                }
                req.call()
            }
        }
        .map_err(|e| anyhow!("{}: cannot reach the token service: {e}", self.what()))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            bail!(
                "authentication failed for {} (the token service refused the credentials)",
                self.what()
            );
        }
        if !status.is_success() {
            bail!("{}: the token service answered {status}", self.what());
        }
        let body = resp
            .into_body()
            .with_config()
            .limit(1024 * 1024)
            .read_to_vec()
            .map_err(|e| anyhow!("{}: reading the token: {e}", self.what()))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| anyhow!("{}: the token service did not answer JSON", self.what()))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("{}: the token service's answer has no token", self.what()))?;
        Ok(format!("Bearer {token}"))
    }

    /// GET with authentication and retries. Returns a 2xx response (206 for ranges).
    pub fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        range_from: u64,
        what: &str,
    ) -> Result<Response<Body>> {
        let mut token_fetches = 0;
        let mut attempt = 0;
        loop {
            let auth = self.cached_auth();
            let resp = match self.send(path, accept, range_from, auth.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    attempt += 1;
                    let permanent = is_certificate_error(&e)
                        || matches!(
                            e,
                            ureq::Error::Tls(_)
                                | ureq::Error::BadUri(_)
                                | ureq::Error::HostNotFound
                                | ureq::Error::TooManyRedirects
                                | ureq::Error::RedirectFailed
                        );
                    if attempt >= MAX_ATTEMPTS || permanent {
                        return Err(anyhow!("{what}: cannot reach {}: {e}", self.api_host));
                    }
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            match status.as_u16() {
                401 => {
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|h| h.to_str().ok())
                        .and_then(auth::parse_challenge);
                    token_fetches += 1;
                    if token_fetches > MAX_TOKEN_FETCHES {
                        bail!("authentication failed for {} ({what})", self.what());
                    }
                    match challenge {
                        Some(c) if c.scheme == "bearer" => {
                            let token = self.fetch_token(&c)?;
                            self.tokens.lock().unwrap().insert(self.scope(), token);
                        }
                        Some(c) if c.scheme == "basic" => {
                            let Some(header) = self.credentials.as_ref().and_then(|c| c.basic_header()) else {
                                bail!("authentication required for {} (use --creds, --authfile or docker login)", self.what());
                            };
                            if auth.as_deref() == Some(header.as_str()) {
                                bail!("authentication failed for {} (the registry refused the credentials)", self.what());
                            }
                            self.tokens.lock().unwrap().insert(self.scope(), header);
                        }
                        _ => bail!("authentication required for {} and the registry sent no usable challenge", self.what()),
                    }
                }
                403 => bail!(
                    "access denied to {} ({what}): {}",
                    self.what(),
                    registry_message(resp)
                ),
                404 => bail!(
                    "{what} not found in {}: {}",
                    self.what(),
                    registry_message(resp)
                ),
                416 if range_from > 0 => {
                    bail!("{what}: the registry refused to resume at byte {range_from}")
                }
                429 | 500..=599 => {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS {
                        bail!(
                            "{what}: {} kept answering {status} after {attempt} attempts",
                            self.api_host
                        );
                    }
                    let wait = retry_after(&resp).unwrap_or_else(|| backoff(attempt));
                    drop(resp);
                    std::thread::sleep(wait);
                }
                _ => bail!(
                    "{what}: {} answered {status}: {}",
                    self.what(),
                    registry_message(resp)
                ),
            }
        }
    }

    /// A small document (manifest or config) whole: bytes, Content-Type and
    /// Docker-Content-Digest. A connection that breaks while the body is read is retried.
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
            match resp.into_body().with_config().limit(limit).read_to_vec() {
                Ok(body) => return Ok((body, media, digest)),
                Err(ureq::Error::BodyExceedsLimit(_)) => {
                    bail!(
                        "{what} of {} is larger than the {limit}-byte limit",
                        self.what()
                    )
                }
                Err(e) => {
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS {
                        bail!("{what} of {}: {e}", self.what());
                    }
                    std::thread::sleep(backoff(attempt));
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

    /// A small blob (a config) whole.
    pub fn small_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        Ok(self.small(&path, None, limit, &format!("blob {digest}"))?.0)
    }

    /// A blob's bytes from `offset` on, as a stream; `Ok(None)` if the registry ignored the
    /// range and sends the whole blob again (the caller starts over).
    pub fn blob(&self, digest: &str, offset: u64) -> Result<(Box<dyn Read + Send>, bool)> {
        let what = format!("blob {digest}");
        let resp = self.get(
            &format!("/v2/{}/blobs/{digest}", self.repository),
            None,
            offset,
            &what,
        )?;
        let resumed = resp.status() == StatusCode::PARTIAL_CONTENT;
        Ok((Box::new(resp.into_body().into_reader()), resumed))
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.io", "10.0.0.1:5000", "localhost.evil.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
