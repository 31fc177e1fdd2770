//! WS-Enumeration of shells (MS-WSMV 3.1.4.8-9, Enumerate and Pull on the
//! shell resource URI): what `Get-PSSession -ComputerName` lists. Each
//! shell comes as an `rsp:Shell` element with its id, resource URI, owner,
//! state (Connected / Disconnected) and times.

use crate::shell::{Request, POWERSHELL_RESOURCE_PREFIX};
use crate::soap::dom::excerpt;
use crate::soap::envelope::ResponseError;
use crate::soap::{ns, Element};
use quick_xml::escape::escape;
use std::time::Duration;

/// The resource URI shells are enumerated on (all shells of the user).
pub const SHELL_RESOURCE_URI: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";

/// Items asked for per Enumerate or Pull.
pub const MAX_ELEMENTS: u32 = 200;

/// One shell as the server describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellInfo {
    /// `rsp:ShellId`.
    pub id: String,
    /// `rsp:Name`.
    pub name: Option<String>,
    /// `rsp:ResourceUri`, e.g. `http://schemas.microsoft.com/powershell/JEA.Maintenance`.
    pub resource_uri: Option<String>,
    /// `rsp:Owner`: the user the shell belongs to.
    pub owner: Option<String>,
    /// `rsp:ClientIP`.
    pub client_ip: Option<String>,
    /// `rsp:State`: `Connected` or `Disconnected`.
    pub state: Option<String>,
    /// `rsp:IdleTimeOut`.
    pub idle_timeout: Option<Duration>,
    /// `rsp:BufferMode`: `Block` or `Drop`.
    pub buffer_mode: Option<String>,
    /// `rsp:ShellRunTime`: how long the shell exists.
    pub run_time: Option<Duration>,
    /// `rsp:ShellInactivity`: how long since a client used it.
    pub inactivity: Option<Duration>,
}

impl ShellInfo {
    /// The session configuration of a PowerShell shell (the resource URI
    /// after `http://schemas.microsoft.com/powershell/`), None for others.
    pub fn configuration_name(&self) -> Option<&str> {
        let uri = self.resource_uri.as_deref()?;
        let prefix = uri.get(..POWERSHELL_RESOURCE_PREFIX.len())?;
        prefix
            .eq_ignore_ascii_case(POWERSHELL_RESOURCE_PREFIX)
            .then(|| &uri[POWERSHELL_RESOURCE_PREFIX.len()..])
    }

    /// Whether the server reports the shell disconnected.
    pub fn is_disconnected(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Disconnected"))
    }
}

/// One Enumerate or Pull answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The shells in this answer.
    pub shells: Vec<ShellInfo>,
    /// The context for the next Pull, when the enumeration goes on.
    pub context: Option<String>,
    /// `EndOfSequence`: nothing more to pull.
    pub end: bool,
}

/// Enumerate of shells, asking for up to [`MAX_ELEMENTS`] in the answer
/// (`wsman:OptimizeEnumeration`).
pub fn enumerate_shells() -> Request {
    Request {
        action: ns::action::ENUMERATE,
        resource_uri: SHELL_RESOURCE_URI.into(),
        selectors: Vec::new(),
        options: Vec::new(),
        body: format!(
            r#"<wsen:Enumerate xmlns:wsen="{}"><wsman:OptimizeEnumeration/><wsman:MaxElements>{MAX_ELEMENTS}</wsman:MaxElements></wsen:Enumerate>"#,
            ns::WSEN
        ),
    }
}

/// Pull of the next shells of an enumeration.
pub fn pull(context: &str) -> Request {
    Request {
        action: ns::action::PULL,
        resource_uri: SHELL_RESOURCE_URI.into(),
        selectors: Vec::new(),
        options: Vec::new(),
        body: format!(
            r#"<wsen:Pull xmlns:wsen="{}"><wsen:EnumerationContext>{}</wsen:EnumerationContext><wsen:MaxElements>{MAX_ELEMENTS}</wsen:MaxElements></wsen:Pull>"#,
            ns::WSEN,
            escape(context)
        ),
    }
}

fn shape(msg: impl Into<String>) -> ResponseError {
    ResponseError::Shape(msg.into())
}

/// Reads an EnumerateResponse (items in `wsman:Items`, end marker
/// `wsman:EndOfSequence`).
pub fn parse_enumerate(body: &Element) -> Result<Page, ResponseError> {
    let r = body
        .child(ns::WSEN, "EnumerateResponse")
        .ok_or_else(|| shape("body has no wsen:EnumerateResponse"))?;
    page(r, ns::WSMAN)
}

/// Reads a PullResponse (items in `wsen:Items`, end `wsen:EndOfSequence`).
pub fn parse_pull(body: &Element) -> Result<Page, ResponseError> {
    let r = body
        .child(ns::WSEN, "PullResponse")
        .ok_or_else(|| shape("body has no wsen:PullResponse"))?;
    page(r, ns::WSEN)
}

fn page(response: &Element, items_ns: &str) -> Result<Page, ResponseError> {
    let text = |e: &Element| e.text.trim().to_string();
    let context = response
        .child(ns::WSEN, "EnumerationContext")
        .map(text)
        .filter(|c| !c.is_empty());
    // Either namespace is accepted for the items and the end marker: the
    // optimized Enumerate puts them in wsman, Pull in wsen.
    let items = response
        .child(items_ns, "Items")
        .or_else(|| response.child(ns::WSEN, "Items"))
        .or_else(|| response.child(ns::WSMAN, "Items"));
    let end = response.child(ns::WSMAN, "EndOfSequence").is_some()
        || response.child(ns::WSEN, "EndOfSequence").is_some();
    let mut shells = Vec::new();
    if let Some(items) = items {
        for s in items.children_named(ns::RSP, "Shell") {
            shells.push(shell_info(s)?);
        }
    }
    Ok(Page {
        shells,
        context,
        end,
    })
}

fn shell_info(s: &Element) -> Result<ShellInfo, ResponseError> {
    let field = |name: &str| {
        s.child(ns::RSP, name)
            .map(|e| e.text.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let time = |name: &str| -> Result<Option<Duration>, ResponseError> {
        match field(name) {
            None => Ok(None),
            Some(t) => parse_duration(&t).map(Some).ok_or_else(|| {
                shape(format!(
                    "rsp:{name} {:?} is not an xs:duration",
                    excerpt(&t, 40)
                ))
            }),
        }
    };
    let id = field("ShellId").ok_or_else(|| shape("rsp:Shell without rsp:ShellId"))?;
    Ok(ShellInfo {
        id,
        name: field("Name"),
        resource_uri: field("ResourceUri"),
        owner: field("Owner"),
        client_ip: field("ClientIP"),
        state: field("State"),
        idle_timeout: time("IdleTimeOut")?,
        buffer_mode: field("BufferMode"),
        run_time: time("ShellRunTime")?,
        inactivity: time("ShellInactivity")?,
    })
}

/// Reads an xs:duration of days, hours, minutes and seconds
/// (`P1DT2H3M4.5S`, `PT7200.000S`; no years or months); None when it is
/// not one or does not fit a Duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    if rest.is_empty() || rest == "T" {
        return None;
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total = Duration::ZERO;
    let mut add = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut s = part;
        let mut last_unit = 0usize;
        while !s.is_empty() {
            let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
            let (number, tail) = s.split_at(end);
            let unit = tail.chars().next()?;
            let position = units.iter().position(|(u, _)| *u == unit)?;
            // Units in order, each once.
            if position < last_unit {
                return None;
            }
            last_unit = position + 1;
            let seconds = units[position].1;
            let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
            if whole.is_empty() || (number.contains('.') && (seconds != 1 || fraction.is_empty())) {
                return None;
            }
            let whole: u64 = whole.parse().ok()?;
            total = total.checked_add(Duration::from_secs(whole.checked_mul(seconds)?))?;
            if !fraction.is_empty() {
                let digits: String = fraction.chars().take(9).collect();
                let nanos: u32 = format!("{digits:0<9}").parse().ok()?;
                total = total.checked_add(Duration::from_nanos(u64::from(nanos)))?;
            }
            s = &tail[unit.len_utf8()..];
        }
        Some(())
    };
    add(date, &[('D', 86_400)])?;
    if let Some(t) = time {
        add(t, &[('H', 3_600), ('M', 60), ('S', 1)])?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::dom;

    fn body(xml: &str) -> Element {
        dom::parse(&format!(
            r#"<s:Body xmlns:s="{}" xmlns:n="{}" xmlns:w="{}" xmlns:rsp="{}">{xml}</s:Body>"#,
            ns::S,
            ns::WSEN,
            ns::WSMAN,
            ns::RSP
        ))
        .unwrap()
    }

    const SHELL: &str = "<rsp:Shell><rsp:ShellId>A-1</rsp:ShellId><rsp:Name>Runspace1</rsp:Name>\
        <rsp:ResourceUri>http://schemas.microsoft.com/powershell/JEA.Maintenance</rsp:ResourceUri>\
        <rsp:Owner>PEER\\testuser</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>\
        <rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:BufferMode>Block</rsp:BufferMode>\
        <rsp:State>Disconnected</rsp:State><rsp:ShellRunTime>P0DT0H1M5S</rsp:ShellRunTime>\
        <rsp:ShellInactivity>P0DT0H0M30S</rsp:ShellInactivity></rsp:Shell>";

    #[test]
    fn optimized_enumerate_with_shells_and_end() {
        let b = body(&format!(
            "<n:EnumerateResponse><n:EnumerationContext>ctx</n:EnumerationContext><w:Items>{SHELL}</w:Items><w:EndOfSequence/></n:EnumerateResponse>"
        ));
        let p = parse_enumerate(&b).unwrap();
        assert!(p.end);
        assert_eq!(p.context.as_deref(), Some("ctx"));
        let s = &p.shells[0];
        assert_eq!(s.id, "A-1");
        assert_eq!(s.configuration_name(), Some("JEA.Maintenance"));
        assert_eq!(s.owner.as_deref(), Some("PEER\\testuser"));
        assert!(s.is_disconnected());
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(s.run_time, Some(Duration::from_secs(65)));
        assert_eq!(s.inactivity, Some(Duration::from_secs(30)));
    }

    #[test]
    fn pull_pages_and_errors() {
        let b = body(&format!(
            "<n:PullResponse><n:EnumerationContext>next</n:EnumerationContext><n:Items>{SHELL}{SHELL}</n:Items></n:PullResponse>"
        ));
        let p = parse_pull(&b).unwrap();
        assert_eq!((p.shells.len(), p.end), (2, false));
        assert!(parse_pull(&body("<n:EnumerateResponse/>")).is_err());
        assert!(parse_enumerate(&body(
            "<n:EnumerateResponse><w:Items><rsp:Shell/></w:Items></n:EnumerateResponse>"
        ))
        .is_err());
        let bad_time = SHELL.replace("PT7200.000S", "PT1X");
        assert!(parse_enumerate(&body(&format!(
            "<n:EnumerateResponse><w:Items>{bad_time}</w:Items></n:EnumerateResponse>"
        )))
        .is_err());
    }

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(s);
        assert_eq!(d("PT20S"), Some(Duration::from_secs(20)));
        assert_eq!(d("PT1.5S"), Some(Duration::from_millis(1500)));
        assert_eq!(d("P1DT1H1M1S"), Some(Duration::from_secs(90_061)));
        assert_eq!(d("P2D"), Some(Duration::from_secs(172_800)));
        assert_eq!(
            d("PT2147483.647S"),
            Some(Duration::from_millis(2_147_483_647))
        );
        for bad in [
            "",
            "P",
            "PT",
            "T1S",
            "PT1",
            "PTS",
            "PT1.S",
            "PT1M1H",
            "PT1.5M",
            "P1Y",
            "PT99999999999999999999S",
            "P9999999999999999999D",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests() {
        let e = enumerate_shells();
        assert_eq!(e.resource_uri, SHELL_RESOURCE_URI);
        assert!(dom::parse(&format!(r#"<x xmlns:wsman="{}">{}</x>"#, ns::WSMAN, e.body)).is_ok());
        let p = pull("a<b");
        assert!(p.body.contains("a&lt;b"));
    }
}
