//! The client runspace pool as a sans-IO state machine: bytes in, events
//! out, payloads to send out. No I/O, no async, no clock: the caller moves
//! the bytes over WS-Man.
//!
//! How each piece maps to WS-Man (MS-PSRP 3.1.5.3):
//!
//! | state machine | WS-Man operation |
//! |---|---|
//! | [`RunspacePool::open`] result | `Create` shell, as base64 in `<creationXml>` |
//! | [`NewPipeline::command_arguments`] | `Command` with `CommandId` = the pipeline id, as base64 in `<rsp:Arguments>` |
//! | [`RunspacePool::data_to_send`] payloads | `Send`, stream [`Payload::stream`] (`stdin` or `pr`), `CommandId` = [`Payload::command_id`] (absent for the pool) |
//! | [`RunspacePool::receive`] input | `Receive` response `stdout` streams (base64-decoded, in order); pool-level Receive has no `CommandId` |
//! | a pipeline's terminal [`PipelineEvent::StateChanged`] | stop receiving for it; `Signal` terminate, then [`RunspacePool::close_pipeline`] |
//! | [`RunspacePool::close`] | after `Delete` of the shell |
//!
//! ```
//! use psrp_core::command::{Command, CreatePipeline, PowerShell};
//! use psrp_core::pool::{RunspacePool, RunspacePoolConfig, Target};
//!
//! let mut pool = RunspacePool::new(RunspacePoolConfig::default());
//! // Create the shell with this as creationXml (SESSION_CAPABILITY and
//! // INIT_RUNSPACEPOOL, 32 KiB at most per payload here).
//! let creation_xml: Vec<u8> = pool.open(32 * 1024).unwrap();
//! assert!(!creation_xml.is_empty());
//! // Anything that did not fit goes by Send to the pool.
//! while let Some(payload) = pool.data_to_send(32 * 1024).unwrap() {
//!     assert_eq!(payload.target, Target::Pool);
//! }
//! // Then Receive on the pool and feed what arrives:
//! // pool.receive(Target::Pool, &bytes)?; while let Some(ev) = pool.next_event()? { … }
//! // until PoolEvent::StateChanged { state: Opened, .. }.
//! ```

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

use crate::clixml::{PsValue, Version};
use crate::command::{CommandError, CreatePipeline};
use crate::fragment::{
    DefragmentError, DefragmentLimits, Defragmenter, OutgoingMessage, ReassemblyBudget,
    MIN_FRAGMENT_SIZE,
};
use crate::host::{HostCall, HostInfo, HostResponse};
use crate::message::{
    ApartmentState, ApplicationPrivateData, Availability, CallId, ConnectRunspacePool, Destination,
    ErrorRecord, GetCommandMetadata, InitRunspacePool, KeyBlob, Message, MessageError, MessageType,
    PipelineState, PsThreadOptions, RawMessage, RunspaceAvailability, RunspacePoolInitData,
    RunspacePoolState, SessionCapability, SetRunspaces, UserEvent, PROTOCOL_2_3,
};
use crate::pipeline::{PipelineEntry, PipelineEvent};

/// How a runspace pool is opened.
#[derive(Clone, Debug)]
pub struct RunspacePoolConfig {
    /// The pool id (PowerShell clients also use it as the WS-Man ShellId).
    pub id: Uuid,
    /// Minimum runspaces.
    pub min_runspaces: i32,
    /// Maximum runspaces: how many pipelines may run at the same time.
    pub max_runspaces: i32,
    /// Thread options.
    pub thread_options: PsThreadOptions,
    /// Apartment state.
    pub apartment_state: ApartmentState,
    /// The client host as declared to the server.
    pub host_info: HostInfo,
    /// `$PSSenderInfo.ApplicationArguments` on the server.
    pub application_arguments: Option<Vec<(String, PsValue)>>,
    /// What this client announces in SESSION_CAPABILITY.
    pub capability: SessionCapability,
    /// Limits on what the server may send (message sizes, interleaving).
    /// `max_buffered_bytes` is one budget for the whole pool: partial
    /// messages of the pool and of all its pipelines together.
    pub defragment_limits: DefragmentLimits,
}

impl Default for RunspacePoolConfig {
    fn default() -> Self {
        RunspacePoolConfig {
            id: Uuid::new_v4(),
            min_runspaces: 1,
            max_runspaces: 1,
            thread_options: PsThreadOptions::Default,
            apartment_state: ApartmentState::Unknown,
            host_info: HostInfo::default(),
            application_arguments: None,
            capability: SessionCapability::default(),
            defragment_limits: DefragmentLimits::default(),
        }
    }
}

/// What a payload belongs to: the pool itself (WS-Man operations without
/// `CommandId`) or one pipeline (`CommandId` = the pipeline id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The runspace pool.
    Pool,
    /// A pipeline, by id.
    Pipeline(Uuid),
}

impl Target {
    /// The WS-Man `CommandId`, if any.
    pub fn command_id(self) -> Option<Uuid> {
        match self {
            Target::Pool => None,
            Target::Pipeline(id) => Some(id),
        }
    }
}

/// The WS-Man input stream a payload is sent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// `stdin`: everything but host responses.
    Stdin,
    /// `pr` (prompt response): host responses.
    PromptResponse,
}

impl Stream {
    /// The stream name as WS-Man writes it.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::PromptResponse => "pr",
        }
    }
}

/// Fragments to send with one WS-Man `Send`.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    /// The pool or the pipeline it is for.
    pub target: Target,
    /// The input stream.
    pub stream: Stream,
    /// The fragment bytes (base64 them into `<rsp:Stream>`).
    pub data: Vec<u8>,
}

impl Payload {
    /// The WS-Man `CommandId` attribute, absent for the pool.
    pub fn command_id(&self) -> Option<Uuid> {
        self.target.command_id()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Payloads can carry secrets (SecureString parameters): no bytes.
        f.debug_struct("Payload")
            .field("target", &self.target)
            .field("stream", &self.stream)
            .field("len", &self.data.len())
            .finish()
    }
}

/// A pipeline just created: its id and the first fragment of its
/// CREATE_PIPELINE for the WS-Man `Command`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPipeline {
    /// The pipeline id: use it as the `CommandId` of the `Command`.
    pub id: Uuid,
    /// The first fragment, for `<rsp:Arguments>`. The rest (if the message
    /// did not fit) is queued for [`RunspacePool::data_to_send`].
    pub command_arguments: Vec<u8>,
}

impl std::fmt::Debug for NewPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPipeline")
            .field("id", &self.id)
            .field("command_arguments_len", &self.command_arguments.len())
            .finish()
    }
}

/// Something the pool reported.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolEvent {
    /// The server's SESSION_CAPABILITY: its protocol version decides
    /// which features can be used.
    SessionCapability(SessionCapability),
    /// APPLICATION_PRIVATE_DATA (the server's PSVersionTable...).
    ApplicationPrivateData(ApplicationPrivateData),
    /// The pool changed state: Opened, Broken (with the reason) or Closed.
    StateChanged {
        /// The new state.
        state: RunspacePoolState,
        /// Why, for Broken.
        error: Option<ErrorRecord>,
    },
    /// RUNSPACEPOOL_INIT_DATA (on connect).
    InitData(RunspacePoolInitData),
    /// Answer to set max/min runspaces, get available runspaces or reset
    /// runspace state.
    RunspaceAvailability(RunspaceAvailability),
    /// A pool-level host call; answer with [`RunspacePool::host_response`]
    /// and [`Target::Pool`] when it needs a response.
    HostCall(HostCall),
    /// An event forwarded from the server.
    UserEvent(UserEvent),
    /// The server asks for the client's public key (older servers, before
    /// sending a SecureString).
    PublicKeyRequest,
    /// The session key, encrypted with the client's public key.
    EncryptedSessionKey(KeyBlob),
    /// Something a pipeline reported.
    Pipeline(Uuid, PipelineEvent),
}

/// Why the runspace pool could not do what was asked, or what the server
/// sent makes no sense.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// A SecureString made from plaintext was not encrypted with the
    /// session key before sending ([`crate::clixml::SecureString::seal`]).
    #[error(
        "a SecureString parameter or input is not encrypted yet: exchange the session key and \
         seal it before sending"
    )]
    UnsealedSecureString,
    /// The operation is not possible in the pool's current state.
    #[error("cannot {operation}: the runspace pool is {state}")]
    InvalidState {
        /// What was attempted.
        operation: &'static str,
        /// The pool's state.
        state: String,
    },
    /// The operation is not possible in the pipeline's current state.
    #[error("cannot {operation}: pipeline {id} is {state}")]
    PipelineInvalidState {
        /// What was attempted.
        operation: &'static str,
        /// The pipeline.
        id: Uuid,
        /// Its state.
        state: String,
    },
    /// No pipeline with this id belongs to the pool.
    #[error("pipeline {0} does not belong to this runspace pool (closed, or never created)")]
    UnknownPipeline(Uuid),
    /// The fragments received for a target are corrupt; the stream cannot
    /// be trusted any more.
    #[error("bad fragment stream from the server for {target:?}: {source}")]
    Defragment {
        /// Where the bytes came from.
        target: Target,
        /// What was wrong.
        source: DefragmentError,
    },
    /// A message could not be read.
    #[error("bad message from the server: {0}")]
    Message(#[from] MessageError),
    /// A message that the server should not send, or sent to the wrong place.
    #[error("unexpected {message_type} from the server {detail}")]
    UnexpectedMessage {
        /// The message.
        message_type: MessageType,
        /// What is wrong with it.
        detail: String,
    },
    /// The message belongs to another runspace pool.
    #[error("message for runspace pool {got} arrived at pool {expected}")]
    WrongRunspacePool {
        /// This pool.
        expected: Uuid,
        /// The message's pool.
        got: Uuid,
    },
    /// The server speaks a protocol this client does not.
    #[error("the server speaks PSRP protocol {server}; this client needs 2.x")]
    IncompatibleProtocol {
        /// The server's version.
        server: Version,
    },
    /// A feature the server's protocol version lacks.
    #[error("{operation} needs PSRP protocol {needs}; the server speaks {server}")]
    ProtocolTooOld {
        /// What was attempted.
        operation: &'static str,
        /// The version needed.
        needs: Version,
        /// The server's version.
        server: Version,
    },
    /// The pipeline cannot be expressed for this server.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A payload size below the minimum fragment size.
    #[error("payload size {0} is too small: a fragment needs at least {MIN_FRAGMENT_SIZE} bytes")]
    PayloadTooSmall(usize),
}

#[derive(Debug)]
struct Queued {
    target: Target,
    stream: Stream,
    message: OutgoingMessage,
}

#[derive(Clone, Copy, Debug)]
enum PendingCall {
    SetMax(i32),
    SetMin(i32),
    Other,
}

/// A client runspace pool and its pipelines.
#[derive(Debug)]
pub struct RunspacePool {
    config: RunspacePoolConfig,
    state: RunspacePoolState,
    server_capability: Option<SessionCapability>,
    application_private_data: Option<ApplicationPrivateData>,
    min_runspaces: i32,
    max_runspaces: i32,
    next_object_id: u64,
    send_queue: VecDeque<Queued>,
    defragmenter: Defragmenter,
    /// Bytes held by partial messages of the pool and all its pipelines.
    budget: ReassemblyBudget,
    pipelines: HashMap<Uuid, PipelineEntry>,
    received: VecDeque<Vec<u8>>,
    next_call_id: i64,
    pending_calls: HashMap<i64, PendingCall>,
}

impl RunspacePool {
    /// A pool in state BeforeOpen.
    pub fn new(config: RunspacePoolConfig) -> Self {
        RunspacePool {
            state: RunspacePoolState::BeforeOpen,
            server_capability: None,
            application_private_data: None,
            min_runspaces: config.min_runspaces,
            max_runspaces: config.max_runspaces,
            next_object_id: 1,
            send_queue: VecDeque::new(),
            defragmenter: Defragmenter::with_limits(config.defragment_limits),
            budget: ReassemblyBudget::new(config.defragment_limits.max_buffered_bytes),
            pipelines: HashMap::new(),
            received: VecDeque::new(),
            next_call_id: 1,
            pending_calls: HashMap::new(),
            config,
        }
    }

    /// The pool id.
    pub fn id(&self) -> Uuid {
        self.config.id
    }

    /// The pool's state.
    pub fn state(&self) -> RunspacePoolState {
        self.state
    }

    /// The server's SESSION_CAPABILITY, once received.
    pub fn server_capability(&self) -> Option<&SessionCapability> {
        self.server_capability.as_ref()
    }

    /// The protocol version both sides speak: the lower of ours and the
    /// server's (ours until the server's is known).
    pub fn protocol_version(&self) -> Version {
        let ours = self.config.capability.protocol_version;
        match &self.server_capability {
            Some(s) if s.protocol_version < ours => s.protocol_version,
            _ => ours,
        }
    }

    /// The server's APPLICATION_PRIVATE_DATA, once received.
    pub fn application_private_data(&self) -> Option<&ApplicationPrivateData> {
        self.application_private_data.as_ref()
    }

    /// Minimum runspaces, as last confirmed by the server.
    pub fn min_runspaces(&self) -> i32 {
        self.min_runspaces
    }

    /// Maximum runspaces, as last confirmed by the server.
    pub fn max_runspaces(&self) -> i32 {
        self.max_runspaces
    }

    /// A pipeline's state, if it belongs to the pool.
    pub fn pipeline_state(&self, id: Uuid) -> Option<PipelineState> {
        self.pipelines.get(&id).map(|p| p.state)
    }

    /// Ids of the pipelines the pool tracks.
    pub fn pipeline_ids(&self) -> Vec<Uuid> {
        self.pipelines.keys().copied().collect()
    }

    /// Whether payloads are waiting for [`RunspacePool::data_to_send`].
    pub fn has_data_to_send(&self) -> bool {
        !self.send_queue.is_empty()
    }

    fn invalid(&self, operation: &'static str) -> PoolError {
        PoolError::InvalidState {
            operation,
            state: self.state.name(),
        }
    }

    fn require_opened(&self, operation: &'static str) -> Result<(), PoolError> {
        if self.state == RunspacePoolState::Opened {
            Ok(())
        } else {
            Err(self.invalid(operation))
        }
    }

    fn queue(
        &mut self,
        message: &Message,
        target: Target,
        stream: Stream,
    ) -> Result<(), PoolError> {
        let raw = message.to_raw(self.config.id, target.command_id())?;
        let outgoing = OutgoingMessage::new(self.next_object_id, raw.encode());
        self.next_object_id += 1;
        self.send_queue.push_back(Queued {
            target,
            stream,
            message: outgoing,
        });
        Ok(())
    }

    /// Starts opening the pool: returns the `creationXml` bytes for the
    /// WS-Man `Create` (SESSION_CAPABILITY and INIT_RUNSPACEPOOL, packed, at
    /// most `max_payload` bytes). What does not fit is queued for
    /// [`RunspacePool::data_to_send`] (pool `Send` after the `Create`).
    pub fn open(&mut self, max_payload: usize) -> Result<Vec<u8>, PoolError> {
        if self.state != RunspacePoolState::BeforeOpen {
            return Err(self.invalid("open the runspace pool"));
        }
        if max_payload < MIN_FRAGMENT_SIZE {
            return Err(PoolError::PayloadTooSmall(max_payload));
        }
        let init = InitRunspacePool {
            min_runspaces: self.config.min_runspaces,
            max_runspaces: self.config.max_runspaces,
            thread_options: self.config.thread_options,
            apartment_state: self.config.apartment_state,
            host_info: self.config.host_info.clone(),
            application_arguments: self.config.application_arguments.clone(),
        };
        self.queue(
            &Message::SessionCapability(self.config.capability.clone()),
            Target::Pool,
            Stream::Stdin,
        )?;
        self.queue(
            &Message::InitRunspacePool(init),
            Target::Pool,
            Stream::Stdin,
        )?;
        self.state = RunspacePoolState::Opening;
        let first = self
            .data_to_send(max_payload)?
            .map(|p| p.data)
            .unwrap_or_default();
        Ok(first)
    }

    /// Starts connecting to a disconnected pool on the server (its id is
    /// the config's id, the ShellId): returns the `connectXml` bytes for the
    /// WS-Man `Connect` (SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL). The
    /// pool is Opened once the server's RUNSPACEPOOL_INIT_DATA (from the
    /// `connectResponseXml`) is received.
    pub fn connect(&mut self, max_payload: usize) -> Result<Vec<u8>, PoolError> {
        if self.state != RunspacePoolState::BeforeOpen {
            return Err(self.invalid("connect to the runspace pool"));
        }
        if max_payload < MIN_FRAGMENT_SIZE {
            return Err(PoolError::PayloadTooSmall(max_payload));
        }
        self.queue(
            &Message::SessionCapability(self.config.capability.clone()),
            Target::Pool,
            Stream::Stdin,
        )?;
        self.queue(
            &Message::ConnectRunspacePool(ConnectRunspacePool::default()),
            Target::Pool,
            Stream::Stdin,
        )?;
        self.state = RunspacePoolState::Connecting;
        let mut first = Vec::new();
        while let Some(p) = self.data_to_send(max_payload)? {
            if first.len() + p.data.len() > max_payload {
                return Err(PoolError::PayloadTooSmall(max_payload));
            }
            first.extend_from_slice(&p.data);
        }
        Ok(first)
    }

    /// Tracks a pipeline that runs on the server already (created by an
    /// earlier client of a pool connected with [`RunspacePool::connect`]),
    /// so that its output can be received.
    pub fn attach_pipeline(&mut self, id: Uuid) -> Result<(), PoolError> {
        self.require_opened("attach to a pipeline")?;
        if self.pipelines.contains_key(&id) {
            return Err(PoolError::PipelineInvalidState {
                operation: "attach to a pipeline",
                id,
                state: "already tracked".to_owned(),
            });
        }
        self.pipelines.insert(
            id,
            PipelineEntry {
                state: PipelineState::Running,
                no_input: true,
                input_ended: true,
                defragmenter: Defragmenter::with_limits(self.config.defragment_limits),
            },
        );
        Ok(())
    }

    /// The next fragments to send, at most `max_payload` bytes, all for one
    /// target and stream (several small messages share a payload; a large
    /// one continues in the next). `None` when nothing is queued.
    pub fn data_to_send(&mut self, max_payload: usize) -> Result<Option<Payload>, PoolError> {
        if max_payload < MIN_FRAGMENT_SIZE {
            return Err(PoolError::PayloadTooSmall(max_payload));
        }
        let Some(first) = self.send_queue.front() else {
            return Ok(None);
        };
        let (target, stream) = (first.target, first.stream);
        let mut data = Vec::new();
        while let Some(q) = self.send_queue.front_mut() {
            if q.target != target || q.stream != stream {
                break;
            }
            let room = max_payload - data.len();
            if q.message.write_fragment(&mut data, room) == 0 {
                break;
            }
            if q.message.is_done() {
                self.send_queue.pop_front();
            }
        }
        Ok(Some(Payload {
            target,
            stream,
            data,
        }))
    }

    /// Creates a pipeline running `spec` with a new id. Returns the id and
    /// the first CREATE_PIPELINE fragment (at most `max_fragment` bytes)
    /// for the WS-Man `Command`; the rest is queued for `Send`.
    pub fn create_pipeline(
        &mut self,
        spec: CreatePipeline,
        max_fragment: usize,
    ) -> Result<NewPipeline, PoolError> {
        self.create_pipeline_with_id(Uuid::new_v4(), spec, max_fragment)
    }

    /// Like [`RunspacePool::create_pipeline`] with a chosen id.
    pub fn create_pipeline_with_id(
        &mut self,
        id: Uuid,
        spec: CreatePipeline,
        max_fragment: usize,
    ) -> Result<NewPipeline, PoolError> {
        if spec.has_unsealed_secure_strings() {
            return Err(PoolError::UnsealedSecureString);
        }
        let no_input = spec.no_input;
        let protocol = self.protocol_version();
        self.start_pipeline(
            id,
            Message::CreatePipeline(spec, protocol),
            no_input,
            max_fragment,
        )
    }

    /// Creates a GET_COMMAND_METADATA pipeline: its output is a count
    /// object followed by one CommandMetadata object per command.
    pub fn get_command_metadata(
        &mut self,
        request: GetCommandMetadata,
        max_fragment: usize,
    ) -> Result<NewPipeline, PoolError> {
        self.start_pipeline(
            Uuid::new_v4(),
            Message::GetCommandMetadata(request),
            true,
            max_fragment,
        )
    }

    fn start_pipeline(
        &mut self,
        id: Uuid,
        message: Message,
        no_input: bool,
        max_fragment: usize,
    ) -> Result<NewPipeline, PoolError> {
        self.require_opened("create a pipeline")?;
        if max_fragment < MIN_FRAGMENT_SIZE {
            return Err(PoolError::PayloadTooSmall(max_fragment));
        }
        if self.pipelines.contains_key(&id) {
            return Err(PoolError::PipelineInvalidState {
                operation: "create a pipeline with this id",
                id,
                state: "already created".to_owned(),
            });
        }
        let raw = message.to_raw(self.config.id, Some(id))?;
        let mut outgoing = OutgoingMessage::new(self.next_object_id, raw.encode());
        self.next_object_id += 1;
        let mut command_arguments = Vec::new();
        outgoing.write_fragment(&mut command_arguments, max_fragment);
        if !outgoing.is_done() {
            self.send_queue.push_back(Queued {
                target: Target::Pipeline(id),
                stream: Stream::Stdin,
                message: outgoing,
            });
        }
        self.pipelines.insert(
            id,
            PipelineEntry {
                state: PipelineState::Running,
                no_input,
                input_ended: no_input,
                defragmenter: Defragmenter::with_limits(self.config.defragment_limits),
            },
        );
        Ok(NewPipeline {
            id,
            command_arguments,
        })
    }

    fn running_pipeline(
        &self,
        id: Uuid,
        operation: &'static str,
    ) -> Result<&PipelineEntry, PoolError> {
        let p = self
            .pipelines
            .get(&id)
            .ok_or(PoolError::UnknownPipeline(id))?;
        if p.state != PipelineState::Running {
            return Err(PoolError::PipelineInvalidState {
                operation,
                id,
                state: p.state.name(),
            });
        }
        Ok(p)
    }

    /// Queues one input object for a pipeline created with `no_input` false.
    pub fn send_input(&mut self, id: Uuid, value: PsValue) -> Result<(), PoolError> {
        if value.contains_secure_string(&mut |s| !s.is_sealed()) {
            return Err(PoolError::UnsealedSecureString);
        }
        let p = self.running_pipeline(id, "send pipeline input")?;
        if p.input_ended {
            return Err(PoolError::PipelineInvalidState {
                operation: "send pipeline input",
                id,
                state: if p.no_input {
                    "created with NoInput".to_owned()
                } else {
                    "past the end of its input".to_owned()
                },
            });
        }
        self.queue(
            &Message::PipelineInput(value),
            Target::Pipeline(id),
            Stream::Stdin,
        )
    }

    /// Queues END_OF_PIPELINE_INPUT: the pipeline gets no more input.
    pub fn end_input(&mut self, id: Uuid) -> Result<(), PoolError> {
        let p = self.running_pipeline(id, "end pipeline input")?;
        if p.input_ended {
            return Err(PoolError::PipelineInvalidState {
                operation: "end pipeline input",
                id,
                state: "past the end of its input".to_owned(),
            });
        }
        self.queue(
            &Message::EndOfPipelineInput,
            Target::Pipeline(id),
            Stream::Stdin,
        )?;
        if let Some(p) = self.pipelines.get_mut(&id) {
            p.input_ended = true;
        }
        Ok(())
    }

    /// Queues the answer to a host call, on the `pr` stream of the pool
    /// ([`Target::Pool`]) or of the pipeline that made the call.
    pub fn host_response(
        &mut self,
        target: Target,
        response: HostResponse,
    ) -> Result<(), PoolError> {
        let message = match target {
            Target::Pool => {
                self.require_opened("answer a host call")?;
                Message::RunspacePoolHostResponse(response)
            }
            Target::Pipeline(id) => {
                self.running_pipeline(id, "answer a host call")?;
                Message::PipelineHostResponse(response)
            }
        };
        self.queue(&message, target, Stream::PromptResponse)
    }

    /// Marks a running pipeline as stopping; send the WS-Man `Signal`
    /// `powershell/signal/crtl_c` and keep receiving until its Stopped state.
    pub fn begin_stop(&mut self, id: Uuid) -> Result<(), PoolError> {
        let p = self
            .pipelines
            .get_mut(&id)
            .ok_or(PoolError::UnknownPipeline(id))?;
        if p.state == PipelineState::Running {
            p.state = PipelineState::Stopping;
        }
        Ok(())
    }

    /// Forgets a pipeline (after its terminal state and the WS-Man
    /// `Signal` terminate). Queued payloads for it are dropped.
    pub fn close_pipeline(&mut self, id: Uuid) -> Result<(), PoolError> {
        let entry = self
            .pipelines
            .remove(&id)
            .ok_or(PoolError::UnknownPipeline(id))?;
        self.budget.release(entry.defragmenter.held_bytes());
        self.send_queue.retain(|q| q.target != Target::Pipeline(id));
        Ok(())
    }

    /// Bytes held by partial messages from the server, for the pool and
    /// all its pipelines, and their limit
    /// ([`DefragmentLimits::max_buffered_bytes`]).
    pub fn reassembly_budget(&self) -> ReassemblyBudget {
        self.budget
    }

    fn call(
        &mut self,
        message: impl FnOnce(i64) -> Message,
        pending: PendingCall,
    ) -> Result<i64, PoolError> {
        let ci = self.next_call_id;
        self.queue(&message(ci), Target::Pool, Stream::Stdin)?;
        self.next_call_id += 1;
        self.pending_calls.insert(ci, pending);
        Ok(ci)
    }

    /// Asks the server to change the maximum runspaces; returns the call id
    /// the RUNSPACE_AVAILABILITY answer will carry.
    pub fn set_max_runspaces(&mut self, count: i32) -> Result<i64, PoolError> {
        self.require_opened("set the maximum runspaces")?;
        self.call(
            |ci| Message::SetMaxRunspaces(SetRunspaces { count, call_id: ci }),
            PendingCall::SetMax(count),
        )
    }

    /// Asks the server to change the minimum runspaces.
    pub fn set_min_runspaces(&mut self, count: i32) -> Result<i64, PoolError> {
        self.require_opened("set the minimum runspaces")?;
        self.call(
            |ci| Message::SetMinRunspaces(SetRunspaces { count, call_id: ci }),
            PendingCall::SetMin(count),
        )
    }

    /// Asks how many runspaces are free.
    pub fn get_available_runspaces(&mut self) -> Result<i64, PoolError> {
        self.require_opened("get the available runspaces")?;
        self.call(
            |ci| Message::GetAvailableRunspaces(CallId { call_id: ci }),
            PendingCall::Other,
        )
    }

    /// Resets the runspace state (variables...) of the pool (protocol 2.3).
    pub fn reset_runspace_state(&mut self) -> Result<i64, PoolError> {
        self.require_opened("reset the runspace state")?;
        let server = self.protocol_version();
        if server < PROTOCOL_2_3 {
            return Err(PoolError::ProtocolTooOld {
                operation: "resetting the runspace state",
                needs: PROTOCOL_2_3,
                server,
            });
        }
        self.call(
            |ci| Message::ResetRunspaceState(CallId { call_id: ci }),
            PendingCall::Other,
        )
    }

    /// Sends the client's public key (base64 CAPI PUBLICKEYBLOB) to start
    /// the session key exchange for SecureStrings.
    pub fn send_public_key(&mut self, public_key: KeyBlob) -> Result<(), PoolError> {
        self.require_opened("send the public key")?;
        self.queue(&Message::PublicKey(public_key), Target::Pool, Stream::Stdin)
    }

    /// Marks the pool closed, after the shell was deleted. Pending payloads
    /// and pipelines are dropped.
    pub fn close(&mut self) {
        self.state = RunspacePoolState::Closed;
        self.send_queue.clear();
        for (_, entry) in self.pipelines.drain() {
            self.budget.release(entry.defragmenter.held_bytes());
        }
        self.received.clear();
    }

    /// Feeds bytes from a WS-Man `Receive`: `target` is the pool for a
    /// Receive without CommandId, else the pipeline whose CommandId it had.
    /// Complete messages are kept for [`RunspacePool::next_event`]. An
    /// error means the stream for that target is corrupt, or a memory
    /// limit was hit ([`DefragmentError::is_limit`]); partial messages of
    /// the pool and all its pipelines share one
    /// [`DefragmentLimits::max_buffered_bytes`].
    pub fn receive(&mut self, target: Target, data: &[u8]) -> Result<(), PoolError> {
        let mut done = Vec::new();
        let budget = &mut self.budget;
        let result = match target {
            Target::Pool => self.defragmenter.push_into_budget(data, &mut done, budget),
            Target::Pipeline(id) => self
                .pipelines
                .get_mut(&id)
                .ok_or(PoolError::UnknownPipeline(id))?
                .defragmenter
                .push_into_budget(data, &mut done, budget),
        };
        self.received.extend(done);
        result.map_err(|source| PoolError::Defragment { target, source })
    }

    /// The next event from received messages; `None` when all received
    /// messages are processed. An error concerns one message only: the
    /// following ones can still be read.
    pub fn next_event(&mut self) -> Result<Option<PoolEvent>, PoolError> {
        let Some(bytes) = self.received.pop_front() else {
            return Ok(None);
        };
        let raw = RawMessage::decode_owned(bytes).map_err(MessageError::from)?;
        if raw.destination != Destination::Client {
            return Err(PoolError::UnexpectedMessage {
                message_type: raw.message_type,
                detail: "addressed to the server".to_owned(),
            });
        }
        // Windows leaves the pool id zero in some messages
        // (ENCRYPTED_SESSION_KEY); any other id is a crossed wire.
        if !raw.runspace_pool_id.is_nil() && raw.runspace_pool_id != self.config.id {
            return Err(PoolError::WrongRunspacePool {
                expected: self.config.id,
                got: raw.runspace_pool_id,
            });
        }
        let message = Message::decode(&raw)?;
        match raw.pipeline_id {
            Some(id) if raw.message_type.is_pipeline_message() => {
                self.pipeline_event(id, message).map(Some)
            }
            _ if raw.message_type.is_pipeline_message() => Err(PoolError::UnexpectedMessage {
                message_type: raw.message_type,
                detail: "without a pipeline id".to_owned(),
            }),
            _ => self.pool_event(message).map(Some),
        }
    }

    fn pipeline_event(&mut self, id: Uuid, message: Message) -> Result<PoolEvent, PoolError> {
        let entry = self
            .pipelines
            .get_mut(&id)
            .ok_or(PoolError::UnknownPipeline(id))?;
        let event = match message {
            Message::PipelineOutput(v) => PipelineEvent::Output(v),
            Message::ErrorRecord(e) => PipelineEvent::Error(e),
            Message::WarningRecord(r) => PipelineEvent::Warning(r),
            Message::VerboseRecord(r) => PipelineEvent::Verbose(r),
            Message::DebugRecord(r) => PipelineEvent::Debug(r),
            Message::InformationRecord(r) => PipelineEvent::Information(r),
            Message::ProgressRecord(r) => PipelineEvent::Progress(r),
            Message::PipelineHostCall(c) => PipelineEvent::HostCall(c),
            Message::PipelineState(s) => {
                entry.state = s.state;
                PipelineEvent::StateChanged {
                    state: s.state,
                    error: s.error,
                }
            }
            other => {
                return Err(PoolError::UnexpectedMessage {
                    message_type: other.message_type(),
                    detail: format!("for pipeline {id} (a client-to-server message)"),
                })
            }
        };
        Ok(PoolEvent::Pipeline(id, event))
    }

    fn pool_event(&mut self, message: Message) -> Result<PoolEvent, PoolError> {
        Ok(match message {
            Message::SessionCapability(cap) => {
                if cap.protocol_version.major != 2 {
                    return Err(PoolError::IncompatibleProtocol {
                        server: cap.protocol_version,
                    });
                }
                self.server_capability = Some(cap.clone());
                PoolEvent::SessionCapability(cap)
            }
            Message::ApplicationPrivateData(d) => {
                self.application_private_data = Some(d.clone());
                // A server sends it once its pool is open, right before
                // RUNSPACEPOOL_STATE Opened (MS-PSRP 3.2.5.4.2; PowerShell's
                // server sends both from its Opened handler). Windows puts
                // that state in a ReceiveResponse of its own: taking the
                // pool as Opened here saves that Receive before the first
                // pipeline. The state message, when it comes, changes nothing.
                if self.state == RunspacePoolState::Opening {
                    self.state = RunspacePoolState::Opened;
                }
                PoolEvent::ApplicationPrivateData(d)
            }
            Message::RunspacePoolState(s) => {
                self.state = s.state;
                PoolEvent::StateChanged {
                    state: s.state,
                    error: s.error,
                }
            }
            Message::RunspacePoolInitData(d) => {
                self.min_runspaces = d.min_runspaces;
                self.max_runspaces = d.max_runspaces;
                // The answer to CONNECT_RUNSPACEPOOL: the pool is usable
                // (servers send no RUNSPACEPOOL_STATE for a connect).
                if self.state == RunspacePoolState::Connecting {
                    self.state = RunspacePoolState::Opened;
                }
                PoolEvent::InitData(d)
            }
            Message::RunspaceAvailability(a) => {
                match (self.pending_calls.remove(&a.call_id), a.response) {
                    (Some(PendingCall::SetMax(n)), Availability::Success(true)) => {
                        self.max_runspaces = n
                    }
                    (Some(PendingCall::SetMin(n)), Availability::Success(true)) => {
                        self.min_runspaces = n
                    }
                    _ => {}
                }
                PoolEvent::RunspaceAvailability(a)
            }
            Message::RunspacePoolHostCall(c) => PoolEvent::HostCall(c),
            Message::UserEvent(e) => PoolEvent::UserEvent(e),
            Message::PublicKeyRequest => PoolEvent::PublicKeyRequest,
            Message::EncryptedSessionKey(k) => PoolEvent::EncryptedSessionKey(k),
            other => {
                return Err(PoolError::UnexpectedMessage {
                    message_type: other.message_type(),
                    detail: "for the runspace pool".to_owned(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, PowerShell};
    use crate::fragment::Defragmenter;

    fn server_message(pool: &RunspacePool, pid: Option<Uuid>, m: Message) -> Vec<u8> {
        let raw = m.to_raw_for(Destination::Client, pool.id(), pid).unwrap();
        let mut out = Vec::new();
        OutgoingMessage::new(1000, raw.with_bom().encode()).write_fragment(&mut out, usize::MAX);
        out
    }

    fn opened_pool() -> RunspacePool {
        opened_pool_with(SessionCapability::default())
    }

    /// Creates a pipeline running command `a` (no input) on an open pool.
    fn plain_pipeline(pool: &mut RunspacePool) -> Uuid {
        let spec = CreatePipeline::new(PowerShell::new(Command::new("a")));
        pool.create_pipeline(spec, 1 << 20).unwrap().id
    }

    /// A pool opened by a server that answered with `capability`.
    fn opened_pool_with(capability: SessionCapability) -> RunspacePool {
        opened_pool_from(RunspacePoolConfig::default(), capability)
    }

    fn opened_pool_from(config: RunspacePoolConfig, capability: SessionCapability) -> RunspacePool {
        let mut pool = RunspacePool::new(config);
        pool.open(1 << 20).unwrap();
        let cap = server_message(&pool, None, Message::SessionCapability(capability));
        let state = server_message(
            &pool,
            None,
            Message::RunspacePoolState(crate::message::RunspacePoolStateMessage {
                state: RunspacePoolState::Opened,
                error: None,
            }),
        );
        pool.receive(Target::Pool, &[cap, state].concat()).unwrap();
        while pool.next_event().unwrap().is_some() {}
        assert_eq!(pool.state(), RunspacePoolState::Opened);
        pool
    }

    /// APPLICATION_PRIVATE_DATA opens the pool (Windows sends the Opened
    /// state after it, in a ReceiveResponse of its own); that state then
    /// changes nothing.
    #[test]
    fn application_private_data_opens_the_pool() {
        let mut pool = RunspacePool::new(RunspacePoolConfig::default());
        pool.open(1 << 20).unwrap();
        let cap = server_message(
            &pool,
            None,
            Message::SessionCapability(SessionCapability::default()),
        );
        pool.receive(Target::Pool, &cap).unwrap();
        while pool.next_event().unwrap().is_some() {}
        assert_eq!(pool.state(), RunspacePoolState::Opening);
        let spec = CreatePipeline::new(PowerShell::new(Command::new("a")));
        assert!(pool.create_pipeline(spec, 1 << 20).is_err(), "not open yet");

        let apd = server_message(
            &pool,
            None,
            Message::ApplicationPrivateData(ApplicationPrivateData {
                data: PsValue::Null,
            }),
        );
        pool.receive(Target::Pool, &apd).unwrap();
        while pool.next_event().unwrap().is_some() {}
        assert_eq!(pool.state(), RunspacePoolState::Opened);
        plain_pipeline(&mut pool);

        let state = server_message(
            &pool,
            None,
            Message::RunspacePoolState(crate::message::RunspacePoolStateMessage {
                state: RunspacePoolState::Opened,
                error: None,
            }),
        );
        pool.receive(Target::Pool, &state).unwrap();
        while pool.next_event().unwrap().is_some() {}
        assert_eq!(pool.state(), RunspacePoolState::Opened);
        plain_pipeline(&mut pool);
    }

    /// The first fragment (of more) of a message with `len` bytes of data.
    fn partial_fragment(object_id: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        crate::fragment::FragmentHeader {
            object_id,
            fragment_id: 0,
            start: true,
            end: false,
            blob_len: len as u32,
        }
        .write(&mut out);
        out.resize(out.len() + len, b'x');
        out
    }

    #[test]
    fn connect_opens_on_init_data_and_attaches_pipelines() {
        let mut pool = RunspacePool::new(RunspacePoolConfig::default());
        let xml = pool.connect(1 << 20).unwrap();
        assert_eq!(pool.state(), RunspacePoolState::Connecting);
        let mut d = Defragmenter::new();
        let mut types = Vec::new();
        for m in d.push(&xml).unwrap() {
            types.push(RawMessage::decode_owned(m).unwrap().message_type);
        }
        assert_eq!(
            types,
            [
                MessageType::SessionCapability,
                MessageType::ConnectRunspacePool
            ]
        );
        let id = Uuid::new_v4();
        assert!(pool.attach_pipeline(id).is_err(), "not opened yet");
        let cap = server_message(
            &pool,
            None,
            Message::SessionCapability(SessionCapability::default()),
        );
        let init = server_message(
            &pool,
            None,
            Message::RunspacePoolInitData(RunspacePoolInitData {
                min_runspaces: 1,
                max_runspaces: 3,
            }),
        );
        pool.receive(Target::Pool, &[cap, init].concat()).unwrap();
        while pool.next_event().unwrap().is_some() {}
        assert_eq!(pool.state(), RunspacePoolState::Opened);
        assert_eq!(pool.max_runspaces(), 3);
        pool.attach_pipeline(id).unwrap();
        assert_eq!(pool.pipeline_state(id), Some(PipelineState::Running));
        assert!(pool.attach_pipeline(id).is_err());
        assert!(pool.connect(1 << 20).is_err());
    }

    #[test]
    fn pool_and_pipelines_share_one_reassembly_budget() {
        let config = RunspacePoolConfig {
            defragment_limits: DefragmentLimits {
                max_message_size: 1000,
                max_pending_objects: 8,
                max_buffered_bytes: 1000,
            },
            ..RunspacePoolConfig::default()
        };
        let mut pool = opened_pool_from(config, SessionCapability::default());
        let a = plain_pipeline(&mut pool);
        let b = plain_pipeline(&mut pool);
        pool.receive(Target::Pool, &partial_fragment(10, 300))
            .unwrap();
        pool.receive(Target::Pipeline(a), &partial_fragment(11, 600))
            .unwrap();
        assert_eq!(pool.reassembly_budget().used(), 900);
        // Each stream alone is within every limit; together they are not.
        match pool.receive(Target::Pipeline(b), &partial_fragment(12, 200)) {
            Err(PoolError::Defragment { target, source }) => {
                assert_eq!(target, Target::Pipeline(b));
                assert!(source.is_limit(), "{source}");
                assert_eq!(
                    source,
                    DefragmentError::BufferLimit {
                        limit: 1000,
                        held: 900,
                        needed: 200
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        // A closed pipeline gives its bytes back.
        pool.close_pipeline(a).unwrap();
        assert_eq!(pool.reassembly_budget().used(), 300);
        let c = plain_pipeline(&mut pool);
        pool.receive(Target::Pipeline(c), &partial_fragment(13, 700))
            .unwrap();
        assert_eq!(pool.reassembly_budget().used(), 1000);
        pool.close();
        assert_eq!(pool.reassembly_budget().used(), 300, "the pool's own part");
    }

    #[test]
    fn open_packs_capability_and_init_into_the_creation_payload() {
        let mut pool = RunspacePool::new(RunspacePoolConfig::default());
        let creation = pool.open(1 << 20).unwrap();
        assert!(!pool.has_data_to_send());
        let msgs = Defragmenter::new().push(&creation).unwrap();
        let types: Vec<_> = msgs
            .iter()
            .map(|m| RawMessage::decode(m).unwrap().message_type)
            .collect();
        assert_eq!(
            types,
            [
                MessageType::SessionCapability,
                MessageType::InitRunspacePool
            ]
        );
        assert!(matches!(
            pool.open(1 << 20),
            Err(PoolError::InvalidState { .. })
        ));
    }

    #[test]
    fn small_creation_payload_leaves_the_rest_for_send() {
        let mut pool = RunspacePool::new(RunspacePoolConfig::default());
        let creation = pool.open(200).unwrap();
        assert!(creation.len() <= 200);
        let mut d = Defragmenter::new();
        let mut msgs = d.push(&creation).unwrap();
        while let Some(p) = pool.data_to_send(200).unwrap() {
            assert_eq!((p.target, p.stream), (Target::Pool, Stream::Stdin));
            assert!(p.data.len() <= 200);
            msgs.extend(d.push(&p.data).unwrap());
        }
        assert_eq!(msgs.len(), 2);
        assert!(d.is_idle());
    }

    #[test]
    fn pipeline_first_fragment_goes_to_command_rest_to_send() {
        let mut pool = opened_pool();
        let big = "x".repeat(5000);
        let spec = CreatePipeline::new(PowerShell::new(Command::new("Write-Output").arg(big)));
        let new = pool.create_pipeline(spec, 1000).unwrap();
        assert_eq!(new.command_arguments.len(), 1000);
        let mut d = Defragmenter::new();
        let mut msgs = d.push(&new.command_arguments).unwrap();
        assert!(msgs.is_empty());
        while let Some(p) = pool.data_to_send(1000).unwrap() {
            assert_eq!(p.target, Target::Pipeline(new.id));
            assert_eq!(p.command_id(), Some(new.id));
            msgs.extend(d.push(&p.data).unwrap());
        }
        assert_eq!(msgs.len(), 1);
        let raw = RawMessage::decode(&msgs[0]).unwrap();
        assert_eq!(raw.message_type, MessageType::CreatePipeline);
        assert_eq!(raw.pipeline_id, Some(new.id));
        assert_eq!(pool.pipeline_state(new.id), Some(PipelineState::Running));
    }

    #[test]
    fn object_ids_are_shared_by_pool_and_pipelines() {
        let mut pool = opened_pool();
        let spec = CreatePipeline::new(PowerShell::new(Command::new("a")));
        let new = pool.create_pipeline(spec, 1 << 20).unwrap();
        let h = crate::fragment::FragmentHeader::parse(&new.command_arguments).unwrap();
        // 1 and 2 went to SESSION_CAPABILITY and INIT_RUNSPACEPOOL.
        assert_eq!(h.object_id, 3);
        pool.set_max_runspaces(2).unwrap();
        let p = pool.data_to_send(1 << 20).unwrap().unwrap();
        assert_eq!(
            crate::fragment::FragmentHeader::parse(&p.data)
                .unwrap()
                .object_id,
            4
        );
    }

    #[test]
    fn payloads_do_not_mix_targets_or_streams() {
        let mut pool = opened_pool();
        let spec = CreatePipeline {
            no_input: false,
            ..CreatePipeline::new(PowerShell::new(Command::new("a")))
        };
        let id = pool.create_pipeline(spec, 1 << 20).unwrap().id;
        pool.send_input(id, PsValue::I32(1)).unwrap();
        pool.set_max_runspaces(2).unwrap();
        pool.send_input(id, PsValue::I32(2)).unwrap();
        pool.end_input(id).unwrap();
        let call = HostCall {
            call_id: 5,
            method: crate::host::HostMethodId::ReadLine,
            parameters: vec![],
        };
        pool.host_response(Target::Pipeline(id), call.respond(Some("x".into())))
            .unwrap();
        let mut got = Vec::new();
        while let Some(p) = pool.data_to_send(1 << 20).unwrap() {
            let n = Defragmenter::new().push(&p.data).unwrap().len();
            got.push((p.target, p.stream, n));
        }
        assert_eq!(
            got,
            [
                (Target::Pipeline(id), Stream::Stdin, 1),
                (Target::Pool, Stream::Stdin, 1),
                (Target::Pipeline(id), Stream::Stdin, 2),
                (Target::Pipeline(id), Stream::PromptResponse, 1),
            ]
        );
        assert!(matches!(
            pool.send_input(id, PsValue::Null),
            Err(PoolError::PipelineInvalidState { .. })
        ));
    }

    #[test]
    fn no_input_pipelines_refuse_input() {
        let mut pool = opened_pool();
        let id = plain_pipeline(&mut pool);
        assert!(pool.send_input(id, PsValue::Null).is_err());
        assert!(pool.end_input(id).is_err());
    }

    #[test]
    fn operations_need_an_open_pool() {
        let mut pool = RunspacePool::new(RunspacePoolConfig::default());
        let spec = CreatePipeline::new(PowerShell::new(Command::new("a")));
        assert!(matches!(
            pool.create_pipeline(spec, 1000),
            Err(PoolError::InvalidState { .. })
        ));
        assert!(pool.set_max_runspaces(1).is_err());
        assert!(matches!(
            pool.data_to_send(21),
            Err(PoolError::PayloadTooSmall(21))
        ));
    }

    #[test]
    fn pipeline_messages_update_state_and_route_by_id() {
        let mut pool = opened_pool();
        let id = plain_pipeline(&mut pool);
        let out = server_message(&pool, Some(id), Message::PipelineOutput(PsValue::I32(7)));
        let done = server_message(
            &pool,
            Some(id),
            Message::PipelineState(crate::message::PipelineStateMessage {
                state: PipelineState::Completed,
                error: None,
            }),
        );
        pool.receive(Target::Pipeline(id), &out).unwrap();
        pool.receive(Target::Pipeline(id), &done).unwrap();
        assert_eq!(
            pool.next_event().unwrap(),
            Some(PoolEvent::Pipeline(
                id,
                PipelineEvent::Output(PsValue::I32(7))
            ))
        );
        let ev = pool.next_event().unwrap().unwrap();
        assert!(matches!(&ev, PoolEvent::Pipeline(_, e) if e.is_terminal()));
        assert_eq!(pool.pipeline_state(id), Some(PipelineState::Completed));
        pool.close_pipeline(id).unwrap();
        assert!(matches!(
            pool.receive(Target::Pipeline(id), &out),
            Err(PoolError::UnknownPipeline(_))
        ));
    }

    #[test]
    fn foreign_pool_ids_and_misdirected_messages_are_errors() {
        let mut pool = opened_pool();
        let other = Message::PipelineOutput(PsValue::Null)
            .to_raw_for(Destination::Client, Uuid::new_v4(), None)
            .unwrap();
        let mut bytes = Vec::new();
        OutgoingMessage::new(9, other.encode()).write_fragment(&mut bytes, usize::MAX);
        pool.receive(Target::Pool, &bytes).unwrap();
        assert!(matches!(
            pool.next_event(),
            Err(PoolError::WrongRunspacePool { .. })
        ));
        let to_server = server_message(
            &pool,
            None,
            Message::SessionCapability(SessionCapability::default()),
        );
        // A message addressed to the server is refused.
        let mut flipped = to_server.clone();
        flipped[21] = 2;
        pool.receive(Target::Pool, &flipped).unwrap();
        assert!(matches!(
            pool.next_event(),
            Err(PoolError::UnexpectedMessage { .. })
        ));
        // A pipeline message without a pipeline id is refused.
        let orphan = server_message(&pool, None, Message::PipelineOutput(PsValue::Null));
        pool.receive(Target::Pool, &orphan).unwrap();
        assert!(matches!(
            pool.next_event(),
            Err(PoolError::UnexpectedMessage { .. })
        ));
        assert!(pool.next_event().unwrap().is_none());
    }

    #[test]
    fn set_max_runspaces_applies_on_success() {
        let mut pool = opened_pool();
        let ci = pool.set_max_runspaces(4).unwrap();
        let ans = server_message(
            &pool,
            None,
            Message::RunspaceAvailability(RunspaceAvailability {
                call_id: ci,
                response: Availability::Success(true),
            }),
        );
        pool.receive(Target::Pool, &ans).unwrap();
        pool.next_event().unwrap();
        assert_eq!(pool.max_runspaces(), 4);
    }

    #[test]
    fn protocol_gating_uses_the_server_version() {
        let mut pool = opened_pool_with(SessionCapability {
            protocol_version: crate::message::PROTOCOL_2_1,
            ..SessionCapability::default()
        });
        assert_eq!(pool.protocol_version(), crate::message::PROTOCOL_2_1);
        assert!(matches!(
            pool.reset_runspace_state(),
            Err(PoolError::ProtocolTooOld { .. })
        ));
        let spec =
            CreatePipeline::new(PowerShell::new(Command::new("a").merge_verbose_to_output()));
        assert!(matches!(
            pool.create_pipeline(spec, 1 << 20),
            Err(PoolError::Command(CommandError::MergeNotSupported { .. }))
        ));
    }

    #[test]
    fn incompatible_server_protocol_is_an_error() {
        let mut pool = RunspacePool::new(RunspacePoolConfig::default());
        pool.open(1 << 20).unwrap();
        let v3 = SessionCapability {
            protocol_version: Version {
                major: 3,
                minor: 0,
                build: None,
                revision: None,
            },
            ..SessionCapability::default()
        };
        let cap = server_message(&pool, None, Message::SessionCapability(v3));
        pool.receive(Target::Pool, &cap).unwrap();
        assert!(matches!(
            pool.next_event(),
            Err(PoolError::IncompatibleProtocol { .. })
        ));
    }
}
