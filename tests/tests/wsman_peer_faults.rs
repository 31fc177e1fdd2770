//! Connection loss and injected faults (own peer instance: faults are per
//! instance). The client must re-authenticate on a new connection, never
//! reuse a connection in an unknown state, and report faults as typed errors.

mod support;

use std::time::Duration;
use support::{Fault, FaultRule, Peer, PeerOptions, Psrp};
use wsman::{Auth, CreateShell, Error, ReceiveOutcome, Secret, WsmanClient, WsmanConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_reauthenticates_after_connection_loss() {
    let peer = Peer::start(&PeerOptions::default()).unwrap();
    let info = peer.info();
    let ntlm = || Auth::Ntlm {
        username: format!("PEER\\{}", info.user),
        password: Secret::new(info.password.clone()),
    };
    let mut cfg = WsmanConfig::new(&info.http_url(), ntlm()).unwrap();
    cfg.operation_timeout = Duration::from_secs(2);
    cfg.max_connections = 1;
    let client = WsmanClient::new(cfg).unwrap();

    let mut psrp = Psrp::start();
    let (pool_id, xml) = psrp.open();
    // The server closes the (authenticated, encrypted) connection after
    // answering Create: the next request must go over a new connection with
    // a new NTLM context.
    peer.add_fault(&FaultRule::new(Fault::CloseAfterResponse, Some("Create")))
        .unwrap();
    let shell = client
        .create_shell(
            CreateShell::powershell("Microsoft.PowerShell")
                .with_shell_id(pool_id.clone())
                .with_creation_xml(xml),
        )
        .await
        .unwrap();
    let first = client.receive(&shell, None).await.unwrap();
    assert!(matches!(first, ReceiveOutcome::Data(_)), "{first:?}");

    // The server drops the connection without answering a Receive: the
    // Receive is sent again on a fresh, re-authenticated connection
    // (WsmanConfig::reconnect, default 5 retries).
    peer.add_fault(&FaultRule::new(Fault::DropConnection, Some("Receive")))
        .unwrap();
    assert!(client.receive(&shell, None).await.is_ok());

    // An injected WS-Man fault arrives (encrypted) as a typed error.
    peer.add_fault(&FaultRule::new(
        Fault::Http500 { code: 2150858843 },
        Some("Receive"),
    ))
    .unwrap();
    let err = client.receive(&shell, None).await.unwrap_err();
    let fault = err.fault().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(fault.code, Some(2150858843));
    assert!(
        fault
            .message
            .as_deref()
            .unwrap_or_default()
            .to_lowercase()
            .contains("injected"),
        "{fault:?}"
    );

    // A server slower than the read timeout: a timeout error, and the
    // connection (state unknown) is replaced for the next request.
    let mut cfg = WsmanConfig::new(&info.http_url(), ntlm()).unwrap();
    cfg.operation_timeout = Duration::from_secs(1);
    cfg.read_timeout = Some(Duration::from_secs(2));
    // No retry: the timeout error itself is what is checked here.
    cfg.reconnect = wsman::ReconnectPolicy::never();
    let slow = WsmanClient::new(cfg).unwrap();
    assert!(slow.receive(&shell, None).await.is_ok());
    peer.add_fault(&FaultRule::new(Fault::Delay { ms: 4000 }, Some("Receive")))
        .unwrap();
    let err = slow.receive(&shell, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Http {
                timed_out: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(slow.receive(&shell, None).await.is_ok());

    client.delete_shell(&shell).await.unwrap();
    assert!(!peer.open_shell_ids().unwrap().contains(&pool_id));
    let stats = peer.stats().unwrap();
    assert!(stats["connections"].as_u64().unwrap() >= 3, "{stats}");
}
