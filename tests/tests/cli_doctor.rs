//! `psrp doctor` against the test peer broken in one way at a time: each
//! check names that cause and its fix, with the right exit status; the
//! healthy peer passes every check; `--json` parses and holds no secret.
//! Also: a failed `psrp invoke` ends with the same advice (one table).
//!
//! Broken servers are two private instances sharing the realm (one with
//! `--ntlm-only --jea-denied`, one with `--stale-keytab --max-envelope-kb
//! 2`), each test using the one fault it is about; broken clients are the
//! realm's Kerberos variants (`kerberos_variants` in the peer's info).

mod cli_support;

use std::sync::OnceLock;

use cli_support::{Peer, PeerOptions, Psrp, Run};
use serde_json::Value;

/// `-a ntlm -u testuser` with the password.
fn ntlm(p: &mut Psrp, peer: &Peer) {
    let info = peer.info();
    p.conn(["-a", "ntlm", "-u", &info.user])
        .env("PSRP_PASSWORD", &info.password);
}

fn doctor(p: &mut Psrp) -> Run {
    p.arg("doctor").run()
}

/// The report line of a check (`✓ group name detail`).
#[track_caller]
fn line<'a>(run: &'a Run, mark: &str, group: &str, name: &str) -> &'a str {
    let prefix = format!("{mark} {group:<8} {name:<18} ");
    run.stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{}", run.stdout))
}

/// A failed check: its line, cause and fix; asserts exit status 3.
#[track_caller]
fn failure(run: &Run, group: &str, name: &str) -> (String, String, String) {
    run.expect_code(3);
    let l = line(run, "✗", group, name);
    let mut rest = run.stdout.lines().skip_while(|x| *x != l).skip(1);
    let cause = rest.next().unwrap_or_default();
    let fix = rest.next().unwrap_or_default();
    assert!(
        cause.starts_with("    cause: ") && fix.starts_with("    fix:   "),
        "{}",
        run.stdout
    );
    contains(&run.stdout, "result: psrp cannot run commands here");
    (l.to_owned(), cause.to_owned(), fix.to_owned())
}

#[track_caller]
fn contains(text: &str, want: &str) {
    assert!(text.contains(want), "{want:?} not in {text:?}");
}

fn variant(peer: &Peer, key: &str) -> String {
    peer.info().raw["kerberos_variants"][key]
        .as_str()
        .unwrap_or_else(|| panic!("peer info has no kerberos_variants.{key}"))
        .to_owned()
}

/// `--ntlm-only --jea-denied --cbt proxy` (the channel binding only
/// matters over HTTPS, the other faults are tested over HTTP).
fn ntlm_only_peer() -> &'static Peer {
    static P: OnceLock<Peer> = OnceLock::new();
    P.get_or_init(|| {
        Peer::start(&PeerOptions {
            ntlm_only: true,
            jea_denied: true,
            cbt_proxy: true,
            ..PeerOptions::default()
        })
        .unwrap()
    })
}

/// `--stale-keytab --max-envelope-kb 2`.
fn stale_keytab_peer() -> &'static Peer {
    static P: OnceLock<Peer> = OnceLock::new();
    P.get_or_init(|| {
        Peer::start(&PeerOptions {
            stale_keytab: true,
            max_envelope_kb: 2,
            ..PeerOptions::default()
        })
        .unwrap()
    })
}

/// Kerberos over HTTP into JEA and over HTTPS: every check passes (no
/// failure, no warning), the shell opens, exit 0.
#[test]
fn healthy_peer_passes_every_check() {
    let peer = Peer::shared();
    let info = peer.info();
    let run = doctor(&mut Psrp::jea(peer));
    run.expect_code(0);
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.starts_with('✗') || l.starts_with('!')),
        "{}",
        run.stdout
    );
    for (group, name) in [
        ("network", "name resolution"),
        ("network", "tcp connect"),
        ("network", "listener"),
        ("auth", "offered schemes"),
        ("kerberos", "ticket cache"),
        ("kerberos", "credentials"),
        ("kerberos", "target realm"),
        ("kerberos", "service ticket"),
        ("winrm", "identify"),
        ("winrm", "authentication"),
        ("winrm", "message encryption"),
        ("winrm", "configuration"),
        ("winrm", "psrp version"),
    ] {
        line(&run, "✓", group, name);
    }
    contains(
        line(&run, "✓", "kerberos", "target realm"),
        "HTTP/localhost@PEER.TEST",
    );
    contains(
        line(&run, "✓", "kerberos", "service ticket"),
        "aes256-cts-hmac-sha1-96",
    );
    contains(line(&run, "✓", "winrm", "psrp version"), "protocol 2.3");
    contains(
        line(&run, "·", "winrm", "language mode"),
        "NoLanguage (JEA)",
    );
    // The count is what the peer's JEA role makes visible.
    let visible = info.raw["jea_visible_commands"].as_array().unwrap().len();
    assert!(visible > 1);
    contains(
        line(&run, "✓", "winrm", "commands"),
        &format!("{visible} visible to this user (JEA: only these can run); psrp commands"),
    );
    assert!(run
        .stdout
        .ends_with("result: a command can run (0 failed, 0 warnings)\n"));

    // HTTPS: the certificate, TLS version and the channel binding hash the
    // peer itself computed for its certificate.
    let https = doctor(Psrp::kerberos(peer).conn([
        "-H",
        "localhost",
        "--scheme",
        "https",
        "--port",
        &info.https_port.to_string(),
        "--ca-file",
        info.ca_file.to_str().unwrap(),
        "-a",
        "kerberos",
    ]));
    https.expect_code(0);
    for name in ["handshake", "expiry", "name", "trust", "version"] {
        line(&https, "✓", "tls", name);
    }
    let cbt = info.raw["tls_server_end_point_sha256"].as_str().unwrap();
    contains(line(&https, "·", "tls", "channel binding"), cbt);
    contains(
        line(&https, "·", "tls", "certificate"),
        "localhost, 127.0.0.1, ::1",
    );
}

/// `--json`: one document with every check, for monitoring; the password
/// used (NTLM) appears nowhere.
#[test]
fn json_report_parses_and_holds_no_secret() {
    let peer = Peer::shared();
    let mut p = Psrp::peer(peer);
    ntlm(&mut p, peer);
    let run = p.args(["doctor", "--json"]).run();
    run.expect_code(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["exit_status"], 0);
    let checks = doc["checks"].as_array().unwrap();
    assert!(checks.len() >= 10);
    assert!(checks.iter().all(|c| c["status"] != "fail"));
    assert!(checks
        .iter()
        .any(|c| c["group"] == "ntlm" && c["check"] == "target info"));
    let password = &peer.info().password;
    assert!(!run.stdout.contains(password.as_str()) && !run.stderr.contains(password.as_str()));
}

#[test]
fn untrusted_certificate_names_the_missing_ca() {
    let peer = Peer::shared();
    let info = peer.info();
    let run = doctor(Psrp::kerberos(peer).conn([
        "-H",
        "localhost",
        "--scheme",
        "https",
        "--port",
        &info.untrusted_cert_port.unwrap().to_string(),
        "--ca-file",
        info.ca_file.to_str().unwrap(),
        "-a",
        "kerberos",
    ]));
    let (l, cause, fix) = failure(&run, "tls", "trust");
    contains(&l, "self-signed");
    contains(&cause, "anyone could have presented it");
    contains(&fix, "--ca-file");
}

#[test]
fn wrong_name_certificate_lists_its_names() {
    let peer = Peer::shared();
    let info = peer.info();
    let run = doctor(Psrp::kerberos(peer).conn([
        "-H",
        "localhost",
        "--scheme",
        "https",
        "--port",
        &info.wrong_host_cert_port.unwrap().to_string(),
        "--ca-file",
        info.ca_file.to_str().unwrap(),
    ]));
    let (l, cause, _) = failure(&run, "tls", "name");
    contains(&l, "wrong-host.peer.invalid");
    contains(&cause, "not issued for localhost");
}

#[test]
fn https_listener_on_the_http_port_and_the_other_way_round() {
    let peer = Peer::shared();
    let info = peer.info();
    let run = doctor(Psrp::kerberos(peer).conn([
        "-H",
        "localhost",
        "--port",
        &info.https_port.to_string(),
    ]));
    let (l, _, fix) = failure(&run, "network", "listener");
    contains(&l, "it is an HTTPS listener");
    contains(&fix, "--scheme https");
    let run = doctor(Psrp::kerberos(peer).conn([
        "-H",
        "localhost",
        "--scheme",
        "https",
        "--port",
        &info.http_port.to_string(),
    ]));
    let (l, _, fix) = failure(&run, "network", "listener");
    contains(&l, "answers plain HTTP");
    contains(&fix, "--scheme http");
}

#[test]
fn nothing_listening_is_connection_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = doctor(Psrp::new().conn([
        "-H",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "-a",
        "kerberos",
    ]));
    let (_, cause, _) = failure(&run, "network", "tcp connect");
    contains(&cause, "nothing listens on that port");
}

#[test]
fn basic_over_http_is_refused_and_why() {
    let peer = Peer::shared();
    let info = peer.info();
    let run = doctor(
        Psrp::peer(peer)
            .conn(["-a", "basic", "-u", &info.user])
            .env("PSRP_PASSWORD", &info.password),
    );
    run.expect_code(3);
    contains(
        &run.stdout,
        "the server does not offer Basic over HTTP: AllowUnencrypted is false on the server",
    );
    contains(
        line(&run, "✗", "auth", "basic over http"),
        "refuses Basic over plain HTTP",
    );
    assert!(!run.stdout.contains(info.password.as_str()));
}

#[test]
fn unknown_configuration_fault_is_decoded() {
    let peer = Peer::shared();
    let run = doctor(Psrp::peer(peer).conn(["-a", "kerberos", "-c", "No.Such.Endpoint"]));
    let (l, cause, fix) = failure(&run, "winrm", "configuration");
    contains(&l, "2150858811");
    contains(&cause, "is not registered on the server");
    contains(&fix, "Get-PSSessionConfiguration");
}

/// By IP address the SPN is HTTP/127.0.0.1, which the KDC does not know.
#[test]
fn spn_unknown_to_the_kdc() {
    let peer = Peer::shared();
    let run = doctor(Psrp::kerberos(peer).conn([
        "-H",
        "127.0.0.1",
        "--port",
        &peer.info().http_port.to_string(),
        "-a",
        "kerberos",
    ]));
    let (l, cause, fix) = failure(&run, "kerberos", "service ticket");
    contains(&l, "HTTP/127.0.0.1");
    contains(&cause, "the KDC does not know the service principal");
    contains(&fix, "setspn");
    // The realm's krb5.conf turns DNS canonicalization off: the name stays.
    contains(
        line(&run, "·", "network", "reverse dns"),
        "Kerberos asks for HTTP/127.0.0.1 (dns_canonicalize_hostname = false, rdns = false",
    );
}

/// With MIT's defaults (dns_canonicalize_hostname and rdns true) Kerberos
/// takes the reverse name of the address: doctor says which SPN that makes
/// before the KDC is asked, and the KDC then issues the ticket for it. By
/// address that is information (canonicalization is what makes it work);
/// by a name whose address has another PTR name it is a warning.
#[test]
fn reverse_dns_canonicalization_names_the_spn_kerberos_will_use() {
    let peer = Peer::shared();
    let info = peer.info();
    let conf = std::fs::read_to_string(info.raw["krb5_config"].as_str().unwrap()).unwrap();
    let canonicalizing: String = conf
        .lines()
        .filter(|l| {
            let k = l.trim_start();
            !k.starts_with("rdns") && !k.starts_with("dns_canonicalize_hostname")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(canonicalizing.contains("[libdefaults]"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("krb5.conf");
    std::fs::write(&file, canonicalizing).unwrap();
    // The name the system's resolver gives 127.0.0.1 (/etc/hosts).
    let reverse = loopback_reverse_name();
    let run_on = |host: &str| {
        doctor(
            Psrp::kerberos(peer)
                .conn([
                    "-H",
                    host,
                    "--port",
                    &info.http_port.to_string(),
                    "-a",
                    "kerberos",
                ])
                .env("KRB5_CONFIG", &file),
        )
    };
    let run = run_on("127.0.0.1");
    let l = line(&run, "·", "network", "reverse dns");
    contains(l, &format!("127.0.0.1 is {reverse} (PTR)"));
    contains(
        l,
        &format!("Kerberos asks for HTTP/{reverse}, not HTTP/127.0.0.1"),
    );
    contains(l, "dns_canonicalize_hostname = true, rdns = true");
    // No "HTTP/127.0.0.1 is rarely registered" warning: it is not asked for.
    assert!(!run.stdout.contains("! network  name resolution"));
    if reverse == "localhost" {
        // The realm knows HTTP/localhost: MIT did what doctor said.
        contains(
            line(&run, "✓", "kerberos", "target realm"),
            "HTTP/localhost@PEER.TEST",
        );
        line(&run, "✓", "kerberos", "service ticket");
        run.expect_code(0);
    }
    // Another name of the loopback address (/etc/hosts often has the
    // machine's name there): the SPN is the PTR name, not the one given.
    let Some(alias) = loopback_alias(&reverse) else {
        eprintln!("no second name for 127.0.0.1 in /etc/hosts: the warning is not checked");
        return;
    };
    let run = run_on(&alias);
    let l = line(&run, "!", "network", "reverse dns");
    contains(
        l,
        &format!("the SPN will be HTTP/{reverse}, not HTTP/{alias}"),
    );
    let fix = run
        .stdout
        .lines()
        .skip_while(|x| *x != l)
        .nth(2)
        .unwrap_or_default();
    contains(
        fix,
        "set rdns = false and dns_canonicalize_hostname = false",
    );
    contains(
        fix,
        &format!("fix the PTR record of 127.0.0.1 to name {alias}"),
    );
}

/// A name /etc/hosts gives 127.0.0.1 other than its reverse name.
fn loopback_alias(reverse: &str) -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter(|l| l.split_whitespace().next() == Some("127.0.0.1"))
        .flat_map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .find(|n| !n.eq_ignore_ascii_case(reverse))
}

/// The reverse name of 127.0.0.1 as the system resolver gives it.
fn loopback_reverse_name() -> String {
    let out = std::process::Command::new("getent")
        .args(["hosts", "127.0.0.1"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("getent hosts 127.0.0.1 names the loopback address")
        .to_ascii_lowercase()
}

#[test]
fn clock_skew_is_named_with_the_measured_offset() {
    let peer = Peer::shared();
    let skewed = variant(peer, "ccache_skewed");
    let run = doctor(
        Psrp::peer(peer)
            .conn(["-a", "kerberos"])
            .env("KRB5CCNAME", format!("FILE:{skewed}")),
    );
    let (l, cause, fix) = failure(&run, "kerberos", "service ticket");
    contains(&l, "Clock skew too great");
    contains(&cause, "KDC time offset of +3600 s");
    contains(&fix, "synchronise this machine's clock");
}

#[test]
fn expired_ticket() {
    let peer = Peer::shared();
    let expired = variant(peer, "ccache_expired");
    // Its lifetime is one second from the peer's start.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = doctor(
        Psrp::peer(peer)
            .conn(["-a", "kerberos"])
            .env("KRB5CCNAME", format!("FILE:{expired}")),
    );
    let (l, cause, fix) = failure(&run, "kerberos", "ticket cache");
    contains(&l, "expired on");
    contains(&cause, "has expired");
    contains(&fix, "kinit");
}

#[test]
fn enctype_mismatch() {
    let peer = Peer::shared();
    let info = peer.info();
    let conf = variant(peer, "krb5_config_enctype_mismatch");
    let run = doctor(
        Psrp::peer(peer)
            .conn(["-a", "kerberos", "-u", &info.principal])
            .env("PSRP_PASSWORD", &info.password)
            .env("KRB5_CONFIG", &conf),
    );
    let (l, cause, _) = failure(&run, "kerberos", "credentials");
    contains(&l, "KDC has no support for encryption type");
    contains(&cause, "share no encryption type");
}

#[test]
fn wrong_password_is_preauthentication_failed() {
    let peer = Peer::shared();
    let run = doctor(
        Psrp::peer(peer)
            .conn(["-a", "kerberos", "-u", &peer.info().principal])
            .env("PSRP_PASSWORD", "Not-the-Password-1"),
    );
    let (l, cause, _) = failure(&run, "kerberos", "credentials");
    contains(&l, "Preauthentication failed");
    contains(&cause, "the KDC refused the password");
    assert!(!run.stdout.contains("Not-the-Password-1"));
}

/// Negotiate with a password and broken Kerberos: doctor says it will
/// fall back to NTLM and why, and the shell opens with NTLM.
#[test]
fn negotiate_falls_back_to_ntlm_and_says_why() {
    let peer = Peer::shared();
    let info = peer.info();
    let conf = variant(peer, "krb5_config_enctype_mismatch");
    let run = doctor(
        Psrp::peer(peer)
            .conn(["-a", "negotiate", "-u", &info.user])
            .env("PSRP_PASSWORD", &info.password)
            .env("KRB5_CONFIG", &conf),
    );
    run.expect_code(0);
    contains(
        line(&run, "!", "kerberos", "negotiate"),
        "will fall back to NTLM",
    );
    contains(
        line(&run, "✓", "winrm", "authentication"),
        "NTLM, because Kerberos failed",
    );
}

#[test]
fn server_that_accepts_only_ntlm() {
    let peer = ntlm_only_peer();
    let run = doctor(Psrp::peer(peer).conn(["-a", "kerberos"]));
    // The KDC issued the ticket; the server refused it.
    line(&run, "✓", "kerberos", "service ticket");
    let (_, cause, fix) = failure(&run, "winrm", "authentication");
    contains(&cause, "the server refused it: it accepts only NTLM");
    contains(&fix, "-a ntlm");
}

#[test]
fn user_not_in_the_jea_role() {
    let peer = ntlm_only_peer();
    let mut p = Psrp::peer(peer);
    ntlm(&mut p, peer);
    let run = doctor(p.conn(["-c", "JEA.Maintenance"]));
    let (l, cause, fix) = failure(&run, "winrm", "configuration");
    contains(&l, "Access is denied");
    contains(&cause, "not in its permissions or in any JEA role");
    contains(&fix, "RoleDefinitions");
}

/// Behind a TLS-terminating proxy or load balancer the server checks the
/// channel binding against its own certificate, not the one psrp saw:
/// NTLM over HTTPS is refused with 401 although the same user and password
/// open a shell over HTTP. Doctor names the binding, and how to confirm it.
#[test]
fn channel_binding_mismatch_behind_a_proxy() {
    let peer = ntlm_only_peer();
    let info = peer.info();
    let mut p = Psrp::peer(peer);
    ntlm(&mut p, peer);
    let run = doctor(p.conn([
        "-H",
        "localhost",
        "--scheme",
        "https",
        "--port",
        &info.https_port.to_string(),
        "--ca-file",
        info.ca_file.to_str().unwrap(),
    ]));
    line(&run, "✓", "tls", "trust");
    let (l, cause, fix) = failure(&run, "winrm", "authentication");
    contains(&l, "HTTP 401");
    contains(&cause, "most likely a channel binding mismatch");
    contains(&cause, "TLS-terminating proxy or load balancer");
    contains(&cause, "CbtHardeningLevel is Strict");
    contains(&fix, "--scheme http");
    contains(&fix, "CbtHardeningLevel");
    // The peer refused the binding, not the password (its log says so), and
    // the same credentials work over HTTP, where no binding is involved.
    let log = peer.log().unwrap();
    assert!(
        log.iter().any(|e| e["kind"] == "auth"
            && e["transport"] == "https"
            && e["result"] == "refused"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("channel bindings do not match"))),
        "{log:?}"
    );
    let mut p = Psrp::peer(peer);
    ntlm(&mut p, peer);
    doctor(&mut p).expect_code(0);
}

#[test]
fn stale_keytab_on_the_server() {
    let peer = stale_keytab_peer();
    let run = doctor(Psrp::peer(peer).conn(["-a", "kerberos"]));
    line(&run, "✓", "kerberos", "service ticket");
    let (_, cause, _) = failure(&run, "winrm", "authentication");
    contains(&cause, "its account cannot decrypt the ticket");
}

#[test]
fn tiny_max_envelope_size_on_the_server() {
    let peer = stale_keytab_peer();
    let mut p = Psrp::peer(peer);
    ntlm(&mut p, peer);
    let run = doctor(&mut p);
    let (l, cause, fix) = failure(&run, "winrm", "max envelope size");
    contains(&l, "exceeds the server limit of 2048 bytes");
    contains(&cause, "larger than the server's MaxEnvelopeSizekb");
    contains(&fix, "--max-envelope-size");
}

/// A failed invoke ends with the advice table's cause and fix, and points
/// to `psrp doctor`.
#[test]
fn failed_invoke_ends_with_the_cause_the_fix_and_a_hint_to_run_doctor() {
    let peer = Peer::shared();
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos", "-c", "No.Such.Configuration"])
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(3);
    let hint = run.stderr_lines("psrp: cause: ");
    assert_eq!(hint.len(), 1, "{}", run.stderr);
    assert!(
        hint[0].contains("session configuration (-c) is not registered on the server")
            && hint[0].contains("Get-PSSessionConfiguration")
            && hint[0].contains("`psrp doctor`"),
        "{}",
        run.stderr
    );
}
