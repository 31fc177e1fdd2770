//! Runspace-pool level messages (MS-PSRP 2.2.2.1-2.2.2.16, 2.2.2.29-31).

use uuid::Uuid;

use crate::clixml::{DateTime, PsValue, Version};
use crate::host::HostInfo;

use super::records::{int_enum, ErrorRecord};
use super::values::{dict_entries, enum_value, string_of, ObjBuilder, Props};
use super::MessageError;

int_enum! {
    /// System.Threading.ApartmentState (MS-PSRP 2.2.3.7).
    ApartmentState {
        /// Single-threaded apartment.
        STA = 0,
        /// Multi-threaded apartment.
        MTA = 1,
        /// Not set (the default).
        Unknown = 2,
    }
}

int_enum! {
    /// System.Management.Automation.Runspaces.PSThreadOptions (MS-PSRP 2.2.3.6).
    PsThreadOptions {
        /// The server's default.
        Default = 0,
        /// A new thread for every invocation.
        UseNewThread = 1,
        /// One thread reused for every invocation.
        ReuseThread = 2,
        /// The calling thread.
        UseCurrentThread = 3,
    }
}

int_enum! {
    /// The state of a runspace pool (MS-PSRP 2.2.3.4).
    RunspacePoolState {
        /// Not opened yet.
        BeforeOpen = 0,
        /// Being opened.
        Opening = 1,
        /// Open: pipelines can run.
        Opened = 2,
        /// Closed.
        Closed = 3,
        /// Being closed.
        Closing = 4,
        /// Failed; the message carries the reason.
        Broken = 5,
        /// Capability sent, waiting for the server's.
        NegotiationSent = 6,
        /// Capabilities exchanged.
        NegotiationSucceeded = 7,
        /// Reconnecting to a disconnected pool.
        Connecting = 8,
        /// Disconnected.
        Disconnected = 9,
    }
}

impl ApartmentState {
    pub(crate) fn to_value(self) -> PsValue {
        enum_value(
            "System.Threading.ApartmentState",
            self.as_i32(),
            self.name(),
        )
    }
}

impl PsThreadOptions {
    pub(crate) fn to_value(self) -> PsValue {
        enum_value(
            "System.Management.Automation.Runspaces.PSThreadOptions",
            self.as_i32(),
            self.name(),
        )
    }
}

/// SESSION_CAPABILITY (MS-PSRP 2.2.2.1): versions each side speaks.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionCapability {
    /// `protocolversion`: PSRP version (2.1 PowerShell 2, 2.2 PowerShell
    /// 3/4, 2.3 PowerShell 5.1 and 7).
    pub protocol_version: Version,
    /// `PSVersion`: PowerShell version of the sender (2.0 on the wire).
    pub ps_version: Version,
    /// `SerializationVersion`: 1.1.0.1.
    pub serialization_version: Version,
    /// `TimeZone`: .NET-serialized time zone, rarely sent.
    pub time_zone: Option<Vec<u8>>,
}

const fn version(major: u32, minor: u32) -> Version {
    Version {
        major,
        minor,
        build: None,
        revision: None,
    }
}

/// PSRP protocol 2.1 (PowerShell 2).
pub const PROTOCOL_2_1: Version = version(2, 1);
/// PSRP protocol 2.2 (PowerShell 3 and 4).
pub const PROTOCOL_2_2: Version = version(2, 2);
/// PSRP protocol 2.3 (PowerShell 5.1 and later).
pub const PROTOCOL_2_3: Version = version(2, 3);

impl Default for SessionCapability {
    /// What this client announces: protocol 2.3, PSVersion 2.0,
    /// serialization 1.1.0.1 (as PowerShell itself does).
    fn default() -> Self {
        SessionCapability {
            protocol_version: PROTOCOL_2_3,
            ps_version: version(2, 0),
            serialization_version: Version {
                major: 1,
                minor: 1,
                build: Some(0),
                revision: Some(1),
            },
            time_zone: None,
        }
    }
}

impl SessionCapability {
    const CONTEXT: &'static str = "SESSION_CAPABILITY";

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        Ok(SessionCapability {
            protocol_version: p.version("protocolversion")?,
            ps_version: p.version("PSVersion")?,
            serialization_version: p.version("SerializationVersion")?,
            time_zone: match p.get("TimeZone") {
                Some(PsValue::Bytes(b)) => Some(b.clone()),
                _ => None,
            },
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("protocolversion", PsValue::Version(self.protocol_version))
            .note("PSVersion", PsValue::Version(self.ps_version))
            .note(
                "SerializationVersion",
                PsValue::Version(self.serialization_version),
            )
            .note_opt("TimeZone", self.time_zone.clone().map(PsValue::Bytes))
            .build()
    }
}

/// A PSPrimitiveDictionary of string keys, as application arguments are.
pub(crate) fn primitive_dictionary(entries: &[(String, PsValue)]) -> PsValue {
    ObjBuilder::with_types(&[
        "System.Management.Automation.PSPrimitiveDictionary",
        "System.Collections.Hashtable",
        "System.Object",
    ])
    .dict(
        entries
            .iter()
            .map(|(k, v)| (PsValue::from(k.as_str()), v.clone()))
            .collect(),
    )
    .build()
}

fn string_keyed(v: &PsValue) -> Vec<(String, PsValue)> {
    dict_entries(v)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|(k, v)| Some((string_of(k)?, v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

/// INIT_RUNSPACEPOOL (MS-PSRP 2.2.2.2).
#[derive(Clone, Debug, PartialEq)]
pub struct InitRunspacePool {
    /// `MinRunspaces`.
    pub min_runspaces: i32,
    /// `MaxRunspaces`.
    pub max_runspaces: i32,
    /// `PSThreadOptions`.
    pub thread_options: PsThreadOptions,
    /// `ApartmentState`.
    pub apartment_state: ApartmentState,
    /// `HostInfo`.
    pub host_info: HostInfo,
    /// `ApplicationArguments` (`$PSSenderInfo.ApplicationArguments` on the
    /// server); `None` sends `<Nil/>`.
    pub application_arguments: Option<Vec<(String, PsValue)>>,
}

impl InitRunspacePool {
    const CONTEXT: &'static str = "INIT_RUNSPACEPOOL";

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        Ok(InitRunspacePool {
            min_runspaces: p.i32("MinRunspaces")?,
            max_runspaces: p.i32("MaxRunspaces")?,
            thread_options: PsThreadOptions::from_i32(p.opt_i32("PSThreadOptions")?.unwrap_or(0)),
            apartment_state: ApartmentState::from_i32(p.opt_i32("ApartmentState")?.unwrap_or(2)),
            host_info: match p.get("HostInfo") {
                Some(h) => HostInfo::from_value(h)?,
                None => HostInfo::default(),
            },
            application_arguments: p.get("ApplicationArguments").map(string_keyed),
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("MinRunspaces", self.min_runspaces)
            .note("MaxRunspaces", self.max_runspaces)
            .note("PSThreadOptions", self.thread_options.to_value())
            .note("ApartmentState", self.apartment_state.to_value())
            .note("HostInfo", self.host_info.to_value())
            .note_or_nil(
                "ApplicationArguments",
                self.application_arguments
                    .as_deref()
                    .map(primitive_dictionary),
            )
            .build()
    }
}

/// RUNSPACEPOOL_STATE (MS-PSRP 2.2.2.9).
#[derive(Clone, Debug, PartialEq)]
pub struct RunspacePoolStateMessage {
    /// `RunspaceState`.
    pub state: RunspacePoolState,
    /// `ExceptionAsErrorRecord`: why the pool broke.
    pub error: Option<ErrorRecord>,
}

impl RunspacePoolStateMessage {
    const CONTEXT: &'static str = "RUNSPACEPOOL_STATE";

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        Ok(RunspacePoolStateMessage {
            state: RunspacePoolState::from_i32(p.i32("RunspaceState")?),
            error: match p.get("ExceptionAsErrorRecord") {
                Some(e) => Some(ErrorRecord::from_value(e)?),
                None => None,
            },
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("RunspaceState", self.state.as_i32())
            .note_opt(
                "ExceptionAsErrorRecord",
                self.error.as_ref().map(ErrorRecord::to_value),
            )
            .build()
    }
}

/// APPLICATION_PRIVATE_DATA (MS-PSRP 2.2.2.13): a dictionary from the
/// server, typically with a `PSVersionTable` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ApplicationPrivateData {
    /// The `ApplicationPrivateData` value (a PSPrimitiveDictionary or Nil).
    pub data: PsValue,
}

impl ApplicationPrivateData {
    const CONTEXT: &'static str = "APPLICATION_PRIVATE_DATA";

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        Ok(ApplicationPrivateData {
            data: p
                .get("ApplicationPrivateData")
                .cloned()
                .unwrap_or(PsValue::Null),
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("ApplicationPrivateData", self.data.clone())
            .build()
    }

    /// A top-level entry by key.
    pub fn get(&self, key: &str) -> Option<&PsValue> {
        dictionary_get(&self.data, key)
    }

    /// An entry of the server's `PSVersionTable`, e.g. `PSVersion` or
    /// `PSRemotingProtocolVersion`.
    pub fn ps_version_table(&self, key: &str) -> Option<&PsValue> {
        dictionary_get(self.get("PSVersionTable")?, key)
    }
}

/// Looks a string key up in a dictionary value (keys compare
/// case-insensitively, as in a PowerShell hashtable).
pub fn dictionary_get<'a>(dict: &'a PsValue, key: &str) -> Option<&'a PsValue> {
    dict_entries(dict)?
        .iter()
        .find(|(k, _)| k.as_str().is_some_and(|s| s.eq_ignore_ascii_case(key)))
        .map(|(_, v)| v)
}

/// RUNSPACEPOOL_INIT_DATA (MS-PSRP 2.2.2.30), sent on connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunspacePoolInitData {
    /// `MinRunspaces`.
    pub min_runspaces: i32,
    /// `MaxRunspaces`.
    pub max_runspaces: i32,
}

impl RunspacePoolInitData {
    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, "RUNSPACEPOOL_INIT_DATA")?;
        Ok(RunspacePoolInitData {
            min_runspaces: p.i32("MinRunspaces")?,
            max_runspaces: p.i32("MaxRunspaces")?,
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("MinRunspaces", self.min_runspaces)
            .note("MaxRunspaces", self.max_runspaces)
            .build()
    }
}

/// SET_MAX_RUNSPACES / SET_MIN_RUNSPACES (MS-PSRP 2.2.2.6-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetRunspaces {
    /// The new maximum (or minimum).
    pub count: i32,
    /// `ci`: call id the RUNSPACE_AVAILABILITY answer carries.
    pub call_id: i64,
}

impl SetRunspaces {
    /// Reads the body; `property` is `MaxRunspaces` or `MinRunspaces`.
    pub fn from_value(
        v: &PsValue,
        property: &'static str,
        context: &'static str,
    ) -> Result<Self, MessageError> {
        let p = Props::of(v, context)?;
        Ok(SetRunspaces {
            count: p.i32(property)?,
            call_id: p.i64("ci")?,
        })
    }

    /// The body; `property` is `MaxRunspaces` or `MinRunspaces`.
    pub fn to_value(&self, property: &str) -> PsValue {
        ObjBuilder::new()
            .note(property, self.count)
            .note("ci", PsValue::I64(self.call_id))
            .build()
    }
}

/// What a RUNSPACE_AVAILABILITY message answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Answer to SET_MAX/MIN_RUNSPACES or RESET_RUNSPACE_STATE: whether it worked.
    Success(bool),
    /// Answer to GET_AVAILABLE_RUNSPACES: how many runspaces are free.
    Count(i64),
}

/// RUNSPACE_AVAILABILITY (MS-PSRP 2.2.2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunspaceAvailability {
    /// `ci` of the request this answers.
    pub call_id: i64,
    /// `SetMinMaxRunspacesResponse`.
    pub response: Availability,
}

impl RunspaceAvailability {
    const CONTEXT: &'static str = "RUNSPACE_AVAILABILITY";

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        let r = p.require("SetMinMaxRunspacesResponse")?;
        let response = match r {
            PsValue::Bool(b) => Availability::Success(*b),
            other => Availability::Count(other.as_i64().ok_or(MessageError::WrongType {
                context: Self::CONTEXT,
                property: "SetMinMaxRunspacesResponse",
                expected: "a boolean or an integer",
                found: super::values::kind_name(other),
            })?),
        };
        Ok(RunspaceAvailability {
            call_id: p.i64("ci")?,
            response,
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        let r = match self.response {
            Availability::Success(b) => PsValue::Bool(b),
            Availability::Count(n) => PsValue::I64(n),
        };
        ObjBuilder::new()
            .note("SetMinMaxRunspacesResponse", r)
            .note("ci", PsValue::I64(self.call_id))
            .build()
    }
}

/// A message that carries only a call id: GET_AVAILABLE_RUNSPACES and
/// RESET_RUNSPACE_STATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallId {
    /// `ci`.
    pub call_id: i64,
}

impl CallId {
    /// Reads the message body.
    pub fn from_value(v: &PsValue, context: &'static str) -> Result<Self, MessageError> {
        Ok(CallId {
            call_id: Props::of(v, context)?.i64("ci")?,
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("ci", PsValue::I64(self.call_id))
            .build()
    }
}

/// CONNECT_RUNSPACEPOOL (MS-PSRP 2.2.2.29).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectRunspacePool {
    /// New `MinRunspaces`, if any.
    pub min_runspaces: Option<i32>,
    /// New `MaxRunspaces`, if any.
    pub max_runspaces: Option<i32>,
}

impl ConnectRunspacePool {
    /// Reads the message body (an empty `<S/>` when nothing changes).
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        if let PsValue::String(_) = v {
            return Ok(ConnectRunspacePool::default());
        }
        let p = Props::of(v, "CONNECT_RUNSPACEPOOL")?;
        Ok(ConnectRunspacePool {
            min_runspaces: p.opt_i32("MinRunspaces")?,
            max_runspaces: p.opt_i32("MaxRunspaces")?,
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        if self.min_runspaces.is_none() && self.max_runspaces.is_none() {
            return PsValue::String(String::new());
        }
        ObjBuilder::new()
            .note_opt("MinRunspaces", self.min_runspaces)
            .note_opt("MaxRunspaces", self.max_runspaces)
            .build()
    }
}

/// USER_EVENT (MS-PSRP 2.2.2.12): an event forwarded from the server.
#[derive(Clone, Debug, PartialEq)]
pub struct UserEvent {
    /// `PSEventArgs.EventIdentifier`.
    pub event_identifier: Option<i32>,
    /// `PSEventArgs.SourceIdentifier`.
    pub source_identifier: Option<String>,
    /// `PSEventArgs.TimeGenerated`.
    pub time_generated: Option<DateTime>,
    /// `PSEventArgs.Sender`.
    pub sender: PsValue,
    /// `PSEventArgs.SourceArgs`.
    pub source_args: Vec<PsValue>,
    /// `PSEventArgs.MessageData`.
    pub message_data: PsValue,
    /// `PSEventArgs.ComputerName`.
    pub computer_name: Option<String>,
    /// `PSEventArgs.RunspaceId`.
    pub runspace_id: Option<Uuid>,
}

impl UserEvent {
    const CONTEXT: &'static str = "USER_EVENT";

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        let get = |name: &str| {
            p.get(&format!("PSEventArgs.{name}"))
                .or_else(|| p.get(name))
        };
        let int = |name: &'static str| -> Result<Option<i32>, MessageError> {
            match get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .map(Some)
                    .ok_or(MessageError::WrongType {
                        context: Self::CONTEXT,
                        property: name,
                        expected: "a 32-bit integer",
                        found: super::values::kind_name(v),
                    }),
            }
        };
        Ok(UserEvent {
            event_identifier: int("EventIdentifier")?,
            source_identifier: get("SourceIdentifier").and_then(string_of),
            time_generated: match get("TimeGenerated") {
                Some(PsValue::DateTime(d)) => Some(*d),
                _ => None,
            },
            sender: get("Sender").cloned().unwrap_or(PsValue::Null),
            source_args: get("SourceArgs")
                .and_then(super::values::list_items)
                .map(<[PsValue]>::to_vec)
                .unwrap_or_default(),
            message_data: get("MessageData").cloned().unwrap_or(PsValue::Null),
            computer_name: get("ComputerName").and_then(string_of),
            runspace_id: match get("RunspaceId") {
                Some(PsValue::Guid(g)) => Some(*g),
                _ => None,
            },
        })
    }

    /// The message body as a server writes it.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note_or_nil("PSEventArgs.EventIdentifier", self.event_identifier)
            .note_or_nil(
                "PSEventArgs.SourceIdentifier",
                self.source_identifier.clone(),
            )
            .note_or_nil(
                "PSEventArgs.TimeGenerated",
                self.time_generated.map(PsValue::DateTime),
            )
            .note("PSEventArgs.Sender", self.sender.clone())
            .note(
                "PSEventArgs.SourceArgs",
                super::values::typed_list(
                    &["System.Object[]", "System.Array", "System.Object"],
                    self.source_args.clone(),
                ),
            )
            .note("PSEventArgs.MessageData", self.message_data.clone())
            .note_or_nil("PSEventArgs.ComputerName", self.computer_name.clone())
            .note_or_nil(
                "PSEventArgs.RunspaceId",
                self.runspace_id.map(PsValue::Guid),
            )
            .build()
    }
}

/// A message whose body is one string property: PUBLIC_KEY (`PublicKey`,
/// base64 of a CAPI PUBLICKEYBLOB) and ENCRYPTED_SESSION_KEY
/// (`EncryptedSessionKey`, base64 of a CAPI SIMPLEBLOB).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBlob {
    /// The base64 text.
    pub base64: String,
}

impl std::fmt::Debug for KeyBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs.
        write!(f, "KeyBlob(<{} base64 chars>)", self.base64.len())
    }
}

impl KeyBlob {
    /// Reads the body; `property` names the string property.
    pub fn from_value(
        v: &PsValue,
        property: &'static str,
        context: &'static str,
    ) -> Result<Self, MessageError> {
        Ok(KeyBlob {
            base64: Props::of(v, context)?.string(property)?,
        })
    }

    /// The body with the given property name.
    pub fn to_value(&self, property: &str) -> PsValue {
        ObjBuilder::new()
            .note(property, self.base64.as_str())
            .build()
    }
}
