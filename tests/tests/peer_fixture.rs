//! The test-peer fixture works: it starts the peer, reads its info, sets the
//! Kerberos environment, answers on the control endpoint, and the WinRM listener
//! behaves like WinRM at the HTTP level (401 + WWW-Authenticate, keep-alive,
//! WS-Man faults), checked byte for byte over a plain TcpStream.

use std::path::Path;
use std::time::Duration;

use psrp_tests::http::Connection;
use psrp_tests::{Fault, FaultRule, Peer, PeerOptions};

const TIMEOUT: Duration = Duration::from_secs(30);

fn basic(user: &str, password: &str) -> String {
    // Tiny base64 encoder: the tests crate stays free of codec dependencies.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn receive_envelope(shell_id: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:To>http://localhost/wsman</a:To><w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/powershell/Microsoft.PowerShell</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">153600</w:MaxEnvelopeSize><a:MessageID>uuid:11111111-2222-3333-4444-555555555555</a:MessageID><w:OperationTimeout>PT2S</w:OperationTimeout><w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></s:Header><s:Body><rsp:Receive><rsp:DesiredStream>stdout</rsp:DesiredStream></rsp:Receive></s:Body></s:Envelope>"#
    )
}

fn fault_code(body: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("WSManFault")?;
    let rest = &text[start..];
    let code = rest.split("Code=\"").nth(1)?.split('"').next()?;
    code.parse().ok()
}

#[test]
fn shared_peer_starts_and_sets_kerberos_env() {
    let peer = Peer::shared();
    let info = peer.info();
    assert_eq!(info.host, "localhost");
    assert_eq!(info.realm, "PEER.TEST");
    assert_eq!(info.principal, format!("{}@{}", info.user, info.realm));
    assert!(info.http_port != 0 && info.https_port != 0 && info.kdc_port != 0);
    assert!(info.untrusted_cert_port.is_some() && info.wrong_host_cert_port.is_some());
    for file in [&info.ca_file, &info.krb5_config, &info.ccache, &info.keytab] {
        assert!(Path::new(file).is_file(), "{} missing", file.display());
    }
    assert_eq!(
        std::env::var_os("KRB5_CONFIG").as_deref(),
        Some(info.krb5_config.as_os_str())
    );
    assert_eq!(
        std::env::var("KRB5CCNAME").ok(),
        Some(format!("FILE:{}", info.ccache.display()))
    );
    assert!(info.http_url().starts_with("http://localhost:"));
    assert_eq!(peer.open_shells().unwrap(), 0);
    let stats = peer.stats().unwrap();
    assert!(stats["cpu_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn http_listener_answers_401_like_winrm_and_keeps_the_connection() {
    let peer = Peer::shared();
    let info = peer.info();
    let mut conn = Connection::open(info.http_addr(), TIMEOUT).unwrap();

    // No credentials: 401 listing the schemes; Basic is not offered on HTTP
    // (AllowUnencrypted=false).
    let resp = conn.request("POST", "/wsman", &[], b"").unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header_values("WWW-Authenticate"),
        vec!["Negotiate", "Kerberos", "CredSSP"]
    );
    assert_eq!(resp.header("Content-Length"), Some("0"));

    // Same connection: correct Basic credentials are still refused over HTTP.
    let auth = basic(&info.user, &info.password);
    let resp = conn
        .request("POST", "/wsman", &[("Authorization", &auth)], b"")
        .unwrap();
    assert_eq!(resp.status, 401);

    // Same connection: a garbage Negotiate token is a 401, never a dropped connection.
    let resp = conn
        .request(
            "POST",
            "/wsman",
            &[("Authorization", "Negotiate AAAAAAAA")],
            b"",
        )
        .unwrap();
    assert_eq!(resp.status, 401);

    // And the first leg of a real handshake gets a challenge token back.
    let resp = conn
        .request(
            "POST",
            "/wsman",
            // NTLM NEGOTIATE_MESSAGE (flags: unicode, NTLM, always sign, extended security).
            &[(
                "Authorization",
                "Negotiate TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA=",
            )],
            b"",
        )
        .unwrap();
    assert_eq!(resp.status, 401);
    let challenge = resp.header("WWW-Authenticate").unwrap();
    assert!(
        challenge.starts_with("Negotiate TlRMTVNTUAACAAAA"),
        "{challenge}"
    );

    let refused = peer
        .log()
        .unwrap()
        .into_iter()
        .filter(|e| e["kind"] == "auth" && e["result"] == "refused")
        .count();
    assert!(refused >= 2);
}

#[test]
fn private_instance_with_fault_injection() {
    let shared = Peer::shared();
    let peer = Peer::start(&PeerOptions {
        allow_unencrypted: true,
        ..PeerOptions::default()
    })
    .unwrap();
    let info = peer.info();
    assert_ne!(info.http_port, shared.info().http_port);
    assert_eq!(info.realm, shared.info().realm, "the realm is shared");
    assert_eq!(info.password, shared.info().password);

    let auth = basic(&info.user, &info.password);
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/soap+xml;charset=UTF-8"),
    ];
    let mut conn = Connection::open(info.http_addr(), TIMEOUT).unwrap();

    // Malformed XML: HTTP 500 with a WS-Man fault (ERROR_WSMAN_INVALID_XML).
    let resp = conn
        .request("POST", "/wsman", &headers, b"<not xml")
        .unwrap();
    assert_eq!(resp.status, 500);
    assert_eq!(fault_code(&resp.body), Some(2150858819));

    // Unknown shell: the fault WinRM sends (ERROR_WSMAN_UNEXPECTED_SELECTORS).
    let envelope = receive_envelope("00000000-0000-0000-0000-000000000001");
    let resp = conn
        .request("POST", "/wsman", &headers, envelope.as_bytes())
        .unwrap();
    assert_eq!(resp.status, 500);
    assert_eq!(fault_code(&resp.body), Some(2150858843));
    assert!(
        String::from_utf8_lossy(&resp.body).contains("uuid:11111111-2222-3333-4444-555555555555")
    );

    // An injected 500 on the next Receive, with our own code.
    peer.add_fault(&FaultRule::new(
        Fault::Http500 { code: 2150858770 },
        Some("Receive"),
    ))
    .unwrap();
    assert_eq!(peer.control_get("/faults").unwrap()[0]["kind"], "http_500");
    let resp = conn
        .request("POST", "/wsman", &headers, envelope.as_bytes())
        .unwrap();
    assert_eq!(fault_code(&resp.body), Some(2150858770));
    assert_eq!(peer.control_get("/faults").unwrap(), serde_json::json!([]));

    // A dropped connection: the request is read, then the socket is closed.
    peer.add_fault(&FaultRule::new(Fault::DropConnection, None))
        .unwrap();
    assert!(conn
        .request("POST", "/wsman", &headers, envelope.as_bytes())
        .is_err());

    let ops = peer.operations().unwrap();
    assert_eq!(ops.len(), 4);
    assert_eq!(ops[3]["injected_fault"], "drop_connection");
    peer.clear_faults().unwrap();
    assert_eq!(peer.open_shells().unwrap(), 0);

    let pid = info.pid;
    drop(peer);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the private peer must exit when dropped"
    );
}
