//! Stream records: ErrorRecord (MS-PSRP 2.2.3.15), InformationalRecord for
//! warning / verbose / debug (2.2.3.16), InformationRecord (2.2.2.26) and
//! ProgressRecord (2.2.3.22 / 2.2.2.25).

use crate::clixml::{DateTime, PsValue};

use super::values::{enum_value, list_items, string_of, typed_list, ObjBuilder, Props};
use super::MessageError;

macro_rules! int_enum {
    (
        $(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $value:literal ),* $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vdoc])* $variant, )*
            /// A value this library does not know.
            Other(i32),
        }

        impl $name {
            /// The enum for an integer value.
            pub fn from_i32(value: i32) -> Self {
                match value {
                    $( $value => $name::$variant, )*
                    other => $name::Other(other),
                }
            }

            /// The integer value.
            pub fn as_i32(self) -> i32 {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Other(v) => v,
                }
            }

            /// The .NET name (the number for unknown values).
            pub fn name(self) -> String {
                match self {
                    $( $name::$variant => stringify!($variant).to_owned(), )*
                    $name::Other(v) => v.to_string(),
                }
            }
        }
    };
}
pub(crate) use int_enum;

int_enum! {
    /// System.Management.Automation.ErrorCategory.
    ErrorCategory {
        /// 0
        NotSpecified = 0,
        /// 1
        OpenError = 1,
        /// 2
        CloseError = 2,
        /// 3
        DeviceError = 3,
        /// 4
        DeadlockDetected = 4,
        /// 5
        InvalidArgument = 5,
        /// 6
        InvalidData = 6,
        /// 7
        InvalidOperation = 7,
        /// 8
        InvalidResult = 8,
        /// 9
        InvalidType = 9,
        /// 10
        MetadataError = 10,
        /// 11
        NotImplemented = 11,
        /// 12
        NotInstalled = 12,
        /// 13
        ObjectNotFound = 13,
        /// 14
        OperationStopped = 14,
        /// 15
        OperationTimeout = 15,
        /// 16
        SyntaxError = 16,
        /// 17
        ParserError = 17,
        /// 18
        PermissionDenied = 18,
        /// 19
        ResourceBusy = 19,
        /// 20
        ResourceExists = 20,
        /// 21
        ResourceUnavailable = 21,
        /// 22
        ReadError = 22,
        /// 23
        WriteError = 23,
        /// 24
        FromStdErr = 24,
        /// 25
        SecurityError = 25,
        /// 26
        ProtocolError = 26,
        /// 27
        ConnectionError = 27,
        /// 28
        AuthenticationError = 28,
        /// 29
        LimitsExceeded = 29,
        /// 30
        QuotaExceeded = 30,
        /// 31
        NotEnabled = 31,
    }
}

int_enum! {
    /// System.Management.Automation.ProgressRecordType.
    ProgressRecordType {
        /// The operation is not complete.
        Processing = 0,
        /// The operation is complete.
        Completed = 1,
    }
}

/// ErrorCategoryInfo, flattened into an ErrorRecord as `ErrorCategory_*`.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorCategoryInfo {
    /// The category.
    pub category: ErrorCategory,
    /// `ErrorCategory_Activity`: usually the command that failed.
    pub activity: Option<String>,
    /// `ErrorCategory_Reason`: usually the exception type's short name.
    pub reason: Option<String>,
    /// `ErrorCategory_TargetName`.
    pub target_name: Option<String>,
    /// `ErrorCategory_TargetType`.
    pub target_type: Option<String>,
    /// `ErrorCategory_Message`: the line PowerShell prints, e.g.
    /// `ObjectNotFound: (C:\x:String) [Get-Item], ItemNotFoundException`.
    pub message: Option<String>,
}

impl ErrorCategoryInfo {
    /// The line PowerShell prints for this category info, as the server
    /// would have written it in `ErrorCategory_Message`.
    pub fn display_line(&self) -> String {
        if let Some(m) = &self.message {
            return m.clone();
        }
        format!(
            "{}: ({}:{}) [{}], {}",
            self.category.name(),
            self.target_name.as_deref().unwrap_or(""),
            self.target_type.as_deref().unwrap_or(""),
            self.activity.as_deref().unwrap_or(""),
            self.reason.as_deref().unwrap_or("")
        )
    }
}

/// The exception of an ErrorRecord, as serialized by the server.
#[derive(Clone, Debug, PartialEq)]
pub struct ExceptionInfo {
    /// .NET type names, most derived first (e.g.
    /// `System.Management.Automation.ItemNotFoundException`).
    pub type_names: Vec<String>,
    /// The exception message.
    pub message: Option<String>,
    /// HResult, when serialized.
    pub hresult: Option<i32>,
    /// The exception object as decoded.
    pub value: PsValue,
}

/// Where a record was produced (MS-PSRP 2.2.3.15.1), from the
/// `InvocationInfo` object or the flattened `InvocationInfo_*` members.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvocationInfo {
    /// `MyCommand`: the command (name or script text), when known.
    pub my_command: Option<String>,
    /// `InvocationName`: the name used to call the command.
    pub invocation_name: Option<String>,
    /// `ScriptName`.
    pub script_name: Option<String>,
    /// `ScriptLineNumber`.
    pub script_line_number: Option<i32>,
    /// `OffsetInLine`.
    pub offset_in_line: Option<i32>,
    /// `Line`: the source line.
    pub line: Option<String>,
    /// `PositionMessage`: the "At line:1 char:1" text.
    pub position_message: Option<String>,
    /// `HistoryId`.
    pub history_id: Option<i64>,
    /// `PipelineLength`.
    pub pipeline_length: Option<i32>,
    /// `PipelinePosition`.
    pub pipeline_position: Option<i32>,
    /// `CommandOrigin` (Runspace or Internal).
    pub command_origin: Option<String>,
}

impl InvocationInfo {
    fn from_object(p: &Props<'_>) -> Result<Self, MessageError> {
        let my_command = p.get("MyCommand").and_then(command_text);
        Self::read(p, false, my_command)
    }

    /// From the `InvocationInfo_*` and `CommandInfo_*` members a record
    /// carries when its invocation info is serialized inline.
    fn from_flattened(p: &Props<'_>) -> Result<Self, MessageError> {
        let my_command = p
            .opt_string("CommandInfo_Name")?
            .filter(|n| !n.is_empty())
            .or(p.opt_string("CommandInfo_Definition")?);
        Self::read(p, true, my_command)
    }

    /// The members an InvocationInfo object has, or (`flattened`) the same
    /// with the `InvocationInfo_` prefix a record's inline members carry.
    fn read(
        p: &Props<'_>,
        flattened: bool,
        my_command: Option<String>,
    ) -> Result<Self, MessageError> {
        macro_rules! name {
            ($n:literal) => {
                if flattened {
                    concat!("InvocationInfo_", $n)
                } else {
                    $n
                }
            };
        }
        Ok(InvocationInfo {
            my_command,
            invocation_name: p.opt_string(name!("InvocationName"))?,
            script_name: p.opt_string(name!("ScriptName"))?,
            script_line_number: p.opt_i32(name!("ScriptLineNumber"))?,
            offset_in_line: p.opt_i32(name!("OffsetInLine"))?,
            line: p.opt_string(name!("Line"))?,
            position_message: p.opt_string(name!("PositionMessage"))?,
            history_id: p.opt_i64(name!("HistoryId"))?,
            pipeline_length: p.opt_i32(name!("PipelineLength"))?,
            pipeline_position: p.opt_i32(name!("PipelinePosition"))?,
            command_origin: p.get(name!("CommandOrigin")).and_then(enum_or_string),
        })
    }
}

/// The command of an InvocationInfo: a string, or a CommandInfo object.
fn command_text(v: &PsValue) -> Option<String> {
    if let Some(s) = string_of(v) {
        return Some(s);
    }
    let obj = v.as_object()?;
    obj.property("Name")
        .and_then(string_of)
        .or_else(|| obj.to_string.clone())
}

fn enum_or_string(v: &PsValue) -> Option<String> {
    string_of(v).or_else(|| v.as_object().and_then(|o| o.to_string.clone()))
}

fn int_list(v: Option<&PsValue>) -> Vec<i32> {
    v.and_then(list_items)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// An error record: a non-terminating error (ERROR_RECORD message), the
/// reason a pipeline failed or a pool broke (`ExceptionAsErrorRecord`), or
/// a host method's exception.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorRecord {
    /// The record's text (its ToString): the exception message, or the
    /// ErrorDetails message when one was set.
    pub message: String,
    /// The exception.
    pub exception: Option<ExceptionInfo>,
    /// `FullyQualifiedErrorId`, e.g. `PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand`.
    pub fully_qualified_error_id: Option<String>,
    /// `TargetObject`: what the command was working on.
    pub target_object: Option<PsValue>,
    /// Category information.
    pub category: ErrorCategoryInfo,
    /// `ErrorDetails_Message`, which replaces the exception message for display.
    pub error_details_message: Option<String>,
    /// `ErrorDetails_RecommendedAction`.
    pub recommended_action: Option<String>,
    /// `ErrorDetails_ScriptStackTrace`.
    pub script_stack_trace: Option<String>,
    /// Where the error happened.
    pub invocation_info: Option<InvocationInfo>,
    /// `PipelineIterationInfo`.
    pub pipeline_iteration_info: Vec<i32>,
}

impl ErrorRecord {
    const CONTEXT: &'static str = "ErrorRecord";
    const TYPE_NAMES: [&'static str; 2] =
        ["System.Management.Automation.ErrorRecord", "System.Object"];

    /// A record for an error raised on this side, e.g. to answer a host
    /// call the client does not support.
    pub fn new(
        message: impl Into<String>,
        exception_type: &str,
        fully_qualified_error_id: impl Into<String>,
        category: ErrorCategory,
    ) -> Self {
        let message = message.into();
        let reason = exception_type
            .rsplit('.')
            .next()
            .unwrap_or(exception_type)
            .to_owned();
        let exception_value = ObjBuilder::with_types(&[
            exception_type,
            "System.SystemException",
            "System.Exception",
            "System.Object",
        ])
        .display(format!("{exception_type}: {message}"))
        .adapted("Message", message.clone())
        .adapted("HResult", PsValue::I32(-2146233087))
        .build();
        ErrorRecord {
            exception: Some(exception_info(&exception_value)),
            message,
            fully_qualified_error_id: Some(fully_qualified_error_id.into()),
            target_object: None,
            category: ErrorCategoryInfo {
                category,
                activity: None,
                reason: Some(reason),
                target_name: None,
                target_type: None,
                message: None,
            },
            error_details_message: None,
            recommended_action: None,
            script_stack_trace: None,
            invocation_info: None,
            pipeline_iteration_info: Vec::new(),
        }
    }

    /// Reads an ErrorRecord object.
    pub fn from_value(value: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(value, Self::CONTEXT)?;
        let exception = p.get("Exception").map(exception_info);
        let category = ErrorCategoryInfo {
            category: ErrorCategory::from_i32(p.opt_i32("ErrorCategory_Category")?.unwrap_or(0)),
            activity: p.opt_string("ErrorCategory_Activity")?,
            reason: p.opt_string("ErrorCategory_Reason")?,
            target_name: p.opt_string("ErrorCategory_TargetName")?,
            target_type: p.opt_string("ErrorCategory_TargetType")?,
            message: p.opt_string("ErrorCategory_Message")?,
        };
        let invocation_info = match p.get("InvocationInfo") {
            Some(v) => match Props::of(v, "InvocationInfo") {
                Ok(ip) => Some(InvocationInfo::from_object(&ip)?),
                Err(_) => None,
            },
            None if p.opt_bool("SerializeExtendedInfo")?.unwrap_or(false) => {
                Some(InvocationInfo::from_flattened(&p)?)
            }
            None => None,
        };
        let error_details_message = p.opt_string("ErrorDetails_Message")?;
        let message = error_details_message
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| p.obj.to_string.clone())
            .or_else(|| exception.as_ref().and_then(|e| e.message.clone()))
            .unwrap_or_default();
        Ok(ErrorRecord {
            message,
            exception,
            fully_qualified_error_id: p.opt_string("FullyQualifiedErrorId")?,
            target_object: p.get("TargetObject").cloned(),
            category,
            error_details_message,
            recommended_action: p.opt_string("ErrorDetails_RecommendedAction")?,
            script_stack_trace: p.opt_string("ErrorDetails_ScriptStackTrace")?,
            invocation_info,
            pipeline_iteration_info: int_list(p.get("PipelineIterationInfo")),
        })
    }

    /// The record as PowerShell serializes it for remoting.
    pub fn to_value(&self) -> PsValue {
        let exception = self.exception.as_ref().map(|e| e.value.clone());
        let c = &self.category;
        let mut b = ObjBuilder::with_types(&Self::TYPE_NAMES)
            .display(self.message.clone())
            .note_or_nil("Exception", exception)
            .note_or_nil("TargetObject", self.target_object.clone())
            .note_or_nil(
                "FullyQualifiedErrorId",
                self.fully_qualified_error_id.clone(),
            )
            .note("InvocationInfo", PsValue::Null)
            .note("ErrorCategory_Category", PsValue::I32(c.category.as_i32()))
            .note(
                "ErrorCategory_Activity",
                c.activity.clone().unwrap_or_default(),
            )
            .note("ErrorCategory_Reason", c.reason.clone().unwrap_or_default())
            .note(
                "ErrorCategory_TargetName",
                c.target_name.clone().unwrap_or_default(),
            )
            .note(
                "ErrorCategory_TargetType",
                c.target_type.clone().unwrap_or_default(),
            )
            .note("ErrorCategory_Message", c.display_line());
        if self.error_details_message.is_some() || self.recommended_action.is_some() {
            b = b
                .note_or_nil("ErrorDetails_Message", self.error_details_message.clone())
                .note_or_nil(
                    "ErrorDetails_RecommendedAction",
                    self.recommended_action.clone(),
                );
        }
        b = b.note_opt(
            "ErrorDetails_ScriptStackTrace",
            self.script_stack_trace.clone(),
        );
        b.note("SerializeExtendedInfo", false).build()
    }

    /// The exception's .NET type, most derived (e.g.
    /// `System.Management.Automation.CommandNotFoundException`).
    pub fn exception_type(&self) -> Option<&str> {
        self.exception
            .as_ref()
            .and_then(|e| e.type_names.first())
            .map(|t| t.strip_prefix("Deserialized.").unwrap_or(t))
    }

    /// The exception message, if the exception carries one, else the
    /// record's text.
    pub fn exception_message(&self) -> &str {
        self.exception
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .unwrap_or(&self.message)
    }

    /// The target object as short text: strings and numbers as themselves,
    /// objects as their ToString (or their JSON when they have none).
    pub fn target_text(&self) -> Option<String> {
        match self.target_object.as_ref()? {
            PsValue::Null => None,
            v @ PsValue::Object(o) => o
                .to_string
                .clone()
                .or_else(|| Some(crate::clixml::to_json(v).to_string())),
            other => match crate::clixml::to_json(other) {
                serde_json::Value::String(s) => Some(s),
                j => Some(j.to_string()),
            },
        }
    }

    /// The text PowerShell prints for this record: the command and the
    /// message, the position, then category, error id, target and
    /// recommended action (what `psrp` logs after `ERROR:`).
    ///
    /// ```text
    /// Get-Item : Cannot find path 'C:\x' because it does not exist.
    ///     + CategoryInfo          : ObjectNotFound: (C:\x:String) [Get-Item], ItemNotFoundException
    ///     + FullyQualifiedErrorId : PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand
    ///     + TargetObject          : C:\x
    /// ```
    pub fn formatted(&self) -> String {
        let mut s = String::new();
        let command = self
            .invocation_info
            .as_ref()
            .and_then(|i| i.my_command.as_deref().or(i.invocation_name.as_deref()))
            .filter(|c| !c.is_empty() && !c.contains('\n'))
            .or(self.category.activity.as_deref().filter(|a| !a.is_empty()));
        if let Some(c) = command {
            s.push_str(c);
            s.push_str(" : ");
        }
        let message = if self.message.is_empty() {
            self.exception_message()
        } else {
            &self.message
        };
        s.push_str(message.trim_end());
        if let Some(pos) = self
            .invocation_info
            .as_ref()
            .and_then(|i| i.position_message.as_deref())
            .filter(|p| !p.trim().is_empty())
        {
            s.push('\n');
            s.push_str(pos.trim_end());
        }
        s.push_str("\n    + CategoryInfo          : ");
        s.push_str(&self.category.display_line());
        if let Some(id) = &self.fully_qualified_error_id {
            s.push_str("\n    + FullyQualifiedErrorId : ");
            s.push_str(id);
        }
        if let Some(t) = self.target_text() {
            s.push_str("\n    + TargetObject          : ");
            s.push_str(&t);
        }
        if let Some(a) = self.recommended_action.as_deref().filter(|a| !a.is_empty()) {
            s.push_str("\n    + RecommendedAction     : ");
            s.push_str(a);
        }
        s
    }
}

fn exception_info(v: &PsValue) -> ExceptionInfo {
    let obj = v.as_object();
    let type_names = obj
        .and_then(|o| o.type_names.as_ref())
        .map(|t| t.names().to_vec())
        .unwrap_or_default();
    let message = obj
        .and_then(|o| o.property("Message"))
        .and_then(string_of)
        .or_else(|| string_of(v));
    let hresult = obj
        .and_then(|o| o.property("HResult"))
        .and_then(PsValue::as_i64)
        .and_then(|n| i32::try_from(n).ok());
    ExceptionInfo {
        type_names,
        message,
        hresult,
        value: v.clone(),
    }
}

/// A warning, verbose or debug record (MS-PSRP 2.2.3.16).
#[derive(Clone, Debug, PartialEq)]
pub struct InformationalRecord {
    /// The text.
    pub message: String,
    /// Where it was written, when the server serialized that.
    pub invocation_info: Option<InvocationInfo>,
    /// `InformationalRecord_PipelineIterationInfo`.
    pub pipeline_iteration_info: Vec<i32>,
}

impl InformationalRecord {
    /// Reads a record; `context` names the message for errors.
    pub fn from_value(value: &PsValue, context: &'static str) -> Result<Self, MessageError> {
        // A record can also arrive as a bare string (e.g. as pipeline output
        // of Write-Warning redirected to output in PowerShell 2).
        if let Some(s) = string_of(value) {
            return Ok(InformationalRecord {
                message: s,
                invocation_info: None,
                pipeline_iteration_info: Vec::new(),
            });
        }
        let p = Props::of(value, context)?;
        let message = match p.opt_string("InformationalRecord_Message")? {
            Some(m) => m,
            None => p
                .opt_string("Message")?
                .or_else(|| p.obj.to_string.clone())
                .ok_or(MessageError::MissingProperty {
                    context,
                    property: "InformationalRecord_Message",
                })?,
        };
        let with_invocation = p
            .opt_bool("InformationalRecord_SerializeInvocationInfo")?
            .unwrap_or(false);
        Ok(InformationalRecord {
            message,
            invocation_info: if with_invocation {
                Some(InvocationInfo::from_flattened(&p)?)
            } else {
                None
            },
            pipeline_iteration_info: int_list(p.get("InformationalRecord_PipelineIterationInfo")),
        })
    }

    /// The record as a server serializes it, with the given record type
    /// (e.g. `System.Management.Automation.WarningRecord`).
    pub fn to_value(&self, record_type: &str) -> PsValue {
        ObjBuilder::with_types(&[
            record_type,
            "System.Management.Automation.InformationalRecord",
            "System.Object",
        ])
        .display(self.message.clone())
        .note("InformationalRecord_Message", self.message.clone())
        .note("InformationalRecord_SerializeInvocationInfo", false)
        .build()
    }
}

/// An information record (MS-PSRP 2.2.2.26; Write-Information, Write-Host).
#[derive(Clone, Debug, PartialEq)]
pub struct InformationRecord {
    /// `MessageData`: any object; Write-Host sends a HostInformationMessage.
    pub message_data: PsValue,
    /// `Source`: what wrote it, e.g. `Write-Host`.
    pub source: Option<String>,
    /// `TimeGenerated`.
    pub time_generated: Option<DateTime>,
    /// `Tags`, e.g. `PSHOST` for Write-Host.
    pub tags: Vec<String>,
    /// `User`.
    pub user: Option<String>,
    /// `Computer`.
    pub computer: Option<String>,
    /// `ProcessId`.
    pub process_id: Option<i64>,
    /// `NativeThreadId`.
    pub native_thread_id: Option<i64>,
    /// `ManagedThreadId`.
    pub managed_thread_id: Option<i64>,
}

impl InformationRecord {
    const CONTEXT: &'static str = "INFORMATION_RECORD";

    /// Reads the message body.
    pub fn from_value(value: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(value, Self::CONTEXT)?;
        let time_generated = match p.get("TimeGenerated") {
            None => None,
            Some(PsValue::DateTime(d)) => Some(*d),
            Some(other) => {
                return Err(MessageError::WrongType {
                    context: Self::CONTEXT,
                    property: "TimeGenerated",
                    expected: "a DateTime",
                    found: super::values::kind_name(other),
                })
            }
        };
        Ok(InformationRecord {
            message_data: p
                .obj
                .property("MessageData")
                .cloned()
                .unwrap_or(PsValue::Null),
            source: p.opt_string("Source")?,
            time_generated,
            tags: p.list("Tags")?.iter().filter_map(string_of).collect(),
            user: p.opt_string("User")?,
            computer: p.opt_string("Computer")?,
            process_id: p.opt_i64("ProcessId")?,
            native_thread_id: p.opt_i64("NativeThreadId")?,
            managed_thread_id: p.opt_i64("ManagedThreadId")?,
        })
    }

    /// The message body as a server writes it.
    pub fn to_value(&self) -> PsValue {
        let tags = self
            .tags
            .iter()
            .map(|t| PsValue::from(t.as_str()))
            .collect();
        ObjBuilder::new()
            .note("MessageData", self.message_data.clone())
            .note_or_nil("Source", self.source.clone())
            .note_or_nil("TimeGenerated", self.time_generated.map(PsValue::DateTime))
            .note(
                "Tags",
                typed_list(
                    &[
                        "System.Collections.Generic.List`1[[System.String, mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089]]",
                        "System.Object",
                    ],
                    tags,
                ),
            )
            .note_or_nil("User", self.user.clone())
            .note_or_nil("Computer", self.computer.clone())
            .note_or_nil("ProcessId", self.process_id.map(|v| PsValue::U32(v as u32)))
            .note_or_nil("NativeThreadId", self.native_thread_id.map(|v| PsValue::U32(v as u32)))
            .note_or_nil("ManagedThreadId", self.managed_thread_id.map(|v| PsValue::U32(v as u32)))
            .build()
    }

    /// The text to show: a string as is, a HostInformationMessage's
    /// `Message`, else the object's ToString.
    pub fn text(&self) -> String {
        if let Some(s) = string_of(&self.message_data) {
            return s;
        }
        match &self.message_data {
            PsValue::Object(o) => o
                .property("Message")
                .and_then(string_of)
                .or_else(|| o.to_string.clone())
                .unwrap_or_default(),
            PsValue::Null => String::new(),
            other => format!("{other:?}"),
        }
    }
}

/// A progress record (MS-PSRP 2.2.2.25).
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressRecord {
    /// `Activity`.
    pub activity: String,
    /// `ActivityId`.
    pub activity_id: i32,
    /// `StatusDescription`.
    pub status_description: String,
    /// `CurrentOperation`.
    pub current_operation: Option<String>,
    /// `ParentActivityId` (-1 for none).
    pub parent_activity_id: i32,
    /// `PercentComplete` (-1 for unknown).
    pub percent_complete: i32,
    /// `Type`: processing or completed.
    pub record_type: ProgressRecordType,
    /// `SecondsRemaining` (-1 for unknown).
    pub seconds_remaining: i32,
}

impl ProgressRecord {
    const CONTEXT: &'static str = "PROGRESS_RECORD";

    /// Reads the message body.
    pub fn from_value(value: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(value, Self::CONTEXT)?;
        Ok(ProgressRecord {
            activity: p.opt_string("Activity")?.unwrap_or_default(),
            activity_id: p.opt_i32("ActivityId")?.unwrap_or(0),
            status_description: p.opt_string("StatusDescription")?.unwrap_or_default(),
            current_operation: p.opt_string("CurrentOperation")?,
            parent_activity_id: p.opt_i32("ParentActivityId")?.unwrap_or(-1),
            percent_complete: p.opt_i32("PercentComplete")?.unwrap_or(-1),
            record_type: ProgressRecordType::from_i32(p.opt_i32("Type")?.unwrap_or(0)),
            seconds_remaining: p.opt_i32("SecondsRemaining")?.unwrap_or(-1),
        })
    }

    /// The message body as a server writes it.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("Activity", self.activity.clone())
            .note("ActivityId", self.activity_id)
            .note("StatusDescription", self.status_description.clone())
            .note_or_nil("CurrentOperation", self.current_operation.clone())
            .note("ParentActivityId", self.parent_activity_id)
            .note("PercentComplete", self.percent_complete)
            .note(
                "Type",
                enum_value(
                    "System.Management.Automation.ProgressRecordType",
                    self.record_type.as_i32(),
                    self.record_type.name(),
                ),
            )
            .note("SecondsRemaining", self.seconds_remaining)
            .build()
    }

    /// One line for a log: `Activity: Status (45%) current operation, 10s
    /// left`, `Activity: Status (completed)` for a completed record; the
    /// percentage only when `with_percent` (a progress bar shows it).
    pub fn text(&self, with_percent: bool) -> String {
        let mut s = self.activity.trim().to_owned();
        let status = self.status_description.trim();
        if !status.is_empty() {
            s.push_str(": ");
            s.push_str(status);
        }
        if self.record_type == ProgressRecordType::Completed {
            s.push_str(" (completed)");
            return s;
        }
        if with_percent && self.percent_complete >= 0 {
            s.push_str(&format!(" ({}%)", self.percent_complete));
        }
        if let Some(op) = self.current_operation.as_deref().map(str::trim) {
            if !op.is_empty() {
                s.push_str(", ");
                s.push_str(op);
            }
        }
        if self.seconds_remaining >= 0 {
            s.push_str(&format!(", {}s left", self.seconds_remaining));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_record_text_has_category_id_and_target() {
        let mut r = ErrorRecord::new(
            "Cannot find path 'C:\\x' because it does not exist.",
            "System.Management.Automation.ItemNotFoundException",
            "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
            ErrorCategory::ObjectNotFound,
        );
        r.target_object = Some(PsValue::from("C:\\x"));
        r.category.activity = Some("Get-Item".into());
        let text = r.formatted();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Get-Item : Cannot find path 'C:\\x' because it does not exist."
        );
        assert!(lines[1].contains("ObjectNotFound") && lines[1].contains("ItemNotFoundException"));
        assert!(lines[2].ends_with(": PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand"));
        assert!(lines[3].ends_with(": C:\\x"));
        r.target_object = Some(PsValue::I32(7));
        assert_eq!(r.target_text().as_deref(), Some("7"));
    }

    #[test]
    fn progress_lines_read_well() {
        let mut r = ProgressRecord {
            activity: "Copying".into(),
            activity_id: 1,
            status_description: "file 3 of 4".into(),
            current_operation: Some("C:\\a".into()),
            parent_activity_id: -1,
            percent_complete: 75,
            record_type: ProgressRecordType::Processing,
            seconds_remaining: -1,
        };
        assert_eq!(r.text(true), "Copying: file 3 of 4 (75%), C:\\a");
        assert_eq!(r.text(false), "Copying: file 3 of 4, C:\\a");
        r.record_type = ProgressRecordType::Completed;
        assert_eq!(r.text(true), "Copying: file 3 of 4 (completed)");
    }
}
