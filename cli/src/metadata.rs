//! What an endpoint says about its commands (GET_COMMAND_METADATA), in the
//! form `psrp commands` prints and `psrp invoke --check` caches: one
//! [`CommandInfo`] per command, serialized as JSON with PowerShell's
//! property names.
//!
//! The cache holds one file per host, port, scheme, path, user and
//! configuration under `$XDG_CACHE_HOME/psrp/commands` (else
//! `~/.cache/psrp/commands`): command names, types and parameters only,
//! never a password or a ticket.

use std::io::Write;
use std::path::{Path, PathBuf};

use psrp_core::client::CommandMetadata;
use serde::{Deserialize, Serialize};

use crate::args::Scheme;
use crate::hosts::HostSpec;
use crate::settings::Settings;

/// The parameters PowerShell adds to every cmdlet and advanced function.
pub const COMMON_PARAMETERS: [&str; 13] = [
    "Verbose",
    "Debug",
    "ErrorAction",
    "WarningAction",
    "InformationAction",
    "ErrorVariable",
    "WarningVariable",
    "InformationVariable",
    "OutVariable",
    "OutBuffer",
    "PipelineVariable",
    "WhatIf",
    "Confirm",
];

/// One command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommandInfo {
    /// `Get-Item`.
    pub name: String,
    /// `Cmdlet`, `Function`, ... (the .NET text of CommandTypes).
    pub command_type: String,
    /// The module or snap-in.
    pub namespace: Option<String>,
    /// Where its help is.
    pub help_uri: Option<String>,
    /// The .NET types it declares it writes.
    pub output_type: Vec<String>,
    /// Its parameters in the server's order, common parameters included.
    pub parameters: Vec<ParameterInfo>,
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterInfo {
    /// `Path`.
    pub name: String,
    /// The .NET type, `System.String[]`.
    #[serde(rename = "Type")]
    pub parameter_type: String,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// A switch (takes no value).
    pub switch: bool,
    /// A dynamic parameter (exists only for some arguments).
    pub dynamic: bool,
    /// One of PowerShell's common parameters (Verbose, ErrorAction, ...).
    pub common: bool,
}

impl CommandInfo {
    /// From the library's form.
    pub fn from_metadata(m: &CommandMetadata) -> CommandInfo {
        CommandInfo {
            name: m.name.clone(),
            command_type: m.command_type.name(),
            namespace: m.namespace.clone(),
            help_uri: m.help_uri.clone().filter(|u| !u.is_empty()),
            output_type: m.output_type.clone(),
            parameters: m
                .parameters
                .iter()
                .map(|p| ParameterInfo {
                    name: p.name.clone(),
                    parameter_type: p.parameter_type.clone(),
                    aliases: p.aliases.clone(),
                    switch: p.switch_parameter,
                    dynamic: p.is_dynamic,
                    common: COMMON_PARAMETERS
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(&p.name)),
                })
                .collect(),
        }
    }

    /// Whether any named argument must be accepted: with no parameter
    /// listed there is nothing to check against. A simple function (no
    /// param block with CmdletBinding) has none, not even the common ones,
    /// and binds unknown names to `$args`; an alias may come without its
    /// command's. (A cmdlet always lists the common parameters.)
    pub fn takes_any_arguments(&self) -> bool {
        self.parameters.is_empty()
    }
}

/// The short form of a .NET type for tables: `System.String[]` → `String[]`.
pub fn short_type(t: &str) -> &str {
    let (base, _) = t.split_once('[').unwrap_or((t, ""));
    match base.rfind('.') {
        Some(i) => &t[i + 1..],
        None => t,
    }
}

/// What identifies one endpoint as seen by one user: the cache key.
pub fn endpoint_key(s: &Settings, host: &HostSpec) -> String {
    let (scheme, default_port) = match s.scheme {
        Scheme::Http => ("http", 5985),
        Scheme::Https => ("https", 5986),
    };
    let port = host.port.or(s.port).unwrap_or(default_port);
    let user = s.username.as_deref().unwrap_or("(ticket cache)");
    format!(
        "{scheme}://{}:{port}/{} configuration={} user={user}",
        host.name,
        s.path.trim_start_matches('/'),
        s.configuration_name
    )
}

/// One cache file.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    /// The endpoint key (checked on reading: two keys may share a file name).
    key: String,
    /// Seconds since the Unix epoch when the list was fetched.
    fetched: u64,
    /// Every command the endpoint showed for the pattern `*`.
    commands: Vec<CommandInfo>,
}

/// The per-user cache of command lists.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `$XDG_CACHE_HOME/psrp/commands`, else `$HOME/.cache/psrp/commands`;
    /// `None` when neither variable is set.
    pub fn from_env() -> Option<Cache> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(Cache {
            dir: base.join("psrp").join("commands"),
        })
    }

    /// A readable, bounded file name: the key's first characters made
    /// safe, then a hash of the whole key (a different hash after a Rust
    /// upgrade only costs a refetch: the key inside the file is checked).
    fn file(&self, key: &str) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let readable: String = key
            .chars()
            .take(100)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        self.dir
            .join(format!("{readable}-{:016x}.json", hasher.finish()))
    }

    /// The cached commands of an endpoint, if any (an unreadable or
    /// foreign file counts as none).
    pub fn load(&self, key: &str) -> Option<Vec<CommandInfo>> {
        let text = std::fs::read_to_string(self.file(key)).ok()?;
        let file: CacheFile = serde_json::from_str(&text).ok()?;
        (file.key == key).then_some(file.commands)
    }

    /// Stores the complete command list of an endpoint (readable by the
    /// user only; written to a temporary file and renamed into place).
    pub fn store(&self, key: &str, commands: &[CommandInfo]) -> std::io::Result<PathBuf> {
        create_private_dir(&self.dir)?;
        let path = self.file(key);
        let fetched = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let file = CacheFile {
            key: key.to_owned(),
            fetched,
            commands: commands.to_vec(),
        };
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        {
            let mut f = private_file(&tmp)?;
            serde_json::to_writer(&mut f, &file)?;
            f.write_all(b"\n")?;
        }
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_types() {
        assert_eq!(short_type("System.String[]"), "String[]");
        assert_eq!(
            short_type("System.Management.Automation.SwitchParameter"),
            "SwitchParameter"
        );
        assert_eq!(short_type("Int32"), "Int32");
        assert_eq!(
            short_type("System.Nullable`1[[System.Int32, mscorlib]]"),
            "Nullable`1[[System.Int32, mscorlib]]"
        );
    }

    #[test]
    fn cache_round_trip_and_foreign_key() {
        let dir = std::env::temp_dir().join(format!("psrp-cache-test-{}", std::process::id()));
        let cache = Cache { dir: dir.clone() };
        let info = CommandInfo {
            name: "Get-Item".into(),
            command_type: "Cmdlet".into(),
            namespace: None,
            help_uri: None,
            output_type: vec![],
            parameters: vec![],
        };
        let path = cache
            .store("http://h:5985/wsman x", std::slice::from_ref(&info))
            .unwrap();
        assert_eq!(cache.load("http://h:5985/wsman x"), Some(vec![info]));
        assert_eq!(cache.load("http://h:5985/wsman_x"), None);
        // Another key that would map to the same file is not served.
        std::fs::copy(&path, cache.file("http://h:5985/wsman_x")).unwrap();
        assert_eq!(cache.load("http://h:5985/wsman_x"), None);
        let long = "x".repeat(1000);
        let name = cache.file(&long);
        assert!(name.file_name().unwrap().len() < 130, "{name:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the cache file is private");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
