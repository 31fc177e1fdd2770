//! Connection settings resolved from flags, `PSRP_*` environment variables
//! (both through clap), the named profile and defaults, in that order.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use wsman::Secret;

use crate::args::{AuthKind, ConnectionArgs, Scheme};
use crate::command_line::{self, CommandLine, CommandLineError};
use crate::config::{self, ByteSize, ConfigError, Profile};
use crate::hosts::{self, HostError, HostSpec};
use crate::password::{self, PasswordError};

/// Invoke-Command's default -ThrottleLimit.
pub const DEFAULT_THROTTLE: usize = 32;

/// Everything needed to connect to each host.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The hosts, in the order given, without repeats.
    pub hosts: Vec<HostSpec>,
    /// Whether output and log lines carry the host (several hosts, or a
    /// hosts file).
    pub tag_hosts: bool,
    /// Hosts run at once.
    pub throttle: usize,
    /// http or https.
    pub scheme: Scheme,
    /// Port for hosts given without one (None: 5985/5986).
    pub port: Option<u16>,
    /// URL path.
    pub path: String,
    /// Auth method.
    pub auth: AuthKind,
    /// User name.
    pub username: Option<String>,
    /// Password (never printed).
    pub password: Option<Secret>,
    /// Kerberos SPN override.
    pub spn: Option<String>,
    /// Client certificate and key files (certificate authentication).
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// CA bundle for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate.
    pub insecure_skip_tls_verify: bool,
    /// Allow unencrypted HTTP.
    pub allow_unencrypted: bool,
    /// Negotiate must not fall back to NTLM.
    pub no_ntlm_fallback: bool,
    /// Kerberos delegation.
    pub delegate: bool,
    /// Session configuration name.
    pub configuration_name: String,
    /// Session-init commands, parsed.
    pub session_init: Vec<CommandLine>,
    /// Overall time limit per host.
    pub timeout: Option<Duration>,
    /// Connect timeout.
    pub connect_timeout: Option<Duration>,
    /// WS-Man OperationTimeout.
    pub operation_timeout: Option<Duration>,
    /// Reconnection retries.
    pub reconnect_retries: Option<u32>,
    /// Wait before the first reconnection retry.
    pub reconnect_backoff: Option<Duration>,
    /// MaxEnvelopeSize.
    pub max_envelope_size: Option<u32>,
    /// Largest PSRP message accepted, in bytes.
    pub max_message_size: Option<usize>,
    /// Locale.
    pub locale: Option<String>,
}

/// Settings that cannot be used (exit status 64).
#[derive(Debug, Error)]
pub enum SettingsError {
    /// Config file or profile problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Host list problem.
    #[error(transparent)]
    Hosts(#[from] HostError),
    /// Password problem.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A bad `--session-init` command.
    #[error("--session-init '{command}': {source}")]
    SessionInit {
        /// The command as given.
        command: String,
        /// Why it does not parse.
        source: CommandLineError,
    },
    /// A value out of range or unknown.
    #[error("{0}")]
    Invalid(String),
}

fn seconds(what: &str, v: Option<f64>) -> Result<Option<Duration>, SettingsError> {
    match v {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(SettingsError::Invalid(format!(
            "{what} must be a positive number of seconds, not {s}"
        ))),
    }
}

/// A size: bytes, or a number with a K, M or G suffix (powers of 1024;
/// `KiB`, `MiB`, `GiB` and a trailing `B` are accepted too).
fn byte_size(what: &str, text: &str) -> Result<usize, SettingsError> {
    let invalid = || {
        SettingsError::Invalid(format!(
            "{what} must be a positive size in bytes, or with a K, M or G suffix (e.g. 64M), \
             not '{text}'"
        ))
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(invalid()),
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(invalid)
}

fn profile_enum<T: clap::ValueEnum>(
    what: &str,
    v: Option<&str>,
) -> Result<Option<T>, SettingsError> {
    v.map(|s| {
        T::from_str(s, true).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
                .collect();
            SettingsError::Invalid(format!(
                "profile: {what} '{s}' is not one of {}",
                names.join(", ")
            ))
        })
    })
    .transpose()
}

/// Loads the profile named by `--profile`/`PSRP_PROFILE`, if any.
fn load_profile(args: &ConnectionArgs) -> Result<Profile, SettingsError> {
    let Some(name) = &args.profile else {
        return Ok(Profile::default());
    };
    let path = match args.config.clone().or_else(config::default_path) {
        Some(p) => p,
        None => {
            return Err(SettingsError::Invalid(format!(
                "--profile {name}: no config file (set --config or PSRP_CONFIG)"
            )))
        }
    };
    Ok(config::load_profile(&path, name)?)
}

impl Settings {
    /// Resolves the settings (reads the password, maybe from stdin or a
    /// prompt). `env_password` is `PSRP_PASSWORD`, taken out of the
    /// environment at startup; the profile's `password_env` variable is
    /// taken out here, so this must run before any thread is started.
    pub fn resolve(
        args: &ConnectionArgs,
        env_password: Option<Secret>,
    ) -> Result<Settings, SettingsError> {
        let profile = load_profile(args)?;
        let mut host_list = Vec::new();
        let mut from_file = false;
        if let Some(h) = args.host.as_deref().or(profile.host.as_deref()) {
            host_list.extend(hosts::parse_list(h)?);
        }
        if let Some(f) = &args.hosts_file {
            host_list.extend(hosts::read_file(f)?);
            from_file = true;
        }
        let host_list = hosts::dedup(host_list);
        if host_list.is_empty() {
            return Err(HostError::None.into());
        }
        let throttle = args.throttle.unwrap_or(DEFAULT_THROTTLE);
        if throttle == 0 {
            return Err(SettingsError::Invalid(
                "--throttle must be at least 1".into(),
            ));
        }
        let scheme = match args.scheme {
            Some(s) => s,
            None => profile_enum("scheme", profile.scheme.as_deref())?.unwrap_or(Scheme::Http),
        };
        let auth = match args.auth {
            Some(a) => a,
            None => profile_enum("auth", profile.auth.as_deref())?.unwrap_or(AuthKind::Negotiate),
        };
        let username = args.username.clone().or(profile.username.clone());
        let delegate = args.delegate || profile.delegate.unwrap_or(false);
        if delegate && matches!(auth, AuthKind::Credssp) {
            return Err(SettingsError::Invalid(
                "--delegate is Kerberos delegation; -a credssp always delegates (it hands the \
                 password to the server): drop --delegate"
                    .to_owned(),
            ));
        }
        if delegate && matches!(auth, AuthKind::Basic | AuthKind::Ntlm) {
            return Err(SettingsError::Invalid(format!(
                "--delegate needs Kerberos (-a kerberos or negotiate); {} cannot delegate credentials",
                auth_name(auth)
            )));
        }
        // The profile's variable leaves the environment even when another
        // source wins: it holds a password.
        let profile_env = profile
            .password_env
            .as_deref()
            .map(|name| (name, password::take_env(name)));
        let cert_file = args.cert_file.clone().or(profile.cert_file.clone());
        let key_file = args.key_file.clone().or(profile.key_file.clone());
        let client_certificate = match (auth, cert_file, key_file) {
            (AuthKind::Certificate, _, _) if scheme != Scheme::Https => {
                return Err(SettingsError::Invalid(
                    "-a certificate needs --scheme https: the certificate is presented in the TLS \
                     handshake, which plain HTTP does not have"
                        .to_owned(),
                ))
            }
            (AuthKind::Certificate, Some(c), Some(k)) => Some((c, k)),
            (AuthKind::Certificate, _, _) => return Err(SettingsError::Invalid(
                "-a certificate needs --cert-file and --key-file (PSRP_CERT_FILE, PSRP_KEY_FILE, \
                     profile cert_file, key_file)"
                    .to_owned(),
            )),
            (_, None, None) => None,
            _ => {
                return Err(SettingsError::Invalid(
                    "--cert-file and --key-file are for -a certificate".to_owned(),
                ))
            }
        };
        let mut password = password::from_sources(password::Sources {
            stdin: args.password_stdin,
            env: env_password,
            profile_env,
        })?;
        let needs_password = match auth {
            // CredSSP delegates the password itself.
            AuthKind::Basic | AuthKind::Ntlm | AuthKind::Credssp => true,
            AuthKind::Negotiate => username.is_some(),
            // Kerberos uses the ticket cache without one.
            AuthKind::Kerberos => false,
            // The password only decrypts an encrypted key, when given.
            AuthKind::Certificate => false,
        };
        if password.is_none() && needs_password {
            let kind = auth_name(auth);
            let Some(user) = username.as_deref() else {
                return Err(SettingsError::Invalid(format!(
                    "{kind} authentication needs a user name: -u/--username or PSRP_USERNAME"
                )));
            };
            password = Some(password::prompt(kind, user)?);
        }
        let session_init_text = if args.session_init.is_empty() {
            profile.session_init.clone().unwrap_or_default()
        } else {
            args.session_init.clone()
        };
        let session_init = session_init_text
            .iter()
            .map(|c| {
                command_line::parse(c).map_err(|source| SettingsError::SessionInit {
                    command: c.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = seconds(
            "--timeout",
            args.timeout.or(profile.timeout.map(|t| t as f64)),
        )?;
        let connect_timeout = seconds(
            "--connect-timeout",
            args.connect_timeout
                .or(profile.connect_timeout.map(|t| t as f64)),
        )?;
        let operation_timeout = seconds(
            "--operation-timeout",
            args.operation_timeout
                .or(profile.operation_timeout.map(|t| t as f64)),
        )?;
        let reconnect_backoff = seconds(
            "--reconnect-backoff",
            args.reconnect_backoff.or(profile.reconnect_backoff),
        )?;
        let max_message_size = match (&args.max_message_size, &profile.max_message_size) {
            (Some(text), _) => Some(byte_size("--max-message-size", text)?),
            (None, Some(ByteSize::Text(text))) => {
                Some(byte_size("profile: max_message_size", text)?)
            }
            (None, Some(ByteSize::Bytes(n))) => {
                Some(byte_size("profile: max_message_size", &n.to_string())?)
            }
            (None, None) => None,
        };
        Ok(Settings {
            tag_hosts: host_list.len() > 1 || from_file,
            hosts: host_list,
            throttle,
            scheme,
            port: args.port.or(profile.port),
            path: args
                .path
                .clone()
                .or(profile.path.clone())
                .unwrap_or_else(|| "wsman".to_owned()),
            auth,
            username,
            password,
            spn: args.spn.clone().or(profile.spn.clone()),
            client_certificate,
            ca_file: args.ca_file.clone().or(profile.ca_file.clone()),
            insecure_skip_tls_verify: args.insecure_skip_tls_verify
                || profile.insecure_skip_tls_verify.unwrap_or(false),
            allow_unencrypted: args.allow_unencrypted || profile.allow_unencrypted.unwrap_or(false),
            no_ntlm_fallback: args.no_ntlm_fallback || profile.no_ntlm_fallback.unwrap_or(false),
            delegate,
            configuration_name: args
                .configuration_name
                .clone()
                .or(profile.configuration_name.clone())
                .unwrap_or_else(|| "Microsoft.PowerShell".to_owned()),
            session_init,
            timeout,
            connect_timeout,
            operation_timeout,
            reconnect_retries: args.reconnect_retries.or(profile.reconnect_retries),
            reconnect_backoff,
            max_envelope_size: args.max_envelope_size.or(profile.max_envelope_size),
            max_message_size,
            locale: args.locale.clone().or(profile.locale.clone()),
        })
    }

    /// Loud warnings for the dangerous options, printed before connecting.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.insecure_skip_tls_verify {
            w.push(
                "--insecure-skip-tls-verify: server certificates are NOT checked; anyone on the \
                 network path can impersonate the host and read the session"
                    .to_owned(),
            );
        }
        if self.allow_unencrypted {
            w.push(
                "--allow-unencrypted: messages may travel in clear text over HTTP; anyone on the \
                 network path can read and change them"
                    .to_owned(),
            );
        }
        w
    }
}

/// The warning printed (once per host) when negotiate used NTLM: why
/// Kerberos could not be used, and how to fix or forbid the fallback.
pub fn ntlm_fallback_warning(kerberos_error: &str) -> String {
    format!(
        "WARNING: negotiate fell back to NTLM because Kerberos could not be used: {kerberos_error}. \
         For Kerberos, get a ticket with kinit (KRB5CCNAME) or give the user as user@REALM, and \
         check krb5.conf and the service principal (--spn); to refuse NTLM, use --no-ntlm-fallback \
         (PSRP_NO_NTLM_FALLBACK=true, profile no_ntlm_fallback = true); to choose NTLM, -a ntlm"
    )
}

/// `basic`, `ntlm`, `kerberos` or `negotiate`.
pub fn auth_name(auth: AuthKind) -> &'static str {
    match auth {
        AuthKind::Basic => "basic",
        AuthKind::Ntlm => "ntlm",
        AuthKind::Kerberos => "kerberos",
        AuthKind::Negotiate => "negotiate",
        AuthKind::Certificate => "certificate",
        AuthKind::Credssp => "credssp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_bytes_or_binary_units() {
        let size = |t| byte_size("--max-message-size", t);
        assert_eq!(size("65536").unwrap(), 65536);
        assert_eq!(size("64K").unwrap(), 64 << 10);
        assert_eq!(size("32m").unwrap(), 32 << 20);
        assert_eq!(size(" 1 GiB ").unwrap(), 1 << 30);
        assert_eq!(size("100MB").unwrap(), 100 << 20);
        for bad in [
            "",
            "0",
            "0M",
            "-1",
            "1.5M",
            "12T",
            "M",
            "99999999999999999999",
        ] {
            let e = size(bad).unwrap_err().to_string();
            assert!(e.starts_with("--max-message-size must be"), "{bad}: {e}");
        }
    }
}
