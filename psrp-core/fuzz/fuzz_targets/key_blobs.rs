//! The SecureString key blobs a server sends or a client reads: the CAPI
//! PUBLICKEYBLOB and SIMPLEBLOB parsers and the base64 in front of them.
//! Every length is checked: nothing may panic, and what parses must
//! re-encode to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use psrp_core::session_key::{decode_blob_base64, parse_simple_blob, PublicKeyBlob};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKeyBlob::parse(data) {
        assert!(!key.modulus.is_empty());
        // Re-encoding drops leading zero bytes of the modulus; a blob
        // whose top byte is non-zero round-trips exactly.
        if key.modulus[0] != 0 {
            assert_eq!(PublicKeyBlob::encode(&key.modulus, key.exponent), data);
        }
    }
    // The first byte picks the modulus length the blob is checked against.
    if let Some((&pick, rest)) = data.split_first() {
        let modulus_len = usize::from(pick) * 2;
        if let Ok(ciphertext) = parse_simple_blob(rest, modulus_len) {
            assert_eq!(ciphertext.len(), modulus_len);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = decode_blob_base64(text, "SIMPLEBLOB") {
            let _ = parse_simple_blob(&bytes, 256);
            let _ = PublicKeyBlob::parse(&bytes);
        }
    }
});
