//! `psrp commands` (GET_COMMAND_METADATA) against the peer's JEA endpoint,
//! `psrp invoke --check` with its per-endpoint cache, and the completion
//! scripts and man pages generated from the clap definitions.

mod cli_support;

use std::time::Duration;

use cli_support::{
    finish, signal, wait_for, Fault, FaultRule, Peer, PeerOptions, Psrp, RUN_TIMEOUT,
};
use serde_json::Value;

/// The commands `JEA.Maintenance` makes visible (tests/peer/runner.py, JEA_VISIBLE).
const JEA_VISIBLE: [&str; 16] = [
    "Get-ChildItem",
    "Get-Date",
    "Get-Item",
    "Get-LargeOutput",
    "Invoke-Echo",
    "Read-Host",
    "Restart-Computer",
    "Set-PSDebug",
    "Start-Sleep",
    "Write-Debug",
    "Write-Error",
    "Write-Information",
    "Write-Output",
    "Write-Progress",
    "Write-Verbose",
    "Write-Warning",
];

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect()
}

fn parameter<'a>(command: &'a Value, name: &str) -> &'a Value {
    command["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {command}"))
}

#[test]
fn commands_lists_exactly_the_visible_jea_commands_with_their_parameters() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer).arg("commands").run();
    run.expect_code(0);
    let list = run.json();
    assert_eq!(names(&list), JEA_VISIBLE, "sorted, ConvertTo-Json hidden");

    let item = &list[2];
    assert_eq!(item["Name"], "Get-Item");
    assert_eq!(item["CommandType"], "Cmdlet");
    assert_eq!(item["Namespace"], "Microsoft.PowerShell.Management");
    let path = parameter(item, "Path");
    assert_eq!(path["Type"], "System.String[]");
    assert_eq!(path["Switch"], false);
    assert_eq!(path["Common"], false);
    assert_eq!(parameter(item, "Force")["Switch"], true);
    let ea = parameter(item, "ErrorAction");
    assert_eq!(ea["Aliases"], serde_json::json!(["ea"]));
    assert_eq!(ea["Common"], true);
    let restart = &list[6];
    assert_eq!(
        parameter(restart, "ComputerName")["Aliases"],
        serde_json::json!(["CN", "__SERVER", "Server", "IPAddress"])
    );
    // Every object has the documented keys and nothing else.
    for c in list.as_array().unwrap() {
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "Name",
                "CommandType",
                "Namespace",
                "HelpUri",
                "OutputType",
                "Parameters"
            ],
            "{c}"
        );
        for p in c["Parameters"].as_array().unwrap() {
            let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                ["Name", "Type", "Aliases", "Switch", "Dynamic", "Common"],
                "{p}"
            );
        }
    }
    // A function that takes $args declares no parameters.
    assert_eq!(list[4]["Parameters"], serde_json::json!([]));
}

#[test]
fn a_pattern_filters_and_the_table_and_ndjson_forms() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args(["commands", "write-w*", "Get-D*", "ConvertTo-Json"])
        .run();
    run.expect_code(0);
    assert_eq!(names(&run.json()), ["Get-Date", "Write-Warning"]);

    let run = Psrp::jea(peer)
        .args(["commands", "Get-Item", "-o", "table"])
        .run();
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "Get-Item  (Cmdlet, Microsoft.PowerShell.Management)"
    );
    assert!(
        lines.contains(&"    -Path        <String[]>"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"    -Force       [switch]"),
        "{}",
        run.stdout
    );
    assert!(
        lines.contains(&"    + 11 common parameters (--common lists them)"),
        "{}",
        run.stdout
    );

    let run = Psrp::jea(peer)
        .args(["commands", "Write-*", "-o", "ndjson"])
        .run();
    run.expect_code(0);
    assert_eq!(run.ndjson().len(), 7);
}

/// Operations of the peer after `seq`: (WS-Man actions, metadata requests,
/// Restart-Computer calls).
fn since(peer: &Peer, seq: u64) -> (Vec<String>, usize, usize) {
    let log = peer.log_since(seq).unwrap();
    let actions = log
        .iter()
        .filter(|e| e["kind"] == "wsman")
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect();
    let kind = |k: &str| log.iter().filter(|e| e["kind"] == k).count();
    (actions, kind("command_metadata"), kind("restart"))
}

#[test]
fn check_catches_misses_before_sending_and_caches_the_metadata() {
    // An instance of its own: its log holds only what this test does.
    let peer = Peer::start(&PeerOptions::default()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let psrp = || {
        let mut p = Psrp::jea(&peer);
        p.env("XDG_CACHE_HOME", cache.path());
        p
    };

    // First run: no cache; the metadata is read on the pool, the misspelled
    // parameter is caught, and no command is sent.
    let mark = peer.last_seq().unwrap();
    let run = psrp()
        .args(["invoke", "Restart-Computer", "-s", "Forse", "--check"])
        .run();
    run.expect_code(64);
    assert!(
        run.stderr.contains(
            "--check: Restart-Computer has no parameter -Forse; did you mean -Force?; nothing was sent"
        ),
        "{}",
        run.stderr
    );
    let (actions, metadata, restarts) = since(&peer, mark);
    assert_eq!(metadata, 1, "{actions:?}");
    assert_eq!(restarts, 0);
    let commands = actions.iter().filter(|a| *a == "Command").count();
    assert_eq!(commands, 1, "only the metadata pipeline: {actions:?}");
    assert!(actions.contains(&"Delete".to_owned()), "{actions:?}");
    let files: Vec<_> = std::fs::read_dir(cache.path().join("psrp").join("commands"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(
        !text.contains(&peer.info().password),
        "no secret in the cache"
    );

    // Second run: from the cache, a wrong type is caught with no request at all.
    let mark = peer.last_seq().unwrap();
    let run = psrp()
        .args(["invoke", "Get-LargeOutput", "-p", "Count=many", "--check"])
        .run();
    run.expect_code(64);
    assert!(
        run.stderr
            .contains("-Count of Get-LargeOutput takes Int32; the string \"many\" is not a number"),
        "{}",
        run.stderr
    );
    let (actions, metadata, _) = since(&peer, mark);
    assert!(actions.is_empty(), "nothing sent: {actions:?}");
    assert_eq!(metadata, 0);

    // An unknown command: the status of a command not found.
    let run = psrp().args(["invoke", "Restart-Computr", "--check"]).run();
    run.expect_code(2);
    assert!(
        run.stderr.contains("did you mean Restart-Computer?"),
        "{}",
        run.stderr
    );

    // A correct invocation passes the cached check and runs: one Command,
    // no metadata request.
    let mark = peer.last_seq().unwrap();
    let run = psrp()
        .args([
            "invoke",
            "Restart-Computer",
            "-s",
            "force",
            "-p",
            "cn=srv1",
            "--check",
        ])
        .run();
    run.expect_code(0);
    let (actions, metadata, restarts) = since(&peer, mark);
    assert_eq!(metadata, 0, "served from the cache");
    assert_eq!(restarts, 1);
    assert_eq!(actions.iter().filter(|a| *a == "Command").count(), 1);

    // A function that declares no parameters takes any (into $args).
    let run = psrp()
        .args(["invoke", "Invoke-Echo", "-p", "Anything=1", "--check"])
        .run();
    run.expect_code(0);
    assert_eq!(run.json()[0]["Parameters"]["Anything"], "1");

    // --refresh reads the metadata again, then runs the command.
    let mark = peer.last_seq().unwrap();
    let run = psrp()
        .args(["invoke", "Get-Date", "--check", "--refresh"])
        .run();
    run.expect_code(0);
    let (actions, metadata, _) = since(&peer, mark);
    assert_eq!(metadata, 1);
    assert_eq!(actions.iter().filter(|a| *a == "Command").count(), 2);

    // Another configuration of the same host has its own cache entry.
    let mark = peer.last_seq().unwrap();
    let run = Psrp::peer(&peer)
        .env("XDG_CACHE_HOME", cache.path())
        .args([
            "invoke",
            "ConvertTo-Json",
            "-p",
            "InputObject=x",
            "--check",
            "--auth",
            "kerberos",
        ])
        .run();
    run.expect_code(0);
    let (_, metadata, _) = since(&peer, mark);
    assert_eq!(metadata, 1, "Microsoft.PowerShell is not JEA.Maintenance");
}

#[test]
fn commands_interrupted_while_reading_deletes_the_shell() {
    let peer = Peer::start(&PeerOptions::default()).unwrap();
    // The metadata pipeline's Command is held up: Ctrl-C comes while psrp waits for it.
    peer.add_fault(&FaultRule::new(Fault::Delay { ms: 3000 }, Some("Command")))
        .unwrap();
    let child = Psrp::jea(&peer).arg("commands").spawn();
    assert!(wait_for(Duration::from_secs(30), || peer
        .open_shells()
        .unwrap()
        == 1));
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let run = finish(child, RUN_TIMEOUT);
    run.expect_code(130);
    assert!(
        run.stderr.contains("interrupted (SIGINT)"),
        "{}",
        run.stderr
    );
    assert_eq!(peer.open_shells().unwrap(), 0, "the shell was deleted");
}

fn subcommands() -> Vec<String> {
    let help = Psrp::new().arg("--help").run();
    help.expect_code(0);
    // The "Commands:" block of clap's help, so that subcommands added later
    // are covered without touching this test.
    help.stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A name is indented by two spaces; wrapped descriptions by more.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn completions_and_man_pages_cover_every_subcommand() {
    // Every subcommand comes from clap's own list (`psrp --help`); the names
    // below only prove that parsing found them all (a new subcommand is
    // covered without being added here).
    let subs = subcommands();
    for expected in [
        "invoke",
        "script",
        "doctor",
        "receive",
        "jobs",
        "stop",
        "remove",
        "clixml",
        "commands",
        "completions",
        "man",
    ] {
        assert!(subs.iter().any(|s| s == expected), "{subs:?}");
    }
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = Psrp::new().args(["completions", shell]).run();
        run.expect_code(0);
        for sub in &subs {
            assert!(run.stdout.contains(sub.as_str()), "{shell}: no {sub}");
        }
        assert!(run.stdout.contains("configuration-name"), "{shell}");
    }
    let run = Psrp::new().arg("man").run();
    run.expect_code(0);
    assert!(run.stdout.starts_with(".ie"), "roff: {}", &run.stdout[..80]);
    assert!(run.stdout.contains(".TH psrp 1"), "{}", &run.stdout[..200]);
    for sub in &subs {
        assert!(
            run.stdout.contains(&format!("psrp\\-{sub}")),
            "man: no {sub}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let run = Psrp::new()
        .args(["man", "--dir"])
        .arg(dir.path().join("man1"))
        .run();
    run.expect_code(0);
    for sub in &subs {
        let page = dir.path().join("man1").join(format!("psrp-{sub}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        assert!(text.contains(&format!(".TH psrp-{sub} 1")), "{page:?}");
    }
    assert!(dir.path().join("man1").join("psrp.1").is_file());
}
