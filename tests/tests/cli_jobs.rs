//! Detached jobs (`psrp invoke --detach`, `psrp receive`, `psrp jobs`,
//! `psrp stop`, `psrp remove`) against the peer: a job detached by one
//! psrp process, that process killed, is received in full by a new one with
//! the exit status `invoke` would give; `jobs` lists it until it is
//! removed; no shell is left on the peer.

mod cli_support;

use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;

use cli_support::{Peer, Psrp};
use serde_json::Value;

/// These tests count the peer's shells: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const COUNT: &str = "Count=3000";

/// Starts `psrp invoke <args> --detach`, reads the job handle it prints,
/// then kills the process (SIGKILL; it may have exited already): nothing
/// of it is left but the job on the server.
fn detach(peer: &Peer, args: &[&str]) -> String {
    detach_with(Psrp::jea(peer), args)
}

fn detach_with(mut cmd: Psrp, args: &[&str]) -> String {
    cmd.args(["invoke"]).args(args).arg("--detach");
    let mut child = cmd.spawn();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(
        line.trim_start().starts_with('{'),
        "no job handle; stderr: {stderr}"
    );
    line.trim().to_owned()
}

fn handle_field(handle: &str, name: &str) -> String {
    let v: Value = serde_json::from_str(handle).unwrap();
    v[name].as_str().unwrap().to_owned()
}

fn listed(peer: &Peer) -> Vec<String> {
    let run = Psrp::jea(peer).args(["jobs"]).run();
    run.expect_code(0);
    run.ndjson()
        .iter()
        .map(|j| j["shell_id"].as_str().unwrap().to_uppercase())
        .collect()
}

#[test]
fn detached_job_is_received_in_full_by_a_new_process() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let peer = Peer::shared();
    let plain = Psrp::jea(peer)
        .args(["invoke", "Get-LargeOutput", "-p", COUNT, "-o", "ndjson"])
        .run();
    plain.expect_code(0);
    let expected = plain.ndjson();
    assert_eq!(expected.len(), 3000);

    let handle = detach(peer, &["Get-LargeOutput", "-p", COUNT]);
    let shell = handle_field(&handle, "shell_id").to_uppercase();
    assert!(!handle.to_lowercase().contains("password"), "{handle}");
    assert_eq!(
        handle_field(&handle, "configuration_name"),
        "JEA.Maintenance"
    );
    assert_eq!(
        peer.shell(&shell).unwrap().unwrap()["state"],
        "Disconnected"
    );
    assert!(
        listed(peer).contains(&shell),
        "psrp jobs does not list {shell}"
    );

    // A new process, given only the handle (on stdin) and the Kerberos
    // environment: no connection options.
    let received = Psrp::kerberos(peer)
        .args(["receive", "-", "-o", "ndjson"])
        .stdin(handle.clone())
        .run();
    received.expect_code(0);
    assert_eq!(
        received.ndjson(),
        expected,
        "received output differs from a plain invoke"
    );
    assert!(!peer.shell_open(&shell).unwrap(), "receive left the shell");
    assert!(!listed(peer).contains(&shell));
}

#[test]
fn a_failing_detached_command_gives_invokes_exit_status() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let peer = Peer::shared();
    // Invoke-Throw is not visible in JEA.Maintenance: Microsoft.PowerShell.
    let mut full = Psrp::peer(peer);
    full.conn(["--auth", "kerberos"]);
    let handle = detach_with(full, &["Invoke-Throw", "-p", "Message=disk on fire"]);
    assert_eq!(
        handle_field(&handle, "configuration_name"),
        "Microsoft.PowerShell"
    );
    let shell = handle_field(&handle, "shell_id");
    let received = Psrp::kerberos(peer).args(["receive", &handle]).run();
    received.expect_code(2);
    assert!(
        received.stderr.contains("disk on fire"),
        "{}",
        received.stderr
    );
    assert!(!peer.shell_open(&shell).unwrap());
    // Non-terminating errors: exit status 1, the record on stderr.
    let handle = detach(peer, &["Get-Item", "-p", "Path=C:\\nope"]);
    let received = Psrp::kerberos(peer).args(["receive", &handle]).run();
    received.expect_code(1);
    assert!(received.stderr.contains("ERROR: "), "{}", received.stderr);
}

#[test]
fn jobs_lists_a_job_until_it_is_stopped_and_removed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let peer = Peer::shared();
    let handle = detach(peer, &["Start-Sleep", "-p", "Seconds=60"]);
    let shell = handle_field(&handle, "shell_id").to_uppercase();
    assert!(listed(peer).contains(&shell));
    Psrp::kerberos(peer)
        .args(["stop", &handle])
        .run()
        .expect_code(0);
    let ops = peer.operations_of(&shell).unwrap();
    assert!(
        ops.iter().any(|o| o["action"] == "Signal"),
        "no stop signal: {ops:?}"
    );
    // Stopped, still there and disconnected until removed.
    assert!(listed(peer).contains(&shell));
    Psrp::kerberos(peer)
        .args(["remove", &handle])
        .run()
        .expect_code(0);
    assert!(!listed(peer).contains(&shell));
    assert!(!peer.shell_open(&shell).unwrap());
    // Removing again: the shell is unknown, a clear error, status 3.
    let again = Psrp::kerberos(peer).args(["remove", &handle]).run();
    again.expect_code(3);
    assert!(again.stderr.contains("does not exist"), "{}", again.stderr);
}
