//! A connection that dies in the middle of a run loses nothing: `psrp`
//! reconnects (a new TCP connection, authenticated again; over HTTP with new
//! encryption keys and sequence numbers), resends the Receive with the same
//! `SequenceId`, and the peer answers it with the response that was cut.
//! Kills come from the peer's `kill` fault (`tests/peer/instance.py`), at
//! points drawn from a fixed seed and spread over the run.

mod cli_support;

use std::time::Duration;

use cli_support::{finish, wait_for, Peer, PeerOptions, Psrp, Run};
use serde_json::{json, Value};

/// Bound on one 100,000-object run (a hang, not a speed, limit: a loaded
/// CI machine takes about a minute).
const LARGE_RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// A small deterministic generator (xorshift64*): the kill points of a run
/// are the same every time.
struct Points(u64);

impl Points {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}

/// `kills` kill rules on command Receives, one in each of `kills` equal
/// slices of `receives` (so they are spread over the run), cycling
/// through the three kill points. `skip` counts matching Receives since the
/// rules were armed, resent ones included, so each rule's point is its own.
fn arm_kills(peer: &Peer, receives: u64, kills: u64, seed: u64) -> Vec<u64> {
    let mut rng = Points(seed);
    // Within the first 90% of the clean run's Receives: the killed run's
    // count may differ a little (how full each response is depends on
    // timing), and every point must be reached.
    let slice = receives * 9 / 10 / kills;
    assert!(
        slice >= 2,
        "too few Receives ({receives}) for {kills} kills"
    );
    let at = ["response", "mid_body", "request"];
    let mut points = Vec::new();
    let mut rules = Vec::new();
    for k in 0..kills {
        let point = k * slice + 1 + rng.next(slice - 1);
        points.push(point);
        rules.push(json!({
            "kind": "kill",
            "at": at[(k % 3) as usize],
            "action": "Receive",
            "scope": "command",
            // Earlier kills each add one resent Receive.
            "skip": point + k,
        }));
    }
    peer.control_post("/faults", &Value::Array(rules))
        .expect("arm the kills");
    points
}

fn large_output(count: usize) -> Vec<String> {
    vec![
        "invoke".into(),
        "Get-LargeOutput".into(),
        "--param-json".into(),
        format!("Count={count}"),
        "-o".into(),
        "ndjson".into(),
    ]
}

/// Receives of commands in the peer's log, and of those the ones answered
/// again from the kept response.
fn receive_counts(peer: &Peer) -> (u64, u64) {
    let log = peer.operations().unwrap();
    let receives: Vec<&Value> = log
        .iter()
        .filter(|r| r["action"] == "Receive" && r["command_id"].is_string())
        .collect();
    let replayed = receives.iter().filter(|r| r["replayed"] == true).count() as u64;
    (receives.len() as u64, replayed)
}

fn killed(peer: &Peer) -> Vec<Value> {
    peer.log()
        .unwrap()
        .into_iter()
        .filter(|r| r.get("killed_at").is_some())
        .collect()
}

fn successful_auths(peer: &Peer) -> usize {
    peer.log()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "auth" && r["result"] == "ok")
        .count()
}

/// The checks every killed run shares.
fn assert_survived(peer: &Peer, run: &Run, kills: usize, expected: &str) {
    let shown = || format!("stderr:\n{}", run.stderr);
    assert_eq!(run.code(), 0, "{}", shown());
    let killed = killed(peer);
    assert_eq!(killed.len(), kills, "kills made\n{}", shown());
    // Output complete, in order, without duplicates: byte for byte the
    // output of the uninterrupted run.
    assert!(
        run.stdout == expected,
        "output differs from the uninterrupted run ({} against {} lines)\n{}",
        run.stdout.lines().count(),
        expected.lines().count(),
        shown()
    );
    let retries = run.stderr_lines("psrp: WARNING: connection to");
    assert_eq!(retries.len(), kills, "one log line per retry\n{}", shown());
    assert!(
        retries.iter().all(|l| l.contains("during Receive")
            && l.contains("(retry 1 of 5)")
            && !l.contains("may be missing")),
        "{}",
        shown()
    );
    // Kills after the Receive was processed made the peer answer the
    // resent Receive from its kept response.
    let processed = killed
        .iter()
        .filter(|r| r["killed_at"] != "request")
        .count() as u64;
    let (_, replayed) = receive_counts(peer);
    assert_eq!(replayed, processed, "replayed Receives\n{}", shown());
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());
}

/// 100,000 objects over Kerberos/HTTP (every message encrypted) with 20
/// kills: the same bytes on stdout as an uninterrupted run, and every new
/// connection authenticated anew (the peer's log).
#[test]
fn one_hundred_thousand_objects_survive_twenty_kills_over_kerberos_http() {
    const COUNT: usize = 100_000;
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    let clean = finish(
        Psrp::jea(&peer).args(large_output(COUNT)).spawn(),
        LARGE_RUN_TIMEOUT,
    );
    clean.expect_code(0);
    assert_eq!(clean.stdout.lines().count(), COUNT);
    let (receives, _) = receive_counts(&peer);
    let auths_before = successful_auths(&peer);
    peer.reset_log().unwrap();

    let points = arm_kills(&peer, receives, 20, 0x5EED_0011);
    let run = finish(
        Psrp::jea(&peer)
            .args(large_output(COUNT))
            .args(["--reconnect-backoff", "0.05"])
            .spawn(),
        LARGE_RUN_TIMEOUT,
    );
    assert_survived(&peer, &run, 20, &clean.stdout);
    // Each kill cost the connection and its Kerberos context: at least 20
    // more authentications than the clean run needed.
    let auths = successful_auths(&peer);
    assert!(
        auths >= auths_before + 20,
        "{auths} authentications with 20 kills, {auths_before} without (points {points:?})"
    );
    let encrypted = peer
        .operations()
        .unwrap()
        .iter()
        .all(|r| r["encrypted"] == true);
    assert!(encrypted, "every WS-Man message encrypted");
}

/// The same over HTTPS (Kerberos without message encryption: TLS carries
/// it), 100,000 objects and 20 kills.
#[test]
fn objects_survive_twenty_kills_over_https() {
    const COUNT: usize = 100_000;
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    let info = peer.info().clone();
    let https = |p: &mut Psrp| {
        p.conn([
            "--scheme",
            "https",
            "--port",
            &info.https_port.to_string(),
            "--ca-file",
            info.ca_file.to_str().unwrap(),
        ]);
    };
    let mut clean = Psrp::jea(&peer);
    https(&mut clean);
    let clean = finish(clean.args(large_output(COUNT)).spawn(), LARGE_RUN_TIMEOUT);
    clean.expect_code(0);
    let (receives, _) = receive_counts(&peer);
    peer.reset_log().unwrap();

    arm_kills(&peer, receives, 20, 0x5EED_0022);
    let mut run = Psrp::jea(&peer);
    https(&mut run);
    let run = finish(
        run.args(large_output(COUNT))
            .args(["--reconnect-backoff", "0.05"])
            .spawn(),
        LARGE_RUN_TIMEOUT,
    );
    assert_survived(&peer, &run, 20, &clean.stdout);
    assert!(peer
        .operations()
        .unwrap()
        .iter()
        .all(|r| r["transport"] == "https"));
}

/// A stop Signal whose connection is cut (before the peer processed it, and
/// after) is sent again: the pipeline stops at `--timeout` as without kills.
#[test]
fn a_stop_signal_survives_kills() {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    peer.control_post(
        "/faults",
        &json!([
            {"kind": "kill", "at": "request", "action": "Signal"},
            {"kind": "kill", "at": "response", "action": "Signal", "skip": 1},
        ]),
    )
    .unwrap();
    let run = Psrp::jea(&peer)
        .args([
            "invoke",
            "Start-Sleep",
            "-p",
            "Seconds=60",
            "--timeout",
            "2",
            "--reconnect-backoff",
            "0.05",
        ])
        .run();
    assert_eq!(run.code(), 2, "{}", run.stderr);
    assert!(run.stderr.contains("timed out after 2s"), "{}", run.stderr);
    assert_eq!(killed(&peer).len(), 2, "{}", run.stderr);
    let signals: Vec<Value> = peer
        .operations()
        .unwrap()
        .into_iter()
        .filter(|r| r["action"] == "Signal")
        .collect();
    assert!(signals.len() >= 3, "{signals:?}");
    assert_eq!(
        run.stderr_lines("psrp: WARNING: connection to").len(),
        2,
        "{}",
        run.stderr
    );
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());
}

/// A Send cut after it was written is not sent again (the pipeline could
/// read its input twice): a typed error, exit status 3, the shell deleted.
#[test]
fn a_send_cut_after_it_was_written_is_not_repeated() {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    peer.control_post(
        "/faults",
        &json!({"kind": "kill", "at": "request", "action": "Send"}),
    )
    .unwrap();
    // A parameter too large for the Command's envelope: the rest of
    // CREATE_PIPELINE goes by Send.
    let big = "x".repeat(40_000);
    let run = Psrp::jea(&peer)
        .args([
            "invoke",
            "Invoke-Echo",
            "-p",
            &format!("Text={big}"),
            "--max-envelope-size",
            "16384",
            "--reconnect-backoff",
            "0.05",
        ])
        .run();
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("so it was not sent again"),
        "{}",
        run.stderr
    );
    assert_eq!(killed(&peer).len(), 1);
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());
}

/// Every retry fails: after `--reconnect-retries` the run ends with a typed
/// error naming the operation and the retries (exit status 3), and the
/// shell is deleted.
#[test]
fn retries_exhausted_is_a_typed_error_and_the_shell_is_deleted() {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    peer.control_post(
        "/faults",
        &json!({"kind": "kill", "at": "response", "action": "Receive", "scope": "command", "count": 100}),
    )
    .unwrap();
    let run = Psrp::jea(&peer)
        .args([
            "invoke",
            "Get-Date",
            "--reconnect-retries",
            "2",
            "--reconnect-backoff",
            "0.05",
        ])
        .run();
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("Receive to http://localhost:")
            && run
                .stderr
                .contains("failed after 2 reconnection attempt(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(killed(&peer).len(), 3, "{}", run.stderr);
    let retries = run.stderr_lines("psrp: WARNING: connection to");
    assert_eq!(retries.len(), 2, "{}", run.stderr);
    // The command's first Receive was cut, but the pool's Receives had
    // shown that the peer keeps responses: no output could be lost.
    assert!(
        retries.iter().all(|l| !l.contains("may be missing")),
        "{}",
        run.stderr
    );
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());

    // The same from the environment variables, and with reconnection off.
    let run = Psrp::jea(&peer)
        .args(["invoke", "Get-Date"])
        .env("PSRP_RECONNECT_RETRIES", "1")
        .env("PSRP_RECONNECT_BACKOFF", "0.05")
        .run();
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("failed after 1 reconnection attempt(s)"),
        "{}",
        run.stderr
    );
    let run = Psrp::jea(&peer)
        .args(["invoke", "Get-Date", "--reconnect-retries", "0"])
        .run();
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(
        run.stderr_lines("psrp: WARNING: connection to").is_empty()
            && !run.stderr.contains("reconnection attempt"),
        "{}",
        run.stderr
    );
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());
}

/// The peer's WinRM listeners go away in the middle of a run (open
/// connections cut, new ones refused for 1.5 s) and come back with the
/// shells they had: psrp retries with its backoff until they are back and
/// the output is complete and in order.
#[test]
fn a_listener_restart_in_the_middle_of_a_run_is_ridden_out() {
    const COUNT: usize = 20_000;
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    let child = Psrp::jea(&peer)
        .args(large_output(COUNT))
        .args(["--reconnect-backoff", "0.2"])
        .spawn();
    // Read its output meanwhile (a full pipe would hold psrp up).
    let running = std::thread::spawn(move || finish(child, Duration::from_secs(300)));
    assert!(
        wait_for(Duration::from_secs(120), || receive_counts(&peer).0 >= 20),
        "the output never started"
    );
    let restart = peer
        .control_post("/listeners/restart", &json!({"down_ms": 1500}))
        .unwrap();
    let run = running.join().unwrap();
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), COUNT, "{}", run.stderr);
    for (i, line) in lines.iter().enumerate() {
        let item: Value = serde_json::from_str(line).unwrap();
        assert_eq!(item["Name"], format!("item-{i:010}.dat"), "object {i}");
    }
    let retries = run.stderr_lines("psrp: WARNING: connection to");
    assert!(!retries.is_empty(), "{}", run.stderr);
    let events: Vec<Value> = peer
        .log()
        .unwrap()
        .into_iter()
        .filter(|r| r["kind"] == "listener")
        .map(|r| r["event"].clone())
        .collect();
    assert_eq!(events, ["down", "up"], "{restart}");
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());
}

/// Against a server without robust Receive (the peer told to ignore
/// `SequenceId`), a Receive whose answer was cut after the server took the
/// output from its queue cannot be answered again: what the README says
/// happens, happens. The retry line says output may be missing, and the
/// run either ends with a gap in its output or, when the lost answer held
/// the start of an object whose rest comes next, fails on that fragment.
#[test]
fn without_robust_receive_the_loss_is_announced() {
    const COUNT: usize = 2000;
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    peer.control_post("/receive_sequence", &json!({"enabled": false}))
        .unwrap();
    peer.control_post(
        "/faults",
        &json!({"kind": "kill", "at": "response", "action": "Receive", "scope": "command", "skip": 5}),
    )
    .unwrap();
    let run = Psrp::jea(&peer)
        .args(large_output(COUNT))
        .args(["--reconnect-backoff", "0.05"])
        .run();
    let retries = run.stderr_lines("psrp: WARNING: connection to");
    assert_eq!(retries.len(), 1, "{}", run.stderr);
    assert!(
        retries[0].ends_with("so output in the lost response may be missing"),
        "{}",
        run.stderr
    );
    let indexes: Vec<usize> = run
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["Name"].as_str().unwrap()[5..15].parse().unwrap()
        })
        .collect();
    eprintln!(
        "without robust Receive: exit {} with {} of {COUNT} objects\n{}",
        run.code(),
        indexes.len(),
        run.stderr
    );
    // In order and without duplicates, whatever else happened.
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
    match run.code() {
        0 => {
            // One gap: the objects of the lost answer.
            let gaps = indexes.windows(2).filter(|w| w[1] != w[0] + 1).count();
            assert_eq!(gaps, 1, "{}", run.stderr);
            assert!(indexes.len() < COUNT);
        }
        code => {
            assert!(code == 2 || code == 3, "{}", run.stderr);
            assert!(indexes.len() < COUNT);
        }
    }
    let ignored = peer
        .operations()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "Receive" && r["command_id"].is_string())
        .all(|r| r["sequence_id"].is_null() && r["replayed"].is_null());
    assert!(ignored, "the peer kept no response");
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());
}

/// An HTTP 503 error page instead of an answer (a proxy or load balancer
/// whose backend went away) is a broken connection too: the Receive is sent
/// again and the run completes.
#[test]
fn an_error_page_instead_of_an_answer_is_retried() {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    peer.control_post(
        "/faults",
        &json!({"kind": "http_status", "status": 503, "action": "Receive", "scope": "command", "count": 2}),
    )
    .unwrap();
    let run = Psrp::jea(&peer)
        .args(["invoke", "Get-Date", "--reconnect-backoff", "0.05"])
        .run();
    assert_eq!(run.code(), 0, "{}", run.stderr);
    assert_eq!(run.json().as_array().unwrap().len(), 1);
    let retries = run.stderr_lines("psrp: WARNING: connection to");
    assert_eq!(retries.len(), 2, "{}", run.stderr);
    assert!(retries[0].contains("answered HTTP 503"), "{}", run.stderr);
    assert!(peer.wait_no_open_shells(Duration::from_secs(10)).unwrap());
}
