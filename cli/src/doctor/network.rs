//! Name resolution, TCP, what kind of listener answers on the port, and
//! the proxy from the environment.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::canonical::{self, Canonicalize, Names, Policy};
use super::{finding_for_text, Finding, Report, Target};

const G: &str = "network";

/// `false` when nothing further can be checked.
pub async fn check(t: &Target, r: &mut Report) -> bool {
    let host = t.host.name.trim_start_matches('[').trim_end_matches(']');
    // Name resolution.
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, t.port)).await {
        Ok(a) => a.collect(),
        Err(e) => {
            let text = format!("{host}: {e}");
            let f = finding_for_text(&text, "dns", "check the host name and DNS");
            r.fail(G, "name resolution", text, f);
            return false;
        }
    };
    let ips: Vec<String> = dedup(addrs.iter().map(|a| a.ip().to_string()));
    // Where Kerberos would canonicalize the name (only for a host-based SPN:
    // one given with its realm is used as it is).
    let spn = t.probe_spn();
    let canonical = if t.uses_kerberos() && !spn.contains('@') {
        let spn_host = spn
            .split_once('/')
            .map(|(_, h)| h)
            .unwrap_or(host)
            .to_owned();
        let policy = Policy::read(super::kerberos::config_files());
        let lookup_host = spn_host.clone();
        tokio::task::spawn_blocking(move || canonical::lookup(&lookup_host))
            .await
            .ok()
            .map(|names| (spn_host, policy, names))
    } else {
        None
    };
    let renamed = canonical
        .as_ref()
        .is_some_and(|(h, p, n)| !n.kerberos_name(h, p).eq_ignore_ascii_case(h));
    if host.parse::<IpAddr>().is_ok() {
        if t.uses_kerberos() && !renamed {
            r.warn(
                G,
                "name resolution",
                format!("{host} is an IP address"),
                Some(Finding::new(
                    "ip-address-with-kerberos",
                    format!(
                        "Kerberos asks the KDC for HTTP/{host}, which is rarely registered, and \
                         Negotiate then falls back to NTLM"
                    ),
                    "connect by the host's DNS name (or give --spn)",
                )),
            );
        } else {
            r.info(G, "name resolution", format!("{host} is an IP address"));
        }
    } else {
        r.pass(
            G,
            "name resolution",
            format!("{host} resolves to {}", ips.join(", ")),
        );
    }
    if let Some((spn_host, policy, names)) = &canonical {
        reverse_dns(r, spn_host, policy, names);
    }
    // TCP.
    let connect_timeout = t.probe.connect_timeout;
    let mut last_error = String::new();
    let mut connected = None;
    for a in &addrs {
        let started = Instant::now();
        match tokio::time::timeout(connect_timeout, TcpStream::connect(a)).await {
            Ok(Ok(_)) => {
                connected = Some((*a, started.elapsed()));
                break;
            }
            Ok(Err(e)) => last_error = format!("{a}: {e}"),
            Err(_) => {
                last_error = format!(
                    "{a}: connection timed out after {}s",
                    connect_timeout.as_secs()
                )
            }
        }
    }
    let Some((addr, took)) = connected else {
        let f = finding_for_text(
            &last_error,
            "tcp",
            "check the host, --port and the firewall",
        );
        r.fail(G, "tcp connect", last_error, f);
        return false;
    };
    r.pass(
        G,
        "tcp connect",
        format!("connected to {addr} in {} ms", took.as_millis()),
    );
    proxy(t, r);
    listener(t, r).await
}

/// The reverse name of the host's address and what MIT Kerberos makes of
/// it: the SPN's host is the PTR name when krb5.conf canonicalizes with
/// rdns (MIT's default), which is wrong whenever the PTR record names
/// another host.
fn reverse_dns(r: &mut Report, host: &str, policy: &Policy, names: &Names) {
    let files: Vec<String> = policy
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let files = files.join(":");
    let address = names.address.as_deref().unwrap_or(host);
    let ptr = match &names.reverse {
        Some(n) => format!("{address} is {n} (PTR)"),
        None => format!("{address} has no PTR record"),
    };
    let setting = format!(
        "dns_canonicalize_hostname = {}, rdns = {} in {files}",
        match policy.canonicalize {
            Canonicalize::Yes => "true",
            Canonicalize::No => "false",
            Canonicalize::Fallback => "fallback",
        },
        policy.rdns
    );
    let name = names.kerberos_name(host, policy);
    if policy.canonicalize == Canonicalize::No || name.eq_ignore_ascii_case(host) {
        r.info(
            G,
            "reverse dns",
            format!("{ptr}; Kerberos asks for HTTP/{host} ({setting})"),
        );
        return;
    }
    if host.parse::<IpAddr>().is_ok() {
        // By address, canonicalization is what lets Kerberos work at all
        // (HTTP/<address> is rarely registered): the service ticket check
        // shows whether the KDC knows the name.
        r.info(
            G,
            "reverse dns",
            format!(
                "{ptr}; Kerberos asks for HTTP/{name}, not HTTP/{host}, whose name this is only \
                 when the PTR record is right ({setting})"
            ),
        );
        return;
    }
    if policy.canonicalize == Canonicalize::Fallback {
        r.info(
            G,
            "reverse dns",
            format!(
                "{ptr}; Kerberos asks for HTTP/{host}, then HTTP/{name} if the KDC does not \
                 know it ({setting})"
            ),
        );
        return;
    }
    let how = if policy.rdns && names.reverse.is_some() {
        "the reverse (PTR) name of its address"
    } else {
        "the canonical name DNS gives for it (CNAME)"
    };
    r.warn(
        G,
        "reverse dns",
        format!("{ptr}; the SPN will be HTTP/{name}, not HTTP/{host} ({setting})"),
        Some(Finding::new(
            "kerberos-dns-canonicalization",
            format!(
                "MIT Kerberos canonicalizes the host of the SPN through DNS and uses {how}, \
                 {name}: the KDC issues a ticket for HTTP/{name}, which fails (Server not found \
                 in Kerberos database, or a ticket the server cannot decrypt) unless that name \
                 is the server's"
            ),
            format!(
                "set rdns = false and dns_canonicalize_hostname = false in [libdefaults] of \
                 {files} (as Windows clients behave), or fix the PTR record of {address} to \
                 name {host}, or give --spn HTTP/{host}@REALM"
            ),
        )),
    );
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn proxy(t: &Target, r: &mut Report) {
    let vars: Vec<&str> = if t.https() {
        vec!["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        vec!["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    let set = vars
        .iter()
        .find(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()));
    match wsman::diagnose::proxy(&t.probe) {
        Ok(Some(p)) => r.warn(
            G,
            "proxy",
            format!(
                "through the proxy {p} (from {}); WinRM's authentication needs the same TCP \
                 connection end to end",
                set.unwrap_or(&"the environment")
            ),
            None,
        ),
        Ok(None) => match set {
            Some(v) => r.info(
                G,
                "proxy",
                format!("{v} is set but NO_PROXY excludes {}: direct", t.host.name),
            ),
            None => r.info(G, "proxy", "none in the environment: direct"),
        },
        Err(e) => r.fail(
            G,
            "proxy",
            e.to_string(),
            Finding::new(
                "proxy",
                "the proxy variable cannot be used",
                "fix or unset HTTP_PROXY/HTTPS_PROXY (only http:// proxies)",
            ),
        ),
    }
}

/// Whether the port speaks what the scheme says.
async fn listener(t: &Target, r: &mut Report) -> bool {
    let mut quick = t.probe.clone();
    quick.connect_timeout = Duration::from_secs(3);
    if t.https() {
        match wsman::diagnose::plain_http_status(&quick).await {
            Ok(status) => {
                r.fail(
                    G,
                    "listener",
                    format!(
                        "port {} answers plain HTTP (HTTP {status}), not TLS",
                        t.port
                    ),
                    Finding::new(
                        "http-on-https-port",
                        "the port has an HTTP listener, not an HTTPS one",
                        format!(
                            "use --scheme http for port {}, or the HTTPS listener's port (5986)",
                            t.port
                        ),
                    ),
                );
                false
            }
            Err(_) => {
                r.pass(
                    G,
                    "listener",
                    format!("port {} does not answer plain HTTP (TLS expected)", t.port),
                );
                true
            }
        }
    } else {
        match wsman::diagnose::tls_handshake(&quick, false).await {
            Ok(tls) => {
                r.fail(
                    G,
                    "listener",
                    format!(
                        "port {} completes a TLS handshake ({}): it is an HTTPS listener",
                        t.port, tls.protocol
                    ),
                    Finding::new(
                        "https-on-http-port",
                        "the port has an HTTPS listener, and plain HTTP cannot work there",
                        format!(
                            "use --scheme https for port {} (with --ca-file if its CA is not in \
                             the system store)",
                            t.port
                        ),
                    ),
                );
                false
            }
            Err(_) => {
                r.pass(
                    G,
                    "listener",
                    format!("port {} speaks plain HTTP (no TLS handshake)", t.port),
                );
                true
            }
        }
    }
}
