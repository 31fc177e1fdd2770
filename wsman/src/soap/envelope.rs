//! Request envelopes (MS-WSMV 2.2.4 header block) and response unwrapping.

use super::dom::{self, Element};
use super::ns;
use crate::fault::WsmanFault;
use quick_xml::escape::escape;
use std::fmt::Write as _;
use std::time::Duration;

/// A `wsman:Option` in the header OptionSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsmanOption {
    /// Option name, e.g. `protocolversion`.
    pub name: String,
    /// Option value.
    pub value: String,
    /// Adds `MustComply="true"` (and makes the OptionSet mustUnderstand).
    pub must_comply: bool,
}

impl WsmanOption {
    /// An option the server may ignore.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        WsmanOption {
            name: name.into(),
            value: value.into(),
            must_comply: false,
        }
    }

    /// An option the server must honour or fault.
    pub fn must_comply(name: impl Into<String>, value: impl Into<String>) -> Self {
        WsmanOption {
            must_comply: true,
            ..Self::new(name, value)
        }
    }
}

/// Everything that goes into the SOAP header of one request.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// `wsa:Action`.
    pub action: &'a str,
    /// `wsa:To`, the endpoint URL.
    pub to: &'a str,
    /// `wsman:ResourceURI`.
    pub resource_uri: &'a str,
    /// `wsa:MessageID` (`uuid:` + upper-case UUID).
    pub message_id: &'a str,
    /// `wsmv:SessionId` (`uuid:` + upper-case UUID), constant per client.
    pub session_id: &'a str,
    /// `wsman:MaxEnvelopeSize` in bytes.
    pub max_envelope_size: usize,
    /// `wsman:OperationTimeout`.
    pub operation_timeout: Duration,
    /// `wsman:Locale`.
    pub locale: &'a str,
    /// `wsmv:DataLocale`.
    pub data_locale: &'a str,
    /// `wsman:OptionSet`.
    pub options: &'a [WsmanOption],
    /// `wsman:SelectorSet` as (name, value).
    pub selectors: &'a [(String, String)],
}

/// A fresh `uuid:XXXXXXXX-...` identifier (upper case, as Windows sends).
pub fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

/// xs:duration for a timeout: `PT20S`, or `PT1.500S` with milliseconds.
pub fn duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("PT{}S", d.as_secs())
    } else {
        format!("PT{}.{:03}S", d.as_secs(), d.subsec_millis())
    }
}

/// Builds the whole envelope; `body` is the already-serialised body content.
pub fn build(h: &Header<'_>, body: &str) -> String {
    let mut x = String::with_capacity(1800 + body.len());
    let _ = write!(
        x,
        concat!(
            r#"<s:Envelope xmlns:s="{s}" xmlns:wsa="{wsa}" xmlns:wsman="{wsman}" xmlns:wsmv="{wsmv}" xmlns:rsp="{rsp}">"#,
            "<s:Header>",
            r#"<wsa:Action s:mustUnderstand="true">{action}</wsa:Action>"#,
            r#"<wsmv:DataLocale xml:lang="{dl}" s:mustUnderstand="false"/>"#,
            r#"<wsman:Locale xml:lang="{l}" s:mustUnderstand="false"/>"#,
            r#"<wsman:MaxEnvelopeSize s:mustUnderstand="true">{max}</wsman:MaxEnvelopeSize>"#,
            "<wsa:MessageID>{mid}</wsa:MessageID>",
            "<wsman:OperationTimeout>{timeout}</wsman:OperationTimeout>",
            r#"<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">{anon}</wsa:Address></wsa:ReplyTo>"#,
            r#"<wsman:ResourceURI s:mustUnderstand="true">{uri}</wsman:ResourceURI>"#,
            r#"<wsmv:SessionId s:mustUnderstand="false">{sid}</wsmv:SessionId>"#,
            "<wsa:To>{to}</wsa:To>"
        ),
        s = ns::S,
        wsa = ns::WSA,
        wsman = ns::WSMAN,
        wsmv = ns::WSMV,
        rsp = ns::RSP,
        action = escape(h.action),
        dl = escape(h.data_locale),
        l = escape(h.locale),
        max = h.max_envelope_size,
        mid = escape(h.message_id),
        timeout = duration(h.operation_timeout),
        anon = ns::ANONYMOUS,
        uri = escape(h.resource_uri),
        sid = escape(h.session_id),
        to = escape(h.to),
    );
    if !h.options.is_empty() {
        let must = h.options.iter().any(|o| o.must_comply);
        x.push_str(if must {
            r#"<wsman:OptionSet s:mustUnderstand="true">"#
        } else {
            "<wsman:OptionSet>"
        });
        for o in h.options {
            let _ = write!(
                x,
                r#"<wsman:Option Name="{}"{}>{}</wsman:Option>"#,
                escape(o.name.as_str()),
                if o.must_comply {
                    r#" MustComply="true""#
                } else {
                    ""
                },
                escape(o.value.as_str())
            );
        }
        x.push_str("</wsman:OptionSet>");
    }
    if !h.selectors.is_empty() {
        x.push_str("<wsman:SelectorSet>");
        for (name, value) in h.selectors {
            let _ = write!(
                x,
                r#"<wsman:Selector Name="{}">{}</wsman:Selector>"#,
                escape(name.as_str()),
                escape(value.as_str())
            );
        }
        x.push_str("</wsman:SelectorSet>");
    }
    x.push_str("</s:Header><s:Body>");
    x.push_str(body);
    x.push_str("</s:Body></s:Envelope>");
    x
}

/// What a response envelope held.
#[derive(Debug)]
pub enum ResponseBody {
    /// `s:Body` of a successful response.
    Body(Element),
    /// A SOAP fault.
    Fault(WsmanFault),
}

/// Why a response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not XML.
    #[error(transparent)]
    Xml(#[from] dom::XmlError),
    /// XML but not a SOAP envelope of the expected shape.
    #[error("unexpected response: {0}")]
    Shape(String),
    /// `wsa:RelatesTo` does not match our MessageID.
    #[error("response RelatesTo {got:?} does not match request MessageID {expected:?}")]
    RelatesTo {
        /// Our MessageID.
        expected: String,
        /// What the server sent (None when absent).
        got: Option<String>,
    },
}

/// Parses a response envelope: a fault is returned as such; otherwise
/// `wsa:RelatesTo` must equal `message_id` and the `s:Body` is returned.
pub fn parse_response(xml: &str, message_id: &str) -> Result<ResponseBody, ResponseError> {
    let mut root = dom::parse(xml)?;
    if !root.is(ns::S, "Envelope") {
        return Err(ResponseError::Shape(format!(
            "root element is {{{}}}{}, not a SOAP 1.2 Envelope",
            dom::excerpt(&root.ns, 100),
            dom::excerpt(&root.name, 40)
        )));
    }
    let body_at = root
        .children
        .iter()
        .position(|c| c.is(ns::S, "Body"))
        .ok_or_else(|| ResponseError::Shape("envelope has no s:Body".into()))?;
    let body = &root.children[body_at];
    if let Some(fault) = body.child(ns::S, "Fault") {
        return Ok(ResponseBody::Fault(WsmanFault::from_element(fault)));
    }
    let relates = root
        .path(&[(ns::S, "Header"), (ns::WSA, "RelatesTo")])
        .map(|e| e.text.trim().to_string());
    if relates.as_deref() != Some(message_id) {
        return Err(ResponseError::RelatesTo {
            expected: message_id.to_string(),
            got: relates.map(|r| dom::excerpt(&r, 100)),
        });
    }
    // Moved out, not cloned: a Receive body is most of the response.
    let mut body = root.children.swap_remove(body_at);
    body.ns = ns::S.to_string();
    Ok(ResponseBody::Body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_complete_header() {
        let opts = [
            WsmanOption::must_comply("protocolversion", "2.3"),
            WsmanOption::new("x", "a<b"),
        ];
        let sel = [("ShellId".to_string(), "ABC".to_string())];
        let h = Header {
            action: ns::action::RECEIVE,
            to: "http://host:5985/wsman",
            resource_uri: "http://schemas.microsoft.com/powershell/JEA.Maintenance",
            message_id: "uuid:11111111-2222-3333-4444-555555555555",
            session_id: "uuid:AAAAAAAA-2222-3333-4444-555555555555",
            max_envelope_size: 153600,
            operation_timeout: Duration::from_secs(20),
            locale: "en-US",
            data_locale: "de-DE",
            options: &opts,
            selectors: &sel,
        };
        let x = build(&h, "<rsp:Receive/>");
        let root = dom::parse(&x).unwrap();
        let hd = root.child(ns::S, "Header").unwrap();
        let text = |n: &str, e: &str| hd.child(n, e).unwrap().text.clone();
        assert_eq!(text(ns::WSA, "Action"), ns::action::RECEIVE);
        assert_eq!(text(ns::WSA, "MessageID"), h.message_id);
        assert_eq!(text(ns::WSMAN, "MaxEnvelopeSize"), "153600");
        assert_eq!(text(ns::WSMAN, "OperationTimeout"), "PT20S");
        assert_eq!(text(ns::WSMAN, "ResourceURI"), h.resource_uri);
        assert_eq!(text(ns::WSMV, "SessionId"), h.session_id);
        assert_eq!(text(ns::WSA, "To"), h.to);
        let loc = hd.child(ns::WSMAN, "Locale").unwrap();
        assert_eq!(loc.attrs[0].2, "en-US");
        assert_eq!(
            hd.child(ns::WSMV, "DataLocale").unwrap().attrs[0].2,
            "de-DE"
        );
        let os = hd.child(ns::WSMAN, "OptionSet").unwrap();
        assert_eq!(os.attrs[0].1, "mustUnderstand");
        let o: Vec<_> = os.children_named(ns::WSMAN, "Option").collect();
        assert_eq!(o[0].attr("Name"), Some("protocolversion"));
        assert_eq!(o[0].attr("MustComply"), Some("true"));
        assert_eq!(o[1].text, "a<b");
        assert_eq!(o[1].attr("MustComply"), None);
        let s = hd
            .path(&[(ns::WSMAN, "SelectorSet"), (ns::WSMAN, "Selector")])
            .unwrap();
        assert_eq!((s.attr("Name"), s.text.as_str()), (Some("ShellId"), "ABC"));
        assert!(root
            .path(&[(ns::S, "Body"), (ns::RSP, "Receive")])
            .is_some());
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_secs(20)), "PT20S");
        assert_eq!(duration(Duration::from_millis(1500)), "PT1.500S");
    }

    #[test]
    fn message_ids_are_upper_case_uuids() {
        let id = new_message_id();
        assert!(id.starts_with("uuid:"));
        assert_eq!(id.len(), 41);
        assert_eq!(id[5..].to_uppercase(), id[5..]);
    }

    #[test]
    fn relates_to_is_checked() {
        let env = |rel: &str| {
            format!(
                r#"<s:Envelope xmlns:s="{}" xmlns:a="{}"><s:Header>{rel}</s:Header><s:Body><x/></s:Body></s:Envelope>"#,
                ns::S,
                ns::WSA
            )
        };
        let ok = env("<a:RelatesTo>uuid:A</a:RelatesTo>");
        assert!(matches!(
            parse_response(&ok, "uuid:A"),
            Ok(ResponseBody::Body(_))
        ));
        assert!(matches!(
            parse_response(&ok, "uuid:B"),
            Err(ResponseError::RelatesTo { .. })
        ));
        assert!(matches!(
            parse_response(&env(""), "uuid:A"),
            Err(ResponseError::RelatesTo { got: None, .. })
        ));
        assert!(parse_response("<x/>", "uuid:A").is_err());
    }
}
