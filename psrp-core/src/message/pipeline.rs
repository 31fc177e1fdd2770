//! Pipeline-level messages other than CREATE_PIPELINE (which lives in
//! [`crate::command`]): PIPELINE_STATE and GET_COMMAND_METADATA.

use crate::clixml::PsValue;

use super::records::{int_enum, ErrorRecord};
use super::values::{enum_value, flags_to_string, string_of, typed_list, ObjBuilder, Props};
use super::MessageError;

int_enum! {
    /// The state of a pipeline (MS-PSRP 2.2.3.5, PSInvocationState).
    PipelineState {
        /// Created, not started.
        NotStarted = 0,
        /// Running.
        Running = 1,
        /// Being stopped.
        Stopping = 2,
        /// Stopped by a stop request (terminal).
        Stopped = 3,
        /// Finished (terminal).
        Completed = 4,
        /// Failed with a terminating error (terminal).
        Failed = 5,
        /// Disconnected.
        Disconnected = 6,
    }
}

impl PipelineState {
    /// Whether the pipeline has finished: Stopped, Completed or Failed.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PipelineState::Stopped | PipelineState::Completed | PipelineState::Failed
        )
    }
}

/// PIPELINE_STATE (MS-PSRP 2.2.2.21).
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineStateMessage {
    /// `PipelineState`.
    pub state: PipelineState,
    /// `ExceptionAsErrorRecord`: the terminating error (Failed) or the
    /// stop reason (Stopped).
    pub error: Option<ErrorRecord>,
}

impl PipelineStateMessage {
    const CONTEXT: &'static str = "PIPELINE_STATE";

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        Ok(PipelineStateMessage {
            state: PipelineState::from_i32(p.i32("PipelineState")?),
            error: match p.get("ExceptionAsErrorRecord") {
                Some(e) => Some(ErrorRecord::from_value(e)?),
                None => None,
            },
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        ObjBuilder::new()
            .note("PipelineState", self.state.as_i32())
            .note_opt(
                "ExceptionAsErrorRecord",
                self.error.as_ref().map(ErrorRecord::to_value),
            )
            .build()
    }
}

/// System.Management.Automation.CommandTypes flags (MS-PSRP 2.2.3.19).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandTypes(pub i32);

impl CommandTypes {
    /// Aliases.
    pub const ALIAS: CommandTypes = CommandTypes(1);
    /// Functions.
    pub const FUNCTION: CommandTypes = CommandTypes(2);
    /// Filters.
    pub const FILTER: CommandTypes = CommandTypes(4);
    /// Cmdlets.
    pub const CMDLET: CommandTypes = CommandTypes(8);
    /// Script files.
    pub const EXTERNAL_SCRIPT: CommandTypes = CommandTypes(16);
    /// Applications.
    pub const APPLICATION: CommandTypes = CommandTypes(32);
    /// Built-in scripts.
    pub const SCRIPT: CommandTypes = CommandTypes(64);
    /// Configurations.
    pub const CONFIGURATION: CommandTypes = CommandTypes(256);
    /// Every type.
    pub const ALL: CommandTypes = CommandTypes(383);

    const TABLE: [(i32, &'static str); 9] = [
        (1, "Alias"),
        (2, "Function"),
        (4, "Filter"),
        (8, "Cmdlet"),
        (16, "ExternalScript"),
        (32, "Application"),
        (64, "Script"),
        (256, "Configuration"),
        (383, "All"),
    ];

    /// The .NET text of the flags, e.g. `Alias, Cmdlet`.
    pub fn name(self) -> String {
        flags_to_string(self.0, &Self::TABLE)
    }

    fn to_value(self) -> PsValue {
        enum_value(
            "System.Management.Automation.CommandTypes",
            self.0,
            self.name(),
        )
    }
}

/// GET_COMMAND_METADATA (MS-PSRP 2.2.2.14): ask which commands a pool
/// offers (the answer arrives as PIPELINE_OUTPUT: a count object, then one
/// CommandMetadata object per command).
#[derive(Clone, Debug, PartialEq)]
pub struct GetCommandMetadata {
    /// `Name`: wildcard patterns of command names.
    pub names: Vec<String>,
    /// `CommandType`: which kinds of commands.
    pub command_type: CommandTypes,
    /// `Namespace`: wildcard patterns of module names.
    pub namespaces: Vec<String>,
    /// `ArgumentList`.
    pub arguments: Vec<PsValue>,
}

impl GetCommandMetadata {
    const CONTEXT: &'static str = "GET_COMMAND_METADATA";

    /// Metadata of the commands matching `name` (wildcards allowed).
    pub fn new(name: impl Into<String>) -> Self {
        GetCommandMetadata {
            names: vec![name.into()],
            command_type: CommandTypes::ALL,
            namespaces: Vec::new(),
            arguments: Vec::new(),
        }
    }

    /// Reads the message body.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        Ok(GetCommandMetadata {
            names: p.list("Name")?.iter().filter_map(string_of).collect(),
            command_type: CommandTypes(p.opt_i32("CommandType")?.unwrap_or(383)),
            namespaces: p.list("Namespace")?.iter().filter_map(string_of).collect(),
            arguments: p.list("ArgumentList")?,
        })
    }

    /// The message body.
    pub fn to_value(&self) -> PsValue {
        let strings = |v: &[String]| -> Vec<PsValue> {
            v.iter().map(|s| PsValue::from(s.as_str())).collect()
        };
        let string_array = ["System.String[]", "System.Array", "System.Object"];
        ObjBuilder::new()
            .note("Name", typed_list(&string_array, strings(&self.names)))
            .note("CommandType", self.command_type.to_value())
            .note(
                "Namespace",
                typed_list(&string_array, strings(&self.namespaces)),
            )
            .note(
                "ArgumentList",
                typed_list(
                    &["System.Object[]", "System.Array", "System.Object"],
                    self.arguments.clone(),
                ),
            )
            .build()
    }
}

/// One object of the answer to GET_COMMAND_METADATA (sent as
/// PIPELINE_OUTPUT): first the number of commands, then one per command.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandMetadataReply {
    /// The first object: how many commands follow (`Count`).
    Count(i64),
    /// A command.
    Command(CommandMetadata),
}

/// What a server says about one command (MS-PSRP 2.2.3.22 CommandMetadata).
#[derive(Clone, Debug, PartialEq)]
pub struct CommandMetadata {
    /// `Name`.
    pub name: String,
    /// `Namespace`: the module or snap-in.
    pub namespace: Option<String>,
    /// `HelpUri`.
    pub help_uri: Option<String>,
    /// `CommandType`.
    pub command_type: CommandTypes,
    /// `OutputType`: .NET type names the command declares.
    pub output_type: Vec<String>,
    /// `Parameters`, in the server's order.
    pub parameters: Vec<ParameterMetadata>,
}

/// One parameter of a command (MS-PSRP 2.2.3.23 ParameterMetadata).
///
/// This is all the reply carries: Windows serializes ParameterMetadata
/// with these five properties only, so whether a parameter is mandatory,
/// its position and its parameter sets are not part of
/// GET_COMMAND_METADATA. Common parameters (`Verbose`, `ErrorAction`, ...)
/// are listed like the command's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterMetadata {
    /// `Name`.
    pub name: String,
    /// `ParameterType`: the .NET type name.
    pub parameter_type: String,
    /// `Aliases`.
    pub aliases: Vec<String>,
    /// `IsDynamic`.
    pub is_dynamic: bool,
    /// `SwitchParameter`.
    pub switch_parameter: bool,
}

impl CommandMetadataReply {
    const CONTEXT: &'static str = "CommandMetadata";

    /// Reads one output object of a GET_COMMAND_METADATA pipeline.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        if p.get("Name").is_none() {
            if let Some(count) = p.opt_i64("Count")? {
                return Ok(CommandMetadataReply::Count(count));
            }
        }
        let mut parameters = Vec::new();
        if let Some(params) = p.get("Parameters") {
            let entries = super::values::dict_entries(params).ok_or(MessageError::WrongType {
                context: Self::CONTEXT,
                property: "Parameters",
                expected: "a dictionary",
                found: super::values::kind_name(params),
            })?;
            for (_, meta) in entries {
                let mp = Props::of(meta, "ParameterMetadata")?;
                parameters.push(ParameterMetadata {
                    name: mp.string("Name")?,
                    parameter_type: mp.opt_string("ParameterType")?.unwrap_or_default(),
                    aliases: mp.list("Aliases")?.iter().filter_map(string_of).collect(),
                    is_dynamic: mp.opt_bool("IsDynamic")?.unwrap_or(false),
                    switch_parameter: mp.opt_bool("SwitchParameter")?.unwrap_or(false),
                });
            }
        }
        Ok(CommandMetadataReply::Command(CommandMetadata {
            name: p.string("Name")?,
            namespace: p.opt_string("Namespace")?,
            help_uri: p.opt_string("HelpUri")?,
            command_type: CommandTypes(p.opt_i32("CommandType")?.unwrap_or(0)),
            output_type: p
                .list("OutputType")?
                .iter()
                .filter_map(|t| {
                    string_of(t).or_else(|| t.as_object().and_then(|o| o.to_string.clone()))
                })
                .collect(),
            parameters,
        }))
    }
}
