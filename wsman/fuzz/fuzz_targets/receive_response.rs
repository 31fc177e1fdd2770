//! Receive (and Create, Command) responses from a hostile server: stream
//! data, command state and exit code. Nothing may panic; what is returned
//! is consistent; the one-pass Receive reader returns what the tree-based
//! reading returns whenever it does not decline.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::shell::{parse_command, parse_create, parse_receive, read_receive_response};
use wsman::soap::envelope::{parse_response, ResponseBody};
use wsman::soap::{dom, ns, Element};
use wsman::CreateShell;

fn check(body: &Element) {
    if let Ok(r) = parse_receive(body) {
        let total: usize = r
            .streams
            .iter()
            .filter(|s| s.name == "stdout")
            .map(|s| s.data.len())
            .sum();
        assert_eq!(r.stream_bytes("stdout").len(), total);
        let _ = r.is_done();
    }
    let _ = parse_command(body);
    if let Ok(shell) = parse_create(body, &CreateShell::powershell("Microsoft.PowerShell")) {
        assert!(!shell.id.is_empty());
        assert!(!shell.selectors.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(root) = dom::parse(text) else {
        // A document the tree refuses: the one-pass reader must decline it
        // too (its RelatesTo found by text, so that it gets that far).
        let relates = text
            .split_once("RelatesTo>")
            .and_then(|(_, rest)| rest.split_once('<'))
            .map(|(id, _)| id.trim())
            .unwrap_or_default();
        assert_eq!(read_receive_response(text, relates), None);
        return;
    };
    let relates = root
        .path(&[(ns::S, "Header"), (ns::WSA, "RelatesTo")])
        .map(|e| e.text.trim().to_string())
        .unwrap_or_default();
    let by_tree = match parse_response(text, &relates) {
        Ok(ResponseBody::Body(body)) => {
            check(&body);
            parse_receive(&body).ok()
        }
        _ => None,
    };
    if let Some(fast) = read_receive_response(text, &relates) {
        assert_eq!(Some(fast), by_tree);
    }
    // Without the envelope checks too: the document root as the body.
    check(&root);
});
