//! `psrp doctor`: the connection step by step, one line per check (✓ pass,
//! ! warning, ✗ failure, · information), and for every failure the cause
//! and the fix (from [`crate::advice`] where the table knows it). Each
//! group runs only as far as the previous ones allow. No check prints a
//! secret: the password is used (to get a Kerberos ticket, to open the
//! shell) but never shown, and the JSON carries the same texts.

mod auth;
mod canonical;
pub(crate) mod ccache;
pub(crate) mod kerberos;
mod network;
mod tls;
mod winrm;

use std::time::Duration;

use psrp_core::client::ConnectionOptions;
use serde_json::json;
use wsman::{Auth, WsmanConfig};

use crate::advice::Advice;
use crate::args::{AuthKind, Scheme};
use crate::exit::Status;
use crate::hosts::HostSpec;
use crate::settings::{auth_name, Settings};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Fine.
    Pass,
    /// Works, but something to know or fix.
    Warn,
    /// Broken: the connection cannot work until fixed.
    Fail,
    /// Information (or skipped).
    Info,
}

impl Mark {
    fn symbol(self) -> &'static str {
        match self {
            Mark::Pass => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
            Mark::Info => "·",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mark::Pass => "pass",
            Mark::Warn => "warn",
            Mark::Fail => "fail",
            Mark::Info => "info",
        }
    }
}

/// Why a check failed and what to do.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Stable id (the advice table's, or the check's own).
    pub id: String,
    /// The cause.
    pub cause: String,
    /// The fix.
    pub fix: String,
}

impl From<&Advice> for Finding {
    fn from(a: &Advice) -> Self {
        Finding {
            id: a.id.to_owned(),
            cause: a.cause.to_owned(),
            fix: a.fix.to_owned(),
        }
    }
}

impl Finding {
    /// A finding of the check's own (not in the table).
    pub fn new(id: &str, cause: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            id: id.to_owned(),
            cause: cause.into(),
            fix: fix.into(),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// The group: network, tls, auth, kerberos, ntlm, winrm.
    pub group: &'static str,
    /// The check's name.
    pub name: &'static str,
    /// The outcome.
    pub mark: Mark,
    /// What was seen.
    pub detail: String,
    /// For failures (and some warnings): cause and fix.
    pub finding: Option<Finding>,
}

/// Every check so far.
#[derive(Debug, Default)]
pub struct Report {
    /// In the order run.
    pub checks: Vec<Check>,
}

impl Report {
    fn push(
        &mut self,
        group: &'static str,
        name: &'static str,
        mark: Mark,
        detail: impl Into<String>,
        finding: Option<Finding>,
    ) {
        self.checks.push(Check {
            group,
            name,
            mark,
            detail: detail.into(),
            finding,
        });
    }

    /// A passed check.
    pub fn pass(&mut self, group: &'static str, name: &'static str, detail: impl Into<String>) {
        self.push(group, name, Mark::Pass, detail, None);
    }

    /// Information.
    pub fn info(&mut self, group: &'static str, name: &'static str, detail: impl Into<String>) {
        self.push(group, name, Mark::Info, detail, None);
    }

    /// A warning, maybe with advice.
    pub fn warn(
        &mut self,
        group: &'static str,
        name: &'static str,
        detail: impl Into<String>,
        finding: Option<Finding>,
    ) {
        self.push(group, name, Mark::Warn, detail, finding);
    }

    /// A failure with its cause and fix.
    pub fn fail(
        &mut self,
        group: &'static str,
        name: &'static str,
        detail: impl Into<String>,
        finding: Finding,
    ) {
        self.push(group, name, Mark::Fail, detail, Some(finding));
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.mark == Mark::Fail)
    }
}

/// The failure of a step as advice: the table's entry for the text, else
/// the text itself with a general fix.
pub fn finding_for_text(text: &str, id: &str, fallback_fix: &str) -> Finding {
    match crate::advice::for_text(text) {
        Some(a) => a.into(),
        None => Finding::new(id, text.to_owned(), fallback_fix),
    }
}

/// What every check needs.
pub struct Target {
    /// The settings (password inside, never printed).
    pub settings: Settings,
    /// The host.
    pub host: HostSpec,
    /// The port.
    pub port: u16,
    /// The connection options of `invoke`.
    pub options: ConnectionOptions,
    /// A WS-Man configuration for the unauthenticated probes (same
    /// endpoint, TLS, proxy and timeouts; no credentials).
    pub probe: WsmanConfig,
}

impl Target {
    fn https(&self) -> bool {
        self.settings.scheme == Scheme::Https
    }

    /// The SPN the client asks for: --spn, else `HTTP/<host>`.
    fn probe_spn(&self) -> String {
        self.settings.spn.clone().unwrap_or_else(|| {
            format!(
                "HTTP/{}",
                self.host.name.trim_start_matches('[').trim_end_matches(']')
            )
        })
    }

    fn uses_kerberos(&self) -> bool {
        matches!(self.settings.auth, AuthKind::Kerberos | AuthKind::Negotiate)
    }
}

fn probe_config(options: &ConnectionOptions, s: &Settings) -> Result<WsmanConfig, String> {
    let auth = Auth::Negotiate {
        username: None,
        password: None,
        spn: None,
        delegate: false,
    };
    let mut c = WsmanConfig::new(&options.endpoint(), auth).map_err(|e| e.to_string())?;
    c.tls.ca_bundle = s.ca_file.clone();
    c.tls.danger_accept_invalid_certs = s.insecure_skip_tls_verify;
    // Probes fail fast; a listener that does not answer a probe in 10 s
    // will not serve a client either.
    c.connect_timeout = s
        .connect_timeout
        .unwrap_or(Duration::from_secs(10))
        .min(Duration::from_secs(10));
    c.read_timeout = Some(Duration::from_secs(15));
    Ok(c)
}

/// Runs every check against the one host of `settings`; prints the report
/// (text, or JSON with `json`) to stdout and returns the exit status: 0
/// when a shell could be opened (a command could run), 3 otherwise.
pub async fn run(settings: Settings, json_output: bool) -> Status {
    let host = settings.hosts[0].clone();
    let options = crate::run::connection_options(&settings, &host);
    let port = host
        .port
        .or(settings.port)
        .unwrap_or(match settings.scheme {
            Scheme::Http => 5985,
            Scheme::Https => 5986,
        });
    let probe = match probe_config(&options, &settings) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("psrp: {}", crate::logging::terminal_safe(&e));
            return Status::Usage;
        }
    };
    let endpoint = options.endpoint();
    let target = Target {
        settings,
        host,
        port,
        options,
        probe,
    };
    let mut report = Report::default();
    let opened = checks(&target, &mut report).await;
    let status = if opened {
        Status::Success
    } else {
        Status::Connection
    };
    let auth = auth_name(target.settings.auth);
    let config = &target.settings.configuration_name;
    if json_output {
        let checks: Vec<_> = report
            .checks
            .iter()
            .map(|c| {
                let mut v = json!({
                    "group": c.group,
                    "check": c.name,
                    "status": c.mark.name(),
                    "detail": c.detail,
                });
                if let Some(f) = &c.finding {
                    v["id"] = json!(f.id);
                    v["cause"] = json!(f.cause);
                    v["fix"] = json!(f.fix);
                }
                v
            })
            .collect();
        let doc = json!({
            "endpoint": endpoint,
            "auth": auth,
            "configuration_name": config,
            "ok": opened,
            "exit_status": status.code(),
            "checks": checks,
        });
        println!("{doc:#}");
    } else {
        println!("psrp doctor: {endpoint} ({auth}, configuration {config})");
        for c in &report.checks {
            let line = format!(
                "{} {:<8} {:<18} {}",
                c.mark.symbol(),
                c.group,
                c.name,
                c.detail
            );
            println!("{}", crate::logging::terminal_safe(&line));
            if let Some(f) = &c.finding {
                if c.mark == Mark::Fail || c.mark == Mark::Warn {
                    println!(
                        "{}",
                        crate::logging::terminal_safe(&format!("    cause: {}.", f.cause))
                    );
                    println!(
                        "{}",
                        crate::logging::terminal_safe(&format!("    fix:   {}.", f.fix))
                    );
                }
            }
        }
        let failed = report
            .checks
            .iter()
            .filter(|c| c.mark == Mark::Fail)
            .count();
        let warned = report
            .checks
            .iter()
            .filter(|c| c.mark == Mark::Warn)
            .count();
        if opened {
            println!("result: a command can run ({failed} failed, {warned} warnings)");
        } else {
            println!("result: psrp cannot run commands here ({failed} failed, {warned} warnings)");
        }
    }
    status
}

/// The groups in order; `true` when a shell could be opened.
async fn checks(t: &Target, r: &mut Report) -> bool {
    if !network::check(t, r).await {
        return false;
    }
    if t.https() {
        tls::check(t, r).await;
    }
    let probed = auth::check(t, r).await;
    if t.uses_kerberos() {
        kerberos::check(t, r, probed.clock_offset).await;
    }
    auth::check_ntlm(t, r, probed.schemes.as_deref()).await;
    if r.failed() {
        r.info(
            "winrm",
            "open shell",
            "skipped: fix the failures above first",
        );
        return false;
    }
    winrm::check(t, r).await
}
