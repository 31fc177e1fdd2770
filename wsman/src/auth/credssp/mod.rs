//! CredSSP (MS-CSSP) client over WinRM's `Authorization: CredSSP` header,
//! sans-IO: [`CredSspClient`] turns the server's tokens into the next
//! token to send; the transport moves them over HTTP.
//!
//! The exchange (MS-CSSP 3.1.5), each token being TLS records:
//!
//! 1. a TLS handshake ([`tls::TlsChannel`]); the server certificate is not
//!    checked against a CA, its public key is recorded;
//! 2. inside TLS, TSRequests carrying NTLM messages (our
//!    [`crate::auth::ntlm`] client, raw NTLM as MS-CSSP allows and Windows
//!    and pyspnego accept) until the server's CHALLENGE is answered;
//! 3. the public-key binding ([`binding`]): with the AUTHENTICATE message
//!    the client sends `pubKeyAuth`, the NTLM-sealed key (versions 2-4) or
//!    SHA-256 of a magic, a nonce and the key (5-6); the server answers
//!    with its own value, which must match, or the TLS channel ends at a
//!    man in the middle and nothing more is sent;
//! 4. `authInfo`: the NTLM-sealed TSCredentials with the user's domain,
//!    name and password, which the server keeps to act as the user (the
//!    "double hop"). Then the TLS session seals WinRM messages over HTTP.
//!
//! We send version 6 and adapt to a server that answers with 2 to 5.
//! A server's `errorCode` (version 3 and later) becomes
//! [`CredSspError::Server`] with its NTSTATUS or HRESULT.

pub mod binding;
pub mod der;
pub mod tls;

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
    /// The AUTHENTICATE and our pubKeyAuth were sent.
    PubKey {
        session: Box<NtlmSession>,
        nonce: [u8; 32],
    },
    /// The credentials were sent; the server's acceptance (HTTP 200) ends it.
    Credentials,
    /// A step failed; the context is unusable.
    Failed,
}

/// The client side of one CredSSP exchange.
pub struct CredSspClient {
    tls: TlsChannel,
    phase: Phase,
    creds: TsPasswordCreds,
    ntlm: NtlmCredentials,
    spn: Option<String>,
    /// The version in use: the lower of ours and the server's.
    version: Option<u32>,
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
    /// `spn` goes into NTLM's MsvAvTargetName.
    pub fn new(
        username: &str,
        password: Secret,
        spn: Option<String>,
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
                version: None,
            },
            hello,
        ))
    }

    /// The CredSSP version in use, once the server has said its own.
    pub fn version(&self) -> Option<u32> {
        self.version
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
                if reply.version < MIN_VERSION {
                    return Err(CredSspError::Version(reply.version));
                }
                let version = reply.version.min(VERSION);
                self.version = Some(version);
                let challenge = reply.nego_tokens.first().ok_or_else(|| {
                    CredSspError::Protocol("the server's TSRequest has no NTLM CHALLENGE".into())
                })?;
                let (authenticate, mut session) = ntlm.authenticate(challenge, None)?;
                let mut nonce = [0u8; 32];
                getrandom::fill(&mut nonce)
                    .map_err(|e| CredSspError::Protocol(format!("no random nonce: {e}")))?;
                let key = self.public_key()?;
                let value = binding::client_value(version, &key, &nonce);
                let (sig, sealed) = session.seal(&value);
                let request = TsRequest {
                    version: VERSION,
                    nego_tokens: vec![authenticate],
                    pub_key_auth: Some([&sig[..], &sealed].concat()),
                    client_nonce: binding::uses_hash(version).then_some(nonce),
                    ..TsRequest::default()
                };
                let out = self.tls.wrap(&request.encode())?;
                self.phase = Phase::PubKey {
                    session: Box::new(session),
                    nonce,
                };
                Ok(out)
            }
            Phase::PubKey { mut session, nonce } => {
                let reply = self.read_request(input, "the NTLM authentication")?;
                let auth = reply.pub_key_auth.ok_or_else(|| {
                    CredSspError::Protocol("the server's answer has no pubKeyAuth".into())
                })?;
                let version = self.version.unwrap_or(VERSION);
                let (sig, sealed) = auth.split_at_checked(16).ok_or_else(|| {
                    CredSspError::Protocol(
                        "the server's pubKeyAuth is shorter than a signature".into(),
                    )
                })?;
                let got = session.unseal(sig, sealed)?;
                let key = self.public_key()?;
                let want = binding::server_value(version, &key, &nonce);
                if !constant_time_eq(&got, &want) {
                    return Err(CredSspError::BindingMismatch);
                }
                let creds = self.creds.encode_ts_credentials();
                let (sig, sealed) = session.seal(&creds);
                let request = TsRequest {
                    version: VERSION,
                    auth_info: Some([&sig[..], &sealed].concat()),
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
        let (ntlm, negotiate) = NtlmClient::new(self.ntlm.clone(), self.spn.clone());
        let request = TsRequest {
            version: VERSION,
            nego_tokens: vec![negotiate],
            ..TsRequest::default()
        };
        let out = self.tls.wrap(&request.encode())?;
        self.phase = Phase::Negotiate(ntlm);
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
