//! WS-Management faults (SOAP 1.2 Fault with a `wsmanfault:WSManFault` detail).

use crate::soap::dom::Element;
use crate::soap::ns;
use std::fmt;

/// WSManFault code of ERROR_WSMAN_OPERATION_TIMEDOUT (0x80338029): a Receive
/// had nothing to return within OperationTimeout. Normal; poll again.
pub const OPERATION_TIMEOUT_CODE: u32 = 2_150_858_793;

/// WSManFault code of ERROR_WSMAN_UNEXPECTED_SELECTORS (0x8033805B), which a
/// server returns once the shell is gone.
pub const UNEXPECTED_SELECTORS_CODE: u32 = 0x8033_805B;

/// ERROR_WINRS_SHELL_DISCONNECTED (0x803381C4): an operation other than
/// Connect, Reconnect or Delete on a disconnected shell.
pub const SHELL_DISCONNECTED_CODE: u32 = 0x8033_81C4;

/// ERROR_WINRS_SHELL_CLIENTSESSIONID_MISMATCH (0x803381C6): a Reconnect
/// from a client other than the one that disconnected (another WS-Man
/// SessionId); a new client uses Connect.
pub const CLIENT_SESSION_ID_MISMATCH_CODE: u32 = 0x8033_81C6;

/// ERROR_WINRS_SHELL_CONNECTED_TO_DIFFERENT_CLIENT (0x803381CD): the shell
/// is connected to another client; it must disconnect first.
pub const SHELL_CONNECTED_TO_DIFFERENT_CLIENT_CODE: u32 = 0x8033_81CD;

/// ERROR_WINRS_SHELL_DISCONNECT_OPERATION_NOT_VALID (0x803381CF): Disconnect
/// of a shell that is already disconnected.
pub const SHELL_ALREADY_DISCONNECTED_CODE: u32 = 0x8033_81CF;

/// ERROR_WINRS_SHELL_RECONNECT_OPERATION_NOT_VALID (0x803381D0): Reconnect
/// of a shell that is connected.
pub const SHELL_NOT_DISCONNECTED_CODE: u32 = 0x8033_81D0;

/// Windows ERROR_ACCESS_DENIED, as WinRM reports it in faults (e.g. a
/// shell that belongs to another user).
pub const ACCESS_DENIED_CODE: u32 = 5;

/// A fault returned by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WsmanFault {
    /// `s:Code/s:Value`, e.g. `s:Receiver`.
    pub soap_code: String,
    /// `s:Code/s:Subcode/s:Value`, e.g. `w:TimedOut`.
    pub soap_subcode: Option<String>,
    /// `s:Reason/s:Text`.
    pub reason: Option<String>,
    /// `WSManFault/@Code` (a Win32/WinRM error number).
    pub code: Option<u32>,
    /// `WSManFault/@Machine`.
    pub machine: Option<String>,
    /// Text of `WSManFault/Message` (nested provider faults flattened).
    pub message: Option<String>,
    /// `wsman:FaultDetail` URI.
    pub detail: Option<String>,
}

/// All text below an element, whitespace-normalised.
fn deep_text(e: &Element) -> String {
    fn walk(e: &Element, out: &mut Vec<String>) {
        let t = e.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !t.is_empty() {
            out.push(t);
        }
        for c in &e.children {
            walk(c, out);
        }
    }
    let mut parts = Vec::new();
    walk(e, &mut parts);
    parts.join(" ")
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn parse_code(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl WsmanFault {
    /// Reads an `s:Fault` element.
    pub fn from_element(fault: &Element) -> Self {
        let code = fault.child(ns::S, "Code");
        let value = |e: Option<&Element>| {
            e.and_then(|e| e.child(ns::S, "Value"))
                .map(|v| v.text.trim().to_string())
        };
        let wsman = fault
            .child(ns::S, "Detail")
            .and_then(|d| d.find(ns::WSMANFAULT, "WSManFault"));
        WsmanFault {
            soap_code: value(code).unwrap_or_default(),
            soap_subcode: value(code.and_then(|c| c.child(ns::S, "Subcode"))),
            reason: fault
                .child(ns::S, "Reason")
                .and_then(|r| r.child(ns::S, "Text"))
                .and_then(|t| non_empty(deep_text(t))),
            code: wsman.and_then(|w| w.attr("Code")).and_then(parse_code),
            machine: wsman.and_then(|w| w.attr("Machine")).map(str::to_string),
            message: wsman
                .and_then(|w| w.child(ns::WSMANFAULT, "Message"))
                .and_then(|m| non_empty(deep_text(m))),
            detail: fault
                .child(ns::S, "Detail")
                .and_then(|d| d.child(ns::WSMAN, "FaultDetail"))
                .map(|d| d.text.trim().to_string()),
        }
    }

    /// Whether this is the Receive OperationTimeout ("nothing yet").
    pub fn is_operation_timeout(&self) -> bool {
        self.code == Some(OPERATION_TIMEOUT_CODE)
            || (self.code.is_none()
                && self
                    .soap_subcode
                    .as_deref()
                    .is_some_and(|s| s.ends_with(":TimedOut") || s == "TimedOut"))
    }
}

impl fmt::Display for WsmanFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WS-Management fault")?;
        if let Some(code) = self.code {
            write!(f, " {code} (0x{code:08X})")?;
        }
        if let Some(m) = &self.machine {
            write!(f, " from {m}")?;
        }
        let text = self.message.as_deref().or(self.reason.as_deref());
        if let Some(t) = text {
            write!(f, ": {t}")?;
        }
        write!(f, " [{}", self.soap_code)?;
        if let Some(s) = &self.soap_subcode {
            write!(f, "/{s}")?;
        }
        f.write_str("]")
    }
}

impl std::error::Error for WsmanFault {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::{envelope::ResponseBody, parse_response};

    /// Shaped like a Windows Server 2019 Receive timeout.
    const TIMEOUT: &str = r#"<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action><a:MessageID>uuid:9B1C1B4C-4E4D-4B0B-8C0F-1D1C3A7F2E10</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>uuid:2D6A5DA4-3F1E-4A55-9E5B-0C8D1B7E9A11</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  </s:Text></s:Reason><s:Detail><w:FaultDetail>http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/OperationTimeout</w:FaultDetail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" Machine="win-host.example"><f:Message>The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  </f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#;

    /// A provider fault with a nested message, as for a bad configuration name.
    const PROVIDER: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:RelatesTo>uuid:X</a:RelatesTo></s:Header><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the request because the request contained invalid selectors for the resource. </s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858843" Machine="10.0.0.5"><f:Message><f:ProviderFault provider="microsoft.powershell" path="C:\Windows\system32\pwrshplugin.dll">The shell was not found.</f:ProviderFault></f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#;

    fn fault(xml: &str) -> WsmanFault {
        match parse_response(xml, "irrelevant for faults").unwrap() {
            ResponseBody::Fault(f) => f,
            ResponseBody::Body(_) => panic!("not a fault"),
        }
    }

    #[test]
    fn operation_timeout() {
        let f = fault(TIMEOUT);
        assert_eq!(f.code, Some(OPERATION_TIMEOUT_CODE));
        assert_eq!(f.machine.as_deref(), Some("win-host.example"));
        assert_eq!(f.soap_code, "s:Receiver");
        assert_eq!(f.soap_subcode.as_deref(), Some("w:TimedOut"));
        assert!(f
            .message
            .as_deref()
            .unwrap()
            .starts_with("The WS-Management service"));
        assert_eq!(
            f.detail.as_deref(),
            Some("http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/OperationTimeout")
        );
        assert!(f.is_operation_timeout());
    }

    #[test]
    fn provider_fault_message_is_flattened_and_displayed() {
        let f = fault(PROVIDER);
        assert_eq!(f.code, Some(UNEXPECTED_SELECTORS_CODE));
        assert!(!f.is_operation_timeout());
        assert_eq!(f.message.as_deref(), Some("The shell was not found."));
        let shown = f.to_string();
        assert!(shown.contains("2150858843 (0x8033805B)"), "{shown}");
        assert!(shown.contains("from 10.0.0.5"), "{shown}");
        assert!(shown.contains("The shell was not found."), "{shown}");
        assert!(shown.contains("s:Sender/w:InvalidSelectors"), "{shown}");
    }

    #[test]
    fn bare_soap_fault_without_detail() {
        let xml = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason><s:Text>nope</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#;
        let f = fault(xml);
        assert_eq!((f.code, f.reason.as_deref()), (None, Some("nope")));
        assert_eq!(f.to_string(), "WS-Management fault: nope [s:Sender]");
    }
}
