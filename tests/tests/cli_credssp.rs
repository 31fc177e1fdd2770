//! CredSSP (`-a credssp`) against the peer, whose acceptor is pyspnego's
//! CredSSP server: TLS inside the HTTP headers, NTLM (or Kerberos from the
//! ticket cache) inside TLS, the public-key binding, then the delegated
//! password, which the peer checks against its user. Over HTTP every message is sealed with the CredSSP TLS
//! session (in 16 KiB parts when longer); over HTTPS TLS alone protects
//! them. Failures: a wrong password (the server's errorCode), CredSSP not
//! enabled on the server, and older server versions (2: the raw key
//! binding without errorCode; 5: the nonce hash).

mod cli_support;

use cli_support::{Peer, PeerOptions, Psrp, Run};
use serde_json::Value;

/// `psrp invoke Write-Output` with `-a credssp` over HTTP or HTTPS; the
/// object is larger than 16 KiB, so requests and responses take several
/// sealed parts over HTTP.
fn run(peer: &Peer, https: bool, password: &str, big: &str) -> Run {
    let info = peer.info();
    let mut p = Psrp::new();
    p.conn(["-H", &info.host, "-a", "credssp"]);
    p.conn(["-u", &format!("PEER\\{}", info.user)]);
    if https {
        p.conn(["--scheme", "https", "--port", &info.https_port.to_string()]);
        p.conn(["--ca-file", info.ca_file.to_str().unwrap()]);
    } else {
        p.conn(["--port", &info.http_port.to_string()]);
    }
    p.env("PSRP_PASSWORD", password);
    p.args([
        "invoke",
        "Write-Output",
        "-p",
        &format!("InputObject={big}"),
    ])
    .run()
}

#[track_caller]
fn assert_no_password(run: &Run, password: &str) {
    assert!(
        !run.stdout.contains(password) && !run.stderr.contains(password),
        "the password was printed"
    );
}

/// One test on the shared peer: the checks read its log, which parallel
/// tests would interleave.
#[test]
fn credssp_on_the_shared_peer() {
    let peer = Peer::shared();
    for https in [false, true] {
        runs_a_command(peer, https);
    }
    kerberos_inside_credssp(peer);
    a_wrong_password_is_refused_with_the_servers_error_code(peer);
    a_profile_chooses_credssp(peer);
    the_help_says_it_hands_over_the_password();
    delegate_with_credssp_is_a_usage_error(peer);
}

fn runs_a_command(peer: &Peer, https: bool) {
    let seq = peer.last_seq().unwrap();
    let big = "x".repeat(40_000);
    let r = run(peer, https, &peer.info().password, &big);
    r.expect_code(0);
    assert_eq!(r.json(), serde_json::json!([big]), "https={https}");
    assert_no_password(&r, &peer.info().password);
    let oks: Vec<Value> = peer
        .log_kind_since(seq, "auth")
        .unwrap()
        .into_iter()
        .filter(|a| a["result"] == "ok")
        .collect();
    assert!(!oks.is_empty(), "no authentication in the peer's log");
    for a in &oks {
        assert_eq!(a["scheme"], "CredSSP", "{a}");
        assert_eq!(a["mechanism"], "ntlm", "{a}");
        assert_eq!(a["credssp_version"], 6, "{a}");
        // The peer received (and checked) the delegated credentials.
        assert_eq!(
            a["delegated"].as_str().map(str::to_lowercase),
            Some(format!("peer\\{}", peer.info().user).to_lowercase()),
            "{a}"
        );
    }
    let ops = peer.log_kind_since(seq, "wsman").unwrap();
    assert!(ops.len() >= 4, "{ops:?}");
    for o in &ops {
        assert_eq!(o["auth"]["scheme"], "CredSSP", "{o}");
        assert_eq!(o["transport"], if https { "https" } else { "http" });
        // Sealed over HTTP, TLS alone over HTTPS.
        assert_eq!(o["encrypted"], !https, "{o}");
    }
    assert!(
        ops.iter()
            .any(|o| o["request_bytes"].as_u64() > Some(40_000)),
        "no request was larger than one 16 KiB part"
    );
}

fn a_wrong_password_is_refused_with_the_servers_error_code(peer: &Peer) {
    let seq = peer.last_seq().unwrap();
    let r = run(peer, false, "not-the-password", "x");
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("the server refused CredSSP authentication during the NTLM authentication"),
        "{}",
        r.stderr
    );
    // pyspnego's acceptor reports the NTSTATUS of a failed logon.
    assert!(r.stderr.contains("(0x"), "{}", r.stderr);
    assert_no_password(&r, "not-the-password");
    let auth = peer.log_kind_since(seq, "auth").unwrap();
    assert!(
        auth.iter()
            .any(|a| a["result"] == "refused" && a["scheme"] == "CredSSP"),
        "{auth:?}"
    );
    assert!(!auth.iter().any(|a| a["result"] == "ok"), "{auth:?}");
    assert!(peer.log_kind_since(seq, "wsman").unwrap().is_empty());
}

/// With a ticket of the user in the ticket cache, the inner exchange is
/// SPNEGO with Kerberos, as Windows clients do, with the TGT from the
/// ticket cache or, without one, from the password; `PEER\\user` above (a
/// principal of no realm krb5.conf knows) used NTLM.
fn kerberos_inside_credssp(peer: &Peer) {
    for from_cache in [true, false] {
        kerberos_inside_credssp_with(peer, from_cache);
    }
}

fn kerberos_inside_credssp_with(peer: &Peer, from_cache: bool) {
    let seq = peer.last_seq().unwrap();
    let info = peer.info();
    // The realm's krb5.conf and a ticket cache with the user's TGT.
    let mut p = Psrp::kerberos(peer);
    if !from_cache {
        p.env("KRB5CCNAME", "FILE:/nonexistent/ccache");
    }
    p.conn(["-H", &info.host, "--port", &info.http_port.to_string()]);
    p.conn(["-a", "credssp", "-u", &info.principal]);
    p.env("PSRP_PASSWORD", &info.password);
    let r = p.args(["invoke", "Get-Date"]).run();
    r.expect_code(0);
    let oks: Vec<Value> = peer
        .log_kind_since(seq, "auth")
        .unwrap()
        .into_iter()
        .filter(|a| a["result"] == "ok")
        .collect();
    assert!(!oks.is_empty());
    for a in &oks {
        assert_eq!(a["scheme"], "CredSSP", "{a}");
        assert_eq!(a["mechanism"], "kerberos", "from_cache={from_cache}: {a}");
        assert_eq!(a["credssp_version"], 6, "{a}");
        assert_eq!(
            a["delegated"].as_str(),
            Some(info.principal.as_str()),
            "{a}"
        );
    }
    assert!(peer
        .log_kind_since(seq, "wsman")
        .unwrap()
        .iter()
        .all(|o| o["encrypted"] == true && o["auth"]["mechanism"] == "kerberos"));
}

/// `auth = "credssp"` in a profile, the password from its `password_env`.
fn a_profile_chooses_credssp(peer: &Peer) {
    let seq = peer.last_seq().unwrap();
    let info = peer.info();
    let mut p = Psrp::new();
    let dir = p.home().join(".config/psrp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[profiles.dc]\nhost = \"{}\"\nport = {}\nauth = \"credssp\"\n\
             login = \"PEER\\\\{}\"\npassword_env = \"DC_PASSWORD\"\n",
            info.host, info.http_port, info.user
        ),
    )
    .unwrap();
    let r = p
        .env("DC_PASSWORD", &info.password)
        .conn(["-P", "dc"])
        .args(["invoke", "Get-Date"])
        .run();
    r.expect_code(0);
    let auth = peer.log_kind_since(seq, "auth").unwrap();
    assert!(
        auth.iter()
            .any(|a| a["result"] == "ok" && a["scheme"] == "CredSSP"),
        "{auth:?}"
    );
}

fn the_help_says_it_hands_over_the_password() {
    let r = Psrp::new().args(["invoke", "--help"]).run();
    r.expect_code(0);
    let text = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("credssp"), "{text}");
    assert!(
        text.contains("credssp hands your password to the server"),
        "{text}"
    );
}

fn delegate_with_credssp_is_a_usage_error(peer: &Peer) {
    let seq = peer.last_seq().unwrap();
    let mut p = Psrp::new();
    p.conn([
        "-H",
        &peer.info().host,
        "-a",
        "credssp",
        "-u",
        "u",
        "--delegate",
    ]);
    p.env("PSRP_PASSWORD", "pw");
    let r = p.args(["invoke", "Get-Date"]).run();
    r.expect_code(64);
    assert!(r.stderr.contains("always delegates"), "{}", r.stderr);
    assert!(peer.log_kind_since(seq, "request").unwrap().is_empty());
}

/// A server without CredSSP (WinRM's default service settings) does not
/// offer it: a clear refusal, no other method tried.
#[test]
fn credssp_refused_by_policy() {
    let peer = Peer::start(&PeerOptions {
        schemes: Some(vec!["Negotiate".into(), "Kerberos".into()]),
        ..PeerOptions::default()
    })
    .unwrap();
    let r = run(&peer, false, &peer.info().password, "x");
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("the server does not accept CredSSP (it offers: Negotiate, Kerberos)")
            && r.stderr.contains("Enable-WSManCredSSP -Role Server"),
        "{}",
        r.stderr
    );
    let requests: Vec<Value> = peer
        .log()
        .unwrap()
        .into_iter()
        .filter(|e| e["kind"] == "request")
        .collect();
    // One leg: the ClientHello, refused; Negotiate is never tried instead.
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["authorization"], "CredSSP");
}

/// Servers that speak an older CredSSP: the client (which sends 6) uses
/// theirs. 2 (over TLS 1.2): the raw public key binding, no errorCode, so
/// a wrong password is a bare 401; 5: the nonce and hash binding.
#[test]
fn credssp_older_server_versions() {
    for (version, tls12) in [(2, true), (5, false)] {
        let peer = Peer::start(&PeerOptions {
            credssp_version: Some(version),
            credssp_tls12: tls12,
            ..PeerOptions::default()
        })
        .unwrap();
        let r = run(&peer, false, &peer.info().password, "v");
        r.expect_code(0);
        assert_eq!(r.json(), serde_json::json!(["v"]));
        let oks: Vec<Value> = peer
            .log()
            .unwrap()
            .into_iter()
            .filter(|e| e["kind"] == "auth" && e["result"] == "ok")
            .collect();
        assert!(!oks.is_empty());
        assert!(
            oks.iter().all(|a| a["credssp_version"] == version),
            "{oks:?}"
        );
        if version == 2 {
            let r = run(&peer, false, "not-the-password", "v");
            r.expect_code(3);
            assert!(
                r.stderr.contains("rejected the credentials") && r.stderr.contains("credssp"),
                "{}",
                r.stderr
            );
        }
    }
}

/// A server whose public key binding does not match the certificate of
/// the inner TLS channel (a man in the middle with its own key): psrp
/// stops before sending the credentials.
#[test]
fn credssp_binding_mismatch_stops_before_the_credentials() {
    let peer = Peer::start(&PeerOptions {
        credssp_bad_binding: true,
        ..PeerOptions::default()
    })
    .unwrap();
    let r = run(&peer, false, &peer.info().password, "v");
    r.expect_code(3);
    assert!(
        r.stderr.contains("man in the middle") && r.stderr.contains("credentials were not sent"),
        "{}",
        r.stderr
    );
    let log = peer.log().unwrap();
    assert!(
        !log.iter()
            .any(|e| e["kind"] == "auth" && e["result"] == "ok"),
        "{log:?}"
    );
    assert!(!log.iter().any(|e| e["kind"] == "wsman"));
}
