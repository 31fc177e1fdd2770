//! WS-Man faults from a hostile server: every `s:Fault`-like element is read
//! as a fault and displayed. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::soap::envelope::{parse_response, ResponseBody};
use wsman::soap::{dom, Element};
use wsman::WsmanFault;

fn faults<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
    if e.name == "Fault" {
        out.push(e);
    }
    for c in &e.children {
        faults(c, out);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ResponseBody::Fault(f)) = parse_response(text, "uuid:X") {
        let shown = f.to_string();
        assert!(shown.starts_with("WS-Management fault"));
        let _ = f.is_operation_timeout();
    }
    // Also faults in unexpected places, and any element read as one.
    if let Ok(root) = dom::parse(text) {
        let mut found = Vec::new();
        faults(&root, &mut found);
        found.push(&root);
        for e in found {
            let f = WsmanFault::from_element(e);
            let _ = f.to_string();
            let _ = f.is_operation_timeout();
        }
    }
});
