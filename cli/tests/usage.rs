//! Usage and configuration errors exit with status 64 and say what is wrong,
//! before anything is sent anywhere; `--help` documents the exit statuses.
//! (Runs against the peer are in tests/tests/cli_*.rs.)

use std::process::{Command, Output, Stdio};

fn psrp(args: &[&str]) -> Output {
    psrp_env(args, &[])
}

fn psrp_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = std::env::temp_dir().join(format!("psrp-usage-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    Command::new(env!("CARGO_BIN_EXE_psrp"))
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run psrp")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn usage_error(args: &[&str], env: &[(&str, &str)], expect: &str) {
    let o = psrp_env(args, env);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(64), "{args:?}: {err}");
    assert!(
        err.contains(expect),
        "{args:?}: expected {expect:?} in:\n{err}"
    );
    assert!(o.stdout.is_empty(), "{args:?} wrote to stdout");
}

#[test]
fn help_documents_the_exit_statuses() {
    for args in [
        &["--help"][..],
        &["invoke", "--help"],
        &["script", "--help"],
    ] {
        let o = psrp(args);
        assert_eq!(o.status.code(), Some(0));
        let text = String::from_utf8(o.stdout).unwrap();
        for needle in [
            "Exit status:",
            "0    success",
            "1    the pipeline ran but wrote errors",
            "2    the pipeline failed",
            "3    connection, authentication or transport failure",
            "64   usage or configuration error",
        ] {
            assert!(text.contains(needle), "{args:?} help lacks {needle:?}");
        }
    }
    let o = psrp(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("psrp "));
}

#[test]
fn bad_command_lines_exit_64() {
    usage_error(&[], &[], "Usage: psrp");
    usage_error(&["invoke"], &[], "<COMMAND>");
    usage_error(&["invoke", "Get-Date", "--bogus"], &[], "--bogus");
    usage_error(&["invoke", "Get-Date", "-a", "digest"], &[], "digest");
    usage_error(
        &["invoke", "Get-Date", "-H", "h", "-p", "Path"],
        &[],
        "parameter 'Path' must be written Name=value",
    );
    usage_error(
        &["invoke", "Get-Date", "-H", "h", "--param-json", "N=[1,"],
        &[],
        "parameter 'N': invalid JSON",
    );
    usage_error(
        &["invoke", "Get-Date", "-H", "h", "--params", "[1]"],
        &[],
        "--params must be a JSON object",
    );
    usage_error(
        &["invoke", "X", "-H", "h", "-p", "A=1", "-s", "a"],
        &[],
        "parameter 'a' is given more than once",
    );
}

#[test]
fn bad_settings_exit_64_before_connecting() {
    usage_error(&["invoke", "Get-Date"], &[], "no host given");
    usage_error(
        &["invoke", "Get-Date", "-H", "a,http://b/wsman"],
        &[],
        "not a URL",
    );
    usage_error(
        &["invoke", "Get-Date", "-H", "h", "--throttle", "0"],
        &[],
        "--throttle must be at least 1",
    );
    usage_error(
        &["invoke", "Get-Date", "-H", "h", "--timeout", "0"],
        &[],
        "--timeout must be a positive number of seconds",
    );
    usage_error(
        &[
            "invoke",
            "Get-Date",
            "-H",
            "h",
            "-a",
            "kerberos",
            "--session-init",
            "Get-Process | Stop-Process",
        ],
        &[],
        "--session-init 'Get-Process | Stop-Process'",
    );
    usage_error(
        &[
            "invoke", "Get-Date", "-H", "a,b", "-a", "kerberos", "-o", "clixml",
        ],
        &[],
        "--output clixml is for one host",
    );
    // No password source and stdin is not a terminal: no prompt, a hint.
    usage_error(
        &["invoke", "Get-Date", "-H", "h", "-a", "ntlm", "-u", "bob"],
        &[],
        "ntlm authentication needs a password: set PSRP_PASSWORD, use --password-stdin",
    );
    usage_error(
        &["invoke", "Get-Date", "-H", "h", "-a", "basic"],
        &[],
        "basic authentication needs a user name",
    );
    usage_error(
        &["script", "-", "-H", "h", "--password-stdin"],
        &[],
        "--password-stdin cannot be used when the script is read from stdin",
    );
    usage_error(&["script", "-", "-H", "h"], &[], "the script - is empty");
    usage_error(
        &["script", "/nonexistent/x.ps1", "-H", "h"],
        &[],
        "cannot read the script /nonexistent/x.ps1",
    );
}

#[test]
fn profile_errors_name_the_file_and_profile() {
    let dir = std::env::temp_dir().join(format!("psrp-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, "[profiles.lab]\nhost = \"h\"\n").unwrap();
    let cfg_s = cfg.to_str().unwrap();
    usage_error(
        &["invoke", "Get-Date", "--config", cfg_s, "--profile", "prod"],
        &[],
        "profile 'prod' not found",
    );
    usage_error(
        &["invoke", "Get-Date"],
        &[("PSRP_CONFIG", cfg_s), ("PSRP_PROFILE", "prod")],
        "(known: lab)",
    );
    std::fs::write(&cfg, "[profiles.lab]\nhost = \"h\"\nauth = \"digest\"\n").unwrap();
    usage_error(
        &["invoke", "Get-Date", "--config", cfg_s, "--profile", "lab"],
        &[],
        "profile: auth 'digest' is not one of basic, ntlm, kerberos, negotiate",
    );
    std::fs::write(
        &cfg,
        "[profiles.lab]\nhost = \"h\"\npassword = \"hunter2\"\n",
    )
    .unwrap();
    let o = psrp(&["invoke", "Get-Date", "--config", cfg_s, "--profile", "lab"]);
    assert_eq!(o.status.code(), Some(64));
    let err = stderr(&o);
    assert!(err.contains("line 3") && err.contains("password"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "a password in the file is echoed: {err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
