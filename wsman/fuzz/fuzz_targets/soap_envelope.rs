//! SOAP envelopes from a hostile server: the DOM parser and the envelope
//! reader. Nothing may panic; a parsed tree respects the depth and node
//! limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::limits::{XML_MAX_DEPTH, XML_MAX_NODES};
use wsman::soap::envelope::{parse_response, ResponseBody};
use wsman::soap::{dom, ns, Element};

/// (depth, nodes) of a tree; recursion bounded by the parser's depth limit.
fn measure(e: &Element) -> (usize, usize) {
    e.children.iter().fold((1, 1 + e.attrs.len()), |(d, n), c| {
        let (cd, cn) = measure(c);
        (d.max(cd + 1), n + cn)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(root) = dom::parse(text) else {
        assert!(parse_response(text, "uuid:X").is_err());
        return;
    };
    let (depth, nodes) = measure(&root);
    assert!(depth <= XML_MAX_DEPTH, "depth {depth}");
    assert!(nodes <= XML_MAX_NODES, "nodes {nodes}");
    // Answer with the RelatesTo the document carries, so the body is reached.
    let relates = root
        .path(&[(ns::S, "Header"), (ns::WSA, "RelatesTo")])
        .map(|e| e.text.trim().to_string())
        .unwrap_or_default();
    match parse_response(text, &relates) {
        Ok(ResponseBody::Body(body)) => {
            assert!(body.is(ns::S, "Body"));
            let _ = body.find(ns::RSP, "Stream");
        }
        Ok(ResponseBody::Fault(f)) => {
            let _ = f.to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
