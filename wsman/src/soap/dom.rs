//! A small namespace-resolved element tree for reading WS-Man responses.
//!
//! Responses are at most a few hundred KiB (bounded by MaxEnvelopeSize), so a
//! tree is simpler and safer to query than a streaming state machine. What a
//! hostile server can make it cost is bounded: [`MAX_DEPTH`] levels of
//! nesting and [`MAX_NODES`] elements and attributes per document, besides
//! the response body limit of the transport.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Why a document could not be read as XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

/// One element with its resolved namespace, attributes, text and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Namespace URI the element's name is bound to (empty when unbound).
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Attributes as (namespace URI or empty, local name, unescaped value).
    pub attrs: Vec<(String, String, String)>,
    /// Concatenated character data directly inside this element.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

/// Deepest nesting accepted; WS-Man responses are shallow, this only stops
/// pathological input from exhausting the stack when the tree is dropped.
pub const MAX_DEPTH: usize = 64;

/// Most nodes (elements plus attributes) accepted in one document.
///
/// A tree costs about 200 bytes per node on top of the text it holds, so a
/// body of tiny elements (`<a/>` is 4 bytes) would grow fifty-fold in
/// memory. A Receive response at Windows' default MaxEnvelopeSize (500 KiB)
/// holds a few thousand nodes; 100,000 leaves ample headroom and keeps a
/// tree under about 20 MiB whatever the server sends. (quick-xml itself
/// bounds the namespace bindings in scope, to 128.)
pub const MAX_NODES: usize = 100_000;

impl Element {
    /// Whether this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// First child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// All children `{ns}name`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// Follows a path of `(ns, name)` steps through first matching children.
    pub fn path(&self, steps: &[(&str, &str)]) -> Option<&Element> {
        let mut cur = self;
        for (ns, name) in steps {
            cur = cur.child(ns, name)?;
        }
        Some(cur)
    }

    /// Value of an attribute without namespace (the usual case in WS-Man).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, n, _)| ns.is_empty() && n == name)
            .map(|(_, _, v)| v.as_str())
    }

    /// First descendant (depth first, including self) `{ns}name`.
    pub fn find(&self, ns: &str, name: &str) -> Option<&Element> {
        if self.is(ns, name) {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(ns, name))
    }
}

/// Parses a UTF-8 XML document into its root element.
pub fn parse(xml: &str) -> Result<Element, XmlError> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut nodes = 0usize;
    let mut count = |n: usize| {
        nodes += n;
        if nodes > MAX_NODES {
            Err(XmlError(format!(
                "more than {MAX_NODES} elements and attributes"
            )))
        } else {
            Ok(())
        }
    };
    loop {
        let (ns, ev) = match reader.read_resolved_event() {
            Ok((ns, ev)) => (ns_string(&ns)?, ev),
            Err(e) => return Err(XmlError(e.to_string())),
        };
        match ev {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root.is_some() {
                    return Err(XmlError("content after the root element".into()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError(format!("nesting deeper than {MAX_DEPTH}")));
                }
                count(1)?;
                let mut el = Element {
                    ns,
                    name: start.local_name().as_ref().to_string(),
                    ..Element::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| XmlError(format!("attribute: {e}")))?;
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    count(1)?;
                    let (ans, local) = reader.resolver().resolve_attribute(attr.key);
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| XmlError(format!("attribute value: {e}")))?;
                    el.attrs.push((
                        ns_string(&ans)?,
                        local.as_ref().to_string(),
                        value.into_owned(),
                    ));
                }
                if matches!(ev, Event::Empty(_)) {
                    close(el, &mut stack, &mut root);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                close(el, &mut stack, &mut root);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                } else if !t.trim().is_empty() {
                    return Err(XmlError("text outside the root element".into()));
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch,
                    Ok(None) => match r.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(XmlError(format!("unknown entity &{other};"))),
                    },
                    Err(e) => return Err(XmlError(format!("character reference: {e}"))),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(ch);
                }
            }
            Event::DocType(_) => {
                return Err(XmlError("DOCTYPE is not allowed in WS-Man".into()));
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("document ended inside an element".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

/// At most `max_chars` characters of server text, for an error message
/// (a response can hold megabytes where a name or number was expected).
pub(crate) fn excerpt(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn ns_string(r: &ResolveResult<'_>) -> Result<String, XmlError> {
    match r {
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Bound(ns) => Ok(ns.as_ref().to_string()),
        ResolveResult::Unknown(p) => Err(XmlError(format!(
            "undeclared namespace prefix {:?}",
            excerpt(p, 40)
        ))),
    }
}

fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_attributes_and_entities() {
        let doc = r#"<?xml version="1.0"?><a:x xmlns:a="urn:a" xmlns="urn:d" K="1 &amp; 2"><y a:Q="v">t&lt;&#x41;</y><y/></a:x>"#;
        let root = parse(doc).unwrap();
        assert!(root.is("urn:a", "x"));
        assert_eq!(root.attr("K"), Some("1 & 2"));
        let ys: Vec<_> = root.children_named("urn:d", "y").collect();
        assert_eq!(ys.len(), 2);
        assert_eq!(ys[0].text, "t<A");
        assert_eq!(ys[0].attrs, vec![("urn:a".into(), "Q".into(), "v".into())]);
    }

    #[test]
    fn rejects_malformed_documents() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<p:a/>",
            "<a/><b/>",
            "<a>&foo;</a>",
            "<!DOCTYPE a><a/>",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn node_limit_counts_elements_and_attributes() {
        let elements = |n: usize| format!("<r>{}</r>", "<a/>".repeat(n - 1));
        assert_eq!(
            parse(&elements(MAX_NODES)).unwrap().children.len(),
            MAX_NODES - 1
        );
        let e = parse(&elements(MAX_NODES + 1)).unwrap_err();
        assert!(e.0.contains("100000 elements"), "{e}");
        // Attributes count too (namespace declarations do not: quick-xml
        // bounds those itself).
        let attrs = |n: usize| {
            let per = 100;
            let el = format!(
                "<a {}/>",
                (0..per).map(|i| format!("x{i}=\"\"")).collect::<String>()
            );
            format!("<r xmlns=\"urn:x\">{}</r>", el.repeat(n / (per + 1)))
        };
        assert!(parse(&attrs(MAX_NODES - 1)).is_ok());
        assert!(parse(&attrs(MAX_NODES + 202)).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let doc = "<a>".repeat(10_000);
        assert!(parse(&doc).is_err());
    }
}
