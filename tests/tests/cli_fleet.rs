//! Fan-out over a fleet of simulated hosts: one test peer serving many
//! listeners, each a host of its own (`tests/peer/fleet.py`), some slow,
//! some where the command fails, some refusing connections, at a small
//! throttle. Every host's result and summary line, the exit status, and no
//! shell left on any host.

mod cli_support;

use std::collections::BTreeMap;

use cli_support::{Peer, PeerOptions, Psrp};
use psrp_tests::{FleetHost, FleetOptions};
use serde_json::Value;

#[test]
fn fan_out_over_a_fleet_of_ok_slow_failing_and_refusing_hosts() {
    let peer = Peer::start(&PeerOptions {
        fleet: Some(FleetOptions {
            listeners: 48,
            slow: 4,
            failing: 6,
            refusing: 6,
            slow_ms: 300,
            addresses: vec!["127.0.0.2".into(), "127.0.0.3".into()],
        }),
        ..PeerOptions::default()
    })
    .unwrap();
    let hosts = peer.fleet_hosts().unwrap();
    assert_eq!(hosts.len(), 48);
    let role = |r: &str| -> Vec<&FleetHost> { hosts.iter().filter(|h| h.role == r).collect() };

    let mut psrp = Psrp::kerberos(&peer);
    let hosts_file = psrp.home().join("hosts.txt");
    let lines: Vec<String> = hosts.iter().map(FleetHost::label).collect();
    std::fs::write(&hosts_file, lines.join("\n") + "\n").unwrap();
    let run = psrp
        .conn([
            "--hosts-file",
            hosts_file.to_str().unwrap(),
            "--throttle",
            "6",
        ])
        // Every host is HTTP/localhost to the realm, whatever its address.
        .conn(["-a", "kerberos", "--spn", "HTTP/localhost"])
        .args(["invoke", "Write-Output", "-p", "InputObject=hello"])
        .args(["-o", "ndjson"])
        .run();
    // The worst status: the refusing hosts' connection failures.
    run.expect_code(3);

    // One result from each ok or slow host, tagged with it; none from the others.
    let mut results: BTreeMap<String, usize> = BTreeMap::new();
    for item in run.ndjson() {
        assert_eq!(item["value"], Value::from("hello"), "{item}");
        *results
            .entry(item["host"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let answering: BTreeMap<String, usize> = hosts
        .iter()
        .filter(|h| h.role == "ok" || h.role == "slow")
        .map(|h| (h.label(), 1))
        .collect();
    assert_eq!(results, answering);

    // A summary line per host, in the order given, with its outcome.
    let summary: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("psrp: summary: ") && !l.contains(" hosts: "))
        .collect();
    assert_eq!(summary.len(), hosts.len(), "{}", run.stderr);
    for (line, host) in summary.iter().zip(&hosts) {
        let outcome = match host.role.as_str() {
            "ok" | "slow" => "ok (exit 0; 1 objects, 0 errors,",
            "failing" => "failed (exit 2; 0 objects, 0 errors,",
            _ => "connection failed (exit 3; 0 objects, 0 errors,",
        };
        let want = format!("psrp: summary: {}: {outcome}", host.label());
        assert!(line.starts_with(&want), "{line}\nwanted {want}");
    }
    assert!(
        run.stderr
            .contains("psrp: summary: 48 hosts: 36 ok, 6 failed, 6 connection failed\n"),
        "{}",
        run.stderr
    );

    // Each failure is told with its host and cause.
    for h in role("failing") {
        let told = format!("psrp: [{}] Write-Output failed: ", h.label());
        let line = run.stderr.lines().find(|l| l.starts_with(&told));
        assert!(
            line.is_some_and(|l| l.contains("failing fleet host")),
            "{told}...\n{}",
            run.stderr
        );
    }
    for h in role("refusing") {
        let label = h.label();
        assert!(
            run.stderr.contains(&format!(
                "psrp: [{label}] cannot connect: opening the runspace pool (WS-Man Create) failed"
            )),
            "{}",
            run.stderr
        );
        // A Create that never left (connection refused) made no shell: no
        // Delete is retried against the host.
        assert!(
            !run.stderr.contains(&format!("[{label}] WARNING:")),
            "{}",
            run.stderr
        );
    }

    // No shell left anywhere; each host that answered had exactly one.
    let fleet = peer.fleet().unwrap();
    assert_eq!(fleet["open_shells"], 0, "{fleet}");
    for h in fleet["hosts"].as_array().unwrap() {
        let created = u64::from(h["role"] != "refusing");
        assert_eq!(h["shells_created"].as_u64(), Some(created), "{h}");
        assert_eq!(h["open_shells"], 0, "{h}");
    }
}
