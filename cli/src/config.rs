//! Named connection profiles from a TOML file, mirroring an Airflow
//! connection (host, port, scheme, login, auth, configuration name, extras).
//!
//! ```toml
//! [profiles.dc1]
//! host = "dc1.example.com"
//! port = 5985
//! scheme = "http"
//! auth = "kerberos"
//! configuration_name = "JEA.Maintenance"
//! # extras
//! spn = "HTTP/dc1.example.com"
//! operation_timeout = 20
//! reconnect_retries = 10
//! reconnect_backoff = 2.5
//! ```
//!
//! Passwords are never read from this file: use `PSRP_PASSWORD`,
//! `--password-stdin`, the prompt, or `password_env` naming another
//! variable.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One named connection.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Host name, or several separated by commas.
    pub host: Option<String>,
    /// TCP port (default 5985 for http, 5986 for https).
    pub port: Option<u16>,
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// URL path (default `wsman`).
    pub path: Option<String>,
    /// `basic`, `ntlm`, `kerberos` or `negotiate`.
    pub auth: Option<String>,
    /// User name (Airflow's login). Omit for Kerberos with a ticket cache.
    #[serde(alias = "login")]
    pub username: Option<String>,
    /// Name of an environment variable that holds the password.
    pub password_env: Option<String>,
    /// PowerShell session configuration (JEA endpoint) name.
    pub configuration_name: Option<String>,
    /// Kerberos service principal name override.
    pub spn: Option<String>,
    /// Client certificate (PEM) for certificate authentication.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM, possibly encrypted with the password).
    pub key_file: Option<PathBuf>,
    /// CA bundle (PEM) to trust for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (dangerous).
    pub insecure_skip_tls_verify: Option<bool>,
    /// Allow unencrypted HTTP with NTLM/Kerberos/Negotiate, or Basic over HTTP.
    pub allow_unencrypted: Option<bool>,
    /// Negotiate fails instead of falling back to NTLM when Kerberos cannot
    /// be used.
    pub no_ntlm_fallback: Option<bool>,
    /// Kerberos delegation (hand the user's forwardable TGT to the server).
    pub delegate: Option<bool>,
    /// WS-Man OperationTimeout in seconds.
    pub operation_timeout: Option<u64>,
    /// Connect timeout in seconds.
    pub connect_timeout: Option<u64>,
    /// Reconnection retries after a broken connection.
    pub reconnect_retries: Option<u32>,
    /// Seconds before the first reconnection retry.
    pub reconnect_backoff: Option<f64>,
    /// Overall timeout for the invocation in seconds.
    pub timeout: Option<u64>,
    /// Maximum envelope size in bytes.
    pub max_envelope_size: Option<u32>,
    /// Largest PSRP message accepted, in bytes (a number) or with a unit
    /// (`"64M"`).
    pub max_message_size: Option<ByteSize>,
    /// Locale, e.g. `en-US`.
    pub locale: Option<String>,
    /// Commands run in the same runspace before the main command.
    pub session_init: Option<Vec<String>>,
}

/// A size in a profile: a number of bytes, or text with a unit (`"64M"`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ByteSize {
    /// Bytes.
    Bytes(u64),
    /// Text such as `64M`, read like the command-line option.
    Text(String),
}

/// Why the configuration could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("config file {path}: {message}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// The profile named on the command line is not in the file.
    #[error("profile '{name}' not found in {path} (known: {known})")]
    UnknownProfile {
        /// Name asked for.
        name: String,
        /// Which file.
        path: PathBuf,
        /// Names that exist.
        known: String,
    },
}

/// Default location: `$PSRP_CONFIG`, else `$XDG_CONFIG_HOME/psrp/config.toml`,
/// else `~/.config/psrp/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PSRP_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("psrp").join("config.toml"))
}

/// Parses configuration text. Errors name the line but never quote it: the
/// line could hold a secret someone put there by mistake.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        ConfigError::Parse {
            path: path.to_owned(),
            message: match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            },
        }
    })
}

/// Loads `name` from the file at `path`.
pub fn load_profile(path: &Path, name: &str) -> Result<Profile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut file = parse(&text, path)?;
    file.profiles
        .remove(name)
        .ok_or_else(|| ConfigError::UnknownProfile {
            name: name.to_owned(),
            path: path.to_owned(),
            known: if file.profiles.is_empty() {
                "none".to_owned()
            } else {
                file.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airflow_like_profile_parses() {
        let text = r#"
            [profiles.dc1]
            host = "dc1.example.com"
            port = 5985
            scheme = "http"
            auth = "kerberos"
            login = "svc@EXAMPLE.COM"
            configuration_name = "JEA.Maintenance"
            session_init = ["Set-PSDebug -Trace 1"]
        "#;
        let file = parse(text, Path::new("x.toml")).unwrap();
        let p = &file.profiles["dc1"];
        assert_eq!(p.host.as_deref(), Some("dc1.example.com"));
        assert_eq!(p.username.as_deref(), Some("svc@EXAMPLE.COM"));
        assert_eq!(p.port, Some(5985));
        assert_eq!(p.session_init.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn reconnection_keys() {
        let file = parse(
            "[profiles.a]\nreconnect_retries = 0\nreconnect_backoff = 2.5\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let a = &file.profiles["a"];
        assert_eq!(
            (a.reconnect_retries, a.reconnect_backoff),
            (Some(0), Some(2.5))
        );
    }

    #[test]
    fn sizes_are_numbers_or_text() {
        let file = parse(
            "[profiles.a]\nmax_message_size = 1048576\n[profiles.b]\nmax_message_size = \"64M\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(
            file.profiles["a"].max_message_size,
            Some(ByteSize::Bytes(1 << 20))
        );
        assert_eq!(
            file.profiles["b"].max_message_size,
            Some(ByteSize::Text("64M".into()))
        );
    }

    #[test]
    fn passwords_and_unknown_keys_are_refused() {
        let err = parse("[profiles.a]\npassword = \"x\"\n", Path::new("c.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("c.toml") && msg.contains("line 2") && msg.contains("password"),
            "{msg}"
        );
        assert!(
            !msg.contains("\"x\""),
            "the value must not be echoed: {msg}"
        );
    }

    #[test]
    fn unknown_profile_lists_known_ones() {
        let dir = std::env::temp_dir().join(format!("psrp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, "[profiles.a]\n[profiles.b]\n").unwrap();
        let err = load_profile(&path, "c").unwrap_err().to_string();
        assert!(err.contains("'c'") && err.contains("a, b"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
