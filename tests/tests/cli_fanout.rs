//! Several hosts at once: every result and log line tagged with its host,
//! a summary on stderr, one host's failure does not stop the others, the
//! exit status is the worst, and `--throttle` bounds how many run at once.
//! The hosts are several instances of the test peer sharing one realm.

mod cli_support;

use std::collections::BTreeSet;

use cli_support::{Fault, FaultRule, Peer, PeerOptions, Psrp};
use serde_json::{json, Value};

fn label(peer: &Peer) -> String {
    format!("localhost:{}", peer.info().http_port)
}

/// `psrp` with the shared peer's Kerberos environment and `hosts`.
fn fan_out(hosts: &[String]) -> Psrp {
    let mut p = Psrp::kerberos(Peer::shared());
    p.conn([
        "-H",
        &hosts.join(","),
        "-a",
        "kerberos",
        "-c",
        "JEA.Maintenance",
    ]);
    p
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn one_failing_host_does_not_stop_the_others() {
    let good1 = Peer::shared();
    let good2 = Peer::start(&PeerOptions::default()).unwrap();
    let faulty = Peer::start(&PeerOptions::default()).unwrap();
    // Every Create on this instance fails with a WS-Man fault.
    faulty
        .add_fault(&FaultRule {
            count: 100,
            ..FaultRule::new(Fault::Http500 { code: 2150858770 }, Some("Create"))
        })
        .unwrap();
    let refused = format!("127.0.0.1:{}", closed_port());
    let hosts = [label(good1), label(&faulty), refused.clone(), label(&good2)];
    let run = fan_out(&hosts)
        .args([
            "invoke",
            "Write-Output",
            "-p",
            "InputObject=hello",
            "--session-init",
            "Set-PSDebug -Trace 1",
        ])
        .run();
    // The worst status: connection failures.
    run.expect_code(3);

    // Results: one per good host, wrapped with the host.
    let out = run.json();
    let items = out.as_array().unwrap();
    let seen: BTreeSet<String> = items
        .iter()
        .map(|i| {
            assert_eq!(i["value"], "hello", "{i}");
            assert_eq!(i.as_object().unwrap().len(), 2, "{i}");
            i["host"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(seen, BTreeSet::from([label(good1), label(&good2)]));

    // Log lines carry their host.
    for good in [label(good1), label(&good2)] {
        let trace = format!("[{good}] DEBUG:     1+  >>>> Write-Output -InputObject 'hello'");
        assert!(
            run.stderr.contains(&trace),
            "{trace} missing:\n{}",
            run.stderr
        );
    }
    for bad in [label(&faulty), refused.clone()] {
        assert!(
            run.stderr
                .contains(&format!("psrp: [{bad}] cannot connect:")),
            "{bad}:\n{}",
            run.stderr
        );
    }
    // The summary: one line per host in the order given, then the counts.
    let summary = run.stderr_lines("psrp: summary: ");
    assert_eq!(summary.len(), 5, "{}", run.stderr);
    for (line, host) in summary.iter().zip(&hosts) {
        assert!(
            line.starts_with(&format!("psrp: summary: {host}: ")),
            "{line}"
        );
    }
    assert!(
        summary[0].contains(": ok (exit 0; 1 objects, 0 errors"),
        "{}",
        summary[0]
    );
    assert!(
        summary[1].contains(": connection failed (exit 3;"),
        "{}",
        summary[1]
    );
    assert_eq!(
        summary[4],
        "psrp: summary: 4 hosts: 2 ok, 2 connection failed"
    );
    // Nothing left open where the command ran.
    assert_eq!(good2.open_shells().unwrap(), 0);
    assert_eq!(faulty.open_shells().unwrap(), 0);
}

#[test]
fn worst_status_and_ndjson_tags() {
    let peer = Peer::shared();
    let other = Peer::start(&PeerOptions::default()).unwrap();
    let hosts = [label(peer), label(&other)];
    // Errors written on both: status 1 everywhere, so 1 overall.
    let run = fan_out(&hosts)
        .args(["invoke", "Write-Error", "-p", "Message=bad", "-o", "ndjson"])
        .run();
    run.expect_code(1);
    assert_eq!(run.stdout, "");
    for host in &hosts {
        assert!(
            run.stderr
                .contains(&format!("[{host}] ERROR: Write-Error : bad")),
            "{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("psrp: summary: 2 hosts: 2 had errors"));

    // NDJSON: one tagged line per object.
    let run = Psrp::kerberos(peer)
        .conn(["-H", &hosts.join(","), "-a", "kerberos", "-o", "ndjson"])
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(0);
    let lines = run.ndjson();
    assert_eq!(lines.len(), 2);
    let tagged: BTreeSet<&str> = lines.iter().filter_map(|l| l["host"].as_str()).collect();
    assert_eq!(tagged, hosts.iter().map(String::as_str).collect());
}

#[test]
fn a_hosts_file_tags_even_one_host() {
    let peer = Peer::shared();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hosts.txt");
    std::fs::write(&file, format!("# lab\n{}  # the only one\n\n", label(peer))).unwrap();
    let run = Psrp::kerberos(peer)
        .conn([
            "--hosts-file",
            file.to_str().unwrap(),
            "-a",
            "kerberos",
            "-c",
            "JEA.Maintenance",
        ])
        .args(["invoke", "Write-Output", "-p", "InputObject=x"])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!([{"host": label(peer), "value": "x"}]));
    assert!(run.stderr.contains("psrp: summary: 1 hosts: 1 ok"));
}

/// (Create time, Delete time) of the one shell this run opened on `peer`.
fn shell_span(peer: &Peer) -> (f64, f64) {
    let log = peer.log().unwrap();
    let create = log
        .iter()
        .rev()
        .find(|e| e["action"] == "Create")
        .expect("a Create");
    let shell = create["shell_id"].as_str().unwrap();
    let ops = peer.operations_of(shell).unwrap();
    let time = |v: &Value| v["time"].as_f64().unwrap();
    let delete = ops
        .iter()
        .find(|e| e["action"] == "Delete")
        .expect("a Delete");
    (time(create), time(delete))
}

#[test]
fn throttle_bounds_how_many_hosts_run_at_once() {
    let a = Peer::start(&PeerOptions::default()).unwrap();
    let b = Peer::start(&PeerOptions::default()).unwrap();
    let hosts = [label(&a), label(&b)];
    let sleep = ["invoke", "Start-Sleep", "--param-json", "Seconds=1"];

    let run = fan_out(&hosts).conn(["--throttle", "1"]).args(sleep).run();
    run.expect_code(0);
    let (sa, sb) = (shell_span(&a), shell_span(&b));
    let (first, second) = if sa.0 < sb.0 { (sa, sb) } else { (sb, sa) };
    assert!(
        second.0 >= first.1,
        "with --throttle 1 the second host must start after the first ended: {first:?} {second:?}"
    );

    let run = fan_out(&hosts).args(sleep).run();
    run.expect_code(0);
    let (sa, sb) = (shell_span(&a), shell_span(&b));
    assert!(
        sa.0 < sb.1 && sb.0 < sa.1,
        "by default both hosts run at once: {sa:?} {sb:?}"
    );
}
