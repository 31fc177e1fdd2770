//! WWW-Authenticate headers of a hostile server's 401 replies (one value
//! per input line): the offered schemes and the base64 tokens. Nothing may
//! panic; every offered scheme is one word.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::fuzzing::www_authenticate;

fuzz_target!(|data: &[u8]| {
    let (offered, tokens) = www_authenticate(data);
    assert_eq!(offered.len(), tokens.len());
    for s in &offered {
        assert!(!s.is_empty() && !s.contains(char::is_whitespace) && !s.contains('='));
    }
});
