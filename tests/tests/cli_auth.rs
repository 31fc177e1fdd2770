//! Authentication, TLS and connection failures through the `psrp` binary:
//! exit status 3 with a message that says what to check, passwords never
//! printed; the password sources; HTTPS with a CA file; the loud insecure
//! options.

mod cli_support;

use cli_support::{finish, wait_for, Peer, PeerOptions, Psrp, Run};
use serde_json::json;
use std::time::Duration;

/// Neither output mentions `secret`.
#[track_caller]
fn assert_not_printed(run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the password was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn wrong_password_exits_3_without_printing_it() {
    let peer = Peer::shared();
    let wrong = "Wr0ng-Pa55word-7f3a";
    for auth in ["ntlm", "negotiate", "basic-https"] {
        let mut p = Psrp::peer(peer);
        match auth {
            "basic-https" => {
                let info = peer.info();
                p.conn([
                    "--scheme",
                    "https",
                    "--port",
                    &info.https_port.to_string(),
                    "--ca-file",
                    info.ca_file.to_str().unwrap(),
                    "-a",
                    "basic",
                ]);
            }
            other => {
                p.conn(["-a", other]);
            }
        }
        let run = p
            .conn(["-u", &peer.info().user])
            .env("PSRP_PASSWORD", wrong)
            // No Kerberos ticket: Negotiate must fall back to NTLM.
            .env("KRB5CCNAME", "FILE:/nonexistent/ccache")
            .args(["invoke", "Get-Date"])
            .run();
        run.expect_code(3);
        assert!(
            run.stderr.contains("psrp: cannot connect:")
                && run.stderr.contains("the server rejected"),
            "{auth}: {}",
            run.stderr
        );
        assert_not_printed(&run, wrong);
        assert_eq!(run.stdout, "[]\n");
    }
}

#[test]
fn password_sources_stdin_env_and_profile() {
    let peer = Peer::shared();
    let info = peer.info();
    let password = info.password.clone();
    // --password-stdin.
    let run = Psrp::peer(peer)
        .conn(["-a", "ntlm", "-u", &info.user, "--password-stdin"])
        .args(["invoke", "Write-Output", "-p", "InputObject=stdin ok"])
        .stdin(format!("{password}\n"))
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!(["stdin ok"]));
    assert_not_printed(&run, &password);

    // PSRP_PASSWORD.
    let run = Psrp::peer(peer)
        .conn(["-a", "ntlm", "-u", &info.user])
        .env("PSRP_PASSWORD", &password)
        .args(["invoke", "Write-Output", "-p", "InputObject=env ok"])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!(["env ok"]));

    // A profile naming the variable that holds the password.
    let mut p = Psrp::new();
    let cfg = p.home().join("psrp.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.lab]\nhost = \"localhost\"\nport = {}\nauth = \"ntlm\"\nlogin = \"{}\"\npassword_env = \"LAB_PW\"\n",
            info.http_port, info.user
        ),
    )
    .unwrap();
    let run = p
        .env("LAB_PW", &password)
        .conn(["--config", cfg.to_str().unwrap(), "--profile", "lab"])
        .args(["invoke", "Write-Output", "-p", "InputObject=profile ok"])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!(["profile ok"]));
}

#[test]
fn https_needs_a_trusted_certificate() {
    let peer = Peer::shared();
    let info = peer.info();
    let https = |extra: &[&str]| {
        let mut p = Psrp::peer(peer);
        p.conn([
            "--scheme",
            "https",
            "--port",
            &info.https_port.to_string(),
            "-a",
            "basic",
            "-u",
            &info.user,
        ])
        .conn(extra)
        .env("PSRP_PASSWORD", &info.password)
        .args(["invoke", "Write-Output", "-p", "InputObject=tls ok"]);
        p.run()
    };
    let run = https(&["--ca-file", info.ca_file.to_str().unwrap()]);
    run.expect_code(0);
    assert_eq!(run.json(), json!(["tls ok"]));
    assert_eq!(run.stderr, "", "nothing to warn about");

    // The peer's CA is not in the system store.
    let run = https(&[]);
    run.expect_code(3);
    assert!(
        run.stderr.contains("certificate"),
        "the message must name the certificate:\n{}",
        run.stderr
    );

    // Accepting any certificate works, loudly.
    let run = https(&["--insecure-skip-tls-verify"]);
    run.expect_code(0);
    assert!(
        run.stderr.contains(
            "psrp: WARNING: --insecure-skip-tls-verify: server certificates are NOT checked"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn basic_over_http_needs_the_loud_opt_in() {
    let shared = Peer::shared();
    let user = shared.info().user.clone();
    let password = shared.info().password.clone();
    let run = Psrp::peer(shared)
        .conn(["-a", "basic", "-u", &user])
        .env("PSRP_PASSWORD", &password)
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(64);
    assert!(run.stderr.contains("clear text"), "{}", run.stderr);
    assert_not_printed(&run, &password);

    let open = Peer::start(&PeerOptions {
        allow_unencrypted: true,
        ..PeerOptions::default()
    })
    .unwrap();
    let run = Psrp::peer(&open)
        .conn(["-a", "basic", "-u", &user, "--allow-unencrypted"])
        .env("PSRP_PASSWORD", &password)
        .args(["invoke", "Write-Output", "-p", "InputObject=clear"])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!(["clear"]));
    assert!(
        run.stderr
            .contains("psrp: WARNING: --allow-unencrypted: messages may travel in clear text"),
        "{}",
        run.stderr
    );
}

#[test]
fn connection_failures_exit_3_and_say_what_to_check() {
    let peer = Peer::shared();
    // An unknown session configuration.
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos", "-c", "No.Such.Endpoint"])
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(3);
    assert!(
        run.stderr.contains("check the configuration name"),
        "{}",
        run.stderr
    );

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let run = Psrp::new()
        .conn([
            "-H",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-a",
            "kerberos",
        ])
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(3);
    assert!(
        run.stderr.contains("check the host, port and scheme"),
        "{}",
        run.stderr
    );

    // No Kerberos ticket.
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos"])
        .env("KRB5CCNAME", "FILE:/nonexistent/ccache")
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(3);
    assert!(run.stderr.contains("kinit"), "{}", run.stderr);
}

#[test]
fn environment_and_profile_settings_with_precedence() {
    let peer = Peer::shared();
    let info = peer.info();
    // Everything from the environment: the JEA endpoint hides Get-Process.
    let env_run = |extra_env: &[(&str, &str)], extra_args: &[&str]| {
        let mut p = Psrp::kerberos(peer);
        p.env("PSRP_HOST", "localhost")
            .env("PSRP_PORT", info.http_port.to_string())
            .env("PSRP_AUTH", "kerberos")
            .env("PSRP_CONFIGURATION_NAME", "JEA.Maintenance");
        for (k, v) in extra_env {
            p.env(k, v);
        }
        p.conn(extra_args)
            .args(["invoke", "Get-Process", "-o", "ndjson"]);
        p.run()
    };
    env_run(&[], &[]).expect_code(2);
    // A flag beats the environment.
    let run = env_run(&[], &["-c", "Microsoft.PowerShell"]);
    run.expect_code(0);
    assert!(!run.ndjson().is_empty());

    // A profile supplies what the environment does not; the environment
    // beats the profile.
    let with_profile = |extra: &str| {
        let p = Psrp::kerberos(peer);
        let dir = p.home().join(".config/psrp");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "[profiles.jea]\nhost = \"localhost\"\nport = {}\nauth = \"kerberos\"\n\
                 configuration_name = \"JEA.Maintenance\"\n{extra}",
                info.http_port
            ),
        )
        .unwrap();
        p
    };
    let run = with_profile("session_init = [\"Set-PSDebug -Trace 1\"]\n")
        .env("PSRP_PROFILE", "jea")
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(0);
    assert!(
        run.stderr.contains("DEBUG:     1+  >>>> Get-Date"),
        "the profile's session_init ran:\n{}",
        run.stderr
    );
    let run = with_profile("")
        .env("PSRP_CONFIGURATION_NAME", "Microsoft.PowerShell")
        .conn(["--profile", "jea"])
        .args(["invoke", "Get-Process", "-o", "ndjson"])
        .run();
    run.expect_code(0);
}

/// Negotiate with a user Kerberos cannot serve (`PEER\user`: a realm
/// krb5.conf does not know) falls back to NTLM and says so once, with the
/// Kerberos reason and how to fix or forbid it; `--no-ntlm-fallback` (or
/// its variable, or the profile key) turns it into exit status 3 with the
/// Kerberos reason.
#[test]
fn negotiate_fallback_to_ntlm_warns_once_or_is_refused() {
    let peer = Peer::shared();
    let info = peer.info();
    let netbios_user = format!("PEER\\{}", info.user);
    let warning = "psrp: WARNING: negotiate fell back to NTLM because Kerberos could not be used: ";
    let run = Psrp::peer(peer)
        .conn(["-u", &netbios_user])
        .env("PSRP_PASSWORD", &info.password)
        .args(["invoke", "Write-Output", "-p", "InputObject=via ntlm"])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!(["via ntlm"]));
    let warnings = run.stderr_lines(warning);
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("realm \"PEER\"")
            && warnings[0].contains("kinit")
            && warnings[0].contains("--no-ntlm-fallback"),
        "{}",
        warnings[0]
    );
    assert_not_printed(&run, &info.password);

    // Forbidden by the flag, the variable or the profile.
    let cfg_text = format!(
        "[profiles.strict]\nhost = \"localhost\"\nport = {}\nlogin = '{netbios_user}'\nno_ntlm_fallback = true\n",
        info.http_port
    );
    for how in ["flag", "env", "profile"] {
        let mut p = Psrp::kerberos(peer);
        match how {
            "flag" => p
                .conn(["-H", &info.host, "--port", &info.http_port.to_string()])
                .conn(["-u", &netbios_user, "--no-ntlm-fallback"]),
            "env" => p
                .conn(["-H", &info.host, "--port", &info.http_port.to_string()])
                .conn(["-u", &netbios_user])
                .env("PSRP_NO_NTLM_FALLBACK", "1"),
            _ => {
                let cfg = p.home().join("psrp.toml");
                std::fs::write(&cfg, &cfg_text).unwrap();
                p.conn(["--config", cfg.to_str().unwrap(), "-P", "strict"])
            }
        };
        let run = p
            .env("PSRP_PASSWORD", &info.password)
            .args(["invoke", "Get-Date"])
            .run();
        run.expect_code(3);
        assert!(
            run.stderr.contains("Negotiate could not use Kerberos (")
                && run.stderr.contains("realm \"PEER\"")
                && run.stderr.contains("falling back to NTLM is not allowed"),
            "{how}: {}",
            run.stderr
        );
        assert!(
            run.stderr_lines(warning).is_empty(),
            "{how}: {}",
            run.stderr
        );
        assert_not_printed(&run, &info.password);
    }
}

/// Negotiate with a user principal and a password, no ticket cache: psrp gets
/// a TGT with the password and SPNEGO uses Kerberos (it fell back to NTLM
/// when the credential held only a Kerberos element), with no warning.
#[test]
fn negotiate_with_a_password_uses_kerberos() {
    let peer = Peer::start(&PeerOptions::default()).expect("start a peer instance");
    let info = peer.info();
    let run = Psrp::peer(&peer)
        .conn(["-a", "negotiate", "-u", &info.principal])
        .env("PSRP_PASSWORD", &info.password)
        .env("KRB5CCNAME", "FILE:/nonexistent/ccache")
        .args(["invoke", "Write-Output", "-p", "InputObject=via kerberos"])
        .run();
    run.expect_code(0);
    assert_eq!(run.json(), json!(["via kerberos"]));
    assert!(!run.stderr.contains("fell back to NTLM"), "{}", run.stderr);
    assert_not_printed(&run, &info.password);
    let ok: Vec<_> = peer
        .log()
        .unwrap()
        .into_iter()
        .filter(|e| e["kind"] == "auth" && e["result"] == "ok")
        .collect();
    assert!(!ok.is_empty(), "no authentication logged");
    for e in &ok {
        assert_eq!(e["scheme"], "Negotiate", "{e}");
        assert_eq!(e["mechanism"], "kerberos", "{e}");
        assert_eq!(e["principal"], info.principal.as_str(), "{e}");
    }
}

/// `PSRP_PASSWORD`, and the variable a profile's `password_env` names, leave
/// psrp's environment as soon as they are read: `/proc/<pid>/environ` of a
/// running psrp (what `ps e` shows) holds neither the variable nor the
/// password, and no child could inherit them. The password still works.
#[test]
fn password_variables_leave_the_process_environment() {
    let peer = Peer::shared();
    let info = peer.info();
    for source in ["PSRP_PASSWORD", "LAB_PW"] {
        let mut p = Psrp::peer(peer);
        p.conn(["-a", "ntlm", "-u", &info.user]);
        if source == "LAB_PW" {
            let cfg = p.home().join("psrp.toml");
            std::fs::write(
                &cfg,
                "[profiles.lab]\nauth = \"ntlm\"\npassword_env = \"LAB_PW\"\n",
            )
            .unwrap();
            p.conn(["--config", cfg.to_str().unwrap(), "-P", "lab"]);
            // Also set, and the profile's variable still leaves.
            p.env("PSRP_PASSWORD", &info.password);
        }
        p.env(source, &info.password)
            .env("PSRP_TEST_MARKER", "still-here")
            .args(["invoke", "Start-Sleep", "-p", "Seconds=3"]);
        let child = p.spawn();
        let proc_dir = std::path::PathBuf::from(format!("/proc/{}", child.id()));
        // The async runtime's threads exist: startup (where the variables
        // are taken) is over.
        let started = wait_for(Duration::from_secs(20), || {
            std::fs::read_dir(proc_dir.join("task")).map_or(0, Iterator::count) > 1
        });
        let environ = std::fs::read(proc_dir.join("environ")).unwrap_or_default();
        let run = finish(child, cli_support::RUN_TIMEOUT);
        assert!(started, "psrp did not get going: {run:?}");
        run.expect_code(0);
        let entries: Vec<String> = environ
            .split(|b| *b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect();
        assert!(
            entries.iter().any(|e| e == "PSRP_TEST_MARKER=still-here"),
            "{source}: /proc/<pid>/environ was not read: {entries:?}"
        );
        for e in &entries {
            assert!(
                !e.starts_with("PSRP_PASSWORD") && !e.starts_with("LAB_PW"),
                "{source}: {} is still in /proc/<pid>/environ",
                e.split('=').next().unwrap_or_default()
            );
        }
        assert!(
            !String::from_utf8_lossy(&environ).contains(&info.password),
            "{source}: the password is still in /proc/<pid>/environ"
        );
    }
}
