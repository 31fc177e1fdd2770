//! Ctrl-C (SIGINT), SIGTERM and `--timeout` stop the running pipeline
//! (WS-Man Signal ctrl_c) and delete the shell before psrp exits: nothing is
//! left open on the peer, and stdout is still a complete JSON array. The
//! same holds when they come while the pool is still opening (a delayed
//! Create or opening Receive).

mod cli_support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cli_support::{finish, signal, wait_for, Fault, FaultRule, Peer, PeerOptions, Psrp};

/// These tests count the peer's shells: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// PowerShell's stop signal (sic); the peer logs the code as sent.
const CTRL_C: &str = "powershell/signal/crtl_c";

/// The id of the one shell running a command, once there is one.
fn running_shell(peer: &Peer) -> String {
    let mut id = None;
    let found = wait_for(Duration::from_secs(30), || {
        let shells = peer.control_get("/shells").unwrap();
        id = shells["shells"].as_array().and_then(|a| {
            a.iter()
                .find(|s| {
                    s["commands"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["state"] == "Running"))
                })
                .and_then(|s| s["shell_id"].as_str().map(str::to_uppercase))
        });
        id.is_some()
    });
    assert!(found, "no running command on the peer");
    id.unwrap()
}

/// The shell was stopped with ctrl_c, then deleted, and is gone.
fn assert_stopped_and_deleted(peer: &Peer, shell: &str) {
    assert!(
        !peer.shell_open(shell).unwrap(),
        "shell {shell} is still open"
    );
    let ops = peer.operations_of(shell).unwrap();
    let actions: Vec<(&str, &str)> = ops
        .iter()
        .map(|o| {
            (
                o["action"].as_str().unwrap_or(""),
                o["signal_code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let stop = actions
        .iter()
        .position(|(a, code)| *a == "Signal" && code.ends_with(CTRL_C));
    let delete = actions.iter().position(|(a, _)| *a == "Delete");
    assert!(
        matches!((stop, delete), (Some(s), Some(d)) if s < d),
        "expected Signal ctrl_c then Delete: {actions:?}"
    );
    assert_eq!(ops.last().map(|o| o["status"].clone()), Some(200.into()));
}

fn interrupted_sleep(sig: &str, code: i32, name: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let peer = Peer::shared();
    let child = Psrp::jea(peer)
        .args(["invoke", "Start-Sleep", "--param-json", "Seconds=120"])
        .spawn();
    let shell = running_shell(peer);
    signal(&child, sig);
    let run = finish(child, Duration::from_secs(60));
    run.expect_code(code);
    assert_eq!(run.stdout, "[]\n", "stdout must stay a complete JSON array");
    assert!(
        run.stderr.contains(&format!(
            "psrp: Start-Sleep: {name}; the pipeline was stopped"
        )),
        "{}",
        run.stderr
    );
    assert_stopped_and_deleted(peer, &shell);
}

#[test]
fn sigint_stops_the_pipeline_and_deletes_the_shell() {
    interrupted_sleep("INT", 130, "interrupted (SIGINT)");
}

#[test]
fn sigterm_stops_the_pipeline_and_deletes_the_shell() {
    interrupted_sleep("TERM", 143, "terminated (SIGTERM)");
}

#[test]
fn timeout_stops_the_pipeline_and_deletes_the_shell() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let peer = Peer::shared();
    let before = peer.log().unwrap().len();
    let run = Psrp::jea(peer)
        .args([
            "invoke",
            "Start-Sleep",
            "--param-json",
            "Seconds=120",
            "--timeout",
            "3",
        ])
        .run();
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("psrp: Start-Sleep: timed out after 3s; the pipeline was stopped"),
        "{}",
        run.stderr
    );
    let log = peer.log().unwrap();
    let shell = log[before..]
        .iter()
        .find(|e| e["action"] == "Create")
        .and_then(|e| e["shell_id"].as_str())
        .expect("a Create in the log")
        .to_uppercase();
    assert_stopped_and_deleted(peer, &shell);
}

#[test]
fn output_before_the_interrupt_is_kept() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let peer = Peer::shared();
    let child = Psrp::peer(peer)
        .conn(["-a", "kerberos", "-o", "ndjson"])
        .args(["script", "-"])
        .stdin("Write-Output 'one'\nStart-Sleep -Seconds 120\nWrite-Output 'two'\n")
        .spawn();
    let shell = running_shell(peer);
    // The first object has been written before the signal.
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "INT");
    let run = finish(child, Duration::from_secs(60));
    run.expect_code(130);
    assert_eq!(run.stdout, "\"one\"\n");
    assert_stopped_and_deleted(peer, &shell);
}

/// A private peer (same realm) whose next `action` request waits `ms`
/// before the peer handles it.
fn peer_delaying(action: &str, ms: u64) -> Peer {
    let peer = Peer::start(&PeerOptions::default()).expect("a private test peer");
    peer.add_fault(&FaultRule::new(Fault::Delay { ms }, Some(action)))
        .unwrap();
    peer
}

/// Waits until the delayed request has reached the peer (its rule fired).
fn wait_delay_started(peer: &Peer) {
    let fired = wait_for(Duration::from_secs(30), || {
        peer.control_get("/faults").unwrap() == serde_json::json!([])
    });
    assert!(fired, "the delayed request never reached the peer");
}

/// Once the (maybe delayed) Create has been handled, no shell is open.
/// psrp has exited: every Delete it sent is done.
fn assert_no_shell_left(peer: &Peer) {
    // The peer logs a request when it has handled it.
    let created = wait_for(Duration::from_secs(30), || {
        peer.operations()
            .unwrap()
            .iter()
            .any(|o| o["action"] == "Create")
    });
    assert!(created, "the Create was never handled");
    let open = peer.open_shell_ids().unwrap();
    let actions: Vec<String> = peer
        .operations()
        .unwrap()
        .iter()
        .map(|o| format!("{} {}", o["action"], o["status"]))
        .collect();
    assert!(
        open.is_empty(),
        "shells left on the peer: {open:?}; operations: {actions:?}"
    );
}

/// `--timeout` while the Create is delayed beyond it: psrp gives up on
/// the open, and the shell the late Create makes is still deleted.
#[test]
fn timeout_during_a_slow_create_leaves_no_shell() {
    let peer = peer_delaying("Create", 5_000);
    let started = Instant::now();
    let run = Psrp::jea(&peer)
        .args(["invoke", "Get-Date", "--timeout", "2"])
        .run();
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("psrp: timed out after 2s while connecting"),
        "{}",
        run.stderr
    );
    assert_no_shell_left(&peer);
    // psrp waited for the Create to come back, then deleted its shell.
    assert!(started.elapsed() >= Duration::from_secs(5), "{run:?}");
}

/// `--timeout` while the opening Receive is delayed: the shell exists
/// and is deleted before psrp exits.
#[test]
fn timeout_during_a_slow_open_leaves_no_shell() {
    let peer = peer_delaying("Receive", 8_000);
    let run = Psrp::jea(&peer)
        .args(["invoke", "Get-Date", "--timeout", "2"])
        .run();
    run.expect_code(3);
    assert!(
        run.stderr
            .contains("psrp: timed out after 2s while connecting"),
        "{}",
        run.stderr
    );
    assert_no_shell_left(&peer);
}

/// Ctrl-C while the Create takes longer than psrp used to wait for an
/// interrupted open (10 s).
#[test]
fn sigint_during_a_slow_create_leaves_no_shell() {
    let peer = peer_delaying("Create", 11_000);
    let child = Psrp::jea(&peer).args(["invoke", "Get-Date"]).spawn();
    wait_delay_started(&peer);
    signal(&child, "INT");
    let run = finish(child, Duration::from_secs(60));
    run.expect_code(130);
    assert!(
        run.stderr
            .contains("psrp: interrupted (SIGINT) while connecting"),
        "{}",
        run.stderr
    );
    assert_no_shell_left(&peer);
}

/// Ctrl-C while the opening Receive takes longer than psrp used to wait
/// for an interrupted open: psrp exits without waiting for the open, and
/// the shell is deleted first.
#[test]
fn sigint_during_a_slow_open_leaves_no_shell() {
    let peer = peer_delaying("Receive", 15_000);
    let child = Psrp::jea(&peer).args(["invoke", "Get-Date"]).spawn();
    wait_delay_started(&peer);
    let interrupted = Instant::now();
    signal(&child, "INT");
    let run = finish(child, Duration::from_secs(60));
    let exited = interrupted.elapsed();
    run.expect_code(130);
    assert_no_shell_left(&peer);
    assert!(
        exited < Duration::from_secs(10),
        "psrp waited for the open ({exited:?}): {run:?}"
    );
}
