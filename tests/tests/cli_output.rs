//! Output formats: a JSON array, NDJSON and a CLIXML `<Objs>` document
//! (read back by psrpcore and by `psrp clixml`), `--depth`, a large
//! output that arrives whole and in order, and `--max-message-size`.

mod cli_support;

use std::process::{Command, Stdio};

use cli_support::{Peer, PeerOptions, Psrp};
use serde_json::{json, Value};

const ECHO: [&str; 6] = [
    "invoke",
    "Invoke-Echo",
    "--param-json",
    r#"Table={"k":1,"n":[1,2]}"#,
    "-p",
    "Name=x",
];

#[test]
fn ndjson_is_one_object_per_line() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args(["invoke", "Get-ChildItem", "-p", "Path=C:\\", "-o", "ndjson"])
        .run();
    run.expect_code(0);
    let items = run.ndjson();
    assert!(items.len() > 1, "{}", run.stdout);
    for item in &items {
        assert!(
            item["Name"].is_string() && item["FullName"].is_string(),
            "{item}"
        );
    }
    // The same objects as the JSON array.
    let array = Psrp::jea(peer)
        .args(["invoke", "Get-ChildItem", "-p", "Path=C:\\"])
        .run();
    array.expect_code(0);
    assert_eq!(array.json(), Value::Array(items));
}

#[test]
fn depth_cuts_nested_objects_to_their_text() {
    let peer = Peer::shared();
    let full = Psrp::jea(peer).args(ECHO).run();
    full.expect_code(0);
    assert_eq!(
        full.json()[0]["Parameters"],
        json!({"Table": {"k": 1, "n": [1, 2]}, "Name": "x"})
    );
    let cut = Psrp::jea(peer).args(ECHO).args(["--depth", "1"]).run();
    cut.expect_code(0);
    assert_eq!(
        cut.json()[0]["Parameters"],
        json!({"Table": "System.Collections.Hashtable", "Name": "x"})
    );
}

#[test]
fn clixml_output_reads_back_with_psrpcore_and_psrp_clixml() {
    let peer = Peer::shared();
    let xml = Psrp::jea(peer).args(ECHO).args(["-o", "clixml"]).run();
    xml.expect_code(0);
    assert!(xml.stdout.starts_with("<Objs "), "{}", xml.stdout);

    // psrpcore (an independent implementation) reads the document.
    let script = r#"
import sys, json
import xml.etree.ElementTree as ET
from psrpcore.types import deserialize
from psrpcore._crypto import PSRemotingCrypto
root = ET.fromstring(sys.stdin.read())
out = []
for child in root:
    for el in child.iter():
        el.tag = el.tag.split('}', 1)[-1]
    v = deserialize(child, PSRemotingCrypto())
    out.append({"types": list(v.PSTypeNames), "Command": v.Command,
                "Table_k": v.Parameters["Table"]["k"], "Name": v.Parameters["Name"]})
print(json.dumps(out))
"#;
    let python = psrp_tests::venv_python().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), xml.stdout.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen,
        json!([{
            "types": ["System.Management.Automation.PSCustomObject", "System.Object"],
            "Command": "Invoke-Echo", "Table_k": 1, "Name": "x",
        }])
    );

    // `psrp clixml` turns it into the same JSON as `-o json`.
    let back = Psrp::new()
        .args(["clixml", "-"])
        .stdin(xml.stdout.clone())
        .run();
    back.expect_code(0);
    let json = Psrp::jea(peer).args(ECHO).run();
    assert_eq!(back.json(), json.json());
}

/// Object `i` of Get-LargeOutput.
fn check_large(i: usize, item: &Value) {
    let name = format!("item-{i:010}.dat");
    assert_eq!(item["Name"], name.as_str(), "object {i}");
    assert_eq!(item["Length"], 4096);
    assert_eq!(item["LastWriteTime"], "2024-03-09T08:00:00+01:00");
}

#[test]
fn a_large_output_arrives_whole_and_in_order() {
    let peer = Peer::shared();
    const COUNT: usize = 10_000;
    let run = Psrp::jea(peer)
        .args([
            "invoke",
            "Get-LargeOutput",
            "--param-json",
            &format!("Count={COUNT}"),
            "-o",
            "ndjson",
        ])
        .run();
    run.expect_code(0);
    let items = run.ndjson();
    assert_eq!(items.len(), COUNT);
    for (i, item) in items.iter().enumerate() {
        check_large(i, item);
    }

    let run = Psrp::jea(peer)
        .args(["invoke", "Get-LargeOutput", "--param-json", "Count=2000"])
        .run();
    run.expect_code(0);
    let items = run.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 2000);
    for (i, item) in items.iter().enumerate() {
        check_large(i, item);
    }
}

#[test]
fn empty_output_is_an_empty_array_or_nothing() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args(["invoke", "Set-PSDebug", "-s", "Off"])
        .run();
    run.expect_code(0);
    assert_eq!(run.stdout, "[]\n");
    let run = Psrp::jea(peer)
        .args(["invoke", "Set-PSDebug", "-s", "Off", "-o", "ndjson"])
        .run();
    run.expect_code(0);
    assert_eq!(run.stdout, "");
}

#[test]
fn a_closed_stdout_stops_the_pipeline() {
    use std::io::{BufRead, BufReader, Read};
    let peer = Peer::shared();
    let mut child = Psrp::jea(peer)
        .args([
            "invoke",
            "Get-LargeOutput",
            "--param-json",
            "Count=100000",
            "-o",
            "ndjson",
        ])
        .spawn();
    // Read one object, then close the pipe, as `| head -1` does.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    check_large(0, &serde_json::from_str(&first).unwrap());
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("psrp: stdout was closed; the pipeline was stopped"),
        "{stderr}"
    );
    // The remaining objects were dropped, not logged.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A message over `--max-message-size` fails the pipeline with an error
/// that names the limit and the option (exit status 2), and the shell is
/// still deleted.
#[test]
fn a_message_over_the_size_limit_fails_clearly_and_the_shell_is_deleted() {
    let peer = Peer::start(&PeerOptions::default()).expect("a private test peer");
    // Invoke-Echo sends back an object holding the 100 KB string.
    let data = format!("Data={}", "x".repeat(100_000));
    let run = Psrp::jea(&peer)
        .args([
            "invoke",
            "Invoke-Echo",
            "-p",
            &data,
            "--max-message-size",
            "1M",
        ])
        .run();
    run.expect_code(0);
    assert_eq!(
        run.json()[0]["Parameters"]["Data"].as_str().map(str::len),
        Some(100_000)
    );
    let run = Psrp::jea(&peer)
        .env("PSRP_MAX_MESSAGE_SIZE", "64K")
        .args(["invoke", "Invoke-Echo", "-p", &data])
        .run();
    run.expect_code(2);
    assert_eq!(run.json(), json!([]));
    let line = run
        .stderr_lines("psrp: Invoke-Echo: ")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no error line:\n{}", run.stderr));
    for part in [
        "reading pipeline output: a message from the server (object ",
        ") is larger than the limit of 65536 bytes (max_message_size): ",
        "raise --max-message-size (PSRP_MAX_MESSAGE_SIZE, profile key max_message_size)",
    ] {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
    // psrp deleted both shells itself.
    assert_eq!(peer.open_shells().unwrap(), 0);
    let deletes = peer
        .operations()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "Delete" && o["status"] == 200)
        .count();
    assert_eq!(deletes, 2);
}
