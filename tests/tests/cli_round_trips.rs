//! The HTTP exchanges of one `psrp invoke Get-Date`, per authentication
//! method and transport, read from the peer's operation log (one `request`
//! record per HTTP request, authentication legs included): the sequences
//! of the README's "Round trips" table, exactly. Not timed.

mod cli_support;

use cli_support::{Peer, PeerOptions, Psrp};
use serde_json::Value;

/// One HTTP exchange as the README's table writes it: the WS-Man action it
/// carried, or `auth` for an authentication leg with no request, prefixed
/// with the HTTP authentication scheme when it carried an Authorization
/// header (`Kerberos+Create`: a Kerberos token and the Create in one).
/// Pipeline Receives in a row are written once, and their number returned
/// apart: a command that has not ended when the first Receive arrives takes
/// a second one (the server's timing, not the client's choice).
fn exchanges(log: &[Value]) -> (Vec<String>, usize) {
    let mut out: Vec<(Option<String>, Option<String>, bool)> = Vec::new();
    for r in log {
        match r["kind"].as_str() {
            Some("request") => {
                out.push((r["authorization"].as_str().map(str::to_owned), None, false))
            }
            Some("wsman") => {
                if let Some(last) = out.last_mut() {
                    last.1 = r["action"].as_str().map(str::to_owned);
                    last.2 = r["action"] == "Receive" && r["command_id"].is_string();
                }
            }
            _ => {}
        }
    }
    let pipeline_receives = out.iter().filter(|e| e.2).count();
    out.dedup_by(|b, a| a.2 && b.2);
    let labels = out
        .into_iter()
        .map(|(auth, action, _)| match (auth, action) {
            (Some(a), Some(op)) => format!("{a}+{op}"),
            (Some(a), None) => format!("{a}+auth"),
            (None, Some(op)) => op,
            (None, None) => "unauthenticated".to_owned(),
        })
        .collect();
    (labels, pipeline_receives)
}

/// Runs `psrp invoke Get-Date` with `auth` over `scheme` against `peer` and
/// returns its exchanges.
fn invoke(peer: &Peer, auth: &str, scheme: &str) -> Vec<String> {
    let info = peer.info();
    let port = match scheme {
        "https" => info.https_port,
        _ => info.http_port,
    };
    let mut p = Psrp::kerberos(peer);
    p.conn([
        "-H",
        &info.host,
        "--port",
        &port.to_string(),
        "--scheme",
        scheme,
    ])
    .conn(["-a", auth, "--ca-file", info.ca_file.to_str().unwrap()]);
    if auth == "basic" || auth == "ntlm" {
        p.conn(["-u", &info.user])
            .env("PSRP_PASSWORD", &info.password);
    }
    peer.reset_log().unwrap();
    let run = p.args(["invoke", "Get-Date", "-o", "ndjson"]).run();
    run.expect_code(0);
    assert_eq!(run.ndjson().len(), 1, "{auth}/{scheme}: {}", run.stdout);
    let log = peer.log().unwrap();
    let connections: std::collections::BTreeSet<_> = log
        .iter()
        .filter(|r| r["kind"] == "request")
        .map(|r| r["connection"].as_u64())
        .collect();
    assert_eq!(
        connections.len(),
        1,
        "{auth}/{scheme}: one TCP connection expected: {log:?}"
    );
    let (labels, pipeline_receives) = exchanges(&log);
    assert!(
        (1..=2).contains(&pipeline_receives),
        "{auth}/{scheme}: {pipeline_receives} pipeline Receives for Get-Date: {log:?}"
    );
    labels
}

/// The README's table, row by row.
#[test]
fn one_invoke_makes_the_documented_exchanges() {
    let peer = Peer::shared();
    let ops = ["Create", "Receive", "Command", "Receive", "Delete"];
    let with = |legs: &[&str], first: Option<&str>| -> Vec<String> {
        let mut v: Vec<String> = legs.iter().map(|s| s.to_string()).collect();
        let mut rest = ops.iter().map(|s| s.to_string());
        if let Some(prefix) = first {
            v.push(format!("{prefix}+{}", rest.next().unwrap()));
        }
        v.extend(rest);
        v
    };
    let cases: [(&str, &str, Vec<String>); 7] = [
        ("basic", "https", {
            // Basic sends its header on every request.
            ops.iter().map(|op| format!("Basic+{op}")).collect()
        }),
        ("kerberos", "https", with(&[], Some("Kerberos"))),
        ("negotiate", "https", with(&[], Some("Negotiate"))),
        (
            "ntlm",
            "https",
            with(&["Negotiate+auth"], Some("Negotiate")),
        ),
        ("kerberos", "http", with(&["Kerberos+auth"], None)),
        ("negotiate", "http", with(&["Negotiate+auth"], None)),
        (
            "ntlm",
            "http",
            with(&["Negotiate+auth", "Negotiate+auth"], None),
        ),
    ];
    for (auth, scheme, expected) in cases {
        let got = invoke(peer, auth, scheme);
        assert_eq!(got, expected, "{auth}/{scheme}");
    }
}

/// A server that does not offer the scheme psrp tries first (Kerberos for
/// `-a kerberos`) costs one more leg, not a failure: its 401 lists what it
/// offers, and psrp starts again with Negotiate on the same connection.
#[test]
fn a_scheme_the_server_does_not_offer_costs_one_more_leg() {
    let peer = Peer::start(&PeerOptions {
        schemes: Some(vec!["Negotiate".into(), "Basic".into()]),
        ..PeerOptions::default()
    })
    .unwrap();
    let got = invoke(&peer, "kerberos", "http");
    let expected = [
        "Kerberos+auth",
        "Negotiate+auth",
        "Create",
        "Receive",
        "Command",
        "Receive",
        "Delete",
    ];
    assert_eq!(got, expected);
    let refused: Vec<_> = peer
        .log()
        .unwrap()
        .into_iter()
        .filter(|r| r["kind"] == "auth" && r["result"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
}
