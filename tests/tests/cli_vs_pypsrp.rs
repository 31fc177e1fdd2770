//! The same scenarios through the `psrp` binary and through the real pypsrp
//! client (tests/compare/pypsrp_run.py, shared with client_vs_pypsrp.rs)
//! against the test peer: the JSON on stdout equals pypsrp's objects as
//! JSON, the stream lines on stderr carry pypsrp's messages, and the exit
//! status matches pypsrp's final state and error count.

mod cli_support;

use cli_support::{Peer, Psrp, Run};
use serde_json::{json, Value};

struct Scenario {
    name: &'static str,
    configuration: &'static str,
    session_init: Option<&'static str>,
    command: &'static str,
    /// (kind, name, value): kind is "p" (string), "json" or "s" (switch).
    params: Vec<(&'static str, &'static str, &'static str)>,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "airflow restart",
            configuration: "JEA.Maintenance",
            session_init: Some("Set-PSDebug -Trace 1"),
            command: "Restart-Computer",
            params: vec![("s", "Force", "")],
        },
        Scenario {
            name: "echo every parameter kind",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Invoke-Echo",
            params: vec![
                ("p", "Text", "a <b> & \"c\""),
                // No integer above Int32 nor fraction: pypsrp sends every
                // int as I32 and every float as Single (psrp: I64, Double).
                ("json", "Count", "3"),
                ("json", "Flag", "true"),
                ("json", "Nothing", "null"),
                ("json", "List", r#"[1,"two",null]"#),
                ("json", "Table", r#"{"k":1,"n":[1,2]}"#),
                ("s", "Force", ""),
            ],
        },
        Scenario {
            name: "file system objects",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Get-ChildItem",
            params: vec![("p", "Path", "C:\\")],
        },
        Scenario {
            name: "one file",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Get-Item",
            params: vec![("p", "Path", "C:\\Windows\\win.ini")],
        },
        Scenario {
            name: "large output",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Get-LargeOutput",
            params: vec![("json", "Count", "300")],
        },
        Scenario {
            name: "processes",
            configuration: "Microsoft.PowerShell",
            session_init: None,
            command: "Get-Process",
            params: vec![],
        },
        Scenario {
            name: "error records",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Write-Error",
            params: vec![("p", "Message", "it broke"), ("p", "ErrorId", "Broke.1")],
        },
        Scenario {
            name: "warning",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Write-Warning",
            params: vec![("p", "Message", "careful")],
        },
        Scenario {
            name: "verbose",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Write-Verbose",
            params: vec![("p", "Message", "details"), ("s", "Verbose", "")],
        },
        Scenario {
            name: "debug",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Write-Debug",
            params: vec![("p", "Message", "internals"), ("s", "Debug", "")],
        },
        Scenario {
            name: "information",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Write-Information",
            params: vec![("p", "MessageData", "for your information")],
        },
        Scenario {
            name: "not visible in JEA",
            configuration: "JEA.Maintenance",
            session_init: None,
            command: "Get-Process",
            params: vec![],
        },
    ]
}

/// The scenario as pypsrp_run.py takes it.
fn for_pypsrp(s: &Scenario) -> Value {
    let mut parameters = Vec::new();
    let mut switches = Vec::new();
    for (kind, name, value) in &s.params {
        match *kind {
            "p" => parameters.push(json!([name, value])),
            "json" => parameters.push(json!([name, serde_json::from_str::<Value>(value).unwrap()])),
            _ => switches.push(json!(name)),
        }
    }
    let session_init = match s.session_init {
        // "Set-PSDebug -Trace 1", as psrp parses it.
        Some(_) => json!([[[{"command": "Set-PSDebug", "parameters": [["Trace", 1]]}]]]),
        None => json!([]),
    };
    json!({
        "name": s.name,
        "configuration": s.configuration,
        "session_init": session_init,
        "statements": [[{"command": s.command, "parameters": parameters, "switches": switches}]],
    })
}

fn run_psrp(peer: &Peer, s: &Scenario) -> Run {
    let mut p = Psrp::peer(peer);
    p.conn(["-a", "kerberos", "-c", s.configuration])
        .args(["invoke", s.command]);
    if let Some(init) = s.session_init {
        p.args(["--session-init", init]);
    }
    for (kind, name, value) in &s.params {
        match *kind {
            "p" => p.args(["-p", &format!("{name}={value}")]),
            "json" => p.args(["--param-json", &format!("{name}={value}")]),
            _ => p.args(["-s", name]),
        };
    }
    p.run()
}

/// Messages of one level from psrp's stderr.
fn level(run: &Run, prefix: &str) -> Vec<Value> {
    run.stderr_lines(prefix)
        .iter()
        .map(|l| Value::from(&l[prefix.len()..]))
        .collect()
}

/// Error records from psrp's stderr, (message, FullyQualifiedErrorId):
/// the ERROR lines, then the terminating error psrp reports as
/// `psrp: <command> failed: ...` (pypsrp files both under errors).
fn errors(run: &Run, command: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let failed = format!("{command} failed: ");
    for line in run.stderr.lines() {
        let Some(text) = line
            .strip_prefix("ERROR: ")
            .or_else(|| line.strip_prefix("psrp: "))
        else {
            continue;
        };
        if let Some(id) = text.strip_prefix("    + FullyQualifiedErrorId : ") {
            if let Some(last) = out.last_mut() {
                last["id"] = id.into();
            }
        } else if let Some(message) = text.strip_prefix(&failed) {
            out.push(json!({"message": message, "id": null}));
        } else if line.starts_with("ERROR: ") && !text.starts_with("    + ") {
            // "Command : message": the message is what pypsrp reports.
            let message = text.split_once(" : ").map_or(text, |(_, m)| m);
            out.push(json!({"message": message, "id": null}));
        }
    }
    out
}

#[test]
fn psrp_prints_what_pypsrp_receives() {
    let peer = Peer::shared();
    let requests: Vec<Value> = scenarios().iter().map(for_pypsrp).collect();
    let theirs = psrp_tests::run_pypsrp(peer, &Value::from(requests)).unwrap();
    let ours = scenarios();
    assert_eq!(theirs.len(), ours.len());
    for (s, reference) in ours.iter().zip(&theirs) {
        assert_eq!(reference["name"], s.name);
        let run = run_psrp(peer, s);
        let name = s.name;
        let expected_code = match reference["state"].as_str() {
            Some("Completed") if reference["errors"].as_array().is_some_and(Vec::is_empty) => 0,
            Some("Completed") => 1,
            _ => 2,
        };
        run.expect_code(expected_code);
        assert_eq!(run.json(), reference["output"], "{name}: output");
        assert_eq!(
            Value::Array(level(&run, "WARNING: ")),
            reference["warnings"],
            "{name}: warnings"
        );
        assert_eq!(
            Value::Array(level(&run, "VERBOSE: ")),
            reference["verbose"],
            "{name}: verbose"
        );
        assert_eq!(
            Value::Array(level(&run, "DEBUG: ")),
            reference["debug"],
            "{name}: debug"
        );
        assert_eq!(
            Value::Array(level(&run, "INFO: ")),
            reference["information"],
            "{name}: information"
        );
        assert_eq!(
            Value::Array(errors(&run, s.command)),
            reference["errors"],
            "{name}: errors"
        );
    }
}
