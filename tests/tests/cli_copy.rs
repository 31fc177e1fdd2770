//! `psrp copy` and `psrp fetch` against the test peer (Kerberos over HTTP,
//! every message encrypted): a round trip byte for byte with the SHA-256
//! both sides agree on, several chunks in flight on one pool, resume after
//! a failed fetch, a corrupted chunk found by its SHA-256 and transferred
//! again (or reported when it stays corrupted), the NoLanguage (JEA)
//! message, and no shell left behind. Files are a few MiB at most.

mod cli_support;

use std::path::Path;
use std::time::Duration;

use cli_support::{psrp_bin, Peer, PeerOptions, Psrp, Run};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Deterministic, incompressible-looking test data (xorshift64).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn psrp(peer: &Peer, args: &[&str]) -> Run {
    Psrp::peer(peer)
        .conn(["--auth", "kerberos"])
        .args(args)
        .run()
}

/// The most Command requests answered before the Signal that released an
/// earlier one: how many pipelines were in flight at once.
fn max_in_flight(log: &[Value]) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for entry in log {
        match entry["action"].as_str() {
            Some("Command") if entry["status"] == 200 => {
                now += 1;
                max = max.max(now);
            }
            Some("Signal") => now = now.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn corrupt_chunks(peer: &Peer, skip: u32, count: u32) {
    peer.control_post(
        "/faults",
        &json!({"kind": "corrupt_chunk", "skip": skip, "count": count}),
    )
    .expect("add the corrupt_chunk fault");
}

fn summary_sha256(run: &Run) -> String {
    let line = run
        .stderr_lines("psrp: ")
        .into_iter()
        .find(|l| l.contains("SHA-256"))
        .unwrap_or_else(|| panic!("no summary line: {}", run.stderr))
        .to_owned();
    let at = line.find("SHA-256 ").expect("SHA-256 in the summary") + 8;
    line[at..at + 64].to_owned()
}

/// "N of M chunks already in place" from the summary line.
fn in_place(run: &Run) -> (u64, u64) {
    let text = &run.stderr;
    let end = text
        .find(" chunks already in place")
        .unwrap_or_else(|| panic!("no resume count: {text}"));
    let words: Vec<&str> = text[..end].rsplit(' ').take(3).collect();
    (
        words[2].parse().expect("chunks in place"),
        words[0].parse().expect("chunks"),
    )
}

#[test]
fn copy_then_fetch_round_trip_resume_and_refusals() {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.bin");
    // Not a multiple of the chunk size, so the last chunk is short.
    let bytes = data(2 * 1024 * 1024 + 12345, 7);
    std::fs::write(&source, &bytes).expect("write the source");
    let want = sha256_hex(&bytes);
    let src = source.to_str().expect("utf-8 path");

    peer.reset_log().expect("reset the log");
    let up = psrp(
        &peer,
        &["copy", src, "C:\\Temp\\copy.bin", "--parallel", "4"],
    );
    up.expect_code(0);
    assert_eq!(summary_sha256(&up), want, "{}", up.stderr);
    // Not a terminal: no progress bar, one summary line.
    assert!(!up.stderr.contains(" eta "), "{}", up.stderr);
    assert_eq!(up.stderr.lines().count(), 1, "{}", up.stderr);
    assert!(up.stderr.contains("C:\\Temp\\copy.bin"), "{}", up.stderr);
    let log = peer.log().expect("peer log");
    let in_flight = max_in_flight(&log);
    assert!(
        in_flight >= 2,
        "chunks should overlap on the pool: at most {in_flight} in flight"
    );
    // One Command per chunk: each chunk fitted in one envelope (no Send).
    assert!(
        !log.iter().any(|e| e["action"] == "Send"),
        "a chunk took more than one envelope"
    );

    let target = dir.path().join("back.bin");
    let down = psrp(
        &peer,
        &["fetch", "C:\\Temp\\copy.bin", target.to_str().unwrap()],
    );
    down.expect_code(0);
    assert_eq!(std::fs::read(&target).expect("fetched file"), bytes);
    assert_eq!(summary_sha256(&down), want);
    assert!(!Path::new(&format!("{}.psrp-part", target.display())).exists());

    // Resume: a fetch whose chunk stays corrupted fails and keeps its part
    // file; --resume then reads only the chunks that differ.
    corrupt_chunks(&peer, 2, 1000);
    let again = dir.path().join("again.bin");
    let failed = psrp(
        &peer,
        &[
            "fetch",
            "C:\\Temp\\copy.bin",
            again.to_str().unwrap(),
            "--parallel",
            "1",
            "--retries",
            "1",
        ],
    );
    failed.expect_code(2);
    assert!(
        failed.stderr.contains("failed 2 time(s)") && failed.stderr.contains("--resume"),
        "{}",
        failed.stderr
    );
    assert!(!again.exists());
    peer.clear_faults().expect("clear faults");
    let resumed = psrp(
        &peer,
        &[
            "fetch",
            "C:\\Temp\\copy.bin",
            again.to_str().unwrap(),
            "--resume",
        ],
    );
    resumed.expect_code(0);
    assert_eq!(std::fs::read(&again).expect("resumed file"), bytes);
    assert!(
        resumed.stderr.contains("chunks already in place"),
        "{}",
        resumed.stderr
    );

    // Copy --resume over the identical file sends nothing but the checks.
    let same = psrp(&peer, &["copy", src, "C:\\Temp\\copy.bin", "--resume"]);
    same.expect_code(0);
    let (skipped, chunks) = in_place(&same);
    assert_eq!(skipped, chunks, "{}", same.stderr);

    // Refusals, each with a message naming the cause.
    let jea = Psrp::jea(&peer)
        .args(["copy", src, "C:\\Temp\\jea.bin"])
        .run();
    jea.expect_code(2);
    assert!(
        jea.stderr.contains("NoLanguage mode (JEA)") && jea.stderr.contains("Microsoft.PowerShell"),
        "{}",
        jea.stderr
    );
    let jea = Psrp::jea(&peer)
        .args(["fetch", "C:\\Temp\\copy.bin", again.to_str().unwrap()])
        .run();
    jea.expect_code(2);
    assert!(
        jea.stderr.contains("NoLanguage mode (JEA)"),
        "{}",
        jea.stderr
    );
    let missing = psrp(
        &peer,
        &["fetch", "C:\\Temp\\nope.bin", target.to_str().unwrap()],
    );
    missing.expect_code(2);
    assert!(
        missing
            .stderr
            .contains("Could not find file 'C:\\Temp\\nope.bin'"),
        "{}",
        missing.stderr
    );
    let no_dir = psrp(&peer, &["copy", src, "C:\\NoSuchDir\\x.bin"]);
    no_dir.expect_code(2);
    assert!(
        no_dir.stderr.contains("Could not find a part of the path"),
        "{}",
        no_dir.stderr
    );
    let no_source = psrp(&peer, &["copy", "/nonexistent/file", "C:\\Temp\\x.bin"]);
    no_source.expect_code(64);
    let a_folder = psrp(
        &peer,
        &["copy", dir.path().to_str().unwrap(), "C:\\Temp\\x.bin"],
    );
    a_folder.expect_code(64);

    // Folders: a remote path ending in \ gets the local name, a local folder the remote one.
    let into = psrp(&peer, &["copy", src, "C:\\Temp\\"]);
    into.expect_code(0);
    assert!(
        into.stderr.contains("to C:\\Temp\\source.bin:"),
        "{}",
        into.stderr
    );
    let local_dir = dir.path().join("into");
    std::fs::create_dir(&local_dir).unwrap();
    let into = psrp(
        &peer,
        &["fetch", "C:\\Temp\\source.bin", local_dir.to_str().unwrap()],
    );
    into.expect_code(0);
    assert_eq!(std::fs::read(local_dir.join("source.bin")).unwrap(), bytes);

    assert!(
        peer.wait_no_open_shells(Duration::from_secs(10))
            .expect("peer shells"),
        "a shell was left open"
    );
}

#[test]
fn a_corrupted_chunk_is_found_by_its_sha256_and_sent_again_or_reported() {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.bin");
    let bytes = data(1024 * 1024, 11);
    std::fs::write(&source, &bytes).expect("write the source");
    let src = source.to_str().unwrap();

    // One chunk damaged on the way in: the SHA-256 the server returns for
    // it differs, psrp sends it again, and the file is whole.
    corrupt_chunks(&peer, 3, 1);
    let up = psrp(&peer, &["copy", src, "C:\\Temp\\c.bin"]);
    up.expect_code(0);
    assert!(
        up.stderr
            .contains("1 chunk(s) transferred again after a failed check"),
        "{}",
        up.stderr
    );
    assert_eq!(summary_sha256(&up), sha256_hex(&bytes));
    let corrupted = peer
        .log()
        .expect("log")
        .iter()
        .filter(|e| e["kind"] == "corrupt_chunk")
        .count();
    assert_eq!(corrupted, 1);

    // One chunk damaged on the way out: read again.
    corrupt_chunks(&peer, 5, 1);
    let target = dir.path().join("back.bin");
    let down = psrp(
        &peer,
        &["fetch", "C:\\Temp\\c.bin", target.to_str().unwrap()],
    );
    down.expect_code(0);
    assert!(
        down.stderr.contains("1 chunk(s) transferred again"),
        "{}",
        down.stderr
    );
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    // Damaged every time: reported after the retries, with the way out.
    corrupt_chunks(&peer, 0, 1000);
    let up = psrp(&peer, &["copy", src, "C:\\Temp\\c.bin", "--retries", "2"]);
    up.expect_code(2);
    assert!(
        up.stderr.contains("failed 3 time(s)")
            && up.stderr.contains("on the server")
            && up.stderr.contains("--resume"),
        "{}",
        up.stderr
    );
    peer.clear_faults().expect("clear faults");
    assert!(
        peer.wait_no_open_shells(Duration::from_secs(10))
            .expect("peer shells"),
        "a shell was left open"
    );
}

#[test]
fn a_progress_bar_on_a_terminal() {
    // util-linux `script` gives psrp a pseudo-terminal (as in cli_terminal.rs).
    let peer = Peer::shared();
    let info = peer.info();
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("tty.bin");
    std::fs::write(&source, data(1024 * 1024, 3)).expect("write the source");
    let command = format!(
        "'{}' copy '{}' 'C:\\Temp\\tty.bin' --parallel 1 --timeout 60 -H localhost --port {} -a kerberos",
        psrp_bin().display(),
        source.display(),
        info.http_port
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("TERM", "xterm")
        .envs(info.kerberos_env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs (Debian package bsdutils)");
    // Our end of the terminal's input stays open until psrp is done.
    let _stdin = child.stdin.take();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut raw).expect("read");
    let status = child.wait().expect("wait for script");
    let text = String::from_utf8_lossy(&raw);
    assert!(status.success(), "{text}");
    assert!(text.contains(" eta "), "no progress bar: {text}");
    assert!(text.contains("1.00 MiB"), "no total in the bar: {text}");
    assert!(text.contains("psrp: copied "), "{text}");
}
