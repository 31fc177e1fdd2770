//! Typed WinRM shell operations (MS-WSMV 3.1.4.x; MS-PSRP 3.1.5.3): request
//! bodies and response parsing, independent of transport.

use crate::soap::dom::excerpt;
use crate::soap::envelope::ResponseError;
use crate::soap::{ns, Element, WsmanOption};
use base64::Engine as _;
use quick_xml::escape::escape;
use std::fmt::Write as _;
use std::time::Duration;

/// Resource URI prefix of PowerShell session configurations.
pub const POWERSHELL_RESOURCE_PREFIX: &str = "http://schemas.microsoft.com/powershell/";

/// Resource URI of the WinRS cmd.exe shell.
pub const CMD_RESOURCE_URI: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";

/// Signal codes.
pub mod signal {
    /// Stops a running PowerShell pipeline. The misspelling is PowerShell's own
    /// and must be sent exactly.
    pub const PS_CTRL_C: &str = "powershell/signal/crtl_c";
    /// Releases a command (WinRS terminate).
    pub const TERMINATE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
    /// WinRS Ctrl+C for cmd shells.
    pub const CTRL_C: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c";
}

mod disconnect;
mod receive;
pub use disconnect::{
    connect, connect_command, disconnect, parse_ack, parse_connect, parse_connect_command,
    reconnect, BufferMode, DisconnectShell,
};
pub use receive::read_receive_response;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A shell to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateShell {
    /// ResourceURI, e.g. `http://schemas.microsoft.com/powershell/Microsoft.PowerShell`.
    pub resource_uri: String,
    /// Client-chosen ShellId attribute (PSRP: the runspace pool id, upper case).
    pub shell_id: Option<String>,
    /// Optional shell Name attribute.
    pub name: Option<String>,
    /// `rsp:InputStreams`.
    pub input_streams: String,
    /// `rsp:OutputStreams`.
    pub output_streams: String,
    /// `rsp:IdleTimeOut`.
    pub idle_timeout: Option<Duration>,
    /// Bytes of the PowerShell `creationXml` (sent base64-encoded).
    pub creation_xml: Option<Vec<u8>>,
    /// Header options (PSRP: `protocolversion` = `2.3`, MustComply).
    pub options: Vec<WsmanOption>,
}

impl CreateShell {
    /// A PowerShell (PSRP) shell on the session configuration
    /// `configuration_name` (e.g. `Microsoft.PowerShell` or a JEA endpoint)
    /// with streams `stdin pr` / `stdout` and `protocolversion=2.3`.
    pub fn powershell(configuration_name: &str) -> Self {
        CreateShell {
            resource_uri: format!("{POWERSHELL_RESOURCE_PREFIX}{configuration_name}"),
            shell_id: None,
            name: None,
            input_streams: "stdin pr".into(),
            output_streams: "stdout".into(),
            idle_timeout: None,
            creation_xml: None,
            options: vec![WsmanOption::must_comply("protocolversion", "2.3")],
        }
    }

    /// A WinRS `cmd.exe` shell (not PSRP): streams `stdin` / `stdout stderr`,
    /// UTF-8 code page, no user profile.
    pub fn cmd() -> Self {
        CreateShell {
            resource_uri: CMD_RESOURCE_URI.into(),
            shell_id: None,
            name: None,
            input_streams: "stdin".into(),
            output_streams: "stdout stderr".into(),
            idle_timeout: None,
            creation_xml: None,
            options: vec![
                WsmanOption::new("WINRS_NOPROFILE", "TRUE"),
                WsmanOption::new("WINRS_CODEPAGE", "65001"),
            ],
        }
    }

    /// Sets the client-chosen shell id.
    pub fn with_shell_id(mut self, id: impl Into<String>) -> Self {
        self.shell_id = Some(id.into());
        self
    }

    /// Sets the creationXml payload (raw PSRP fragment bytes).
    pub fn with_creation_xml(mut self, bytes: Vec<u8>) -> Self {
        self.creation_xml = Some(bytes);
        self
    }

    /// Sets the idle timeout.
    pub fn with_idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }
}

/// An open shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// ShellId.
    pub id: String,
    /// ResourceURI used for every operation on this shell.
    pub resource_uri: String,
    /// Selectors to send (normally just `ShellId`).
    pub selectors: Vec<(String, String)>,
}

impl Shell {
    /// A handle for an existing shell (e.g. to reconnect or clean up).
    pub fn new(id: impl Into<String>, resource_uri: impl Into<String>) -> Self {
        let id = id.into();
        Shell {
            selectors: vec![("ShellId".into(), id.clone())],
            id,
            resource_uri: resource_uri.into(),
        }
    }
}

/// A command to start in a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// Client-chosen CommandId (PSRP: the pipeline id, upper case).
    pub command_id: Option<String>,
    /// `rsp:Command` text; empty for PowerShell.
    pub command: String,
    /// `rsp:Arguments` values, sent as text.
    pub arguments: Vec<String>,
    /// Header options.
    pub options: Vec<WsmanOption>,
}

impl CommandRequest {
    /// A WinRS command line: `command` with `arguments`.
    pub fn new(
        command: impl Into<String>,
        arguments: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        CommandRequest {
            command_id: None,
            command: command.into(),
            arguments: arguments.into_iter().map(Into::into).collect(),
            options: vec![
                WsmanOption::new("WINRS_CONSOLEMODE_STDIN", "TRUE"),
                WsmanOption::new("WINRS_SKIP_CMD_SHELL", "FALSE"),
            ],
        }
    }

    /// A PSRP pipeline: empty Command and the first CREATE_PIPELINE fragment
    /// bytes as one base64 Arguments element.
    pub fn psrp(command_id: impl Into<String>, payload: &[u8]) -> Self {
        CommandRequest {
            command_id: Some(command_id.into()),
            command: String::new(),
            arguments: vec![B64.encode(payload)],
            options: vec![WsmanOption::new("WINRS_SKIP_CMD_SHELL", "FALSE")],
        }
    }
}

/// A request body plus what goes into its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `wsa:Action`.
    pub action: &'static str,
    /// ResourceURI.
    pub resource_uri: String,
    /// Selectors.
    pub selectors: Vec<(String, String)>,
    /// OptionSet.
    pub options: Vec<WsmanOption>,
    /// Body content (inside `s:Body`).
    pub body: String,
}

/// Create.
pub fn create(req: &CreateShell) -> Request {
    let mut b = String::from("<rsp:Shell");
    if let Some(id) = &req.shell_id {
        let _ = write!(b, r#" ShellId="{}""#, escape(id.as_str()));
    }
    if let Some(n) = &req.name {
        let _ = write!(b, r#" Name="{}""#, escape(n.as_str()));
    }
    let _ = write!(
        b,
        "><rsp:InputStreams>{}</rsp:InputStreams><rsp:OutputStreams>{}</rsp:OutputStreams>",
        escape(req.input_streams.as_str()),
        escape(req.output_streams.as_str())
    );
    if let Some(t) = req.idle_timeout {
        let _ = write!(
            b,
            "<rsp:IdleTimeOut>{}</rsp:IdleTimeOut>",
            crate::soap::envelope::duration(t)
        );
    }
    if let Some(x) = &req.creation_xml {
        let _ = write!(
            b,
            r#"<creationXml xmlns="{}">{}</creationXml>"#,
            ns::POWERSHELL,
            B64.encode(x)
        );
    }
    b.push_str("</rsp:Shell>");
    Request {
        action: ns::action::CREATE,
        resource_uri: req.resource_uri.clone(),
        selectors: Vec::new(),
        options: req.options.clone(),
        body: b,
    }
}

fn shape(msg: impl Into<String>) -> ResponseError {
    ResponseError::Shape(msg.into())
}

/// Reads a CreateResponse body: the ShellId selector from
/// `wst:ResourceCreated`, else `rsp:Shell/rsp:ShellId`.
pub fn parse_create(body: &Element, req: &CreateShell) -> Result<Shell, ResponseError> {
    let selectors: Vec<(String, String)> = body
        .child(ns::WST, "ResourceCreated")
        .and_then(|rc| rc.find(ns::WSMAN, "SelectorSet"))
        .map(|set| {
            set.children_named(ns::WSMAN, "Selector")
                .filter_map(|s| Some((s.attr("Name")?.to_string(), s.text.trim().to_string())))
                .collect()
        })
        .unwrap_or_default();
    let shell_el = body.child(ns::RSP, "Shell");
    let id = selectors
        .iter()
        .find(|(n, _)| n == "ShellId")
        .map(|(_, v)| v.clone())
        .or_else(|| {
            shell_el
                .and_then(|s| s.child(ns::RSP, "ShellId"))
                .map(|e| e.text.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .ok_or_else(|| shape("CreateResponse carries no ShellId"))?;
    let resource_uri = shell_el
        .and_then(|s| s.child(ns::RSP, "ResourceUri"))
        .map(|e| e.text.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| req.resource_uri.clone());
    let selectors = if selectors.is_empty() {
        vec![("ShellId".to_string(), id.clone())]
    } else {
        selectors
    };
    Ok(Shell {
        id,
        resource_uri,
        selectors,
    })
}

fn shell_request(
    shell: &Shell,
    action: &'static str,
    options: Vec<WsmanOption>,
    body: String,
) -> Request {
    Request {
        action,
        resource_uri: shell.resource_uri.clone(),
        selectors: shell.selectors.clone(),
        options,
        body,
    }
}

/// Command.
pub fn command(shell: &Shell, req: &CommandRequest) -> Request {
    let mut b = String::from("<rsp:CommandLine");
    if let Some(id) = &req.command_id {
        let _ = write!(b, r#" CommandId="{}""#, escape(id.as_str()));
    }
    let _ = write!(
        b,
        "><rsp:Command>{}</rsp:Command>",
        escape(req.command.as_str())
    );
    for a in &req.arguments {
        let _ = write!(b, "<rsp:Arguments>{}</rsp:Arguments>", escape(a.as_str()));
    }
    b.push_str("</rsp:CommandLine>");
    shell_request(shell, ns::action::COMMAND, req.options.clone(), b)
}

/// Reads the CommandId from a CommandResponse.
pub fn parse_command(body: &Element) -> Result<String, ResponseError> {
    body.path(&[(ns::RSP, "CommandResponse"), (ns::RSP, "CommandId")])
        .map(|e| e.text.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| shape("CommandResponse carries no CommandId"))
}

/// Send of `data` on `stream` (`stdin`, or `pr` for host responses).
pub fn send(
    shell: &Shell,
    command_id: Option<&str>,
    stream: &str,
    data: &[u8],
    end: bool,
) -> Request {
    let mut b = format!(r#"<rsp:Send><rsp:Stream Name="{}""#, escape(stream));
    if let Some(id) = command_id {
        let _ = write!(b, r#" CommandId="{}""#, escape(id));
    }
    if end {
        b.push_str(r#" End="true""#);
    }
    let _ = write!(b, ">{}</rsp:Stream></rsp:Send>", B64.encode(data));
    shell_request(shell, ns::action::SEND, Vec::new(), b)
}

/// Receive on `stdout`, for the pool (no CommandId) or a command.
pub fn receive(shell: &Shell, command_id: Option<&str>) -> Request {
    receive_streams(shell, command_id, "stdout")
}

/// Receive on the space-separated `streams` (e.g. `stdout stderr` for WinRS).
pub fn receive_streams(shell: &Shell, command_id: Option<&str>, streams: &str) -> Request {
    receive_request(shell, command_id, streams, None)
}

/// Receive with `SequenceId` (robust Receive, as in MS-WSMV's Receive
/// examples): the first Receive of a shell or command carries 0, each one
/// after a ReceiveResponse the next number, which acknowledges that
/// response; the same number again (after a broken connection) asks the
/// server for the same response again instead of new output.
pub fn receive_sequenced(
    shell: &Shell,
    command_id: Option<&str>,
    streams: &str,
    sequence_id: u64,
) -> Request {
    receive_request(shell, command_id, streams, Some(sequence_id))
}

fn receive_request(
    shell: &Shell,
    command_id: Option<&str>,
    streams: &str,
    sequence_id: Option<u64>,
) -> Request {
    let mut b = match sequence_id {
        Some(n) => format!(r#"<rsp:Receive SequenceId="{n}">"#),
        None => String::from("<rsp:Receive>"),
    };
    b.push_str("<rsp:DesiredStream");
    if let Some(id) = command_id {
        let _ = write!(b, r#" CommandId="{}""#, escape(id));
    }
    let _ = write!(b, ">{}</rsp:DesiredStream></rsp:Receive>", escape(streams));
    shell_request(
        shell,
        ns::action::RECEIVE,
        vec![WsmanOption::new("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "TRUE")],
        b,
    )
}

/// Signal `code` to a command.
pub fn signal(shell: &Shell, command_id: &str, code: &str) -> Request {
    let b = format!(
        r#"<rsp:Signal CommandId="{}"><rsp:Code>{}</rsp:Code></rsp:Signal>"#,
        escape(command_id),
        escape(code)
    );
    shell_request(shell, ns::action::SIGNAL, Vec::new(), b)
}

/// Delete the shell.
pub fn delete(shell: &Shell) -> Request {
    shell_request(shell, ns::action::DELETE, Vec::new(), String::new())
}

/// Data from one `rsp:Stream` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamData {
    /// Stream name (`stdout` for PSRP).
    pub name: String,
    /// CommandId attribute, if any.
    pub command_id: Option<String>,
    /// Decoded bytes.
    pub data: Vec<u8>,
    /// `End="true"`: no more data on this stream.
    pub end: bool,
}

/// Command state as reported by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandStateKind {
    /// `.../CommandState/Done`.
    Done,
    /// `.../CommandState/Running`.
    Running,
    /// `.../CommandState/Pending`.
    Pending,
    /// Any other URI.
    Other(String),
}

/// `rsp:CommandState`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandState {
    /// CommandId attribute.
    pub command_id: Option<String>,
    /// State.
    pub state: CommandStateKind,
    /// `rsp:ExitCode`, when given.
    pub exit_code: Option<i64>,
}

/// A ReceiveResponse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiveResponse {
    /// Streams in document order.
    pub streams: Vec<StreamData>,
    /// Command state, when given.
    pub command_state: Option<CommandState>,
    /// The `SequenceId` the server put on the ReceiveResponse: a server
    /// that echoes the one of the request keeps its last response for a
    /// resent Receive.
    pub sequence_id: Option<u64>,
}

impl ReceiveResponse {
    /// All bytes of the streams named `name`, concatenated in order.
    pub fn stream_bytes(&self, name: &str) -> Vec<u8> {
        self.streams
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| s.data.iter().copied())
            .collect()
    }

    /// Whether the command state says Done.
    pub fn is_done(&self) -> bool {
        matches!(
            self.command_state,
            Some(CommandState {
                state: CommandStateKind::Done,
                ..
            })
        )
    }
}

/// Result of a Receive: data, or nothing within OperationTimeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// The server returned a ReceiveResponse.
    Data(ReceiveResponse),
    /// The OperationTimeout fault: nothing yet, poll again.
    TimedOut,
}

/// Reads a ReceiveResponse body.
pub fn parse_receive(body: &Element) -> Result<ReceiveResponse, ResponseError> {
    let rr = body
        .child(ns::RSP, "ReceiveResponse")
        .ok_or_else(|| shape("body has no rsp:ReceiveResponse"))?;
    let mut out = ReceiveResponse {
        // MS-WSMV spells it SequenceID in the schema, SequenceId in examples.
        sequence_id: rr
            .attr("SequenceId")
            .or_else(|| rr.attr("SequenceID"))
            .and_then(|v| v.trim().parse().ok()),
        ..ReceiveResponse::default()
    };
    for s in rr.children_named(ns::RSP, "Stream") {
        let name = s
            .attr("Name")
            .ok_or_else(|| shape("rsp:Stream without Name"))?
            .to_string();
        let data = decode_stream(&s.text, &name)?;
        out.streams.push(StreamData {
            name,
            command_id: s.attr("CommandId").map(str::to_string),
            data,
            end: s
                .attr("End")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        });
    }
    if let Some(cs) = rr.child(ns::RSP, "CommandState") {
        let state = cs
            .attr("State")
            .ok_or_else(|| shape("rsp:CommandState without State"))?;
        let kind = state_kind(state);
        let exit_code = match cs.child(ns::RSP, "ExitCode") {
            Some(e) => Some(e.text.trim().parse::<i64>().map_err(|_| {
                shape(format!(
                    "ExitCode {:?} is not a number",
                    excerpt(e.text.trim(), 40)
                ))
            })?),
            None => None,
        };
        out.command_state = Some(CommandState {
            command_id: cs.attr("CommandId").map(str::to_string),
            state: kind,
            exit_code,
        });
    }
    Ok(out)
}

/// The bytes of an rsp:Stream's base64 text.
fn decode_stream(text: &str, name: &str) -> Result<Vec<u8>, ResponseError> {
    let bad = |e: base64::DecodeError| {
        shape(format!(
            "rsp:Stream {:?} is not base64: {e}",
            excerpt(name, 40)
        ))
    };
    // Streams are most of a Receive response: the SIMD decoder first. It
    // takes only padded, canonical base64 (a subset of what `B64` takes,
    // with the same bytes out); anything else, line breaks included, goes
    // the old way, which also says what is wrong.
    if let Ok(data) = base64_simd::STANDARD.decode_to_vec(text) {
        return Ok(data);
    }
    // Streams are normally without line breaks: decode directly, and only
    // copy to strip whitespace when that fails.
    B64.decode(text).or_else(|e| {
        let raw = text.as_bytes();
        if !raw.iter().any(u8::is_ascii_whitespace) {
            return Err(bad(e));
        }
        let compact: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        B64.decode(compact).map_err(bad)
    })
}

/// The kind of a CommandState State URI.
fn state_kind(state: &str) -> CommandStateKind {
    match state.rsplit('/').next() {
        Some("Done") => CommandStateKind::Done,
        Some("Running") => CommandStateKind::Running,
        Some("Pending") => CommandStateKind::Pending,
        _ => CommandStateKind::Other(state.to_string()),
    }
}

#[cfg(test)]
mod tests;
