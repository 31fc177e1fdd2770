//! Client configuration: endpoint, credentials, TLS, encryption policy, timeouts.

use crate::error::Error;
use crate::secret::Secret;
use crate::transport::retry::{ReconnectHook, ReconnectPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use url::Url;

/// How to authenticate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Auth {
    /// HTTP Basic (local accounts). Only over HTTPS unless
    /// [`EncryptionPolicy::DangerousAllowUnencryptedHttp`].
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// NTLMv2 (`DOMAIN\user`, `user@domain` or a local `user`).
    Ntlm {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// Kerberos through the system GSSAPI.
    Kerberos {
        /// Principal; None = the default principal of the ticket cache.
        username: Option<String>,
        /// Password to get a ticket with; None = use the ticket cache (`KRB5CCNAME`).
        password: Option<Secret>,
        /// Service principal; default `HTTP/<endpoint host>`.
        spn: Option<String>,
        /// Request credential delegation (forwardable TGT to the server).
        delegate: bool,
    },
    /// SPNEGO: Kerberos when credentials for it are available, otherwise
    /// NTLM (which needs `username` and `password`).
    Negotiate {
        /// User name (principal for Kerberos, account for NTLM).
        username: Option<String>,
        /// Password.
        password: Option<Secret>,
        /// Service principal; default `HTTP/<endpoint host>`.
        spn: Option<String>,
        /// Request credential delegation (Kerberos only).
        delegate: bool,
    },
    /// A client certificate (HTTPS only): presented in the TLS handshake,
    /// with WinRM's HTTPS mutual-authentication profile named in the
    /// `Authorization` header; the server maps it to an account. Messages
    /// are protected by TLS only (no WinRM message encryption).
    Certificate {
        /// The certificate chain and key.
        certificate: crate::ClientCertificate,
    },
    /// CredSSP (MS-CSSP): NTLM inside a TLS channel carried in HTTP
    /// headers, then the user's password **handed to the server**, which
    /// can then act as the user anywhere (the second hop). Only when asked
    /// for by name: never chosen by Negotiate. Messages are sealed with the
    /// CredSSP TLS session over HTTP. See [`crate::auth::credssp`].
    CredSsp {
        /// User name (`DOMAIN\user`, `user@domain` or `user`).
        username: String,
        /// Password: delegated to the server.
        password: Secret,
    },
}

impl Auth {
    /// Short name for messages (`basic`, `ntlm`, `kerberos`, `negotiate`,
    /// `certificate`, `credssp`).
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "basic",
            Auth::Ntlm { .. } => "ntlm",
            Auth::Kerberos { .. } => "kerberos",
            Auth::Negotiate { .. } => "negotiate",
            Auth::Certificate { .. } => "certificate",
            Auth::CredSsp { .. } => "credssp",
        }
    }

    /// The client certificate of [`Auth::Certificate`].
    pub fn client_certificate(&self) -> Option<&crate::ClientCertificate> {
        match self {
            Auth::Certificate { certificate } => Some(certificate),
            _ => None,
        }
    }

    /// Whether Kerberos delegation is requested.
    pub fn delegates(&self) -> bool {
        matches!(
            self,
            Auth::Kerberos { delegate: true, .. } | Auth::Negotiate { delegate: true, .. }
        )
    }

    /// The user name, when one is configured.
    pub fn username(&self) -> Option<&str> {
        match self {
            Auth::Basic { username, .. }
            | Auth::Ntlm { username, .. }
            | Auth::CredSsp { username, .. } => Some(username),
            Auth::Kerberos { username, .. } | Auth::Negotiate { username, .. } => {
                username.as_deref()
            }
            Auth::Certificate { .. } => None,
        }
    }
}

/// Whether WinRM message encryption is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EncryptionPolicy {
    /// Encrypt over HTTP (NTLM, Kerberos, Negotiate); rely on TLS over HTTPS.
    /// Basic over HTTP is refused.
    #[default]
    Auto,
    /// Also encrypt over HTTPS (not possible with Basic).
    Always,
    /// Allow clear-text messages over plain HTTP (Basic over HTTP, or
    /// NTLM/Kerberos without encryption). Only for servers configured with
    /// `AllowUnencrypted=true`; anyone on the path can read and alter them.
    DangerousAllowUnencryptedHttp,
}

/// TLS options for HTTPS endpoints.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// PEM file of CA certificates to trust instead of the system store.
    pub ca_bundle: Option<PathBuf>,
    /// Accept any server certificate (expired, self-signed, wrong host).
    /// Disables the protection TLS gives; channel bindings still apply.
    pub danger_accept_invalid_certs: bool,
}

/// Which HTTP proxy to use. `Debug` shows a URL's password as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyConfig {
    /// `HTTP_PROXY` / `HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY` from the environment.
    #[default]
    Environment,
    /// No proxy, whatever the environment says.
    None,
    /// This proxy URL for all requests (`http://[user:password@]host:port`).
    Url(String),
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyConfig::Environment => f.write_str("Environment"),
            ProxyConfig::None => f.write_str("None"),
            ProxyConfig::Url(u) => f.debug_tuple("Url").field(&redact_url_password(u)).finish(),
        }
    }
}

/// `url` with the password of its `user:password@` part replaced by
/// `<redacted>` (the user name stays, to tell proxies apart). Works on the
/// text, so a URL that does not parse is redacted too.
fn redact_url_password(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!(
            "{}{}:<redacted>{}",
            &url[..start],
            &authority[..colon],
            &url[start + at..]
        ),
        None => url.to_owned(),
    }
}

/// Negotiate authenticated with NTLM because Kerberos could not be used.
///
/// NTLM is weaker than Kerberos (no mutual authentication of the server,
/// password-derived keys open to offline guessing), so a client that meant
/// to use Kerberos should hear about it: see [`WsmanConfig::on_ntlm_fallback`]
/// and [`crate::WsmanClient::ntlm_fallback`], or forbid it with
/// [`WsmanConfig::allow_ntlm_fallback`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NtlmFallback {
    /// The endpoint.
    pub endpoint: String,
    /// Why Kerberos could not be used: the GSSAPI error, e.g. no ticket in
    /// the cache, a realm the KDC configuration does not know, or a user or
    /// service principal the KDC does not know.
    pub kerberos_error: String,
}

impl std::fmt::Display for NtlmFallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Negotiate with {} used NTLM because Kerberos could not be used: {}",
            self.endpoint, self.kerberos_error
        )
    }
}

/// A function told when Negotiate falls back to NTLM (once per client):
/// [`WsmanConfig::on_ntlm_fallback`]. It runs on the task that
/// authenticates, so it should be quick (log, count, set a flag).
#[derive(Clone)]
pub struct FallbackHook(Arc<dyn Fn(&NtlmFallback) + Send + Sync>);

impl FallbackHook {
    /// Wraps a function.
    pub fn new(f: impl Fn(&NtlmFallback) + Send + Sync + 'static) -> Self {
        FallbackHook(Arc::new(f))
    }

    /// Calls the function.
    pub fn call(&self, fallback: &NtlmFallback) {
        (self.0)(fallback)
    }
}

impl std::fmt::Debug for FallbackHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FallbackHook(..)")
    }
}

/// Everything [`crate::WsmanClient`] needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WsmanConfig {
    /// Endpoint, e.g. `http://host:5985/wsman` or `https://host:5986/wsman`.
    pub endpoint: Url,
    /// Credentials and method.
    pub auth: Auth,
    /// TLS options.
    pub tls: TlsOptions,
    /// Message encryption policy.
    pub encryption: EncryptionPolicy,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// WS-Man OperationTimeout (how long a Receive may wait for output).
    pub operation_timeout: Duration,
    /// Whole-request timeout; must exceed `operation_timeout`
    /// (default: operation timeout + 10 s).
    pub read_timeout: Option<Duration>,
    /// MaxEnvelopeSize in bytes (default 153600).
    pub max_envelope_size: usize,
    /// `wsman:Locale` (default `en-US`).
    pub locale: String,
    /// `wsmv:DataLocale` (default: same as `locale`).
    pub data_locale: Option<String>,
    /// Proxy.
    pub proxy: ProxyConfig,
    /// Most authenticated connections held at once (each carries one
    /// request at a time; a blocked Receive occupies one).
    pub max_connections: usize,
    /// Whether [`Auth::Negotiate`] may use NTLM when no Kerberos credentials
    /// can be had (default true, as Windows clients do). With false, a
    /// Kerberos failure is an [`Error::Auth`] that carries the Kerberos
    /// error.
    pub allow_ntlm_fallback: bool,
    /// Called once per client, the first time Negotiate falls back to NTLM.
    pub on_ntlm_fallback: Option<FallbackHook>,
    /// Retries of Receive, Send and Signal after a broken connection
    /// (default: 5 from 1 s, doubling).
    pub reconnect: ReconnectPolicy,
    /// Called before every such retry.
    pub on_reconnect: Option<ReconnectHook>,
}

impl WsmanConfig {
    /// Configuration with defaults for an endpoint URL.
    pub fn new(endpoint: &str, auth: Auth) -> Result<Self, Error> {
        let endpoint = Url::parse(endpoint)
            .map_err(|e| Error::Config(format!("endpoint {endpoint:?} is not a URL: {e}")))?;
        Ok(WsmanConfig {
            endpoint,
            auth,
            tls: TlsOptions::default(),
            encryption: EncryptionPolicy::Auto,
            connect_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(20),
            read_timeout: None,
            max_envelope_size: 153_600,
            locale: "en-US".into(),
            data_locale: None,
            proxy: ProxyConfig::Environment,
            max_connections: 4,
            allow_ntlm_fallback: true,
            on_ntlm_fallback: None,
            reconnect: ReconnectPolicy::default(),
            on_reconnect: None,
        })
    }

    /// The usual WinRM endpoint for a host: `http://host:5985/wsman` or
    /// `https://host:5986/wsman` (IPv6 addresses are bracketed).
    pub fn endpoint_for(host: &str, https: bool, port: Option<u16>, path: &str) -> String {
        let scheme = if https { "https" } else { "http" };
        let port = port.unwrap_or(if https { 5986 } else { 5985 });
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        format!("{scheme}://{host}:{port}/{}", path.trim_start_matches('/'))
    }

    /// Whether the endpoint is HTTPS.
    pub fn is_https(&self) -> bool {
        self.endpoint.scheme() == "https"
    }

    /// Host name of the endpoint (without IPv6 brackets).
    pub fn host(&self) -> String {
        self.endpoint
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()
    }

    /// The effective whole-request timeout.
    pub fn effective_read_timeout(&self) -> Duration {
        self.read_timeout
            .unwrap_or(self.operation_timeout + Duration::from_secs(10))
    }

    /// The SPN to use for Kerberos/Negotiate.
    pub fn spn(&self) -> String {
        match &self.auth {
            Auth::Kerberos { spn: Some(s), .. } | Auth::Negotiate { spn: Some(s), .. } => s.clone(),
            _ => format!("HTTP/{}", self.host()),
        }
    }

    /// The client certificate, with certificate authentication.
    pub fn client_certificate(&self) -> Option<&crate::ClientCertificate> {
        self.auth.client_certificate()
    }

    /// Whether messages are sealed with the auth context (decided by the
    /// policy, the scheme and the auth method).
    pub fn encrypts(&self) -> bool {
        let sealing_auth = !matches!(self.auth, Auth::Basic { .. } | Auth::Certificate { .. });
        match self.encryption {
            EncryptionPolicy::Auto => sealing_auth && !self.is_https(),
            EncryptionPolicy::Always => sealing_auth,
            EncryptionPolicy::DangerousAllowUnencryptedHttp => false,
        }
    }

    /// Checks the configuration, including the security defaults.
    pub fn validate(&self) -> Result<(), Error> {
        let scheme = self.endpoint.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(Error::Config(format!(
                "endpoint scheme must be http or https, not {scheme:?}"
            )));
        }
        if self.endpoint.host_str().is_none_or(str::is_empty) {
            return Err(Error::Config("endpoint has no host".into()));
        }
        let basic = matches!(self.auth, Auth::Basic { .. });
        if basic
            && !self.is_https()
            && self.encryption != EncryptionPolicy::DangerousAllowUnencryptedHttp
        {
            return Err(Error::Config(
                "Basic authentication over plain HTTP would send the password and every message in clear text; \
                 use HTTPS, or set EncryptionPolicy::DangerousAllowUnencryptedHttp if you really mean it"
                    .into(),
            ));
        }
        if matches!(self.auth, Auth::Certificate { .. }) {
            if !self.is_https() {
                return Err(Error::Config(
                    "certificate authentication needs HTTPS: the certificate is presented in the TLS \
                     handshake (use an https:// endpoint, port 5986)"
                        .into(),
                ));
            }
            if self.encryption == EncryptionPolicy::Always {
                return Err(Error::Config(
                    "certificate authentication cannot encrypt messages (TLS protects them); \
                     do not ask for EncryptionPolicy::Always"
                        .into(),
                ));
            }
        }
        if basic && self.encryption == EncryptionPolicy::Always {
            return Err(Error::Config(
                "Basic authentication cannot encrypt messages; use NTLM, Kerberos or Negotiate for EncryptionPolicy::Always"
                    .into(),
            ));
        }
        if let Auth::Negotiate {
            username: None,
            password: Some(_),
            ..
        }
        | Auth::Kerberos {
            username: None,
            password: Some(_),
            ..
        } = &self.auth
        {
            return Err(Error::Config("a password needs a username".into()));
        }
        if self.max_envelope_size < 8192 {
            return Err(Error::Config(format!(
                "max_envelope_size {} is below the WS-Man minimum of 8192 bytes",
                self.max_envelope_size
            )));
        }
        if self.effective_read_timeout() <= self.operation_timeout {
            return Err(Error::Config(format!(
                "read timeout ({:?}) must exceed the operation timeout ({:?}) or every idle Receive fails",
                self.effective_read_timeout(),
                self.operation_timeout
            )));
        }
        if self.max_connections == 0 {
            return Err(Error::Config("max_connections must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> Auth {
        Auth::Basic {
            username: "u".into(),
            password: Secret::new("p"),
        }
    }

    fn ntlm() -> Auth {
        Auth::Ntlm {
            username: "u".into(),
            password: Secret::new("p"),
        }
    }

    #[test]
    fn secure_defaults() {
        let c = WsmanConfig::new("http://h:5985/wsman", basic()).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("Basic authentication over plain HTTP"),
            "{err}"
        );
        let mut c = c;
        c.encryption = EncryptionPolicy::DangerousAllowUnencryptedHttp;
        c.validate().unwrap();
        assert!(!c.encrypts());

        let c = WsmanConfig::new("http://h:5985/wsman", ntlm()).unwrap();
        c.validate().unwrap();
        assert!(c.encrypts());
        let c = WsmanConfig::new("https://h:5986/wsman", ntlm()).unwrap();
        assert!(!c.encrypts());
        let mut c = WsmanConfig::new("https://h:5986/wsman", basic()).unwrap();
        c.validate().unwrap();
        c.encryption = EncryptionPolicy::Always;
        assert!(c.validate().is_err());
    }

    #[test]
    fn timeouts_and_limits() {
        let mut c = WsmanConfig::new("https://h/wsman", ntlm()).unwrap();
        assert_eq!(c.effective_read_timeout(), Duration::from_secs(30));
        c.read_timeout = Some(Duration::from_secs(20));
        assert!(c.validate().is_err());
        c.read_timeout = None;
        c.max_envelope_size = 100;
        assert!(c.validate().is_err());
        assert!(WsmanConfig::new("ftp://h/", ntlm())
            .unwrap()
            .validate()
            .is_err());
        assert!(WsmanConfig::new("not a url", ntlm()).is_err());
    }

    #[test]
    fn endpoints_and_spn() {
        assert_eq!(
            WsmanConfig::endpoint_for("::1", false, None, "wsman"),
            "http://[::1]:5985/wsman"
        );
        assert_eq!(
            WsmanConfig::endpoint_for("win", true, Some(443), "/wsman"),
            "https://win:443/wsman"
        );
        let c = WsmanConfig::new("http://[::1]:5985/wsman", ntlm()).unwrap();
        assert_eq!(c.spn(), "HTTP/::1");
        let c = WsmanConfig::new(
            "http://win.example:5985/wsman",
            Auth::Kerberos {
                username: None,
                password: None,
                spn: Some("HTTP/other@REALM".into()),
                delegate: false,
            },
        )
        .unwrap();
        assert_eq!(c.spn(), "HTTP/other@REALM");
    }

    #[test]
    fn proxy_passwords_are_redacted() {
        for (url, shown) in [
            (
                "http://bob:hunter2@proxy:3128",
                "http://bob:<redacted>@proxy:3128",
            ),
            (
                "bob:hunter2@proxy:3128/x?y",
                "bob:<redacted>@proxy:3128/x?y",
            ),
            // An unescaped '@' in the password: everything before the last
            // '@' of the authority is user information.
            ("http://bob:hun@ter2@proxy", "http://bob:<redacted>@proxy"),
            ("http://bob@proxy:3128", "http://bob@proxy:3128"),
            ("http://proxy:3128/a@b", "http://proxy:3128/a@b"),
            ("http://[::1]:3128", "http://[::1]:3128"),
        ] {
            assert_eq!(redact_url_password(url), shown);
        }
        let p = ProxyConfig::Url("http://bob:hunter2@proxy:3128".into());
        assert_eq!(
            format!("{p:?}"),
            r#"Url("http://bob:<redacted>@proxy:3128")"#
        );
        assert_eq!(format!("{:?}", ProxyConfig::Environment), "Environment");
    }

    #[test]
    fn debug_never_shows_passwords() {
        let c = WsmanConfig::new(
            "https://h/wsman",
            Auth::Ntlm {
                username: "bob".into(),
                password: Secret::new("hunter2"),
            },
        )
        .unwrap();
        let mut c = c;
        c.proxy = ProxyConfig::Url("http://proxyuser:s3cr3t-proxy@proxy:3128".into());
        let shown = format!("{c:?}");
        assert!(
            shown.contains("bob") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(
            shown.contains("proxyuser:<redacted>@proxy:3128") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
