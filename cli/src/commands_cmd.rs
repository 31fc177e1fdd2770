//! `psrp commands`: the commands an endpoint lets this user run, read with
//! GET_COMMAND_METADATA (works on JEA NoLanguage endpoints), as a table on
//! a terminal and JSON otherwise. Listing every command (no pattern) also
//! refreshes the `--check` cache of the endpoint.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use psrp_core::client::{CleanupTracker, ClientError, PoolOptions, RunspacePool};

use crate::args::{CommandsArgs, CommandsFormat};
use crate::exit::Status;
use crate::hosts::HostSpec;
use crate::logging::{terminal_safe, Logger};
use crate::metadata::{endpoint_key, short_type, Cache, CommandInfo};
use crate::output::NoC1Controls;
use crate::run;
use crate::settings::Settings;
use serde::Serialize;

/// Bound on deleting the shell at the end.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads the metadata of the commands matching `patterns` on an open pool.
pub async fn fetch(
    pool: &RunspacePool,
    patterns: &[String],
) -> Result<Vec<CommandInfo>, ClientError> {
    let found = pool.get_command_metadata(patterns.iter().cloned()).await?;
    Ok(found.iter().map(CommandInfo::from_metadata).collect())
}

/// Opens a pool on `host` with the settings (the NTLM fallback warning
/// goes to the log, as for invoke).
pub async fn open(
    s: &Settings,
    host: &HostSpec,
    log: &std::sync::Arc<Logger>,
    label: &str,
    cleanup: &CleanupTracker,
) -> Result<RunspacePool, ClientError> {
    let options = {
        let (log, label) = (log.clone(), label.to_owned());
        run::connection_options(s, host).on_ntlm_fallback(move |f| {
            log.psrp(
                &label,
                &crate::settings::ntlm_fallback_warning(&f.kerberos_error),
            );
        })
    };
    let mut pool_options = PoolOptions::new()
        .cleanup_timeout(CLEANUP_TIMEOUT)
        .cleanup_tracker(cleanup.clone());
    if let Some(n) = s.max_message_size {
        pool_options = pool_options
            .max_message_size(n)
            .max_buffered_bytes(n.saturating_mul(2));
    }
    RunspacePool::open_with(options, pool_options).await
}

/// `psrp commands` on one host.
pub fn run(a: &CommandsArgs, settings: Settings) -> Status {
    let log = std::sync::Arc::new(Logger::new(crate::args::LogLevel::Warning, false));
    if settings.hosts.len() != 1 {
        log.psrp("", "psrp commands takes one host");
        return Status::Usage;
    }
    for w in settings.warnings() {
        log.psrp("", &format!("WARNING: {w}"));
    }
    let host = settings.hosts[0].clone();
    let label = host.label();
    let patterns: Vec<String> = if a.patterns.is_empty() {
        vec!["*".to_owned()]
    } else {
        a.patterns.clone()
    };
    let runtime = match crate::run::runtime(Some(2)) {
        Ok(rt) => rt,
        Err(status) => return status,
    };
    let cleanup = CleanupTracker::new();
    let fetched = runtime.block_on(async {
        // A signal or the timeout while connecting drops the open: the pool
        // then deletes its shell in the background (waited for below).
        let opening = async {
            open(&settings, &host, &log, &label, &cleanup)
                .await
                .map_err(|e| (format!("cannot connect: {e}"), run::error_status(&e)))
        };
        let pool =
            run::until_cancelled(opening, settings.timeout, " while connecting", Status::Connection)
                .await;
        let result = match pool {
            Err(e) => Err(e),
            Ok(pool) => {
                let fetching = async {
                    fetch(&pool, &patterns)
                        .await
                        .map_err(|e| (e.to_string(), run::error_status(&e).max(Status::Failed)))
                };
                let found =
                    run::until_cancelled(fetching, settings.timeout, "", Status::Failed).await;
                if let Err(e) = pool.close().await {
                    log.psrp(&label, &format!("could not delete the shell: {e}"));
                }
                found
            }
        };
        if tokio::time::timeout(CLEANUP_TIMEOUT, cleanup.wait()).await.is_err() {
            log.psrp(&label, "the shell could not be deleted in time; the server removes it after its idle timeout");
        }
        result
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let commands = match fetched {
        Ok(c) => c,
        Err((message, status)) => {
            log.psrp(&label, &message);
            return status;
        }
    };
    if patterns.iter().all(|p| p == "*") {
        // The whole list: what --check needs, so keep it.
        if let Some(cache) = Cache::from_env() {
            if let Err(e) = cache.store(&endpoint_key(&settings, &host), &commands) {
                log.psrp(&label, &format!("cannot write the command cache: {e}"));
            }
        }
    }
    let format = a.output.unwrap_or(if std::io::stdout().is_terminal() {
        CommandsFormat::Table
    } else {
        CommandsFormat::Json
    });
    let written = write(&mut std::io::stdout().lock(), &commands, format, a.common);
    match written {
        Ok(()) => Status::Success,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Success,
        Err(e) => {
            log.psrp("", &format!("cannot write the output: {e}"));
            Status::Failed
        }
    }
}

/// Writes the commands in the chosen format.
pub fn write(
    out: &mut impl Write,
    commands: &[CommandInfo],
    format: CommandsFormat,
    common: bool,
) -> std::io::Result<()> {
    // As `psrp invoke` writes objects: one compact object per line, inside
    // an array for JSON, DEL and C1 controls escaped like C0.
    let object = |out: &mut dyn Write, c: &CommandInfo| -> std::io::Result<()> {
        let mut json = serde_json::Serializer::with_formatter(out, NoC1Controls);
        c.serialize(&mut json).map_err(std::io::Error::from)
    };
    match format {
        CommandsFormat::Json => {
            out.write_all(b"[")?;
            for (i, c) in commands.iter().enumerate() {
                out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
                object(out, c)?;
            }
            out.write_all(if commands.is_empty() {
                b"]\n"
            } else {
                b"\n]\n"
            })
        }
        CommandsFormat::Ndjson => {
            for c in commands {
                object(out, c)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        CommandsFormat::Table => write_table(out, commands, common),
    }
}

/// One block per command: its name, type and module, then one line per
/// parameter (name, type, switch, aliases). Text from the server is made
/// terminal-safe.
fn write_table(
    out: &mut impl Write,
    commands: &[CommandInfo],
    common: bool,
) -> std::io::Result<()> {
    for (i, c) in commands.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let module = c.namespace.as_deref().unwrap_or("");
        writeln!(
            out,
            "{}  ({}{}{})",
            terminal_safe(&c.name),
            terminal_safe(&c.command_type),
            if module.is_empty() { "" } else { ", " },
            terminal_safe(module)
        )?;
        let shown: Vec<_> = c
            .parameters
            .iter()
            .filter(|p| common || !p.common)
            .collect();
        let width = shown.iter().map(|p| p.name.len() + 1).max().unwrap_or(0);
        for p in &shown {
            let kind = if p.switch {
                "[switch]".to_owned()
            } else {
                format!("<{}>", terminal_safe(short_type(&p.parameter_type)))
            };
            let mut line = format!(
                "    {:width$}  {kind}",
                format!("-{}", terminal_safe(&p.name))
            );
            if !p.aliases.is_empty() {
                let aliases: Vec<String> = p
                    .aliases
                    .iter()
                    .map(|a| terminal_safe(a).into_owned())
                    .collect();
                line.push_str(&format!("  (alias: {})", aliases.join(", ")));
            }
            if p.dynamic {
                line.push_str("  (dynamic)");
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        let hidden = c.parameters.len() - shown.len();
        if hidden > 0 {
            writeln!(
                out,
                "    + {hidden} common parameters (--common lists them)"
            )?;
        } else if c.parameters.is_empty() && c.takes_any_arguments() {
            writeln!(out, "    (no declared parameters: takes any arguments)")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ParameterInfo;

    #[test]
    fn table_lists_parameters_and_folds_common_ones() {
        let c = CommandInfo {
            name: "Get-Item".into(),
            command_type: "Cmdlet".into(),
            namespace: Some("Microsoft.PowerShell.Management".into()),
            help_uri: None,
            output_type: vec![],
            parameters: vec![
                ParameterInfo {
                    name: "Path".into(),
                    parameter_type: "System.String[]".into(),
                    aliases: vec![],
                    switch: false,
                    dynamic: false,
                    common: false,
                },
                ParameterInfo {
                    name: "Force".into(),
                    parameter_type: "System.Management.Automation.SwitchParameter".into(),
                    aliases: vec![],
                    switch: true,
                    dynamic: false,
                    common: false,
                },
                ParameterInfo {
                    name: "ErrorAction".into(),
                    parameter_type: "System.Management.Automation.ActionPreference".into(),
                    aliases: vec!["ea".into()],
                    switch: false,
                    dynamic: false,
                    common: true,
                },
            ],
        };
        let mut out = Vec::new();
        write(
            &mut out,
            std::slice::from_ref(&c),
            CommandsFormat::Table,
            false,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Get-Item  (Cmdlet, Microsoft.PowerShell.Management)\n    -Path   <String[]>\n    \
             -Force  [switch]\n    + 1 common parameters (--common lists them)\n"
        );

        let mut out = Vec::new();
        let mut odd = c.clone();
        odd.name = "Get-\u{9b}2J".into();
        write(&mut out, &[c, odd], CommandsFormat::Json, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("[\n{\"Name\":\"Get-Item\","), "{text}");
        assert!(text.contains("},\n{\"Name\":\"Get-\\u009b2J\","), "{text}");
        assert!(text.ends_with("}\n]\n"), "{text}");
        let mut out = Vec::new();
        write(&mut out, &[], CommandsFormat::Json, false).unwrap();
        assert_eq!(out, b"[]\n");
    }
}
