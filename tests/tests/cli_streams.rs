//! Every PowerShell stream reaches stderr as log lines with its level, in
//! the order the server wrote them; `--log-level` filters; exit status 1
//! when errors were written, 2 on a terminating error.

mod cli_support;

use cli_support::{Peer, Psrp};
use serde_json::json;

const ALL_STREAMS: &str = "\
$VerbosePreference = 'Continue'
$DebugPreference = 'Continue'
Write-Output 1
Write-Warning 'careful'
Write-Verbose 'details'
Write-Debug 'internals'
Write-Information 'for your information'
Write-Progress -Activity 'Copying' -Status 'file 1 of 2' -PercentComplete 50
Write-Progress -Activity 'Copying' -Status 'file 1 of 2' -PercentComplete 50
Write-Progress -Activity 'Copying' -Status 'done' -Completed
Write-Error 'it broke' -ErrorId 'Broke.1' -TargetObject 'C:\\x'
Write-Output 2
";

/// stderr lines without psrp's own messages.
fn stream_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !l.starts_with("psrp:")).collect()
}

#[test]
fn every_stream_with_its_level_in_order() {
    let peer = Peer::shared();
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos"])
        .args(["script", "-"])
        .stdin(ALL_STREAMS)
        .run();
    // Error records were written: the pipeline ran but had errors.
    run.expect_code(1);
    assert_eq!(run.json(), json!([1, 2]));
    assert_eq!(
        stream_lines(&run.stderr),
        [
            "WARNING: careful",
            "VERBOSE: details",
            "DEBUG: internals",
            "INFO: for your information",
            // A repeated progress record is shown once.
            "PROGRESS: Copying: file 1 of 2 (50%)",
            "PROGRESS: Copying: done (completed)",
            "ERROR: Write-Error : it broke",
            "ERROR:     + CategoryInfo          : NotSpecified (C:\\x:String) [Write-Error], WriteErrorException",
            "ERROR:     + FullyQualifiedErrorId : Broke.1",
            "ERROR:     + TargetObject          : C:\\x",
        ],
        "{}",
        run.stderr
    );
}

#[test]
fn log_level_filters_from_the_most_severe() {
    let peer = Peer::shared();
    let levels = |level: &str| {
        let run = Psrp::peer(peer)
            .conn(["-a", "kerberos"])
            .args(["script", "-", "--log-level", level])
            .stdin(ALL_STREAMS)
            .run();
        run.expect_code(1);
        assert_eq!(
            run.json(),
            json!([1, 2]),
            "output does not depend on the log level"
        );
        let mut seen: Vec<String> = stream_lines(&run.stderr)
            .iter()
            .filter_map(|l| l.split_once(':').map(|(lvl, _)| lvl.to_owned()))
            .collect();
        seen.dedup();
        seen
    };
    assert_eq!(levels("error"), ["ERROR"]);
    assert_eq!(levels("warning"), ["WARNING", "ERROR"]);
    assert_eq!(levels("information"), ["WARNING", "INFO", "ERROR"]);
    assert_eq!(levels("progress"), ["WARNING", "INFO", "PROGRESS", "ERROR"]);
    assert_eq!(
        levels("verbose"),
        ["WARNING", "VERBOSE", "INFO", "PROGRESS", "ERROR"]
    );
    assert!(levels("none").is_empty());

    // The same from the environment.
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos"])
        .env("PSRP_LOG_LEVEL", "warning")
        .args(["script", "-"])
        .stdin(ALL_STREAMS)
        .run();
    assert!(!run.stderr.contains("DEBUG:") && run.stderr.contains("WARNING: careful"));
}

#[test]
fn multi_line_messages_are_prefixed_on_every_line() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args(["invoke", "Write-Warning", "-p", "Message=first\r\nsecond"])
        .run();
    run.expect_code(0);
    assert_eq!(
        stream_lines(&run.stderr),
        ["WARNING: first", "WARNING: second"]
    );
}

#[test]
fn a_terminating_error_exits_2_and_keeps_earlier_output() {
    let peer = Peer::shared();
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos"])
        .args(["invoke", "Invoke-Throw", "-p", "Message=disk on fire"])
        .run();
    run.expect_code(2);
    assert_eq!(run.json(), json!([]));
    assert!(
        run.stderr
            .starts_with("psrp: Invoke-Throw failed: disk on fire\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("RuntimeException"), "{}", run.stderr);

    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos"])
        .args(["script", "-"])
        .stdin("Write-Output 'before'\nInvoke-Throw 'stop here'\nWrite-Output 'after'\n")
        .run();
    run.expect_code(2);
    assert_eq!(run.json(), json!(["before"]));
    assert!(
        run.stderr.contains("psrp: the script failed: stop here"),
        "{}",
        run.stderr
    );
}

#[test]
fn read_host_fails_instead_of_waiting_for_input() {
    let peer = Peer::shared();
    let run = Psrp::jea(peer)
        .args(["invoke", "Read-Host", "-p", "Prompt=Name"])
        .run();
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "the command asked for the field \"Name\" (Read-Host -Prompt) and no answer was left: \
             give answers with --answer TEXT"
        ),
        "the refusal must say what was asked and how to answer it:\n{}",
        run.stderr
    );
}

/// Escape sequences a hostile server could send: clear the screen, retitle
/// the window (OSC ... BEL), CSI as one C1 character, DEL.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{7f}";
/// How psrp shows them on stderr.
const SHOWN: &str = "\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\x7f";

/// Whether `text` holds a control character a terminal acts on (C0 but
/// newline and tab, DEL, C1).
fn has_controls(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(c, '\0'..='\x08' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}'))
}

#[test]
fn escape_sequences_from_the_server_are_shown_not_sent_to_the_terminal() {
    let peer = Peer::shared();
    // The script carries raw ESC characters: our encoder sends them as
    // `_x001B_`, the peer decodes them and its psrpcore serializer sends
    // them back as `_x001B_` in every record.
    let script = format!(
        "$VerbosePreference = 'Continue'\n$DebugPreference = 'Continue'\n\
         Write-Output 'out{HOSTILE}'\n\
         Write-Warning 'warn{HOSTILE}'\n\
         Write-Verbose 'verb{HOSTILE}'\n\
         Write-Debug 'dbg{HOSTILE}'\n\
         Write-Information 'info{HOSTILE}'\n\
         Write-Progress -Activity 'act{HOSTILE}' -Status 'st{HOSTILE}' -PercentComplete 5\n\
         Write-Error 'err{HOSTILE}' -TargetObject 'tgt{HOSTILE}'\n\
         Read-Host -Prompt 'host{HOSTILE}'\n"
    );
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos"])
        .args(["script", "-"])
        .stdin(script)
        .run();
    // Read-Host fails on the non-interactive host.
    assert!(matches!(run.code(), 1 | 2), "{run:?}");
    assert!(
        !has_controls(&run.stderr),
        "raw controls on stderr: {:?}",
        run.stderr
    );
    for line in [
        format!("WARNING: warn{SHOWN}"),
        format!("VERBOSE: verb{SHOWN}"),
        format!("DEBUG: dbg{SHOWN}"),
        format!("INFO: info{SHOWN}"),
        format!("PROGRESS: act{SHOWN}: st{SHOWN} (5%)"),
        format!("ERROR: Write-Error : err{SHOWN}"),
        format!("ERROR:     + TargetObject          : tgt{SHOWN}"),
    ] {
        assert!(
            run.stderr.lines().any(|l| l == line),
            "no line {line:?} in\n{}",
            run.stderr
        );
    }
    // Read-Host's prompt (a field name from the server) in psrp's refusal.
    assert!(
        run.stderr
            .contains(&format!("the field \"host{SHOWN}\" (Read-Host -Prompt)")),
        "{}",
        run.stderr
    );
    // JSON escapes them (and still means the same string).
    assert!(!has_controls(&run.stdout), "{:?}", run.stdout);
    assert_eq!(run.json(), json!([format!("out{HOSTILE}")]));

    // A terminating error's message lands in psrp's own line.
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos"])
        .args([
            "invoke",
            "Invoke-Throw",
            "-p",
            &format!("Message=boom{HOSTILE}"),
        ])
        .run();
    run.expect_code(2);
    assert!(!has_controls(&run.stderr), "{:?}", run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("psrp: Invoke-Throw failed: boom{SHOWN}\n")),
        "{}",
        run.stderr
    );
}
