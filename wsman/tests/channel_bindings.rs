//! tls-server-end-point against pypsrp's computation, for certificates
//! signed with every common algorithm (made by python cryptography/openssl).

mod support;

use std::process::Command;
use wsman::auth::channel_bindings::ChannelBindings;

#[test]
fn matches_pypsrp_for_every_signature_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(support::python())
        .arg(support::support_file("cbt.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut seen = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (label, path, want) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let der = std::fs::read(path).unwrap();
        let cb = ChannelBindings::tls_server_end_point(&der).unwrap();
        let got: String = cb
            .application_data()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want, "{label}");
        seen.push(label.to_string());
    }
    for label in [
        "rsa-sha1",
        "rsa-md5",
        "rsa-sha384",
        "ecdsa-sha512",
        "rsa-pss-sha384",
        "ed25519",
    ] {
        assert!(
            seen.iter().any(|s| s == label),
            "{label} not covered: {seen:?}"
        );
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bad in [
        &b""[..],
        b"\x30",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x04\x00",
        b"\x30\x02\x30\x00",
    ] {
        assert!(
            ChannelBindings::tls_server_end_point(bad).is_err(),
            "{bad:?}"
        );
    }
}
