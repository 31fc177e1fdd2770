//! Kerberos: krb5.conf, the ticket cache (principal, expiry, flags), the
//! service principal the client will ask for and its realm, a real
//! service-ticket request to the KDC with its error decoded, the ticket's
//! encryption types, and what Negotiate will choose.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use wsman::auth::gss;

use super::ccache;
use super::{finding_for_text, Finding, Mark, Report, Target};
use crate::args::AuthKind;

const G: &str = "kerberos";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `[libdefaults]` values of the first krb5.conf that has them.
pub(super) fn libdefault(files: &[PathBuf], key: &str) -> Option<String> {
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let mut in_libdefaults = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_libdefaults = line == "[libdefaults]";
                continue;
            }
            if !in_libdefaults {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_owned());
                }
            }
        }
    }
    None
}

pub(crate) fn config_files() -> Vec<PathBuf> {
    match std::env::var_os("KRB5_CONFIG") {
        Some(v) => std::env::split_paths(&v).collect(),
        None => vec![PathBuf::from("/etc/krb5.conf")],
    }
}

/// The ticket cache name the library will use.
pub(crate) fn ccache_name(files: &[PathBuf]) -> String {
    if let Ok(n) = std::env::var("KRB5CCNAME") {
        if !n.is_empty() {
            return n;
        }
    }
    if let Some(n) = libdefault(files, "default_ccache_name") {
        return n;
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    format!("FILE:/tmp/krb5cc_{uid}")
}

fn file_path(name: &str) -> Option<PathBuf> {
    match name.split_once(':') {
        Some(("FILE", p)) => Some(PathBuf::from(p)),
        Some(_) => None,
        None => Some(PathBuf::from(name)),
    }
}

pub(crate) fn read_cache(name: &str) -> Option<Result<ccache::Cache, String>> {
    let path = file_path(name)?;
    Some(
        std::fs::read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|b| ccache::parse(&b)),
    )
}

fn when(secs: u32) -> String {
    wsman::cert::format_utc(i64::from(secs))
}

/// Records a Kerberos failure: a failure when Kerberos is required, a
/// warning when Negotiate can fall back to NTLM.
fn problem(r: &mut Report, fatal: bool, name: &'static str, detail: String, f: Finding) {
    if fatal {
        r.fail(G, name, detail, f);
    } else {
        r.warn(G, name, detail, Some(f));
    }
}

/// Runs the Kerberos checks; `clock_offset` is the server's clock minus
/// ours, when its Date header told.
pub async fn check(t: &Target, r: &mut Report, clock_offset: Option<i64>) {
    let s = &t.settings;
    let with_password = s.username.is_some() && s.password.is_some();
    let can_fall_back = s.auth == AuthKind::Negotiate && with_password && !s.no_ntlm_fallback;
    let fatal = !can_fall_back;
    let files = config_files();
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    r.info(
        G,
        "krb5.conf",
        format!(
            "{}; default realm {}",
            shown.join(":"),
            libdefault(&files, "default_realm").unwrap_or_else(|| "not set".into())
        ),
    );
    let before = r.checks.len();
    // The ticket cache (not used when a password gets a fresh TGT).
    let cache_name = ccache_name(&files);
    if with_password {
        r.info(
            G,
            "ticket cache",
            format!(
                "not used: a ticket is requested with the password of {}",
                s.username.as_deref().unwrap_or_default()
            ),
        );
    } else {
        match read_cache(&cache_name) {
            None => r.info(
                G,
                "ticket cache",
                format!("{cache_name} (flags and expiry are read from FILE: caches only)"),
            ),
            Some(Err(e)) => problem(
                r,
                fatal,
                "ticket cache",
                format!("{cache_name}: {e}"),
                crate::advice::for_text("no credentials cache found")
                    .map(Finding::from)
                    .unwrap_or_else(|| Finding::new("kerberos-no-ticket", e.clone(), "run kinit")),
            ),
            Some(Ok(cache)) => tgt(r, fatal, &cache_name, &cache),
        }
    }
    // Credentials as GSSAPI sees them.
    let (user, password) = (s.username.clone(), s.password.clone());
    let summary = tokio::task::spawn_blocking(move || {
        gss::credential_summary(user.as_deref(), password.as_ref())
    })
    .await;
    let mut usable = match summary {
        Ok(Ok(c)) => {
            r.pass(
                G,
                "credentials",
                format!(
                    "{}, valid for {} more",
                    c.principal,
                    duration(c.lifetime.as_secs())
                ),
            );
            true
        }
        Ok(Err(e)) => {
            let text = e.to_string();
            if !r.checks[before..].iter().any(|c| c.mark != Mark::Info) {
                problem(
                    r,
                    fatal,
                    "credentials",
                    gss_reason(&text).to_owned(),
                    finding_for_text(&text, "kerberos-credentials", "run kinit user@REALM"),
                );
            }
            false
        }
        Err(e) => {
            r.warn(G, "credentials", format!("GSSAPI worker: {e}"), None);
            false
        }
    };
    // The service principal and its realm.
    let spn = t.probe_spn();
    let spn_for_thread = spn.clone();
    // The principal MIT asks for (DNS canonicalization included), for the
    // service ticket's line.
    let mut asked = spn.clone();
    match tokio::task::spawn_blocking(move || gss::canonical_service_principal(&spn_for_thread))
        .await
    {
        Ok(Ok(p)) => {
            asked = p.rsplit_once('@').map(|(n, _)| n).unwrap_or(&p).to_owned();
            let realm = p.rsplit_once('@').map(|(_, r)| r).unwrap_or_default();
            if realm.is_empty() {
                r.warn(
                    G,
                    "target realm",
                    format!("{p}: no realm is mapped to the host ([domain_realm])"),
                    Some(Finding::new(
                        "kerberos-no-domain-realm",
                        "krb5.conf maps no realm to the host, so the KDC must find it by referral",
                        "add the host's domain to [domain_realm] in krb5.conf (.example.com = EXAMPLE.COM)",
                    )),
                );
            } else {
                r.pass(
                    G,
                    "target realm",
                    format!("{p} (realm {realm} from krb5.conf [domain_realm])"),
                );
            }
        }
        Ok(Err(e)) => r.warn(G, "target realm", e.to_string(), None),
        Err(_) => {}
    }
    // The service ticket.
    if usable {
        let (user, password, spn2) = (s.username.clone(), s.password.clone(), spn.clone());
        let ticket = tokio::task::spawn_blocking(move || {
            gss::request_service_ticket(user.as_deref(), password.as_ref(), &spn2)
        })
        .await;
        match ticket {
            Ok(Ok(())) => {
                let mut detail = format!("the KDC issued a ticket for {asked}");
                if !with_password {
                    if let Some(Ok(cache)) = read_cache(&cache_name) {
                        let host_part = spn.split('@').next().unwrap_or(&spn).to_owned();
                        if let Some(c) = cache
                            .credentials
                            .iter()
                            .rev()
                            .find(|c| c.server.starts_with(&host_part))
                        {
                            detail.push_str(&format!(
                                "; ticket {}, session key {}",
                                c.ticket_enctype
                                    .map(ccache::enctype_name)
                                    .unwrap_or_else(|| "of unknown type".into()),
                                ccache::enctype_name(i64::from(c.key_enctype))
                            ));
                        }
                    }
                }
                r.pass(G, "service ticket", detail);
            }
            Ok(Err(e)) => {
                usable = false;
                let text = e.to_string();
                let mut f = finding_for_text(
                    &text,
                    "kerberos-service-ticket",
                    "check the SPN and krb5.conf",
                );
                if f.id == "kerberos-clock-skew" {
                    if let Some(o) = clock_offset {
                        f.cause = format!(
                            "{}; the server's clock is {o:+} s from this machine's",
                            f.cause
                        );
                    }
                    if let Some(Ok(cache)) = read_cache(&cache_name) {
                        if let Some(o) = cache.time_offset {
                            f.cause = format!(
                                "{}; the ticket cache records a KDC time offset of {o:+} s",
                                f.cause
                            );
                        }
                    }
                }
                let detail = format!("{spn}: {}", gss_reason(&text));
                problem(r, fatal, "service ticket", detail, f);
            }
            Err(e) => r.warn(G, "service ticket", format!("GSSAPI worker: {e}"), None),
        }
    }
    if s.auth == AuthKind::Negotiate {
        if usable {
            r.pass(G, "negotiate", "Negotiate will use Kerberos");
        } else if can_fall_back {
            r.warn(
                G,
                "negotiate",
                "Negotiate will fall back to NTLM (Kerberos failed, see above)",
                Some(Finding::new(
                    "ntlm-fallback",
                    "Kerberos cannot be used, so Negotiate sends NTLM: weaker, and refused where NTLM is disabled",
                    "fix the Kerberos problem above, or choose -a ntlm knowingly (--no-ntlm-fallback forbids the fallback)",
                )),
            );
        } else {
            r.info(
                G,
                "negotiate",
                "Negotiate cannot fall back to NTLM (no user name and password, or --no-ntlm-fallback)",
            );
        }
    }
}

/// What MIT krb5 said, without GSSAPI's generic major status text
/// ("Unspecified GSS failure.  Minor code may provide more information
/// (Clock skew too great)" becomes "Clock skew too great").
fn gss_reason(text: &str) -> &str {
    match (text.rfind('('), text.ends_with(')')) {
        (Some(open), true) => &text[open + 1..text.len() - 1],
        _ => text.rsplit(": ").next().unwrap_or(text),
    }
}

fn duration(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// The TGT of a readable cache: principal, expiry, flags.
fn tgt(r: &mut Report, fatal: bool, name: &str, cache: &ccache::Cache) {
    let Some(t) = cache
        .credentials
        .iter()
        .find(|c| c.server.starts_with("krbtgt/"))
    else {
        problem(
            r,
            fatal,
            "ticket cache",
            format!(
                "{name} holds no ticket-granting ticket for {}",
                cache.principal
            ),
            crate::advice::for_text("no kerberos credentials available")
                .map(Into::into)
                .unwrap_or_else(|| Finding::new("kerberos-no-ticket", "no TGT", "run kinit")),
        );
        return;
    };
    let flags = ccache::flag_names(t.flags);
    let now = now();
    if i64::from(t.end) <= now {
        problem(
            r,
            fatal,
            "ticket cache",
            format!(
                "{name}: the ticket of {} expired on {}",
                cache.principal,
                when(t.end)
            ),
            crate::advice::for_text("ticket expired")
                .map(Into::into)
                .unwrap_or_else(|| Finding::new("kerberos-expired", "expired", "kinit")),
        );
        return;
    }
    r.pass(
        G,
        "ticket cache",
        format!(
            "{name}: {} until {} ({}; {})",
            cache.principal,
            when(t.end),
            ccache::enctype_name(i64::from(t.key_enctype)),
            if flags.is_empty() {
                "no flags".to_owned()
            } else {
                flags.join(", ")
            }
        ),
    );
    if t.flags & ccache::FORWARDABLE == 0 {
        r.info(
            G,
            "forwardable",
            "the ticket is not forwardable: fine unless you use --delegate (kinit -f if a \
             second hop needs it)",
        );
    }
    if let Some(o) = cache.time_offset.filter(|o| *o != 0) {
        r.info(
            G,
            "kdc time offset",
            format!("the cache records a KDC time offset of {o:+} s (kdc_timesync)"),
        );
    }
}
