//! CredSSP structures the server sends inside the TLS channel (TSRequest,
//! TSCredentials) and the certificate whose key CredSSP binds: a hostile
//! server chooses every byte. Nothing may panic; what decodes re-encodes
//! to something that decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::auth::credssp::binding::subject_public_key;
use wsman::auth::credssp::der::{TsPasswordCreds, TsRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = TsRequest::decode(data) {
        let again = TsRequest::decode(&r.encode()).expect("re-encoded TSRequest decodes");
        assert_eq!(again, r);
    }
    if let Ok(c) = TsPasswordCreds::decode_ts_credentials(data) {
        let again = TsPasswordCreds::decode_ts_credentials(&c.encode_ts_credentials())
            .expect("re-encoded TSCredentials decodes");
        assert_eq!(again, c);
    }
    let _ = subject_public_key(data);
});
