//! The one-pass reader of Receive responses: most of a Receive response is
//! the base64 text of its `rsp:Stream` elements, which this reader decodes
//! straight from the response instead of copying it into a tree first.
//!
//! It takes only the shape a Receive response has and declines (`None`)
//! everything else, which the caller then reads the general way
//! ([`crate::soap::envelope::parse_response`] and [`super::parse_receive`]).
//! Whenever it returns a response, it is the one the general way gives for
//! the same bytes (the `receive_response` fuzz target checks it).

use super::{decode_stream, state_kind, CommandState, ReceiveResponse, StreamData};
use crate::soap::dom::{MAX_DEPTH, MAX_NODES};
use crate::soap::ns;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Where the reader is: the element whose content comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Envelope,
    Header,
    RelatesTo,
    Body,
    Response,
    Stream,
    State,
    ExitCode,
    /// An element whose content does not matter (in the envelope or header).
    Other,
}

/// Reads a Receive response envelope whose `wsa:RelatesTo` is `message_id`
/// in one pass; `None` for anything but the plain shape of one (a fault,
/// other elements in the body, entity or character references, CDATA,
/// comments, malformed XML, a stream that is not plain base64...).
pub fn read_receive_response(xml: &str, message_id: &str) -> Option<ReceiveResponse> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<In> = Vec::with_capacity(8);
    let mut root_done = false;
    let mut nodes = 0usize;
    let (mut header_seen, mut body_seen, mut response_seen) = (false, false, false);
    let mut relates: Option<String> = None;
    let mut out = ReceiveResponse::default();
    // The stream being read, and whether its text was read.
    let mut stream: Option<(StreamData, bool)> = None;
    let mut state: Option<CommandState> = None;
    let mut exit_code_seen = false;
    loop {
        let (ns, event) = reader.read_resolved_event().ok()?;
        // Only the namespaces read here matter (the resolution borrows the reader).
        let ns: Option<&'static str> = match ns {
            ResolveResult::Bound(n) => [ns::S, ns::WSA, ns::RSP].into_iter().find(|k| *k == n.0),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return None,
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root_done || stack.len() >= MAX_DEPTH / 2 {
                    return None;
                }
                let local = start.local_name();
                let is = |want_ns: &str, name: &str| ns == Some(want_ns) && local.as_ref() == name;
                // Every element's attributes are checked as the tree does;
                // those without a namespace are kept for lookups.
                let attrs = attributes(&reader, start, &mut nodes)?;
                let attr = |name: &str| {
                    attrs
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.as_str())
                };
                let next = match stack.last() {
                    None if is(ns::S, "Envelope") => In::Envelope,
                    None => return None,
                    Some(In::Envelope) if is(ns::S, "Header") && !header_seen => {
                        header_seen = true;
                        In::Header
                    }
                    Some(In::Envelope) if is(ns::S, "Body") && !body_seen => {
                        body_seen = true;
                        In::Body
                    }
                    Some(In::Envelope) if is(ns::S, "Header") || is(ns::S, "Body") => return None,
                    Some(In::Header) if is(ns::WSA, "RelatesTo") => {
                        if relates.is_some() {
                            return None;
                        }
                        relates = Some(String::new());
                        In::RelatesTo
                    }
                    Some(In::Envelope | In::Header | In::Other) => In::Other,
                    Some(In::Body) if is(ns::RSP, "ReceiveResponse") && !response_seen => {
                        response_seen = true;
                        out.sequence_id = attr("SequenceId")
                            .or_else(|| attr("SequenceID"))
                            .and_then(|v| v.trim().parse().ok());
                        In::Response
                    }
                    Some(In::Response) if is(ns::RSP, "Stream") => {
                        let data = StreamData {
                            name: attr("Name")?.to_string(),
                            command_id: attr("CommandId").map(str::to_string),
                            data: Vec::new(),
                            end: attr("End").is_some_and(|v| v.eq_ignore_ascii_case("true")),
                        };
                        stream = Some((data, false));
                        In::Stream
                    }
                    Some(In::Response) if is(ns::RSP, "CommandState") && state.is_none() => {
                        state = Some(CommandState {
                            command_id: attr("CommandId").map(str::to_string),
                            state: state_kind(attr("State")?),
                            exit_code: None,
                        });
                        In::State
                    }
                    Some(In::State) if is(ns::RSP, "ExitCode") && !exit_code_seen => {
                        exit_code_seen = true;
                        In::ExitCode
                    }
                    // Anything else in the body is for the general reader.
                    Some(_) => return None,
                };
                stack.push(next);
                if matches!(event, Event::Empty(_)) {
                    close(stack.pop()?, &mut stream, &mut out)?;
                    root_done = stack.is_empty();
                }
            }
            Event::End(_) => {
                close(stack.pop()?, &mut stream, &mut out)?;
                root_done = stack.is_empty();
            }
            Event::Text(t) => match stack.last() {
                Some(In::Stream) => {
                    let (s, text_read) = stream.as_mut()?;
                    if std::mem::replace(text_read, true) {
                        return None;
                    }
                    s.data = decode_stream(&t.xml10_content(), &s.name).ok()?;
                }
                Some(In::RelatesTo) => {
                    let r = relates.as_mut()?;
                    if !r.is_empty() {
                        return None;
                    }
                    r.push_str(&t.xml10_content());
                }
                Some(In::ExitCode) => {
                    let code = t.xml10_content().trim().parse::<i64>().ok()?;
                    let s = state.as_mut()?;
                    if s.exit_code.is_some() {
                        return None;
                    }
                    s.exit_code = Some(code);
                }
                Some(_) => {}
                None if t.trim().is_empty() => {}
                None => return None,
            },
            Event::Eof => break,
            Event::Decl(_) => {}
            Event::CData(_)
            | Event::GeneralRef(_)
            | Event::Comment(_)
            | Event::PI(_)
            | Event::DocType(_) => return None,
        }
    }
    if !root_done || !response_seen || relates.as_deref().map(str::trim) != Some(message_id) {
        return None;
    }
    // An ExitCode element without a number is an error of the general reader.
    if exit_code_seen && state.as_ref().is_some_and(|s| s.exit_code.is_none()) {
        return None;
    }
    out.command_state = state;
    Some(out)
}

/// The end of an element: a stream is complete.
fn close(
    ended: In,
    stream: &mut Option<(StreamData, bool)>,
    out: &mut ReceiveResponse,
) -> Option<()> {
    if ended == In::Stream {
        out.streams.push(stream.take()?.0);
    }
    Some(())
}

/// The attributes of `start` without a namespace, as (local name, value);
/// `None` where the tree would refuse any attribute (malformed, duplicate,
/// an undeclared prefix, a bad reference in the value) or the document
/// would exceed the tree's node limit.
fn attributes(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    nodes: &mut usize,
) -> Option<Vec<(String, String)>> {
    *nodes += 1;
    let mut out = Vec::new();
    for attr in start.attributes() {
        let attr = attr.ok()?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        *nodes += 1;
        let (ns, local) = reader.resolver().resolve_attribute(attr.key);
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .ok()?;
        match ns {
            ResolveResult::Unbound => out.push((local.as_ref().to_string(), value.into_owned())),
            ResolveResult::Bound(_) => {}
            ResolveResult::Unknown(_) => return None,
        }
    }
    (*nodes <= MAX_NODES).then_some(out)
}
