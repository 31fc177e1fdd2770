//! MS-NLMP 4.2.4 known answers (NTLMv2, user "User", domain "Domain",
//! password "Password", server challenge 0123456789abcdef, client challenge
//! aa×8, time 0, RandomSessionKey 55×16).

use super::crypto::*;
use super::messages::{self, av, flags};
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];
const RANDOM_SESSION_KEY: [u8; 16] = [0x55; 16];

/// TargetInfo of the spec's CHALLENGE: NetBIOS domain "Domain", NetBIOS
/// server "Server", EOL.
fn spec_target_info() -> Vec<u8> {
    messages::encode_av_pairs(&[(2, utf16le("Domain")), (1, utf16le("Server"))])
}

#[test]
fn ntowfv2_4_2_4_1_1() {
    assert_eq!(
        ntowfv2("Password", "User", "Domain").to_vec(),
        unhex("0c868a403bfd7a93a3001ef22ef02e3f")
    );
}

#[test]
fn responses_and_session_base_key_4_2_4_1_2_and_4_2_4_2() {
    let key = ntowfv2("Password", "User", "Domain");
    let temp = ntlmv2_temp(0, &CLIENT_CHALLENGE, &spec_target_info());
    let r = ntlmv2_response(&key, &SERVER_CHALLENGE, &CLIENT_CHALLENGE, &temp);
    assert_eq!(
        r.session_base_key.to_vec(),
        unhex("8de40ccadbc14a82f15cb0ad0de95ca3")
    );
    assert_eq!(
        r.lm_response.to_vec(),
        unhex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
    );
    assert_eq!(
        r.nt_response[..16].to_vec(),
        unhex("68cd0ab851e51c96aabc927bebef6a1c")
    );
    assert_eq!(&r.nt_response[16..], &temp[..]);
    // 4.2.4.2.3: EncryptedRandomSessionKey = RC4(KeyExchangeKey, RandomSessionKey).
    assert_eq!(
        rc4_once(&*r.session_base_key, &RANDOM_SESSION_KEY),
        unhex("c5dad2544fc9799094ce1ce90bc9d03e")
    );
}

#[test]
fn sealing_and_signing_4_2_4_4() {
    let keys = session_keys(&RANDOM_SESSION_KEY, 16);
    assert_eq!(
        keys.client_seal.to_vec(),
        unhex("59f600973cc4960a25480a7c196e4c58")
    );
    assert_eq!(
        keys.client_sign.to_vec(),
        unhex("4788dc861b4782f35d43fd98fe1a2d39")
    );
    let mut s = NtlmSession::client(&RANDOM_SESSION_KEY, 16, true);
    let (sig, sealed) = s.seal(&utf16le("Plaintext"));
    assert_eq!(sealed, unhex("54e50165bf1936dc996020c1811b0f06fb5f"));
    assert_eq!(sig.to_vec(), unhex("01000000 7fb38ec5c55d4976 00000000"));
    // The sequence number advances per message.
    let (sig2, _) = s.seal(b"x");
    assert_eq!(&sig2[12..], &1u32.to_le_bytes());
}

#[test]
fn authenticate_message_against_the_spec_challenge() {
    let challenge = unhex(messages::tests_support::SPEC_CHALLENGE);
    let creds = NtlmCredentials::from_username("Domain\\User", Secret::new("Password"));
    let (client, negotiate) = NtlmClient::new(creds, Some("HTTP/server".into()));
    let cb = [0x11u8; 16];
    let nonces = Nonces {
        client_challenge: CLIENT_CHALLENGE,
        exported_session_key: RANDOM_SESSION_KEY,
        now_filetime: 0,
    };
    let (auth, mut session) = client
        .authenticate_with(&challenge, Some(cb), &nonces)
        .unwrap();

    // Decode the fields we produced and recompute them independently.
    let field = |at: usize| {
        let len = u16::from_le_bytes([auth[at], auth[at + 1]]) as usize;
        let off =
            u32::from_le_bytes([auth[at + 4], auth[at + 5], auth[at + 6], auth[at + 7]]) as usize;
        auth[off..off + len].to_vec()
    };
    assert_eq!(field(28), utf16le("Domain"));
    assert_eq!(field(36), utf16le("User"));
    let nt = field(20);
    let temp = &nt[16..];
    let key = ntowfv2("Password", "User", "Domain");
    assert_eq!(
        hmac_md5(&*key, &[&SERVER_CHALLENGE, temp]).to_vec(),
        nt[..16].to_vec()
    );
    // The spec challenge has no timestamp: the LMv2 response is sent.
    assert_eq!(
        field(12),
        unhex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
    );
    // Target info in the blob: server pairs + MsvAvFlags(MIC) + CBT + SPN.
    let pairs = messages::parse_av_pairs(&temp[28..]).unwrap();
    assert_eq!(pairs[0], (2, utf16le("Domain")));
    assert_eq!(pairs[1], (1, utf16le("Server")));
    assert!(pairs.contains(&(av::FLAGS, av::FLAG_MIC.to_le_bytes().to_vec())));
    assert!(pairs.contains(&(av::CHANNEL_BINDINGS, cb.to_vec())));
    assert!(pairs.contains(&(av::TARGET_NAME, utf16le("HTTP/server"))));
    // Key exchange: the spec's encrypted session key, since NTProofStr and so
    // the base key depend on our amended target info, recompute it.
    let base = hmac_md5(&*key, &[&nt[..16]]);
    assert_eq!(field(52), rc4_once(&base, &RANDOM_SESSION_KEY));
    // MIC over the three messages with the MIC field zeroed.
    let mut zeroed = auth.clone();
    zeroed[72..88].fill(0);
    assert_eq!(
        hmac_md5(&RANDOM_SESSION_KEY, &[&negotiate, &challenge, &zeroed]).to_vec(),
        auth[72..88].to_vec()
    );
    let neg_flags = u32::from_le_bytes([auth[60], auth[61], auth[62], auth[63]]);
    assert_eq!(neg_flags & flags::KEY_EXCH, flags::KEY_EXCH);
    // The session uses the exported key: same seal as 4.2.4.4.
    let (_, sealed) = session.seal(&utf16le("Plaintext"));
    assert_eq!(sealed, unhex("54e50165bf1936dc996020c1811b0f06fb5f"));
}

/// The spec CHALLENGE with `clear` removed from its NegotiateFlags.
fn spec_challenge_without(clear: u32) -> Vec<u8> {
    let mut challenge = unhex(messages::tests_support::SPEC_CHALLENGE);
    let f =
        u32::from_le_bytes([challenge[20], challenge[21], challenge[22], challenge[23]]) & !clear;
    challenge[20..24].copy_from_slice(&f.to_le_bytes());
    challenge
}

#[test]
fn refuses_a_server_without_sealing_128_bit_keys_or_key_exchange() {
    for (clear, named) in [
        (flags::SEAL, "SEAL"),
        (flags::NEG_128, "128"),
        // A server offering only 56-bit keys.
        (flags::NEG_128 | flags::KEY_EXCH, "128, KEY_EXCH"),
        (flags::KEY_EXCH, "KEY_EXCH"),
        (
            flags::NEG_128 | flags::NEG_56 | flags::KEY_EXCH,
            "128, KEY_EXCH",
        ),
    ] {
        let challenge = spec_challenge_without(clear);
        let creds = NtlmCredentials::from_username("u", Secret::new("p"));
        let (client, _) = NtlmClient::new(creds, None);
        let err = client.authenticate(&challenge, None).unwrap_err();
        let offered = 0xe28a_8233 & !clear;
        assert_eq!(
            err,
            NtlmError::MissingFlags {
                missing: clear & REQUIRED_FLAGS,
                offered
            }
        );
        // The message says what is missing, what was offered and what to do.
        let text = err.to_string();
        assert!(
            text.contains(&format!("does not offer {named} (it offered 0x"))
                && text.contains("this client requires UNICODE, SIGN, SEAL, EXTENDED_SESSIONSECURITY, 128, KEY_EXCH.")
                && text.contains("128-bit encryption"),
            "{text}"
        );
        assert!(
            text.contains(&format!("(it offered {offered:#010x}: UNICODE, SIGN, ")),
            "offered flags listed: {text}"
        );
    }
    // All flags present: accepted (the known-answer test above).
    assert_eq!(flag_names(0), ["none of them"]);
}

#[test]
fn username_forms() {
    let c = NtlmCredentials::from_username("DOM\\bob", Secret::new("x"));
    assert_eq!((c.domain.as_str(), c.user.as_str()), ("DOM", "bob"));
    let c = NtlmCredentials::from_username("bob@dom.example", Secret::new("hunter2"));
    assert_eq!(
        (c.domain.as_str(), c.user.as_str()),
        ("", "bob@dom.example")
    );
    assert!(!format!("{c:?}").contains("hunter2"));
}
