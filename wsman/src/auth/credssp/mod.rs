//! CredSSP (MS-CSSP) client over WinRM's `Authorization: CredSSP` header,
//! sans-IO: [`CredSspClient`] turns the server's tokens into the next
//! token to send; the transport moves them over HTTP.
//!
//! The exchange (MS-CSSP 3.1.5), each token being TLS records:
//!
//! 1. a TLS handshake ([`tls::TlsChannel`]); the server certificate is not
//!    checked against a CA, its public key is recorded;
//! 2. inside TLS, TSRequests carrying SPNEGO tokens of the system GSSAPI
//!    (Kerberos, when the transport could get a ticket) or NTLM messages
//!    (our [`crate::auth::ntlm`] client, raw NTLM as MS-CSSP allows and
//!    Windows and pyspnego accept) until the inner context is complete;
//! 3. the public-key binding ([`binding`]): with the last inner token the
//!    client sends `pubKeyAuth`, the sealed key (versions 2-4) or
//!    SHA-256 of a magic, a nonce and the key (5-6); the server answers
//!    with its own value, which must match, or the TLS channel ends at a
//!    man in the middle and nothing more is sent;
//! 4. `authInfo`: the sealed TSCredentials with the user's domain,
//!    name and password, which the server keeps to act as the user (the
//!    "double hop"). Then the TLS session seals WinRM messages over HTTP.
//!
//! We send version 6 and adapt to a server that answers with 2 to 5.
//! A server's `errorCode` (version 3 and later) becomes
//! [`CredSspError::Server`] with its NTSTATUS or HRESULT.

pub mod binding;
pub mod der;
pub mod tls;

use crate::auth::gss::{GssClient, GssError};
use crate::auth::ntlm::{NtlmClient, NtlmCredentials, NtlmError, NtlmSession};
use crate::secret::Secret;
use der::{CodecError, TsPasswordCreds, TsRequest};
use tls::{TlsChannel, TlsError};

/// The CredSSP version this client speaks and sends.
pub const VERSION: u32 = 6;
/// The oldest server version accepted.
pub const MIN_VERSION: u32 = 2;

/// Why CredSSP authentication failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredSspError {
    /// A TSRequest or TSCredentials could not be read.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The TLS channel failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server certificate's public key could not be read.
    #[error(transparent)]
    Key(#[from] binding::KeyError),
    /// The inner NTLM exchange failed.
    #[error("NTLM inside CredSSP: {0}")]
    Ntlm(#[from] NtlmError),
    /// The inner Kerberos (SPNEGO) exchange failed.
    #[error("Kerberos inside CredSSP: {0}")]
    Gss(#[from] GssError),
    /// The server reported an error in a TSRequest (`errorCode`).
    #[error("the server refused CredSSP authentication during {stage}: {} (0x{code:08X})", status_text(*.code))]
    Server {
        /// The NTSTATUS or HRESULT.
        code: u32,
        /// The step the client was at.
        stage: &'static str,
    },
    /// The server's public-key binding does not match the key of the TLS
    /// certificate it presented: someone in the middle terminated the TLS
    /// channel. Nothing more (no credentials) was sent.
    #[error("the server's CredSSP public key binding does not match the certificate of the TLS channel: a man in the middle may be intercepting the connection; the credentials were not sent")]
    BindingMismatch,
    /// The server's CredSSP version is not supported.
    #[error(
        "the server speaks CredSSP version {0}; versions {MIN_VERSION} to {VERSION} are supported"
    )]
    Version(u32),
    /// The server deviated from the exchange.
    #[error("CredSSP exchange: {0}")]
    Protocol(String),
}

/// A short name for the NTSTATUS / HRESULT values a CredSSP server
/// reports most often.
pub fn status_text(code: u32) -> &'static str {
    match code {
        0xC000_006D => "STATUS_LOGON_FAILURE: wrong user name or password",
        0xC000_006A => "STATUS_WRONG_PASSWORD",
        0xC000_0064 => "STATUS_NO_SUCH_USER",
        0xC000_0072 => "STATUS_ACCOUNT_DISABLED",
        0xC000_0234 => "STATUS_ACCOUNT_LOCKED_OUT",
        0xC000_0071 => "STATUS_PASSWORD_EXPIRED",
        0xC000_015B => "STATUS_LOGON_TYPE_NOT_GRANTED",
        0xC000_0022 => "STATUS_ACCESS_DENIED",
        0x8009_030C => "SEC_E_LOGON_DENIED: wrong user name or password",
        0x8009_0308 => "SEC_E_INVALID_TOKEN",
        0x8009_0302 => "SEC_E_UNSUPPORTED_FUNCTION",
        0x8009_0304 => "SEC_E_INTERNAL_ERROR",
        0x8009_0322 => "SEC_E_WRONG_PRINCIPAL",
        0x8009_0311 => "SEC_E_NO_AUTHENTICATING_AUTHORITY",
        0x8009_0350 => "SEC_E_DOWNGRADE_DETECTED",
        _ => "error",
    }
}

/// Where the exchange is.
enum Phase {
    /// TLS handshake records in flight.
    Handshake,
    /// Our last handshake flight was sent; the reply may carry
    /// post-handshake records (TLS 1.3 session tickets) or nothing.
    HandshakeTail,
    /// The NTLM NEGOTIATE was sent.
    Negotiate(NtlmClient),
    /// A SPNEGO token was sent; the context is not complete yet.
    GssNegotiate(Box<GssClient>),
    /// The last inner token (if any) and our pubKeyAuth were sent.
    PubKey { sealer: Sealer, nonce: [u8; 32] },
    /// The credentials were sent; the server's acceptance (HTTP 200) ends it.
    Credentials,
    /// A step failed; the context is unusable.
    Failed,
}

/// The established inner context that seals pubKeyAuth and authInfo.
enum Sealer {
    Ntlm(Box<NtlmSession>),
    Gss(Box<GssClient>),
}

impl Sealer {
    fn seal(&mut self, msg: &[u8]) -> Result<Vec<u8>, CredSspError> {
        match self {
            Sealer::Ntlm(s) => {
                let (sig, sealed) = s.seal(msg);
                Ok([&sig[..], &sealed].concat())
            }
            Sealer::Gss(g) => Ok(g.wrap_token(msg)?),
        }
    }

    fn unseal(&mut self, token: &[u8]) -> Result<Vec<u8>, CredSspError> {
        match self {
            Sealer::Ntlm(s) => {
                let (sig, sealed) = token.split_at_checked(16).ok_or_else(|| {
                    CredSspError::Protocol("a sealed value is shorter than its signature".into())
                })?;
                Ok(s.unseal(sig, sealed)?)
            }
            Sealer::Gss(g) => Ok(g.unwrap_token(token)?),
        }
    }

    fn mechanism(&self) -> &'static str {
        match self {
            Sealer::Ntlm(_) => "ntlm",
            Sealer::Gss(_) => "kerberos",
        }
    }
}

/// The client side of one CredSSP exchange.
pub struct CredSspClient {
    tls: TlsChannel,
    phase: Phase,
    creds: TsPasswordCreds,
    ntlm: NtlmCredentials,
    spn: Option<String>,
    /// A SPNEGO context and its first token, to use instead of NTLM.
    kerberos: Option<(Box<GssClient>, Vec<u8>)>,
    /// The version in use: the lower of ours and the server's.
    version: Option<u32>,
    /// The inner mechanism once chosen (`ntlm`, `kerberos`).
    mechanism: Option<&'static str>,
}

impl std::fmt::Debug for CredSspClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredSspClient")
            .field("tls", &self.tls)
            .field("creds", &self.creds)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl CredSspClient {
    /// Starts an exchange for `username` (`DOMAIN\user`, `user@domain` or
    /// `user`); returns the client and the first token (the ClientHello).
    /// `spn` goes into NTLM's MsvAvTargetName. With `kerberos` (a SPNEGO
    /// context and its first token, made by the caller because getting a
    /// ticket may block on the KDC) the inner exchange is SPNEGO instead
    /// of NTLM.
    pub fn new(
        username: &str,
        password: Secret,
        spn: Option<String>,
        kerberos: Option<(Box<GssClient>, Vec<u8>)>,
    ) -> Result<(Self, Vec<u8>), CredSspError> {
        let ntlm = NtlmCredentials::from_username(username, password.clone());
        let creds = TsPasswordCreds {
            domain: ntlm.domain.clone(),
            user: ntlm.user.clone(),
            password,
        };
        let mut tls = TlsChannel::new()?;
        let hello = tls.take_output()?;
        Ok((
            CredSspClient {
                tls,
                phase: Phase::Handshake,
                creds,
                ntlm,
                spn,
                kerberos,
                version: None,
                mechanism: None,
            },
            hello,
        ))
    }

    /// The CredSSP version in use, once the server has said its own.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// The inner mechanism (`ntlm` or `kerberos`), once chosen.
    pub fn mechanism(&self) -> Option<&'static str> {
        self.mechanism
    }

    /// Whether the credentials were sent: the server's next answer is its
    /// acceptance (or refusal) of the whole exchange.
    pub fn credentials_sent(&self) -> bool {
        matches!(self.phase, Phase::Credentials)
    }

    /// Whether the server may answer the next token with an empty one
    /// (after the client's last TLS 1.3 handshake flight, when it has no
    /// session tickets to send).
    pub fn accepts_empty_reply(&self) -> bool {
        matches!(self.phase, Phase::HandshakeTail)
    }

    /// Takes the server's token (`None` when its 401 carried none) and
    /// returns the next token to send.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, CredSspError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Failed);
        let input = input.unwrap_or_default();
        match phase {
            Phase::Handshake => {
                let app = self.tls.feed(input)?;
                if !app.is_empty() {
                    return Err(CredSspError::Protocol(
                        "the server sent data during the TLS handshake".into(),
                    ));
                }
                let out = self.tls.take_output()?;
                if self.tls.is_handshaking() {
                    if out.is_empty() {
                        return Err(CredSspError::Protocol(
                            "the TLS handshake stalled: the server's answer was incomplete".into(),
                        ));
                    }
                    self.phase = Phase::Handshake;
                    return Ok(out);
                }
                if self.tls.server_public_key().is_none() {
                    return Err(CredSspError::Protocol(
                        "the TLS handshake finished without a server certificate".into(),
                    ));
                }
                tracing::debug!(tls = %self.tls.describe(), "CredSSP TLS handshake complete");
                if !out.is_empty() {
                    self.phase = Phase::HandshakeTail;
                    return Ok(out);
                }
                self.send_negotiate()
            }
            Phase::HandshakeTail => {
                let app = self.tls.feed(input)?;
                if !app.is_empty() {
                    return Err(CredSspError::Protocol(
                        "the server sent data before the first TSRequest".into(),
                    ));
                }
                self.send_negotiate()
            }
            Phase::Negotiate(ntlm) => {
                let reply = self.read_request(input, "the NTLM negotiation")?;
                self.note_version(reply.version)?;
                let challenge = reply.nego_tokens.first().ok_or_else(|| {
                    CredSspError::Protocol("the server's TSRequest has no NTLM CHALLENGE".into())
                })?;
                let (authenticate, session) = ntlm.authenticate(challenge, None)?;
                self.send_pub_key(Some(authenticate), Sealer::Ntlm(Box::new(session)))
            }
            Phase::GssNegotiate(mut g) => {
                let reply = self.read_request(input, "the Kerberos authentication")?;
                self.note_version(reply.version)?;
                let token = reply.nego_tokens.first().ok_or_else(|| {
                    CredSspError::Protocol("the server's TSRequest has no SPNEGO token".into())
                })?;
                let next = g.step(Some(token))?;
                if g.is_complete() {
                    // Mutual authentication, and sealing for the binding.
                    g.verify_granted(true)?;
                    return self.send_pub_key(next, Sealer::Gss(g));
                }
                let next = next
                    .ok_or_else(|| CredSspError::Protocol("the Kerberos context stalled".into()))?;
                let request = TsRequest {
                    version: VERSION,
                    nego_tokens: vec![next],
                    ..TsRequest::default()
                };
                let out = self.tls.wrap(&request.encode())?;
                self.phase = Phase::GssNegotiate(g);
                Ok(out)
            }
            Phase::PubKey { mut sealer, nonce } => {
                let stage = if matches!(sealer, Sealer::Ntlm(_)) {
                    "the NTLM authentication"
                } else {
                    "the public key exchange"
                };
                let reply = self.read_request(input, stage)?;
                if let (Sealer::Gss(g), Some(token)) = (&mut sealer, reply.nego_tokens.first()) {
                    // SPNEGO's last token (the mechListMIC) may come here.
                    if !token.is_empty() {
                        let _ = g.step(Some(token))?;
                    }
                }
                let auth = reply.pub_key_auth.ok_or_else(|| {
                    CredSspError::Protocol("the server's answer has no pubKeyAuth".into())
                })?;
                let version = self.version.unwrap_or(VERSION);
                let got = sealer.unseal(&auth)?;
                let key = self.public_key()?;
                let want = binding::server_value(version, &key, &nonce);
                if !constant_time_eq(&got, &want) {
                    return Err(CredSspError::BindingMismatch);
                }
                let creds = self.creds.encode_ts_credentials();
                let request = TsRequest {
                    version: VERSION,
                    auth_info: Some(sealer.seal(&creds)?),
                    ..TsRequest::default()
                };
                let out = self.tls.wrap(&request.encode())?;
                self.phase = Phase::Credentials;
                Ok(out)
            }
            Phase::Credentials => {
                // A token after the credentials: an error report, or a
                // server that wants more than the protocol has.
                let reply = self.read_request(input, "the credential delegation")?;
                Err(CredSspError::Protocol(format!(
                    "the server answered the credentials with another TSRequest (version {}) instead of accepting them",
                    reply.version
                )))
            }
            Phase::Failed => Err(CredSspError::Protocol("the context already failed".into())),
        }
    }

    fn public_key(&self) -> Result<Vec<u8>, CredSspError> {
        self.tls
            .server_public_key()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| CredSspError::Protocol("no server public key".into()))
    }

    fn send_negotiate(&mut self) -> Result<Vec<u8>, CredSspError> {
        let (phase, token) = match self.kerberos.take() {
            Some((g, token)) => (Phase::GssNegotiate(g), token),
            None => {
                let (ntlm, negotiate) = NtlmClient::new(self.ntlm.clone(), self.spn.clone());
                (Phase::Negotiate(ntlm), negotiate)
            }
        };
        let request = TsRequest {
            version: VERSION,
            nego_tokens: vec![token],
            ..TsRequest::default()
        };
        let out = self.tls.wrap(&request.encode())?;
        self.phase = phase;
        Ok(out)
    }

    /// Records the server's version: ours or lower, at least 2.
    fn note_version(&mut self, server: u32) -> Result<(), CredSspError> {
        if server < MIN_VERSION {
            return Err(CredSspError::Version(server));
        }
        self.version = Some(server.min(VERSION));
        Ok(())
    }

    /// Sends the last inner token (if any) with our pubKeyAuth (and the
    /// nonce from version 5 on).
    fn send_pub_key(
        &mut self,
        last_token: Option<Vec<u8>>,
        mut sealer: Sealer,
    ) -> Result<Vec<u8>, CredSspError> {
        let version = self.version.unwrap_or(VERSION);
        let mut nonce = [0u8; 32];
        getrandom::fill(&mut nonce)
            .map_err(|e| CredSspError::Protocol(format!("no random nonce: {e}")))?;
        let key = self.public_key()?;
        let value = binding::client_value(version, &key, &nonce);
        let request = TsRequest {
            version: VERSION,
            nego_tokens: last_token.into_iter().collect(),
            pub_key_auth: Some(sealer.seal(&value)?),
            client_nonce: binding::uses_hash(version).then_some(nonce),
            ..TsRequest::default()
        };
        let out = self.tls.wrap(&request.encode())?;
        self.mechanism = Some(sealer.mechanism());
        self.phase = Phase::PubKey { sealer, nonce };
        Ok(out)
    }

    /// Decrypts and decodes the server's TSRequest; an errorCode in it is
    /// the server's refusal.
    fn read_request(
        &mut self,
        input: &[u8],
        stage: &'static str,
    ) -> Result<TsRequest, CredSspError> {
        if input.is_empty() {
            return Err(CredSspError::Protocol(format!(
                "the server sent no token during {stage}"
            )));
        }
        let plain = self.tls.unwrap(input)?;
        let reply = TsRequest::decode(&plain)?;
        if let Some(code) = reply.error_code {
            return Err(CredSspError::Server { code, stage });
        }
        Ok(reply)
    }

    /// The established session, once the server accepted the credentials.
    pub fn finish(self) -> Result<CredSspSession, CredSspError> {
        match self.phase {
            Phase::Credentials => Ok(CredSspSession {
                tls: self.tls,
                version: self.version.unwrap_or(VERSION),
            }),
            _ => Err(CredSspError::Protocol(
                "the server accepted the connection before the credentials were sent".into(),
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The TLS session of a completed CredSSP exchange: seals WinRM messages
/// over HTTP (`application/HTTP-CredSSP-session-encrypted`).
pub struct CredSspSession {
    tls: TlsChannel,
    version: u32,
}

impl std::fmt::Debug for CredSspSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredSspSession")
            .field("tls", &self.tls)
            .field("version", &self.version)
            .finish()
    }
}

/// Most plaintext WinRM puts in one sealed part of a CredSSP body (one
/// TLS record's worth); longer messages are cut into several parts.
pub const PART_SIZE: usize = 16384;

impl CredSspSession {
    /// The CredSSP version that was used.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Seals one part (at most [`PART_SIZE`] bytes) as WinRM frames it:
    /// (header, data), the header being the first record-trailer-size bytes
    /// of the TLS records and the data the rest.
    pub fn wrap_winrm(&mut self, part: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let mut records = self.tls.wrap(part)?;
        let at = self.tls.winrm_trailer_len().min(records.len());
        let data = records.split_off(at);
        Ok((records, data))
    }

    /// Opens one sealed part (the header and data are one run of records).
    pub fn unwrap_winrm(&mut self, header: &[u8], data: &[u8]) -> Result<Vec<u8>, TlsError> {
        let plain = self.tls.unwrap(&[header, data].concat())?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests;
