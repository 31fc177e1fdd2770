//! The server's TLS certificate (DER) as read for the tls-server-end-point
//! channel binding: only the signature algorithm is parsed. Nothing may
//! panic; the binding is the prefix and a digest of a supported length.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::auth::channel_bindings::{signature_hash, ChannelBindings};

fuzz_target!(|data: &[u8]| {
    let hash = signature_hash(data);
    match ChannelBindings::tls_server_end_point(data) {
        Ok(cb) => {
            assert!(hash.is_ok());
            let app = cb.application_data();
            assert!(app.starts_with(b"tls-server-end-point:"));
            let digest = app.len() - b"tls-server-end-point:".len();
            assert!([32, 48, 64].contains(&digest));
            let _ = cb.ntlm_hash();
        }
        Err(_) => assert!(hash.is_err()),
    }
});
