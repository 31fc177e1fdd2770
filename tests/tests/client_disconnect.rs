//! Disconnected operation of the library against the peer: disconnect and
//! reconnect in one process, a job left on the server and connected to by
//! shell id from a new client, and the typed refusals (unknown shell,
//! another user's shell, a shell connected elsewhere, an expired one).

mod client_common;

use std::time::{Duration, SystemTime};

use client_common::*;
use psrp_core::client::{
    list_shells, BufferMode, Command, ConnectFailure, DisconnectOptions, Event, PipelineState,
    PoolOptions, RunspacePool,
};

use serde_json::json;

const COUNT: i64 = 2000;

fn shell_state(p: &Peer, id: &str) -> String {
    p.shell(id).unwrap().expect("shell on the peer")["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_reconnect_in_one_process_loses_nothing() {
    let p = peer();
    let pool = open(p, kerberos(p)).await;
    let mut run = pool
        .start(Command::new("Get-LargeOutput").param("Count", COUNT))
        .await
        .unwrap();
    let mut outputs = 0;
    while outputs < 10 {
        if let Some(Event::Output(_)) = run.next().await.unwrap() {
            outputs += 1;
        }
    }
    pool.disconnect(&DisconnectOptions::new().buffer_mode(BufferMode::Block))
        .await
        .unwrap();
    assert_eq!(shell_state(p, pool.shell_id()), "Disconnected");
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.reconnect().await.unwrap();
    assert_eq!(shell_state(p, pool.shell_id()), "Connected");
    while let Some(e) = run.next().await.unwrap() {
        if let Event::Output(_) = e {
            outputs += 1;
        }
    }
    assert_eq!(outputs, COUNT);
    assert_eq!(run.completion().unwrap().state, PipelineState::Completed);
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_job_is_connected_from_a_new_client_by_shell_id() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let job = pool
        .start_detached(
            Command::new("Get-LargeOutput").param("Count", COUNT),
            &DisconnectOptions::new().idle_timeout(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    assert_eq!(shell_state(p, &job.shell_id), "Disconnected");
    // The user's shells list it, disconnected, with its configuration.
    let listed = list_shells(&kerberos(p)).await.unwrap();
    let mine = listed
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(&job.shell_id))
        .unwrap();
    assert!(mine.is_disconnected());
    assert_eq!(mine.configuration_name(), Some("JEA.Maintenance"));
    // A new client (its own WS-Man session) connects by shell id.
    let pool = RunspacePool::connect(
        kerberos_jea(p),
        PoolOptions::new(),
        &job.shell_id,
        job.expires_at,
    )
    .await
    .unwrap();
    assert_eq!(shell_state(p, &job.shell_id), "Connected");
    let result = pool
        .connect_command(&job.command_id)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(result.output.len() as i64, COUNT);
    assert_eq!(result.state, PipelineState::Completed);
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refusals_are_typed() {
    let p = peer();
    // Unknown shell.
    let unknown = "5B0C2C8E-1D3F-4A6B-9C7D-0E1F2A3B4C5D";
    let e = RunspacePool::connect(kerberos(p), PoolOptions::new(), unknown, None)
        .await
        .unwrap_err();
    assert_eq!(
        e.connect_failure(),
        Some(ConnectFailure::UnknownShell),
        "{e}"
    );
    assert!(e.to_string().contains("does not exist"), "{e}");
    // Connected to another client.
    let owner = open(p, kerberos(p)).await;
    let e = RunspacePool::connect(kerberos(p), PoolOptions::new(), owner.shell_id(), None)
        .await
        .unwrap_err();
    assert_eq!(
        e.connect_failure(),
        Some(ConnectFailure::ConnectedElsewhere),
        "{e}"
    );
    assert_eq!(e.fault().and_then(|f| f.code), Some(0x8033_81CD));
    // Another user's shell.
    owner.disconnect(&DisconnectOptions::new()).await.unwrap();
    p.control_post(
        "/shells/owner",
        &json!({"shell_id": owner.shell_id(), "owner": "PEER\\alice"}),
    )
    .unwrap();
    let e = RunspacePool::connect(kerberos(p), PoolOptions::new(), owner.shell_id(), None)
        .await
        .unwrap_err();
    assert_eq!(e.connect_failure(), Some(ConnectFailure::WrongUser), "{e}");
    assert!(e.to_string().contains("another user"), "{e}");
    p.control_post(
        "/shells/owner",
        &json!({"shell_id": owner.shell_id(), "owner": p.info().principal}),
    )
    .unwrap();
    owner.reconnect().await.unwrap();
    close(p, owner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_idle_timeout_is_reported_as_such() {
    let p = peer();
    let pool = open(p, kerberos(p)).await;
    let job = pool
        .start_detached(
            Command::new("Start-Sleep").param("Seconds", 30),
            &DisconnectOptions::new().idle_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert!(
        wait_shell_gone(p, &job.shell_id, Duration::from_secs(15)),
        "not expired"
    );
    assert!(job.expires_at.unwrap() <= SystemTime::now());
    let e = RunspacePool::connect(
        kerberos(p),
        PoolOptions::new(),
        &job.shell_id,
        job.expires_at,
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.connect_failure(),
        Some(ConnectFailure::IdleTimeoutExpired),
        "{e}"
    );
    assert!(e.to_string().contains("idle timeout"), "{e}");
}
