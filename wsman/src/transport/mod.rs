//! HTTP(S) transport: one authenticated TCP connection per [`Connection`].
//!
//! Why a reqwest client per connection: WinRM binds the NTLM/Kerberos context
//! and the sealing sequence state to the TCP connection. A reqwest `Client`
//! with HTTP/1.1 only, at most one idle pooled connection, and strictly
//! sequential requests whose bodies are read fully always reuses that one
//! connection; reqwest still gives us rustls, proxies (options and
//! environment) and timeouts. If the server closes the connection reqwest
//! opens a new one silently: the local address in `HttpInfo` changes, and we
//! re-authenticate.

use crate::auth::channel_bindings::ChannelBindings;
use crate::auth::gss::{self, GssClient, GssMech};
use crate::auth::ntlm::{NtlmClient, NtlmCredentials};
use crate::auth::{scheme, Security};
use crate::config::{Auth, ProxyConfig, WsmanConfig};
use crate::encryption::{EncryptionError, Protocol};
use crate::error::Error;
use crate::secret::Secret;
use base64::Engine as _;
use hyper_util::client::legacy::connect::HttpInfo;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use std::net::SocketAddr;
use std::sync::Mutex;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
/// Bound on authentication round trips (NTLM needs 2, Kerberos 1-2).
const MAX_AUTH_LEGS: usize = 6;

/// State shared by all connections of one client.
pub(crate) struct Shared {
    pub(crate) config: WsmanConfig,
    pub(crate) endpoint: String,
    /// Kerberos credentials acquired with a password, reused by every connection.
    kerberos_cred: Mutex<Option<libgssapi::credential::Cred>>,
}

impl Shared {
    pub(crate) fn new(config: WsmanConfig) -> Self {
        Shared {
            endpoint: config.endpoint.to_string(),
            config,
            kerberos_cred: Mutex::new(None),
        }
    }

    fn auth_error(&self, reason: impl Into<String>) -> Error {
        Error::Auth {
            endpoint: self.endpoint.clone(),
            reason: reason.into(),
        }
    }

    fn http_error(&self, e: reqwest::Error) -> Error {
        // The error chain carries the useful part (e.g. "invalid peer
        // certificate: UnknownIssuer"); reqwest's top-level text does not.
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason.push_str(": ");
            reason.push_str(&s.to_string());
            src = s.source();
        }
        Error::Http {
            endpoint: self.endpoint.clone(),
            reason,
            timed_out: e.is_timeout(),
        }
    }

    fn encryption_error(&self, source: EncryptionError) -> Error {
        Error::Encryption {
            endpoint: self.endpoint.clone(),
            source,
        }
    }

    fn build_http_client(&self) -> Result<reqwest::Client, Error> {
        let c = &self.config;
        let mut b = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(1)
            .connect_timeout(c.connect_timeout)
            .timeout(c.effective_read_timeout())
            .user_agent(concat!("wsman-rs/", env!("CARGO_PKG_VERSION")));
        if c.is_https() {
            b = b.tls_info(true);
            if let Some(path) = &c.tls.ca_bundle {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::Config(format!("cannot read CA bundle {}: {e}", path.display()))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    Error::Config(format!("CA bundle {} is not PEM: {e}", path.display()))
                })?;
                if certs.is_empty() {
                    return Err(Error::Config(format!(
                        "CA bundle {} holds no certificate",
                        path.display()
                    )));
                }
                b = b.tls_certs_only(certs);
            }
            if c.tls.danger_accept_invalid_certs {
                tracing::warn!(endpoint = %self.endpoint, "TLS certificate verification is DISABLED");
                b = b.tls_danger_accept_invalid_certs(true);
            }
        }
        b = match &c.proxy {
            ProxyConfig::Environment => b,
            ProxyConfig::None => b.no_proxy(),
            ProxyConfig::Url(u) => b.proxy(
                reqwest::Proxy::all(u.as_str())
                    .map_err(|e| Error::Config(format!("proxy {u:?}: {e}")))?,
            ),
        };
        b.build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))
    }
}

/// One HTTP response, body read fully.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    local_addr: Option<SocketAddr>,
    peer_cert: Option<Vec<u8>>,
}

impl Reply {
    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Scheme words offered in WWW-Authenticate.
    fn offered_schemes(&self) -> Vec<String> {
        self.headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| {
                let word = part.split_whitespace().next()?;
                (!word.contains('=')).then(|| word.to_string())
            })
            .collect()
    }

    /// The token of `scheme` in WWW-Authenticate, if any.
    fn server_token(&self, scheme: &str) -> Result<Option<Vec<u8>>, String> {
        for v in self.headers.get_all(WWW_AUTHENTICATE) {
            let Ok(v) = v.to_str() else { continue };
            let mut it = v.trim().splitn(2, ' ');
            let (Some(s), Some(tok)) = (it.next(), it.next()) else {
                continue;
            };
            if s.eq_ignore_ascii_case(scheme) {
                return B64
                    .decode(tok.trim())
                    .map(Some)
                    .map_err(|e| format!("server {scheme} token is not base64: {e}"));
            }
        }
        Ok(None)
    }
}

/// An authentication exchange in progress.
enum Pending {
    Ntlm(NtlmClient),
    Gss(Box<GssClient>),
}

/// One TCP connection's HTTP client and security state.
pub(crate) struct Connection {
    http: reqwest::Client,
    local_addr: Option<SocketAddr>,
    /// Authenticated (the server associates this TCP connection with us).
    authenticated: bool,
    security: Option<(Security, Protocol)>,
    /// Authorization header for Basic.
    basic: Option<String>,
}

fn basic_header(username: &str, password: &Secret) -> String {
    format!(
        "Basic {}",
        B64.encode(format!("{username}:{}", password.expose()))
    )
}

impl Connection {
    pub(crate) fn new(shared: &Shared) -> Result<Self, Error> {
        let basic = match &shared.config.auth {
            Auth::Basic { username, password } => Some(basic_header(username, password)),
            _ => None,
        };
        Ok(Connection {
            http: shared.build_http_client()?,
            local_addr: None,
            authenticated: false,
            security: None,
            basic,
        })
    }

    async fn post(
        &self,
        shared: &Shared,
        body: Vec<u8>,
        content_type: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Reply, Error> {
        let mut req = self.http.post(shared.config.endpoint.clone()).body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if let Some(a) = authorization {
            let mut v = reqwest::header::HeaderValue::from_str(a).map_err(|_| {
                Error::Config("credentials contain characters not allowed in an HTTP header".into())
            })?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        let resp = req.send().await.map_err(|e| shared.http_error(e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let local_addr = resp.extensions().get::<HttpInfo>().map(|i| i.local_addr());
        let peer_cert = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .map(<[u8]>::to_vec);
        let body = resp
            .bytes()
            .await
            .map_err(|e| shared.http_error(e))?
            .to_vec();
        Ok(Reply {
            status,
            headers,
            body,
            local_addr,
            peer_cert,
        })
    }

    fn reset(&mut self) {
        self.authenticated = false;
        self.security = None;
    }

    /// Sends one SOAP message and returns the (decrypted) reply.
    pub(crate) async fn exchange(&mut self, shared: &Shared, soap: &[u8]) -> Result<Reply, Error> {
        if let Some(basic) = self.basic.clone() {
            let r = self
                .post(shared, soap.to_vec(), Some(SOAP_CONTENT_TYPE), Some(&basic))
                .await?;
            if r.status == 401 {
                return Err(shared.auth_error(format!(
                    "the server rejected user {:?} with Basic authentication (HTTP 401); check the user name and password, and that Basic is enabled on the server",
                    shared.config.auth.username().unwrap_or_default()
                )));
            }
            return Ok(r);
        }
        let encrypt = shared.config.encrypts();
        // One retry: a server may drop an idle connection (new TCP connection
        // = unauthenticated) or expire the context.
        for attempt in 0..2 {
            if !self.authenticated {
                if encrypt {
                    self.authenticate(shared, None).await?;
                } else {
                    let r = self.authenticate(shared, Some(soap)).await?;
                    return Ok(r);
                }
            }
            let reply = if let Some((sec, protocol)) = self.security.as_mut().filter(|_| encrypt) {
                let body = sec
                    .encrypt_body(*protocol, soap)
                    .map_err(|e| shared.encryption_error(e))?;
                let ct = protocol.content_type();
                self.post(shared, body, Some(&ct), None).await?
            } else {
                self.post(shared, soap.to_vec(), Some(SOAP_CONTENT_TYPE), None)
                    .await?
            };
            let moved = reply.local_addr.is_some() && reply.local_addr != self.local_addr;
            if reply.status == 401 {
                tracing::debug!(
                    moved,
                    attempt,
                    "HTTP 401 on an authenticated connection; re-authenticating"
                );
                self.reset();
                if attempt == 0 {
                    continue;
                }
                return Err(shared.auth_error(
                    "the server rejected the authenticated session (HTTP 401 after re-authentication)",
                ));
            }
            if moved {
                // A reply from another TCP connection than the one we
                // authenticated cannot belong to our session.
                self.reset();
                return Err(shared.auth_error(
                    "the connection changed under an authenticated session without the server asking to authenticate again",
                ));
            }
            return self.decrypt_reply(shared, reply, encrypt);
        }
        unreachable!("the loop returns on its second pass")
    }

    fn decrypt_reply(
        &mut self,
        shared: &Shared,
        mut reply: Reply,
        encrypt: bool,
    ) -> Result<Reply, Error> {
        if !encrypt || reply.body.is_empty() {
            return Ok(reply);
        }
        let Some((sec, _)) = self.security.as_mut() else {
            return Err(shared.encryption_error(EncryptionError::Unseal(
                "no security context on this connection".into(),
            )));
        };
        let ct = reply.content_type().to_string();
        match sec.decrypt_body(&ct, &reply.body) {
            Ok(plain) => {
                reply.body = plain;
                Ok(reply)
            }
            Err(e) => {
                // The sequence state is now unusable: drop the session.
                self.reset();
                Err(shared.encryption_error(e))
            }
        }
    }

    /// Runs the HTTP authentication exchange on this connection. With
    /// `body` (no encryption), the legs carry the real request and the final
    /// reply is its answer; without, they carry empty bodies (as WinRM
    /// requires before encrypted messages).
    async fn authenticate(&mut self, shared: &Shared, body: Option<&[u8]>) -> Result<Reply, Error> {
        let cfg = &shared.config;
        let leg_body = || body.map(<[u8]>::to_vec).unwrap_or_default();
        let leg_ct = body.map(|_| SOAP_CONTENT_TYPE);

        // Probe: learn the offered schemes and, over TLS, the certificate.
        let probe = self.post(shared, Vec::new(), None, None).await?;
        self.local_addr = probe.local_addr;
        if probe.status != 401 {
            return Err(shared.auth_error(format!(
                "the server did not ask for authentication (HTTP {}) ; refusing to continue unauthenticated",
                probe.status
            )));
        }
        let offered = probe.offered_schemes();
        let has = |s: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(s));
        let channel_bindings = match (&probe.peer_cert, cfg.is_https()) {
            (Some(cert), true) => Some(ChannelBindings::tls_server_end_point(cert)?),
            _ => None,
        };

        let (http_scheme, mut pending, mut token) = self
            .start_mechanism(shared, &has, &offered, channel_bindings.as_ref())
            .await?;
        let protocol = if http_scheme == scheme::KERBEROS {
            Protocol::Kerberos
        } else {
            Protocol::Spnego
        };
        let user = cfg.auth.username().unwrap_or("(ticket cache)").to_string();

        for _ in 0..MAX_AUTH_LEGS {
            let header = format!("{http_scheme} {}", B64.encode(&token));
            let reply = self.post(shared, leg_body(), leg_ct, Some(&header)).await?;
            if reply.local_addr != self.local_addr {
                return Err(
                    shared.auth_error("the server closed the connection during authentication")
                );
            }
            let server_token = reply
                .server_token(http_scheme)
                .map_err(|e| shared.auth_error(e))?;
            if reply.status == 401 {
                let (Some(st), Some(p)) = (server_token, pending.take()) else {
                    return Err(shared.auth_error(format!(
                        "the server rejected the credentials of {user:?} ({} over {http_scheme}, HTTP 401); check the user name, password and domain",
                        cfg.auth.kind()
                    )));
                };
                match p {
                    Pending::Ntlm(client) => {
                        let cb = channel_bindings.as_ref().map(ChannelBindings::ntlm_hash);
                        let (auth_msg, session) = client.authenticate(&st, cb)?;
                        self.security = Some((Security::Ntlm(Box::new(session)), protocol));
                        token = auth_msg;
                    }
                    Pending::Gss(mut g) => {
                        let (g2, next) = gss_step(g, Some(st)).await?;
                        g = g2;
                        match next {
                            Some(t) => token = t,
                            None => {
                                return Err(shared.auth_error(
                                    "Kerberos context completed but the server still answers 401",
                                ))
                            }
                        }
                        pending = Some(Pending::Gss(g));
                    }
                }
                continue;
            }
            // Not 401: the server accepted us. Finish mutual authentication.
            match pending.take() {
                Some(Pending::Gss(g)) => {
                    let g = if g.is_complete() {
                        g
                    } else {
                        let Some(st) = server_token else {
                            return Err(shared.auth_error(format!(
                                "the server answered HTTP {} without the final Kerberos token; mutual authentication not completed",
                                reply.status
                            )));
                        };
                        let (g, extra) = gss_step(g, Some(st)).await?;
                        if extra.is_some() || !g.is_complete() {
                            return Err(shared.auth_error(
                                "the Kerberos context did not complete after the server's final token",
                            ));
                        }
                        g
                    };
                    self.security = Some((Security::Gss(g), protocol));
                }
                Some(Pending::Ntlm(_)) => {
                    return Err(shared.auth_error(
                        "the server accepted an NTLM NEGOTIATE message without a challenge",
                    ))
                }
                None => {}
            }
            if !(200..300).contains(&reply.status) && body.is_none() {
                return Err(shared.auth_error(format!(
                    "authentication finished with HTTP {}",
                    reply.status
                )));
            }
            self.authenticated = true;
            return if body.is_some() {
                let enc = shared.config.encrypts();
                self.decrypt_reply(shared, reply, enc)
            } else {
                Ok(reply)
            };
        }
        Err(shared.auth_error(format!(
            "authentication did not finish within {MAX_AUTH_LEGS} round trips"
        )))
    }

    /// Picks the HTTP scheme and starts the mechanism: returns (scheme, state, first token).
    async fn start_mechanism(
        &mut self,
        shared: &Shared,
        has: &dyn Fn(&str) -> bool,
        offered: &[String],
        cb: Option<&ChannelBindings>,
    ) -> Result<(&'static str, Option<Pending>, Vec<u8>), Error> {
        let cfg = &shared.config;
        let spn = cfg.spn();
        let not_offered = |what: &str| {
            shared.auth_error(format!(
                "the server does not offer {what} (it offers: {})",
                if offered.is_empty() {
                    "nothing".to_string()
                } else {
                    offered.join(", ")
                }
            ))
        };
        let ntlm = |username: &str, password: &Secret| {
            let creds = NtlmCredentials::from_username(username, password.clone());
            let (client, token) = NtlmClient::new(creds, Some(spn.clone()));
            (Some(Pending::Ntlm(client)), token)
        };
        match &cfg.auth {
            Auth::Basic { .. } => Err(Error::Config("Basic does not use a handshake".into())),
            Auth::Ntlm { username, password } => {
                let s = if has(scheme::NEGOTIATE) {
                    scheme::NEGOTIATE
                } else if has(scheme::NTLM) {
                    scheme::NTLM
                } else {
                    return Err(not_offered("Negotiate or NTLM"));
                };
                let (p, t) = ntlm(username, password);
                Ok((s, p, t))
            }
            Auth::Kerberos {
                username,
                password,
                delegate,
                ..
            } => {
                let s = if has(scheme::KERBEROS) {
                    scheme::KERBEROS
                } else if has(scheme::NEGOTIATE) {
                    scheme::NEGOTIATE
                } else {
                    return Err(not_offered("Kerberos or Negotiate"));
                };
                let (g, t) = start_gss(
                    shared,
                    username.clone(),
                    password.clone(),
                    &spn,
                    GssMech::Kerberos,
                    *delegate,
                    cb,
                )
                .await?;
                Ok((s, Some(Pending::Gss(g)), t))
            }
            Auth::Negotiate {
                username,
                password,
                delegate,
                ..
            } => {
                if !has(scheme::NEGOTIATE) {
                    return Err(not_offered("Negotiate"));
                }
                match start_gss(shared, username.clone(), password.clone(), &spn, GssMech::Spnego, *delegate, cb).await {
                    Ok((g, t)) => Ok((scheme::NEGOTIATE, Some(Pending::Gss(g)), t)),
                    Err(e) => match (username, password) {
                        (Some(u), Some(p)) => {
                            tracing::debug!(error = %e, "Kerberos unavailable for Negotiate; falling back to NTLM");
                            let (p, t) = ntlm(u, p);
                            Ok((scheme::NEGOTIATE, p, t))
                        }
                        _ => Err(shared.auth_error(format!(
                            "Negotiate could not use Kerberos ({e}) and has no username and password for NTLM"
                        ))),
                    },
                }
            }
        }
    }
}

/// Acquires credentials (cached per client when from a password), creates
/// the context and produces its first token, on the blocking pool.
async fn start_gss(
    shared: &Shared,
    username: Option<String>,
    password: Option<Secret>,
    spn: &str,
    mech: GssMech,
    delegate: bool,
    cb: Option<&ChannelBindings>,
) -> Result<(Box<GssClient>, Vec<u8>), Error> {
    let cached = shared
        .kerberos_cred
        .lock()
        .map(|c| c.clone())
        .unwrap_or(None);
    let spn = spn.to_string();
    let cb = cb.map(|c| c.application_data().to_vec());
    let (cred, result) = tokio::task::spawn_blocking(move || {
        let cred = match (cached, &password) {
            (Some(c), _) => c,
            (None, _) => match gss::acquire_credentials(username.as_deref(), password.as_ref()) {
                Ok(c) => c,
                Err(e) => return (None, Err(e)),
            },
        };
        let r = GssClient::new(Some(cred.clone()), &spn, mech, delegate, cb).and_then(|mut g| {
            let t = g.step(None)?;
            Ok((Box::new(g), t.unwrap_or_default()))
        });
        (password.map(|_| cred), r)
    })
    .await
    .map_err(|e| shared.auth_error(format!("GSSAPI worker failed: {e}")))?;
    if let Some(c) = cred {
        if let Ok(mut slot) = shared.kerberos_cred.lock() {
            *slot = Some(c);
        }
    }
    Ok(result?)
}

/// One GSSAPI step on the blocking pool.
async fn gss_step(
    mut g: Box<GssClient>,
    token: Option<Vec<u8>>,
) -> Result<(Box<GssClient>, Option<Vec<u8>>), Error> {
    let (g, r) = tokio::task::spawn_blocking(move || {
        let r = g.step(token.as_deref());
        (g, r)
    })
    .await
    .map_err(|e| Error::Auth {
        endpoint: String::new(),
        reason: format!("GSSAPI worker failed: {e}"),
    })?;
    Ok((g, r?))
}
