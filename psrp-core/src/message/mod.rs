//! PSRP messages (MS-PSRP 2.2.1-2.2.3): the header with its message types,
//! and typed messages parsed from (and encoded to) CLIXML.
//!
//! ```
//! use psrp_core::message::{Destination, Message, RawMessage, RunspacePoolState};
//! use uuid::Uuid;
//!
//! // What a server sends when a pool opens…
//! let raw = RawMessage {
//!     destination: Destination::Client,
//!     message_type: psrp_core::message::MessageType::RunspacePoolState,
//!     runspace_pool_id: Uuid::nil(),
//!     pipeline_id: None,
//!     data: b"\xEF\xBB\xBF<Obj RefId=\"0\"><MS><I32 N=\"RunspaceState\">2</I32></MS></Obj>".to_vec(),
//! };
//! // …read back as a typed message.
//! match Message::decode(&raw).unwrap() {
//!     Message::RunspacePoolState(s) => assert_eq!(s.state, RunspacePoolState::Opened),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

mod error;
mod header;
mod pipeline;
mod pool;
mod records;
pub(crate) mod values;

pub use error::MessageError;
pub use header::{
    guid_from_dotnet_bytes, guid_to_dotnet_bytes, Destination, HeaderError, MessageType,
    RawMessage, MESSAGE_HEADER_LEN,
};
pub use pipeline::{
    CommandMetadata, CommandMetadataReply, CommandTypes, GetCommandMetadata, ParameterMetadata,
    PipelineState, PipelineStateMessage,
};
pub use pool::{
    dictionary_get, ApartmentState, ApplicationPrivateData, Availability, CallId,
    ConnectRunspacePool, InitRunspacePool, KeyBlob, PsThreadOptions, RunspaceAvailability,
    RunspacePoolInitData, RunspacePoolState, RunspacePoolStateMessage, SessionCapability,
    SetRunspaces, UserEvent, PROTOCOL_2_1, PROTOCOL_2_2, PROTOCOL_2_3,
};
pub use records::{
    ErrorCategory, ErrorCategoryInfo, ErrorRecord, ExceptionInfo, InformationRecord,
    InformationalRecord, InvocationInfo, ProgressRecord, ProgressRecordType,
};

use uuid::Uuid;

use crate::clixml::{self, PsValue, Version};
use crate::command::{CommandError, CreatePipeline};
use crate::host::{HostCall, HostResponse};

/// A PSRP message with its fields parsed: one variant per message type.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// SESSION_CAPABILITY.
    SessionCapability(SessionCapability),
    /// INIT_RUNSPACEPOOL.
    InitRunspacePool(InitRunspacePool),
    /// PUBLIC_KEY: the client's RSA public key (`PublicKey`).
    PublicKey(KeyBlob),
    /// ENCRYPTED_SESSION_KEY: the session key for SecureStrings (`EncryptedSessionKey`).
    EncryptedSessionKey(KeyBlob),
    /// PUBLIC_KEY_REQUEST: the server asks the client to start the key exchange.
    PublicKeyRequest,
    /// CONNECT_RUNSPACEPOOL.
    ConnectRunspacePool(ConnectRunspacePool),
    /// SET_MAX_RUNSPACES.
    SetMaxRunspaces(SetRunspaces),
    /// SET_MIN_RUNSPACES.
    SetMinRunspaces(SetRunspaces),
    /// RUNSPACE_AVAILABILITY.
    RunspaceAvailability(RunspaceAvailability),
    /// RUNSPACEPOOL_STATE.
    RunspacePoolState(RunspacePoolStateMessage),
    /// CREATE_PIPELINE, with the server's protocol version that decides
    /// which stream redirections it carries.
    CreatePipeline(CreatePipeline, Version),
    /// GET_AVAILABLE_RUNSPACES.
    GetAvailableRunspaces(CallId),
    /// USER_EVENT.
    UserEvent(UserEvent),
    /// APPLICATION_PRIVATE_DATA.
    ApplicationPrivateData(ApplicationPrivateData),
    /// GET_COMMAND_METADATA.
    GetCommandMetadata(GetCommandMetadata),
    /// RUNSPACEPOOL_INIT_DATA.
    RunspacePoolInitData(RunspacePoolInitData),
    /// RESET_RUNSPACE_STATE.
    ResetRunspaceState(CallId),
    /// RUNSPACEPOOL_HOST_CALL.
    RunspacePoolHostCall(HostCall),
    /// RUNSPACEPOOL_HOST_RESPONSE.
    RunspacePoolHostResponse(HostResponse),
    /// PIPELINE_INPUT: one input object.
    PipelineInput(PsValue),
    /// END_OF_PIPELINE_INPUT (no data).
    EndOfPipelineInput,
    /// PIPELINE_OUTPUT: one output object (`Null` for an empty message).
    PipelineOutput(PsValue),
    /// ERROR_RECORD.
    ErrorRecord(ErrorRecord),
    /// PIPELINE_STATE.
    PipelineState(PipelineStateMessage),
    /// DEBUG_RECORD.
    DebugRecord(InformationalRecord),
    /// VERBOSE_RECORD.
    VerboseRecord(InformationalRecord),
    /// WARNING_RECORD.
    WarningRecord(InformationalRecord),
    /// PROGRESS_RECORD.
    ProgressRecord(ProgressRecord),
    /// INFORMATION_RECORD.
    InformationRecord(InformationRecord),
    /// PIPELINE_HOST_CALL.
    PipelineHostCall(HostCall),
    /// PIPELINE_HOST_RESPONSE.
    PipelineHostResponse(HostResponse),
}

impl Message {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        use MessageType as T;
        match self {
            Message::SessionCapability(_) => T::SessionCapability,
            Message::InitRunspacePool(_) => T::InitRunspacePool,
            Message::PublicKey(_) => T::PublicKey,
            Message::EncryptedSessionKey(_) => T::EncryptedSessionKey,
            Message::PublicKeyRequest => T::PublicKeyRequest,
            Message::ConnectRunspacePool(_) => T::ConnectRunspacePool,
            Message::SetMaxRunspaces(_) => T::SetMaxRunspaces,
            Message::SetMinRunspaces(_) => T::SetMinRunspaces,
            Message::RunspaceAvailability(_) => T::RunspaceAvailability,
            Message::RunspacePoolState(_) => T::RunspacePoolState,
            Message::CreatePipeline(..) => T::CreatePipeline,
            Message::GetAvailableRunspaces(_) => T::GetAvailableRunspaces,
            Message::UserEvent(_) => T::UserEvent,
            Message::ApplicationPrivateData(_) => T::ApplicationPrivateData,
            Message::GetCommandMetadata(_) => T::GetCommandMetadata,
            Message::RunspacePoolInitData(_) => T::RunspacePoolInitData,
            Message::ResetRunspaceState(_) => T::ResetRunspaceState,
            Message::RunspacePoolHostCall(_) => T::RunspacePoolHostCall,
            Message::RunspacePoolHostResponse(_) => T::RunspacePoolHostResponse,
            Message::PipelineInput(_) => T::PipelineInput,
            Message::EndOfPipelineInput => T::EndOfPipelineInput,
            Message::PipelineOutput(_) => T::PipelineOutput,
            Message::ErrorRecord(_) => T::ErrorRecord,
            Message::PipelineState(_) => T::PipelineState,
            Message::DebugRecord(_) => T::DebugRecord,
            Message::VerboseRecord(_) => T::VerboseRecord,
            Message::WarningRecord(_) => T::WarningRecord,
            Message::ProgressRecord(_) => T::ProgressRecord,
            Message::InformationRecord(_) => T::InformationRecord,
            Message::PipelineHostCall(_) => T::PipelineHostCall,
            Message::PipelineHostResponse(_) => T::PipelineHostResponse,
        }
    }

    /// Decodes a message's CLIXML and parses it into its typed form.
    pub fn decode(raw: &RawMessage) -> Result<Message, MessageError> {
        let t = raw.message_type;
        let data = raw.data_without_bom();
        let blank = data.iter().all(u8::is_ascii_whitespace);
        match t {
            MessageType::EndOfPipelineInput => {
                return if blank {
                    Ok(Message::EndOfPipelineInput)
                } else {
                    Err(MessageError::UnexpectedData {
                        message_type: t,
                        len: data.len(),
                    })
                };
            }
            // An empty PIPELINE_OUTPUT is a null output object.
            MessageType::PipelineOutput if blank => {
                return Ok(Message::PipelineOutput(PsValue::Null))
            }
            _ if blank => {
                return Err(MessageError::UnexpectedData {
                    message_type: t,
                    len: data.len(),
                })
            }
            _ => {}
        }
        let text = std::str::from_utf8(data).map_err(|e| MessageError::NotUtf8 {
            message_type: t,
            valid_up_to: e.valid_up_to(),
        })?;
        let value = clixml::decode(text).map_err(|source| MessageError::Clixml {
            message_type: t,
            source,
        })?;
        Message::from_value(t, &value)
    }

    /// Parses a decoded message body of type `t`.
    pub fn from_value(t: MessageType, v: &PsValue) -> Result<Message, MessageError> {
        use MessageType as T;
        Ok(match t {
            T::SessionCapability => Message::SessionCapability(SessionCapability::from_value(v)?),
            T::InitRunspacePool => Message::InitRunspacePool(InitRunspacePool::from_value(v)?),
            T::PublicKey => Message::PublicKey(KeyBlob::from_value(v, "PublicKey", "PUBLIC_KEY")?),
            T::EncryptedSessionKey => Message::EncryptedSessionKey(KeyBlob::from_value(
                v,
                "EncryptedSessionKey",
                "ENCRYPTED_SESSION_KEY",
            )?),
            T::PublicKeyRequest => Message::PublicKeyRequest,
            T::ConnectRunspacePool => {
                Message::ConnectRunspacePool(ConnectRunspacePool::from_value(v)?)
            }
            T::SetMaxRunspaces => Message::SetMaxRunspaces(SetRunspaces::from_value(
                v,
                "MaxRunspaces",
                "SET_MAX_RUNSPACES",
            )?),
            T::SetMinRunspaces => Message::SetMinRunspaces(SetRunspaces::from_value(
                v,
                "MinRunspaces",
                "SET_MIN_RUNSPACES",
            )?),
            T::RunspaceAvailability => {
                Message::RunspaceAvailability(RunspaceAvailability::from_value(v)?)
            }
            T::RunspacePoolState => {
                Message::RunspacePoolState(RunspacePoolStateMessage::from_value(v)?)
            }
            T::CreatePipeline => {
                let cp = CreatePipeline::from_value(v)?;
                let protocol = protocol_of_create_pipeline(v);
                Message::CreatePipeline(cp, protocol)
            }
            T::GetAvailableRunspaces => {
                Message::GetAvailableRunspaces(CallId::from_value(v, "GET_AVAILABLE_RUNSPACES")?)
            }
            T::UserEvent => Message::UserEvent(UserEvent::from_value(v)?),
            T::ApplicationPrivateData => {
                Message::ApplicationPrivateData(ApplicationPrivateData::from_value(v)?)
            }
            T::GetCommandMetadata => {
                Message::GetCommandMetadata(GetCommandMetadata::from_value(v)?)
            }
            T::RunspacePoolInitData => {
                Message::RunspacePoolInitData(RunspacePoolInitData::from_value(v)?)
            }
            T::ResetRunspaceState => {
                Message::ResetRunspaceState(CallId::from_value(v, "RESET_RUNSPACE_STATE")?)
            }
            T::RunspacePoolHostCall => {
                Message::RunspacePoolHostCall(HostCall::from_value(v, "RUNSPACEPOOL_HOST_CALL")?)
            }
            T::RunspacePoolHostResponse => Message::RunspacePoolHostResponse(
                HostResponse::from_value(v, "RUNSPACEPOOL_HOST_RESPONSE")?,
            ),
            T::PipelineInput => Message::PipelineInput(v.clone()),
            T::EndOfPipelineInput => Message::EndOfPipelineInput,
            T::PipelineOutput => Message::PipelineOutput(v.clone()),
            T::ErrorRecord => Message::ErrorRecord(ErrorRecord::from_value(v)?),
            T::PipelineState => Message::PipelineState(PipelineStateMessage::from_value(v)?),
            T::DebugRecord => {
                Message::DebugRecord(InformationalRecord::from_value(v, "DEBUG_RECORD")?)
            }
            T::VerboseRecord => {
                Message::VerboseRecord(InformationalRecord::from_value(v, "VERBOSE_RECORD")?)
            }
            T::WarningRecord => {
                Message::WarningRecord(InformationalRecord::from_value(v, "WARNING_RECORD")?)
            }
            T::ProgressRecord => Message::ProgressRecord(ProgressRecord::from_value(v)?),
            T::InformationRecord => Message::InformationRecord(InformationRecord::from_value(v)?),
            T::PipelineHostCall => {
                Message::PipelineHostCall(HostCall::from_value(v, "PIPELINE_HOST_CALL")?)
            }
            T::PipelineHostResponse => Message::PipelineHostResponse(HostResponse::from_value(
                v,
                "PIPELINE_HOST_RESPONSE",
            )?),
        })
    }

    /// The message body as a value; `None` for END_OF_PIPELINE_INPUT, which
    /// has no data.
    pub fn to_value(&self) -> Result<Option<PsValue>, CommandError> {
        Ok(Some(match self {
            Message::SessionCapability(m) => m.to_value(),
            Message::InitRunspacePool(m) => m.to_value(),
            Message::PublicKey(k) => k.to_value("PublicKey"),
            Message::EncryptedSessionKey(k) => k.to_value("EncryptedSessionKey"),
            Message::PublicKeyRequest => PsValue::String(String::new()),
            Message::ConnectRunspacePool(m) => m.to_value(),
            Message::SetMaxRunspaces(m) => m.to_value("MaxRunspaces"),
            Message::SetMinRunspaces(m) => m.to_value("MinRunspaces"),
            Message::RunspaceAvailability(m) => m.to_value(),
            Message::RunspacePoolState(m) => m.to_value(),
            Message::CreatePipeline(m, protocol) => m.to_value(*protocol)?,
            Message::GetAvailableRunspaces(m) | Message::ResetRunspaceState(m) => m.to_value(),
            Message::UserEvent(m) => m.to_value(),
            Message::ApplicationPrivateData(m) => m.to_value(),
            Message::GetCommandMetadata(m) => m.to_value(),
            Message::RunspacePoolInitData(m) => m.to_value(),
            Message::RunspacePoolHostCall(m) | Message::PipelineHostCall(m) => m.to_value(),
            Message::RunspacePoolHostResponse(m) | Message::PipelineHostResponse(m) => m.to_value(),
            Message::PipelineInput(v) | Message::PipelineOutput(v) => v.clone(),
            Message::EndOfPipelineInput => return Ok(None),
            Message::ErrorRecord(m) => m.to_value(),
            Message::PipelineState(m) => m.to_value(),
            Message::DebugRecord(m) => m.to_value("System.Management.Automation.DebugRecord"),
            Message::VerboseRecord(m) => m.to_value("System.Management.Automation.VerboseRecord"),
            Message::WarningRecord(m) => m.to_value("System.Management.Automation.WarningRecord"),
            Message::ProgressRecord(m) => m.to_value(),
            Message::InformationRecord(m) => m.to_value(),
        }))
    }

    /// The message data: UTF-8 CLIXML (empty for END_OF_PIPELINE_INPUT).
    pub fn encode_data(&self) -> Result<Vec<u8>, CommandError> {
        Ok(match self.to_value()? {
            Some(v) => clixml::encode(&v).into_bytes(),
            None => Vec::new(),
        })
    }

    /// The whole message from the client to the server.
    pub fn to_raw(
        &self,
        runspace_pool_id: Uuid,
        pipeline_id: Option<Uuid>,
    ) -> Result<RawMessage, CommandError> {
        self.to_raw_for(Destination::Server, runspace_pool_id, pipeline_id)
    }

    /// The whole message for `destination`.
    pub fn to_raw_for(
        &self,
        destination: Destination,
        runspace_pool_id: Uuid,
        pipeline_id: Option<Uuid>,
    ) -> Result<RawMessage, CommandError> {
        Ok(RawMessage {
            destination,
            message_type: self.message_type(),
            runspace_pool_id,
            pipeline_id,
            data: self.encode_data()?,
        })
    }
}

/// The lowest protocol version whose fields a CREATE_PIPELINE carries,
/// judged from its first command.
fn protocol_of_create_pipeline(v: &PsValue) -> Version {
    let first_command = v
        .as_object()
        .and_then(|o| o.property("PowerShell"))
        .and_then(PsValue::as_object)
        .and_then(|ps| ps.property("Cmds"))
        .and_then(values::list_items)
        .and_then(<[PsValue]>::first)
        .and_then(PsValue::as_object);
    match first_command {
        Some(c) if c.property("MergeInformation").is_some() => PROTOCOL_2_3,
        Some(c) if c.property("MergeError").is_some() => PROTOCOL_2_2,
        _ => PROTOCOL_2_1,
    }
}
