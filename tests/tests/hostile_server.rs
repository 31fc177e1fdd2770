//! The `psrp` CLI and the library against a hostile server: the test peer's
//! hostile mode (tests/peer/hostile.py, switched on per instance through
//! its control endpoint) tampers with the encrypted framing after its real
//! sealing, sends HTTP bodies that never end, endless Receive streams and
//! PSRP fragments, oversized and pathological XML, and terminal escapes in
//! every stream.
//!
//! For each attack: psrp ends within its timeouts with the documented exit
//! status and a message naming the failed step, does not crash (no panic,
//! no signal), its peak RSS (from `wait4`) stays under [`MAX_RSS_KIB`], and
//! the shell is deleted when the connection still allows it. Each test has
//! its own peer instance (attacks are per instance). README.md "Hostile
//! servers" lists the attacks and these tests.

mod cli_support;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cli_support::{Peer, PeerOptions, Psrp, Run};
use psrp_core::client::{Command, ConnectionOptions, ErrorKind, RunspacePool, Scheme};
use psrp_tests::{Attack, HostileRule, Scope};

/// The memory bound: psrp's peak RSS under any attack. A normal run
/// needs about 15 MiB; the client's response limits (16 MiB HTTP body,
/// the PSRP reassembly budget) must keep it well below this.
const MAX_RSS_KIB: u64 = 200 * 1024;

/// The text the peer writes to every stream under [`Attack::AnsiStreams`]
/// (tests/peer/hostile.py `ANSI_TEXT`).
const ANSI_TEXT: &str = "hostile\x1b[2J\x1b[H\x1b]0;pwned-title\x07\x1b]8;;http://evil.invalid/\x1b\\link\x1b]8;;\x1b\\\u{9b}31mc1-red\u{9b}0m\u{9d}0;c1-title\u{9c}\x08\x08\rend";

/// A run of psrp with its peak memory.
struct Measured {
    run: Run,
    max_rss_kib: u64,
    elapsed: Duration,
}

/// Runs psrp to the end (killed after `bound`, which fails the test) and
/// takes its peak RSS from `wait4`.
// The child is reaped by wait4 (which std does not offer), not Child::wait.
#[allow(clippy::zombie_processes)]
fn run_measured(psrp: &mut Psrp, bound: Duration) -> Measured {
    let started = Instant::now();
    let mut child = psrp.spawn();
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let (status, max_rss_kib) = loop {
        if let Some(done) = wait4(&child, false) {
            break done;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = wait4(&child, true);
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!("psrp did not finish within {bound:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        status,
        stdout: String::from_utf8(out_t.join().unwrap()).expect("stdout is UTF-8"),
        stderr: String::from_utf8(err_t.join().unwrap()).expect("stderr is UTF-8"),
    };
    Measured {
        run,
        max_rss_kib,
        elapsed: started.elapsed(),
    }
}

/// Reaps `child` if it has exited (or waits for it with `block`): its exit
/// status and peak RSS in KiB.
fn wait4(child: &Child, block: bool) -> Option<(ExitStatus, u64)> {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: wait4 only writes the two out-parameters, which live on this
    // stack frame for the whole call. Nothing else reaps this child (std's
    // Child::wait/try_wait are not used on it).
    let reaped = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
    assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
    (reaped == pid).then(|| {
        let kib = u64::try_from(usage.ru_maxrss).unwrap_or(0); // KiB on Linux
        (ExitStatus::from_raw(status), kib)
    })
}

/// A private peer instance with `rule` armed.
fn attacked_peer(rule: &HostileRule) -> Peer {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    peer.add_hostile(rule).expect("arm the attack");
    peer
}

/// psrp into `peer` over HTTP with Kerberos (every message encrypted),
/// bounded by `--timeout`.
fn psrp(peer: &Peer, timeout_secs: u32) -> Psrp {
    let mut p = Psrp::peer(peer);
    p.conn(["-a", "kerberos", "--timeout", &timeout_secs.to_string()]);
    p
}

/// The checks every attack shares: the attack was made, psrp exited by
/// itself with `code` (no panic, no signal) and a message containing
/// `message`, memory stayed bounded, no raw control characters reached
/// stderr, and no shell is left open.
fn assert_survived(peer: &Peer, rule: &HostileRule, m: &Measured, code: i32, message: &str) {
    let run = &m.run;
    let shown = format!(
        "--- stdout ({} bytes) ---\n{}\n--- stderr ---\n{}",
        run.stdout.len(),
        &run.stdout[..run.stdout.len().min(2000)],
        run.stderr
    );
    assert!(
        !peer.attacked(&rule.kind()).unwrap().is_empty(),
        "the peer never made the attack {rule:?}\n{shown}"
    );
    assert!(
        !run.stderr.contains("panicked"),
        "psrp panicked under {:?}\n{shown}",
        rule.attack
    );
    assert_eq!(
        run.status.signal(),
        None,
        "psrp was killed by a signal under {:?}\n{shown}",
        rule.attack
    );
    assert!(
        m.max_rss_kib < MAX_RSS_KIB,
        "psrp's peak RSS was {} MiB under {:?} (bound {} MiB)\n{shown}",
        m.max_rss_kib / 1024,
        rule.attack,
        MAX_RSS_KIB / 1024
    );
    assert_eq!(
        run.status.code(),
        Some(code),
        "exit status under {:?}\n{shown}",
        rule.attack
    );
    assert!(
        run.stderr.contains(message),
        "stderr does not say {message:?} under {:?}\n{shown}",
        rule.attack
    );
    assert_no_raw_controls("stderr", &run.stderr);
    assert!(
        peer.wait_no_open_shells(Duration::from_secs(10)).unwrap(),
        "a shell was left open after {:?}: {}\n{shown}",
        rule.attack,
        peer.control_get("/shells").unwrap()
    );
}

/// Control characters (C0 but newline and tab, DEL, C1) that would reach
/// the terminal raw.
fn assert_no_raw_controls(what: &str, text: &str) {
    let raw: Vec<(usize, char)> = text
        .char_indices()
        .filter(|&(_, c)| c.is_control() && c != '\n' && c != '\t')
        .collect();
    assert!(
        raw.is_empty(),
        "{what} holds {} raw control characters (first at byte {:?}): {:?}",
        raw.len(),
        raw.first().map(|r| r.0),
        text
    );
}

/// Get-Date under `attack` on the next Receive of the command; psrp must
/// fail with a transport/protocol error (exit 3) saying `message`.
fn receive_attack(attack: Attack, message: &str) {
    let rule = HostileRule::new(attack);
    let peer = attacked_peer(&rule);
    let m = run_measured(
        psrp(&peer, 60).args(["invoke", "Get-Date"]),
        Duration::from_secs(90),
    );
    assert_survived(&peer, &rule, &m, 3, message);
    assert!(
        m.run.stderr.contains("(WS-Man Receive)") || m.run.stderr.contains("pipeline output"),
        "the message does not name the Receive:\n{}",
        m.run.stderr
    );
}

// ---- tampered multipart/encrypted framing ----------------------------------------------

#[test]
fn encrypted_length_u64_max() {
    receive_attack(
        Attack::EncryptedLength(u64::MAX.to_string()),
        "message encryption",
    );
}

#[test]
fn encrypted_length_u64_max_ntlm() {
    let rule = HostileRule::new(Attack::EncryptedLength(u64::MAX.to_string()));
    let peer = attacked_peer(&rule);
    let info = peer.info();
    let mut p = Psrp::peer(&peer);
    p.conn(["-a", "ntlm", "-u", &format!("PEER\\{}", info.user)])
        .conn(["--timeout", "60"])
        .env("PSRP_PASSWORD", &info.password)
        .args(["invoke", "Get-Date"]);
    let m = run_measured(&mut p, Duration::from_secs(90));
    assert_survived(&peer, &rule, &m, 3, "message encryption");
}

#[test]
fn encrypted_length_2_pow_63() {
    receive_attack(
        Attack::EncryptedLength((1u64 << 63).to_string()),
        "message encryption",
    );
}

#[test]
fn encrypted_length_negative() {
    receive_attack(Attack::EncryptedLength("-1".into()), "message encryption");
}

#[test]
fn encrypted_length_absent() {
    receive_attack(Attack::EncryptedNoLength, "message encryption");
}

#[test]
fn encrypted_boundary_inside_ciphertext() {
    receive_attack(Attack::EncryptedBoundaryInData, "message encryption");
}

#[test]
fn encrypted_body_truncated() {
    receive_attack(Attack::EncryptedTruncated, "message encryption");
}

#[test]
fn encrypted_signature_length_huge() {
    receive_attack(Attack::EncryptedSignatureLength, "message encryption");
}

#[test]
fn encrypted_many_tiny_parts() {
    receive_attack(
        Attack::EncryptedTinyParts { parts: 50_000 },
        "message encryption",
    );
}

/// The Create reply cannot be read: the shell may exist (the client chose
/// its ShellId), so psrp must delete it.
#[test]
fn tampered_create_reply_leaves_no_shell() {
    let rule = HostileRule::new(Attack::EncryptedNoLength).on(Some("Create"), Scope::Any);
    let peer = attacked_peer(&rule);
    let m = run_measured(
        psrp(&peer, 60).args(["invoke", "Get-Date"]),
        Duration::from_secs(90),
    );
    assert_survived(&peer, &rule, &m, 3, "(WS-Man Create)");
}

// ---- HTTP bodies that never end ---------------------------------------------------------

/// The Receive's response never completes: the read timeout
/// (`--operation-timeout` + 10 s) ends it. A stalled read looks like a dead
/// network, so psrp reconnects and sends the Receive again: the attack is
/// made on every Receive, and one retry is allowed, so that psrp gives up
/// after two read timeouts.
fn endless_body(attack: Attack, message: &str) {
    let rule = HostileRule::new(attack).forever();
    let peer = attacked_peer(&rule);
    let m = run_measured(
        psrp(&peer, 60).args([
            "invoke",
            "Get-Date",
            "--operation-timeout",
            "1",
            "--reconnect-retries",
            "1",
            "--reconnect-backoff",
            "0.1",
        ]),
        Duration::from_secs(90),
    );
    assert_survived(&peer, &rule, &m, 3, message);
}

#[test]
fn body_stalls_after_content_length_promise() {
    endless_body(Attack::StalledBody, "no complete response within 11s");
}

#[test]
fn chunked_body_never_ends() {
    endless_body(
        Attack::EndlessChunkedBody,
        "no complete response within 11s",
    );
}

#[test]
fn chunked_body_floods() {
    endless_body(Attack::FloodedBody { max_bytes: 1 << 30 }, "response body");
}

// ---- envelopes and XML ------------------------------------------------------------------

#[test]
fn envelope_far_above_max_envelope_size() {
    receive_attack(
        Attack::OversizedEnvelope { bytes: 24 << 20 },
        "(WS-Man Receive)",
    );
}

#[test]
fn deeply_nested_xml() {
    receive_attack(Attack::DeepXml { depth: 100_000 }, "bad Receive response");
}

#[test]
fn xml_with_millions_of_elements() {
    receive_attack(
        Attack::ManyElements {
            elements: 2_000_000,
        },
        "bad Receive response",
    );
}

// ---- streams that never end -------------------------------------------------------------

/// Every Receive brings more output and the command never reports Done,
/// not even after the stop: `--timeout` stops the pipeline, psrp gives up
/// waiting for it to end after its stop grace, and deletes the shell.
#[test]
fn endless_receive_stream() {
    let rule = HostileRule::new(Attack::EndlessReceive {
        objects: 20,
        delay_ms: 50,
    })
    .forever();
    let peer = attacked_peer(&rule);
    let m = run_measured(
        psrp(&peer, 3).args(["invoke", "Get-Date", "-o", "ndjson"]),
        Duration::from_secs(90),
    );
    assert_survived(&peer, &rule, &m, 2, "timed out after 3s");
    let objects = m.run.ndjson();
    assert!(
        objects.len() > 20,
        "expected the endless output on stdout, got {} objects",
        objects.len()
    );
    eprintln!(
        "endless Receive: {} objects in {:?}, peak RSS {} KiB",
        objects.len(),
        m.elapsed,
        m.max_rss_kib
    );
}

/// PSRP messages whose fragments never end: the reassembly limits end the
/// pipeline (exit 2: the host works, a retry would fail the same way; see
/// README "Exit status") before memory grows past the bound.
fn endless_fragments(messages: u32) {
    let rule = HostileRule::new(Attack::EndlessFragment { messages }).forever();
    let peer = attacked_peer(&rule);
    let m = run_measured(
        psrp(&peer, 60).args(["invoke", "Get-Date"]),
        Duration::from_secs(90),
    );
    eprintln!(
        "endless fragments of {messages} messages: {:?}, peak RSS {} KiB",
        m.elapsed, m.max_rss_kib
    );
    assert_survived(&peer, &rule, &m, 2, "limit");
    assert_eq!(m.run.stdout, "[]\n", "no object can have come out");
}

/// One message that grows forever: the per-message limit.
#[test]
fn endless_fragment_stream() {
    endless_fragments(1);
}

/// Eight interleaved messages, each below the per-message limit: the
/// pool's budget for partial messages.
#[test]
fn endless_fragments_of_many_messages() {
    endless_fragments(8);
}

// ---- terminal escapes -------------------------------------------------------------------

/// Escapes in every PSRP stream, every host Write* call and the terminating
/// error: none reaches stderr raw, and the output object keeps them
/// (escaped by JSON).
#[test]
fn ansi_escapes_in_every_stream() {
    let rule = HostileRule::new(Attack::AnsiStreams);
    let peer = attacked_peer(&rule);
    let m = run_measured(
        psrp(&peer, 60).args(["invoke", "Get-Date"]),
        Duration::from_secs(90),
    );
    let stderr = &m.run.stderr;
    for prefix in [
        "ERROR: ",
        "WARNING: ",
        "VERBOSE: ",
        "DEBUG: ",
        "INFO: ",
        "PROGRESS: ",
        "psrp: ",
    ] {
        assert!(
            m.run
                .stderr_lines(prefix)
                .iter()
                .any(|l| l.contains("pwned-title")),
            "no {prefix:?} line carries the hostile text:\n{stderr}"
        );
    }
    for host_call in [
        "host write ",
        "host write colored ",
        "host line ",
        "host line colored ",
        "host error ",
        "host warning ",
        "host verbose ",
        "host debug ",
    ] {
        assert!(
            stderr.contains(host_call),
            "the host call {host_call:?} is not shown:\n{stderr}"
        );
    }
    assert_survived(&peer, &rule, &m, 2, "Get-Date failed");
    assert_no_raw_controls("stdout", &m.run.stdout);
    assert_eq!(
        m.run.json()[0],
        format!("output {ANSI_TEXT}"),
        "the output string must arrive intact (escaped only by JSON)"
    );
}

/// A WS-Man fault whose text holds escapes (raw in the XML).
#[test]
fn ansi_escapes_in_wsman_fault_text() {
    let rule = HostileRule::new(Attack::FaultText {
        code: 2150858843,
        message: format!("fault {ANSI_TEXT}"),
    });
    let peer = attacked_peer(&rule);
    let m = run_measured(
        psrp(&peer, 60).args(["invoke", "Get-Date"]),
        Duration::from_secs(90),
    );
    assert!(m.run.stderr.contains("pwned-title"), "{}", m.run.stderr);
    assert_survived(&peer, &rule, &m, 3, "2150858843");
}

/// An HTTP error page with escapes (HTTPS with Basic: the body is not
/// encrypted, so psrp shows its start).
#[test]
fn ansi_escapes_in_http_error_body() {
    let rule = HostileRule::new(Attack::HttpStatus {
        status: 502,
        body: format!("<html>bad gateway {ANSI_TEXT}</html>"),
    });
    let peer = attacked_peer(&rule);
    let info = peer.info();
    let mut p = Psrp::new();
    p.conn(["-H", &info.host, "--port", &info.https_port.to_string()])
        .conn(["--scheme", "https", "--ca-file"])
        .conn([&info.ca_file])
        .conn(["-a", "basic", "-u", &info.user, "--timeout", "60"])
        .env("PSRP_PASSWORD", &info.password)
        .args(["invoke", "Get-Date"]);
    let m = run_measured(&mut p, Duration::from_secs(90));
    assert!(
        m.run.stderr.contains("HTTP 502") && m.run.stderr.contains("pwned-title"),
        "{}",
        m.run.stderr
    );
    assert_survived(&peer, &rule, &m, 3, "bad gateway");
}

// ---- the library ------------------------------------------------------------------------

/// Panics on this binary's tokio runtime threads: only the library test
/// runs one (the CLI tests run psrp as a child), so these are the client's.
static CLIENT_PANICS: AtomicUsize = AtomicUsize::new(0);

/// The library reports each attack as a typed error of the right kind,
/// without a panic in its tasks, and deletes the shell on close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_reports_typed_errors() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("tokio-"))
        {
            CLIENT_PANICS.fetch_add(1, Ordering::SeqCst);
        }
        previous(info)
    }));
    let cases = [
        (Attack::EncryptedNoLength, ErrorKind::Protocol),
        (
            Attack::EncryptedLength(u64::MAX.to_string()),
            ErrorKind::Protocol,
        ),
        (Attack::EncryptedTruncated, ErrorKind::Protocol),
        (Attack::DeepXml { depth: 100_000 }, ErrorKind::Protocol),
        (Attack::EndlessChunkedBody, ErrorKind::Connection),
        // A body over the response limit is the server's fault, not the network's.
        (
            Attack::OversizedEnvelope { bytes: 24 << 20 },
            ErrorKind::Protocol,
        ),
    ];
    let peer = tokio::task::spawn_blocking(|| Peer::start(&PeerOptions::default()).unwrap())
        .await
        .unwrap();
    let info = peer.info().clone();
    let mut failures = Vec::new();
    for (attack, kind) in cases {
        let rule = HostileRule::new(attack);
        let options = ConnectionOptions::new(info.host.clone())
            .scheme(Scheme::Http)
            .port(info.http_port)
            .auth(psrp_core::client::AuthMethod::Kerberos)
            .operation_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(3))
            // One attempt: this is about the kind of the error (retries
            // of a stalled read are tested in cli_reconnect and above).
            .reconnect_retries(0);
        let pool = RunspacePool::open(options).await.unwrap();
        tokio::task::block_in_place(|| peer.add_hostile(&rule).unwrap());
        let panics = CLIENT_PANICS.load(Ordering::SeqCst);
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            pool.invoke(Command::new("Get-Date")),
        )
        .await;
        if CLIENT_PANICS.load(Ordering::SeqCst) != panics {
            failures.push(format!("{:?}: a client task panicked", rule.attack));
        }
        match outcome {
            Ok(Err(e)) if e.kind() == kind => {}
            other => failures.push(format!(
                "{:?}: expected a {kind:?} error, got {other:?}",
                rule.attack
            )),
        }
        if let Err(e) = pool.close().await {
            failures.push(format!("{:?}: close failed: {e}", rule.attack));
        }
        let gone = tokio::task::block_in_place(|| {
            peer.wait_no_open_shells(Duration::from_secs(10)).unwrap()
        });
        if !gone {
            failures.push(format!("{:?}: the shell was left open", rule.attack));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
