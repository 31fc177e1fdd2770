//! The one table of what a failure means and what to do about it: every
//! WS-Man fault code and HTTP status the client can meet, and the common
//! Kerberos, TLS and connection failures (matched on the text the system
//! libraries give). `psrp doctor` prints these for its failed checks, and a
//! failed `psrp invoke`/`script` ends with the same cause and fix.

use psrp_core::client::ClientError;

/// What a failure means and how to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advice {
    /// A stable short name (for `--json` and tests).
    pub id: &'static str,
    /// The cause, as a sentence.
    pub cause: &'static str,
    /// What to do, as a sentence.
    pub fix: &'static str,
}

/// What an entry matches.
#[derive(Debug, Clone, Copy)]
enum On {
    /// `f:WSManFault/@Code`.
    Fault(u32),
    /// An HTTP status without a SOAP fault.
    Http(u16),
    /// Any of these (lower case) fragments of the error text.
    Text(&'static [&'static str]),
}

macro_rules! entry {
    ($on:expr, $id:literal, $cause:literal, $fix:literal) => {
        (
            $on,
            Advice {
                id: $id,
                cause: $cause,
                fix: $fix,
            },
        )
    };
}

/// WinRM's ERROR_WSMAN_* codes as the server sends them (decimal in
/// `f:WSManFault/@Code`), Win32/HRESULT codes WinRM passes on, HTTP statuses,
/// then text patterns. The first match wins, so specific texts come before
/// general ones.
const TABLE: &[(On, Advice)] = &[
    // ---- WS-Man faults ----------------------------------------------------
    entry!(On::Fault(2_150_858_811), "unknown-configuration",
        "the session configuration (-c) is not registered on the server (ERROR_WSMAN_INVALID_RESOURCE_URI)",
        "use a name that Get-PSSessionConfiguration lists on the server, or leave -c out for Microsoft.PowerShell"),
    entry!(On::Fault(5), "access-denied",
        "the server refused to open the session configuration for this user (Access is denied): the user is not in its permissions or in any JEA role of it",
        "add the user (or a group of it) to the configuration's RoleDefinitions/permissions (Set-PSSessionConfiguration -ShowSecurityDescriptorUI, or the JEA .pssc), or connect as a user who is"),
    entry!(On::Fault(0x8007_0005), "access-denied",
        "the server refused the operation for this user (E_ACCESSDENIED)",
        "add the user to the session configuration's permissions or JEA role, or connect as a user who is"),
    entry!(On::Fault(2_150_858_825), "envelope-too-large",
        "a request was larger than the server's MaxEnvelopeSizekb (ERROR_WSMAN_SERVER_ENVELOPE_LIMIT)",
        "lower --max-envelope-size to the server's limit, or raise it on the server: Set-Item WSMan:\\localhost\\MaxEnvelopeSizekb 500"),
    entry!(On::Fault(2_150_858_805), "encoding-limit",
        "the server refused a request or response size (ERROR_WSMAN_ENCODING_LIMIT): MaxEnvelopeSize is above what the server allows",
        "lower --max-envelope-size (the Windows default is 512000 bytes, older hosts 153600)"),
    entry!(On::Fault(2_150_858_793), "operation-timeout",
        "the server had nothing to return within OperationTimeout (normal for Receive; an error elsewhere)",
        "raise --operation-timeout, or check that the remote command is not stuck"),
    entry!(On::Fault(2_150_858_843), "shell-not-found",
        "the server no longer knows the shell or command (ERROR_WSMAN_UNEXPECTED_SELECTORS): it was deleted, timed out (IdleTimeout) or the WinRM service restarted",
        "run again; for long idle periods raise the shell's IdleTimeout on the server"),
    entry!(On::Fault(2_150_858_809), "invalid-options",
        "the server refused an option of the request (ERROR_WSMAN_INVALID_OPTIONS)",
        "check --locale and the protocol options; report it if the defaults fail"),
    entry!(On::Fault(2_150_858_835), "invalid-option-value",
        "the server refused the value of an option (ERROR_WSMAN_OPTIONS_INVALID_VALUE)",
        "check --locale, --operation-timeout and --max-envelope-size"),
    entry!(On::Fault(2_150_858_771), "action-not-supported",
        "the endpoint does not support this WS-Man action (ERROR_WSMAN_ACTION_NOT_SUPPORTED): it is not a WinRM PowerShell endpoint",
        "check --path (default wsman) and that the URL is a WinRM listener"),
    entry!(On::Fault(2_150_858_769), "header-required",
        "the server missed a required WS-Addressing header (ERROR_WSMAN_MESSAGE_INFORMATION_HEADER_REQUIRED)",
        "this is a client bug or a proxy that rewrites requests: report it"),
    entry!(On::Fault(2_150_858_791), "invalid-soap-body",
        "the server could not read the SOAP body (ERROR_WSMAN_INVALID_SOAP_BODY)",
        "a proxy may be rewriting requests; otherwise report it"),
    entry!(On::Fault(2_150_858_817), "schema-validation",
        "the server's schema validation refused the request (ERROR_WSMAN_SCHEMA_VALIDATION_ERROR)",
        "report it, with the server's Windows version"),
    entry!(On::Fault(2_150_858_819), "invalid-xml",
        "the server could not parse the request XML (ERROR_WSMAN_INVALID_XML)",
        "a proxy may be changing requests; otherwise report it"),
    entry!(On::Fault(0x8000_4005), "server-internal-error",
        "the server failed internally (E_FAIL)",
        "look at the server's Windows Remote Management event log (Microsoft-Windows-WinRM/Operational)"),
    // ---- HTTP statuses ----------------------------------------------------
    entry!(On::Http(400), "http-400",
        "the server refused the request as malformed (HTTP 400): usually message encryption it did not expect or could not decrypt",
        "check the authentication (-a) matches what the listener allows; over HTTP the server must allow encryption with Negotiate/Kerberos"),
    entry!(On::Http(401), "http-401",
        "the server refused the credentials (HTTP 401)",
        "check the user name form (DOMAIN\\user or user@REALM), the password, and for Kerberos the ticket (kinit) and SPN"),
    entry!(On::Http(403), "http-403",
        "the server forbids this client (HTTP 403): an IP filter (IPv4Filter/IPv6Filter), or an HTTPS listener that requires a client certificate",
        "check the listener's IP filters (winrm get winrm/config/service) and certificate mapping"),
    entry!(On::Http(404), "http-404",
        "there is no WinRM listener at this URL (HTTP 404): wrong path or port, or another web server answers there",
        "check --path (default wsman), --port and --scheme (winrm enumerate winrm/config/listener on the server)"),
    entry!(On::Http(405), "http-405",
        "the URL does not accept POST (HTTP 405): it is not a WinRM endpoint",
        "check --path and --port"),
    entry!(On::Http(411), "http-411",
        "the server wants a Content-Length (HTTP 411): a proxy in between changed the request",
        "connect without the proxy (NO_PROXY) or report it"),
    entry!(On::Http(413), "http-413",
        "the request was too large for the server (HTTP 413)",
        "lower --max-envelope-size"),
    entry!(On::Http(415), "http-415",
        "the server refused the content type (HTTP 415): usually message encryption where the listener expects none, or the other way round",
        "check -a/--auth and --scheme"),
    entry!(On::Http(500), "http-500",
        "the server failed without a WS-Man fault (HTTP 500)",
        "look at the server's WinRM event log"),
    entry!(On::Http(502), "http-502",
        "a proxy or gateway could not reach the WinRM host (HTTP 502)",
        "check the proxy variables (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) or connect directly"),
    entry!(On::Http(503), "http-503",
        "the WinRM service is not available (HTTP 503): stopped, restarting, or the URL is reserved without a running listener",
        "start the service on the server (Start-Service WinRM) and check the listener"),
    entry!(On::Http(504), "http-504",
        "a proxy or gateway timed out reaching the WinRM host (HTTP 504)",
        "check the proxy variables or connect directly"),
    // ---- Kerberos (MIT krb5 texts in GSSAPI minor statuses) ---------------
    entry!(On::Text(&["client not found in kerberos database", "client '"]), "kerberos-client-unknown",
        "the KDC does not know the user principal (Client not found in Kerberos database)",
        "give the user as user@REALM with the realm in upper case"),
    entry!(On::Text(&["not found in kerberos database"]), "kerberos-spn-unknown",
        "the KDC does not know the service principal (Server not found in Kerberos database): the host name is not the one the SPN is registered for (an IP address or an alias), or the SPN is not registered",
        "connect by the host's DNS name, give the registered SPN with --spn, or register it: setspn -S HTTP/<host> <computer account>"),
    entry!(On::Text(&["clock skew too great"]), "kerberos-clock-skew",
        "the clocks of this machine and the KDC (or the server) differ by more than the allowed skew, 5 minutes by default (Clock skew too great)",
        "synchronise this machine's clock with the domain (chrony/ntpd pointed at a domain controller)"),
    entry!(On::Text(&["kdc has no support for encryption type", "no support for encryption type", "bad encryption type"]), "kerberos-enctype",
        "this client and the KDC or the service account share no encryption type (KDC has no support for encryption type): e.g. the client allows only AES and the account has only RC4 keys, or the other way round",
        "align permitted_enctypes/default_tgs_enctypes in krb5.conf with the account's msDS-SupportedEncryptionTypes (AES on current domains)"),
    entry!(On::Text(&["preauthentication failed"]), "kerberos-preauth",
        "the KDC refused the password (Preauthentication failed)",
        "check the password and the user principal (user@REALM, realm in upper case)"),
    entry!(On::Text(&["ticket expired", "credential has expired", "credentials have expired"]), "kerberos-expired",
        "the Kerberos ticket in the cache has expired",
        "get a new one with kinit (or kinit -R to renew)"),
    entry!(On::Text(&["ticket not yet valid"]), "kerberos-not-yet-valid",
        "the ticket is not valid yet: this machine's clock is behind the KDC's",
        "synchronise this machine's clock with the domain"),
    entry!(On::Text(&["no kerberos credentials available", "no credentials cache found", "no credentials were supplied"]), "kerberos-no-ticket",
        "there is no Kerberos ticket for the user (no ticket cache, or it is empty)",
        "run kinit user@REALM (KRB5CCNAME names the cache), or give -u user@REALM with a password"),
    entry!(On::Text(&["cannot contact any kdc", "cannot find kdc", "cannot resolve network address for kdc"]), "kerberos-no-kdc",
        "no KDC of the realm could be reached or found",
        "check krb5.conf ([realms] kdc = ..., or DNS SRV records with dns_lookup_kdc) and that port 88 is reachable"),
    entry!(On::Text(&["decrypt integrity check failed", "message stream modified"]), "kerberos-wrong-key",
        "a Kerberos key did not match: the password, or the service's keytab is out of date with the KDC (the account's password changed)",
        "check the password; on the server side the SPN may be registered to another account (setspn -Q HTTP/<host>)"),
    entry!(On::Text(&["kerberos token refused", "kerberos token was refused", "rejected the kerberos"]), "kerberos-refused-by-server",
        "the server refused the Kerberos ticket: its account cannot decrypt it (SPN registered to another account, or a duplicate SPN) or it accepts only NTLM",
        "check the SPN owner (setspn -Q HTTP/<host>); use -a ntlm if the server only accepts NTLM"),
    // ---- TLS (rustls texts) -------------------------------------------------
    entry!(On::Text(&["unknownissuer", "unknown issuer"]), "tls-untrusted",
        "the server certificate's issuer is not trusted by this client",
        "give the issuing CA's certificate with --ca-file (PEM), or install it in the system store"),
    entry!(On::Text(&["notvalidforname", "not valid for name"]), "tls-name-mismatch",
        "the server certificate is not issued for the host name used",
        "connect by a name the certificate lists (see psrp doctor), or reissue the certificate with this name"),
    entry!(On::Text(&["expired"]), "tls-expired",
        "the server certificate has expired (or this machine's clock is wrong)",
        "renew the listener's certificate (and update the HTTPS listener's thumbprint), or fix the clock"),
    entry!(On::Text(&["invalidcontenttype", "corrupt message"]), "tls-on-plain-port",
        "the port does not speak TLS: it is an HTTP listener",
        "use --scheme http for this port, or the HTTPS port (5986)"),
    entry!(On::Text(&["peerincompatible", "protocolversion", "handshakefailure"]), "tls-incompatible",
        "this client and the server share no TLS version or cipher suite (TLS 1.2 or 1.3 is required)",
        "enable TLS 1.2 on the server (SCHANNEL registry settings)"),
    // ---- authentication and encryption (wsman texts) ------------------------
    entry!(On::Text(&["basic over http", "basic authentication over http"]), "basic-over-http",
        "Basic sends the password readable over plain HTTP, and WinRM refuses it unless AllowUnencrypted=true",
        "use HTTPS (--scheme https), or NTLM/Kerberos/Negotiate, which encrypt every message over HTTP"),
    entry!(On::Text(&["does not offer"]), "scheme-not-offered",
        "the server does not offer the chosen authentication scheme",
        "choose one the server offers (psrp doctor lists them) with -a, or enable it on the server (winrm set winrm/config/service/auth)"),
    entry!(On::Text(&["channel binding"]), "channel-binding",
        "channel binding mismatch: the server checks the binding against its own certificate (CbtHardeningLevel) and psrp saw another one: a TLS-terminating proxy or load balancer, or TLS inspection, sits in between",
        "connect to the server's own HTTPS listener (TLS passthrough, no inspection; NO_PROXY for an HTTP proxy), use HTTP with message encryption, or set CbtHardeningLevel=None on the server (weaker)"),
    entry!(On::Text(&["rejected the credentials", "rejected user"]), "credentials-refused",
        "the server refused the user name or password",
        "check the user name form (DOMAIN\\user or user@REALM), the password and the account's lockout state"),
    // ---- connection ---------------------------------------------------------
    entry!(On::Text(&["failed to lookup address", "name or service not known", "no address associated"]), "dns",
        "the host name does not resolve",
        "check the name and DNS (resolv.conf, /etc/hosts)"),
    entry!(On::Text(&["connection refused"]), "connection-refused",
        "nothing listens on that port (connection refused)",
        "check --port and --scheme (5985 http, 5986 https) and that WinRM has a listener there (winrm quickconfig)"),
    entry!(On::Text(&["timed out"]), "timeout",
        "the host did not answer in time: a firewall drops the packets, or the host is down",
        "check the firewall (TCP 5985/5986) and the host; raise --connect-timeout for slow links"),
];

fn find(pred: impl Fn(&On) -> bool) -> Option<&'static Advice> {
    TABLE.iter().find(|(on, _)| pred(on)).map(|(_, a)| a)
}

/// The advice for a WS-Man fault code.
pub fn for_fault(code: u32) -> Option<&'static Advice> {
    find(|on| matches!(on, On::Fault(c) if *c == code))
}

/// The advice for an HTTP status (without a WS-Man fault).
pub fn for_http(status: u16) -> Option<&'static Advice> {
    find(|on| matches!(on, On::Http(s) if *s == status))
}

/// The advice whose text pattern appears in `text` (case-insensitive).
pub fn for_text(text: &str) -> Option<&'static Advice> {
    let lower = text.to_ascii_lowercase();
    find(|on| matches!(on, On::Text(words) if words.iter().any(|w| lower.contains(w))))
}

/// The advice for a transport error: its fault code, its HTTP status, else
/// its text.
pub fn for_wsman(e: &wsman::Error) -> Option<&'static Advice> {
    if let Some(a) = e.fault().and_then(|f| f.code).and_then(for_fault) {
        return Some(a);
    }
    if let wsman::Error::HttpStatus { status, .. } = e {
        if let Some(a) = for_http(*status) {
            return Some(a);
        }
    }
    for_text(&e.to_string())
}

/// The advice for a client error, if the table knows its cause.
pub fn for_client_error(e: &ClientError) -> Option<&'static Advice> {
    match e {
        ClientError::Wsman { source, .. } => for_wsman(source),
        // The library's hint is appended to its message; match the error
        // itself, not the hint's words.
        _ => None,
    }
}

/// The line a failed `invoke` ends with.
pub fn invoke_hint(a: &Advice) -> String {
    format!(
        "cause: {}. fix: {}. For a step-by-step check run `psrp doctor` with the same connection \
         options.",
        a.cause, a.fix
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_statuses_and_texts_are_found() {
        assert_eq!(
            for_fault(2_150_858_811).unwrap().id,
            "unknown-configuration"
        );
        assert_eq!(for_fault(5).unwrap().id, "access-denied");
        assert_eq!(for_http(404).unwrap().id, "http-404");
        assert!(for_fault(1).is_none() && for_http(418).is_none());
        let gss = "GSSAPI initiating the security context: Unspecified GSS failure.  Minor code \
                   may provide more information: Server not found in Kerberos database";
        assert_eq!(for_text(gss).unwrap().id, "kerberos-spn-unknown");
        assert_eq!(
            for_text("Clock skew too great").unwrap().id,
            "kerberos-clock-skew"
        );
        assert_eq!(
            for_text("invalid peer certificate: UnknownIssuer")
                .unwrap()
                .id,
            "tls-untrusted"
        );
        assert_eq!(
            for_text("connect to localhost:1: Connection refused (os error 111)")
                .unwrap()
                .id,
            "connection-refused"
        );
    }

    #[test]
    fn every_entry_is_complete_and_codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (on, a) in TABLE {
            assert!(!a.id.is_empty() && !a.cause.is_empty() && !a.fix.is_empty());
            assert!(!a.cause.ends_with('.') && !a.fix.ends_with('.'), "{}", a.id);
            match on {
                On::Fault(c) => assert!(seen.insert(format!("f{c}")), "{c}"),
                On::Http(s) => assert!(seen.insert(format!("h{s}")), "{s}"),
                On::Text(words) => {
                    assert!(words.iter().all(|w| *w == w.to_ascii_lowercase()))
                }
            }
        }
    }
}
