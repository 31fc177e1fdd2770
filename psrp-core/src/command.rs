//! Building what a pipeline runs: commands with parameters, pipelines of
//! commands, several statements, scripts; and the CREATE_PIPELINE message
//! that carries them (MS-PSRP 2.2.2.10, 2.2.3.11-13).
//!
//! ```
//! use psrp_core::command::{Command, PowerShell};
//!
//! let ps = PowerShell::new(
//!     Command::new("Get-ChildItem")
//!         .param("Path", "C:\\Temp")
//!         .switch("Force"),
//! )
//! .pipe(Command::new("Select-Object").param("First", 5))
//! .statement(Command::new("Get-Date"));
//! assert_eq!(ps.statements.len(), 2);
//! assert_eq!(ps.statements[0].len(), 2);
//! ```

use crate::clixml::{PsValue, Version};
use crate::host::HostInfo;
use crate::message::values::{
    enum_value, flags_to_string, list_items, typed_list, ObjBuilder, Props,
};
use crate::message::{ApartmentState, MessageError, PROTOCOL_2_2, PROTOCOL_2_3};

/// Where a stream's records go (System.Management.Automation.Runspaces.PipelineResultTypes,
/// MS-PSRP 2.2.3.31). Only `None`, `Output` and `Null` are valid merge targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PipelineResultTypes {
    /// No redirection.
    #[default]
    None,
    /// The output stream.
    Output,
    /// The error stream.
    Error,
    /// The warning stream.
    Warning,
    /// The verbose stream.
    Verbose,
    /// The debug stream.
    Debug,
    /// The information stream.
    Information,
    /// All streams.
    All,
    /// Discard.
    Null,
}

impl PipelineResultTypes {
    /// The wire value.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    fn from_i32(v: i32) -> Self {
        use PipelineResultTypes::*;
        match v {
            1 => Output,
            2 => Error,
            3 => Warning,
            4 => Verbose,
            5 => Debug,
            6 => Information,
            7 => All,
            8 => Null,
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        use PipelineResultTypes::*;
        match self {
            None => "None",
            Output => "Output",
            Error => "Error",
            Warning => "Warning",
            Verbose => "Verbose",
            Debug => "Debug",
            Information => "Information",
            All => "All",
            Null => "Null",
        }
    }

    fn to_value(self) -> PsValue {
        enum_value(
            "System.Management.Automation.Runspaces.PipelineResultTypes",
            self.as_i32(),
            self.name(),
        )
    }
}

/// A command's stream redirections (`2>&1`, `3>&1`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MergeOptions {
    /// `MergeMyResult`: the stream being merged (PowerShell 2 form, errors only).
    pub my_result: PipelineResultTypes,
    /// `MergeToResult`: where `my_result` goes (PowerShell 2 form).
    pub to_result: PipelineResultTypes,
    /// `MergePreviousResults`.
    pub previous_results: PipelineResultTypes,
    /// `MergeError` (protocol 2.2+).
    pub error: PipelineResultTypes,
    /// `MergeWarning` (protocol 2.2+).
    pub warning: PipelineResultTypes,
    /// `MergeVerbose` (protocol 2.2+).
    pub verbose: PipelineResultTypes,
    /// `MergeDebug` (protocol 2.2+).
    pub debug: PipelineResultTypes,
    /// `MergeInformation` (protocol 2.3+).
    pub information: PipelineResultTypes,
}

/// One parameter of a command: named (`-Name value`) or positional.
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    /// The name without a leading dash; `None` for a positional argument.
    pub name: Option<String>,
    /// The value.
    pub value: PsValue,
}

/// A command (cmdlet, function, script file, application) or a script,
/// with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// `Cmd`: the command name, or the script text when `is_script`.
    pub name: String,
    /// `IsScript`.
    pub is_script: bool,
    /// `UseLocalScope`; `None` lets the server decide.
    pub use_local_scope: Option<bool>,
    /// `Args`, in order.
    pub parameters: Vec<Parameter>,
    /// Stream redirections.
    pub merge: MergeOptions,
}

impl Command {
    /// A command by name (e.g. `Get-ChildItem`).
    pub fn new(name: impl Into<String>) -> Self {
        Command {
            name: name.into(),
            is_script: false,
            use_local_scope: None,
            parameters: Vec::new(),
            merge: MergeOptions::default(),
        }
    }

    /// A script (only where the endpoint's language mode allows scripts;
    /// JEA endpoints usually do not).
    pub fn script(text: impl Into<String>) -> Self {
        Command {
            is_script: true,
            ..Command::new(text)
        }
    }

    /// Adds a named parameter, `-Name value`.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<PsValue>) -> Self {
        self.parameters.push(Parameter {
            name: Some(name.into()),
            value: value.into(),
        });
        self
    }

    /// Adds a switch parameter, `-Name` (sent as `true`, as PowerShell's
    /// own client does: a null value would mean `-Name:$null`).
    pub fn switch(self, name: impl Into<String>) -> Self {
        self.param(name, true)
    }

    /// Adds a positional argument.
    pub fn arg(mut self, value: impl Into<PsValue>) -> Self {
        self.parameters.push(Parameter {
            name: None,
            value: value.into(),
        });
        self
    }

    /// Runs the command in the local scope (`. ` dot-sourcing when false).
    pub fn local_scope(mut self, local: bool) -> Self {
        self.use_local_scope = Some(local);
        self
    }

    /// Sends the error stream to the output stream (`2>&1`).
    pub fn merge_error_to_output(mut self) -> Self {
        self.merge.my_result = PipelineResultTypes::Error;
        self.merge.to_result = PipelineResultTypes::Output;
        self.merge.error = PipelineResultTypes::Output;
        self
    }

    /// Sends warnings to the output stream (`3>&1`, protocol 2.2+).
    pub fn merge_warning_to_output(mut self) -> Self {
        self.merge.warning = PipelineResultTypes::Output;
        self
    }

    /// Sends verbose records to the output stream (`4>&1`, protocol 2.2+).
    pub fn merge_verbose_to_output(mut self) -> Self {
        self.merge.verbose = PipelineResultTypes::Output;
        self
    }

    /// Sends debug records to the output stream (`5>&1`, protocol 2.2+).
    pub fn merge_debug_to_output(mut self) -> Self {
        self.merge.debug = PipelineResultTypes::Output;
        self
    }

    /// Sends information records to the output stream (`6>&1`, protocol 2.3+).
    pub fn merge_information_to_output(mut self) -> Self {
        self.merge.information = PipelineResultTypes::Output;
        self
    }

    /// Every stream to the output stream (`*>&1`).
    pub fn merge_all_to_output(self) -> Self {
        self.merge_error_to_output()
            .merge_warning_to_output()
            .merge_verbose_to_output()
            .merge_debug_to_output()
            .merge_information_to_output()
    }

    fn to_value(&self, protocol: Version) -> Result<PsValue, CommandError> {
        let m = &self.merge;
        let gated = [
            ("warning", m.warning, PROTOCOL_2_2),
            ("verbose", m.verbose, PROTOCOL_2_2),
            ("debug", m.debug, PROTOCOL_2_2),
            ("information", m.information, PROTOCOL_2_3),
        ];
        for (stream, target, needs) in gated {
            if target != PipelineResultTypes::None && protocol < needs {
                return Err(CommandError::MergeNotSupported {
                    command: self.name.clone(),
                    stream,
                    protocol,
                    needs,
                });
            }
        }
        let mut b = ObjBuilder::new()
            .note("Cmd", self.name.as_str())
            .note("IsScript", self.is_script)
            .note_or_nil("UseLocalScope", self.use_local_scope)
            .note("MergeMyResult", m.my_result.to_value())
            .note("MergeToResult", m.to_result.to_value())
            .note("MergePreviousResults", m.previous_results.to_value());
        if protocol >= PROTOCOL_2_2 {
            b = b
                .note("MergeError", m.error.to_value())
                .note("MergeWarning", m.warning.to_value())
                .note("MergeVerbose", m.verbose.to_value())
                .note("MergeDebug", m.debug.to_value());
        }
        if protocol >= PROTOCOL_2_3 {
            b = b.note("MergeInformation", m.information.to_value());
        }
        let args = self
            .parameters
            .iter()
            .map(|p| {
                ObjBuilder::new()
                    .note_or_nil("N", p.name.clone())
                    .note("V", p.value.clone())
                    .build()
            })
            .collect();
        Ok(b.note("Args", psobject_list(args)).build())
    }

    fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, "Command")?;
        let merge_of = |name: &'static str| -> Result<PipelineResultTypes, MessageError> {
            Ok(PipelineResultTypes::from_i32(p.opt_i32(name)?.unwrap_or(0)))
        };
        let mut parameters = Vec::new();
        for arg in p.list("Args")? {
            let ap = Props::of(&arg, "CommandParameter")?;
            parameters.push(Parameter {
                name: ap.opt_string("N")?,
                value: ap.obj.property("V").cloned().unwrap_or(PsValue::Null),
            });
        }
        Ok(Command {
            name: p.string("Cmd")?,
            is_script: p.opt_bool("IsScript")?.unwrap_or(false),
            use_local_scope: p.opt_bool("UseLocalScope")?,
            parameters,
            merge: MergeOptions {
                my_result: merge_of("MergeMyResult")?,
                to_result: merge_of("MergeToResult")?,
                previous_results: merge_of("MergePreviousResults")?,
                error: merge_of("MergeError")?,
                warning: merge_of("MergeWarning")?,
                verbose: merge_of("MergeVerbose")?,
                debug: merge_of("MergeDebug")?,
                information: merge_of("MergeInformation")?,
            },
        })
    }
}

const PSOBJECT_LIST: [&str; 2] = [
    "System.Collections.Generic.List`1[[System.Management.Automation.PSObject, System.Management.Automation, Version=1.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]",
    "System.Object",
];

fn psobject_list(items: Vec<PsValue>) -> PsValue {
    typed_list(&PSOBJECT_LIST, items)
}

/// Why a pipeline cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The pipeline has no command.
    #[error("the pipeline has no command to run")]
    Empty,
    /// A statement has no command.
    #[error("statement {index} of the pipeline has no command")]
    EmptyStatement {
        /// Its position, from 0.
        index: usize,
    },
    /// A redirection the server's protocol version cannot express.
    #[error("command {command}: redirecting the {stream} stream needs PSRP protocol {needs}, the server speaks {protocol}")]
    MergeNotSupported {
        /// The command.
        command: String,
        /// The stream.
        stream: &'static str,
        /// The server's protocol version.
        protocol: Version,
        /// The version needed.
        needs: Version,
    },
}

/// What a pipeline runs: one or more statements, each a pipeline of
/// commands (MS-PSRP 2.2.3.11).
#[derive(Clone, Debug, PartialEq)]
pub struct PowerShell {
    /// The statements, run one after the other; each is a pipeline of
    /// commands (`a | b`).
    pub statements: Vec<Vec<Command>>,
    /// `IsNested`.
    pub is_nested: bool,
    /// `History`: text for the history entry; `None` sends Nil.
    pub history: Option<String>,
    /// `RedirectShellErrorOutputPipe`.
    pub redirect_shell_error_output_pipe: bool,
}

impl PowerShell {
    /// A pipeline starting with `command`.
    pub fn new(command: Command) -> Self {
        PowerShell {
            statements: vec![vec![command]],
            is_nested: false,
            history: None,
            redirect_shell_error_output_pipe: true,
        }
    }

    /// A pipeline that runs one script.
    pub fn script(text: impl Into<String>) -> Self {
        PowerShell::new(Command::script(text))
    }

    /// Pipes the current statement into `command` (`… | command`).
    pub fn pipe(mut self, command: Command) -> Self {
        match self.statements.last_mut() {
            Some(last) => last.push(command),
            None => self.statements.push(vec![command]),
        }
        self
    }

    /// Starts a new statement with `command` (`…; command`).
    pub fn statement(mut self, command: Command) -> Self {
        self.statements.push(vec![command]);
        self
    }

    /// The PowerShell object for a server speaking `protocol`.
    pub fn to_value(&self, protocol: Version) -> Result<PsValue, CommandError> {
        if self.statements.is_empty() {
            return Err(CommandError::Empty);
        }
        let mut encoded = Vec::with_capacity(self.statements.len());
        for (index, statement) in self.statements.iter().enumerate() {
            if statement.is_empty() {
                return Err(CommandError::EmptyStatement { index });
            }
            let cmds = statement
                .iter()
                .map(|c| c.to_value(protocol))
                .collect::<Result<Vec<_>, _>>()?;
            encoded.push(cmds);
        }
        // `Cmds` holds the first statement; several statements also go in
        // `ExtraCmds`, every statement including the first (this is what
        // PowerShell sends and what servers read when present).
        let extra = (encoded.len() > 1).then(|| {
            psobject_list(
                encoded
                    .iter()
                    .map(|cmds| {
                        ObjBuilder::new()
                            .note("Cmds", psobject_list(cmds.clone()))
                            .build()
                    })
                    .collect(),
            )
        });
        let first = encoded.swap_remove(0);
        Ok(ObjBuilder::new()
            .note("Cmds", psobject_list(first))
            .note_opt("ExtraCmds", extra)
            .note("IsNested", self.is_nested)
            .note_or_nil("History", self.history.clone())
            .note(
                "RedirectShellErrorOutputPipe",
                self.redirect_shell_error_output_pipe,
            )
            .build())
    }

    /// Reads a PowerShell object.
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, "PowerShell")?;
        let mut statements = Vec::new();
        let extra = p.list("ExtraCmds")?;
        if extra.is_empty() {
            statements.push(commands_of(&p)?);
        } else {
            for s in &extra {
                statements.push(commands_of(&Props::of(s, "ExtraCmds")?)?);
            }
        }
        Ok(PowerShell {
            statements,
            is_nested: p.opt_bool("IsNested")?.unwrap_or(false),
            history: p.opt_string("History")?,
            redirect_shell_error_output_pipe: p
                .opt_bool("RedirectShellErrorOutputPipe")?
                .unwrap_or(true),
        })
    }
}

fn commands_of(p: &Props<'_>) -> Result<Vec<Command>, MessageError> {
    p.list("Cmds")?.iter().map(Command::from_value).collect()
}

/// System.Management.Automation.RemoteStreamOptions flags (MS-PSRP 2.2.3.8):
/// which stream records carry their InvocationInfo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RemoteStreamOptions(pub i32);

impl RemoteStreamOptions {
    /// No InvocationInfo on records.
    pub const NONE: RemoteStreamOptions = RemoteStreamOptions(0);
    /// InvocationInfo on every record.
    pub const ADD_INVOCATION_INFO: RemoteStreamOptions = RemoteStreamOptions(15);

    const TABLE: [(i32, &'static str); 6] = [
        (0, "None"),
        (1, "AddInvocationInfoToErrorRecord"),
        (2, "AddInvocationInfoToWarningRecord"),
        (4, "AddInvocationInfoToDebugRecord"),
        (8, "AddInvocationInfoToVerboseRecord"),
        (15, "AddInvocationInfo"),
    ];

    fn to_value(self) -> PsValue {
        enum_value(
            "System.Management.Automation.RemoteStreamOptions",
            self.0,
            flags_to_string(self.0, &Self::TABLE),
        )
    }
}

/// CREATE_PIPELINE (MS-PSRP 2.2.2.10).
#[derive(Clone, Debug, PartialEq)]
pub struct CreatePipeline {
    /// `PowerShell`: what to run.
    pub powershell: PowerShell,
    /// `NoInput`: true unless PIPELINE_INPUT will be sent.
    pub no_input: bool,
    /// `ApartmentState`.
    pub apartment_state: ApartmentState,
    /// `RemoteStreamOptions`.
    pub remote_stream_options: RemoteStreamOptions,
    /// `AddToHistory`.
    pub add_to_history: bool,
    /// `HostInfo`.
    pub host_info: HostInfo,
    /// `IsNested`.
    pub is_nested: bool,
}

impl CreatePipeline {
    const CONTEXT: &'static str = "CREATE_PIPELINE";

    /// A message running `powershell` with no input and no host.
    pub fn new(powershell: PowerShell) -> Self {
        CreatePipeline {
            powershell,
            no_input: true,
            apartment_state: ApartmentState::Unknown,
            remote_stream_options: RemoteStreamOptions::NONE,
            add_to_history: false,
            host_info: HostInfo::default(),
            is_nested: false,
        }
    }

    /// Whether a parameter holds a SecureString made from plaintext and
    /// not yet encrypted ([`crate::clixml::SecureString::seal`]).
    pub fn has_unsealed_secure_strings(&self) -> bool {
        self.parameter_values()
            .any(|v| v.contains_secure_string(&mut |s| !s.is_sealed()))
    }

    /// Whether a parameter holds a SecureString.
    pub fn has_secure_strings(&self) -> bool {
        self.parameter_values()
            .any(|v| v.contains_secure_string(&mut |_| true))
    }

    fn parameter_values(&self) -> impl Iterator<Item = &PsValue> {
        self.powershell
            .statements
            .iter()
            .flatten()
            .flat_map(|c| c.parameters.iter().map(|p| &p.value))
    }

    /// Calls `f` on every SecureString in the parameters (to seal them
    /// with the session key before sending).
    pub fn visit_secure_strings_mut<E>(
        &mut self,
        f: &mut impl FnMut(&mut crate::clixml::SecureString) -> Result<(), E>,
    ) -> Result<(), E> {
        for command in self.powershell.statements.iter_mut().flatten() {
            for p in &mut command.parameters {
                p.value.visit_secure_strings_mut(f)?;
            }
        }
        Ok(())
    }

    /// The message body for a server speaking `protocol` (which decides
    /// the stream redirections that can be expressed).
    pub fn to_value(&self, protocol: Version) -> Result<PsValue, CommandError> {
        Ok(ObjBuilder::new()
            .note("NoInput", self.no_input)
            .note("ApartmentState", self.apartment_state.to_value())
            .note("RemoteStreamOptions", self.remote_stream_options.to_value())
            .note("AddToHistory", self.add_to_history)
            .note("HostInfo", self.host_info.to_value())
            .note("PowerShell", self.powershell.to_value(protocol)?)
            .note("IsNested", self.is_nested)
            .build())
    }

    /// Reads the message body (the server's view).
    pub fn from_value(v: &PsValue) -> Result<Self, MessageError> {
        let p = Props::of(v, Self::CONTEXT)?;
        Ok(CreatePipeline {
            powershell: PowerShell::from_value(p.require("PowerShell")?)?,
            no_input: p.opt_bool("NoInput")?.unwrap_or(true),
            apartment_state: ApartmentState::from_i32(p.opt_i32("ApartmentState")?.unwrap_or(2)),
            remote_stream_options: RemoteStreamOptions(
                p.opt_i32("RemoteStreamOptions")?.unwrap_or(0),
            ),
            add_to_history: p.opt_bool("AddToHistory")?.unwrap_or(false),
            host_info: match p.get("HostInfo") {
                Some(h) => HostInfo::from_value(h)?,
                None => HostInfo::default(),
            },
            is_nested: p.opt_bool("IsNested")?.unwrap_or(false),
        })
    }
}

/// A list value (`System.Object[]`) for a parameter, e.g.
/// `list(["a", "b"])` for `-Name a, b`.
pub fn list<I, V>(items: I) -> PsValue
where
    I: IntoIterator<Item = V>,
    V: Into<PsValue>,
{
    typed_list(
        &["System.Object[]", "System.Array", "System.Object"],
        items.into_iter().map(Into::into).collect(),
    )
}

/// A hashtable value (`@{...}`) for a parameter.
pub fn hashtable<I, K, V>(entries: I) -> PsValue
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<PsValue>,
    V: Into<PsValue>,
{
    crate::message::values::hashtable(
        entries
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    )
}

/// A JSON value as a parameter value: null, booleans, strings, numbers
/// (Int32 when they fit, else Int64, else Double), arrays as
/// `System.Object[]`, objects as hashtables (keys in JSON order).
pub fn json_to_value(json: &serde_json::Value) -> PsValue {
    use serde_json::Value as J;
    match json {
        J::Null => PsValue::Null,
        J::Bool(b) => PsValue::Bool(*b),
        J::String(s) => PsValue::String(s.clone()),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                match i32::try_from(i) {
                    Ok(small) => PsValue::I32(small),
                    Err(_) => PsValue::I64(i),
                }
            } else if let Some(u) = n.as_u64() {
                PsValue::U64(u)
            } else {
                PsValue::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::Array(items) => list(items.iter().map(json_to_value)),
        J::Object(map) => hashtable(
            map.iter()
                .map(|(k, v)| (PsValue::String(k.clone()), json_to_value(v))),
        ),
    }
}

/// Whether `v` is a list value as [`list`] builds it.
pub fn is_list(v: &PsValue) -> bool {
    list_items(v).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PROTOCOL_2_1;

    #[test]
    fn builder_records_parameters_in_order() {
        let c = Command::new("Get-ChildItem")
            .param("Path", "C:\\Temp")
            .switch("Force")
            .arg(5);
        assert_eq!(c.parameters.len(), 3);
        assert_eq!(c.parameters[1].value, PsValue::Bool(true));
        assert_eq!(c.parameters[2].name, None);
    }

    #[test]
    fn values_round_trip_through_the_psobject_form() {
        let ps = PowerShell::new(
            Command::new("Set-Thing")
                .param("Name", "x")
                .param("List", list([1, 2]))
                .param(
                    "Table",
                    hashtable([("a", PsValue::from(1)), ("b", PsValue::Null)]),
                )
                .switch("Force")
                .arg("pos")
                .local_scope(true)
                .merge_all_to_output(),
        )
        .pipe(Command::new("Out-String"))
        .statement(Command::script("Get-Date"));
        let v = ps.to_value(PROTOCOL_2_3).unwrap();
        assert_eq!(PowerShell::from_value(&v).unwrap(), ps);
        let cp = CreatePipeline::new(ps);
        assert_eq!(
            CreatePipeline::from_value(&cp.to_value(PROTOCOL_2_3).unwrap()).unwrap(),
            cp
        );
    }

    #[test]
    fn merges_are_gated_on_the_protocol_version() {
        let ps = PowerShell::new(Command::new("a").merge_warning_to_output());
        assert!(matches!(
            ps.to_value(PROTOCOL_2_1),
            Err(CommandError::MergeNotSupported {
                stream: "warning",
                ..
            })
        ));
        assert!(ps.to_value(PROTOCOL_2_2).is_ok());
        let info = PowerShell::new(Command::new("a").merge_information_to_output());
        assert!(info.to_value(PROTOCOL_2_2).is_err());
        // Error merging has a PowerShell 2 form and works everywhere; the
        // 2.2 fields are left out for a 2.1 server.
        let err = PowerShell::new(Command::new("a").merge_error_to_output());
        let v = err.to_value(PROTOCOL_2_1).unwrap();
        let back = PowerShell::from_value(&v).unwrap();
        let m = back.statements[0][0].merge;
        assert_eq!(m.my_result, PipelineResultTypes::Error);
        assert_eq!(m.to_result, PipelineResultTypes::Output);
        assert_eq!(m.error, PipelineResultTypes::None);
    }

    #[test]
    fn empty_pipelines_are_rejected() {
        let ps = PowerShell {
            statements: vec![],
            is_nested: false,
            history: None,
            redirect_shell_error_output_pipe: true,
        };
        assert_eq!(ps.to_value(PROTOCOL_2_3), Err(CommandError::Empty));
        let ps = PowerShell::new(Command::new("a")).statement(Command::new("b"));
        let mut ps2 = ps.clone();
        ps2.statements[1].clear();
        assert_eq!(
            ps2.to_value(PROTOCOL_2_3),
            Err(CommandError::EmptyStatement { index: 1 })
        );
    }

    #[test]
    fn json_values_map_to_powershell_types() {
        let j: serde_json::Value = serde_json::from_str(
            r#"{"a": 1, "b": 5000000000, "c": 1.5, "d": [true, null], "e": "s"}"#,
        )
        .unwrap();
        let v = json_to_value(&j);
        let entries = crate::message::values::dict_entries(&v).unwrap();
        assert_eq!(entries[0].1, PsValue::I32(1));
        assert_eq!(entries[1].1, PsValue::I64(5_000_000_000));
        assert_eq!(entries[2].1, PsValue::Double(1.5));
        assert!(is_list(&entries[3].1));
        assert_eq!(entries[4].1, PsValue::from("s"));
    }
}
