//! WS-Management client for WinRM. Knows nothing of PSRP.
//!
//! - [`soap`]: envelopes (addressing headers, options, selectors) and parsing.
//! - [`shell`]: typed WinRM shell operations (Create, Command, Send,
//!   Receive, Signal, Delete).
//! - [`fault`]: typed WS-Man faults; the Receive OperationTimeout is
//!   [`ReceiveOutcome::TimedOut`], not an error.
//! - [`auth`]: Basic, NTLMv2 with session security, Kerberos and SPNEGO via
//!   the system GSSAPI, TLS channel bindings.
//! - [`encryption`]: WinRM `multipart/encrypted` message framing.
//! - [`WsmanClient`]: the async client with its pool of authenticated
//!   connections.
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

pub mod auth;
mod client;
pub mod config;
pub mod encryption;
mod error;
pub mod fault;
mod secret;
pub mod shell;
pub mod soap;
mod transport;

pub use client::WsmanClient;
pub use config::{Auth, EncryptionPolicy, ProxyConfig, TlsOptions, WsmanConfig};
pub use error::Error;
pub use fault::WsmanFault;
pub use secret::Secret;
pub use shell::{
    CommandRequest, CommandState, CommandStateKind, CreateShell, ReceiveOutcome, ReceiveResponse,
    Shell, StreamData,
};
