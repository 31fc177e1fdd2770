//! The crate's error type.

use crate::auth::channel_bindings::ChannelBindingError;
use crate::auth::gss::{DelegationRefused, GssError};
use crate::auth::ntlm::NtlmError;
use crate::encryption::EncryptionError;
use crate::fault::WsmanFault;
use crate::soap::envelope::ResponseError;

/// Everything that can go wrong talking WS-Management. Messages name the
/// endpoint and the step; they never contain credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid or insecure without an explicit opt-in.
    #[error("invalid WS-Man configuration: {0}")]
    Config(String),

    /// The server refused the credentials or the authentication exchange failed.
    #[error("authentication to {endpoint} failed: {reason}")]
    Auth {
        /// Endpoint URL.
        endpoint: String,
        /// What happened, in words a user can act on.
        reason: String,
    },

    /// The TLS handshake failed: the certificate is not trusted (check the CA
    /// bundle) or not for this host name, or no common protocol.
    #[error("TLS with {endpoint} failed: {reason}")]
    Tls {
        /// Endpoint URL.
        endpoint: String,
        /// What the TLS layer said.
        reason: String,
    },

    /// Connecting or the HTTP exchange failed.
    #[error("HTTP request to {endpoint} failed: {reason}")]
    Http {
        /// Endpoint URL.
        endpoint: String,
        /// The error chain, flattened.
        reason: String,
        /// Whether the request timed out.
        timed_out: bool,
    },

    /// The response body is larger than the limit
    /// ([`crate::limits::response_body`]): nothing of it is used. A server
    /// that honours MaxEnvelopeSize never comes near the limit.
    #[error("{endpoint} sent a response body larger than the {limit}-byte limit (4 x MaxEnvelopeSize, at least 16 MiB); a WinRM server answers within MaxEnvelopeSize, so this is a broken or hostile server")]
    ResponseTooLarge {
        /// Endpoint URL.
        endpoint: String,
        /// The limit in bytes.
        limit: usize,
    },

    /// The server answered with an unexpected HTTP status and no SOAP fault.
    #[error("{endpoint} answered HTTP {status}: {body}")]
    HttpStatus {
        /// Endpoint URL.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body, for diagnosis.
        body: String,
    },

    /// The server returned a WS-Management fault.
    #[error("{action} failed: {fault}")]
    Fault {
        /// The operation (e.g. `Create`, `Receive`).
        action: String,
        /// The fault.
        fault: Box<WsmanFault>,
    },

    /// A response could not be understood.
    #[error("bad {action} response from {endpoint}: {source}")]
    Response {
        /// Endpoint URL.
        endpoint: String,
        /// The operation.
        action: String,
        /// The cause.
        #[source]
        source: ResponseError,
    },

    /// Message encryption or decryption failed; nothing undecrypted is passed on.
    #[error("message encryption with {endpoint}: {source}")]
    Encryption {
        /// Endpoint URL.
        endpoint: String,
        /// The cause.
        #[source]
        source: EncryptionError,
    },

    /// The connection broke during `action` and no new one carried it
    /// within the configured retries ([`crate::ReconnectPolicy`]).
    #[error("{action} to {endpoint} failed after {retries} reconnection attempt(s): {source} (the server or the network to it stayed unavailable; check them, or allow more retries or a longer backoff to ride out longer outages)")]
    ReconnectFailed {
        /// Endpoint URL.
        endpoint: String,
        /// The operation (`Receive`, `Send`, `Signal`).
        action: String,
        /// Retries made.
        retries: u32,
        /// The last failure.
        #[source]
        source: Box<Error>,
    },

    /// The connection broke after a Send was written, before its answer:
    /// the server may have taken the input, so it was not sent again (the
    /// command would read it twice).
    #[error("the connection to {endpoint} broke after a Send was written ({source}); the server may have received the input, so it was not sent again (it would be read twice); run the command again")]
    SendInterrupted {
        /// Endpoint URL.
        endpoint: String,
        /// What broke.
        #[source]
        source: Box<Error>,
    },

    /// NTLM protocol error.
    #[error(transparent)]
    Ntlm(#[from] NtlmError),

    /// GSSAPI (Kerberos / SPNEGO) error.
    #[error(transparent)]
    Gss(#[from] GssError),

    /// Kerberos delegation was requested but the user's ticket-granting
    /// ticket was not forwarded (not forwardable, or refused by the KDC).
    #[error("authentication to {endpoint} failed: {source}")]
    Delegation {
        /// Endpoint URL.
        endpoint: String,
        /// What was refused and how to fix it.
        #[source]
        source: DelegationRefused,
    },

    /// CredSSP authentication failed: the server's error code (NTSTATUS or
    /// HRESULT), a public-key binding mismatch (a man in the middle), or a
    /// broken exchange.
    #[error("CredSSP authentication to {endpoint} failed: {source}")]
    CredSsp {
        /// Endpoint URL.
        endpoint: String,
        /// What failed.
        #[source]
        source: crate::auth::credssp::CredSspError,
    },

    /// Channel bindings could not be computed.
    #[error(transparent)]
    ChannelBinding(#[from] ChannelBindingError),
}

impl Error {
    /// The WS-Man fault, when this error is one.
    pub fn fault(&self) -> Option<&WsmanFault> {
        match self {
            Error::Fault { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// Whether this is an authentication failure.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::Auth { .. }
                | Error::Ntlm(_)
                | Error::Gss(_)
                | Error::Delegation { .. }
                | Error::CredSsp { .. }
        )
    }
}
