//! HTTPS: the handshake as the client does it, and when it fails, the
//! certificate looked at without verification to say why (which CA is
//! missing, which names it has, when it expired); the TLS version and the
//! channel binding hash the client will send.

use std::time::{SystemTime, UNIX_EPOCH};

use wsman::cert::{format_utc, CertSummary};

use super::{finding_for_text, Finding, Report, Target};

const G: &str = "tls";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Describes the certificate and returns the finding that explains a
/// verification failure `error` (None when verification passed).
fn explain(t: &Target, r: &mut Report, chain: &[Vec<u8>], error: Option<&str>) {
    let host = t.host.name.trim_start_matches('[').trim_end_matches(']');
    let Some(leaf) = chain.first() else {
        r.warn(G, "certificate", "the server sent no certificate", None);
        return;
    };
    let c = match CertSummary::from_der(leaf) {
        Ok(c) => c,
        Err(e) => {
            r.warn(G, "certificate", e.to_string(), None);
            return;
        }
    };
    let mut names: Vec<String> = c.dns_names.clone();
    names.extend(c.ip_addresses.iter().map(|i| i.to_string()));
    let names = if names.is_empty() {
        format!("no subjectAltName; subject {}", c.subject)
    } else {
        names.join(", ")
    };
    r.info(
        G,
        "certificate",
        format!(
            "{} issued by {} for {names}, valid until {}",
            c.subject,
            c.issuer,
            format_utc(c.not_after)
        ),
    );
    let now = now();
    let error_lower = error.map(str::to_ascii_lowercase).unwrap_or_default();
    // Expiry.
    if c.not_after < now {
        r.fail(
            G,
            "expiry",
            format!("expired on {}", format_utc(c.not_after)),
            crate::advice::for_text("expired")
                .map(Finding::from)
                .unwrap_or_else(|| Finding::new("tls-expired", "expired", "renew it")),
        );
    } else if c.not_before > now {
        r.fail(
            G,
            "expiry",
            format!("not valid before {}", format_utc(c.not_before)),
            Finding::new(
                "tls-not-yet-valid",
                "the certificate is not valid yet: this machine's clock is behind, or the \
                 certificate was issued with a future date",
                "fix the clock (chrony/ntpd) or reissue the certificate",
            ),
        );
    } else if c.not_after - now < 14 * 86_400 {
        r.warn(
            G,
            "expiry",
            format!("expires soon, on {}", format_utc(c.not_after)),
            Some(Finding::new(
                "tls-expires-soon",
                "the listener's certificate expires within 14 days",
                "renew it and update the HTTPS listener's CertificateThumbprint",
            )),
        );
    } else {
        r.pass(
            G,
            "expiry",
            format!("valid until {}", format_utc(c.not_after)),
        );
    }
    // Name.
    if c.matches_host(host) {
        r.pass(G, "name", format!("the certificate is issued for {host}"));
    } else {
        r.fail(
            G,
            "name",
            format!("connecting as {host}, but the certificate names {names}"),
            Finding::new(
                "tls-name-mismatch",
                format!("the server certificate is not issued for {host} (it names {names})"),
                "connect by one of the names it lists, or reissue the certificate for this name",
            ),
        );
    }
    // Trust: only the verifier knows; say which issuer it did not trust.
    if error_lower.contains("unknownissuer") || error_lower.contains("unknown issuer") {
        let what = if c.self_issued {
            format!("the certificate is self-signed ({})", c.subject)
        } else {
            format!("its issuer {} is not a trusted CA", c.issuer)
        };
        let ca = if t.settings.ca_file.is_some() {
            "the --ca-file given"
        } else {
            "the system store"
        };
        r.fail(
            G,
            "trust",
            format!("{what} (checked against {ca})"),
            Finding::new(
                "tls-untrusted",
                format!("{what}, so anyone could have presented it"),
                if c.self_issued {
                    "replace it with a certificate from a CA you trust, or trust this certificate \
                     itself with --ca-file (PEM) if you checked its fingerprint"
                        .to_owned()
                } else {
                    format!(
                        "give the CA that issued it (\"{}\") with --ca-file (PEM), or install it \
                         in the system store",
                        c.issuer
                    )
                },
            ),
        );
    } else if error.is_none() {
        r.pass(
            G,
            "trust",
            format!("chain to a trusted CA (issuer {})", c.issuer),
        );
    }
}

/// Runs the TLS checks.
pub async fn check(t: &Target, r: &mut Report) {
    match wsman::diagnose::tls_handshake(&t.probe, true).await {
        Ok(session) => {
            if t.settings.insecure_skip_tls_verify {
                r.warn(
                    G,
                    "handshake",
                    format!(
                        "{} {} with certificate checks DISABLED (--insecure-skip-tls-verify)",
                        session.protocol, session.cipher_suite
                    ),
                    None,
                );
            } else {
                r.pass(
                    G,
                    "handshake",
                    format!("{} {}", session.protocol, session.cipher_suite),
                );
            }
            explain(t, r, &session.certificates, None);
            version(r, &session.protocol);
            binding(r, &session.certificates);
        }
        Err(e) => {
            let text = e.to_string();
            // Look at what the server shows, without trusting it.
            match wsman::diagnose::tls_handshake(&t.probe, false).await {
                Ok(session) => {
                    r.info(
                        G,
                        "handshake",
                        format!(
                            "verification failed: {}",
                            text.rsplit(": ").next().unwrap_or(&text)
                        ),
                    );
                    let before = r.checks.len();
                    explain(t, r, &session.certificates, Some(&text));
                    if !r.checks[before..]
                        .iter()
                        .any(|c| c.mark == super::Mark::Fail)
                    {
                        r.fail(
                            G,
                            "verify",
                            text.clone(),
                            finding_for_text(&text, "tls", "check the certificate and --ca-file"),
                        );
                    }
                    version(r, &session.protocol);
                }
                Err(_) => r.fail(
                    G,
                    "handshake",
                    text.clone(),
                    finding_for_text(&text, "tls", "check the HTTPS listener and its certificate"),
                ),
            }
        }
    }
}

fn version(r: &mut Report, protocol: &str) {
    if protocol.contains("1_3") || protocol.contains("1_2") {
        r.pass(G, "version", protocol.replace('_', "."));
    } else {
        r.warn(
            G,
            "version",
            format!("{protocol}: older than TLS 1.2"),
            None,
        );
    }
}

fn binding(r: &mut Report, chain: &[Vec<u8>]) {
    match chain
        .first()
        .map(|c| wsman::diagnose::channel_binding_hex(c))
    {
        Some(Ok(hex)) => r.info(
            G,
            "channel binding",
            format!("tls-server-end-point {hex} (sent with NTLM, Kerberos and Negotiate)"),
        ),
        Some(Err(e)) => r.warn(G, "channel binding", e.to_string(), None),
        None => {}
    }
}
