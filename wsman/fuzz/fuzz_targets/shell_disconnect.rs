//! Connect, Disconnect/Reconnect and Enumerate/Pull responses from a
//! hostile server: connectResponseXml, acknowledgements and the shell
//! list. Nothing may panic; what is returned is consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::enumerate::{parse_duration, parse_enumerate, parse_pull, Page};
use wsman::shell::{parse_ack, parse_connect, parse_connect_command};
use wsman::soap::envelope::{parse_response, ResponseBody};
use wsman::soap::{dom, ns, Element};

fn check_page(page: &Page) {
    for s in &page.shells {
        assert!(!s.id.is_empty());
        let _ = s.configuration_name();
        let _ = s.is_disconnected();
    }
}

fn check(body: &Element, text_len: usize) {
    if let Ok(bytes) = parse_connect(body) {
        // base64 never grows: the decoded bytes come from the text.
        assert!(bytes.len() <= text_len);
    }
    let _ = parse_connect_command(body);
    let _ = parse_ack(body, "DisconnectResponse");
    let _ = parse_ack(body, "ReconnectResponse");
    if let Ok(p) = parse_enumerate(body) {
        check_page(&p);
    }
    if let Ok(p) = parse_pull(body) {
        check_page(&p);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_duration(text);
    let Ok(root) = dom::parse(text) else {
        return;
    };
    let relates = root
        .path(&[(ns::S, "Header"), (ns::WSA, "RelatesTo")])
        .map(|e| e.text.trim().to_string())
        .unwrap_or_default();
    if let Ok(ResponseBody::Body(body)) = parse_response(text, &relates) {
        check(&body, text.len());
    }
    check(&root, text.len());
});
