//! WS-Management client for WinRM. Knows nothing of PSRP.
//!
//! - [`soap`]: envelopes (addressing headers, options, selectors) and parsing.
//! - [`shell`]: typed WinRM shell operations (Create, Command, Send,
//!   Receive, Signal, Delete; Disconnect, Reconnect, Connect).
//! - [`enumerate`]: WS-Enumeration of shells (what disconnected shells
//!   the user has).
//! - [`fault`]: typed WS-Man faults; the Receive OperationTimeout is
//!   [`ReceiveOutcome::TimedOut`], not an error.
//! - [`auth`]: Basic, NTLMv2 with session security, Kerberos and SPNEGO via
//!   the system GSSAPI, TLS channel bindings.
//! - [`encryption`]: WinRM `multipart/encrypted` message framing.
//! - [`WsmanClient`]: the async client with its pool of authenticated
//!   connections.
//! - [`diagnose`] and [`cert`]: unauthenticated probes (offered schemes,
//!   TLS session and certificates, Identify, NTLM target info) that explain
//!   a failing connection.
//! - [`limits`]: how much a server can make the client read and keep
//!   (response body size, XML nodes and depth, encrypted parts).
//!
//! # Security defaults
//!
//! - HTTPS certificates are verified against the system store (or
//!   [`TlsOptions::ca_bundle`]); turning that off is
//!   [`TlsOptions::danger_accept_invalid_certs`].
//! - Over HTTP, NTLM, Kerberos and Negotiate always encrypt every message
//!   (WinRM message encryption). Basic over HTTP, or clear-text messages, need
//!   [`EncryptionPolicy::DangerousAllowUnencryptedHttp`].
//! - A response that fails to decrypt or verify, or arrives unencrypted on an
//!   encrypted session, is an error; its connection is discarded.
//! - Passwords are [`Secret`]s: never in `Debug`, errors or logs, and
//!   cleared from memory when dropped, as are the Basic header, NT hashes,
//!   NTLM session keys and RC4 states (`zeroize`). A proxy URL's password
//!   is redacted in `Debug`; `Authorization` and `Proxy-Authorization` are
//!   marked sensitive. The crate has no `unsafe` code.
//!
//! # Authentication
//!
//! - **Kerberos** uses the system GSSAPI (MIT krb5 through `libgssapi`), so
//!   `kinit`, ticket caches, keytabs and krb5.conf work as for other tools;
//!   with a password a TGT is fetched into memory. The SPN defaults to
//!   `HTTP/<host>`; delegation is optional. Messages are sealed with
//!   `gss_wrap_iov` over HEADER | DATA | PADDING, WinRM's layout. The
//!   flags the established context was granted are checked: mutual
//!   authentication always, confidentiality and integrity when messages
//!   are encrypted ([`auth::gss::missing_flags`]); a server message that
//!   verifies but was only signed, not encrypted, is refused.
//! - **NTLM** is NTLMv2 written here on RustCrypto primitives: MIC, key
//!   exchange, channel bindings, signing and sealing with per-direction RC4
//!   state, checked against the MS-NLMP 4.2.4 known answers and pyspnego.
//!   A server whose CHALLENGE does not offer 128-bit keys, key exchange,
//!   signing and sealing is refused ([`auth::ntlm::NtlmError::MissingFlags`]).
//! - **Negotiate** runs the GSSAPI SPNEGO mechanism when Kerberos credentials
//!   can be had (ticket cache, or username + password from the KDC); if that
//!   fails before anything is sent and a username and password are
//!   configured, it sends raw NTLM tokens under the `Negotiate` scheme, which
//!   Windows and pyspnego accept. Why not our own SPNEGO around NTLM: MIT's
//!   SPNEGO is proven, handles the mechListMIC, and a client without Kerberos
//!   credentials gains nothing from wrapping NTLM in SPNEGO. The fallback is
//!   not silent: [`WsmanConfig::on_ntlm_fallback`] is called and
//!   [`WsmanClient::ntlm_fallback`] says why Kerberos was not used; with
//!   [`WsmanConfig::allow_ntlm_fallback`] false it is an error instead.
//! - On HTTPS, the `tls-server-end-point` channel binding is always sent.
//! - **CredSSP** ([`Auth::CredSsp`], [`auth::credssp`]) only when asked for
//!   by name, never by Negotiate: a TLS channel (rustls over buffers, its
//!   certificate bound through `pubKeyAuth` instead of a CA) carried in the
//!   `CredSSP` header, SPNEGO (Kerberos from the ticket cache) or our NTLM
//!   inside it, the public-key binding (versions 2-6) checked, then the
//!   user's password sent to the server, which can then act as the user
//!   elsewhere. Over HTTP the TLS session seals
//!   messages (`application/HTTP-CredSSP-session-encrypted`).
//!
//! # Connections and concurrency
//!
//! WinRM binds an NTLM or Kerberos context, and the sealing sequence state,
//! to one TCP connection. Each pooled connection owns its stream (hyper's
//! connection-level client over TCP or rustls, optionally through an HTTP
//! proxy) with its own security context, and carries one request at a time.
//! Concurrent operations take an idle connection or open and authenticate a
//! new one, up to [`WsmanConfig::max_connections`], so a Receive blocked for
//! OperationTimeout does not hold up a Send or a Signal.
//!
//! ```no_run
//! use wsman::{Auth, CommandRequest, CreateShell, ReceiveOutcome, Secret, WsmanClient, WsmanConfig};
//!
//! # async fn run(creation_xml: Vec<u8>, create_pipeline: Vec<u8>) -> Result<(), wsman::Error> {
//! let auth = Auth::Negotiate {
//!     username: Some("EXAMPLE\\alice".into()),
//!     password: Some(Secret::new("secret")),
//!     spn: None,
//!     delegate: false,
//! };
//! let client = WsmanClient::new(WsmanConfig::new("http://win.example:5985/wsman", auth)?)?;
//! let shell = client
//!     .create_shell(CreateShell::powershell("Microsoft.PowerShell").with_creation_xml(creation_xml))
//!     .await?;
//! let cmd = client
//!     .command(&shell, CommandRequest::psrp("0F6D7A8B-0000-4000-8000-000000000001", &create_pipeline))
//!     .await?;
//! loop {
//!     match client.receive(&shell, Some(&cmd)).await? {
//!         ReceiveOutcome::TimedOut => continue,
//!         ReceiveOutcome::Data(r) => {
//!             let _psrp_fragments = r.stream_bytes("stdout");
//!             if r.is_done() {
//!                 break;
//!             }
//!         }
//!     }
//! }
//! client.delete_shell(&shell).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod cert;
mod client;
pub mod config;
pub mod diagnose;
pub mod encryption;
pub mod enumerate;
mod error;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
mod secret;
pub mod shell;
pub mod soap;
mod transport;

pub use auth::certificate::{CertificateError, ClientCertificate};
pub use client::{ReceiveSequence, WsmanClient, MAX_ENUMERATED_SHELLS};
pub use config::{
    Auth, EncryptionPolicy, FallbackHook, NtlmFallback, ProxyConfig, TlsOptions, WsmanConfig,
};
pub use enumerate::ShellInfo;
pub use error::Error;
pub use fault::WsmanFault;
pub use secret::Secret;
pub use shell::{
    BufferMode, CommandRequest, CommandState, CommandStateKind, CreateShell, DisconnectShell,
    ReceiveOutcome, ReceiveResponse, Shell, StreamData,
};
pub use transport::retry::{ReconnectEvent, ReconnectHook, ReconnectPolicy};
