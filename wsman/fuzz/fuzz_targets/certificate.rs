//! Server certificates read for diagnostics (`wsman::cert`): a hostile
//! server chooses every byte. Nothing may panic; what parses is usable.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::cert::{format_utc, CertSummary};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = CertSummary::from_der(data) {
        let _ = format_utc(c.not_after);
        let _ = format_utc(c.not_before);
        let _ = c.matches_host("host.example");
        let _ = c.matches_host("127.0.0.1");
    }
    let _ = wsman::diagnose::parse_identify(data);
});
