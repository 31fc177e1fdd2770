//! Every way into the test peer through the async client (NTLM, Negotiate,
//! Kerberos, HTTPS + Basic), and each kind of connection failure as its
//! own error kind with an actionable message.

mod client_common;

use client_common::{basic_https, close, kerberos, negotiate, ntlm, open, operations_of, peer};
use psrp_core::client::{
    AuthMethod, Command, ConnectionOptions, ErrorKind, PoolOptions, RunspacePool, Scheme, Secret,
};
use psrp_core::message::PROTOCOL_2_3;
use serde_json::json;

/// Opens a pool, runs Get-Date, closes; returns the (transport, mechanism,
/// encrypted) the peer logged for the shell's operations (all the same).
async fn round_trip(options: ConnectionOptions) -> (String, String, bool) {
    let p = peer();
    let pool = open(p, options).await;
    assert_eq!(pool.protocol_version(), PROTOCOL_2_3);
    let table = pool.ps_version_table().expect("PSVersionTable");
    assert_eq!(table["PSVersion"], json!("5.1.17763.1"));
    assert_eq!(table["PSEdition"], json!("Desktop"));
    let result = pool.invoke(Command::new("Get-Date")).await.unwrap();
    assert!(result.succeeded() && result.output.len() == 1, "{result:?}");
    let shell_id = pool.shell_id().to_owned();
    close(p, pool).await;
    let ops = operations_of(p, &shell_id);
    assert!(ops.len() >= 5, "{ops:?}");
    let seen = |o: &serde_json::Value| {
        (
            o["transport"].as_str().unwrap_or_default().to_owned(),
            o["auth"]["mechanism"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            o["encrypted"].as_bool().unwrap_or_default(),
        )
    };
    let first = seen(&ops[0]);
    for o in &ops {
        assert_eq!(seen(o), first, "{o}");
    }
    first
}

fn http_encrypted(mechanism: &str) -> (String, String, bool) {
    ("http".to_owned(), mechanism.to_owned(), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_over_http() {
    let p = peer();
    assert_eq!(round_trip(ntlm(p)).await, http_encrypted("ntlm"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_over_http_with_kerberos_from_a_password() {
    let p = peer();
    assert_eq!(round_trip(negotiate(p)).await, http_encrypted("kerberos"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_over_http_from_the_ticket_cache() {
    let p = peer();
    let options = kerberos(p).auth(AuthMethod::Negotiate);
    assert_eq!(round_trip(options).await, http_encrypted("kerberos"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_falls_back_to_ntlm_for_a_non_kerberos_account() {
    let p = peer();
    let options = ntlm(p).auth(AuthMethod::Negotiate);
    assert_eq!(round_trip(options).await, http_encrypted("ntlm"));
}

/// The fallback is reported once per pool (however many connections fall
/// back), with the Kerberos reason; forbidden, it is an auth error that
/// carries that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_fallback_is_reported_once_or_refused() {
    use std::sync::{Arc, Mutex};
    let p = peer();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = seen.clone();
    // PEER\user: a realm krb5.conf does not know, so no Kerberos ticket.
    let options = ntlm(p)
        .auth(AuthMethod::Negotiate)
        .on_ntlm_fallback(move |f| hook.lock().unwrap().push(f.clone()));
    // Two runspaces: two pipelines at once hold two connections (one
    // waits in Receive while the other sends), each authenticated anew.
    let pool = RunspacePool::open_with(options, PoolOptions::new().max_runspaces(2))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        pool.invoke(Command::new("Start-Sleep").param("Milliseconds", 1000)),
        pool.invoke(Command::new("Get-Date"))
    );
    assert!(a.unwrap().succeeded() && b.unwrap().succeeded());
    let shell_id = pool.shell_id().to_owned();
    let reported = pool.ntlm_fallback().expect("the pool says it fell back");
    close(p, pool).await;
    let ntlm_connections = operations_of(p, &shell_id)
        .iter()
        .filter(|o| o["auth"]["mechanism"] == "ntlm")
        .filter_map(|o| o["connection"].as_u64())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, std::slice::from_ref(&reported), "reported once");
    assert!(
        reported.kerberos_error.contains("realm \"PEER\""),
        "{reported}"
    );
    assert!(reported.endpoint.ends_with("/wsman"), "{reported}");
    assert!(
        ntlm_connections >= 2,
        "only {ntlm_connections} connection(s) fell back to NTLM"
    );

    let err = RunspacePool::open(
        ntlm(p)
            .auth(AuthMethod::Negotiate)
            .allow_ntlm_fallback(false),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    let msg = err.to_string();
    assert!(
        msg.contains("Negotiate could not use Kerberos (")
            && msg.contains("realm \"PEER\"")
            && msg.contains("falling back to NTLM is not allowed"),
        "{msg}"
    );
    assert!(!msg.contains(&p.info().password));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_with_a_password() {
    let p = peer();
    let options = kerberos(p).credentials(p.info().principal.clone(), p.info().password.clone());
    assert_eq!(round_trip(options).await, http_encrypted("kerberos"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_over_https() {
    let p = peer();
    assert_eq!(
        round_trip(basic_https(p)).await,
        ("https".to_owned(), "basic".to_owned(), false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_auth_error_without_the_password() {
    let p = peer();
    let wrong = "not-the-Password-123";
    for options in [
        ntlm(p).password(wrong),
        basic_https(p).password(wrong),
        kerberos(p).credentials(p.info().principal.clone(), wrong),
    ] {
        let err = RunspacePool::open(options).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth, "{err:?}");
        assert!(err.is_auth() && err.is_connection_failure());
        let text = err.to_string();
        assert!(text.starts_with("opening the runspace pool"), "{text}");
        assert!(text.contains("check the user name and password"), "{text}");
        assert!(!text.contains(wrong), "password in {text}");
        assert!(!format!("{err:?}").contains(wrong), "password in {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_tls_error() {
    let p = peer();
    let port = p.info().untrusted_cert_port.expect("bad-cert listener");
    let options = basic_https(p).port(port);
    let err = RunspacePool::open(options.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
    // Accepted only when explicitly told to.
    let pool = RunspacePool::open(options.danger_accept_invalid_certs(true))
        .await
        .unwrap();
    pool.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_configuration_name_is_a_fault_naming_the_fix() {
    let p = peer();
    let err = RunspacePool::open(kerberos(p).configuration_name("No.Such.Endpoint"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fault, "{err:?}");
    let fault = err.fault().expect("the WS-Man fault");
    assert_eq!(fault.code, Some(2150858811));
    assert!(
        err.to_string().contains("check the configuration name"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_connection_error() {
    let p = peer();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let options = ConnectionOptions::new("127.0.0.1")
        .port(port)
        .auth(AuthMethod::Ntlm)
        .credentials(
            p.info().user.clone(),
            Secret::new(p.info().password.clone()),
        );
    let err = RunspacePool::open(options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert!(err.to_string().contains("check the host, port"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_options_are_refused_before_connecting() {
    let p = peer();
    let options = basic_https(p).scheme(Scheme::Http).port(p.info().http_port);
    let err = RunspacePool::open(options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err:?}");
    assert!(!err.is_connection_failure());
    assert!(err.to_string().contains("clear text"), "{err}");
}
