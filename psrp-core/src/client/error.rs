//! The client's error type: what went wrong, told apart by [`ErrorKind`],
//! with messages that say what to check. Never contains secrets.

use std::time::Duration;

use crate::command::CommandError;
use crate::fragment::DefragmentError;
use crate::message::{ErrorRecord, PipelineState};
use crate::pool::PoolError;

/// Broad classes of [`ClientError`], for deciding what to do (retry, exit
/// status, message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The options are invalid or insecure without an explicit opt-in.
    Config,
    /// TCP connect, proxy or HTTP exchange failed, or an HTTP-level timeout.
    Connection,
    /// The TLS handshake or the server certificate check failed.
    Tls,
    /// The server rejected the credentials, or the authentication
    /// exchange (NTLM, Kerberos, SPNEGO) failed.
    Auth,
    /// The server answered with a WS-Management fault.
    Fault,
    /// The server's answer could not be understood (SOAP, message
    /// encryption, PSRP fragments or messages).
    Protocol,
    /// The server could not open the runspace pool, or broke it.
    PoolBroken,
    /// A session-init command did not complete.
    SessionInit,
    /// A pipeline ended Failed (terminating error) or Stopped.
    PipelineFailed,
    /// An operation did not finish within its time bound.
    Timeout,
    /// Data from the server went beyond a memory limit of the pool
    /// ([`super::PoolOptions::max_message_size`]): a larger limit may take
    /// it.
    LimitExceeded,
    /// The runspace pool is closed.
    Closed,
    /// The pipeline cannot be sent (empty, or a redirection the server's
    /// protocol version lacks).
    InvalidCommand,
}

impl ErrorKind {
    /// Whether the remote end could not be used at all: connection, TLS,
    /// authentication, WS-Man fault, protocol, broken pool, timeout. (A
    /// failed pipeline or session-init command is not one.)
    pub fn is_connection_failure(self) -> bool {
        matches!(
            self,
            ErrorKind::Connection
                | ErrorKind::Tls
                | ErrorKind::Auth
                | ErrorKind::Fault
                | ErrorKind::Protocol
                | ErrorKind::PoolBroken
                | ErrorKind::Timeout
        )
    }
}

/// Everything the client can fail with. [`ClientError::kind`] classifies it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection or pool options are invalid.
    #[error("invalid options: {0}")]
    Config(String),

    /// A WS-Management operation failed.
    #[error("{operation} failed: {source}{}", hint(*kind, source))]
    Wsman {
        /// The class of failure.
        kind: ErrorKind,
        /// What was being done, e.g. "opening the runspace pool (WS-Man Create)".
        operation: &'static str,
        /// The transport's error.
        #[source]
        source: wsman::Error,
    },

    /// Data from the server went beyond a memory limit of the pool: a
    /// message larger than [`super::PoolOptions::max_message_size`], or
    /// partial messages beyond [`super::PoolOptions::max_buffered_bytes`].
    /// The pipeline (or the open) fails; the shell is still deleted.
    #[error(
        "{operation}: {source}; raise PoolOptions::{option} if the server legitimately sends \
         this much"
    )]
    LimitExceeded {
        /// What was being done.
        operation: &'static str,
        /// The [`super::PoolOptions`] setting of the limit that was hit:
        /// `max_message_size` or `max_buffered_bytes`.
        option: &'static str,
        /// The limit, what was held and what came.
        #[source]
        source: DefragmentError,
    },

    /// PSRP data from the server could not be used.
    #[error("{operation}: the server sent PSRP data this client cannot use: {source}")]
    Protocol {
        /// What was being done.
        operation: &'static str,
        /// The state machine's error.
        #[source]
        source: PoolError,
    },

    /// The server's answers do not follow the protocol.
    #[error("{operation}: {detail}")]
    UnexpectedResponse {
        /// What was being done.
        operation: &'static str,
        /// What was wrong.
        detail: String,
    },

    /// The server could not open the runspace pool, or broke it.
    #[error("the server could not open the runspace pool of configuration {configuration:?}: {}", describe(error.as_deref(), "no reason given"))]
    PoolBroken {
        /// The session configuration.
        configuration: String,
        /// The server's reason.
        error: Option<Box<ErrorRecord>>,
    },

    /// A session-init command did not complete.
    #[error("session-init command {index} ({command}) ended {}: {}", state.name(), describe(error.as_deref(), "no error record"))]
    SessionInit {
        /// Its position in the list, from 0.
        index: usize,
        /// The command, as text.
        command: String,
        /// The state it ended in.
        state: PipelineState,
        /// The terminating error.
        error: Option<Box<ErrorRecord>>,
    },

    /// A pipeline ended Failed or Stopped (from
    /// [`crate::client::InvocationResult::into_result`]).
    #[error("pipeline {command} ended {}: {}", state.name(), describe(error.as_deref(), "no error record"))]
    PipelineFailed {
        /// The command, as text.
        command: String,
        /// The state it ended in.
        state: PipelineState,
        /// The terminating error.
        error: Option<Box<ErrorRecord>>,
    },

    /// The server refused to connect to (or reconnect) a disconnected
    /// pool or pipeline: unknown or expired shell, another user's, or
    /// connected to another client ([`ClientError::connect_failure`]).
    #[error("{operation} failed for shell {shell_id}: {failure} ({source})")]
    Connect {
        /// What was being done.
        operation: &'static str,
        /// The shell.
        shell_id: String,
        /// Why, from the fault code.
        failure: super::connect::ConnectFailure,
        /// The server's fault.
        #[source]
        source: Box<wsman::Error>,
    },

    /// An operation did not finish in time.
    #[error("{what} did not finish within {after:?}")]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The bound.
        after: Duration,
    },

    /// The runspace pool is closed (or being closed).
    #[error("the runspace pool is closed")]
    Closed,

    /// The pipeline cannot be sent.
    #[error("cannot send this pipeline: {0}")]
    InvalidCommand(#[from] CommandError),

    /// The SecureString session key exchange failed (a tampered or foreign
    /// ENCRYPTED_SESSION_KEY...), or a SecureString could not be encrypted
    /// or decrypted. Never holds key material or plaintext.
    #[error("{operation}: {source}")]
    SessionKey {
        /// What was being done.
        operation: &'static str,
        /// What was wrong.
        #[source]
        source: crate::session_key::SessionKeyError,
    },
}

impl ClientError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Config(_) => ErrorKind::Config,
            ClientError::Wsman { kind, .. } => *kind,
            ClientError::Protocol { .. } | ClientError::UnexpectedResponse { .. } => {
                ErrorKind::Protocol
            }
            ClientError::PoolBroken { .. } => ErrorKind::PoolBroken,
            ClientError::SessionInit { .. } => ErrorKind::SessionInit,
            ClientError::PipelineFailed { .. } => ErrorKind::PipelineFailed,
            ClientError::Timeout { .. } => ErrorKind::Timeout,
            ClientError::Connect { .. } => ErrorKind::Fault,
            ClientError::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            ClientError::Closed => ErrorKind::Closed,
            ClientError::InvalidCommand(_) => ErrorKind::InvalidCommand,
            ClientError::SessionKey { .. } => ErrorKind::Protocol,
        }
    }

    /// Whether the server rejected the credentials or authentication failed.
    pub fn is_auth(&self) -> bool {
        self.kind() == ErrorKind::Auth
    }

    /// See [`ErrorKind::is_connection_failure`].
    pub fn is_connection_failure(&self) -> bool {
        self.kind().is_connection_failure()
    }

    /// Why a connect or reconnect was refused, when it was.
    pub fn connect_failure(&self) -> Option<super::connect::ConnectFailure> {
        match self {
            ClientError::Connect { failure, .. } => Some(*failure),
            _ => None,
        }
    }

    /// The WS-Management fault, when the server sent one.
    pub fn fault(&self) -> Option<&wsman::WsmanFault> {
        match self {
            ClientError::Wsman { source, .. } => source.fault(),
            ClientError::Connect { source, .. } => source.fault(),
            _ => None,
        }
    }

    /// The server's error record (broken pool, failed pipeline or
    /// session-init command).
    pub fn error_record(&self) -> Option<&ErrorRecord> {
        match self {
            ClientError::PoolBroken { error, .. }
            | ClientError::SessionInit { error, .. }
            | ClientError::PipelineFailed { error, .. } => error.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn wsman(operation: &'static str, source: wsman::Error) -> Self {
        if let wsman::Error::Config(message) = source {
            return ClientError::Config(message);
        }
        ClientError::Wsman {
            kind: classify(&source),
            operation,
            source,
        }
    }

    pub(crate) fn pool(operation: &'static str, source: PoolError) -> Self {
        match source {
            PoolError::Command(c) => ClientError::InvalidCommand(c),
            PoolError::InvalidState { .. } => ClientError::Closed,
            PoolError::Defragment { source, .. } if source.is_limit() => {
                ClientError::LimitExceeded {
                    operation,
                    option: match source {
                        DefragmentError::TooLarge { .. } => "max_message_size",
                        _ => "max_buffered_bytes",
                    },
                    source,
                }
            }
            source => ClientError::Protocol { operation, source },
        }
    }
}

/// The class of a transport error.
fn classify(e: &wsman::Error) -> ErrorKind {
    use wsman::Error as E;
    match e {
        E::Config(_) => ErrorKind::Config,
        E::Auth { .. } | E::Ntlm(_) | E::Gss(_) | E::Delegation { .. } | E::CredSsp { .. } => {
            ErrorKind::Auth
        }
        E::HttpStatus { status: 401, .. } => ErrorKind::Auth,
        E::Tls { .. } | E::ChannelBinding(_) => ErrorKind::Tls,
        E::Http { .. } | E::HttpStatus { .. } => ErrorKind::Connection,
        E::Fault { .. } => ErrorKind::Fault,
        E::Response { .. } | E::Encryption { .. } | E::ResponseTooLarge { .. } => {
            ErrorKind::Protocol
        }
        _ => ErrorKind::Connection,
    }
}

/// WinRM's ERROR_WSMAN_INVALID_RESOURCE_URI: no such session configuration.
const INVALID_RESOURCE_URI: u32 = 0x8033_803B;
/// Windows ERROR_ACCESS_DENIED, as WinRM reports it in faults.
const ACCESS_DENIED: u32 = 5;

/// What the user should check, appended to the message.
fn hint(kind: ErrorKind, source: &wsman::Error) -> &'static str {
    match kind {
        // Its own message says what to fix.
        ErrorKind::Auth if matches!(source, wsman::Error::Delegation { .. }) => "",
        // Not the user's credentials: the server (or someone in between).
        ErrorKind::Auth
            if matches!(
                source,
                wsman::Error::CredSsp {
                    source: wsman::auth::credssp::CredSspError::BindingMismatch,
                    ..
                }
            ) =>
        {
            ""
        }
        // The certificate's refusal (TLS alert or HTTP 401) names its fixes.
        ErrorKind::Auth | ErrorKind::Tls
            if matches!(source, wsman::Error::Auth { reason, .. } | wsman::Error::Tls { reason, .. }
                if reason.contains("the client certificate")) =>
        {
            ""
        }
        ErrorKind::Auth => {
            " (check the user name and password; for Kerberos, a ticket from kinit \
             (KRB5CCNAME) and the service principal name)"
        }
        ErrorKind::Tls => {
            " (check the server certificate: trust its issuer with a CA file, and connect by \
             the host name the certificate is for)"
        }
        ErrorKind::Connection => {
            " (check the host, port and scheme, and that a WinRM listener is reachable there)"
        }
        ErrorKind::Fault => match source.fault().and_then(|f| f.code) {
            Some(INVALID_RESOURCE_URI) => {
                " (check the configuration name: it must be a session configuration \
                 registered on the server)"
            }
            Some(ACCESS_DENIED) => {
                " (the user may not be allowed to use this session configuration)"
            }
            _ => "",
        },
        _ => "",
    }
}

/// One line about an error record: message, exception type and error id.
pub(crate) fn describe(record: Option<&ErrorRecord>, none: &str) -> String {
    let Some(r) = record else {
        return none.to_owned();
    };
    let mut s = r.exception_message().to_owned();
    if s.is_empty() {
        s = r.message.clone();
    }
    let mut extra = Vec::new();
    if let Some(t) = r.exception_type() {
        extra.push(t.to_owned());
    }
    if let Some(id) = &r.fully_qualified_error_id {
        extra.push(id.clone());
    }
    if !extra.is_empty() {
        s.push_str(" [");
        s.push_str(&extra.join(", "));
        s.push(']');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ErrorCategory;

    #[test]
    fn kinds_and_messages() {
        let e = ClientError::wsman(
            "opening the runspace pool (WS-Man Create)",
            wsman::Error::Auth {
                endpoint: "http://h:5985/wsman".into(),
                reason: "the server rejected the credentials of bob".into(),
            },
        );
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.is_auth() && e.is_connection_failure());
        let text = e.to_string();
        assert!(text.starts_with("opening the runspace pool"), "{text}");
        assert!(text.contains("kinit"), "{text}");

        let tls = ClientError::wsman(
            "x",
            wsman::Error::Tls {
                endpoint: "https://h/wsman".into(),
                reason: "TLS handshake with h:5986: invalid peer certificate: UnknownIssuer".into(),
            },
        );
        assert_eq!(tls.kind(), ErrorKind::Tls);
        let refused = ClientError::wsman(
            "x",
            wsman::Error::Http {
                endpoint: "http://h/wsman".into(),
                reason: "connect: connection refused".into(),
                timed_out: false,
            },
        );
        assert_eq!(refused.kind(), ErrorKind::Connection);
        assert_eq!(
            ClientError::wsman("x", wsman::Error::Config("bad".into())).kind(),
            ErrorKind::Config
        );
    }

    #[test]
    fn records_are_described_in_one_line() {
        let r = ErrorRecord::new(
            "The term 'Get-Secret' is not recognized",
            "System.Management.Automation.CommandNotFoundException",
            "CommandNotFoundException",
            ErrorCategory::ObjectNotFound,
        );
        let e = ClientError::PipelineFailed {
            command: "Get-Secret".into(),
            state: PipelineState::Failed,
            error: Some(Box::new(r)),
        };
        assert_eq!(e.kind(), ErrorKind::PipelineFailed);
        assert!(!e.is_connection_failure());
        assert_eq!(
            e.to_string(),
            "pipeline Get-Secret ended Failed: The term 'Get-Secret' is not recognized \
             [System.Management.Automation.CommandNotFoundException, CommandNotFoundException]"
        );
        assert!(e.error_record().is_some());
    }

    #[test]
    fn a_limit_is_its_own_kind_and_names_the_option() {
        let too_large = ClientError::pool(
            "reading pipeline output",
            PoolError::Defragment {
                target: crate::pool::Target::Pool,
                source: DefragmentError::TooLarge {
                    object_id: 7,
                    size: 100_000,
                    limit: 65_536,
                },
            },
        );
        assert_eq!(too_large.kind(), ErrorKind::LimitExceeded);
        assert!(!too_large.is_connection_failure());
        assert_eq!(
            too_large.to_string(),
            "reading pipeline output: a message from the server (object 7) is larger than the \
             limit of 65536 bytes (max_message_size): 100000 bytes or more; raise \
             PoolOptions::max_message_size if the server legitimately sends this much"
        );
        let buffered = ClientError::pool(
            "x",
            PoolError::Defragment {
                target: crate::pool::Target::Pool,
                source: DefragmentError::BufferLimit {
                    limit: 10,
                    held: 8,
                    needed: 4,
                },
            },
        );
        assert!(matches!(
            buffered,
            ClientError::LimitExceeded {
                option: "max_buffered_bytes",
                ..
            }
        ));
        // A corrupt stream is not a limit.
        let corrupt = ClientError::pool(
            "x",
            PoolError::Defragment {
                target: crate::pool::Target::Pool,
                source: DefragmentError::TooManyPending { limit: 1 },
            },
        );
        assert_eq!(corrupt.kind(), ErrorKind::Protocol);
    }
}
