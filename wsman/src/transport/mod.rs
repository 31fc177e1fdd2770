//! HTTP(S) transport: one authenticated TCP connection per [`Connection`].
//!
//! WinRM binds the NTLM/Kerberos context and the sealing sequence state to
//! the TCP connection. A pooled HTTP client (reqwest was tried first) cannot
//! guarantee that: hyper returns a connection to its pool asynchronously, so
//! a request sent right after the previous response can go out on a second
//! TCP connection, which the server does not know as authenticated (seen in
//! testing). So each [`Connection`] owns its TCP (or TLS) stream through
//! hyper's connection-level client: a request either goes over that stream
//! or fails, and a closed stream is replaced explicitly, with a new
//! authentication.

mod credssp;
mod http;
mod proxy;
pub(crate) mod proxy_reply;
pub(crate) mod retry;
pub(crate) mod tls;

use crate::auth::channel_bindings::ChannelBindings;
use crate::auth::gss::{self, GssClient, GssMech};
use crate::auth::ntlm::{NtlmClient, NtlmCredentials};
use crate::auth::{scheme, Security};
use crate::config::{Auth, NtlmFallback, WsmanConfig};
use crate::encryption::{EncryptionError, Protocol};
use crate::error::Error;
use crate::secret::Secret;
use base64::Engine as _;
pub(crate) use http::HttpConn;
use http::{HttpFailure, Target};
use hyper::header::{HeaderMap, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
/// Bound on authentication round trips (NTLM needs 2, Kerberos 1-2).
const MAX_AUTH_LEGS: usize = 6;
/// The schemes a WinRM listener offers with its default service settings
/// (Auth/Kerberos and Auth/Negotiate on; Basic off), assumed for the first
/// leg so that it can carry a token without an unauthenticated probe first.
const WINRM_DEFAULT_SCHEMES: [&str; 2] = [scheme::NEGOTIATE, scheme::KERBEROS];

/// State shared by all connections of one client.
pub(crate) struct Shared {
    pub(crate) config: WsmanConfig,
    pub(crate) endpoint: String,
    target: Target,
    /// Kerberos credentials acquired with a password, reused by every connection.
    kerberos_cred: Mutex<Option<libgssapi::credential::Cred>>,
    /// The first Negotiate → NTLM fallback of this client.
    pub(crate) ntlm_fallback: OnceLock<NtlmFallback>,
}

impl Shared {
    pub(crate) fn new(config: WsmanConfig) -> Result<Self, Error> {
        let tls = if config.is_https() {
            Some(tls::client_config(
                &config.tls,
                config.client_certificate(),
            )?)
        } else {
            None
        };
        let target = Target {
            endpoint: config.endpoint.clone(),
            proxy: proxy::for_endpoint(&config.proxy, &config.endpoint)?,
            tls,
            connect_timeout: config.connect_timeout,
            request_timeout: config.effective_read_timeout(),
            max_response: crate::limits::response_body(config.max_envelope_size),
        };
        Ok(Shared {
            endpoint: config.endpoint.to_string(),
            target,
            config,
            kerberos_cred: Mutex::new(None),
            ntlm_fallback: OnceLock::new(),
        })
    }

    /// Records a Negotiate → NTLM fallback; the first one of this client
    /// goes to the configured hook and to the debug trace.
    fn note_ntlm_fallback(&self, kerberos_error: &Error) {
        let mut first = false;
        let fallback = self.ntlm_fallback.get_or_init(|| {
            first = true;
            NtlmFallback {
                endpoint: self.endpoint.clone(),
                kerberos_error: kerberos_error.to_string(),
            }
        });
        if first {
            tracing::debug!(error = %kerberos_error, "Kerberos unavailable for Negotiate; falling back to NTLM");
            if let Some(hook) = &self.config.on_ntlm_fallback {
                hook.call(fallback);
            }
        }
    }

    fn auth_error(&self, reason: impl Into<String>) -> Error {
        Error::Auth {
            endpoint: self.endpoint.clone(),
            reason: reason.into(),
        }
    }

    fn http_error(&self, f: HttpFailure) -> Error {
        if let Some(limit) = f.too_large {
            return Error::ResponseTooLarge {
                endpoint: self.endpoint.clone(),
                limit,
            };
        }
        if f.tls {
            return Error::Tls {
                endpoint: self.endpoint.clone(),
                reason: f.reason,
            };
        }
        if self.config.client_certificate().is_some() && f.reason.contains("received fatal alert") {
            // With TLS 1.3 the server checks the client certificate after
            // the client has finished its side of the handshake: its refusal
            // arrives as an alert on the first read of the response.
            return Error::Tls {
                endpoint: self.endpoint.clone(),
                reason: format!(
                    "the server refused the client certificate in the TLS handshake ({}): it does \
                     not trust the certificate's issuer (UnknownCA), or finds the certificate \
                     unusable (BadCertificate: outside its validity period, or not for client \
                     authentication); check \
                     --cert-file against the CAs the server trusts for client certificates",
                    f.reason
                ),
            };
        }
        Error::Http {
            endpoint: self.endpoint.clone(),
            reason: f.reason,
            timed_out: f.timed_out,
        }
    }

    fn encryption_error(&self, source: EncryptionError) -> Error {
        Error::Encryption {
            endpoint: self.endpoint.clone(),
            source,
        }
    }
}

/// How a diagnostic connection does TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiagTls {
    /// As the endpoint's scheme and the TLS options say.
    AsConfigured,
    /// TLS whatever the scheme, with certificates checked as configured.
    Verified,
    /// TLS whatever the scheme, accepting any certificate (to look at it).
    AnyCertificate,
}

/// One unauthenticated connection to the endpoint, for diagnostics (the
/// same proxy and timeouts as the client's), with its error mapped like
/// the client's.
pub(crate) async fn diagnostic_connection(
    config: &WsmanConfig,
    tls: DiagTls,
) -> Result<(HttpConn, Shared), Error> {
    let mut config = config.clone();
    if tls == DiagTls::AnyCertificate {
        config.tls.danger_accept_invalid_certs = true;
    }
    let tls_config = match tls {
        DiagTls::AsConfigured if !config.is_https() => None,
        _ => Some(tls::client_config(
            &config.tls,
            config.client_certificate(),
        )?),
    };
    let mut shared = Shared::new(config)?;
    shared.target.tls = tls_config;
    let conn = HttpConn::connect(&shared.target)
        .await
        .map_err(|f| shared.http_error(f))?;
    Ok((conn, shared))
}

impl Shared {
    /// Maps a failure of a diagnostic exchange like the client's.
    pub(crate) fn diagnostic_error(&self, f: HttpFailure) -> Error {
        self.http_error(f)
    }
}

/// The proxy the client would use for `config`, as `host:port` (never
/// its credentials).
pub(crate) fn proxy_in_use(config: &WsmanConfig) -> Result<Option<String>, Error> {
    Ok(proxy::for_endpoint(&config.proxy, &config.endpoint)?
        .map(|p| format!("{}:{}", p.host, p.port)))
}

/// One HTTP response, body read fully.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Scheme words offered in WWW-Authenticate.
    pub(crate) fn offered_schemes(&self) -> Vec<String> {
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
    pub(crate) fn server_token(&self, scheme: &str) -> Result<Option<Vec<u8>>, String> {
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

/// One TCP connection and its authentication and sealing state.
pub(crate) struct Connection {
    http: Option<HttpConn>,
    /// Bumped on every new TCP connection.
    generation: u64,
    /// The server associates the current TCP connection with us.
    authenticated: bool,
    security: Option<(Security, Protocol)>,
    /// Authorization header sent with every request, without a handshake:
    /// Basic (cleared when dropped) or the certificate profile.
    basic: Option<Zeroizing<String>>,
    /// The request of the current exchange may have reached the server
    /// (it was written, and no answer said it was not processed).
    request_maybe_sent: bool,
}

/// `Basic base64(user:password)`; the `user:password` string and the
/// header are cleared when dropped. (hyper's copy of the header in the
/// request it writes is out of reach; it is marked sensitive.)
fn basic_header(username: &str, password: &Secret) -> Zeroizing<String> {
    let pair = Zeroizing::new(format!("{username}:{}", password.expose()));
    let mut header = Zeroizing::new(String::with_capacity(6 + pair.len().div_ceil(3) * 4));
    header.push_str("Basic ");
    B64.encode_string(pair.as_bytes(), &mut header);
    header
}

/// Why a POST failed: the HTTP failure and whether resending is safe.
struct PostError {
    error: Error,
    retryable: bool,
}

impl From<Error> for PostError {
    fn from(error: Error) -> Self {
        PostError {
            error,
            retryable: false,
        }
    }
}

impl Connection {
    pub(crate) fn new(shared: &Shared) -> Self {
        let basic = match &shared.config.auth {
            Auth::Basic { username, password } => Some(basic_header(username, password)),
            Auth::Certificate { .. } => Some(Zeroizing::new(
                crate::auth::certificate::MUTUAL_PROFILE.to_owned(),
            )),
            _ => None,
        };
        Connection {
            http: None,
            generation: 0,
            authenticated: false,
            security: None,
            basic,
            request_maybe_sent: false,
        }
    }

    fn reset(&mut self) {
        self.authenticated = false;
        self.security = None;
    }

    /// The open TCP connection, or a new one (which is unauthenticated).
    async fn conn(&mut self, shared: &Shared) -> Result<&mut HttpConn, Error> {
        if self.http.is_some() {
            // Let the connection's driver task see a close the server sent
            // after its last response, so we reconnect instead of writing
            // into a dying connection.
            tokio::task::yield_now().await;
        }
        if !self.http.as_ref().is_some_and(HttpConn::is_open) {
            self.http = None;
            self.reset();
            let c = HttpConn::connect(&shared.target)
                .await
                .map_err(|f| shared.http_error(f))?;
            self.generation += 1;
            tracing::debug!(local = ?c.local_addr, endpoint = %shared.endpoint, "connected");
            self.http = Some(c);
        }
        self.http
            .as_mut()
            .ok_or_else(|| Error::Config("no connection".into()))
    }

    fn peer_cert(&self) -> Option<&[u8]> {
        self.http.as_ref().and_then(|c| c.peer_cert.as_deref())
    }

    async fn post(
        &mut self,
        shared: &Shared,
        body: Vec<u8>,
        content_type: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Reply, PostError> {
        let conn = self.conn(shared).await?;
        // Empty bodies are authentication legs, never the request.
        let carries_request = !body.is_empty();
        match conn.post(body, content_type, authorization).await {
            Ok(r) => {
                // A 401 answer means the server did not process it.
                if carries_request && r.status != 401 {
                    self.request_maybe_sent = true;
                }
                let close = r
                    .headers
                    .get(CONNECTION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if close {
                    // The server ends this TCP connection (and with it our
                    // session); the next request connects and authenticates anew.
                    self.http = None;
                }
                Ok(Reply {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                })
            }
            Err(f) => {
                // State of a failed connection is unknown: never reuse it.
                self.http = None;
                self.reset();
                let retryable = f.retryable;
                if carries_request && !retryable {
                    self.request_maybe_sent = true;
                }
                Err(PostError {
                    error: shared.http_error(f),
                    retryable,
                })
            }
        }
    }

    /// Whether the request of the last [`Self::exchange`] may have reached
    /// the server (false: it surely did not, so resending cannot repeat it).
    pub(crate) fn request_maybe_sent(&self) -> bool {
        self.request_maybe_sent
    }

    /// Sends one SOAP message and returns the (decrypted) reply.
    pub(crate) async fn exchange(&mut self, shared: &Shared, soap: &[u8]) -> Result<Reply, Error> {
        self.request_maybe_sent = false;
        // One retry: for a kept-alive connection the server had closed, and
        // for a server that forgot our session (HTTP 401).
        let mut last_error = None;
        for attempt in 0..2 {
            match self.exchange_once(shared, soap, attempt).await {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => continue,
                Err(PostError { error, retryable }) if retryable && attempt == 0 => {
                    tracing::debug!(%error, "kept-alive connection was closed; resending on a new one");
                    last_error = Some(error);
                }
                Err(e) => return Err(e.error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            shared.auth_error(
                "the server rejected the authenticated session (HTTP 401 after re-authentication)",
            )
        }))
    }

    /// One attempt: Ok(None) asks for another (after a 401).
    async fn exchange_once(
        &mut self,
        shared: &Shared,
        soap: &[u8],
        attempt: usize,
    ) -> Result<Option<Reply>, PostError> {
        if let Some(basic) = self.basic.clone() {
            let r = self
                .post(
                    shared,
                    soap.to_vec(),
                    Some(SOAP_CONTENT_TYPE),
                    Some(basic.as_str()),
                )
                .await?;
            if r.status == 401 {
                let reason = if matches!(shared.config.auth, Auth::Certificate { .. }) {
                    "the server refused the client certificate (HTTP 401): it maps to no account \
                     (on Windows: a certificate mapping, winrm/config/service/certmapping, for the \
                     UPN in its subjectAltName), or certificate authentication is not enabled \
                     (winrm/config/service/auth Certificate=true)"
                        .to_owned()
                } else {
                    format!(
                        "the server rejected user {:?} with Basic authentication (HTTP 401); check the user name and password, and that Basic is enabled on the server",
                        shared.config.auth.username().unwrap_or_default()
                    )
                };
                return Err(shared.auth_error(reason).into());
            }
            return Ok(Some(r));
        }
        let encrypt = shared.config.encrypts();
        if !self.authenticated || !self.http.as_ref().is_some_and(HttpConn::is_open) {
            if encrypt {
                self.authenticate(shared, None).await?;
            } else {
                return self.authenticate(shared, Some(soap)).await.map(Some);
            }
        }
        let reply = if let Some((sec, protocol)) = self.security.as_mut().filter(|_| encrypt) {
            let body = sec
                .encrypt_body(*protocol, soap)
                .map_err(|e| shared.encryption_error(e))?;
            let ct = protocol.content_type_for(soap.len());
            self.post(shared, body, Some(&ct), None).await?
        } else {
            self.post(shared, soap.to_vec(), Some(SOAP_CONTENT_TYPE), None)
                .await?
        };
        if reply.status == 401 {
            tracing::debug!(
                attempt,
                "HTTP 401 on an authenticated connection; re-authenticating"
            );
            self.reset();
            return Ok(None);
        }
        self.decrypt_reply(shared, reply, encrypt)
            .map(Some)
            .map_err(Into::into)
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
        // Kept only for an error status: the excerpt of a plain error page.
        let body_copy = if reply.status >= 500 {
            reply.body.get(..400).unwrap_or(&reply.body).to_vec()
        } else {
            Vec::new()
        };
        match sec.decrypt_body(&ct, std::mem::take(&mut reply.body)) {
            Ok(plain) => {
                reply.body = plain;
                Ok(reply)
            }
            Err(e) => {
                // The sequence state is now unusable: drop the session and
                // the connection it belongs to.
                self.http = None;
                self.reset();
                if let (EncryptionError::NotEncrypted(_), 500..=599) = (&e, reply.status) {
                    // A plain error page where WinRM would have sealed its
                    // answer: from a proxy or load balancer in between, not
                    // the WinRM service. Reported as the HTTP status it is
                    // (a broken connection that a retry may cure); its text
                    // is not trusted beyond being shown, escaped.
                    return Err(Error::HttpStatus {
                        endpoint: shared.endpoint.clone(),
                        status: reply.status,
                        body: String::from_utf8_lossy(&body_copy)
                            .chars()
                            .take(400)
                            .collect(),
                    });
                }
                Err(shared.encryption_error(e))
            }
        }
    }

    /// Runs the HTTP authentication exchange on this connection. With
    /// `body` (no encryption), the legs carry the real request and the final
    /// reply is its answer; without, they carry empty bodies (as WinRM
    /// requires before encrypted messages).
    async fn authenticate(
        &mut self,
        shared: &Shared,
        body: Option<&[u8]>,
    ) -> Result<Reply, PostError> {
        let cfg = &shared.config;
        if let Auth::CredSsp { .. } = cfg.auth {
            return self.authenticate_credssp(shared, body).await;
        }
        let leg_body = || body.map(<[u8]>::to_vec).unwrap_or_default();
        let leg_ct = body.map(|_| SOAP_CONTENT_TYPE);
        self.reset();

        // No probe round trip: the first leg already carries our token, for
        // the scheme WinRM offers by default (its service enables Kerberos
        // and Negotiate unless an administrator turned them off). A 401 to
        // that leg without a token of our scheme, whose WWW-Authenticate does
        // not list it, tells what the server does offer: the mechanism then
        // starts again once with that list (one more leg, on such servers only).
        self.conn(shared).await?;
        let generation = self.generation;
        let channel_bindings = match (self.peer_cert(), cfg.is_https()) {
            (Some(cert), true) => {
                Some(ChannelBindings::tls_server_end_point(cert).map_err(Error::from)?)
            }
            _ => None,
        };
        let assumed: Vec<String> = WINRM_DEFAULT_SCHEMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (mut http_scheme, mut pending, mut token) = self
            .start_mechanism(shared, &assumed, channel_bindings.as_ref())
            .await?;
        let mut first_leg = true;
        let user = cfg.auth.username().unwrap_or("(ticket cache)").to_string();
        let mut ntlm_session = None;

        for _ in 0..MAX_AUTH_LEGS {
            let header = format!("{http_scheme} {}", B64.encode(&token));
            let reply = self.post(shared, leg_body(), leg_ct, Some(&header)).await?;
            if self.generation != generation || self.http.is_none() && reply.status == 401 {
                return Err(shared
                    .auth_error("the server closed the connection during authentication")
                    .into());
            }
            let server_token = reply
                .server_token(http_scheme)
                .map_err(|e| shared.auth_error(e))?;
            if std::mem::take(&mut first_leg) && reply.status == 401 && server_token.is_none() {
                let offered = reply.offered_schemes();
                if !offered.iter().any(|o| o.eq_ignore_ascii_case(http_scheme)) {
                    tracing::debug!(
                        ?offered,
                        tried = http_scheme,
                        "scheme not offered; starting again with the offered ones"
                    );
                    (http_scheme, pending, token) = self
                        .start_mechanism(shared, &offered, channel_bindings.as_ref())
                        .await?;
                    continue;
                }
            }
            if reply.status == 401 {
                let (Some(st), Some(p)) = (server_token, pending.take()) else {
                    return Err(shared
                        .auth_error(format!(
                            "the server rejected the credentials of {user:?} ({} over {http_scheme}, HTTP 401); check the user name, password and domain",
                            cfg.auth.kind()
                        ))
                        .into());
                };
                match p {
                    Pending::Ntlm(client) => {
                        let cb = channel_bindings.as_ref().map(ChannelBindings::ntlm_hash);
                        let (auth_msg, session) =
                            client.authenticate(&st, cb).map_err(Error::from)?;
                        ntlm_session = Some(session);
                        token = auth_msg;
                    }
                    Pending::Gss(g) => {
                        let (g, next) = gss_step(g, Some(st)).await?;
                        let Some(t) = next else {
                            return Err(shared
                                .auth_error(
                                    "Kerberos context completed but the server still answers 401",
                                )
                                .into());
                        };
                        token = t;
                        pending = Some(Pending::Gss(g));
                    }
                }
                continue;
            }
            // Not 401: the server accepted us. Finish mutual authentication.
            let security = match pending.take() {
                Some(Pending::Gss(g)) => {
                    let g = if g.is_complete() {
                        g
                    } else {
                        let Some(st) = server_token else {
                            return Err(shared
                                .auth_error(format!(
                                    "the server answered HTTP {} without the final Kerberos token; mutual authentication not completed",
                                    reply.status
                                ))
                                .into());
                        };
                        let (g, extra) = gss_step(g, Some(st)).await?;
                        if extra.is_some() || !g.is_complete() {
                            return Err(shared
                                .auth_error("the Kerberos context did not complete after the server's final token")
                                .into());
                        }
                        g
                    };
                    // The flags the context was granted, not just requested.
                    g.verify_granted(cfg.encrypts()).map_err(Error::from)?;
                    if cfg.auth.delegates() {
                        g.verify_delegated().map_err(|source| Error::Delegation {
                            endpoint: shared.endpoint.clone(),
                            source,
                        })?;
                    }
                    Security::Gss(g)
                }
                Some(Pending::Ntlm(_)) => {
                    return Err(shared
                        .auth_error(
                            "the server accepted an NTLM NEGOTIATE message without a challenge",
                        )
                        .into())
                }
                None => match ntlm_session.take() {
                    Some(s) => Security::Ntlm(Box::new(s)),
                    None => {
                        return Err(shared
                            .auth_error("authentication ended without a context")
                            .into())
                    }
                },
            };
            if !(200..300).contains(&reply.status) && body.is_none() {
                return Err(shared
                    .auth_error(format!(
                        "authentication finished with HTTP {}",
                        reply.status
                    ))
                    .into());
            }
            let protocol = if http_scheme == scheme::KERBEROS {
                Protocol::Kerberos
            } else {
                Protocol::Spnego
            };
            self.security = Some((security, protocol));
            // Still on the authenticated TCP connection (unless the server
            // said Connection: close, which `post` handled).
            self.authenticated = self.http.is_some();
            return if body.is_some() {
                let enc = shared.config.encrypts();
                self.decrypt_reply(shared, reply, enc).map_err(Into::into)
            } else {
                Ok(reply)
            };
        }
        Err(shared
            .auth_error(format!(
                "authentication did not finish within {MAX_AUTH_LEGS} round trips"
            ))
            .into())
    }

    /// Picks the HTTP scheme and starts the mechanism: returns (scheme, state, first token).
    async fn start_mechanism(
        &mut self,
        shared: &Shared,
        offered: &[String],
        cb: Option<&ChannelBindings>,
    ) -> Result<(&'static str, Option<Pending>, Vec<u8>), Error> {
        let cfg = &shared.config;
        let spn = cfg.spn();
        let has = |s: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(s));
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
            Auth::Basic { .. } | Auth::Certificate { .. } | Auth::CredSsp { .. } => {
                Err(Error::Config(
                    "Basic and certificate authentication use no handshake, CredSSP its own".into(),
                ))
            }
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
                        (Some(_), Some(_)) if *delegate => Err(shared.auth_error(format!(
                            "Negotiate could not use Kerberos ({e}); NTLM cannot delegate \
                             credentials, so delegation needs Kerberos (get a ticket with `kinit -f`)"
                        ))),
                        (Some(u), Some(p)) if cfg.allow_ntlm_fallback => {
                            shared.note_ntlm_fallback(&e);
                            let (p, t) = ntlm(u, p);
                            Ok((scheme::NEGOTIATE, p, t))
                        }
                        (Some(_), Some(_)) => Err(shared.auth_error(format!(
                            "Negotiate could not use Kerberos ({e}), and falling back to NTLM is not allowed \
                             (allow_ntlm_fallback is off)"
                        ))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&str, &str)]) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Reply {
            status: 401,
            headers: h,
            body: Vec::new(),
        }
    }

    #[test]
    fn offered_schemes_from_separate_and_combined_headers() {
        let r = reply(&[
            ("WWW-Authenticate", "Negotiate"),
            ("WWW-Authenticate", "Kerberos"),
            ("WWW-Authenticate", "Basic realm=\"WSMAN\""),
        ]);
        assert_eq!(r.offered_schemes(), ["Negotiate", "Kerberos", "Basic"]);
        let r = reply(&[(
            "WWW-Authenticate",
            "Negotiate, Basic realm=\"x\", charset=\"UTF-8\"",
        )]);
        assert_eq!(r.offered_schemes(), ["Negotiate", "Basic"]);
    }

    #[test]
    fn basic_header_value() {
        let h = basic_header("Aladdin", &Secret::new("open sesame"));
        assert_eq!(h.as_str(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        // The capacity computed up front was enough: no reallocation left
        // a copy behind.
        assert_eq!(h.capacity(), h.len());
    }

    #[test]
    fn server_tokens() {
        let r = reply(&[
            ("WWW-Authenticate", "Basic realm=\"x\""),
            ("WWW-Authenticate", "negotiate AAEC"),
        ]);
        assert_eq!(r.server_token("Negotiate").unwrap(), Some(vec![0, 1, 2]));
        assert_eq!(r.server_token("Kerberos").unwrap(), None);
        let bad = reply(&[("WWW-Authenticate", "Negotiate !!!")]);
        assert!(bad.server_token("Negotiate").is_err());
    }
}
