//! The library's reconnection: `ConnectionOptions::on_reconnect` hears
//! every retry, output survives a kill, and retries used up are a
//! `Connection` error whose source is `wsman::Error::ReconnectFailed`.

mod client_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_common::{close, kerberos_jea, open, peer, Peer, PeerOptions};
use psrp_core::client::{Command, ErrorKind};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_reconnects_reports_retries_and_gives_up_with_a_typed_error() {
    // The shared peer sets the Kerberos environment; faults go to a private one.
    tokio::task::block_in_place(peer);
    let private =
        tokio::task::block_in_place(|| Peer::start(&PeerOptions::default()).expect("peer"));
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let options = kerberos_jea(&private)
        .reconnect_retries(2)
        .reconnect_backoff(Duration::from_millis(50))
        .on_reconnect(move |e| seen.lock().unwrap().push(e.clone()));
    let pool = open(&private, options).await;

    tokio::task::block_in_place(|| {
        private.control_post(
            "/faults",
            &json!({"kind": "kill", "at": "response", "action": "Receive", "scope": "command", "skip": 2}),
        )
    })
    .unwrap();
    let result = pool
        .invoke(Command::new("Get-LargeOutput").param("Count", 500))
        .await
        .unwrap();
    let names: Vec<String> = result
        .output_json()
        .iter()
        .map(|o| o["Name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let want: Vec<String> = (0..500).map(|i| format!("item-{i:010}.dat")).collect();
    assert_eq!(names, want);
    {
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!((e.action.as_str(), e.attempt, e.retries), ("Receive", 1, 2));
        // The peer echoed the SequenceId: nothing could be lost.
        assert!(!e.output_may_be_lost, "{e:?}");
    }

    tokio::task::block_in_place(|| {
        private.control_post(
            "/faults",
            &json!({"kind": "kill", "at": "request", "action": "Receive", "scope": "command", "count": 50}),
        )
    })
    .unwrap();
    let err = pool.invoke(Command::new("Get-Date")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<wsman::Error>())
        .unwrap_or_else(|| panic!("no wsman source: {err:?}"));
    assert!(
        matches!(source, wsman::Error::ReconnectFailed { retries: 2, action, .. } if action == "Receive"),
        "{source:?}"
    );
    assert!(
        err.to_string()
            .contains("failed after 2 reconnection attempt(s)"),
        "{err}"
    );
    assert_eq!(events.lock().unwrap().len(), 3);
    tokio::task::block_in_place(|| private.clear_faults()).unwrap();
    close(&private, pool).await;
}
