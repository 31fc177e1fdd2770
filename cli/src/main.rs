//! The `psrp` command line: run PowerShell commands on Windows hosts over
//! WinRM (PSRP) from Linux, with JSON output and every stream as log lines.

// One exception, justified where it is: overwriting a password variable in
// the process's environment block (password.rs).
#![deny(unsafe_code)]

mod args;
mod clixml_cmd;
mod command_line;
mod config;
mod exit;
mod hosts;
mod logging;
mod output;
mod params;
mod password;
mod run;
mod settings;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use psrp_core::clixml::JsonOptions;
use tokio::sync::watch;

use args::{Cli, Commands, ConnectionArgs, OutputArgs, OutputFormat};
use exit::Status;
use logging::Logger;
use output::{Formatter, OutputWriter};
use run::{Cancel, Job};
use settings::Settings;

fn json_options(o: &OutputArgs) -> JsonOptions {
    JsonOptions::default()
        .with_max_depth(o.depth)
        .with_enums_as_numbers(o.enums_as_numbers)
}

fn usage(message: &str) -> Status {
    eprintln!("psrp: {}", logging::terminal_safe(message));
    Status::Usage
}

fn main() {
    // First, while the process has a single thread: the password leaves
    // the environment (and /proc/<pid>/environ) before anything else runs.
    let env_password = password::take_env(password::PASSWORD_VAR);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed.
            let status = if e.use_stderr() {
                Status::Usage.code()
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(status);
        }
    };
    let status = match cli.command {
        Commands::Clixml(a) => clixml(&a.file, &a.output),
        Commands::Invoke(a)
            if a.connection.password_stdin && params::secure_params_use_stdin(&a.params) =>
        {
            usage("--password-stdin and --secure-param NAME=stdin cannot both read stdin")
        }
        Commands::Invoke(a) => match params::collect(&a.params, &a.args) {
            Ok(p) => remote(
                run::invoke_pipeline(&a.command, &p),
                a.command.clone(),
                &a.connection,
                &a.output,
                env_password,
            ),
            Err(e) => usage(&e.to_string()),
        },
        Commands::Script(a) => script(&a, env_password),
    };
    std::process::exit(status.code());
}

/// `psrp script`.
fn script(a: &args::ScriptArgs, env_password: Option<wsman::Secret>) -> Status {
    let from_stdin = a.file == Path::new("-");
    if from_stdin && a.connection.password_stdin {
        return usage("--password-stdin cannot be used when the script is read from stdin");
    }
    if params::secure_params_use_stdin(&a.params) && (from_stdin || a.connection.password_stdin) {
        return usage(
            "--secure-param NAME=stdin cannot be used when stdin holds the script or the password",
        );
    }
    let text = if from_stdin {
        let mut t = String::new();
        std::io::stdin().read_to_string(&mut t).map(|_| t)
    } else {
        std::fs::read_to_string(&a.file)
    };
    let text = match text {
        Ok(t) if t.trim().is_empty() => {
            return usage(&format!("the script {} is empty", a.file.display()))
        }
        Ok(t) => t,
        Err(e) => return usage(&format!("cannot read the script {}: {e}", a.file.display())),
    };
    match params::collect(&a.params, &[]) {
        Ok(p) => remote(
            run::script_pipeline(text, &p),
            "the script".to_owned(),
            &a.connection,
            &a.output,
            env_password,
        ),
        Err(e) => usage(&e.to_string()),
    }
}

/// `psrp clixml`.
fn clixml(file: &Path, o: &OutputArgs) -> Status {
    let input = match clixml_cmd::open(file) {
        Ok(i) => i,
        Err(e) => return usage(&e),
    };
    let log = Logger::new(o.log_level, false);
    let formatter = Formatter::new(o.output, json_options(o), false);
    let (tx, writer) = OutputWriter::start(o.output, std::io::stdout());
    let status = clixml_cmd::run(input, &formatter, &tx, &log);
    drop(tx);
    log.clear_progress();
    finish_output(&log, writer, status)
}

fn finish_output(log: &Logger, writer: OutputWriter, status: Status) -> Status {
    match writer.finish() {
        Ok(()) => status,
        // The reader went away; what it read is complete as far as it went.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => status,
        Err(e) => {
            log.psrp("", &format!("cannot write the output: {e}"));
            status.max(Status::Failed)
        }
    }
}

/// `psrp invoke` and `psrp script`.
fn remote(
    pipeline: psrp_core::client::PowerShell,
    name: String,
    connection: &ConnectionArgs,
    o: &OutputArgs,
    env_password: Option<wsman::Secret>,
) -> Status {
    let settings = match Settings::resolve(connection, env_password) {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    if o.output == OutputFormat::Clixml && settings.hosts.len() > 1 {
        return usage("--output clixml is for one host (it is meant for debugging)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("psrp: cannot start the async runtime: {e}");
            return Status::Failed;
        }
    };
    let log = Arc::new(Logger::new(o.log_level, settings.tag_hosts));
    let formatter = Formatter::new(o.output, json_options(o), settings.tag_hosts);
    let (tx, writer) = OutputWriter::start(o.output, std::io::stdout());
    let job = Job {
        pipeline,
        name,
        settings,
        formatter,
        output: tx,
        log: log.clone(),
    };
    let status = runtime.block_on(async {
        let (cancel_tx, cancel_rx) = watch::channel(None);
        tokio::spawn(watch_signals(cancel_tx, log.clone()));
        run::run_all(job, cancel_rx).await
    });
    // Tasks still running (none normally) are dropped here.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    finish_output(&log, writer, status)
}

/// The first SIGINT/SIGTERM stops the pipelines (and deletes the shells);
/// a second one exits at once.
async fn watch_signals(cancel: watch::Sender<Option<Cancel>>, log: Arc<Logger>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log.psrp(
            "",
            "cannot install the signal handlers; Ctrl-C will not clean up",
        );
        return;
    };
    let mut first = true;
    loop {
        let c = tokio::select! {
            _ = int.recv() => Cancel::Interrupt,
            _ = term.recv() => Cancel::Terminate,
        };
        if !first {
            log.psrp("", "second signal: exiting without cleaning up");
            std::process::exit(match c {
                Cancel::Interrupt => Status::Interrupted.code(),
                Cancel::Terminate => Status::Terminated.code(),
            });
        }
        first = false;
        log.psrp(
            "",
            "stopping the pipeline and deleting the shell (signal again to exit at once)",
        );
        let _ = cancel.send(Some(c));
    }
}
