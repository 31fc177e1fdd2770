//! The Airflow job through the `psrp` binary: Kerberos over HTTP into the
//! JEA.Maintenance endpoint, a session-init command, one cmdlet with
//! parameters, JSON on stdout and the debug trace on stderr; and what a
//! scheduler sees when the command is not allowed.

mod cli_support;

use cli_support::{Peer, Psrp};
use serde_json::json;

#[test]
fn restart_computer_force_with_session_init_trace() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args([
            "invoke",
            "Restart-Computer",
            "-s",
            "Force",
            "--session-init",
            "Set-PSDebug -Trace 1",
        ])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!([]), "Restart-Computer has no output");
    // Set-PSDebug -Trace 1 in the same runspace traces the command.
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "DEBUG:     1+  >>>> Restart-Computer -Force"),
        "no trace line:\n{}",
        run.stderr
    );

    // The peer ran it in JEA.Maintenance with -Force as a true switch.
    let restarts = peer.restarts().unwrap();
    let restarts = restarts.as_array().unwrap();
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    let r = &restarts[0];
    assert_eq!(r["configuration"], "JEA.Maintenance");
    assert_eq!(r["force"], true);
    assert_eq!(r["force_form"], "true", "-Force must arrive as <B>true</B>");

    // Every operation of that shell: Kerberos, over HTTP, encrypted; and
    // the shell was deleted at the end.
    let shell = r["shell_id"].as_str().unwrap();
    let ops = peer.operations_of(shell).unwrap();
    let actions: Vec<&str> = ops.iter().filter_map(|o| o["action"].as_str()).collect();
    assert_eq!(actions.first(), Some(&"Create"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"Delete"), "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| **a == "Command").count(),
        2,
        "session init + the command: {actions:?}"
    );
    for op in &ops {
        assert_eq!(op["transport"], "http", "{op}");
        assert_eq!(op["encrypted"], true, "{op}");
        assert_eq!(op["auth"]["mechanism"], "kerberos", "{op}");
    }
    assert!(!peer.shell_open(shell).unwrap());
}

#[test]
fn invoke_echo_with_every_parameter_kind() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args([
            "invoke",
            "Invoke-Echo",
            "-p",
            "Text=a b = c",
            "--param-json",
            "Count=3",
            "--param-json",
            "Big=5000000000",
            "--param-json",
            "Ratio=2.5",
            "--param-json",
            "Flag=false",
            "--param-json",
            "Nothing=null",
            "--param-json",
            r#"List=[1,"two",null]"#,
            "--param-json",
            r#"Table={"k":1,"n":[1,2]}"#,
            "-s",
            "Force",
            "--params",
            r#"{"Confirm": null, "FromParams": "x"}"#,
            "--",
            "pos1",
            "-5",
        ])
        .run();
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out.as_array().map(Vec::len), Some(1), "{out}");
    let echo = &out[0];
    assert_eq!(
        echo["Parameters"],
        json!({
            "Confirm": true, "FromParams": "x", "Text": "a b = c", "Count": 3,
            "Big": 5_000_000_000i64, "Ratio": 2.5, "Flag": false, "Nothing": null,
            "List": [1, "two", null], "Table": {"k": 1, "n": [1, 2]}, "Force": true,
        })
    );
    // The CLIXML types the peer received.
    assert_eq!(
        echo["Types"],
        json!({
            "Confirm": "B", "FromParams": "S", "Text": "S", "Count": "I32", "Big": "I64",
            "Ratio": "Db", "Flag": "B", "Nothing": "Nil", "List": "Obj:System.Object[]",
            "Table": "Obj:System.Collections.Hashtable", "Force": "B",
        })
    );
    assert_eq!(echo["Arguments"], json!(["pos1", "-5"]));
    assert_eq!(echo["ArgumentTypes"], json!(["S", "S"]));
}

#[test]
fn a_command_not_visible_in_jea_fails_with_status_2() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer).args(["invoke", "Get-Process"]).run();
    run.expect_code(2);
    assert_eq!(run.json(), json!([]), "stdout stays a valid (empty) array");
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("psrp: Get-Process failed: The term 'Get-Process' is not recognized"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("+ FullyQualifiedErrorId : CommandNotFoundException"),
        "{}",
        run.stderr
    );

    // Scripts are refused by the NoLanguage endpoint.
    let run = Psrp::jea(peer)
        .args(["script", "-"])
        .stdin("Get-Date\n")
        .run();
    run.expect_code(2);
    assert!(
        run.stderr.contains("psrp: the script failed:") && run.stderr.contains("ScriptsNotAllowed"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_failing_session_init_command_stops_before_the_command() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args([
            "invoke",
            "Invoke-Echo",
            "--session-init",
            "Set-PSDebug -Trace 7",
        ])
        .run();
    run.expect_code(2);
    assert_eq!(run.json(), json!([]), "the command must not run");
    assert!(
        run.stderr
            .contains("psrp: session-init command 1 (Set-PSDebug) failed: Set-PSDebug : Cannot validate argument on parameter 'Trace'"),
        "{}",
        run.stderr
    );
}
