//! Connection loss and injected faults (own peer instance: faults are per
//! instance). The client must re-authenticate on a new connection, never
//! reuse a connection in an unknown state, and report faults as typed errors.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{Peer, Psrp};
use wsman::{Auth, CreateShell, Error, ReceiveOutcome, Secret, WsmanClient, WsmanConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_reauthenticates_after_connection_loss() {
    let peer = Peer::start(&[]);
    let auth = Auth::Ntlm {
        username: format!("PEER\\{}", peer.s("user")),
        password: Secret::new(peer.s("password")),
    };
    let mut cfg = WsmanConfig::new(&peer.s("http_url"), auth).unwrap();
    cfg.operation_timeout = Duration::from_secs(2);
    cfg.max_connections = 1;
    let client = WsmanClient::new(cfg).unwrap();

    let mut psrp = Psrp::start();
    let (pool_id, xml) = psrp.open();
    // The server closes the (authenticated, encrypted) connection after
    // answering Create: the next request must go over a new connection with
    // a new NTLM context.
    peer.control_post(
        "/faults",
        &json!({"kind": "close_after_response", "action": "Create"}),
    );
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

    // The server drops the connection without answering a Receive: an error
    // (the request may have been processed, so it is not resent), and the
    // next request works on a fresh, re-authenticated connection.
    peer.control_post(
        "/faults",
        &json!({"kind": "drop_connection", "action": "Receive"}),
    );
    let err = client.receive(&shell, None).await.unwrap_err();
    assert!(matches!(err, Error::Http { .. }), "{err:?}");
    assert!(client.receive(&shell, None).await.is_ok());

    // An injected WS-Man fault arrives (encrypted) as a typed error.
    peer.control_post(
        "/faults",
        &json!({"kind": "http_500", "action": "Receive", "code": 2150858843u64, "message": "injected"}),
    );
    let err = client.receive(&shell, None).await.unwrap_err();
    let fault = err.fault().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(fault.code, Some(2150858843));
    assert!(
        fault
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("injected"),
        "{fault:?}"
    );

    // A server slower than the read timeout: a timeout error, and the
    // connection (state unknown) is replaced for the next request.
    let mut cfg = WsmanConfig::new(
        &peer.s("http_url"),
        Auth::Ntlm {
            username: format!("PEER\\{}", peer.s("user")),
            password: Secret::new(peer.s("password")),
        },
    )
    .unwrap();
    cfg.operation_timeout = Duration::from_secs(1);
    cfg.read_timeout = Some(Duration::from_secs(2));
    let slow = WsmanClient::new(cfg).unwrap();
    assert!(slow.receive(&shell, None).await.is_ok());
    peer.control_post(
        "/faults",
        &json!({"kind": "delay", "action": "Receive", "delay_ms": 4000}),
    );
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
    assert!(!peer.open_shell_ids().contains(&pool_id));
    let stats = peer.control("/stats");
    assert!(stats["connections"].as_u64().unwrap() >= 3, "{stats}");
}
