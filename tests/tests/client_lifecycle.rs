//! Lifecycle of pools and pipelines against the test peer: stopping,
//! dropping, closing, concurrent pipelines, pipeline input, and injected
//! server faults; after each, the peer's control endpoint shows what is
//! left (nothing).

mod client_common;

use std::time::Duration;

use client_common::{
    close, kerberos_jea, ntlm, open, peer, shell_open, wait_shell_gone, Fault, FaultRule, Peer,
    PeerOptions,
};
use psrp_core::client::{
    CleanupTracker, Command, ErrorKind, Event, PipelineState, PoolOptions, PowerShell, PsValue,
    RunspacePool,
};
use serde_json::Value;

/// Every test is bounded: a hang fails instead of stalling the suite.
const BOUND: Duration = Duration::from_secs(60);

/// Commands the peer tracks for a shell, as (command id, state).
fn commands(p: &Peer, shell_id: &str) -> Vec<(String, String)> {
    p.shell(shell_id)
        .unwrap()
        .map(|s| {
            s["commands"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|c: &Value| {
                    (
                        c["command_id"].as_str().unwrap_or_default().to_uppercase(),
                        c["state"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (bounded) until the peer tracks no command in the shell.
async fn wait_no_commands(p: &Peer, shell_id: &str) -> bool {
    for _ in 0..200 {
        if commands(p, shell_id).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn sleep(seconds: i32) -> Command {
    Command::new("Start-Sleep").param("Seconds", seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_sleeping_pipeline_ends_it_stopped_and_leaves_nothing() {
    let p = peer();
    tokio::time::timeout(BOUND, async {
        let pool = open(p, kerberos_jea(p)).await;
        let shell_id = pool.shell_id().to_owned();
        let run = pool.start(sleep(600)).await.unwrap();
        let id = run.id().to_string().to_uppercase();
        assert_eq!(commands(p, &shell_id), [(id, "Running".to_owned())]);
        // Stop from another task, as a Ctrl-C handler would.
        let stop = run.stop_handle();
        let stopper = tokio::spawn(async move { stop.stop().await });
        let result = run.collect().await.unwrap();
        stopper.await.unwrap().unwrap();
        assert_eq!(result.state, PipelineState::Stopped, "{result:?}");
        assert!(!result.succeeded());
        assert!(wait_no_commands(p, &shell_id).await);
        let signals: Vec<_> = client_common::operations_of(p, &shell_id)
            .into_iter()
            .filter(|o| o["action"] == "Signal")
            .map(|o| o["signal_code"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            signals,
            [
                "powershell/signal/crtl_c",
                "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
            ]
        );
        // The pool runs the next pipeline as usual.
        let next = pool.invoke(Command::new("Get-Date")).await.unwrap();
        assert!(next.succeeded());
        close(p, pool).await;
    })
    .await
    .expect("bounded");
}

/// Closing the pool right after a stopped pipeline ended: the command's
/// release (Signal terminate) goes before the Delete, never after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_right_after_a_stop_sends_nothing_after_the_delete() {
    let p = peer();
    tokio::time::timeout(BOUND, async {
        for _ in 0..5 {
            let pool = open(p, kerberos_jea(p)).await;
            let shell_id = pool.shell_id().to_owned();
            let run = pool.start(sleep(600)).await.unwrap();
            run.stop_handle().request_stop().await.unwrap();
            let result = run.collect().await.unwrap();
            assert_eq!(result.state, PipelineState::Stopped, "{result:?}");
            pool.close().await.unwrap();
            // Give a stray Signal time to arrive before reading the log.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let actions: Vec<String> = client_common::operations_of(p, &shell_id)
                .into_iter()
                .map(|o| o["action"].as_str().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(
                actions.last().map(String::as_str),
                Some("Delete"),
                "{actions:?}"
            );
        }
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_from_the_reading_task_keeps_the_output_so_far() {
    let p = peer();
    tokio::time::timeout(BOUND, async {
        let options = PoolOptions::new().event_buffer(4);
        let pool = RunspacePool::open_with(kerberos_jea(p), options)
            .await
            .unwrap();
        let count = 20_000;
        let mut run = pool
            .start(Command::new("Get-LargeOutput").param("Count", count))
            .await
            .unwrap();
        assert!(matches!(run.next().await.unwrap(), Some(Event::Output(_))));
        // Returns once the server has the request, although nothing is read.
        run.stop().await.unwrap();
        let mut outputs = 1;
        while let Some(event) = run.next().await.unwrap() {
            assert!(matches!(event, Event::Output(_)), "{event:?}");
            outputs += 1;
        }
        assert_eq!(run.completion().unwrap().state, PipelineState::Stopped);
        assert!(outputs < count, "{outputs} of {count} after the stop");
        assert!(wait_no_commands(p, pool.shell_id()).await);
        close(p, pool).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_finished_pipeline_does_nothing() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let mut run = pool.start(Command::new("Get-Date")).await.unwrap();
    let stop = run.stop_handle();
    while run.next().await.unwrap().is_some() {}
    assert!(stop.is_done());
    stop.stop().await.unwrap();
    assert_eq!(run.completion().unwrap().state, PipelineState::Completed);
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_pool_without_close_deletes_its_shell() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let shell_id = pool.shell_id().to_owned();
    assert!(pool
        .invoke(Command::new("Get-Date"))
        .await
        .unwrap()
        .succeeded());
    drop(pool);
    assert!(
        wait_shell_gone(p, &shell_id, Duration::from_secs(15)),
        "shell {shell_id} still open after the pool was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_running_invocation_releases_its_command() {
    let p = peer();
    tokio::time::timeout(BOUND, async {
        let pool = open(p, kerberos_jea(p)).await;
        let shell_id = pool.shell_id().to_owned();
        let run = pool.start(sleep(600)).await.unwrap();
        assert_eq!(commands(p, &shell_id).len(), 1);
        drop(run);
        assert!(wait_no_commands(p, &shell_id).await);
        // The same happens when an invoke future is abandoned (a timeout).
        let abandoned = tokio::time::timeout(Duration::from_millis(300), pool.invoke(sleep(600)));
        assert!(abandoned.await.is_err());
        assert!(wait_no_commands(p, &shell_id).await);
        close(p, pool).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pipelines_run_at_the_same_time_with_two_runspaces() {
    let p = peer();
    tokio::time::timeout(BOUND, async {
        let options = PoolOptions::new().max_runspaces(2);
        let pool = RunspacePool::open_with(kerberos_jea(p), options)
            .await
            .unwrap();
        let shell_id = pool.shell_id().to_owned();
        let a = pool.start(sleep(600)).await.unwrap();
        let b = pool.start(sleep(600)).await.unwrap();
        // The peer's runner may still be starting them when start returns.
        let mut running = commands(p, &shell_id);
        for _ in 0..100 {
            if running.len() == 2 && running.iter().all(|(_, state)| state == "Running") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            running = commands(p, &shell_id);
        }
        assert_eq!(running.len(), 2, "{running:?}");
        assert!(
            running.iter().all(|(_, state)| state == "Running"),
            "{running:?}"
        );
        // A third waits for a free runspace.
        let third = tokio::time::timeout(
            Duration::from_millis(500),
            pool.start(Command::new("Get-Date")),
        );
        assert!(
            third.await.is_err(),
            "a third pipeline started with two runspaces busy"
        );
        // Both stop concurrently, each ends Stopped.
        let (sa, sb) = (a.stop_handle(), b.stop_handle());
        let (ra, rb, _, _) = tokio::join!(a.collect(), b.collect(), sa.stop(), sb.stop());
        assert_eq!(ra.unwrap().state, PipelineState::Stopped);
        assert_eq!(rb.unwrap().state, PipelineState::Stopped);
        // Two pipelines producing output at the same time each get their own.
        let (x, y) = tokio::join!(
            pool.invoke(Command::new("Get-LargeOutput").param("Count", 300)),
            pool.invoke(Command::new("Write-Output").arg("just one"))
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.output.len(), 300);
        assert_eq!(y.output, [PsValue::from("just one")]);
        close(p, pool).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_one_after_another_and_pipeline_input() {
    let p = peer();
    let pool = open(p, ntlm(p)).await;
    for i in 0..5 {
        let r = pool
            .invoke(Command::new("Write-Output").arg(PsValue::I32(i)))
            .await
            .unwrap();
        assert_eq!(r.output, [PsValue::I32(i)]);
    }
    let input = [PsValue::I32(1), PsValue::from("two"), PsValue::Bool(true)];
    let r = pool
        .start_with_input(Command::new("Write-Output"), input.clone())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(r.output, input);
    // A script (the endpoint's language allows it), piping two commands.
    let r = pool
        .invoke(PowerShell::script(
            "Write-Output 'a'; Get-ChildItem -Path C:\\Temp | Write-Output",
        ))
        .await
        .unwrap();
    assert!(r.succeeded() && r.output.len() > 1, "{r:?}");
    assert_eq!(r.output[0], PsValue::from("a"));
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_pool_ends_running_pipelines() {
    let p = peer();
    tokio::time::timeout(BOUND, async {
        let pool = open(p, kerberos_jea(p)).await;
        let shell_id = pool.shell_id().to_owned();
        let mut run = pool.start(sleep(600)).await.unwrap();
        pool.close().await.unwrap();
        assert!(!shell_open(p, &shell_id));
        let err = run.next().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    })
    .await
    .expect("bounded");
}

/// An arbitrary WinRM error code for injected faults.
const INJECTED: u64 = 2150858770;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_mid_pipeline_is_a_typed_error_and_the_shell_is_still_deleted() {
    let p = &Peer::start(&PeerOptions::default()).unwrap();
    tokio::time::timeout(BOUND, async {
        for closing in [true, false] {
            let pool = open(p, kerberos_jea(p)).await;
            let shell_id = pool.shell_id().to_owned();
            let mut run = pool
                .start(Command::new("Get-LargeOutput").param("Count", 3000))
                .await
                .unwrap();
            // The second Receive of the pipeline fails.
            p.add_fault(&FaultRule {
                skip: 1,
                ..FaultRule::new(Fault::Http500 { code: INJECTED }, Some("Receive"))
            })
            .unwrap();
            let mut outputs = 0;
            let err = loop {
                match run.next().await {
                    Ok(Some(Event::Output(_))) => outputs += 1,
                    Ok(Some(other)) => panic!("unexpected {other:?}"),
                    Ok(None) => panic!("ended without the fault"),
                    Err(e) => break e,
                }
            };
            assert!(outputs > 0 && outputs < 3000, "{outputs}");
            assert_eq!(err.kind(), ErrorKind::Fault, "{err}");
            assert_eq!(err.fault().and_then(|f| f.code), Some(INJECTED as u32));
            assert!(err.to_string().contains("Receive"), "{err}");
            if closing {
                pool.close().await.unwrap();
                assert!(!shell_open(p, &shell_id));
            } else {
                drop(run);
                drop(pool);
                assert!(wait_shell_gone(p, &shell_id, Duration::from_secs(15)));
            }
        }
        assert_eq!(p.open_shells().unwrap(), 0);
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_open_deletes_the_shell_it_created() {
    let p = &Peer::start(&PeerOptions::default()).unwrap();
    // The pool Receive after Create is held, so open() is still waiting
    // when it is given up.
    p.add_fault(&FaultRule::new(Fault::Delay { ms: 3000 }, Some("Receive")))
        .unwrap();
    let open = RunspacePool::open(kerberos_jea(p));
    assert!(tokio::time::timeout(Duration::from_millis(1000), open)
        .await
        .is_err());
    let created = p
        .operations()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "Create" && o["status"] == 200)
        .count();
    assert_eq!(created, 1);
    let gone =
        tokio::task::block_in_place(|| p.wait_no_open_shells(Duration::from_secs(15)).unwrap());
    assert!(gone, "the shell of the abandoned open is still there");
}

/// An open given up while its Create is still on its way: the Create is
/// seen through and its shell deleted afterwards (a Delete sent at once
/// would find nothing, and the late Create would leave its shell), and the
/// tracker counts the shell until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_abandoned_during_its_create_deletes_the_shell_once_created() {
    let p = &Peer::start(&PeerOptions::default()).unwrap();
    p.add_fault(&FaultRule::new(Fault::Delay { ms: 3000 }, Some("Create")))
        .unwrap();
    let cleanup = CleanupTracker::new();
    let open = RunspacePool::open_with(
        kerberos_jea(p),
        PoolOptions::new().cleanup_tracker(cleanup.clone()),
    );
    assert!(tokio::time::timeout(Duration::from_millis(1000), open)
        .await
        .is_err());
    assert_eq!(cleanup.pending(), 1, "the shell of the Create is counted");
    tokio::time::timeout(BOUND, cleanup.wait())
        .await
        .expect("the Create and the Delete end within their timeouts");
    let actions: Vec<(String, Value)> = p
        .operations()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["action"].as_str().unwrap_or_default().to_owned(),
                o["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("Create".to_owned(), 200.into()),
            ("Delete".to_owned(), 200.into())
        ]
    );
    assert_eq!(p.open_shells().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_open_reports_the_fault_and_leaves_nothing() {
    let p = &Peer::start(&PeerOptions::default()).unwrap();
    p.add_fault(&FaultRule::new(
        Fault::Http500 { code: INJECTED },
        Some("Receive"),
    ))
    .unwrap();
    let err = RunspacePool::open(kerberos_jea(p)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fault, "{err}");
    assert!(err.is_connection_failure());
    assert!(
        err.to_string().starts_with("opening the runspace pool"),
        "{err}"
    );
    assert_eq!(p.open_shells().unwrap(), 0);
}
