//! NTLM against pyspnego's acceptor: context establishment (raw NTLM and
//! NTLM inside the Negotiate acceptor), channel bindings, wrong passwords,
//! and sealing in both directions with WinRM's wrap layout.

mod support;

use support::Acceptor;
use wsman::auth::ntlm::{NtlmClient, NtlmCredentials, NtlmSession};
use wsman::encryption::{self, Protocol};
use wsman::Secret;

fn user_file(dir: &tempfile::TempDir, line: &str) -> Vec<(String, String)> {
    let p = dir.path().join("ntlm_users");
    std::fs::write(&p, format!("{line}\n")).unwrap();
    vec![("NTLM_USER_FILE".into(), p.display().to_string())]
}

/// Runs NEGOTIATE / CHALLENGE / AUTHENTICATE; returns the session or the
/// acceptor's error.
fn handshake(
    acc: &mut Acceptor,
    user: &str,
    password: &str,
    cbt: Option<[u8; 16]>,
) -> Result<NtlmSession, String> {
    let creds = NtlmCredentials::from_username(user, Secret::new(password));
    let (client, negotiate) = NtlmClient::new(creds, Some("HTTP/localhost".into()));
    let (challenge, complete) = acc.step(&negotiate)?;
    assert!(!complete);
    let (auth, session) = client
        .authenticate(&challenge.expect("challenge"), cbt)
        .map_err(|e| e.to_string())?;
    let (out, complete) = acc.step(&auth)?;
    assert!(complete, "acceptor not complete after AUTHENTICATE");
    assert!(out.is_none());
    Ok(session)
}

fn exchange_messages(acc: &mut Acceptor, session: &mut NtlmSession) {
    // Several messages each way: the RC4 streams and sequence numbers must
    // stay in step with the acceptor's.
    for i in 0..5 {
        let msg = format!(
            "<s:Envelope>client message {i} {}</s:Envelope>",
            "x".repeat(i * 1000)
        );
        let (sig, sealed) = session.seal(msg.as_bytes());
        assert_eq!(sealed.len(), msg.len());
        assert_ne!(&sealed[..], msg.as_bytes());
        assert_eq!(acc.unwrap(&sig, &sealed).unwrap(), msg.as_bytes());

        let reply = format!("server reply {i}");
        let (header, data, padding) = acc.wrap(reply.as_bytes());
        assert_eq!((header.len(), padding), (16, 0));
        assert_eq!(session.unseal(&header, &data).unwrap(), reply.as_bytes());
    }
}

#[test]
fn ntlm_acceptor_with_sealing_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let env = user_file(&dir, "PEER:testuser:Password01");
    let mut acc = Acceptor::start("ntlm", None, &env);
    let mut session = handshake(&mut acc, "PEER\\testuser", "Password01", None).unwrap();
    let (principal, protocol) = acc.info();
    assert_eq!(protocol, "ntlm");
    assert!(principal.to_lowercase().contains("testuser"), "{principal}");
    exchange_messages(&mut acc, &mut session);
}

#[test]
fn raw_ntlm_inside_the_negotiate_acceptor() {
    let dir = tempfile::tempdir().unwrap();
    let env = user_file(&dir, ":testuser:Password01");
    let mut acc = Acceptor::start("negotiate", None, &env);
    let mut session = handshake(&mut acc, "testuser", "Password01", None).unwrap();
    assert_eq!(acc.info().1, "ntlm");
    exchange_messages(&mut acc, &mut session);
}

#[test]
fn wrong_password_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let env = user_file(&dir, ":testuser:Password01");
    let mut acc = Acceptor::start("ntlm", None, &env);
    let err = handshake(&mut acc, "testuser", "wrong", None).unwrap_err();
    assert!(err.contains("Invalid NTLM response"), "{err}");
}

#[test]
fn channel_bindings_are_checked_by_the_acceptor() {
    let dir = tempfile::tempdir().unwrap();
    let env = user_file(&dir, ":testuser:Password01");
    let cb =
        wsman::auth::channel_bindings::ChannelBindings::tls_server_end_point(&fake_cert()).unwrap();
    // Matching bindings: accepted.
    let mut acc = Acceptor::start("ntlm", Some(cb.application_data()), &env);
    let mut session = handshake(&mut acc, "testuser", "Password01", Some(cb.ntlm_hash())).unwrap();
    exchange_messages(&mut acc, &mut session);
    // Bindings of another certificate: refused.
    let mut acc = Acceptor::start("ntlm", Some(b"tls-server-end-point:other"), &env);
    let err = handshake(&mut acc, "testuser", "Password01", Some(cb.ntlm_hash())).unwrap_err();
    assert!(err.to_lowercase().contains("channel binding"), "{err}");
    // (Zero bindings are accepted by pyspnego, like Windows' "when
    // supported" hardening level; the transport always sends them on TLS.)
}

/// A minimal DER certificate shape (SEQUENCE { tbs, sha256WithRSA, sig });
/// only the signature algorithm matters for the binding hash.
fn fake_cert() -> Vec<u8> {
    let alg = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    let mut inner = vec![0x30, 0x03, 0x02, 0x01, 0x01];
    inner.extend_from_slice(&alg);
    inner.extend_from_slice(&[0x03, 0x02, 0x00, 0xff]);
    let mut cert = vec![0x30, inner.len() as u8];
    cert.extend_from_slice(&inner);
    cert
}

#[test]
fn tampered_or_replayed_server_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let env = user_file(&dir, ":testuser:Password01");
    let mut acc = Acceptor::start("ntlm", None, &env);
    let mut session = handshake(&mut acc, "testuser", "Password01", None).unwrap();

    let (header, mut data, _) = acc.wrap(b"<s:Envelope>reply</s:Envelope>");
    data[3] ^= 0x01;
    assert!(
        session.unseal(&header, &data).is_err(),
        "flipped bit accepted"
    );

    // After a failure the stream is out of step: the transport drops such a
    // connection. A fresh context shows replay detection: the same sealed
    // message twice is refused the second time.
    let mut acc = Acceptor::start("ntlm", None, &env);
    let mut session = handshake(&mut acc, "testuser", "Password01", None).unwrap();
    let (header, data, _) = acc.wrap(b"once");
    assert_eq!(session.unseal(&header, &data).unwrap(), b"once");
    assert!(session.unseal(&header, &data).is_err(), "replay accepted");
}

#[test]
fn encrypted_body_framing_round_trip_with_the_acceptor() {
    let dir = tempfile::tempdir().unwrap();
    let env = user_file(&dir, ":testuser:Password01");
    let mut acc = Acceptor::start("ntlm", None, &env);
    let mut session = handshake(&mut acc, "testuser", "Password01", None).unwrap();

    // Client -> server: frame our sealed message, let the acceptor open it.
    let soap = b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"/>";
    let (sig, sealed) = session.seal(soap);
    let body = encryption::encode(Protocol::Spnego, soap.len(), &sig, &sealed);
    let parts = encryption::decode(&Protocol::Spnego.content_type(), &body).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].original_length, soap.len());
    assert_eq!(acc.unwrap(parts[0].header, parts[0].data).unwrap(), soap);

    // Server -> client: the acceptor's wrap framed as WinRM does.
    let (header, data, padding) = acc.wrap(soap);
    let body = encryption::encode(Protocol::Spnego, soap.len() + padding, &header, &data);
    let parts = encryption::decode(&Protocol::Spnego.content_type(), &body).unwrap();
    assert_eq!(
        session.unseal(parts[0].header, parts[0].data).unwrap(),
        soap
    );
}

#[test]
fn a_challenge_without_128_bit_keys_or_key_exchange_is_refused() {
    use wsman::auth::ntlm::messages::flags;
    use wsman::auth::ntlm::NtlmError;
    let dir = tempfile::tempdir().unwrap();
    let env = user_file(&dir, ":testuser:Password01");
    // pyspnego's acceptor answers with the flags of the NEGOTIATE it got,
    // so a NEGOTIATE downgraded on the way (or a client asking for less)
    // gets a real CHALLENGE without them.
    for strip in [
        flags::NEG_128,
        flags::KEY_EXCH,
        flags::NEG_128 | flags::NEG_56 | flags::KEY_EXCH,
    ] {
        let mut acc = Acceptor::start("ntlm", None, &env);
        let creds = NtlmCredentials::from_username("testuser", Secret::new("Password01"));
        let (client, mut negotiate) = NtlmClient::new(creds, Some("HTTP/localhost".into()));
        let f = u32::from_le_bytes(negotiate[12..16].try_into().unwrap()) & !strip;
        negotiate[12..16].copy_from_slice(&f.to_le_bytes());
        let (challenge, _) = acc.step(&negotiate).unwrap();
        let challenge = challenge.expect("challenge");
        let offered = u32::from_le_bytes(challenge[20..24].try_into().unwrap());
        assert_eq!(offered & strip, 0, "the acceptor still offers {strip:#x}");
        let err = client.authenticate(&challenge, None).unwrap_err();
        assert_eq!(
            err,
            NtlmError::MissingFlags {
                missing: strip & (flags::NEG_128 | flags::KEY_EXCH),
                offered
            }
        );
        assert!(err.to_string().contains("128-bit"), "{err}");
    }
}
