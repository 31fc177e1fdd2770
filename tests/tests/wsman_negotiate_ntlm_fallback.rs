//! Negotiate falls back to NTLM when Kerberos cannot be used (here: no
//! krb5.conf knows the realm, so no ticket can be had). Own test binary:
//! the Kerberos environment is process-wide.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{open_shell_ids, Peer, PeerOptions, Psrp};
use wsman::{Auth, CommandRequest, CreateShell, ReceiveOutcome, Secret, WsmanClient, WsmanConfig};

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
    let (pool_id, xml) = psrp.open();
    let shell = client
        .create_shell(
            CreateShell::powershell("JEA.Maintenance")
                .with_shell_id(pool_id.clone())
                .with_creation_xml(xml),
        )
        .await
        .unwrap();
    let mut opened = false;
    for _ in 0..20 {
        if let ReceiveOutcome::Data(r) = client.receive(&shell, None).await.unwrap() {
            if psrp.feed(&r.stream_bytes("stdout"), None)["pool_state"] == "Opened" {
                opened = true;
                break;
            }
        }
    }
    assert!(opened);
    let (pid, frags) = psrp.pipeline("Write-Output", json!({"InputObject": "via ntlm"}), None);
    let cmd = client
        .command(&shell, CommandRequest::psrp(pid.clone(), &frags[0]))
        .await
        .unwrap();
    let mut outputs = Vec::new();
    for _ in 0..20 {
        if let ReceiveOutcome::Data(r) = client.receive(&shell, Some(&cmd)).await.unwrap() {
            let v = psrp.feed(&r.stream_bytes("stdout"), Some(&pid));
            for e in v["events"].as_array().unwrap() {
                if e["type"] == "PipelineOutputEvent" {
                    outputs.push(e["text"].as_str().unwrap().to_string());
                }
            }
            if v["pipelines"][&pid] == "Completed" {
                break;
            }
        }
    }
    assert_eq!(outputs, ["via ntlm"]);
    client.delete_shell(&shell).await.unwrap();
    assert!(!open_shell_ids(&peer).contains(&pool_id));
    // The peer's log says which mechanism authenticated us.
    let log = serde_json::Value::Array(peer.log().unwrap())
        .to_string()
        .to_lowercase();
    assert!(log.contains("ntlm"), "peer log does not mention NTLM");
    let _ = std::fs::remove_file(empty);
}
