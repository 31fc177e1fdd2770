//! Client certificate authentication (`-a certificate`) over HTTPS against
//! the peer, whose listener asks for a client certificate, checks it against
//! its CA and maps it to an account by the UPN in its subjectAltName: the
//! mapped user in the peer's log, an encrypted PKCS#8 key decrypted with the
//! password, and each refusal with its own message (another CA: the TLS
//! handshake; no mapping: HTTP 401; plain HTTP: a usage error).

mod cli_support;

use cli_support::{Peer, Psrp, Run};
use serde_json::Value;

fn client(peer: &Peer, key: &str) -> String {
    peer.info().raw["client_certs"][key]
        .as_str()
        .unwrap_or_else(|| panic!("peer info has no client_certs.{key}"))
        .to_owned()
}

/// `psrp invoke Get-Date -a certificate` over HTTPS with the given files.
fn run(peer: &Peer, cert: &str, key: &str, password: Option<&str>) -> Run {
    let info = peer.info();
    let mut p = Psrp::new();
    p.conn([
        "-H",
        &info.host,
        "--scheme",
        "https",
        "--port",
        &info.https_port.to_string(),
        "--ca-file",
        info.ca_file.to_str().unwrap(),
        "-a",
        "certificate",
        "--cert-file",
        &client(peer, cert),
        "--key-file",
        &client(peer, key),
    ]);
    if let Some(pw) = password {
        p.env("PSRP_PASSWORD", pw);
    }
    p.args(["invoke", "Get-Date"]).run()
}

/// Neither output shows the key file's base64 or the password.
#[track_caller]
fn assert_no_secret(peer: &Peer, run: &Run, key: &str, password: Option<&str>) {
    let pem = std::fs::read_to_string(client(peer, key)).unwrap();
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !run.stdout.contains(line) && !run.stderr.contains(line),
            "the key was printed"
        );
    }
    if let Some(pw) = password {
        assert!(!run.stderr.contains(pw) && !run.stdout.contains(pw));
    }
}

/// One test: the checks read the shared peer's log, which parallel tests
/// would interleave.
#[test]
fn certificate_authentication() {
    let peer = Peer::shared();
    a_mapped_certificate_logs_on_as_its_user(peer);
    an_encrypted_key_is_decrypted_with_the_password(peer);
    a_certificate_of_another_ca_fails_the_tls_handshake(peer);
    an_unmapped_certificate_is_refused_with_401(peer);
    certificate_auth_is_refused_over_plain_http(peer);
    the_library_refuses_plain_http_too(peer);
}

fn the_library_refuses_plain_http_too(peer: &Peer) {
    use psrp_core::client::{AuthMethod, ConnectionOptions, ErrorKind, RunspacePool};
    let options = ConnectionOptions::new(peer.info().host.clone())
        .port(peer.info().http_port)
        .auth(AuthMethod::Certificate)
        .client_certificate(client(peer, "client_cert"), client(peer, "client_key"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seq = peer.last_seq().unwrap();
    let err = match rt.block_on(RunspacePool::open(options)) {
        Ok(_) => panic!("certificate authentication over plain HTTP was used"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("needs HTTPS"), "{err}");
    assert!(
        peer.log_since(seq).unwrap().is_empty(),
        "a request was sent"
    );
}

fn a_mapped_certificate_logs_on_as_its_user(peer: &Peer) {
    let seq = peer.last_seq().unwrap();
    let r = run(peer, "client_cert", "client_key", None);
    r.expect_code(0);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{}", r.stdout);
    let auth: Vec<Value> = peer
        .log_kind_since(seq, "auth")
        .unwrap()
        .into_iter()
        .filter(|a| a["result"] == "ok")
        .collect();
    assert!(!auth.is_empty());
    for a in &auth {
        assert_eq!(a["mechanism"], "certificate", "{a}");
        assert_eq!(a["principal"].as_str(), Some(peer.info().user.as_str()));
        assert_eq!(a["certificate_upn"], client(peer, "upn").as_str());
    }
    let ops = peer.log_kind_since(seq, "wsman").unwrap();
    assert!(ops.len() >= 3, "{ops:?}");
    assert!(ops
        .iter()
        .all(|o| o["transport"] == "https" && o["auth"]["mechanism"] == "certificate"));
}

fn an_encrypted_key_is_decrypted_with_the_password(peer: &Peer) {
    let password = client(peer, "key_password");
    let r = run(peer, "client_cert", "client_key_encrypted", Some(&password));
    r.expect_code(0);
    assert_no_secret(peer, &r, "client_key_encrypted", Some(&password));

    let r = run(
        peer,
        "client_cert",
        "client_key_encrypted",
        Some("not-the-key-password"),
    );
    r.expect_code(64);
    assert!(r.stderr.contains("wrong password"), "{}", r.stderr);
    assert_no_secret(
        peer,
        &r,
        "client_key_encrypted",
        Some("not-the-key-password"),
    );

    let r = run(peer, "client_cert", "client_key_encrypted", None);
    r.expect_code(64);
    assert!(
        r.stderr.contains("encrypted") && r.stderr.contains("no password"),
        "{}",
        r.stderr
    );
}

fn a_certificate_of_another_ca_fails_the_tls_handshake(peer: &Peer) {
    let seq = peer.last_seq().unwrap();
    let r = run(peer, "foreign_cert", "foreign_key", None);
    r.expect_code(3);
    assert!(
        r.stderr.contains("TLS") && r.stderr.contains("client certificate"),
        "{}",
        r.stderr
    );
    // The alert reaches the client before the peer records why it sent it: wait (bounded) for the entry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut tls = peer.log_kind_since(seq, "tls").unwrap();
    while tls.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tls = peer.log_kind_since(seq, "tls").unwrap();
    }
    assert!(!tls.is_empty(), "the peer logged no failed handshake");
    assert!(peer.log_kind_since(seq, "wsman").unwrap().is_empty());
}

fn an_unmapped_certificate_is_refused_with_401(peer: &Peer) {
    let seq = peer.last_seq().unwrap();
    let r = run(peer, "unmapped_cert", "unmapped_key", None);
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("refused the client certificate (HTTP 401)"),
        "{}",
        r.stderr
    );
    let refused: Vec<Value> = peer
        .log_kind_since(seq, "auth")
        .unwrap()
        .into_iter()
        .filter(|a| a["result"] == "refused")
        .collect();
    assert!(
        refused.iter().any(|a| a["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&client(peer, "unmapped_upn")))),
        "{refused:?}"
    );
    assert!(peer.log_kind_since(seq, "wsman").unwrap().is_empty());
}

fn certificate_auth_is_refused_over_plain_http(peer: &Peer) {
    let r = Psrp::peer(peer)
        .conn([
            "-a",
            "certificate",
            "--cert-file",
            &client(peer, "client_cert"),
            "--key-file",
            &client(peer, "client_key"),
        ])
        .args(["invoke", "Get-Date"])
        .run();
    r.expect_code(64);
    assert!(r.stderr.contains("needs --scheme https"), "{}", r.stderr);
}
