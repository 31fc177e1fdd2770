//! The async runspace pool: opens a shell on the session configuration,
//! runs pipelines on it, and deletes it.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use wsman::{CommandRequest, CreateShell, ReceiveOutcome, Shell, WsmanClient};

use crate::clixml::{to_json, PsValue, SecureString, Version};
use crate::command::{Command, CreatePipeline, PowerShell};
use crate::fragment::{DefragmentLimits, DEFAULT_MAX_MESSAGE_SIZE};
use crate::message::{
    ApplicationPrivateData, CommandMetadata, CommandMetadataReply, GetCommandMetadata,
    RunspacePoolState, SessionCapability,
};
use crate::pool::{PoolError, PoolEvent, RunspacePool as CorePool, RunspacePoolConfig, Target};
use crate::session_key::SessionKeyError;

use super::cleanup::CleanupTracker;
use super::error::ClientError;
use super::events::InvocationResult;
use super::host::{Host, NonInteractiveHost};
use super::invocation::{self, Invocation};
use super::options::ConnectionOptions;
use super::shared::{id_text, Limits, Shared, ShellGuard};

/// What can be run as a pipeline: a [`Command`], a [`PowerShell`]
/// (pipes, statements, scripts) or a complete [`CreatePipeline`].
pub trait IntoPipeline {
    /// The CREATE_PIPELINE message for it.
    fn into_pipeline(self) -> CreatePipeline;
}

impl IntoPipeline for Command {
    fn into_pipeline(self) -> CreatePipeline {
        CreatePipeline::new(PowerShell::new(self))
    }
}

impl IntoPipeline for PowerShell {
    fn into_pipeline(self) -> CreatePipeline {
        CreatePipeline::new(self)
    }
}

impl IntoPipeline for CreatePipeline {
    fn into_pipeline(self) -> CreatePipeline {
        self
    }
}

/// A pipeline as one line of text, for messages: `Get-Item -Path … | Select-Object; Get-Date`.
pub fn describe_pipeline(powershell: &PowerShell) -> String {
    let statement = |cmds: &Vec<Command>| {
        cmds.iter()
            .map(|c| {
                if c.is_script {
                    let first = c.name.lines().next().unwrap_or_default();
                    let mut s: String = first.chars().take(60).collect();
                    if s.len() < c.name.len() {
                        s.push('…');
                    }
                    format!("{{{s}}}")
                } else {
                    let mut s = c.name.clone();
                    for p in &c.parameters {
                        if let Some(n) = &p.name {
                            s.push_str(" -");
                            s.push_str(n);
                        }
                    }
                    s
                }
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    powershell
        .statements
        .iter()
        .map(statement)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How the runspace pool is opened and run (a builder).
///
/// ```
/// use std::time::Duration;
/// use psrp_core::client::{Command, PoolOptions};
///
/// let options = PoolOptions::new()
///     .max_runspaces(2)
///     // Runs right after the pool opens, in the same runspace as the
///     // pipelines that follow (with one runspace; see `session_init`).
///     .session_init(Command::new("Set-PSDebug").param("Trace", 1))
///     .stop_timeout(Duration::from_secs(5));
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct PoolOptions {
    min_runspaces: i32,
    max_runspaces: i32,
    host: Arc<dyn Host>,
    application_arguments: Option<Vec<(String, PsValue)>>,
    session_init: Vec<CreatePipeline>,
    event_buffer: usize,
    open_timeout: Duration,
    stop_timeout: Duration,
    cleanup_timeout: Duration,
    idle_timeout: Option<Duration>,
    cleanup: CleanupTracker,
    max_message_size: usize,
    max_buffered_bytes: Option<usize>,
    session_key_timeout: Duration,
}

impl std::fmt::Debug for PoolOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolOptions")
            .field("min_runspaces", &self.min_runspaces)
            .field("max_runspaces", &self.max_runspaces)
            .field("session_init", &self.session_init.len())
            .field("event_buffer", &self.event_buffer)
            .field("open_timeout", &self.open_timeout)
            .field("stop_timeout", &self.stop_timeout)
            .field("cleanup_timeout", &self.cleanup_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("cleanup_pending", &self.cleanup.pending())
            .field("max_message_size", &self.max_message_size)
            .field("max_buffered_bytes", &self.buffered_limit())
            .field("session_key_timeout", &self.session_key_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            min_runspaces: 1,
            max_runspaces: 1,
            host: Arc::new(NonInteractiveHost),
            application_arguments: None,
            session_init: Vec::new(),
            event_buffer: 1024,
            open_timeout: Duration::from_secs(120),
            stop_timeout: Duration::from_secs(30),
            cleanup_timeout: Duration::from_secs(30),
            idle_timeout: None,
            cleanup: CleanupTracker::new(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_buffered_bytes: None,
            session_key_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolOptions {
    /// The defaults: one runspace, the non-interactive host, a buffer of
    /// 1024 events, opening bounded by 120 s, stopping and clean-up by 30 s,
    /// messages from the server up to 32 MiB and 64 MiB of partial
    /// messages.
    pub fn new() -> Self {
        PoolOptions::default()
    }

    /// Minimum runspaces (default 1).
    pub fn min_runspaces(mut self, count: u16) -> Self {
        self.min_runspaces = i32::from(count.max(1));
        self
    }

    /// Maximum runspaces: how many pipelines run at the same time (default
    /// 1; further pipelines wait for a free one).
    pub fn max_runspaces(mut self, count: u16) -> Self {
        self.max_runspaces = i32::from(count.max(1));
        self
    }

    /// The host that answers host calls (default [`NonInteractiveHost`]).
    pub fn host(mut self, host: impl Host) -> Self {
        self.host = Arc::new(host);
        self
    }

    /// `$PSSenderInfo.ApplicationArguments` on the server.
    pub fn application_arguments(mut self, arguments: Vec<(String, PsValue)>) -> Self {
        self.application_arguments = Some(arguments);
        self
    }

    /// A command to run right after the pool opens, before any other
    /// pipeline (repeatable; they run in order, and opening fails if one
    /// does not complete). Its effects (`Set-PSDebug -Trace 1`, preference
    /// variables...) last for the runspace it ran in: with one runspace
    /// (the default) that is every later pipeline.
    pub fn session_init(mut self, pipeline: impl IntoPipeline) -> Self {
        self.session_init.push(pipeline.into_pipeline());
        self
    }

    /// How many events wait for the consumer before Receives pause
    /// (default 1024).
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// Bound on opening the pool, session init excluded (default 120 s).
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// Bound on waiting for a stopped pipeline to end (default 30 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// Bound on each clean-up request: releasing a command, deleting the
    /// shell (default 30 s).
    pub fn cleanup_timeout(mut self, timeout: Duration) -> Self {
        self.cleanup_timeout = timeout;
        self
    }

    /// The shell's idle timeout on the server (`rsp:IdleTimeOut`; default:
    /// the server's).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The tracker that counts this pool's shell until it is deleted, also
    /// by the background delete after a drop (default: a tracker of its
    /// own, which nobody waits for). Wait for it before the runtime stops.
    pub fn cleanup_tracker(mut self, tracker: CleanupTracker) -> Self {
        self.cleanup = tracker;
        self
    }

    /// The largest PSRP message accepted from the server, in bytes
    /// (default 32 MiB). One message carries one output object or stream
    /// record; a larger one fails the pipeline (or the open) with
    /// [`ClientError::LimitExceeded`] before its data is buffered.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The most bytes of partial messages held at once for the pool and
    /// all its pipelines together (default: twice
    /// [`PoolOptions::max_message_size`], 64 MiB). Beyond it the pipeline
    /// whose data would not fit fails with [`ClientError::LimitExceeded`].
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = Some(bytes);
        self
    }

    /// (max runspaces, min runspaces, max message size, max buffered bytes).
    pub(super) fn sizes(&self) -> (i32, i32, usize, usize) {
        (
            self.max_runspaces.max(self.min_runspaces),
            self.min_runspaces,
            self.max_message_size,
            self.buffered_limit(),
        )
    }

    pub(super) fn host_ref(&self) -> &Arc<dyn Host> {
        &self.host
    }

    pub(super) fn tracker(&self) -> &CleanupTracker {
        &self.cleanup
    }

    pub(super) fn limits(&self) -> Limits {
        Limits {
            event_buffer: self.event_buffer,
            stop_timeout: self.stop_timeout,
            cleanup_timeout: self.cleanup_timeout,
            session_key_timeout: self.session_key_timeout,
        }
    }

    /// Bound on the SecureString session key exchange: from sending the
    /// public key to the server's ENCRYPTED_SESSION_KEY (default 60 s).
    pub fn session_key_timeout(mut self, timeout: Duration) -> Self {
        self.session_key_timeout = timeout;
        self
    }

    fn buffered_limit(&self) -> usize {
        self.max_buffered_bytes
            .unwrap_or(self.max_message_size.saturating_mul(2))
    }
}

/// A runspace pool on a remote session configuration (a WS-Man shell).
///
/// Pipelines run one after another or at the same time (up to the maximum
/// runspaces; more wait for a free runspace). The shell is deleted by
/// [`RunspacePool::close`], on errors while opening, and, when the pool,
/// its invocations and their tasks are all dropped without `close` (or the
/// `open` future is dropped), by a task spawned on the current runtime
/// (bounded by the clean-up timeout). A program about to exit should
/// `close().await`, or wait for its [`CleanupTracker`]: a runtime that
/// stops right after the drop cancels that task.
///
/// Only pipelines receive after the pool is open (no pool-level Receive
/// stays pending): a pool the server breaks later shows as failing
/// pipelines.
///
/// ```no_run
/// use psrp_core::client::{AuthMethod, Command, ConnectionOptions, RunspacePool};
///
/// # async fn run() -> Result<(), psrp_core::client::ClientError> {
/// let options = ConnectionOptions::new("win01.example.com")
///     .auth(AuthMethod::Kerberos)
///     .configuration_name("JEA.Maintenance");
/// let pool = RunspacePool::open(options).await?;
/// let result = pool
///     .invoke(Command::new("Get-ChildItem").param("Path", "C:\\Temp").switch("Force"))
///     .await?;
/// for item in result.output_json() {
///     println!("{item}");
/// }
/// for error in &result.errors {
///     eprintln!("error: {}", error.message);
/// }
/// pool.close().await?;
/// # Ok(()) }
/// ```
pub struct RunspacePool {
    pub(super) shared: Arc<Shared>,
    pub(super) endpoint: String,
    pub(super) init_results: Vec<InvocationResult>,
}

impl std::fmt::Debug for RunspacePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunspacePool")
            .field("endpoint", &self.endpoint)
            .field("configuration", &self.shared.configuration)
            .field("shell_id", &self.shared.shell.id)
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

impl RunspacePool {
    /// Opens a pool with the default [`PoolOptions`].
    pub async fn open(options: ConnectionOptions) -> Result<RunspacePool, ClientError> {
        RunspacePool::open_with(options, PoolOptions::default()).await
    }

    /// Opens a pool: WS-Man Create with the opening messages, Receive
    /// until the server reports it Opened (Broken gives
    /// [`ClientError::PoolBroken`] with the server's error record), then
    /// the session-init commands. On any failure after Create the shell
    /// is deleted before the error is returned.
    pub async fn open_with(
        connection: ConnectionOptions,
        options: PoolOptions,
    ) -> Result<RunspacePool, ClientError> {
        let runspaces = options.max_runspaces.max(options.min_runspaces);
        let max_runspaces = usize::try_from(runspaces).unwrap_or(1);
        let config = connection.to_wsman_config(max_runspaces)?;
        let endpoint = connection.endpoint();
        let client = WsmanClient::new(config)
            .map_err(|e| ClientError::wsman("creating the WS-Man client", e))?;
        let limits = options.limits();
        let id = Uuid::new_v4();
        let mut core = CorePool::new(RunspacePoolConfig {
            id,
            min_runspaces: options.min_runspaces,
            max_runspaces: runspaces,
            host_info: options.host.host_info(),
            application_arguments: options.application_arguments.clone(),
            defragment_limits: DefragmentLimits {
                max_message_size: options.max_message_size,
                max_buffered_bytes: options.buffered_limit(),
                ..DefragmentLimits::default()
            },
            ..RunspacePoolConfig::default()
        });
        let max_payload = client.max_payload_size();
        let creation_xml = core
            .open(max_payload)
            .map_err(|e| ClientError::pool("opening the runspace pool", e))?;
        let mut create = CreateShell::powershell(connection.configuration())
            .with_shell_id(id_text(id))
            .with_creation_xml(creation_xml);
        create.resource_uri = connection.resource_uri();
        if let Some(t) = options.idle_timeout {
            create = create.with_idle_timeout(t);
        }
        // From here on the shell may exist on the server. The Create runs in
        // a task of its own that hands the shell over with a guard: when
        // this future is dropped (a caller's timeout, Ctrl-C), the task
        // still sees the Create through and then deletes the shell. A
        // Delete sent while the Create is still on its way would find
        // nothing, and the Create would then leave its shell behind.
        let mut guard = ShellGuard {
            client: client.clone(),
            shell: Shell::new(id_text(id), connection.resource_uri()),
            timeout: limits.cleanup_timeout,
            armed: false,
            token: Some(options.cleanup.token()),
        };
        let (created_tx, created_rx) = tokio::sync::oneshot::channel();
        let creating = client.clone();
        tokio::spawn(async move {
            let created = match creating.create_shell(create).await {
                Ok(shell) => {
                    guard.shell = shell.clone();
                    guard.armed = true;
                    Ok(shell)
                }
                Err(e) => {
                    let err = ClientError::wsman("opening the runspace pool (WS-Man Create)", e);
                    // A refused Create (fault, credentials, TLS) created
                    // nothing, nor did one never written (the connection
                    // was refused); a connection lost while waiting for the
                    // answer, or an answer that could not be read, may have
                    // (the ShellId is ours, so it can be deleted either way).
                    guard.armed = matches!(
                        err.kind(),
                        super::ErrorKind::Connection | super::ErrorKind::Protocol
                    ) && creating.may_have_reached_server();
                    Err(err)
                }
            };
            // Nobody listening: the open was abandoned, and dropping the
            // guard deletes the shell.
            let _ = created_tx.send((guard, created));
        });
        let lost = |_| ClientError::UnexpectedResponse {
            operation: "opening the runspace pool (WS-Man Create)",
            detail: "the task sending the Create ended without a result \
                     (was the runtime shut down?)"
                .to_owned(),
        };
        let (mut guard, created) = created_rx.await.map_err(lost)?;
        // On an error, the guard deletes the shell if the Create may have
        // made one.
        let shell = created?;
        let shared = Arc::new(Shared::new(
            client,
            shell,
            connection.configuration().to_owned(),
            core,
            max_payload,
            options.host.clone(),
            max_runspaces,
            limits,
            guard.token.take(),
        ));
        // The pool deletes the shell from here on.
        guard.armed = false;
        drop(guard);
        let mut pool = RunspacePool {
            shared,
            endpoint,
            init_results: Vec::new(),
        };
        let opened = tokio::time::timeout(options.open_timeout, pool.wait_opened()).await;
        let opened = match opened {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                what: "opening the runspace pool",
                after: options.open_timeout,
            }),
        };
        if let Err(e) = opened {
            pool.cleanup_after_error().await;
            return Err(e);
        }
        for (index, spec) in options.session_init.iter().enumerate() {
            let command = describe_pipeline(&spec.powershell);
            let result = match pool.invoke(spec.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    pool.cleanup_after_error().await;
                    return Err(e);
                }
            };
            if !result.succeeded() {
                pool.cleanup_after_error().await;
                return Err(ClientError::SessionInit {
                    index,
                    command,
                    state: result.state,
                    error: result.terminating_error.map(Box::new),
                });
            }
            pool.init_results.push(result);
        }
        Ok(pool)
    }

    async fn cleanup_after_error(&self) {
        if let Err(e) = self.shared.shutdown().await {
            tracing::warn!("deleting the shell after a failed open: {e}");
        }
    }

    /// Sends the rest of the opening messages and receives on the pool
    /// until it is Opened.
    async fn wait_opened(&self) -> Result<(), ClientError> {
        const OP: &str = "opening the runspace pool (WS-Man Receive)";
        let shared = &self.shared;
        shared.flush().await?;
        let mut sequence = wsman::ReceiveSequence::new();
        loop {
            let received = shared
                .client
                .receive_sequenced(&shared.shell, None, "stdout", &mut sequence)
                .await;
            let data = match received {
                Ok(ReceiveOutcome::TimedOut) => continue,
                Ok(ReceiveOutcome::Data(d)) => d,
                Err(e) => return Err(shared.error(OP, e)),
            };
            let events = shared.feed(Target::Pool, &data, "opening the runspace pool")?;
            for event in events {
                match event {
                    PoolEvent::StateChanged {
                        state: RunspacePoolState::Opened,
                        ..
                    } => return Ok(()),
                    PoolEvent::StateChanged {
                        state: RunspacePoolState::Broken | RunspacePoolState::Closed,
                        error,
                    } => {
                        return Err(ClientError::PoolBroken {
                            configuration: shared.configuration.clone(),
                            error: error.map(Box::new),
                        })
                    }
                    PoolEvent::HostCall(call) if call.needs_response() => {
                        shared.answer_host_call(Target::Pool, &call).await?;
                    }
                    other => tracing::debug!(?other, "while opening the runspace pool"),
                }
            }
            // Opened by APPLICATION_PRIVATE_DATA (see `CorePool`): the
            // RUNSPACEPOOL_STATE that follows it is not waited for.
            if shared.core().state() == RunspacePoolState::Opened {
                return Ok(());
            }
        }
    }

    /// The runspace pool id (also the WS-Man ShellId).
    pub fn id(&self) -> Uuid {
        self.shared.core().id()
    }

    /// The WS-Man ShellId the server confirmed.
    pub fn shell_id(&self) -> &str {
        &self.shared.shell.id
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Why Negotiate authenticated with NTLM instead of Kerberos, when it
    /// did (see [`ConnectionOptions::on_ntlm_fallback`] and
    /// [`ConnectionOptions::allow_ntlm_fallback`]).
    pub fn ntlm_fallback(&self) -> Option<wsman::NtlmFallback> {
        self.shared.client.ntlm_fallback()
    }

    /// The session configuration name.
    pub fn configuration_name(&self) -> &str {
        &self.shared.configuration
    }

    /// The PSRP protocol version both sides speak.
    pub fn protocol_version(&self) -> Version {
        self.shared.core().protocol_version()
    }

    /// The server's SESSION_CAPABILITY (protocol, PowerShell and
    /// serialization versions).
    pub fn server_capability(&self) -> Option<SessionCapability> {
        self.shared.core().server_capability().cloned()
    }

    /// The server's APPLICATION_PRIVATE_DATA.
    pub fn application_private_data(&self) -> Option<ApplicationPrivateData> {
        self.shared.core().application_private_data().cloned()
    }

    /// The server's `$PSVersionTable` (from APPLICATION_PRIVATE_DATA) as
    /// JSON, e.g. `{"PSVersion": "5.1.17763.1", "PSEdition": "Desktop", …}`.
    pub fn ps_version_table(&self) -> Option<serde_json::Value> {
        let data = self.application_private_data()?;
        data.get("PSVersionTable").map(to_json)
    }

    /// Results of the session-init commands, in order.
    pub fn session_init_results(&self) -> &[InvocationResult] {
        &self.init_results
    }

    /// Whether [`RunspacePool::close`] was called (or the pool failed).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Starts a pipeline (waiting for a free runspace first) and returns
    /// its handle; read the events from it.
    ///
    /// ```no_run
    /// use psrp_core::client::{Command, Event, RunspacePool};
    /// use psrp_core::clixml::to_json;
    ///
    /// # async fn run(pool: &RunspacePool) -> Result<(), psrp_core::client::ClientError> {
    /// let mut run = pool.start(Command::new("Get-LargeOutput").param("Count", 100_000)).await?;
    /// let stop = run.stop_handle(); // e.g. for a Ctrl-C handler task
    /// while let Some(event) = run.next().await? {
    ///     match event {
    ///         Event::Output(v) => println!("{}", to_json(&v)),
    ///         Event::Warning(w) => eprintln!("WARNING: {}", w.message),
    ///         other => eprintln!("{}: {other:?}", other.stream()),
    ///     }
    /// }
    /// println!("ended {:?}", run.completion().map(|c| c.state));
    /// # let _ = stop;
    /// # Ok(()) }
    /// ```
    pub async fn start(&self, pipeline: impl IntoPipeline) -> Result<Invocation, ClientError> {
        self.start_spec(Request::Pipeline(pipeline.into_pipeline()), None)
            .await
    }

    /// Starts a pipeline and sends it `input` as pipeline input (what
    /// `$input` or a pipeline-bound parameter receives).
    pub async fn start_with_input(
        &self,
        pipeline: impl IntoPipeline,
        input: impl IntoIterator<Item = PsValue>,
    ) -> Result<Invocation, ClientError> {
        let mut spec = pipeline.into_pipeline();
        spec.no_input = false;
        self.start_spec(Request::Pipeline(spec), Some(input.into_iter().collect()))
            .await
    }

    /// Runs a pipeline to its end and collects everything it produced. A
    /// Failed pipeline is an `Ok` result with its terminating error (see
    /// [`InvocationResult::into_result`]); `Err` means the pipeline could
    /// not be run or followed.
    pub async fn invoke(
        &self,
        pipeline: impl IntoPipeline,
    ) -> Result<InvocationResult, ClientError> {
        self.start(pipeline).await?.collect().await
    }

    /// What the endpoint says about its commands (GET_COMMAND_METADATA, the
    /// message `Import-PSSession` uses): for each command whose name
    /// matches one of the wildcard `patterns` (`*` for all) and that this
    /// user may run, its name, module, type, output types and parameters
    /// (type, aliases, switch). It works on JEA (NoLanguage) endpoints,
    /// where it lists only the visible commands.
    ///
    /// ```no_run
    /// use psrp_core::client::RunspacePool;
    ///
    /// # async fn run(pool: &RunspacePool) -> Result<(), psrp_core::client::ClientError> {
    /// for command in pool.get_command_metadata(["Get-*"]).await? {
    ///     let names: Vec<&str> = command.parameters.iter().map(|p| p.name.as_str()).collect();
    ///     println!("{} ({}): {}", command.name, command.command_type.name(), names.join(", "));
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// A pipeline that fails on the server is [`ClientError::PipelineFailed`];
    /// an object that is not CommandMetadata, or fewer or more commands
    /// than the count object announced, is [`ClientError::Protocol`] or
    /// [`ClientError::UnexpectedResponse`].
    pub async fn get_command_metadata<I, S>(
        &self,
        patterns: I,
    ) -> Result<Vec<CommandMetadata>, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut request = GetCommandMetadata::new("*");
        request.names = patterns.into_iter().map(Into::into).collect();
        if request.names.is_empty() {
            request.names.push("*".to_owned());
        }
        self.get_command_metadata_with(request).await
    }

    /// [`RunspacePool::get_command_metadata`] with the whole request:
    /// command types, module (namespace) patterns, arguments.
    pub async fn get_command_metadata_with(
        &self,
        request: GetCommandMetadata,
    ) -> Result<Vec<CommandMetadata>, ClientError> {
        let result = self
            .start_spec(Request::Metadata(request), None)
            .await?
            .collect()
            .await?
            .into_result()?;
        command_metadata_from(&result.output)
    }

    /// Exchanges the SecureString session key now (PUBLIC_KEY, then the
    /// server's ENCRYPTED_SESSION_KEY), if it was not already. Pipelines
    /// with SecureString parameters do it themselves before their Command;
    /// call it to pay the cost (an RSA key pair, one round trip) up front.
    pub async fn exchange_keys(&self) -> Result<(), ClientError> {
        if self.shared.is_closed() {
            return Err(ClientError::Closed);
        }
        self.shared.session_key().await.map(|_| ())
    }

    /// Whether the SecureString session key was exchanged.
    pub fn has_session_key(&self) -> bool {
        matches!(self.shared.session_key_now(), Ok(Some(_)))
    }

    /// Decrypts a SecureString received on this pool with its session key.
    /// The only way the client reveals one: output values keep them
    /// encrypted, their Debug output and JSON (`"System.Security.SecureString"`)
    /// never show the text. The returned text is cleared from memory when
    /// dropped.
    ///
    /// ```no_run
    /// use psrp_core::client::{Command, PsValue, RunspacePool};
    ///
    /// # async fn run(pool: &RunspacePool) -> Result<(), psrp_core::client::ClientError> {
    /// let result = pool.invoke(Command::new("Get-Secret").param("Name", "db")).await?;
    /// if let Some(PsValue::SecureString(secret)) = result.output.first() {
    ///     let text = pool.decrypt(secret)?;
    ///     connect_to_database(&text);
    /// }
    /// # Ok(()) }
    /// # fn connect_to_database(_: &str) {}
    /// ```
    pub fn decrypt(&self, value: &SecureString) -> Result<zeroize::Zeroizing<String>, ClientError> {
        const OP: &str = "decrypting a SecureString";
        let key = self
            .shared
            .session_key_now()?
            .ok_or(ClientError::SessionKey {
                operation: OP,
                source: SessionKeyError::NoSessionKey,
            })?;
        value
            .decrypt(&key)
            .map_err(|source| ClientError::SessionKey {
                operation: OP,
                source,
            })
    }

    async fn start_spec(
        &self,
        request: Request,
        input: Option<Vec<PsValue>>,
    ) -> Result<Invocation, ClientError> {
        let started = self.create_command(request, input).await?;
        Ok(invocation::spawn(
            self.shared.clone(),
            started.id,
            started.command_id,
            started.command,
            started.permit,
        ))
    }

    /// Creates the pipeline on the server (WS-Man Command, then its input)
    /// without receiving anything yet.
    pub(super) async fn create_command(
        &self,
        mut request: Request,
        mut input: Option<Vec<PsValue>>,
    ) -> Result<StartedCommand, ClientError> {
        let shared = &self.shared;
        if shared.is_closed() {
            return Err(ClientError::Closed);
        }
        let unsealed = |v: &PsValue| v.contains_secure_string(&mut |s| !s.is_sealed());
        let spec_unsealed = match &request {
            Request::Pipeline(spec) => spec.has_unsealed_secure_strings(),
            Request::Metadata(_) => false,
        };
        if spec_unsealed || input.iter().flatten().any(unsealed) {
            // The session key goes before the Command that needs it.
            let key = shared.session_key().await?;
            let mut seal = |s: &mut SecureString| s.seal(&key);
            let spec_sealed = match &mut request {
                Request::Pipeline(spec) => spec.visit_secure_strings_mut(&mut seal),
                Request::Metadata(_) => Ok(()),
            };
            let sealed = spec_sealed.and_then(|()| {
                input
                    .iter_mut()
                    .flatten()
                    .try_for_each(|v| v.visit_secure_strings_mut(&mut seal))
            });
            sealed.map_err(|source| ClientError::SessionKey {
                operation: "encrypting a SecureString parameter",
                source,
            })?;
        }
        if let Request::Pipeline(spec) = &mut request {
            // A host with a UI answers the pipeline's own host calls
            // (PIPELINE_HOST_CALL, read on the pipeline's Receive) rather
            // than the pool's.
            let info = shared.host.host_info();
            if !info.is_host_null && spec.host_info == crate::host::HostInfo::default() {
                spec.host_info = info;
            }
        }
        // Commands that ended on their own are released now, before this
        // one, so that at most a pool's worth of them waits on the server.
        shared.release_finished().await;
        let command = request.describe();
        let permit = shared
            .runspaces
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Closed)?;
        // Nothing of this pipeline may go out before its Command.
        let sending = shared.send_lock.lock().await;
        let new = match request {
            Request::Pipeline(spec) => shared.core().create_pipeline(spec, shared.max_payload),
            Request::Metadata(m) => shared.core().get_command_metadata(m, shared.max_payload),
        }
        .map_err(|e| ClientError::pool("creating the pipeline", e))?;
        let id = new.id;
        // Until the receive task owns it, a failure or a dropped future
        // releases the command.
        let mut pending = PendingCommand {
            shared: shared.clone(),
            id,
            command_id: None,
        };
        let command_id = shared
            .client
            .command(
                &shared.shell,
                CommandRequest::psrp(id_text(id), &new.command_arguments),
            )
            .await
            .map_err(|e| shared.error("starting the pipeline (WS-Man Command)", e))?;
        pending.command_id = Some(command_id.clone());
        shared.set_command_id(id, command_id.clone());
        if let Some(values) = input {
            let mut core = shared.core();
            for v in values {
                core.send_input(id, v)
                    .map_err(|e| ClientError::pool("sending pipeline input", e))?;
            }
            core.end_input(id)
                .map_err(|e| ClientError::pool("sending pipeline input", e))?;
        }
        shared.flush_locked().await?;
        drop(sending);
        pending.command_id = None;
        pending.id = Uuid::nil();
        Ok(StartedCommand {
            id,
            command_id,
            command,
            permit,
        })
    }

    /// Deletes the shell (WS-Man Delete, bounded by the clean-up timeout):
    /// the server stops and removes everything of this pool. Pipelines
    /// still running end with [`ClientError::Closed`], later calls fail
    /// with it; closing again does nothing.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.shared.shutdown().await
    }
}

/// What a new pipeline carries: a CREATE_PIPELINE or a GET_COMMAND_METADATA.
pub(super) enum Request {
    Pipeline(CreatePipeline),
    Metadata(GetCommandMetadata),
}

impl Request {
    /// The pipeline as one line of text, for messages.
    fn describe(&self) -> String {
        match self {
            Request::Pipeline(spec) => describe_pipeline(&spec.powershell),
            Request::Metadata(m) => format!("GET_COMMAND_METADATA {}", m.names.join(",")),
        }
    }
}

/// The commands of a GET_COMMAND_METADATA reply: the count object first
/// (MS-PSRP 2.2.3.21), then exactly that many CommandMetadata objects.
fn command_metadata_from(output: &[PsValue]) -> Result<Vec<CommandMetadata>, ClientError> {
    const OPERATION: &str = "reading the command metadata";
    let protocol = |e| ClientError::Protocol {
        operation: OPERATION,
        source: PoolError::Message(e),
    };
    let unexpected = |detail: String| ClientError::UnexpectedResponse {
        operation: OPERATION,
        detail,
    };
    let mut objects = output.iter();
    let count = match objects.next().map(CommandMetadataReply::from_value) {
        Some(Ok(CommandMetadataReply::Count(n))) => n,
        Some(Ok(CommandMetadataReply::Command(c))) => {
            return Err(unexpected(format!(
                "the reply starts with the command {:?} instead of the count object",
                c.name
            )))
        }
        Some(Err(e)) => return Err(protocol(e)),
        None => return Err(unexpected("the reply has no count object".to_owned())),
    };
    let mut commands = Vec::new();
    for value in objects {
        match CommandMetadataReply::from_value(value).map_err(protocol)? {
            CommandMetadataReply::Command(c) => commands.push(c),
            CommandMetadataReply::Count(_) => {
                return Err(unexpected("a second count object in the reply".to_owned()))
            }
        }
    }
    if i64::try_from(commands.len()).ok() != Some(count) {
        return Err(unexpected(format!(
            "the count object announced {count} commands but {} came",
            commands.len()
        )));
    }
    Ok(commands)
}

/// A pipeline running on the server whose output nobody receives yet.
pub(super) struct StartedCommand {
    pub(super) id: Uuid,
    pub(super) command_id: String,
    pub(super) command: String,
    pub(super) permit: tokio::sync::OwnedSemaphorePermit,
}

/// A pipeline created locally whose receive task does not exist yet.
struct PendingCommand {
    shared: Arc<Shared>,
    id: Uuid,
    command_id: Option<String>,
}

impl Drop for PendingCommand {
    fn drop(&mut self) {
        if self.id.is_nil() {
            return;
        }
        self.shared.forget_pipeline(self.id);
        let Some(command_id) = self.command_id.take() else {
            return;
        };
        let shared = self.shared.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { shared.release_command(&command_id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::list;

    #[test]
    fn pipelines_are_described_in_one_line() {
        let ps = PowerShell::new(
            Command::new("Get-ChildItem")
                .param("Path", "C:\\")
                .switch("Force")
                .arg("x"),
        )
        .pipe(Command::new("Select-Object").param("First", list([1])))
        .statement(Command::script("Get-Date\nmore lines"));
        assert_eq!(
            describe_pipeline(&ps),
            "Get-ChildItem -Path -Force | Select-Object -First; {Get-Date…}"
        );
        let spec = Command::new("Get-Date").into_pipeline();
        assert!(spec.no_input);
        assert_eq!(describe_pipeline(&spec.powershell), "Get-Date");
    }

    #[test]
    fn command_metadata_replies_are_checked_against_their_count() {
        use crate::message::values::ObjBuilder;
        let count = |n: i32| ObjBuilder::new().note("Count", n).build();
        let command = |name: &str| ObjBuilder::new().note("Name", name).build();
        let names = |r: Result<Vec<CommandMetadata>, ClientError>| -> Vec<String> {
            r.unwrap().into_iter().map(|c| c.name).collect()
        };
        assert_eq!(
            names(command_metadata_from(&[
                count(2),
                command("A"),
                command("B")
            ])),
            ["A", "B"]
        );
        assert!(command_metadata_from(&[count(0)]).unwrap().is_empty());
        let error = |output: &[PsValue]| command_metadata_from(output).unwrap_err().to_string();
        assert!(error(&[]).contains("no count object"));
        assert!(error(&[count(3), command("A")]).contains("announced 3 commands but 1 came"));
        assert!(error(&[command("A")]).contains("starts with the command \"A\""));
        assert!(error(&[count(1), count(1)]).contains("a second count object"));
        assert!(matches!(
            command_metadata_from(&[count(1), PsValue::I32(7)]),
            Err(ClientError::Protocol { .. })
        ));
    }

    /// Compiles only if the client's futures can move between threads
    /// (tokio::spawn, JoinSet).
    #[allow(dead_code)]
    fn futures_are_send(pool: &RunspacePool, run: &mut Invocation) {
        fn send<T: Send>(_: T) {}
        send(RunspacePool::open(ConnectionOptions::new("h")));
        send(pool.invoke(Command::new("Get-Date")));
        send(pool.start_with_input(Command::new("Write-Output"), [PsValue::Null]));
        send(pool.close());
        send(run.next());
        send(run.stop_handle().stop());
    }
}
