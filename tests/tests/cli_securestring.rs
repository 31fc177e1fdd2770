//! `psrp invoke --secure-param`: the value comes from an environment
//! variable or stdin, goes out as a SecureString encrypted with the session
//! key (the peer, psrpcore's server, decrypts it and reports its SHA-256),
//! and never shows in stdout or stderr, whose log level is the most verbose
//! (debug, the default). Received SecureStrings print as their type name.

mod cli_support;

use cli_support::{Peer, Psrp};
use sha2::{Digest, Sha256};

const SECRET: &str = "cli-Pässw0rd-🔑-secret";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn assert_secret_nowhere(run: &cli_support::Run) {
    assert!(!run.stdout.contains(SECRET), "stdout: {}", run.stdout);
    assert!(!run.stderr.contains(SECRET), "stderr: {}", run.stderr);
    assert!(!run.stderr.contains("Pässw0rd"), "stderr: {}", run.stderr);
}

#[test]
fn secure_param_from_an_environment_variable_over_kerberos_http() {
    let peer = Peer::shared();
    let run = Psrp::peer(peer)
        .conn(["--auth", "kerberos", "-l", "debug"])
        .args([
            "invoke",
            "Get-SecretHash",
            "--secure-param",
            "Secret=env:APP_SECRET",
        ])
        .env("APP_SECRET", SECRET)
        .run();
    run.expect_code(0);
    let out = run.json();
    assert_eq!(out[0]["Sha256"], sha256_hex(SECRET), "{out}");
    assert_eq!(out[0]["Length"], SECRET.chars().count(), "{out}");
    assert_secret_nowhere(&run);
}

#[test]
fn secure_param_from_stdin_over_https() {
    let peer = Peer::shared();
    let info = peer.info();
    let run = Psrp::new()
        .conn([
            "-H",
            &info.host,
            "--scheme",
            "https",
            "--port",
            &info.https_port.to_string(),
            "--ca-file",
            &info.ca_file.display().to_string(),
            "--auth",
            "basic",
            "-u",
            &info.user,
        ])
        .env("PSRP_PASSWORD", &info.password)
        .args(["invoke", "Get-SecretHash", "--secure-param", "Secret=stdin"])
        .stdin(format!("{SECRET}\nnot read\n"))
        .run();
    run.expect_code(0);
    assert_eq!(run.json()[0]["Sha256"], sha256_hex(SECRET));
    assert_secret_nowhere(&run);
}

#[test]
fn received_secure_strings_print_as_their_type_name() {
    let peer = Peer::shared();
    // No SecureString goes out, so psrp has no session key: the peer sends
    // PUBLIC_KEY_REQUEST and waits; psrp answers once the pipeline's
    // Receive comes back empty (after --operation-timeout).
    let run = Psrp::peer(peer)
        .conn(["--auth", "kerberos", "--operation-timeout", "2"])
        .args([
            "invoke",
            "New-SecureSecret",
            "-p",
            "Text=text-from-argv",
            "-p",
            "Count=2",
        ])
        .run();
    run.expect_code(0);
    assert_eq!(
        run.json(),
        serde_json::json!([
            "System.Security.SecureString",
            "System.Security.SecureString"
        ])
    );
    assert!(!run.stdout.contains("text-from-argv"), "{}", run.stdout);
    assert!(!run.stderr.contains("text-from-argv"), "{}", run.stderr);
    // -o clixml writes the ciphertext, never the text.
    let run = Psrp::peer(peer)
        .conn(["--auth", "kerberos", "-o", "clixml"])
        .args([
            "invoke",
            "New-SecureSecret",
            "--secure-param",
            "Text=env:APP_SECRET",
        ])
        .env("APP_SECRET", SECRET)
        .run();
    run.expect_code(0);
    assert!(run.stdout.contains("<SS>"), "{}", run.stdout);
    assert_secret_nowhere(&run);
}

#[test]
fn secure_param_values_are_never_taken_from_argv() {
    for (spec, needle) in [
        ("Secret=hunter2", "env:VARIABLE or stdin"),
        (
            "Secret=env:PSRP_TEST_UNSET_SECRET",
            "PSRP_TEST_UNSET_SECRET is not set",
        ),
    ] {
        let run = Psrp::new()
            .args([
                "invoke",
                "Get-SecretHash",
                "-H",
                "localhost",
                "--secure-param",
                spec,
            ])
            .run();
        run.expect_code(64);
        assert!(run.stderr.contains(needle), "{}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    }
    let run = Psrp::new()
        .args([
            "invoke",
            "Get-SecretHash",
            "-H",
            "localhost",
            "--password-stdin",
            "--secure-param",
            "Secret=stdin",
        ])
        .run();
    run.expect_code(64);
    assert!(
        run.stderr.contains("cannot both read stdin"),
        "{}",
        run.stderr
    );
}
