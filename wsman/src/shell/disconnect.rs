//! Disconnect, Reconnect and Connect of a shell and its commands (MS-WSMV
//! 3.1.4.15-17; MS-PSRP 3.1.5.3.14-19): a disconnected shell keeps running
//! on the server, buffering output, until a client reconnects (same
//! WS-Man SessionId) or connects (any client of the same user) to it, or
//! its idle timeout deletes it.

use super::{shape, shell_request, Request, Shell, B64};
use crate::soap::envelope::{duration, ResponseError};
use crate::soap::{ns, Element, WsmanOption};
use base64::Engine as _;
use quick_xml::escape::escape;
use std::fmt::Write as _;
use std::time::Duration;

/// What the server does with output produced while nobody is connected
/// and its buffer is full (`rsp:BufferMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferMode {
    /// The command waits until a client connects and reads (nothing is
    /// lost; the command makes no progress meanwhile). WinRM's default.
    Block,
    /// The oldest buffered output is dropped so the command goes on.
    Drop,
}

impl BufferMode {
    /// The word on the wire: `Block` or `Drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            BufferMode::Block => "Block",
            BufferMode::Drop => "Drop",
        }
    }

    /// Reads `Block` / `Drop` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "block" => Some(BufferMode::Block),
            "drop" => Some(BufferMode::Drop),
            _ => None,
        }
    }
}

impl std::fmt::Display for BufferMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of a Disconnect: both parts are optional; absent ones leave
/// the shell's current settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisconnectShell {
    /// How long the server keeps the disconnected shell (`rsp:IdleTimeOut`);
    /// past it the shell and its commands are deleted.
    pub idle_timeout: Option<Duration>,
    /// What happens to output once the server's buffer is full.
    pub buffer_mode: Option<BufferMode>,
}

/// Disconnect the shell: its commands go on, output is buffered.
pub fn disconnect(shell: &Shell, req: &DisconnectShell) -> Request {
    let mut b = String::from("<rsp:Disconnect>");
    if let Some(t) = req.idle_timeout {
        let _ = write!(b, "<rsp:IdleTimeOut>{}</rsp:IdleTimeOut>", duration(t));
    }
    if let Some(m) = req.buffer_mode {
        let _ = write!(b, "<rsp:BufferMode>{}</rsp:BufferMode>", m.as_str());
    }
    b.push_str("</rsp:Disconnect>");
    shell_request(shell, ns::action::DISCONNECT, Vec::new(), b)
}

/// Reconnect to a shell this client (the same WS-Man SessionId)
/// disconnected; its commands are resumed by Receives as before.
pub fn reconnect(shell: &Shell) -> Request {
    shell_request(
        shell,
        ns::action::RECONNECT,
        Vec::new(),
        "<rsp:Reconnect/>".into(),
    )
}

/// Connect to a disconnected shell from a new client: `connect_xml` is the
/// PSRP payload (SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL fragments),
/// sent with the `protocolversion` option as in Create.
pub fn connect(shell: &Shell, connect_xml: &[u8], protocol_version: &str) -> Request {
    let body = format!(
        r#"<rsp:Connect><connectXml xmlns="{}">{}</connectXml></rsp:Connect>"#,
        ns::POWERSHELL,
        B64.encode(connect_xml)
    );
    shell_request(
        shell,
        ns::action::CONNECT,
        vec![WsmanOption::must_comply(
            "protocolversion",
            protocol_version,
        )],
        body,
    )
}

/// Connect to a command of a shell connected with [`connect`]; its
/// buffered output then comes by Receive.
pub fn connect_command(shell: &Shell, command_id: &str) -> Request {
    let body = format!(r#"<rsp:Connect CommandId="{}"/>"#, escape(command_id));
    shell_request(shell, ns::action::CONNECT, Vec::new(), body)
}

/// Reads a ConnectResponse to a shell Connect: the PSRP bytes of
/// `connectResponseXml` (the server's SESSION_CAPABILITY and
/// RUNSPACEPOOL_INIT_DATA fragments). Empty when the server sent none.
pub fn parse_connect(body: &Element) -> Result<Vec<u8>, ResponseError> {
    let response = body
        .child(ns::RSP, "ConnectResponse")
        .ok_or_else(|| shape("body has no rsp:ConnectResponse"))?;
    let Some(xml) = response.child(ns::POWERSHELL, "connectResponseXml") else {
        return Ok(Vec::new());
    };
    let compact: Vec<u8> = xml
        .text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    B64.decode(compact)
        .map_err(|e| shape(format!("connectResponseXml is not base64: {e}")))
}

/// Checks a ConnectResponse to a command Connect.
pub fn parse_connect_command(body: &Element) -> Result<(), ResponseError> {
    body.child(ns::RSP, "ConnectResponse")
        .map(drop)
        .ok_or_else(|| shape("body has no rsp:ConnectResponse"))
}

/// Checks a DisconnectResponse or ReconnectResponse (`name`).
pub fn parse_ack(body: &Element, name: &str) -> Result<(), ResponseError> {
    // WinRM sends an empty body for these; an element other than the
    // expected one is a crossed answer.
    match body.children.first() {
        None => Ok(()),
        Some(e) if e.is(ns::RSP, name) => Ok(()),
        Some(e) => Err(shape(format!(
            "expected rsp:{name} or an empty body, got {}",
            crate::soap::dom::excerpt(&e.name, 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::dom;

    fn sh() -> Shell {
        Shell::new(
            "ABC",
            "http://schemas.microsoft.com/powershell/JEA.Maintenance",
        )
    }

    fn body(xml: &str) -> Element {
        dom::parse(&format!(
            r#"<s:Body xmlns:s="{}" xmlns:rsp="{}" xmlns:ps="{}">{xml}</s:Body>"#,
            ns::S,
            ns::RSP,
            ns::POWERSHELL
        ))
        .unwrap()
    }

    #[test]
    fn disconnect_body_carries_idle_timeout_and_buffer_mode() {
        let r = disconnect(
            &sh(),
            &DisconnectShell {
                idle_timeout: Some(Duration::from_secs(600)),
                buffer_mode: Some(BufferMode::Drop),
            },
        );
        assert_eq!(r.action, ns::action::DISCONNECT);
        assert_eq!(r.selectors, vec![("ShellId".into(), "ABC".into())]);
        let b = body(&r.body);
        let d = b.child(ns::RSP, "Disconnect").unwrap();
        assert_eq!(d.child(ns::RSP, "IdleTimeOut").unwrap().text, "PT600S");
        assert_eq!(d.child(ns::RSP, "BufferMode").unwrap().text, "Drop");
        let plain = disconnect(&sh(), &DisconnectShell::default());
        assert_eq!(plain.body, "<rsp:Disconnect></rsp:Disconnect>");
    }

    #[test]
    fn connect_sends_connect_xml_and_protocol_version() {
        let r = connect(&sh(), b"\x01\x02psrp", "2.3");
        assert_eq!(r.action, ns::action::CONNECT);
        assert_eq!(r.options[0].name, "protocolversion");
        assert!(r.options[0].must_comply);
        let b = body(&r.body);
        let x = b
            .path(&[(ns::RSP, "Connect"), (ns::POWERSHELL, "connectXml")])
            .unwrap();
        assert_eq!(B64.decode(&x.text).unwrap(), b"\x01\x02psrp");
        let c = connect_command(&sh(), "C<1");
        let b = body(&c.body);
        assert_eq!(
            b.child(ns::RSP, "Connect").unwrap().attr("CommandId"),
            Some("C<1")
        );
    }

    #[test]
    fn connect_response_is_decoded_and_checked() {
        let ok = body(
            "<rsp:ConnectResponse><ps:connectResponseXml>AQID\r\nBA==</ps:connectResponseXml></rsp:ConnectResponse>",
        );
        assert_eq!(parse_connect(&ok).unwrap(), vec![1, 2, 3, 4]);
        assert!(parse_connect(&body("<rsp:ConnectResponse/>"))
            .unwrap()
            .is_empty());
        assert!(parse_connect(&body("<rsp:Other/>")).is_err());
        let bad = body(
            "<rsp:ConnectResponse><ps:connectResponseXml>!!</ps:connectResponseXml></rsp:ConnectResponse>",
        );
        assert!(parse_connect(&bad).is_err());
        assert!(parse_connect_command(&ok).is_ok());
        assert!(parse_ack(&body(""), "DisconnectResponse").is_ok());
        assert!(parse_ack(&body("<rsp:DisconnectResponse/>"), "DisconnectResponse").is_ok());
        assert!(parse_ack(&body("<rsp:ReceiveResponse/>"), "DisconnectResponse").is_err());
    }

    #[test]
    fn buffer_modes_round_trip() {
        for m in [BufferMode::Block, BufferMode::Drop] {
            assert_eq!(BufferMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(BufferMode::parse("DROP"), Some(BufferMode::Drop));
        assert_eq!(BufferMode::parse("x"), None);
    }
}
