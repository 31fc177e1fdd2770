//! Detached jobs: `psrp invoke --detach` leaves the command running in a
//! disconnected shell and prints a job handle; `psrp receive` connects to
//! it (WS-Man Connect) and streams its output as `invoke` would;
//! `psrp jobs` lists the user's disconnected shells (WS-Man Enumerate);
//! `psrp stop` stops the pipeline; `psrp remove` deletes the shell.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use psrp_core::client::{BufferMode, DisconnectOptions};
use serde::{Deserialize, Serialize};

use crate::args::{AuthKind, ConnectionArgs, OutputArgs, Scheme};
use crate::settings::Settings;

/// Handle format version.
pub const HANDLE_VERSION: u32 = 1;

/// `--detach` and its options (part of `psrp invoke`).
#[derive(Debug, Args, Clone)]
pub struct DetachArgs {
    /// Start the command, disconnect and print a job handle (JSON) instead
    /// of waiting; pick the output up later with `psrp receive`.
    #[arg(long)]
    pub detach: bool,
    /// With --detach: how long the server keeps the disconnected job, in
    /// seconds (default 7200; the server caps it at its MaxIdleTimeoutms).
    #[arg(long, value_name = "SECONDS", default_value_t = 7200)]
    pub idle_timeout: u64,
    /// With --detach: when the server's output buffer is full while nobody
    /// is connected, `block` pauses the command (nothing lost), `drop`
    /// drops the oldest output.
    #[arg(long, value_name = "MODE", default_value = "block", value_parser = ["block", "drop"])]
    pub buffer_mode: String,
}

impl DetachArgs {
    /// The library's options.
    pub fn options(&self) -> DisconnectOptions {
        DisconnectOptions::new()
            .idle_timeout(Duration::from_secs(self.idle_timeout))
            .buffer_mode(if self.buffer_mode == "drop" {
                BufferMode::Drop
            } else {
                BufferMode::Block
            })
    }
}

/// `psrp receive`, `psrp stop` and `psrp remove`.
#[derive(Debug, Args)]
pub struct HandleArgs {
    /// The job handle printed by `psrp invoke --detach`: its JSON text, a
    /// file holding it, or `-` for stdin.
    pub handle: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `psrp jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Also list shells that are connected (in use by a client).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// What `--detach` prints: where the job runs and how to reach it, never
/// a secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobHandle {
    /// Handle format version.
    pub version: u32,
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: String,
    /// The WS-Man path.
    pub path: String,
    /// The shell (runspace pool) id.
    pub shell_id: String,
    /// The command (pipeline) id.
    pub command_id: String,
    /// The session configuration.
    pub configuration_name: String,
    /// The authentication method.
    pub auth: String,
    /// The user name, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The connection profile, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The command, as text.
    pub command: String,
    /// Idle timeout asked for, seconds.
    pub idle_timeout: u64,
    /// `block` or `drop`.
    pub buffer_mode: String,
    /// When the job was detached (Unix seconds).
    pub detached_at: u64,
}

impl JobHandle {
    /// When the server may delete the job if nobody connects.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.detached_at.saturating_add(self.idle_timeout))
    }

    /// Reads a handle from its JSON text, a file, or stdin (`-`).
    pub fn load(source: &str) -> Result<JobHandle, String> {
        let text = if source == "-" {
            let mut t = String::new();
            std::io::stdin()
                .read_to_string(&mut t)
                .map_err(|e| format!("cannot read the job handle from stdin: {e}"))?;
            t
        } else if source.trim_start().starts_with('{') {
            source.to_owned()
        } else {
            std::fs::read_to_string(PathBuf::from(source))
                .map_err(|e| format!("cannot read the job handle file {source}: {e}"))?
        };
        let handle: JobHandle = serde_json::from_str(text.trim())
            .map_err(|e| format!("not a psrp job handle (from psrp invoke --detach): {e}"))?;
        if handle.version != HANDLE_VERSION {
            return Err(format!(
                "job handle version {} is not supported (this psrp writes {HANDLE_VERSION})",
                handle.version
            ));
        }
        Ok(handle)
    }

    /// Fills the connection options the user did not give from the handle
    /// (flags and the environment still win).
    pub fn fill(&self, c: &mut ConnectionArgs) {
        if c.host.is_none() && c.hosts_file.is_none() {
            c.host = Some(self.host.clone());
            c.port.get_or_insert(self.port);
        }
        if c.scheme.is_none() {
            c.scheme = Some(if self.scheme == "https" {
                Scheme::Https
            } else {
                Scheme::Http
            });
        }
        c.path.get_or_insert_with(|| self.path.clone());
        if c.auth.is_none() {
            c.auth = match self.auth.as_str() {
                "basic" => Some(AuthKind::Basic),
                "ntlm" => Some(AuthKind::Ntlm),
                "kerberos" => Some(AuthKind::Kerberos),
                "certificate" => Some(AuthKind::Certificate),
                "credssp" => Some(AuthKind::Credssp),
                _ => Some(AuthKind::Negotiate),
            };
        }
        if c.username.is_none() {
            c.username.clone_from(&self.username);
        }
        if c.profile.is_none() {
            c.profile.clone_from(&self.profile);
        }
        c.configuration_name
            .get_or_insert_with(|| self.configuration_name.clone());
    }

    /// The handle for a job detached on `host`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        s: &Settings,
        profile: Option<String>,
        host: &str,
        port: u16,
        shell_id: String,
        command_id: String,
        command: String,
        detach: &DetachArgs,
    ) -> JobHandle {
        JobHandle {
            version: HANDLE_VERSION,
            host: host.to_owned(),
            port,
            scheme: match s.scheme {
                Scheme::Http => "http".into(),
                Scheme::Https => "https".into(),
            },
            path: s.path.clone(),
            shell_id,
            command_id,
            configuration_name: s.configuration_name.clone(),
            auth: match s.auth {
                AuthKind::Basic => "basic",
                AuthKind::Ntlm => "ntlm",
                AuthKind::Kerberos => "kerberos",
                AuthKind::Negotiate => "negotiate",
                AuthKind::Certificate => "certificate",
                AuthKind::Credssp => "credssp",
            }
            .into(),
            username: s.username.clone(),
            profile,
            command,
            idle_timeout: detach.idle_timeout,
            buffer_mode: detach.buffer_mode.clone(),
            detached_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// One line of `psrp jobs` (JSON).
pub fn shell_json(s: &psrp_core::client::ShellInfo) -> serde_json::Value {
    serde_json::json!({
        "shell_id": s.id,
        "name": s.name,
        "configuration_name": s.configuration_name(),
        "owner": s.owner,
        "state": s.state,
        "client_ip": s.client_ip,
        "buffer_mode": s.buffer_mode,
        "idle_timeout": s.idle_timeout.map(|d| d.as_secs()),
        "inactive_for": s.inactivity.map(|d| d.as_secs()),
        "runs_for": s.run_time.map(|d| d.as_secs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_round_trips_and_fills_missing_options() {
        let h = JobHandle {
            version: 1,
            host: "win01".into(),
            port: 5986,
            scheme: "https".into(),
            path: "wsman".into(),
            shell_id: "S".into(),
            command_id: "C".into(),
            configuration_name: "JEA.Maintenance".into(),
            auth: "kerberos".into(),
            username: None,
            profile: Some("dc1".into()),
            command: "Get-Date".into(),
            idle_timeout: 60,
            buffer_mode: "block".into(),
            detached_at: 1000,
        };
        let text = serde_json::to_string(&h).unwrap();
        assert!(!text.contains("password"));
        assert_eq!(JobHandle::load(&text).unwrap(), h);
        assert!(JobHandle::load(&text.replace("\"version\":1", "\"version\":9")).is_err());
        assert_eq!(h.expires_at(), UNIX_EPOCH + Duration::from_secs(1060));
    }
}
