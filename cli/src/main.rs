//! The `psrp` command line: run PowerShell commands on Windows hosts over
//! WinRM (PSRP) from Linux, with JSON output and every stream as log lines.

// One exception, justified where it is: overwriting a password variable in
// the process's environment block (password.rs).
#![deny(unsafe_code)]

mod advice;
mod args;
mod check;
mod clixml_cmd;
mod command_line;
mod commands_cmd;
mod config;
mod copy_cmd;
mod delegation;
mod doctor;
mod exit;
mod hosts;
mod jobs;
mod limits;
mod logging;
mod metadata;
mod output;
mod params;
mod password;
mod prompts;
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
use run::{Cancel, Job, Mode};
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
            Ok(p) => {
                let check = a.check.check.then(|| check::CheckJob {
                    command: a.command.clone(),
                    params: p.clone(),
                    refresh: a.check.refresh,
                    cache: metadata::Cache::from_env(),
                });
                let mode = if a.detach.detach {
                    Mode::Detach(a.detach.clone(), a.connection.profile.clone())
                } else {
                    Mode::Run
                };
                remote(
                    run::invoke_pipeline(&a.command, &p),
                    a.command.clone(),
                    &a.connection,
                    &a.output,
                    env_password,
                    check,
                    mode,
                    &a.params.answers,
                )
            }
            Err(e) => usage(&e.to_string()),
        },
        Commands::Script(a) => script(&a, env_password),
        Commands::Endpoint(a) => match Settings::resolve(&a.connection, env_password) {
            Ok(s) => commands_cmd::run(&a, s),
            Err(e) => usage(&e.to_string()),
        },
        Commands::Completions(a) => completions(a.shell),
        Commands::Man(a) => man(a.dir.as_deref()),
        Commands::Doctor(a) => doctor(&a, env_password),
        Commands::Receive(a) => job_command(a, env_password, Mode::Receive),
        Commands::Stop(a) => job_command(a, env_password, Mode::Stop),
        Commands::Remove(a) => remove(a, env_password),
        Commands::Jobs(a) => list_jobs(&a, env_password),
        Commands::Copy(a) => match Settings::resolve(&a.connection, env_password) {
            Ok(s) => copy_cmd::run(
                copy_cmd::Direction::Copy {
                    local: a.local,
                    remote: a.remote,
                },
                &a.transfer,
                s,
            ),
            Err(e) => usage(&e.to_string()),
        },
        Commands::Fetch(a) => match Settings::resolve(&a.connection, env_password) {
            Ok(s) => copy_cmd::run(
                copy_cmd::Direction::Fetch {
                    remote: a.remote,
                    local: a.local,
                },
                &a.transfer,
                s,
            ),
            Err(e) => usage(&e.to_string()),
        },
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
            None,
            Mode::Run,
            &a.params.answers,
        ),
        Err(e) => usage(&e.to_string()),
    }
}

/// `psrp completions <shell>`: the script on stdout.
fn completions(shell: args::CompletionShell) -> Status {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shell = match shell {
        args::CompletionShell::Bash => Shell::Bash,
        args::CompletionShell::Zsh => Shell::Zsh,
        args::CompletionShell::Fish => Shell::Fish,
        args::CompletionShell::Powershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut Cli::command(), "psrp", &mut std::io::stdout());
    Status::Success
}

/// `psrp man [--dir DIR]`: psrp.1 on stdout, or every page into DIR.
fn man(dir: Option<&Path>) -> Status {
    use clap::CommandFactory;
    let written = match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir)),
        None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()),
    };
    match written {
        Ok(()) => Status::Success,
        Err(e) => usage(&format!("cannot write the man page: {e}")),
    }
}

/// `psrp doctor`.
fn doctor(a: &args::DoctorArgs, env_password: Option<wsman::Secret>) -> Status {
    let settings = match Settings::resolve(&a.connection, env_password) {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    if settings.hosts.len() > 1 {
        return usage("psrp doctor checks one host at a time");
    }
    let runtime = match run::runtime(None) {
        Ok(rt) => rt,
        Err(status) => return status,
    };
    for w in settings.warnings() {
        eprintln!("psrp: WARNING: {w}");
    }
    let status = runtime.block_on(doctor::run(settings, a.json));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    status
}

/// `psrp receive` / `psrp stop`: the handle gives the connection (options
/// given on the command line win) and the job.
fn job_command(
    mut a: jobs::HandleArgs,
    env_password: Option<wsman::Secret>,
    mode: fn(jobs::JobHandle) -> Mode,
) -> Status {
    let handle = match jobs::JobHandle::load(&a.handle) {
        Ok(h) => h,
        Err(e) => return usage(&e),
    };
    if a.handle == "-" && a.connection.password_stdin {
        return usage("--password-stdin cannot be used when the job handle is read from stdin");
    }
    handle.fill(&mut a.connection);
    let name = handle.command.clone();
    remote(
        psrp_core::client::PowerShell::new(psrp_core::command::Command::new(name.clone())),
        name,
        &a.connection,
        &a.output,
        env_password,
        None,
        mode(handle),
        &prompts::AnswerArgs::default(),
    )
}

/// Runs `f` for each host with its connection options, on a runtime.
fn per_host<F, Fut>(
    connection: &ConnectionArgs,
    env_password: Option<wsman::Secret>,
    f: F,
) -> Status
where
    F: Fn(String, psrp_core::client::ConnectionOptions) -> Fut,
    Fut: std::future::Future<Output = Status>,
{
    let settings = match Settings::resolve(connection, env_password) {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    let runtime = match run::runtime(None) {
        Ok(rt) => rt,
        Err(status) => return status,
    };
    // The loud options warn on every run, here too.
    for w in settings.warnings() {
        eprintln!("psrp: WARNING: {}", logging::terminal_safe(&w));
    }
    let status = runtime.block_on(async {
        let mut worst = Status::Success;
        for host in &settings.hosts {
            let label = host.label();
            let options = run::connection_options(&settings, host).on_ntlm_fallback(move |f| {
                eprintln!(
                    "psrp: [{label}] {}",
                    logging::terminal_safe(&settings::ntlm_fallback_warning(&f.kerberos_error))
                );
            });
            worst = worst.max(f(host.label(), options).await);
        }
        worst
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    status
}

/// `psrp remove`: deletes the job's shell.
fn remove(mut a: jobs::HandleArgs, env_password: Option<wsman::Secret>) -> Status {
    let handle = match jobs::JobHandle::load(&a.handle) {
        Ok(h) => h,
        Err(e) => return usage(&e),
    };
    handle.fill(&mut a.connection);
    let shell_id = handle.shell_id.clone();
    per_host(&a.connection, env_password, |label, options| {
        let shell_id = shell_id.clone();
        async move {
            match psrp_core::client::remove_shell(&options, &shell_id).await {
                Ok(()) => Status::Success,
                Err(e) => {
                    eprintln!(
                        "psrp: [{label}] cannot remove the job: {}",
                        logging::terminal_safe(&e.to_string())
                    );
                    Status::Connection
                }
            }
        }
    })
}

/// `psrp jobs`: the user's (disconnected) shells, one JSON object a line.
fn list_jobs(a: &jobs::JobsArgs, env_password: Option<wsman::Secret>) -> Status {
    let all = a.all;
    per_host(&a.connection, env_password, |label, options| async move {
        match psrp_core::client::list_shells(&options).await {
            Ok(shells) => {
                for s in shells.iter().filter(|s| all || s.is_disconnected()) {
                    let mut line = jobs::shell_json(s);
                    line["host"] = serde_json::Value::String(label.clone());
                    println!("{line}");
                }
                Status::Success
            }
            Err(e) => {
                eprintln!(
                    "psrp: [{label}] cannot list the jobs: {}",
                    logging::terminal_safe(&e.to_string())
                );
                Status::Connection
            }
        }
    })
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
#[allow(clippy::too_many_arguments)]
fn remote(
    pipeline: psrp_core::client::PowerShell,
    name: String,
    connection: &ConnectionArgs,
    o: &OutputArgs,
    env_password: Option<wsman::Secret>,
    check: Option<check::CheckJob>,
    mode: Mode,
    answers: &prompts::AnswerArgs,
) -> Status {
    let settings = match Settings::resolve(connection, env_password) {
        Ok(s) => s,
        Err(e) => return usage(&e.to_string()),
    };
    let answers = match prompts::Answers::load(answers) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    if o.output == OutputFormat::Clixml && settings.hosts.len() > 1 {
        return usage("--output clixml is for one host (it is meant for debugging)");
    }
    let runtime = match run::runtime(None) {
        Ok(rt) => rt,
        Err(status) => return status,
    };
    let log = Arc::new(Logger::new(o.log_level, settings.tag_hosts));
    if settings.hosts.len() > 1 {
        // One connection per running host: a fan-out may need more open
        // files than the usual soft limit of 1,024.
        let files = limits::raise_open_files(settings.throttle.min(settings.hosts.len()));
        if files.raised() {
            log.line("", logging::Level::Debug, &limits::raised_note(&files));
        }
        if files.too_low() {
            log.psrp(
                "",
                &format!(
                    "WARNING: {}",
                    limits::too_low_warning(&files, settings.throttle)
                ),
            );
        }
    }
    let formatter = Formatter::new(o.output, json_options(o), settings.tag_hosts);
    // Detaching and stopping print no output objects (detach prints its
    // handle itself).
    let quiet = matches!(mode, Mode::Detach(..) | Mode::Stop(_));
    let (tx, writer) = if quiet {
        OutputWriter::start(
            OutputFormat::Ndjson,
            Box::new(std::io::sink()) as Box<dyn std::io::Write + Send>,
        )
    } else {
        OutputWriter::start(
            o.output,
            Box::new(std::io::stdout()) as Box<dyn std::io::Write + Send>,
        )
    };
    let job = Job {
        pipeline,
        name,
        settings,
        formatter,
        output: tx,
        log: log.clone(),
        check,
        mode,
        answers,
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
        // A prompt waiting on the terminal gives up (and restores echo).
        prompts::cancel_terminal_prompts();
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand clap knows (also those added later) is in every
    /// completion script and in the man page.
    #[test]
    fn completions_and_man_page_mention_every_subcommand() {
        let cli = Cli::command();
        let subs: Vec<String> = cli
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        assert!(subs.len() >= 6, "{subs:?}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "psrp", &mut out);
            let text = String::from_utf8(out).unwrap();
            for sub in &subs {
                assert!(text.contains(sub.as_str()), "{shell}: no {sub}");
            }
        }
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for sub in &subs {
            assert!(text.contains(&format!("psrp\\-{sub}")), "man: no {sub}");
        }
    }
}
