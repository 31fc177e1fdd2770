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
    assert!(matches!(run.code(), 1 | 2), "{run:?}");
    assert!(
        run.stderr.contains("not interactive"),
        "the refusal must say why:\n{}",
        run.stderr
    );
}
