//! Kerberos and SPNEGO through the system GSSAPI against pyspnego's acceptor
//! and a throwaway MIT KDC on loopback: ticket cache and password
//! credentials, channel bindings, delegation, and WinRM wrap/unwrap both ways.
//!
//! One test function: the KDC's krb5.conf is process-wide (KRB5_CONFIG), so
//! the scenarios run in sequence.

mod support;

use support::{Acceptor, Kdc, PASSWORD, USER};
use wsman::auth::gss::{acquire_credentials, GssClient, GssMech};
use wsman::Secret;

fn establish(client: &mut GssClient, acc: &mut Acceptor) -> Result<(), String> {
    let mut token = client.step(None).map_err(|e| e.to_string())?;
    for _ in 0..4 {
        let Some(t) = token.take() else { break };
        let (out, complete) = acc.step(&t)?;
        if let Some(out) = out {
            token = client.step(Some(&out)).map_err(|e| e.to_string())?;
        }
        if complete && client.is_complete() && token.is_none() {
            return Ok(());
        }
    }
    Err(format!(
        "not established (client complete: {})",
        client.is_complete()
    ))
}

fn exchange_messages(client: &mut GssClient, acc: &mut Acceptor) {
    for i in 0..4 {
        let msg = format!(
            "<s:Envelope>request {i} {}</s:Envelope>",
            "y".repeat(i * 3000)
        );
        let w = client.wrap(msg.as_bytes()).unwrap();
        // AES: 16-byte token header + confounder + encrypted header + HMAC,
        // the DCE layout with the trailer folded into the header.
        assert_eq!(w.header.len(), 60, "unexpected Kerberos wrap header size");
        assert_eq!(w.padding, 0);
        assert_eq!(w.data.len(), msg.len());
        assert_eq!(acc.unwrap(&w.header, &w.data).unwrap(), msg.as_bytes());

        let reply = format!("response {i}");
        let (header, data, padding) = acc.wrap(reply.as_bytes());
        assert_eq!(padding, 0);
        assert_eq!(client.unwrap(&header, &data).unwrap(), reply.as_bytes());
    }
    let (header, mut data, _) = acc.wrap(b"<s:Envelope>tamper</s:Envelope>");
    data[0] ^= 0x80;
    assert!(
        client.unwrap(&header, &data).is_err(),
        "tampered message accepted"
    );
}

/// A message the MIT acceptor signed but did not encrypt verifies, and is
/// refused as not encrypted; an encrypted one after it still unwraps.
fn integrity_only_wraps_are_refused(client: &mut GssClient, acc: &mut Acceptor) {
    let msg = b"<s:Envelope>signed, not sealed</s:Envelope>";
    let (header, data, encrypted) = acc.wrap_integrity_only(msg);
    assert!(!encrypted, "pyspnego encrypted the integrity-only wrap");
    assert_eq!(data, msg, "an integrity-only wrap carries the plaintext");
    let err = client.unwrap(&header, &data).unwrap_err().to_string();
    assert!(err.contains("signed but not encrypted"), "{err}");
    let (header, data, _) = acc.wrap(b"<s:Envelope>sealed</s:Envelope>");
    assert_eq!(
        client.unwrap(&header, &data).unwrap(),
        b"<s:Envelope>sealed</s:Envelope>"
    );
}

#[test]
fn kerberos_and_spnego_against_pyspnego() {
    let kdc = Kdc::start();
    let ccache = kdc.dir.path().join("client-ccache");
    // Process-wide: set before any GSSAPI call, in this single test.
    std::env::set_var("KRB5_CONFIG", kdc.krb5_conf());
    std::env::set_var("KRB5CCNAME", format!("FILE:{}", ccache.display()));
    let env = kdc.acceptor_env();

    // No ticket yet: a clear error, not a hang or a panic.
    let err = acquire_credentials(None, None).unwrap_err().to_string();
    assert!(err.contains("ticket cache"), "{err}");

    // 1. Ticket cache (kinit), raw Kerberos mech, host-based SPN.
    kdc.kinit(&ccache);
    let cred = acquire_credentials(None, None).unwrap();
    let mut client =
        GssClient::new(Some(cred), "HTTP/localhost", GssMech::Kerberos, false, None).unwrap();
    let mut acc = Acceptor::start("kerberos", None, &env);
    establish(&mut client, &mut acc).unwrap();
    let (principal, protocol) = acc.info();
    assert_eq!((principal.as_str(), protocol.as_str()), (USER, "kerberos"));
    // MIT grants mutual authentication, confidentiality and integrity.
    client.verify_granted(true).unwrap();
    // (Before exchange_messages, which ends out of step with a tampered message.)
    integrity_only_wraps_are_refused(&mut client, &mut acc);
    exchange_messages(&mut client, &mut acc);

    // 2. Password credentials (fresh TGT in memory), SPNEGO, explicit SPN
    //    with realm, delegation requested.
    let cred =
        acquire_credentials(Some("PEER.TEST\\testuser"), Some(&Secret::new(PASSWORD))).unwrap();
    let mut client = GssClient::new(
        Some(cred),
        "HTTP/localhost@PEER.TEST",
        GssMech::Spnego,
        true,
        None,
    )
    .unwrap();
    let mut acc = Acceptor::start("negotiate", None, &env);
    establish(&mut client, &mut acc).unwrap();
    assert_eq!(acc.info(), (USER.to_string(), "kerberos".to_string()));
    client.verify_granted(true).unwrap();
    // (Before exchange_messages, which ends out of step with a tampered message.)
    integrity_only_wraps_are_refused(&mut client, &mut acc);
    exchange_messages(&mut client, &mut acc);

    // 3. Channel bindings: the acceptor checks them.
    let app = b"tls-server-end-point:0123456789abcdef0123456789abcdef".to_vec();
    let cred = acquire_credentials(None, None).unwrap();
    let mut client = GssClient::new(
        Some(cred.clone()),
        "HTTP/localhost",
        GssMech::Spnego,
        false,
        Some(app.clone()),
    )
    .unwrap();
    let mut acc = Acceptor::start("negotiate", Some(&app), &env);
    establish(&mut client, &mut acc).unwrap();
    exchange_messages(&mut client, &mut acc);
    let mut client = GssClient::new(
        Some(cred),
        "HTTP/localhost",
        GssMech::Kerberos,
        false,
        Some(b"tls-server-end-point:another certificate".to_vec()),
    )
    .unwrap();
    let mut acc = Acceptor::start("kerberos", Some(&app), &env);
    // Refused (pyspnego's message for it is an internal AttributeError text).
    assert!(
        establish(&mut client, &mut acc).is_err(),
        "mismatched bindings accepted"
    );

    // 4. Wrong password and unknown service: errors that say so.
    let err = acquire_credentials(Some(USER), Some(&Secret::new("wrong")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("password"), "{err}");
    let cred = acquire_credentials(None, None).unwrap();
    let mut client = GssClient::new(
        Some(cred),
        "HTTP/nosuchhost",
        GssMech::Kerberos,
        false,
        None,
    )
    .unwrap();
    let err = client.step(None).unwrap_err().to_string();
    assert!(err.to_lowercase().contains("not found"), "{err}");
}
