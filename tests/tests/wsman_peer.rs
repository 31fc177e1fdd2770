//! The wsman crate against the test peer over every authentication path:
//! each test opens a real PSRP runspace pool (creationXml made by psrpcore),
//! runs a pipeline, deletes the shell and checks on the peer's control
//! endpoint that the shell is gone.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{info_str, open_pool, pump, Peer, Psrp, POLL_LIMIT};
use wsman::shell::signal;
use wsman::{
    Auth, CommandRequest, CreateShell, Error, ReceiveOutcome, Secret, Shell, WsmanClient,
    WsmanConfig,
};

/// The peer shared by this test binary (with the untrusted and wrong-host
/// HTTPS listeners); it also sets the process's Kerberos environment.
fn peer() -> &'static Peer {
    Peer::shared()
}

fn password(p: &Peer) -> Secret {
    Secret::new(p.info().password.clone())
}

fn config(url: &str, auth: Auth) -> WsmanConfig {
    let mut c = WsmanConfig::new(url, auth).unwrap();
    c.tls.ca_bundle = Some(peer().info().ca_file.clone());
    c.operation_timeout = Duration::from_secs(5);
    c
}

fn ntlm(p: &Peer) -> Auth {
    Auth::Ntlm {
        username: format!("PEER\\{}", p.info().user),
        password: password(p),
    }
}

/// Runs a pipeline (CREATE_PIPELINE split between Command and Send when
/// `fragment_size` is small) and returns its output texts and final state.
async fn run_pipeline(
    client: &WsmanClient,
    shell: &Shell,
    psrp: &mut Psrp,
    command: &str,
    params: Value,
    fragment_size: Option<usize>,
) -> (Vec<String>, String) {
    let (pid, frags) = psrp.pipeline(command, params, fragment_size);
    let cmd = client
        .command(shell, CommandRequest::psrp(pid.clone(), &frags[0]))
        .await
        .unwrap();
    assert_eq!(cmd.to_uppercase(), pid);
    for f in &frags[1..] {
        client
            .send(shell, Some(&cmd), "stdin", f, false)
            .await
            .unwrap();
    }
    let mut state = String::new();
    let events = pump(client, shell, psrp, Some((&cmd, &pid)), |v| {
        state = v["pipelines"][&pid]
            .as_str()
            .unwrap_or_default()
            .to_string();
        matches!(state.as_str(), "Completed" | "Failed" | "Stopped")
    })
    .await;
    let outputs = events
        .iter()
        .filter(|e| e["type"] == "PipelineOutputEvent")
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect();
    (outputs, state)
}

/// The whole round trip for one client configuration.
async fn round_trip(client: WsmanClient, configuration: &str) {
    let mut psrp = Psrp::start();
    let shell = open_pool(peer(), &client, &mut psrp, configuration).await;
    let text = format!("hello over {}", client.config().auth.kind());
    let (out, state) = run_pipeline(
        &client,
        &shell,
        &mut psrp,
        "Write-Output",
        json!({"InputObject": text}),
        None,
    )
    .await;
    assert_eq!((out, state.as_str()), (vec![text], "Completed"));
    // A CREATE_PIPELINE in several fragments: first by Command, rest by Send.
    let long = "x".repeat(3000);
    let (out, state) = run_pipeline(
        &client,
        &shell,
        &mut psrp,
        "Write-Output",
        json!({"InputObject": long}),
        Some(1000),
    )
    .await;
    assert_eq!((out, state.as_str()), (vec![long], "Completed"));
    client.delete_shell(&shell).await.unwrap();
    assert!(
        !peer()
            .open_shell_ids()
            .unwrap()
            .contains(&shell.id.to_uppercase()),
        "shell still open on the peer after Delete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ntlm_encrypted() {
    let p = peer();
    let client = WsmanClient::new(config(&p.info().http_url(), ntlm(p))).unwrap();
    assert!(client.config().encrypts());
    round_trip(client, "Microsoft.PowerShell").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_kerberos_encrypted_from_the_ticket_cache() {
    let p = peer();
    let auth = Auth::Kerberos {
        username: None,
        password: None,
        spn: None,
        delegate: false,
    };
    round_trip(
        WsmanClient::new(config(&p.info().http_url(), auth)).unwrap(),
        "JEA.Maintenance",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_kerberos_with_password_and_delegation() {
    let p = peer();
    let auth = Auth::Kerberos {
        username: Some(p.info().principal.clone()),
        password: Some(password(p)),
        spn: Some(info_str(p, "spn")),
        delegate: true,
    };
    round_trip(
        WsmanClient::new(config(&p.info().http_url(), auth)).unwrap(),
        "Microsoft.PowerShell",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_negotiate_kerberos() {
    let p = peer();
    let auth = Auth::Negotiate {
        username: None,
        password: None,
        spn: None,
        delegate: false,
    };
    round_trip(
        WsmanClient::new(config(&p.info().http_url(), auth)).unwrap(),
        "Microsoft.PowerShell",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_basic() {
    let p = peer();
    let auth = Auth::Basic {
        username: p.info().user.clone(),
        password: password(p),
    };
    let client = WsmanClient::new(config(&p.info().https_url(), auth)).unwrap();
    assert!(!client.config().encrypts());
    round_trip(client, "Microsoft.PowerShell").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_ntlm_with_channel_binding() {
    // The peer enforces channel bindings on HTTPS (CbtHardeningLevel=Strict).
    let p = peer();
    let client = WsmanClient::new(config(&p.info().https_url(), ntlm(p))).unwrap();
    assert!(!client.config().encrypts());
    round_trip(client, "Microsoft.PowerShell").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_kerberos_with_channel_binding_and_encryption_always() {
    let p = peer();
    let auth = Auth::Kerberos {
        username: None,
        password: None,
        spn: None,
        delegate: false,
    };
    let mut cfg = config(&p.info().https_url(), auth);
    cfg.encryption = wsman::EncryptionPolicy::Always;
    let client = WsmanClient::new(cfg).unwrap();
    assert!(client.config().encrypts());
    round_trip(client, "Microsoft.PowerShell").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_bad_certificates_are_refused() {
    let p = peer();
    let untrusted = format!(
        "https://localhost:{}/wsman",
        p.info().untrusted_cert_port.unwrap()
    );
    let wrong_host = format!(
        "https://localhost:{}/wsman",
        p.info().wrong_host_cert_port.unwrap()
    );
    for (url, why) in [
        (&untrusted, "UnknownIssuer"),
        (&wrong_host, "not valid for name"),
    ] {
        let client = WsmanClient::new(config(url, ntlm(p))).unwrap();
        let err = client
            .create_shell(CreateShell::powershell("Microsoft.PowerShell"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Tls { .. }), "{err:?}");
        assert!(text.contains("certificate") && text.contains(why), "{text}");
    }
    // The same untrusted server with verification explicitly disabled works
    // (but the channel binding is still that of the certificate it showed).
    let mut cfg = config(&untrusted, ntlm(p));
    cfg.tls.ca_bundle = None;
    cfg.tls.danger_accept_invalid_certs = true;
    round_trip(WsmanClient::new(cfg).unwrap(), "Microsoft.PowerShell").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_auth_error() {
    let p = peer();
    for (url, auth) in [
        (
            p.info().http_url(),
            Auth::Ntlm {
                username: p.info().user.clone(),
                password: Secret::new("wrong-password"),
            },
        ),
        (
            p.info().https_url(),
            Auth::Basic {
                username: p.info().user.clone(),
                password: Secret::new("wrong-password"),
            },
        ),
    ] {
        let client = WsmanClient::new(config(&url, auth)).unwrap();
        let err = client
            .create_shell(CreateShell::powershell("Microsoft.PowerShell"))
            .await
            .unwrap_err();
        assert!(err.is_auth(), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("rejected") && text.contains(&p.info().user),
            "{text}"
        );
        assert!(
            !text.contains("wrong-password"),
            "password in the error: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_fault_is_a_typed_error() {
    let p = peer();
    let client = WsmanClient::new(config(&p.info().http_url(), ntlm(p))).unwrap();
    let gone = Shell::new(
        "0B0B0B0B-0000-4000-8000-000000000000",
        "http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
    );
    let err = client.receive(&gone, None).await.unwrap_err();
    let fault = err
        .fault()
        .unwrap_or_else(|| panic!("not a fault: {err:?}"));
    assert!(fault.code.is_some(), "{fault:?}");
    assert!(!fault.is_operation_timeout());
    assert!(err.to_string().contains("Receive failed"), "{err}");
    // An unknown configuration name fails Create the same way.
    let mut psrp = Psrp::start();
    let (id, xml) = psrp.open();
    let err = client
        .create_shell(
            CreateShell::powershell("No.Such.Endpoint")
                .with_shell_id(id)
                .with_creation_xml(xml),
        )
        .await
        .unwrap_err();
    assert!(err.fault().is_some(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_timeout_means_poll_again_and_signal_goes_through_a_blocked_receive() {
    let p = peer();
    let mut cfg = config(&p.info().http_url(), ntlm(p));
    cfg.operation_timeout = Duration::from_secs(1);
    let client = WsmanClient::new(cfg).unwrap();
    let mut psrp = Psrp::start();
    let shell = open_pool(peer(), &client, &mut psrp, "Microsoft.PowerShell").await;

    // Start-Sleep 3 with a 1 s OperationTimeout: at least one TimedOut, then done.
    let (pid, frags) = psrp.pipeline("Start-Sleep", json!({"Seconds": 3}), None);
    let cmd = client
        .command(&shell, CommandRequest::psrp(pid.clone(), &frags[0]))
        .await
        .unwrap();
    let mut timed_out = 0;
    let mut state = String::new();
    for _ in 0..POLL_LIMIT {
        match client.receive(&shell, Some(&cmd)).await.unwrap() {
            ReceiveOutcome::TimedOut => timed_out += 1,
            ReceiveOutcome::Data(r) => {
                let v = psrp.feed(&r.stream_bytes("stdout"), Some(&pid));
                state = v["pipelines"][&pid]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if state == "Completed" {
                    break;
                }
            }
        }
    }
    assert_eq!(state, "Completed");
    assert!(timed_out >= 1, "no Receive timed out");

    // Concurrency: a long Start-Sleep with a Receive outstanding; the Signal
    // (stop) must go through on another connection while it blocks.
    let mut cfg = config(&p.info().http_url(), ntlm(p));
    cfg.operation_timeout = Duration::from_secs(20);
    let client2 = WsmanClient::new(cfg).unwrap();
    let (pid, frags) = psrp.pipeline("Start-Sleep", json!({"Seconds": 60}), None);
    let cmd = client2
        .command(&shell, CommandRequest::psrp(pid.clone(), &frags[0]))
        .await
        .unwrap();
    let started = Instant::now();
    let receiver = {
        let c = client2.clone();
        let (shell, cmd) = (shell.clone(), cmd.clone());
        tokio::spawn(async move {
            let mut chunks = Vec::new();
            for _ in 0..5 {
                match c.receive(&shell, Some(&cmd)).await.unwrap() {
                    ReceiveOutcome::TimedOut => continue,
                    ReceiveOutcome::Data(r) => {
                        let done = r.is_done();
                        chunks.push(r.stream_bytes("stdout"));
                        if done {
                            break;
                        }
                    }
                }
            }
            chunks
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    client2
        .signal(&shell, &cmd, signal::PS_CTRL_C)
        .await
        .unwrap();
    let chunks = tokio::time::timeout(Duration::from_secs(30), receiver)
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the stop did not cut the 60 s sleep short"
    );
    let mut state = String::new();
    for c in chunks {
        let v = psrp.feed(&c, Some(&pid));
        state = v["pipelines"][&pid]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    assert_eq!(state, "Stopped");

    client.delete_shell(&shell).await.unwrap();
    assert!(!peer()
        .open_shell_ids()
        .unwrap()
        .contains(&shell.id.to_uppercase()));
}
