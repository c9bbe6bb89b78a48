//! How credentials are presented to a registry (go-containerregistry's `transport`): the
//! answer to a `401`. A bearer challenge is exchanged for a token at the realm it names
//! (anonymously, with basic credentials, or with an identity token as a refresh token); a
//! basic challenge gets the basic credentials. Answers are kept per scope and sent with the
//! next requests.
//!
//! Which credentials exist is [`super::authn`]'s; parsing `WWW-Authenticate` is
//! [`super::challenge`]'s; sending requests, retrying them and deciding which hop of a
//! redirect may carry the answer is [`super::client`]'s.

use super::authn::{Credentials, Found};
use super::challenge::{self, Challenge};
use super::client::{split_url, Client, StallGuard};
use crate::error::{bail_kind, kind_err, tagged, ErrorKind};
use crate::terminal::printable;
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Instant;
use ureq::http::StatusCode;

/// Challenges answered per request before it fails: a registry that refuses a fresh token
/// would otherwise be asked forever.
const MAX_TOKEN_FETCHES: u32 = 2;

/// The credentials of one repository's client and the answers they earned.
pub struct Authorizer {
    credentials: Option<Credentials>,
    /// A credential helper that should have been asked but could not be run, and where it
    /// was named: said when the registry then wants credentials.
    unavailable_helper: Option<String>,
    /// `--no-creds` was given: said when the registry wants credentials.
    no_creds: bool,
    /// `Authorization` header values by scope.
    answers: Mutex<HashMap<String, String>>,
}

impl Authorizer {
    pub fn new(found: Found, no_creds: bool) -> Authorizer {
        Authorizer {
            credentials: found.credentials,
            unavailable_helper: found.unavailable_helper,
            no_creds,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The `Authorization` header for `scope`, once a challenge was answered.
    pub fn header(&self, scope: &str) -> Option<String> {
        self.answers.lock().unwrap().get(scope).cloned()
    }

    /// Answers the registry's `401` for `what` (its `WWW-Authenticate` header, and the
    /// `Authorization` the refused request carried), so that the request can be sent again.
    /// `fetches` counts the answers of this request.
    pub fn answer(
        &self,
        client: &Client,
        www_authenticate: Option<&str>,
        sent: Option<&str>,
        fetches: &mut u32,
        what: &str,
    ) -> Result<()> {
        let challenge = www_authenticate.and_then(challenge::parse_challenge);
        *fetches += 1;
        if *fetches > MAX_TOKEN_FETCHES {
            if self.credentials.is_none() {
                return Err(tagged(
                    ErrorKind::Auth,
                    format!(
                        "authentication failed for {} ({what}): the registry wants credentials ({})",
                        client.what(),
                        self.credential_hint()
                    ),
                ));
            }
            return Err(tagged(
                ErrorKind::Auth,
                format!("authentication failed for {} ({what})", client.what()),
            ));
        }
        let answer = match challenge {
            Some(c) if c.scheme == "bearer" => self.fetch_token(client, &c)?,
            Some(c) if c.scheme == "basic" => {
                let Some(header) = self.credentials.as_ref().and_then(|c| c.basic_header()) else {
                    return Err(tagged(
                        ErrorKind::Auth,
                        format!(
                            "authentication required for {} ({})",
                            client.what(),
                            self.credential_hint()
                        ),
                    ));
                };
                if sent == Some(header.as_str()) {
                    return Err(tagged(
                        ErrorKind::Auth,
                        format!(
                            "authentication failed for {} (the registry refused the credentials)",
                            client.what()
                        ),
                    ));
                }
                header
            }
            _ => {
                return Err(tagged(
                    ErrorKind::Auth,
                    format!(
                        "authentication required for {} and the registry sent no usable challenge",
                        client.what()
                    ),
                ))
            }
        };
        self.answers.lock().unwrap().insert(client.scope(), answer);
        Ok(())
    }

    /// Exchanges the registry's bearer challenge for a token (anonymous, with basic
    /// credentials, or with an identity token as a refresh token). The realm is the one the
    /// registry named; over TLS it must not be plain http unless its host may be.
    fn fetch_token(&self, client: &Client, challenge: &Challenge) -> Result<String> {
        let realm = challenge.params.get("realm").ok_or_else(|| {
            anyhow!(
                "{}: the registry's bearer challenge has no realm",
                client.what()
            )
        })?;
        let (realm_scheme, realm_host) = split_url(realm).ok_or_else(|| {
            anyhow!(
                "{}: the token realm {} is not an http(s) URL",
                client.what(),
                printable(realm)
            )
        })?;
        let registry_tls = client.reached_over_tls();
        if realm_scheme == "http" && registry_tls && !client.plain_allowed(realm_host) {
            bail!(
                "{}: refusing the plain-http token realm http://{} of a registry reached over https (allow that host with --insecure-registry)",
                client.what(),
                printable(realm_host)
            );
        }
        let scope = challenge
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| client.scope());
        let service = challenge.params.get("service").cloned().unwrap_or_default();
        let agent = client.agent_for(realm)?;
        let started = Instant::now();
        let result = match &self.credentials {
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
        };
        let method = if matches!(self.credentials, Some(Credentials::IdentityToken(_))) {
            "POST"
        } else {
            "GET"
        };
        client.log_request(
            method,
            realm,
            result.as_ref().map(|r| r.status()),
            started.elapsed(),
        );
        let resp = result.map_err(|e| {
            kind_err!(
                Network,
                "{}: cannot reach the token service: {e}",
                client.what()
            )
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            bail_kind!(
                Auth,
                "authentication failed for {} (the token service refused the credentials)",
                client.what()
            );
        }
        if !status.is_success() {
            bail_kind!(
                Auth,
                "{}: the token service answered {status}",
                client.what()
            );
        }
        let mut body = Vec::new();
        StallGuard::new(resp.into_body().into_reader(), client.stall_window())
            .take(1024 * 1024)
            .read_to_end(&mut body)
            .map_err(|e| anyhow!("{}: reading the token: {e}", client.what()))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| anyhow!("{}: the token service did not answer JSON", client.what()))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("{}: the token service's answer has no token", client.what()))?;
        Ok(format!("Bearer {token}"))
    }

    /// What to add to "authentication required": where credentials could have come from.
    fn credential_hint(&self) -> String {
        match &self.unavailable_helper {
            Some(helper) => format!("no credentials: {helper}; use --creds or fix the helper"),
            None if self.no_creds => "--no-creds was given".to_string(),
            None => "use --creds, --authfile or docker login".to_string(),
        }
    }
}
