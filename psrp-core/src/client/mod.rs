//! The async client (feature `client`, on tokio): runspace pools and
//! pipelines on a remote PowerShell session configuration over
//! WS-Management, driving the sans-IO [`crate::pool::RunspacePool`].
//!
//! - [`ConnectionOptions`]: host, scheme, port, authentication,
//!   credentials, TLS, configuration name (JEA endpoints), timeouts.
//! - [`RunspacePool`]: opened with [`RunspacePool::open`] /
//!   [`RunspacePool::open_with`] ([`PoolOptions`]: runspaces, host,
//!   session-init commands), closed with [`RunspacePool::close`];
//!   [`CleanupTracker`] waits for the shells of dropped pools to be
//!   deleted before a program exits.
//! - Pipelines: [`RunspacePool::invoke`] collects an
//!   [`InvocationResult`]; [`RunspacePool::start`] gives an [`Invocation`]
//!   whose [`Event`]s arrive as the server sends them, with back-pressure,
//!   and a [`StopHandle`].
//! - What to run: [`Command`] and [`PowerShell`] (re-exported from
//!   [`crate::command`]), with [`list`], [`hashtable`] and
//!   [`json_to_value`] for parameter values.
//! - SecureStrings: parameters made with [`SecureString::new`] are
//!   encrypted with the pool's session key, exchanged first if needed
//!   (RSA + AES-256, [`crate::session_key`]); received ones are decrypted
//!   only on request ([`RunspacePool::decrypt`]).
//! - [`Host`]: answers host calls; the default [`NonInteractiveHost`]
//!   refuses prompts so `Read-Host` fails instead of hanging.
//! - Disconnected operation: [`RunspacePool::disconnect`] /
//!   [`RunspacePool::reconnect`] ([`DisconnectOptions`]: idle timeout,
//!   [`BufferMode`]), [`RunspacePool::start_detached`] to leave a pipeline
//!   running on the server, [`RunspacePool::connect`] and
//!   [`RunspacePool::connect_command`] to pick it up from any process,
//!   [`list_shells`]; refusals are [`ConnectFailure`]s.
//! - File copy: [`RunspacePool::copy_file`] and [`RunspacePool::fetch_file`]
//!   ([`CopyOptions`]: chunks in flight, retries, resume, progress),
//!   chunked from MaxEnvelopeSize, SHA-256 checked, on endpoints that allow
//!   scripts.
//! - [`ClientError`] with [`ErrorKind`]: connection, TLS, authentication,
//!   WS-Man fault, protocol, broken pool, failed pipeline... told apart.
//!
//! # Example: Kerberos over HTTP into a JEA endpoint
//!
//! ```no_run
//! use psrp_core::client::{
//!     AuthMethod, ClientError, Command, ConnectionOptions, PoolOptions, RunspacePool,
//! };
//!
//! # async fn run() -> Result<(), ClientError> {
//! // `kinit` first; messages over HTTP are encrypted by Kerberos.
//! let connection = ConnectionOptions::new("win01.example.com")
//!     .auth(AuthMethod::Kerberos)
//!     .configuration_name("JEA.Maintenance");
//! let pool = RunspacePool::open_with(
//!     connection,
//!     PoolOptions::new().session_init(Command::new("Set-PSDebug").param("Trace", 1)),
//! )
//! .await?;
//! let result = pool
//!     .invoke(Command::new("Restart-Computer").switch("Force"))
//!     .await?;
//! for line in &result.debug {
//!     eprintln!("DEBUG: {}", line.message);
//! }
//! let result = result.into_result()?; // Err when the pipeline failed
//! println!("{}", serde_json::Value::Array(result.output_json()));
//! pool.close().await?;
//! # Ok(()) }
//! ```
//!
//! # Example: errors a scheduler can act on
//!
//! ```no_run
//! use psrp_core::client::{Command, ConnectionOptions, ErrorKind, RunspacePool};
//!
//! # async fn run() -> i32 {
//! let options = ConnectionOptions::new("win01").credentials("EXAMPLE\\svc", "secret");
//! let pool = match RunspacePool::open(options).await {
//!     Ok(pool) => pool,
//!     Err(e) if e.kind() == ErrorKind::Auth => return 3,
//!     Err(e) if e.is_connection_failure() => return 3,
//!     Err(_) => return 2,
//! };
//! let status = match pool.invoke(Command::new("Get-Service")).await {
//!     Ok(r) if !r.succeeded() => 2,
//!     Ok(r) if r.had_errors() => 1,
//!     Ok(_) => 0,
//!     Err(e) if e.is_connection_failure() => 3,
//!     Err(_) => 2,
//! };
//! let _ = pool.close().await;
//! status
//! # }
//! ```

mod cleanup;
mod connect;
mod copy;
mod error;
mod events;
mod host;
mod invocation;
mod options;
mod pool;
mod secure;
mod shared;

pub use cleanup::CleanupTracker;
pub use connect::{
    disconnect_shell, list_shells, remove_shell, ConnectFailure, DetachedJob, DisconnectOptions,
};
pub use copy::{CopyError, CopyOptions, CopyProgress, CopyReport};
pub use error::{ClientError, ErrorKind};
pub use events::{Completion, Event, InvocationResult};
pub use host::{Host, NonInteractiveHost};
pub use invocation::{Invocation, StopHandle};
pub use options::{AuthMethod, ConnectionOptions, Scheme, DEFAULT_CONFIGURATION_NAME};
pub use pool::{describe_pipeline, IntoPipeline, PoolOptions, RunspacePool};

pub use crate::clixml::{to_json, to_json_with, JsonOptions, PsValue, SecureString, Version};
pub use crate::command::{hashtable, json_to_value, list, Command, CreatePipeline, PowerShell};
pub use crate::host::{HostCall, HostInfo, HostMethodId, HostResponse};
pub use crate::message::{
    CommandMetadata, CommandTypes, ErrorRecord, GetCommandMetadata, InformationRecord,
    InformationalRecord, ParameterMetadata, PipelineState, ProgressRecord,
};
pub use crate::prompt::{ChoiceDescription, FieldDescription, HostAnswer, HostPrompt};
pub use crate::session_key::SessionKeyError;
pub use wsman::{BufferMode, NtlmFallback, ProxyConfig, Secret, ShellInfo};
