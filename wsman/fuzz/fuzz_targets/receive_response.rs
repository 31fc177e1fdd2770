//! Receive (and Create, Command) responses from a hostile server: stream
//! data, command state and exit code. Nothing may panic; what is returned
//! is consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::shell::{parse_command, parse_create, parse_receive};
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
        return;
    };
    let relates = root
        .path(&[(ns::S, "Header"), (ns::WSA, "RelatesTo")])
        .map(|e| e.text.trim().to_string())
        .unwrap_or_default();
    if let Ok(ResponseBody::Body(body)) = parse_response(text, &relates) {
        check(&body);
    }
    // Without the envelope checks too: the document root as the body.
    check(&root);
});
