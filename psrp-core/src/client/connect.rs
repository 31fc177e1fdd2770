//! Disconnected operation (MS-PSRP 3.1.4.9-10; MS-WSMV Disconnect, Reconnect,
//! Connect and Enumerate): a pool with running pipelines can be
//! disconnected and reconnected by the same process, or left running on the
//! server (a detached job) and connected to later from another process by
//! its shell id; the server keeps the output meanwhile.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;
use wsman::enumerate::ShellInfo;
use wsman::{BufferMode, DisconnectShell, Shell, WsmanClient};

use crate::fragment::DefragmentLimits;
use crate::message::RunspacePoolState;
use crate::pool::{PoolEvent, RunspacePool as CorePool, RunspacePoolConfig, Target};

use super::error::ClientError;
use super::invocation::{self, Invocation};
use super::options::ConnectionOptions;
use super::pool::{IntoPipeline, PoolOptions, RunspacePool};
use super::shared::{id_text, Shared};

/// How the server keeps a disconnected pool (a builder).
///
/// ```
/// use std::time::Duration;
/// use psrp_core::client::{BufferMode, DisconnectOptions};
///
/// let options = DisconnectOptions::new()
///     .idle_timeout(Duration::from_secs(3600))
///     .buffer_mode(BufferMode::Block);
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DisconnectOptions {
    idle_timeout: Option<Duration>,
    buffer_mode: Option<BufferMode>,
}

impl DisconnectOptions {
    /// Keep the shell's settings (idle timeout from the Create or the
    /// server's default, 2 hours on Windows; buffer mode Block).
    pub fn new() -> Self {
        DisconnectOptions::default()
    }

    /// How long the server keeps the disconnected pool before deleting it
    /// with its pipelines (capped by the server's MaxIdleTimeoutms).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// What the server does when the output buffer fills while nobody is
    /// connected: [`BufferMode::Block`] pauses the pipeline (nothing is
    /// lost), [`BufferMode::Drop`] drops the oldest output.
    pub fn buffer_mode(mut self, mode: BufferMode) -> Self {
        self.buffer_mode = Some(mode);
        self
    }

    /// The idle timeout asked for, if any.
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    fn wsman(&self) -> DisconnectShell {
        DisconnectShell {
            idle_timeout: self.idle_timeout,
            buffer_mode: self.buffer_mode,
        }
    }
}

/// Why the server refused to connect to (or reconnect) a pool, from
/// WinRM's fault codes. See [`ClientError::connect_failure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// No such shell on the server (0x8033805B): wrong id, deleted, or it
    /// expired (see [`ConnectFailure::IdleTimeoutExpired`]).
    UnknownShell,
    /// No such shell, and its idle timeout had passed: the server deleted
    /// it with its pipelines and their output.
    IdleTimeoutExpired,
    /// The shell belongs to another user (access denied, 5).
    WrongUser,
    /// The shell is connected to another client (0x803381CD), or a
    /// Reconnect came from a client other than the one that disconnected
    /// (0x803381C6).
    ConnectedElsewhere,
}

impl ConnectFailure {
    /// What to do about it, for messages.
    pub fn advice(self) -> &'static str {
        match self {
            ConnectFailure::UnknownShell => {
                "the shell does not exist on the server: check the shell id and the host, or it \
                 was deleted or expired"
            }
            ConnectFailure::IdleTimeoutExpired => {
                "the server deleted the disconnected shell when its idle timeout expired; its \
                 output is lost (disconnect with a longer idle timeout)"
            }
            ConnectFailure::WrongUser => {
                "the shell belongs to another user: connect as the user who started it"
            }
            ConnectFailure::ConnectedElsewhere => {
                "the shell is connected to another client; that client must disconnect (or be \
                 gone) first"
            }
        }
    }

    /// Classifies a fault code, `expired` telling whether the caller knows
    /// the shell's idle timeout has passed.
    pub(crate) fn from_code(code: u32, expired: bool) -> Option<Self> {
        Some(match code {
            wsman::fault::UNEXPECTED_SELECTORS_CODE if expired => {
                ConnectFailure::IdleTimeoutExpired
            }
            wsman::fault::UNEXPECTED_SELECTORS_CODE => ConnectFailure::UnknownShell,
            wsman::fault::ACCESS_DENIED_CODE => ConnectFailure::WrongUser,
            wsman::fault::SHELL_CONNECTED_TO_DIFFERENT_CLIENT_CODE
            | wsman::fault::CLIENT_SESSION_ID_MISMATCH_CODE => ConnectFailure::ConnectedElsewhere,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.advice())
    }
}

/// A pipeline left running on the server in a disconnected pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetachedJob {
    /// The shell (runspace pool) id.
    pub shell_id: String,
    /// The command (pipeline) id.
    pub command_id: String,
    /// When the server may delete it, if nobody connects (from the idle
    /// timeout asked for).
    pub expires_at: Option<SystemTime>,
}

fn connect_error(
    operation: &'static str,
    shell_id: &str,
    e: wsman::Error,
    expired: bool,
) -> ClientError {
    match e
        .fault()
        .and_then(|f| f.code)
        .and_then(|c| ConnectFailure::from_code(c, expired))
    {
        Some(failure) => ClientError::Connect {
            operation,
            shell_id: shell_id.to_owned(),
            failure,
            source: Box::new(e),
        },
        None => ClientError::wsman(operation, e),
    }
}

impl RunspacePool {
    /// Disconnects the pool: its pipelines go on on the server, which
    /// keeps their output (see [`DisconnectOptions`]); running
    /// [`Invocation`]s stop asking for output and wait. Resume with
    /// [`RunspacePool::reconnect`]. Dropping or closing a disconnected pool
    /// still deletes the shell.
    pub async fn disconnect(&self, options: &DisconnectOptions) -> Result<(), ClientError> {
        let shared = &self.shared;
        if shared.is_closed() {
            return Err(ClientError::Closed);
        }
        // A disconnected shell keeps no finished command of ours.
        shared.release_finished().await;
        // Before the request: a Receive that fails because of it is then
        // recognised as such by the receive tasks.
        shared.connected.send_replace(false);
        let result = shared
            .client
            .disconnect_shell(&shared.shell, &options.wsman())
            .await;
        if let Err(e) = result {
            shared.connected.send_replace(true);
            return Err(shared.error("disconnecting the runspace pool (WS-Man Disconnect)", e));
        }
        Ok(())
    }

    /// Reconnects a pool this handle disconnected (WS-Man Reconnect; the
    /// same client): its invocations resume receiving, and nothing the
    /// server buffered is lost (in Block mode).
    pub async fn reconnect(&self) -> Result<(), ClientError> {
        let shared = &self.shared;
        if shared.is_closed() {
            return Err(ClientError::Closed);
        }
        shared
            .client
            .reconnect_shell(&shared.shell)
            .await
            .map_err(|e| {
                connect_error(
                    "reconnecting the runspace pool (WS-Man Reconnect)",
                    &shared.shell.id,
                    e,
                    false,
                )
            })?;
        shared.connected.send_replace(true);
        Ok(())
    }

    /// Starts a pipeline, disconnects the pool and leaves both to the
    /// server: nothing of the output is received here, and the shell is
    /// not deleted by this handle (which is closed afterwards). Pick the
    /// job up with [`RunspacePool::connect`] and
    /// [`RunspacePool::connect_command`], from this or another process. On
    /// an error the pool stays as it was: closing or dropping it deletes the
    /// shell.
    pub async fn start_detached(
        &self,
        pipeline: impl IntoPipeline,
        options: &DisconnectOptions,
    ) -> Result<DetachedJob, ClientError> {
        let started = self
            .create_command(
                super::pool::Request::Pipeline(pipeline.into_pipeline()),
                None,
            )
            .await?;
        self.disconnect(options).await?;
        self.shared.leave();
        drop(started.permit);
        Ok(DetachedJob {
            shell_id: self.shared.shell.id.clone(),
            command_id: started.command_id,
            expires_at: options
                .idle_timeout
                .and_then(|t| SystemTime::now().checked_add(t)),
        })
    }

    /// Connects to a disconnected pool on the server by its shell id (from
    /// [`RunspacePool::start_detached`], another process, or
    /// [`list_shells`]): WS-Man Connect with SESSION_CAPABILITY and
    /// CONNECT_RUNSPACEPOOL, the pool's state from RUNSPACEPOOL_INIT_DATA.
    /// `connection` must name the same configuration. `expires_at` (when
    /// the caller knows the idle timeout) tells an expired shell from an
    /// unknown one. The pool is then like an opened one: close it (or drop
    /// it) to delete the shell. Session-init commands are not run.
    pub async fn connect(
        connection: ConnectionOptions,
        options: PoolOptions,
        shell_id: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<RunspacePool, ClientError> {
        const OP: &str = "connecting to the runspace pool (WS-Man Connect)";
        let id = Uuid::parse_str(shell_id).map_err(|_| {
            ClientError::Config(format!(
                "shell id {shell_id:?} is not a GUID (a PowerShell shell id is the runspace pool id)"
            ))
        })?;
        let (runspaces, min, max_message, buffered) = options.sizes();
        let max_runspaces = usize::try_from(runspaces).unwrap_or(1);
        let config = connection.to_wsman_config(max_runspaces)?;
        let endpoint = connection.endpoint();
        let client = WsmanClient::new(config)
            .map_err(|e| ClientError::wsman("creating the WS-Man client", e))?;
        let mut core = CorePool::new(RunspacePoolConfig {
            id,
            min_runspaces: min,
            max_runspaces: runspaces,
            host_info: options.host_ref().host_info(),
            defragment_limits: DefragmentLimits {
                max_message_size: max_message,
                max_buffered_bytes: buffered,
                ..DefragmentLimits::default()
            },
            ..RunspacePoolConfig::default()
        });
        let max_payload = client.max_payload_size();
        let connect_xml = core
            .connect(max_payload)
            .map_err(|e| ClientError::pool("connecting to the runspace pool", e))?;
        let shell = Shell::new(id_text(id), connection.resource_uri());
        let expired = expires_at.is_some_and(|t| SystemTime::now() >= t);
        let answer = client
            .connect_shell(&shell, &connect_xml, "2.3")
            .await
            .map_err(|e| connect_error(OP, shell_id, e, expired))?;
        let limits = options.limits();
        let shared = Arc::new(Shared::new(
            client,
            shell,
            connection.configuration().to_owned(),
            core,
            max_payload,
            options.host_ref().clone(),
            max_runspaces,
            limits,
            Some(options.tracker().token()),
        ));
        let pool = RunspacePool {
            shared,
            endpoint,
            init_results: Vec::new(),
        };
        // From here the pool deletes the shell on errors and drops.
        let response = wsman::ReceiveResponse {
            streams: vec![wsman::StreamData {
                name: "stdout".into(),
                command_id: None,
                data: answer,
                end: false,
            }],
            command_state: None,
            sequence_id: None,
        };
        let events =
            pool.shared
                .feed(Target::Pool, &response, "connecting to the runspace pool")?;
        for event in events {
            if let PoolEvent::StateChanged {
                state: RunspacePoolState::Broken | RunspacePoolState::Closed,
                error,
            } = event
            {
                return Err(ClientError::PoolBroken {
                    configuration: pool.shared.configuration.clone(),
                    error: error.map(Box::new),
                });
            }
        }
        if pool.shared.core().state() != RunspacePoolState::Opened {
            return Err(ClientError::UnexpectedResponse {
                operation: OP,
                detail: "the connectResponseXml carried no RUNSPACEPOOL_INIT_DATA".to_owned(),
            });
        }
        Ok(pool)
    }

    /// Connects to a pipeline still running (or finished, its output kept)
    /// in a pool opened with [`RunspacePool::connect`]: its output,
    /// buffered by the server since the disconnect, then streams as from
    /// [`RunspacePool::start`].
    pub async fn connect_command(&self, command_id: &str) -> Result<Invocation, ClientError> {
        const OP: &str = "connecting to the pipeline (WS-Man Connect)";
        let shared = &self.shared;
        if shared.is_closed() {
            return Err(ClientError::Closed);
        }
        let id = Uuid::parse_str(command_id)
            .map_err(|_| ClientError::Config(format!("command id {command_id:?} is not a GUID")))?;
        let permit = shared
            .runspaces
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Closed)?;
        shared
            .client
            .connect_command(&shared.shell, command_id)
            .await
            .map_err(|e| connect_error(OP, &shared.shell.id, e, false))?;
        shared
            .core()
            .attach_pipeline(id)
            .map_err(|e| ClientError::pool("connecting to the pipeline", e))?;
        shared.set_command_id(id, command_id.to_owned());
        Ok(invocation::spawn(
            shared.clone(),
            id,
            command_id.to_owned(),
            format!("pipeline {command_id}"),
            permit,
        ))
    }
}

impl RunspacePool {
    /// Asks the server to stop a pipeline of this pool by its command id
    /// (Signal `powershell/signal/crtl_c`) without receiving its output:
    /// for a job picked up with [`RunspacePool::connect`] only to stop it.
    pub async fn stop_command(&self, command_id: &str) -> Result<(), ClientError> {
        let shared = &self.shared;
        shared
            .client
            .signal(&shared.shell, command_id, wsman::shell::signal::PS_CTRL_C)
            .await
            .map_err(|e| {
                connect_error(
                    "stopping the pipeline (WS-Man Signal)",
                    &shared.shell.id,
                    e,
                    false,
                )
            })
    }

    /// Disconnects and leaves the pool to the server (this handle will not
    /// delete the shell): the counterpart of [`RunspacePool::connect`] for
    /// a job that should stay on the server.
    pub async fn detach(self, options: &DisconnectOptions) -> Result<(), ClientError> {
        self.disconnect(options).await?;
        self.shared.leave();
        Ok(())
    }
}

/// Disconnects a shell by id from a new client (WS-Man Disconnect): for a
/// shell whose client died while connected (a killed process leaves it
/// connected; MS-WSMV 3.1.6.5 treats it as idle, not disconnected), so that
/// [`RunspacePool::connect`] can then pick it up. Its pipelines go on, their
/// output kept as `options` say. Whether a Windows server accepts this from a
/// client session other than the one that connected has not been checked
/// here; refusals are [`ConnectFailure`]s.
pub async fn disconnect_shell(
    connection: &ConnectionOptions,
    shell_id: &str,
    options: &DisconnectOptions,
) -> Result<(), ClientError> {
    let config = connection.to_wsman_config(1)?;
    let client = WsmanClient::new(config)
        .map_err(|e| ClientError::wsman("creating the WS-Man client", e))?;
    client
        .disconnect_shell(
            &Shell::new(shell_id, connection.resource_uri()),
            &options.wsman(),
        )
        .await
        .map_err(|e| {
            connect_error(
                "disconnecting the shell (WS-Man Disconnect)",
                shell_id,
                e,
                false,
            )
        })
}

/// Deletes a (disconnected) shell by id, with its pipelines and their
/// output (WS-Man Delete); refusals are [`ConnectFailure`]s.
pub async fn remove_shell(
    connection: &ConnectionOptions,
    shell_id: &str,
) -> Result<(), ClientError> {
    let config = connection.to_wsman_config(1)?;
    let client = WsmanClient::new(config)
        .map_err(|e| ClientError::wsman("creating the WS-Man client", e))?;
    client
        .delete_shell(&Shell::new(shell_id, connection.resource_uri()))
        .await
        .map_err(|e| connect_error("deleting the shell (WS-Man Delete)", shell_id, e, false))
}

/// The user's PowerShell shells on the host of `connection` (WS-Man
/// Enumerate): connected and disconnected, every configuration; filter
/// with [`ShellInfo::is_disconnected`] and [`ShellInfo::configuration_name`].
pub async fn list_shells(connection: &ConnectionOptions) -> Result<Vec<ShellInfo>, ClientError> {
    let config = connection.to_wsman_config(1)?;
    let client = WsmanClient::new(config)
        .map_err(|e| ClientError::wsman("creating the WS-Man client", e))?;
    let shells = client
        .enumerate_shells()
        .await
        .map_err(|e| ClientError::wsman("listing the shells (WS-Man Enumerate)", e))?;
    Ok(shells
        .into_iter()
        .filter(|s| s.configuration_name().is_some())
        .collect())
}
