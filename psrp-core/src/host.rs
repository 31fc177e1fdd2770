//! The client's PowerShell host as PSRP sees it: the HostInfo a client
//! declares (MS-PSRP 2.2.3.14), and host method calls from the server with
//! their responses (2.2.2.15/16, 2.2.2.27/28, method ids 2.2.3.17).

use crate::clixml::PsValue;
use crate::message::values::{
    array_list, dict_entries, enum_value, hashtable, list_items, ObjBuilder, Props,
};
use crate::message::{ErrorCategory, ErrorRecord, MessageError};

/// What the client's host implements, sent in INIT_RUNSPACEPOOL and
/// CREATE_PIPELINE. The default declares no host at all, which makes the
/// server fail host calls itself (e.g. `Read-Host`) instead of sending them.
#[derive(Clone, Debug, PartialEq)]
pub struct HostInfo {
    /// `_isHostNull`: no PSHost at all.
    pub is_host_null: bool,
    /// `_isHostUINull`: the host has no UI (no Write*/Read*/Prompt* calls).
    pub is_host_ui_null: bool,
    /// `_isHostRawUINull`: the UI has no RawUI (no console size, colours...).
    pub is_host_raw_ui_null: bool,
    /// `_useRunspaceHost`: a pipeline uses the runspace pool's host.
    pub use_runspace_host: bool,
    /// `_hostDefaultData`: RawUI values the server may read without a call.
    pub default_data: Option<HostDefaultData>,
}

impl Default for HostInfo {
    fn default() -> Self {
        HostInfo {
            is_host_null: true,
            is_host_ui_null: true,
            is_host_raw_ui_null: true,
            use_runspace_host: true,
            default_data: None,
        }
    }
}

/// RawUI default values keyed by MS-PSRP 2.2.3.14 index (0 ForegroundColor,
/// 1 BackgroundColor, 2 CursorPosition, 3 WindowPosition, 4 CursorSize,
/// 5 BufferSize, 6 WindowSize, 7 MaxWindowSize, 8 MaxPhysicalWindowSize,
/// 9 WindowTitle), each a .NET type name and a value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostDefaultData {
    /// (index, .NET type name, value), in index order.
    pub entries: Vec<(i32, String, PsValue)>,
}

impl HostDefaultData {
    /// Console-like defaults: colours, a `width`×`height` buffer and window,
    /// and a window title.
    pub fn console(width: i32, height: i32, title: &str) -> Self {
        let size = |w: i32, h: i32| {
            (
                "System.Management.Automation.Host.Size".to_owned(),
                ObjBuilder::new().note("width", w).note("height", h).build(),
            )
        };
        let coords = || {
            (
                "System.Management.Automation.Host.Coordinates".to_owned(),
                ObjBuilder::new().note("x", 0).note("y", 0).build(),
            )
        };
        let mut entries = vec![
            (0, "System.ConsoleColor".to_owned(), PsValue::I32(7)),
            (1, "System.ConsoleColor".to_owned(), PsValue::I32(0)),
        ];
        let (t, v) = coords();
        entries.push((2, t, v));
        let (t, v) = coords();
        entries.push((3, t, v));
        entries.push((4, "System.Int32".to_owned(), PsValue::I32(25)));
        for idx in 5..=8 {
            let (t, v) = size(width, height);
            entries.push((idx, t, v));
        }
        entries.push((9, "System.String".to_owned(), PsValue::from(title)));
        HostDefaultData { entries }
    }

    fn to_value(&self) -> PsValue {
        let entries = self
            .entries
            .iter()
            .map(|(k, t, v)| {
                let entry = ObjBuilder::new()
                    .note("T", t.as_str())
                    .note("V", v.clone())
                    .build();
                (PsValue::I32(*k), entry)
            })
            .collect();
        ObjBuilder::new().note("data", hashtable(entries)).build()
    }

    fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, "HostInfo._hostDefaultData")?;
        let data = p.require("data")?;
        let entries = dict_entries(data).ok_or(MessageError::WrongType {
            context: "HostInfo._hostDefaultData",
            property: "data",
            expected: "a dictionary",
            found: crate::message::values::kind_name(data),
        })?;
        let mut out = Vec::new();
        for (k, entry) in entries {
            let Some(idx) = k.as_i64().and_then(|n| i32::try_from(n).ok()) else {
                continue;
            };
            let ep = Props::of(entry, "HostInfo._hostDefaultData entry")?;
            out.push((
                idx,
                ep.string("T")?,
                ep.get("V").cloned().unwrap_or(PsValue::Null),
            ));
        }
        Ok(HostDefaultData { entries: out })
    }
}

impl HostInfo {
    /// A host with a UI (and a RawUI when `default_data` is given), so the
    /// server sends host calls for Read-Host, Write-Host, prompts...
    pub fn with_ui(default_data: Option<HostDefaultData>) -> Self {
        HostInfo {
            is_host_null: false,
            is_host_ui_null: false,
            is_host_raw_ui_null: default_data.is_none(),
            use_runspace_host: false,
            default_data,
        }
    }

    /// The HostInfo object.
    pub fn to_value(&self) -> PsValue {
        let mut b = ObjBuilder::new();
        if let Some(d) = &self.default_data {
            b = b.note("_hostDefaultData", d.to_value());
        }
        b.note("_isHostNull", self.is_host_null)
            .note("_isHostUINull", self.is_host_ui_null)
            .note("_isHostRawUINull", self.is_host_raw_ui_null)
            .note("_useRunspaceHost", self.use_runspace_host)
            .build()
    }

    /// Reads a HostInfo object.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, "HostInfo")?;
        Ok(HostInfo {
            is_host_null: p.opt_bool("_isHostNull")?.unwrap_or(true),
            is_host_ui_null: p.opt_bool("_isHostUINull")?.unwrap_or(true),
            is_host_raw_ui_null: p.opt_bool("_isHostRawUINull")?.unwrap_or(true),
            use_runspace_host: p.opt_bool("_useRunspaceHost")?.unwrap_or(false),
            default_data: match p.get("_hostDefaultData") {
                Some(d) => Some(HostDefaultData::from_value(d)?),
                None => None,
            },
        })
    }
}

macro_rules! host_methods {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $void:literal; )*) => {
        /// The host methods a server can call (MS-PSRP 2.2.3.17,
        /// System.Management.Automation.Remoting.RemoteHostMethodId).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HostMethodId {
            $( $(#[$doc])* $name, )*
        }

        impl HostMethodId {
            /// The method for a wire value.
            pub fn from_i32(value: i32) -> Option<Self> {
                match value {
                    $( $value => Some(HostMethodId::$name), )*
                    _ => None,
                }
            }

            /// The wire value.
            pub fn as_i32(self) -> i32 {
                match self {
                    $( HostMethodId::$name => $value, )*
                }
            }

            /// The .NET enum name, e.g. `WriteLine2`.
            pub fn name(self) -> &'static str {
                match self {
                    $( HostMethodId::$name => stringify!($name), )*
                }
            }

            /// Whether the method returns nothing (the server expects no
            /// response and sends call id -100).
            pub fn is_void(self) -> bool {
                match self {
                    $( HostMethodId::$name => $void, )*
                }
            }
        }
    };
}

host_methods! {
    /// PSHost.Name
    GetName = 1, false;
    /// PSHost.Version
    GetVersion = 2, false;
    /// PSHost.InstanceId
    GetInstanceId = 3, false;
    /// PSHost.CurrentCulture
    GetCurrentCulture = 4, false;
    /// PSHost.CurrentUICulture
    GetCurrentUICulture = 5, false;
    /// PSHost.SetShouldExit(int)
    SetShouldExit = 6, true;
    /// PSHost.EnterNestedPrompt()
    EnterNestedPrompt = 7, true;
    /// PSHost.ExitNestedPrompt()
    ExitNestedPrompt = 8, true;
    /// PSHost.NotifyBeginApplication()
    NotifyBeginApplication = 9, true;
    /// PSHost.NotifyEndApplication()
    NotifyEndApplication = 10, true;
    /// UI.ReadLine()
    ReadLine = 11, false;
    /// UI.ReadLineAsSecureString()
    ReadLineAsSecureString = 12, false;
    /// UI.Write(string)
    Write1 = 13, true;
    /// UI.Write(fg, bg, string)
    Write2 = 14, true;
    /// UI.WriteLine()
    WriteLine1 = 15, true;
    /// UI.WriteLine(string)
    WriteLine2 = 16, true;
    /// UI.WriteLine(fg, bg, string)
    WriteLine3 = 17, true;
    /// UI.WriteErrorLine(string)
    WriteErrorLine = 18, true;
    /// UI.WriteDebugLine(string)
    WriteDebugLine = 19, true;
    /// UI.WriteProgress(long, ProgressRecord)
    WriteProgress = 20, true;
    /// UI.WriteVerboseLine(string)
    WriteVerboseLine = 21, true;
    /// UI.WriteWarningLine(string)
    WriteWarningLine = 22, true;
    /// UI.Prompt(caption, message, descriptions)
    Prompt = 23, false;
    /// UI.PromptForCredential(caption, message, user, target)
    PromptForCredential1 = 24, false;
    /// UI.PromptForCredential(..., allowed types, options)
    PromptForCredential2 = 25, false;
    /// UI.PromptForChoice(caption, message, choices, default)
    PromptForChoice = 26, false;
    /// RawUI.ForegroundColor get
    GetForegroundColor = 27, false;
    /// RawUI.ForegroundColor set
    SetForegroundColor = 28, true;
    /// RawUI.BackgroundColor get
    GetBackgroundColor = 29, false;
    /// RawUI.BackgroundColor set
    SetBackgroundColor = 30, true;
    /// RawUI.CursorPosition get
    GetCursorPosition = 31, false;
    /// RawUI.CursorPosition set
    SetCursorPosition = 32, true;
    /// RawUI.WindowPosition get
    GetWindowPosition = 33, false;
    /// RawUI.WindowPosition set
    SetWindowPosition = 34, true;
    /// RawUI.CursorSize get
    GetCursorSize = 35, false;
    /// RawUI.CursorSize set
    SetCursorSize = 36, true;
    /// RawUI.BufferSize get
    GetBufferSize = 37, false;
    /// RawUI.BufferSize set
    SetBufferSize = 38, true;
    /// RawUI.WindowSize get
    GetWindowSize = 39, false;
    /// RawUI.WindowSize set
    SetWindowSize = 40, true;
    /// RawUI.WindowTitle get
    GetWindowTitle = 41, false;
    /// RawUI.WindowTitle set
    SetWindowTitle = 42, true;
    /// RawUI.MaxWindowSize get
    GetMaxWindowSize = 43, false;
    /// RawUI.MaxPhysicalWindowSize get
    GetMaxPhysicalWindowSize = 44, false;
    /// RawUI.KeyAvailable get
    GetKeyAvailable = 45, false;
    /// RawUI.ReadKey(options)
    ReadKey = 46, false;
    /// RawUI.FlushInputBuffer()
    FlushInputBuffer = 47, true;
    /// RawUI.SetBufferContents(rect, cell)
    SetBufferContents1 = 48, true;
    /// RawUI.SetBufferContents(origin, cells)
    SetBufferContents2 = 49, true;
    /// RawUI.GetBufferContents(rect)
    GetBufferContents = 50, false;
    /// RawUI.ScrollBufferContents(...)
    ScrollBufferContents = 51, true;
    /// IHostSupportsInteractiveSession.PushRunspace
    PushRunspace = 52, true;
    /// IHostSupportsInteractiveSession.PopRunspace
    PopRunspace = 53, true;
    /// IHostSupportsInteractiveSession.IsRunspacePushed
    GetIsRunspacePushed = 54, false;
    /// IHostSupportsInteractiveSession.Runspace
    GetRunspace = 55, false;
    /// IHostUISupportsMultipleChoiceSelection.PromptForChoice
    PromptForChoiceMultipleSelection = 56, false;
}

impl HostMethodId {
    fn to_value(self) -> PsValue {
        enum_value(
            "System.Management.Automation.Remoting.RemoteHostMethodId",
            self.as_i32(),
            self.name(),
        )
    }
}

/// The call id servers use for void methods, which take no response.
pub const VOID_CALL_ID: i64 = -100;

/// A host method call from the server (RUNSPACEPOOL_HOST_CALL or
/// PIPELINE_HOST_CALL).
#[derive(Clone, Debug, PartialEq)]
pub struct HostCall {
    /// `ci`: the call id to answer with; -100 for void methods.
    pub call_id: i64,
    /// `mi`: the method.
    pub method: HostMethodId,
    /// `mp`: the method's parameters.
    pub parameters: Vec<PsValue>,
}

impl HostCall {
    /// Reads a host call message body; `context` names the message.
    pub fn from_value(v: &PsValue, context: &'static str) -> Result<Self, MessageError> {
        let p = Props::of(v, context)?;
        let call_id = p.i64("ci")?;
        let mi = p.i32("mi")?;
        let method = HostMethodId::from_i32(mi).ok_or(MessageError::InvalidValue {
            context,
            property: "mi",
            value: mi.to_string(),
        })?;
        Ok(HostCall {
            call_id,
            method,
            parameters: match p.get("mp") {
                Some(mp) => list_items(mp).map(<[PsValue]>::to_vec).unwrap_or_default(),
                None => Vec::new(),
            },
        })
    }

    /// The message body as a server writes it.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("ci", PsValue::I64(self.call_id))
            .note("mi", self.method.to_value())
            .note("mp", array_list(self.parameters.clone()))
            .build()
    }

    /// Whether the server waits for a response (non-void methods).
    pub fn needs_response(&self) -> bool {
        self.call_id != VOID_CALL_ID && !self.method.is_void()
    }

    /// A response returning `value` (use `None` for a method whose result
    /// is void or null).
    pub fn respond(&self, value: Option<PsValue>) -> HostResponse {
        HostResponse {
            call_id: self.call_id,
            method: self.method,
            result: value,
            error: None,
        }
    }

    /// A response that fails the call with `error`.
    pub fn respond_error(&self, error: ErrorRecord) -> HostResponse {
        HostResponse {
            call_id: self.call_id,
            method: self.method,
            result: None,
            error: Some(error),
        }
    }

    /// A response saying this client does not implement the method: the
    /// server raises it as an error in the pipeline.
    pub fn respond_not_implemented(&self) -> HostResponse {
        let message = format!(
            "The remote host method {} is not implemented by this client.",
            self.method.name()
        );
        self.respond_error(ErrorRecord::new(
            message,
            "System.Management.Automation.Host.HostException",
            "HostMethodNotImplemented",
            ErrorCategory::NotImplemented,
        ))
    }
}

/// The client's answer to a host call (RUNSPACEPOOL_HOST_RESPONSE or
/// PIPELINE_HOST_RESPONSE).
#[derive(Clone, Debug, PartialEq)]
pub struct HostResponse {
    /// `ci`: the call id being answered.
    pub call_id: i64,
    /// `mi`: the method that was called.
    pub method: HostMethodId,
    /// `mr`: the return value.
    pub result: Option<PsValue>,
    /// `me`: the exception the method raised.
    pub error: Option<ErrorRecord>,
}

impl HostResponse {
    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("ci", PsValue::I64(self.call_id))
            .note("mi", self.method.to_value())
            .note_opt("mr", self.result.clone())
            .note_opt("me", self.error.as_ref().map(ErrorRecord::to_value))
            .build()
    }

    /// Reads a host response message body; `context` names the message.
    pub fn from_value(v: &PsValue, context: &'static str) -> Result<Self, MessageError> {
        let p = Props::of(v, context)?;
        let mi = p.i32("mi")?;
        Ok(HostResponse {
            call_id: p.i64("ci")?,
            method: HostMethodId::from_i32(mi).ok_or(MessageError::InvalidValue {
                context,
                property: "mi",
                value: mi.to_string(),
            })?,
            result: p.get("mr").cloned(),
            error: match p.get("me") {
                Some(e) => Some(ErrorRecord::from_value(e)?),
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_method_ids_round_trip() {
        for v in 1..=56 {
            let m = HostMethodId::from_i32(v).unwrap();
            assert_eq!(m.as_i32(), v);
        }
        assert_eq!(HostMethodId::from_i32(0), None);
        assert_eq!(HostMethodId::from_i32(57), None);
        assert_eq!(HostMethodId::WriteLine2.name(), "WriteLine2");
        assert!(HostMethodId::WriteLine2.is_void());
        assert!(!HostMethodId::ReadLine.is_void());
    }

    #[test]
    fn host_info_round_trips_through_values() {
        for info in [
            HostInfo::default(),
            HostInfo::with_ui(None),
            HostInfo::with_ui(Some(HostDefaultData::console(120, 50, "psrp"))),
        ] {
            assert_eq!(HostInfo::from_value(&info.to_value()).unwrap(), info);
        }
    }

    #[test]
    fn responses_answer_their_call() {
        let call = HostCall {
            call_id: 7,
            method: HostMethodId::ReadLine,
            parameters: vec![],
        };
        assert!(call.needs_response());
        let r = call.respond(Some(PsValue::from("typed")));
        assert_eq!(HostResponse::from_value(&r.to_value(), "T").unwrap(), r);
        let e = call.respond_not_implemented();
        let back = HostResponse::from_value(&e.to_value(), "T").unwrap();
        assert_eq!(back.call_id, 7);
        let err = back.error.unwrap();
        assert_eq!(err.category.category, ErrorCategory::NotImplemented);
        assert_eq!(
            err.exception_type(),
            Some("System.Management.Automation.Host.HostException")
        );
        assert!(err.exception_message().contains("ReadLine"));
    }
}
