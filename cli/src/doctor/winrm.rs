//! WinRM: Identify (product and protocol versions), then a real runspace
//! pool opened as `invoke` opens it: authentication, message encryption,
//! MaxEnvelopeSize, the configuration and the user's right to it (faults
//! decoded), the PSRP and PowerShell versions of the endpoint, its
//! language mode and, on restricted (JEA) endpoints, how many commands it
//! lets the user run. The shell is deleted before returning.

use std::time::Duration;

use psrp_core::client::{ClientError, Command, PoolOptions, RunspacePool};

use super::{finding_for_text, Finding, Report, Target};
use crate::args::AuthKind;

const G: &str = "winrm";

/// `true` when the pool opened.
pub async fn check(t: &Target, r: &mut Report) -> bool {
    match wsman::diagnose::identify(&t.probe).await {
        Ok(id) => r.pass(
            G,
            "identify",
            format!(
                "{} {} ({})",
                id.product_vendor, id.product_version, id.protocol_version
            ),
        ),
        Err(e) => r.info(
            G,
            "identify",
            format!("no unauthenticated Identify answer ({e})"),
        ),
    }
    let s = &t.settings;
    let fallback = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = fallback.clone();
    let options = t.options.clone().on_ntlm_fallback(move |f| {
        if let Ok(mut slot) = seen.lock() {
            *slot = Some(f.kerberos_error.clone());
        }
    });
    let pool_options = PoolOptions::new()
        .open_timeout(Duration::from_secs(60))
        .cleanup_timeout(Duration::from_secs(20));
    let opened = RunspacePool::open_with(options, pool_options).await;
    let pool = match opened {
        Ok(pool) => pool,
        Err(e) => {
            open_failed(t, r, &e);
            return false;
        }
    };
    let mechanism = match (s.auth, fallback.lock().ok().and_then(|f| f.clone())) {
        (AuthKind::Negotiate, Some(why)) => {
            format!("negotiate (NTLM, because Kerberos failed: {why})")
        }
        (AuthKind::Negotiate, None) => "negotiate (Kerberos)".to_owned(),
        (a, _) => crate::settings::auth_name(a).to_owned(),
    };
    let user = s
        .username
        .clone()
        .unwrap_or_else(|| "the ticket cache's principal".to_owned());
    r.pass(
        G,
        "authentication",
        format!("accepted {user} with {mechanism}"),
    );
    if t.https() {
        r.pass(
            G,
            "message encryption",
            "not needed: TLS protects the messages",
        );
    } else if s.auth == AuthKind::Basic {
        r.warn(
            G,
            "message encryption",
            "none: Basic over HTTP sends every message readable (--allow-unencrypted)",
            None,
        );
    } else {
        r.pass(
            G,
            "message encryption",
            "accepted: every message sealed with the authentication context",
        );
    }
    r.pass(
        G,
        "max envelope size",
        format!(
            "{} bytes accepted by the server",
            s.max_envelope_size.unwrap_or(153_600)
        ),
    );
    r.pass(
        G,
        "configuration",
        format!("{} opened for this user", s.configuration_name),
    );
    let version = pool.protocol_version();
    let ps = pool
        .ps_version_table()
        .and_then(|v| v.get("PSVersion").cloned())
        .map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
    r.pass(
        G,
        "psrp version",
        format!(
            "protocol {}.{}{}",
            version.major,
            version.minor,
            ps.map(|p| format!(", PowerShell {p}")).unwrap_or_default()
        ),
    );
    let mode = language_mode(&pool, r).await;
    visible_commands(&pool, r, mode).await;
    if let Err(e) = pool.close().await {
        r.warn(G, "close", format!("could not delete the shell: {e}"), None);
    }
    true
}

/// What the language-mode check learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// FullLanguage: every command of the session is visible.
    Full,
    /// NoLanguage (JEA): only the role's visible commands, no scripts.
    NoLanguage,
    /// Restricted or ConstrainedLanguage, or not known.
    Other,
}

/// The number of commands the endpoint lets this user run (GET_COMMAND_METADATA
/// for `*`, what `psrp commands` lists). Only on restricted endpoints: a
/// FullLanguage session has every installed command (thousands on Windows,
/// megabytes of metadata) and the count says nothing. A refused request is a
/// warning: commands may still run.
async fn visible_commands(pool: &RunspacePool, r: &mut Report, mode: Mode) {
    if mode == Mode::Full {
        r.info(
            G,
            "commands",
            "every command of the session (FullLanguage): not counted; psrp commands lists them",
        );
        return;
    }
    match pool.get_command_metadata(["*"]).await {
        Ok(list) => {
            let only = if mode == Mode::NoLanguage {
                " (JEA: only these can run)"
            } else {
                ""
            };
            r.pass(
                G,
                "commands",
                format!(
                    "{} visible to this user{only}; psrp commands lists them with their parameters",
                    list.len()
                ),
            );
        }
        Err(e) => r.warn(
            G,
            "commands",
            format!("the endpoint did not list its commands: {e}"),
            Some(Finding::new(
                "command-metadata-refused",
                "the endpoint refused or failed the command list request (GET_COMMAND_METADATA), \
                 which Import-PSSession also uses; commands may still run",
                "run psrp commands to see the error, and check the role capabilities of the \
                 endpoint (VisibleCmdlets, VisibleFunctions)",
            )),
        ),
    }
}

/// The endpoint's language mode: `$ExecutionContext.SessionState.LanguageMode`
/// where scripts run; a NoLanguage endpoint (JEA) refuses the script itself.
async fn language_mode(pool: &RunspacePool, r: &mut Report) -> Mode {
    let script = Command::script("$ExecutionContext.SessionState.LanguageMode");
    let result = match pool.invoke(script).await {
        Ok(result) => result,
        Err(e) => {
            r.info(G, "language mode", format!("not known: {e}"));
            return Mode::Other;
        }
    };
    let mode = result
        .output
        .first()
        .map(|v| match psrp_core::clixml::to_json(v) {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
    let refused = result
        .terminating_error
        .iter()
        .chain(&result.errors)
        .any(|e| e.formatted().contains("no-language mode"));
    match (mode, refused) {
        (Some(mode), _) => {
            r.info(
                G,
                "language mode",
                format!("{mode}: scripts (psrp script) and commands (psrp invoke) can run"),
            );
            if mode == "FullLanguage" {
                Mode::Full
            } else {
                Mode::Other
            }
        }
        (None, true) => {
            r.info(
                G,
                "language mode",
                "NoLanguage (JEA): only commands with parameters (psrp invoke), no scripts",
            );
            Mode::NoLanguage
        }
        (None, false) => {
            r.info(G, "language mode", "not known: the endpoint did not say");
            Mode::Other
        }
    }
}

/// A complete NTLM or Kerberos handshake refused over HTTPS. The server does
/// not say why (a bare 401, on Windows too), and over HTTPS the usual cause
/// is the channel binding: psrp binds the authentication to the certificate
/// it received, the server to its own, and behind a TLS-terminating proxy or
/// load balancer (or TLS inspection) those differ.
fn channel_binding_mismatch(ticket_issued: bool) -> Finding {
    let (what, otherwise) = if ticket_issued {
        (
            "the KDC issued a ticket for the server and the server refused it over HTTPS",
            "Otherwise the server's account cannot decrypt the ticket (stale keytab, SPN on \
             another account) or it accepts only NTLM",
        )
    } else {
        (
            "the server refused the authentication over HTTPS",
            "Otherwise the user name or password is wrong",
        )
    };
    Finding::new(
        "channel-binding-mismatch",
        format!(
            "{what}: most likely a channel binding mismatch. psrp binds the authentication to the \
             certificate it received (the tls-server-end-point hash, tls channel binding above) \
             and the server compares it with its own certificate's; they differ when a \
             TLS-terminating proxy or load balancer, or TLS inspection, sits in between, and a \
             server whose CbtHardeningLevel is Strict (or Relaxed, with a binding that does not \
             match) then answers 401. {otherwise}"
        ),
        "try the same credentials over HTTP (--scheme http, port 5985): if they work there, the \
         binding is the cause. Then connect to the server's own HTTPS listener (TLS passthrough \
         on the load balancer, no TLS inspection for this host), or use HTTP, where every \
         message is encrypted with the authentication context, or (weaker) lower the server's \
         hardening level: winrm set winrm/config/service/auth @{CbtHardeningLevel=\"None\"}",
    )
}

fn open_failed(t: &Target, r: &mut Report, e: &ClientError) {
    let text = e.to_string();
    let s = &t.settings;
    if let Some(code) = e.fault().and_then(|f| f.code) {
        let f = crate::advice::for_fault(code)
            .map(Finding::from)
            .unwrap_or_else(|| Finding::new("fault", text.clone(), "see the fault text"));
        let name = match f.id.as_str() {
            "unknown-configuration" | "access-denied" => "configuration",
            "envelope-too-large" | "encoding-limit" => "max envelope size",
            _ => "open shell",
        };
        let fault_text = e
            .fault()
            .map(|f| f.to_string())
            .unwrap_or_else(|| text.clone());
        let detail = format!("{}: {fault_text}", s.configuration_name);
        let mut f = f;
        if name == "max envelope size" {
            f.cause = format!(
                "{} (psrp asked for MaxEnvelopeSize {} bytes)",
                f.cause,
                s.max_envelope_size.unwrap_or(153_600)
            );
        }
        r.fail(G, name, detail, f);
        return;
    }
    if e.is_auth() {
        // The KDC issued the ticket (checked above) but the server refused it.
        let kerberos_ok = r.checks.iter().any(|c| {
            c.group == "kerberos" && c.name == "service ticket" && c.mark == super::Mark::Pass
        });
        if t.https() && s.auth != AuthKind::Basic {
            r.fail(
                G,
                "authentication",
                text.clone(),
                channel_binding_mismatch(kerberos_ok && s.auth != AuthKind::Ntlm),
            );
            return;
        }
        if kerberos_ok {
            r.fail(
                G,
                "authentication",
                text.clone(),
                Finding::new(
                    "kerberos-refused-by-server",
                    "the KDC issued a ticket for the server, but the server refused it: it accepts \
                     only NTLM, or its account cannot decrypt the ticket (SPN registered to \
                     another account, or a stale keytab)",
                    "use -a ntlm with -u DOMAIN\\user if the server accepts only NTLM; otherwise \
                     check who owns the SPN (setspn -Q HTTP/<host>)",
                ),
            );
            return;
        }
        let f = finding_for_text(&text, "auth", "check the user name, password and method");
        r.fail(G, "authentication", text, f);
        return;
    }
    let f = crate::advice::for_client_error(e)
        .map(Finding::from)
        .unwrap_or_else(|| finding_for_text(&text, "open", "see the error text"));
    r.fail(G, "open shell", text, f);
}
