//! What the server offers before authentication (the WWW-Authenticate
//! schemes of an unauthenticated request) against the chosen method,
//! Basic over HTTP, the server's clock (its Date header), and NTLM: the
//! server's own names from its CHALLENGE, the user name form, channel
//! binding.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{finding_for_text, Finding, Report, Target};
use crate::args::AuthKind;
use crate::settings::auth_name;

const G: &str = "auth";

/// What the unauthenticated probe learnt.
#[derive(Debug, Default)]
pub struct Probed {
    /// The offered schemes (None when the probe failed).
    pub schemes: Option<Vec<String>>,
    /// Server clock minus ours, in seconds (from its Date header).
    pub clock_offset: Option<i64>,
}

/// Days since 1970-01-01 of a Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
fn http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as i64 + 1;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, sec] = hms.as_slice() else {
        return None;
    };
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

fn has(offered: &[String], s: &str) -> bool {
    offered.iter().any(|o| o.eq_ignore_ascii_case(s))
}

/// The probe, the scheme check, Basic over HTTP and the clock.
pub async fn check(t: &Target, r: &mut Report) -> Probed {
    let s = &t.settings;
    let chosen = auth_name(s.auth);
    if s.auth == AuthKind::Basic && !t.https() {
        if s.allow_unencrypted {
            r.warn(
                G,
                "basic over http",
                "--allow-unencrypted: the password and every message travel readable",
                crate::advice::for_text("basic over http").map(Into::into),
            );
        } else {
            r.fail(
                G,
                "basic over http",
                "psrp refuses Basic over plain HTTP without --allow-unencrypted",
                crate::advice::for_text("basic over http")
                    .map(Into::into)
                    .unwrap_or_else(|| {
                        Finding::new("basic-over-http", "Basic over HTTP", "use HTTPS")
                    }),
            );
        }
    }
    // Over HTTPS with a certificate the client refuses, the probe still
    // looks (sending nothing secret) so that the other checks can run.
    let mut probe_config = t.probe.clone();
    if t.https()
        && r.checks
            .iter()
            .any(|c| c.group == "tls" && c.mark == super::Mark::Fail)
    {
        probe_config.tls.danger_accept_invalid_certs = true;
    }
    let probe = match wsman::diagnose::probe(&probe_config).await {
        Ok(p) => p,
        Err(e) => {
            let text = e.to_string();
            r.fail(
                G,
                "offered schemes",
                text.clone(),
                finding_for_text(&text, "probe", "check that the URL is a WinRM listener"),
            );
            return Probed::default();
        }
    };
    let mut probed = Probed::default();
    if let Some(server_time) = probe.date.as_deref().and_then(http_date) {
        let ours = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let offset = server_time - ours;
        probed.clock_offset = Some(offset);
        if offset.abs() > 300 {
            r.warn(
                G,
                "server clock",
                format!("the server's clock is {offset:+} s from ours (its Date header)"),
                crate::advice::for_text("clock skew too great").map(Into::into),
            );
        } else {
            r.pass(
                G,
                "server clock",
                format!("within {} s of ours (its Date header)", offset.abs().max(1)),
            );
        }
    }
    if probe.status != 401 {
        let f = crate::advice::for_http(probe.status)
            .map(Finding::from)
            .unwrap_or_else(|| {
                Finding::new(
                    "no-auth-challenge",
                    format!(
                        "the server answered an unauthenticated request with HTTP {} instead of \
                         asking for authentication (401)",
                        probe.status
                    ),
                    "check --path and --port: a WinRM listener asks for authentication",
                )
            });
        r.fail(
            G,
            "offered schemes",
            format!("HTTP {} without an authentication challenge", probe.status),
            f,
        );
        return probed;
    }
    let offered = probe.schemes.clone();
    let server = probe.server.as_deref().unwrap_or("no Server header");
    let shown = if offered.is_empty() {
        "nothing".to_owned()
    } else {
        offered.join(", ")
    };
    let ok = match s.auth {
        AuthKind::Basic => has(&offered, "Basic"),
        AuthKind::Ntlm => has(&offered, "Negotiate") || has(&offered, "NTLM"),
        AuthKind::Kerberos => has(&offered, "Kerberos") || has(&offered, "Negotiate"),
        AuthKind::Negotiate => has(&offered, "Negotiate"),
        // Not announced in WWW-Authenticate: the TLS handshake carries it.
        AuthKind::Certificate => t.https(),
        AuthKind::Credssp => has(&offered, "CredSSP"),
    };
    if ok {
        r.pass(
            G,
            "offered schemes",
            format!("{shown} ({server}); {chosen} can be used"),
        );
    } else {
        let (cause, fix) = if s.auth == AuthKind::Basic && !t.https() {
            (
                "the server does not offer Basic over HTTP: AllowUnencrypted is false on the \
                 server (the Windows default), so Basic works only over HTTPS"
                    .to_owned(),
                "use HTTPS (--scheme https), or NTLM/Kerberos/Negotiate, which encrypt every \
                 message over HTTP"
                    .to_owned(),
            )
        } else {
            (
                format!("the server does not offer {chosen} (it offers {shown})"),
                "choose an offered method with -a, or enable it on the server (winrm set \
                 winrm/config/service/auth)"
                    .to_owned(),
            )
        };
        r.fail(
            G,
            "offered schemes",
            format!("{shown} ({server}); {chosen} is not offered"),
            Finding::new("scheme-not-offered", cause, fix),
        );
    }
    probed.schemes = Some(offered);
    probed
}

/// NTLM: when it will be used (`-a ntlm`, or Negotiate with a user name
/// and password, which may fall back to it).
pub async fn check_ntlm(t: &Target, r: &mut Report, offered: Option<&[String]>) {
    const N: &str = "ntlm";
    let s = &t.settings;
    let relevant = match s.auth {
        AuthKind::Ntlm => true,
        AuthKind::Negotiate => s.username.is_some() && s.password.is_some(),
        _ => false,
    };
    let Some(offered) = offered else { return };
    if !relevant || !(has(offered, "Negotiate") || has(offered, "NTLM")) {
        return;
    }
    let target = match wsman::diagnose::ntlm_challenge(&t.probe).await {
        Ok(target) => target,
        Err(e) => {
            let text = e.to_string();
            r.warn(
                N,
                "target info",
                text.clone(),
                Some(finding_for_text(
                    &text,
                    "ntlm",
                    "check the NTLM settings of the server",
                )),
            );
            return;
        }
    };
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    r.info(
        N,
        "target info",
        format!(
            "server {} ({}), domain {} ({}){}",
            show(&target.netbios_computer),
            show(&target.dns_computer),
            show(&target.netbios_domain),
            show(&target.dns_domain),
            target
                .dns_tree
                .as_ref()
                .map(|f| format!(", forest {f}"))
                .unwrap_or_default()
        ),
    );
    if let Some(user) = &s.username {
        let domain = user
            .split_once('\\')
            .map(|(d, _)| d.to_owned())
            .or_else(|| user.split_once('@').map(|(_, d)| d.to_owned()));
        let known: Vec<String> = [&target.netbios_domain, &target.dns_domain]
            .into_iter()
            .flatten()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        match domain {
            None => r.warn(
                N,
                "user name",
                format!("{user:?} has no domain"),
                Some(Finding::new(
                    "ntlm-bare-user",
                    format!(
                        "without a domain the server looks the user up in its own accounts; \
                         a domain account needs {}\\{user}",
                        show(&target.netbios_domain)
                    ),
                    match &target.dns_domain {
                        Some(dns) => format!(
                            "write the user as {}\\{user} or {user}@{dns} for a domain account",
                            show(&target.netbios_domain)
                        ),
                        None => format!(
                            "write the user as {}\\{user} for a domain account; a local account \
                             needs nothing more",
                            show(&target.netbios_domain)
                        ),
                    },
                )),
            ),
            Some(d) if known.contains(&d.to_ascii_lowercase()) => r.pass(
                N,
                "user name",
                format!("{user} is in the server's domain"),
            ),
            Some(d) => r.warn(
                N,
                "user name",
                format!("domain {d} is not the server's ({})", known.join(", ")),
                Some(Finding::new(
                    "ntlm-other-domain",
                    format!("the user's domain {d} is not the server's domain: it works only through a trust"),
                    "check the domain part of the user name",
                )),
            ),
        }
    }
    if t.https() {
        r.info(
            N,
            "channel binding",
            "sent (MsvAvChannelBindings with the tls-server-end-point hash): works with \
             CbtHardeningLevel=Strict",
        );
    } else {
        r.info(
            N,
            "channel binding",
            "not used over HTTP (messages are sealed with the NTLM session key instead)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::http_date;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37"), None);
        assert_eq!(http_date("garbage"), None);
    }
}
