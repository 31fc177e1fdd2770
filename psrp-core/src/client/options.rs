//! Where and how to connect: [`ConnectionOptions`], turned into the
//! WS-Man transport's configuration.

use std::path::PathBuf;
use std::time::Duration;

use wsman::{Auth, EncryptionPolicy, FallbackHook, NtlmFallback, ProxyConfig, Secret, WsmanConfig};

use super::error::ClientError;

/// The configuration name PowerShell uses when none is given.
pub const DEFAULT_CONFIGURATION_NAME: &str = "Microsoft.PowerShell";

/// `http` (WinRM port 5985, messages encrypted by the authentication) or
/// `https` (port 5986, TLS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// HTTP: NTLM, Kerberos and Negotiate encrypt every message.
    #[default]
    Http,
    /// HTTPS.
    Https,
}

impl Scheme {
    /// WinRM's default port for the scheme.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 5985,
            Scheme::Https => 5986,
        }
    }

    /// `http` or `https`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl std::str::FromStr for Scheme {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "http" => Ok(Scheme::Http),
            "https" => Ok(Scheme::Https),
            _ => Err(ClientError::Config(format!(
                "scheme {s:?} is neither http nor https"
            ))),
        }
    }
}

/// How to authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// HTTP Basic (local accounts; HTTPS, or HTTP with
    /// [`ConnectionOptions::allow_unencrypted`]).
    Basic,
    /// NTLMv2.
    Ntlm,
    /// Kerberos through the system GSSAPI: the ticket cache (`kinit`,
    /// `KRB5CCNAME`), or a ticket fetched with the user name and password.
    Kerberos,
    /// SPNEGO: Kerberos when credentials for it can be had, else NTLM.
    #[default]
    Negotiate,
    /// A client certificate over HTTPS
    /// ([`ConnectionOptions::client_certificate`]); the server maps it to an
    /// account. The password, if any, decrypts an encrypted key.
    Certificate,
    /// CredSSP: NTLM inside TLS, then the user name and **password handed
    /// to the server**, which can act as the user on other hosts (the
    /// second hop). Only when asked for by name; messages over HTTP are
    /// sealed with the CredSSP TLS session.
    CredSsp,
}

impl AuthMethod {
    /// `basic`, `ntlm`, `kerberos`, `negotiate`, `certificate` or `credssp`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Certificate => "certificate",
            AuthMethod::Basic => "basic",
            AuthMethod::Ntlm => "ntlm",
            AuthMethod::Kerberos => "kerberos",
            AuthMethod::Negotiate => "negotiate",
            AuthMethod::CredSsp => "credssp",
        }
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "basic" => Ok(AuthMethod::Basic),
            "ntlm" => Ok(AuthMethod::Ntlm),
            "kerberos" => Ok(AuthMethod::Kerberos),
            "negotiate" => Ok(AuthMethod::Negotiate),
            "certificate" => Ok(AuthMethod::Certificate),
            "credssp" => Ok(AuthMethod::CredSsp),
            _ => Err(ClientError::Config(format!(
                "authentication {s:?} is not one of basic, ntlm, kerberos, negotiate, certificate, credssp"
            ))),
        }
    }
}

/// Where and how to connect (a builder). `Debug` never shows the password.
///
/// ```
/// use std::time::Duration;
/// use psrp_core::client::{AuthMethod, ConnectionOptions, Scheme};
///
/// let options = ConnectionOptions::new("win01.example.com")
///     .auth(AuthMethod::Kerberos) // ticket cache: kinit first
///     .configuration_name("JEA.Maintenance")
///     .operation_timeout(Duration::from_secs(30));
/// assert_eq!(options.endpoint(), "http://win01.example.com:5985/wsman");
/// assert_eq!(
///     options.resource_uri(),
///     "http://schemas.microsoft.com/powershell/JEA.Maintenance"
/// );
///
/// let https = ConnectionOptions::new("10.0.0.5")
///     .scheme(Scheme::Https)
///     .auth(AuthMethod::Basic)
///     .credentials("Administrator", "secret")
///     .ca_file("/etc/ssl/winrm-ca.pem");
/// assert_eq!(https.endpoint(), "https://10.0.0.5:5986/wsman");
/// assert!(!format!("{https:?}").contains("secret"));
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionOptions {
    host: String,
    port: Option<u16>,
    scheme: Scheme,
    path: String,
    auth: AuthMethod,
    username: Option<String>,
    password: Option<Secret>,
    spn: Option<String>,
    delegate: bool,
    client_certificate: Option<(PathBuf, PathBuf)>,
    ca_file: Option<PathBuf>,
    danger_accept_invalid_certs: bool,
    allow_unencrypted: bool,
    configuration_name: String,
    connect_timeout: Duration,
    operation_timeout: Duration,
    read_timeout: Option<Duration>,
    max_envelope_size: usize,
    locale: String,
    data_locale: Option<String>,
    max_connections: Option<usize>,
    proxy: ProxyConfig,
    allow_ntlm_fallback: bool,
    on_ntlm_fallback: Option<FallbackHook>,
    reconnect: wsman::ReconnectPolicy,
    on_reconnect: Option<wsman::ReconnectHook>,
}

impl ConnectionOptions {
    /// Options for `host` (a name, an IPv4 or an IPv6 address) with the
    /// defaults: HTTP on port 5985, path `wsman`, Negotiate, configuration
    /// `Microsoft.PowerShell`, connect timeout 30 s, operation timeout 20 s,
    /// MaxEnvelopeSize 153600, locale `en-US`.
    pub fn new(host: impl Into<String>) -> Self {
        ConnectionOptions {
            host: host.into(),
            port: None,
            scheme: Scheme::Http,
            path: "wsman".to_owned(),
            auth: AuthMethod::Negotiate,
            username: None,
            password: None,
            spn: None,
            delegate: false,
            client_certificate: None,
            ca_file: None,
            danger_accept_invalid_certs: false,
            allow_unencrypted: false,
            configuration_name: DEFAULT_CONFIGURATION_NAME.to_owned(),
            connect_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(20),
            read_timeout: None,
            max_envelope_size: 153_600,
            locale: "en-US".to_owned(),
            data_locale: None,
            max_connections: None,
            proxy: ProxyConfig::Environment,
            allow_ntlm_fallback: true,
            on_ntlm_fallback: None,
            reconnect: wsman::ReconnectPolicy::default(),
            on_reconnect: None,
        }
    }

    /// The scheme (default HTTP).
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// The port (default 5985 for HTTP, 5986 for HTTPS).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The URL path (default `wsman`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The authentication method (default Negotiate).
    pub fn auth(mut self, auth: AuthMethod) -> Self {
        self.auth = auth;
        self
    }

    /// User name and password. For Kerberos and Negotiate they are
    /// optional: without them the ticket cache is used.
    pub fn credentials(self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.username(username).password(password)
    }

    /// The user name (`DOMAIN\user`, `user@REALM` or a local `user`).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The Kerberos service principal (default `HTTP/<host>`).
    pub fn spn(mut self, spn: impl Into<String>) -> Self {
        self.spn = Some(spn.into());
        self
    }

    /// Ask for Kerberos credential delegation (a forwardable TGT for the
    /// server, for second hops).
    pub fn delegate(mut self, delegate: bool) -> Self {
        self.delegate = delegate;
        self
    }

    /// The client certificate (PEM, then any intermediates) and its key (PEM;
    /// an encrypted PKCS#8 key is decrypted with the password) for
    /// [`AuthMethod::Certificate`]. The files are read when the pool opens.
    pub fn client_certificate(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some((cert_file.into(), key_file.into()));
        self
    }

    /// A PEM file of CA certificates to trust instead of the system store.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Accept any server certificate (expired, self-signed, another host's).
    /// Anyone on the network path can then read and change the session.
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.danger_accept_invalid_certs = yes;
        self
    }

    /// Allow clear-text messages over HTTP: Basic over HTTP, or no WinRM
    /// message encryption with the other methods. Only for servers with
    /// `AllowUnencrypted=true`; anyone on the path can read them.
    pub fn allow_unencrypted(mut self, yes: bool) -> Self {
        self.allow_unencrypted = yes;
        self
    }

    /// The session configuration (default `Microsoft.PowerShell`; JEA
    /// endpoints have their own names). A full resource URI is used as is.
    pub fn configuration_name(mut self, name: impl Into<String>) -> Self {
        self.configuration_name = name.into();
        self
    }

    /// TCP and TLS connect timeout (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// WS-Man OperationTimeout: how long the server holds a Receive when
    /// there is no output yet (default 20 s). The client then polls again,
    /// so an idle connection carries a request at least every 20 s: well
    /// within the idle limits of common proxies, NAT gateways and load
    /// balancers (60 s and more), which would otherwise cut a long poll.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How many times Receive, Send, Signal and Delete are retried on a new
    /// connection (authenticated again; over HTTP with new encryption keys)
    /// after the connection broke: reset, closed, timed out, cut in the
    /// middle of a response, or an HTTP 5xx without a WS-Man fault (default
    /// 5; 0 turns reconnection off). The same shell and command go on.
    ///
    /// Receives are numbered (`SequenceId`), so a server that keeps its last
    /// response sends it again for the resent Receive: nothing is lost or
    /// duplicated. A server that does not (it does not echo the number)
    /// loses the output of the response that was cut; every such retry is
    /// reported with [`wsman::ReconnectEvent::output_may_be_lost`]. A Send
    /// is only resent when it surely did not reach the server; otherwise
    /// the pipeline fails with [`wsman::Error::SendInterrupted`] rather than
    /// risk feeding it the input twice. Retries exhausted give
    /// [`wsman::Error::ReconnectFailed`] (kind [`super::ErrorKind::Connection`]).
    ///
    /// Retries wait inside the operation's future, so a timeout around the
    /// whole run (`tokio::time::timeout`, the CLI's `--timeout`) bounds them
    /// too: it stays a deadline for the run, not for one attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// use psrp_core::client::ConnectionOptions;
    ///
    /// let options = ConnectionOptions::new("win01.example.com")
    ///     .reconnect_retries(10)
    ///     .reconnect_backoff(Duration::from_millis(500))
    ///     .on_reconnect(|event| eprintln!("warning: {event}"));
    /// assert_eq!(options.reconnect_policy().retries, 10);
    /// ```
    pub fn reconnect_retries(mut self, retries: u32) -> Self {
        self.reconnect.retries = retries;
        self
    }

    /// The wait before the first reconnection retry, doubled for each
    /// further one up to 30 s (default 1 s: 1, 2, 4, 8, 16 s for the
    /// default 5 retries).
    pub fn reconnect_backoff(mut self, backoff: Duration) -> Self {
        self.reconnect.backoff = backoff;
        self
    }

    /// The reconnection policy in effect.
    pub fn reconnect_policy(&self) -> wsman::ReconnectPolicy {
        self.reconnect
    }

    /// Calls `f` before every reconnection retry (what broke, which retry,
    /// the wait). It runs on the retrying task: keep it quick.
    pub fn on_reconnect(
        mut self,
        f: impl Fn(&wsman::ReconnectEvent) + Send + Sync + 'static,
    ) -> Self {
        self.on_reconnect = Some(wsman::ReconnectHook::new(f));
        self
    }

    /// Whole-request timeout; must exceed the operation timeout (default
    /// operation timeout + 10 s).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// MaxEnvelopeSize in bytes (default 153600, at least 8192).
    pub fn max_envelope_size(mut self, bytes: usize) -> Self {
        self.max_envelope_size = bytes;
        self
    }

    /// `wsman:Locale` (default `en-US`): the language of server messages.
    pub fn locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = locale.into();
        self
    }

    /// `wsmv:DataLocale` (default: the locale): number and date formats.
    pub fn data_locale(mut self, locale: impl Into<String>) -> Self {
        self.data_locale = Some(locale.into());
        self
    }

    /// Most authenticated connections held at once (default: the pool's
    /// maximum runspaces + 2, at least 4). Each pipeline's pending Receive
    /// occupies one.
    pub fn max_connections(mut self, count: usize) -> Self {
        self.max_connections = Some(count);
        self
    }

    /// The HTTP proxy (default: from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`).
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = proxy;
        self
    }

    /// Whether Negotiate may use NTLM when Kerberos credentials cannot be
    /// had (no ticket, a realm or user the KDC does not know; default true).
    /// With false such a Kerberos failure is an authentication error
    /// ([`super::ErrorKind::Auth`]) that carries the Kerberos reason.
    ///
    /// ```
    /// use psrp_core::client::{AuthMethod, ConnectionOptions};
    ///
    /// let kerberos_or_nothing = ConnectionOptions::new("win01.example.com")
    ///     .auth(AuthMethod::Negotiate)
    ///     .credentials("alice@EXAMPLE.COM", "secret")
    ///     .allow_ntlm_fallback(false);
    /// # let _ = kerberos_or_nothing;
    /// ```
    pub fn allow_ntlm_fallback(mut self, allow: bool) -> Self {
        self.allow_ntlm_fallback = allow;
        self
    }

    /// Calls `f` when Negotiate falls back to NTLM (at most once per pool,
    /// while it authenticates its first connection without Kerberos), with
    /// the reason Kerberos could not be used. Afterwards
    /// [`super::RunspacePool::ntlm_fallback`] tells the same.
    ///
    /// ```
    /// use psrp_core::client::ConnectionOptions;
    ///
    /// let options = ConnectionOptions::new("win01.example.com")
    ///     .credentials("EXAMPLE\\alice", "secret")
    ///     .on_ntlm_fallback(|f| eprintln!("warning: {f}"));
    /// # let _ = options;
    /// ```
    pub fn on_ntlm_fallback(mut self, f: impl Fn(&NtlmFallback) + Send + Sync + 'static) -> Self {
        self.on_ntlm_fallback = Some(FallbackHook::new(f));
        self
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The authentication method.
    pub fn auth_method(&self) -> AuthMethod {
        self.auth
    }

    /// The user name, if set.
    pub fn user(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The session configuration name.
    pub fn configuration(&self) -> &str {
        &self.configuration_name
    }

    /// The endpoint URL, e.g. `http://win01:5985/wsman`.
    pub fn endpoint(&self) -> String {
        WsmanConfig::endpoint_for(
            &self.host,
            self.scheme == Scheme::Https,
            Some(self.port.unwrap_or(self.scheme.default_port())),
            &self.path,
        )
    }

    /// The ResourceURI of the configuration:
    /// `http://schemas.microsoft.com/powershell/<name>`, or the name itself
    /// when it is already a URI.
    pub fn resource_uri(&self) -> String {
        if self.configuration_name.contains("://") {
            return self.configuration_name.clone();
        }
        format!(
            "{}{}",
            wsman::shell::POWERSHELL_RESOURCE_PREFIX,
            self.configuration_name
        )
    }

    fn wsman_auth(&self) -> Result<Auth, ClientError> {
        let needs = |what: &str| {
            ClientError::Config(format!(
                "{} authentication needs a {what}",
                self.auth.name()
            ))
        };
        Ok(match self.auth {
            AuthMethod::Basic => Auth::Basic {
                username: self.username.clone().ok_or_else(|| needs("user name"))?,
                password: self.password.clone().ok_or_else(|| needs("password"))?,
            },
            AuthMethod::Ntlm => Auth::Ntlm {
                username: self.username.clone().ok_or_else(|| needs("user name"))?,
                password: self.password.clone().ok_or_else(|| needs("password"))?,
            },
            AuthMethod::Kerberos => Auth::Kerberos {
                username: self.username.clone(),
                password: self.password.clone(),
                spn: self.spn.clone(),
                delegate: self.delegate,
            },
            AuthMethod::Negotiate => Auth::Negotiate {
                username: self.username.clone(),
                password: self.password.clone(),
                spn: self.spn.clone(),
                delegate: self.delegate,
            },
            AuthMethod::CredSsp => Auth::CredSsp {
                username: self.username.clone().ok_or_else(|| needs("user name"))?,
                password: self.password.clone().ok_or_else(|| needs("password"))?,
            },
            AuthMethod::Certificate => {
                let Some((cert, key)) = &self.client_certificate else {
                    return Err(needs(
                        "client certificate and key (ConnectionOptions::client_certificate)",
                    ));
                };
                let certificate =
                    wsman::ClientCertificate::from_pem_files(cert, key, self.password.as_ref())
                        .map_err(|e| ClientError::Config(e.to_string()))?;
                Auth::Certificate { certificate }
            }
        })
    }

    /// The WS-Man transport configuration, checked (security defaults
    /// included). `max_runspaces` sizes the connection pool when
    /// [`ConnectionOptions::max_connections`] was not set.
    pub fn to_wsman_config(&self, max_runspaces: usize) -> Result<WsmanConfig, ClientError> {
        if self.host.trim().is_empty() {
            return Err(ClientError::Config("no host given".to_owned()));
        }
        let name = &self.configuration_name;
        let bad_char = |c: char| c.is_whitespace() || c == '?' || c == '#';
        let valid = if name.contains("://") {
            !name.chars().any(bad_char)
        } else {
            !name.is_empty() && !name.chars().any(|c| bad_char(c) || c == '/')
        };
        if !valid {
            return Err(ClientError::Config(format!(
                "configuration name {:?} is not a session configuration name",
                self.configuration_name
            )));
        }
        let mut c = WsmanConfig::new(&self.endpoint(), self.wsman_auth()?)
            .map_err(|e| ClientError::wsman("building the WS-Man configuration", e))?;
        c.tls.ca_bundle = self.ca_file.clone();
        c.tls.danger_accept_invalid_certs = self.danger_accept_invalid_certs;
        c.encryption = if self.allow_unencrypted {
            EncryptionPolicy::DangerousAllowUnencryptedHttp
        } else {
            EncryptionPolicy::Auto
        };
        c.connect_timeout = self.connect_timeout;
        c.operation_timeout = self.operation_timeout;
        c.read_timeout = self.read_timeout;
        c.max_envelope_size = self.max_envelope_size;
        c.locale = self.locale.clone();
        c.data_locale = self.data_locale.clone();
        c.proxy = self.proxy.clone();
        c.allow_ntlm_fallback = self.allow_ntlm_fallback;
        c.on_ntlm_fallback = self.on_ntlm_fallback.clone();
        c.reconnect = self.reconnect;
        c.on_reconnect = self.on_reconnect.clone();
        c.max_connections = self
            .max_connections
            .unwrap_or_else(|| (max_runspaces + 2).max(4));
        c.validate()
            .map_err(|e| ClientError::wsman("checking the connection options", e))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_defaults() {
        let o = ConnectionOptions::new("::1").port(8080).path("/custom");
        assert_eq!(o.endpoint(), "http://[::1]:8080/custom");
        let c = ConnectionOptions::new("h")
            .auth(AuthMethod::Ntlm)
            .credentials("u", "p")
            .to_wsman_config(1)
            .unwrap();
        assert_eq!(c.max_connections, 4);
        assert!(c.encrypts());
        let c = ConnectionOptions::new("h")
            .auth(AuthMethod::Kerberos)
            .to_wsman_config(6)
            .unwrap();
        assert_eq!(c.max_connections, 8);
    }

    #[test]
    fn insecure_or_incomplete_options_are_refused() {
        let basic_http = ConnectionOptions::new("h")
            .auth(AuthMethod::Basic)
            .credentials("u", "p");
        let err = basic_http.clone().to_wsman_config(1).unwrap_err();
        assert_eq!(err.kind(), super::super::ErrorKind::Config);
        assert!(err.to_string().contains("clear text"), "{err}");
        assert!(basic_http
            .allow_unencrypted(true)
            .to_wsman_config(1)
            .is_ok());
        let err = ConnectionOptions::new("h")
            .auth(AuthMethod::Ntlm)
            .username("u")
            .to_wsman_config(1)
            .unwrap_err();
        assert!(err
            .to_string()
            .contains("ntlm authentication needs a password"));
        assert!(ConnectionOptions::new("h")
            .configuration_name("a b")
            .to_wsman_config(1)
            .is_err());
        assert!(ConnectionOptions::new("h")
            .configuration_name("a/b")
            .to_wsman_config(1)
            .is_err());
        let uri = ConnectionOptions::new("h")
            .configuration_name("http://schemas.microsoft.com/powershell/Custom.Endpoint");
        assert!(uri.to_wsman_config(1).is_ok());
        assert_eq!(
            uri.resource_uri(),
            "http://schemas.microsoft.com/powershell/Custom.Endpoint"
        );
        assert!(ConnectionOptions::new("").to_wsman_config(1).is_err());
    }

    #[test]
    fn debug_shows_no_password_or_proxy_password() {
        let o = ConnectionOptions::new("h")
            .credentials("alice", "hunter2")
            .proxy(ProxyConfig::Url(
                "http://proxyuser:s3cr3t-proxy@proxy:3128".into(),
            ));
        let shown = format!("{o:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(
            shown.contains("proxyuser:<redacted>@proxy:3128") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        // Nor once turned into the transport's configuration.
        let c = o.to_wsman_config(1).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!("HTTPS".parse::<Scheme>().unwrap(), Scheme::Https);
        assert_eq!(
            "Kerberos".parse::<AuthMethod>().unwrap(),
            AuthMethod::Kerberos
        );
        assert!("ftp".parse::<Scheme>().is_err());
        assert!("digest".parse::<AuthMethod>().is_err());
    }
}
