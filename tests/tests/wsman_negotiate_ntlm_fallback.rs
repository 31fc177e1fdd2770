//! Negotiate falls back to NTLM when Kerberos cannot be used (here: no
//! krb5.conf knows the realm, so no ticket can be had). Own test binary:
//! the Kerberos environment is process-wide.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{open_pool, pump, Peer, PeerOptions, Psrp};
use wsman::{Auth, CommandRequest, Secret, WsmanClient, WsmanConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_negotiate_falls_back_to_ntlm() {
    // A private instance with its own realm: starting it does not point this
    // process's Kerberos environment anywhere.
    let peer = Peer::start(&PeerOptions {
        share_realm: false,
        ..PeerOptions::default()
    })
    .unwrap();
    let info = peer.info();
    let empty = std::env::temp_dir().join(format!("wsman-no-krb5-{}.conf", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    std::env::set_var("KRB5_CONFIG", &empty);
    std::env::set_var("KRB5CCNAME", "MEMORY:empty");

    let auth = Auth::Negotiate {
        username: Some(format!("PEER\\{}", info.user)),
        password: Some(Secret::new(info.password.clone())),
        spn: None,
        delegate: false,
    };
    let mut cfg = WsmanConfig::new(&info.http_url(), auth).unwrap();
    cfg.operation_timeout = Duration::from_secs(5);
    let client = WsmanClient::new(cfg).unwrap();

    let mut psrp = Psrp::start();
    let shell = open_pool(&peer, &client, &mut psrp, "JEA.Maintenance").await;
    let (pid, frags) = psrp.pipeline("Write-Output", json!({"InputObject": "via ntlm"}), None);
    let cmd = client
        .command(&shell, CommandRequest::psrp(pid.clone(), &frags[0]))
        .await
        .unwrap();
    let events = pump(&client, &shell, &mut psrp, Some((&cmd, &pid)), |v| {
        v["pipelines"][&pid] == "Completed"
    })
    .await;
    let outputs: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "PipelineOutputEvent")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["via ntlm"]);
    // The client says so, with the Kerberos reason.
    let fallback = client.ntlm_fallback().expect("fallback recorded");
    assert!(fallback.kerberos_error.starts_with("GSSAPI"), "{fallback}");
    client.delete_shell(&shell).await.unwrap();
    assert!(!peer.shell_open(&shell.id).unwrap());
    // The peer's log says which mechanism authenticated us.
    let log = serde_json::Value::Array(peer.log().unwrap())
        .to_string()
        .to_lowercase();
    assert!(log.contains("ntlm"), "peer log does not mention NTLM");
    let _ = std::fs::remove_file(empty);
}
