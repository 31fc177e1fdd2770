//! The wsman crate's example (`wsman/examples/run_command.rs`) run against
//! the test peer's WinRS cmd shell: create a shell, run a command, delete
//! the shell, over HTTP with NTLM and with Kerberos (both encrypted).

#[allow(dead_code)]
#[path = "../../wsman/examples/run_command.rs"]
mod example;

use psrp_tests::Peer;
use wsman::{Auth, Secret, WsmanClient, WsmanConfig};

fn client(auth: Auth) -> WsmanClient {
    let peer = Peer::shared();
    WsmanClient::new(WsmanConfig::new(&peer.info().http_url(), auth).unwrap()).unwrap()
}

fn ntlm() -> Auth {
    let info = Peer::shared().info();
    Auth::Ntlm {
        username: info.user.clone(),
        password: Secret::new(info.password.clone()),
    }
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn cmd_shells_open() -> u64 {
    let by_config = Peer::shared().open_shells_by_configuration().unwrap();
    by_config.get("cmd").and_then(|v| v.as_u64()).unwrap_or(0)
}

#[tokio::test]
async fn example_runs_a_command_over_ntlm_and_deletes_the_shell() {
    let out = example::run(&client(ntlm()), "echo", &args(&["hello", "wsman"]))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello wsman\r\n");
    assert!(out.stderr.is_empty());
    assert_eq!(out.exit_code, 0);

    let ops = Peer::shared().operations().unwrap();
    let cmd_ops: Vec<&str> = ops
        .iter()
        .filter(|e| e["configuration"] == "cmd")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["Create", "Command", "Receive", "Signal", "Delete"] {
        assert!(cmd_ops.contains(&action), "{action} missing in {cmd_ops:?}");
    }
    assert!(ops
        .iter()
        .filter(|e| e["configuration"] == "cmd")
        .all(|e| e["encrypted"] == true));
}

#[tokio::test]
async fn example_reports_stderr_and_exit_code_over_kerberos() {
    let auth = Auth::Kerberos {
        username: None,
        password: None,
        spn: None,
        delegate: false,
    };
    let out = example::run(&client(auth), "nosuch", &[]).await.unwrap();
    assert_eq!(out.exit_code, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("'nosuch' is not recognized"));

    let out = example::run(&client(ntlm()), "exit", &args(&["7"]))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 7);
}

#[tokio::test]
async fn no_cmd_shell_is_left_open() {
    // The other tests in this binary may still be running: wait until every
    // cmd shell they made is deleted (bounded).
    let who = example::run(&client(ntlm()), "whoami", &[]).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), "testuser");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cmd_shells_open() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "cmd shells still open on the peer"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
