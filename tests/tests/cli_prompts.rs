//! `psrp` answering the remote command's prompts: `--answer` values, then
//! the lines of `--answers-file`, in order; choices by label, hot key,
//! index or default; secrets sent as SecureStrings (the peer, psrpcore's
//! server, decrypts them and reports their SHA-256) and never printed; no
//! answer and no terminal: the pipeline is stopped with a message naming
//! what was asked and how to answer it, and the shell is deleted.

mod cli_support;

use std::time::Duration;

use cli_support::{Peer, PeerOptions, Psrp};
use serde_json::json;
use sha2::{Digest, Sha256};

const SECRET: &str = "cli-host-Pässw0rd-🔑";
const PASSWORD: &str = "cred-Pässw0rd";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn answers_from_options_then_file_answer_every_prompt_in_order() {
    let peer = Peer::shared();
    let script = "Read-Host\n\
                  Read-Host -Prompt Name\n\
                  Read-Host -AsSecureString | Get-SecretHash\n\
                  Get-Credential | Get-SecretHash\n\
                  Remove-Item -Path C:\\Temp\\report.txt -Confirm\n\
                  Remove-Item -Path C:\\Temp\\data.csv -Confirm\n\
                  Get-ChildItem -Path C:\\Temp -Name\n";
    let mut psrp = Psrp::peer(peer);
    let file = psrp.home().join("answers.txt");
    // The secrets, the user name, then "" (the default choice: Yes) and "N".
    std::fs::write(&file, format!("{SECRET}\nPEER\\alice\n{PASSWORD}\n\nN\n")).unwrap();
    let run = psrp
        .conn(["--auth", "kerberos", "-l", "debug"])
        .args([
            "script", "-", "-o", "ndjson", "--answer", "a line", "--answer", "Bob",
        ])
        .arg("--answers-file")
        .arg(&file)
        .stdin(script)
        .run();
    run.expect_code(0);
    assert_eq!(
        run.ndjson(),
        [
            json!("a line"),
            json!("Bob"),
            json!({"Length": SECRET.chars().count(), "Sha256": sha256_hex(SECRET)}),
            json!({"UserName": "PEER\\alice", "Length": PASSWORD.chars().count(), "Sha256": sha256_hex(PASSWORD)}),
            json!("Logs"),
            json!("data.csv"),
            json!("readonly.log"),
        ]
    );
    for secret in [SECRET, PASSWORD, "Pässw0rd"] {
        assert!(!run.stderr.contains(secret), "stderr: {}", run.stderr);
    }
    // Secrets from a file: no warning.
    assert!(!run.stderr.contains("WARNING"), "{}", run.stderr);
}

#[test]
fn choices_by_label_index_and_accept_defaults_and_a_loud_secret_on_the_command_line() {
    let peer = Peer::shared();
    let script = "Remove-Item -Path C:\\Temp\\report.txt -Confirm\n\
                  Remove-Item -Path C:\\Temp\\data.csv -Confirm\n\
                  Get-ChildItem -Path C:\\Temp -Name\n";
    let run = Psrp::peer(peer)
        .conn(["--auth", "kerberos"])
        .args([
            "script", "-", "-o", "ndjson", "--answer", "No", "--answer", "n",
        ])
        .stdin(script)
        .run();
    run.expect_code(0);
    let names = run.ndjson();
    assert!(
        names.contains(&json!("report.txt")) && names.contains(&json!("data.csv")),
        "{names:?}"
    );

    let run = Psrp::peer(peer)
        .conn(["--auth", "kerberos"])
        .args([
            "script",
            "-",
            "-o",
            "ndjson",
            "--answer",
            "2",
            "--accept-defaults",
        ])
        .stdin(script)
        .run();
    run.expect_code(0);
    let names = run.ndjson();
    assert!(
        names.contains(&json!("report.txt")) && !names.contains(&json!("data.csv")),
        "{names:?}"
    );

    let run = Psrp::peer(peer)
        .conn(["--auth", "kerberos"])
        .args([
            "invoke",
            "Read-Host",
            "-s",
            "AsSecureString",
            "--answer",
            SECRET,
        ])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!(["System.Security.SecureString"]));
    assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("was answered from --answer, which other users can see"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_answer_and_no_terminal_stops_the_pipeline_and_deletes_the_shell() {
    let peer = Peer::start(&PeerOptions::default()).unwrap();
    let run = Psrp::peer(&peer)
        .conn(["--auth", "kerberos"])
        .args(["script", "-", "--answer", "PEER\\alice"])
        .stdin("Get-Credential\nGet-Date\n")
        .run();
    run.expect_code(2);
    assert_eq!(run.json(), json!([]), "nothing after the prompt ran");
    assert!(
        run.stderr.contains(
            "psrp: the script: the command asked for a credential (Get-Credential): the password \
             of \"PEER\\alice\" and no answer was left: give answers with --answer TEXT \
             (repeatable) or --answers-file FILE, or run psrp with stdin and stderr on a \
             terminal; the pipeline was stopped"
        ),
        "{}",
        run.stderr
    );
    assert!(peer.wait_no_open_shells(Duration::from_secs(5)).unwrap());

    let run = Psrp::peer(&peer)
        .conn(["--auth", "kerberos"])
        .args([
            "invoke",
            "Get-Date",
            "--answers-file",
            "/nonexistent/answers",
        ])
        .run();
    run.expect_code(64);
    assert!(
        run.stderr
            .contains("--answers-file /nonexistent/answers: cannot read it"),
        "{}",
        run.stderr
    );
}
