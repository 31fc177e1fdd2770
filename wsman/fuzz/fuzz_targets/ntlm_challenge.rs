//! NTLM CHALLENGE messages from a hostile server: the message and AV pair
//! parsers, then the whole AUTHENTICATE computation on whatever parses
//! (fixed nonces). Nothing may panic; AV pairs survive a round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::auth::ntlm::messages::{encode_av_pairs, parse_av_pairs, Challenge};
use wsman::auth::ntlm::{Nonces, NtlmClient, NtlmCredentials};
use wsman::Secret;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = parse_av_pairs(data) {
        assert_eq!(
            parse_av_pairs(&encode_av_pairs(&pairs)).as_ref(),
            Ok(&pairs)
        );
    }
    let Ok(challenge) = Challenge::parse(data) else {
        return;
    };
    let _ = parse_av_pairs(&challenge.target_info);
    let creds = NtlmCredentials::from_username("DOMAIN\\user", Secret::new("password"));
    let (client, _negotiate) = NtlmClient::new(creds, Some("HTTP/host".into()));
    let nonces = Nonces {
        client_challenge: [1; 8],
        exported_session_key: [2; 16],
        now_filetime: 133_000_000_000_000_000,
    };
    if let Ok((authenticate, mut session)) = client.authenticate_with(data, Some([3; 16]), &nonces)
    {
        assert!(authenticate.starts_with(b"NTLMSSP\0\x03\0\0\0"));
        let (_sig, sealed) = session.seal(b"message");
        assert_eq!(sealed.len(), 7);
    }
});
