//! Kerberos delegation (`--delegate`, `ConnectionOptions::delegate`) over
//! HTTP with message encryption: the peer's MIT acceptor receives the
//! forwarded TGT as delegated credentials, logs their principal, and its
//! `Get-DelegatedIdentity` command returns it; without delegation it returns
//! nothing; with a non-forwardable ticket the client refuses to go on with a
//! typed error that says how to fix it.
//!
//! One test function: the library part points this process's KRB5CCNAME at
//! another cache, which must not race other tests of the binary.

mod cli_support;

use cli_support::{Peer, Psrp, Run};
use psrp_core::client::{AuthMethod, ConnectionOptions, ErrorKind, RunspacePool, Scheme};
use serde_json::{json, Value};

/// The `delegated` field of the successful auth records logged after `seq`.
fn delegated_since(peer: &Peer, seq: u64) -> Vec<Value> {
    peer.log_since(seq)
        .unwrap()
        .into_iter()
        .filter(|e| e["kind"] == "auth" && e["result"] == "ok")
        .map(|e| e["delegated"].clone())
        .collect()
}

fn wsman_ops_since(peer: &Peer, seq: u64) -> usize {
    peer.log_since(seq)
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "wsman")
        .count()
}

fn run(peer: &Peer, auth: &str, extra: &[&str], ccache: Option<&str>) -> Run {
    let mut p = Psrp::peer(peer);
    p.conn(["-a", auth]).conn(extra);
    if let Some(c) = ccache {
        p.env("KRB5CCNAME", format!("FILE:{c}"));
    }
    p.args(["invoke", "Get-DelegatedIdentity"]).run()
}

fn variant(peer: &Peer, key: &str) -> String {
    peer.info().raw["kerberos_variants"][key]
        .as_str()
        .unwrap_or_else(|| panic!("peer info has no kerberos_variants.{key}"))
        .to_owned()
}

#[test]
fn kerberos_delegation_reaches_the_server_or_fails_with_the_fix() {
    let peer = Peer::shared();
    let principal = peer.info().principal.clone();
    let not_forwardable = variant(peer, "ccache_not_forwardable");

    // --delegate with Kerberos and with Negotiate (SPNEGO carrying Kerberos).
    for auth in ["kerberos", "negotiate"] {
        let seq = peer.last_seq().unwrap();
        let r = run(peer, auth, &["--delegate"], None);
        r.expect_code(0);
        assert_eq!(r.json(), json!([principal]), "{auth}: {}", r.stderr);
        let delegated = delegated_since(peer, seq);
        assert!(!delegated.is_empty(), "{auth}: no auth logged");
        assert!(
            delegated.iter().all(|d| *d == json!(principal)),
            "{auth}: {delegated:?}"
        );
    }

    // The same through the environment variable.
    let r = {
        let mut p = Psrp::peer(peer);
        p.conn(["-a", "kerberos"])
            .env("PSRP_DELEGATE", "true")
            .args(["invoke", "Get-DelegatedIdentity"])
            .run()
    };
    r.expect_code(0);
    assert_eq!(r.json(), json!([principal]));

    // Without it the server holds no credentials of the user.
    let seq = peer.last_seq().unwrap();
    let r = run(peer, "kerberos", &[], None);
    r.expect_code(0);
    assert_eq!(r.json(), json!([]));
    assert!(delegated_since(peer, seq).iter().all(Value::is_null));

    // A forwardable ticket is still used without --delegate, and a
    // non-forwardable one works without it.
    run(peer, "kerberos", &[], Some(&not_forwardable)).expect_code(0);

    // A non-forwardable TGT with --delegate: exit 3, the cause and the fix,
    // and no WS-Man operation reaches the server.
    for auth in ["kerberos", "negotiate"] {
        let seq = peer.last_seq().unwrap();
        let r = run(peer, auth, &["--delegate"], Some(&not_forwardable));
        r.expect_code(3);
        assert!(
            r.stderr.contains("delegation")
                && r.stderr.contains("is not forwardable")
                && r.stderr.contains("kinit -f"),
            "{auth}: {}",
            r.stderr
        );
        assert_eq!(
            wsman_ops_since(peer, seq),
            0,
            "{auth}: an operation was sent"
        );
    }

    // Negotiate that cannot use Kerberos (PEER is no realm krb5.conf knows)
    // does not fall back to NTLM when delegation is asked for.
    let seq = peer.last_seq().unwrap();
    let r = {
        let mut p = Psrp::peer(peer);
        p.conn(["-a", "negotiate", "--delegate", "-u", "PEER\\testuser"])
            .env("PSRP_PASSWORD", &peer.info().password)
            .env("KRB5CCNAME", "FILE:/nonexistent/ccache")
            .args(["invoke", "Get-DelegatedIdentity"])
            .run()
    };
    r.expect_code(3);
    assert!(r.stderr.contains("NTLM cannot delegate"), "{}", r.stderr);
    assert!(!r.stderr.contains(&peer.info().password));
    assert_eq!(wsman_ops_since(peer, seq), 0);

    // Delegation cannot ride on NTLM or Basic.
    let r = run(peer, "ntlm", &["--delegate", "-u", "testuser"], None);
    r.expect_code(64);
    assert!(
        r.stderr.contains("--delegate needs Kerberos"),
        "{}",
        r.stderr
    );

    // The library: the typed error, of the authentication kind.
    std::env::set_var("KRB5CCNAME", format!("FILE:{not_forwardable}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = ConnectionOptions::new(peer.info().host.clone())
        .scheme(Scheme::Http)
        .port(peer.info().http_port)
        .auth(AuthMethod::Kerberos)
        .delegate(true);
    let err = match rt.block_on(RunspacePool::open(options.clone())) {
        Ok(_) => panic!("a non-forwardable ticket was delegated"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    let source = std::error::Error::source(&err).expect("the wsman error");
    let wsman_err = source
        .downcast_ref::<wsman::Error>()
        .expect("a wsman::Error");
    match wsman_err {
        wsman::Error::Delegation { source, .. } => {
            assert_eq!(source.principal, principal);
            assert!(source.spn.starts_with("HTTP/"), "{}", source.spn);
        }
        other => panic!("not the delegation error: {other:?}"),
    }
    // The same options without delegation connect.
    let pool = rt
        .block_on(RunspacePool::open(options.delegate(false)))
        .expect("open without delegation");
    rt.block_on(pool.close()).expect("close");
}
