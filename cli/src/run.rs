//! `psrp invoke` and `psrp script`: one runspace pool per host, the
//! session-init commands, then the command with its events streamed to
//! stdout (output) and stderr (every other stream); several hosts at once
//! up to the throttle; Ctrl-C and `--timeout` stop the pipeline and delete
//! the shell before the process exits, also when they come while the pool
//! is still opening.

use std::sync::Arc;
use std::time::{Duration, Instant};

use psrp_core::client::{
    AuthMethod, CleanupTracker, ClientError, ConnectionOptions, ErrorKind, Event, HostCall,
    HostMethodId, Invocation, PipelineState, PoolOptions, PowerShell, RunspacePool, Scheme,
};
use psrp_core::clixml::PsValue;
use psrp_core::command::Command;
use psrp_core::message::ErrorRecord;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::args::{self, AuthKind};
use crate::exit::Status;
use crate::hosts::HostSpec;
use crate::logging::{Level, Logger};
use crate::output::{Formatter, OutputSender};
use crate::params::{self, Param};
use crate::settings::Settings;

/// How long a stopped pipeline may take to wind down (events drained,
/// command released) before the pool is closed anyway.
const STOP_GRACE: Duration = Duration::from_secs(35);
/// Bound on deleting a shell, and on waiting, before exiting, for the
/// shells of abandoned opens to be deleted (every exit path gets the same).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a run was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Cancel {
    pub(crate) fn status(self) -> Status {
        match self {
            Cancel::Interrupt => Status::Interrupted,
            Cancel::Terminate => Status::Terminated,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Cancel::Interrupt => "interrupted (SIGINT)",
            Cancel::Terminate => "terminated (SIGTERM)",
        }
    }
}

/// What to run on each host.
pub struct Job {
    /// The pipeline.
    pub pipeline: PowerShell,
    /// How messages name it: the command, or "the script".
    pub name: String,
    /// The settings.
    pub settings: Settings,
    /// Formats output objects.
    pub formatter: Formatter,
    /// Where output goes.
    pub output: OutputSender,
    /// Where streams go.
    pub log: Arc<Logger>,
    /// `psrp invoke --check`.
    pub check: Option<crate::check::CheckJob>,
    /// Run it, detach it, or pick up, stop a detached job.
    pub mode: Mode,
    /// Answers to the command's prompts (`crate::prompts`).
    pub answers: crate::prompts::Answers,
}

/// What `run_host` does with the pipeline (see `crate::jobs`).
#[derive(Clone)]
pub enum Mode {
    /// `invoke` / `script`: run it and stream its output.
    Run,
    /// `invoke --detach`: start it, disconnect, print a job handle.
    Detach(crate::jobs::DetachArgs, Option<String>),
    /// `receive`: connect to a detached job, stream its output, delete it.
    Receive(crate::jobs::JobHandle),
    /// `stop`: connect to a detached job, stop it, leave it disconnected.
    Stop(crate::jobs::JobHandle),
}

/// Where a pipeline's events come from.
enum Source {
    /// A new pipeline.
    Start(PowerShell),
    /// A running one, by command id (a detached job).
    Connect(String),
}

/// The pipeline of `psrp invoke`.
pub fn invoke_pipeline(command: &str, params: &[Param]) -> PowerShell {
    PowerShell::new(params::apply(Command::new(command), params))
}

/// The pipeline of `psrp script`.
pub fn script_pipeline(text: String, params: &[Param]) -> PowerShell {
    PowerShell::new(params::apply(Command::script(text), params))
}

/// One host's outcome, for the summary.
struct Outcome {
    host: String,
    status: Status,
    objects: u64,
    errors: u64,
    elapsed: Duration,
}

impl Outcome {
    /// A host that never ran (a signal came while it waited for its turn).
    fn skipped(host: String, status: Status) -> Outcome {
        Outcome {
            host,
            status,
            objects: 0,
            errors: 0,
            elapsed: Duration::ZERO,
        }
    }
}

/// The tokio runtime a command runs on (`workers`: a fixed number of worker
/// threads, else one per CPU); when it cannot start, says so on stderr.
pub fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, Status> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder.enable_all().build().map_err(|e| {
        eprintln!("psrp: cannot start the async runtime: {e}");
        Status::Failed
    })
}

/// Runs the job on every host (at most `throttle` at once) and returns the
/// worst status. `cancel` turns `Some` on SIGINT/SIGTERM.
///
/// A host's task is spawned only when a slot is free, so what is held at
/// once (tasks, connections, buffers) follows the throttle, not the number
/// of hosts; each finished host leaves only its line of the summary.
pub async fn run_all(job: Job, mut cancel: watch::Receiver<Option<Cancel>>) -> Status {
    let job = Arc::new(job);
    for w in job.settings.warnings() {
        job.log.psrp("", &format!("WARNING: {w}"));
    }
    let throttle = job.settings.throttle.max(1);
    // Counts every shell until it is deleted, also by a pool's background
    // delete after an abandoned open.
    let cleanup = CleanupTracker::new();
    let mut tasks = JoinSet::new();
    let mut waiting = job.settings.hosts.iter().enumerate();
    let mut outcomes: Vec<(usize, Outcome)> = Vec::with_capacity(job.settings.hosts.len());
    let mut worst = Status::Success;
    let mut cancelled: Option<Cancel> = None;
    loop {
        while cancelled.is_none() && tasks.len() < throttle {
            let Some((index, host)) = waiting.next() else {
                break;
            };
            let job = job.clone();
            let cleanup = cleanup.clone();
            let host = host.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let label = host.label();
                let started = Instant::now();
                let mut counts = Counts::default();
                let status = run_host(&job, &host, &label, cancel, &cleanup, &mut counts).await;
                // Its progress lines are done with.
                job.log.host_done(&label);
                (
                    index,
                    Outcome {
                        host: label,
                        status,
                        objects: counts.objects,
                        errors: counts.errors,
                        elapsed: started.elapsed(),
                    },
                )
            });
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(o)) => outcomes.push(o),
                Some(Err(e)) => {
                    job.log
                        .psrp("", &format!("internal error in a host task: {e}"));
                    worst = Status::Failed;
                }
                None => {}
            },
            // The running hosts see the signal themselves; the waiting ones
            // are skipped.
            c = wait_cancel(&mut cancel), if cancelled.is_none() => cancelled = Some(c),
        }
    }
    if let Some(c) = cancelled {
        outcomes.extend(
            waiting.map(|(index, host)| (index, Outcome::skipped(host.label(), c.status()))),
        );
    }
    // The runtime stops when this returns, and with it any delete still
    // running: wait for them, bounded.
    if tokio::time::timeout(CLEANUP_TIMEOUT, cleanup.wait())
        .await
        .is_err()
    {
        job.log.psrp(
            "",
            &format!(
                "{} shell(s) could not be deleted within {}s; the server removes them after \
                 its idle timeout",
                cleanup.pending(),
                CLEANUP_TIMEOUT.as_secs()
            ),
        );
    }
    outcomes.sort_by_key(|(i, _)| *i);
    job.log.clear_progress();
    let worst = outcomes
        .iter()
        .map(|(_, o)| o.status)
        .fold(worst, Status::max);
    if job.settings.tag_hosts {
        summary(&job.log, &outcomes);
    }
    worst
}

fn summary(log: &Logger, outcomes: &[(usize, Outcome)]) {
    let mut counts: Vec<(Status, usize)> = Vec::new();
    for (_, o) in outcomes {
        match counts.iter_mut().find(|(s, _)| *s == o.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((o.status, 1)),
        }
        log.psrp(
            "",
            &format!(
                "summary: {}: {} (exit {}; {} objects, {} errors, {:.1}s)",
                o.host,
                o.status.label(),
                o.status.code(),
                o.objects,
                o.errors,
                o.elapsed.as_secs_f64()
            ),
        );
    }
    counts.sort();
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.label()))
        .collect();
    log.psrp(
        "",
        &format!("summary: {} hosts: {}", outcomes.len(), parts.join(", ")),
    );
}

async fn wait_cancel(cancel: &mut watch::Receiver<Option<Cancel>>) -> Cancel {
    loop {
        if let Some(c) = *cancel.borrow_and_update() {
            return c;
        }
        if cancel.changed().await.is_err() {
            // The sender is gone: no signal can come any more.
            std::future::pending::<()>().await;
        }
    }
}

pub(crate) fn connection_options(s: &Settings, host: &HostSpec) -> ConnectionOptions {
    let mut o = ConnectionOptions::new(host.name.clone())
        .scheme(match s.scheme {
            args::Scheme::Http => Scheme::Http,
            args::Scheme::Https => Scheme::Https,
        })
        .path(s.path.clone())
        .auth(match s.auth {
            AuthKind::Basic => AuthMethod::Basic,
            AuthKind::Ntlm => AuthMethod::Ntlm,
            AuthKind::Kerberos => AuthMethod::Kerberos,
            AuthKind::Negotiate => AuthMethod::Negotiate,
            AuthKind::Certificate => AuthMethod::Certificate,
            AuthKind::Credssp => AuthMethod::CredSsp,
        })
        .configuration_name(s.configuration_name.clone())
        .danger_accept_invalid_certs(s.insecure_skip_tls_verify)
        .allow_unencrypted(s.allow_unencrypted)
        .allow_ntlm_fallback(!s.no_ntlm_fallback)
        .delegate(s.delegate);
    if let Some(p) = host.port.or(s.port) {
        o = o.port(p);
    }
    if let Some(u) = &s.username {
        o = o.username(u.clone());
    }
    if let Some(p) = &s.password {
        o = o.password(p.clone());
    }
    if let Some(spn) = &s.spn {
        o = o.spn(spn.clone());
    }
    if let Some((cert, key)) = &s.client_certificate {
        o = o.client_certificate(cert.clone(), key.clone());
    }
    if let Some(ca) = &s.ca_file {
        o = o.ca_file(ca.clone());
    }
    if let Some(t) = s.connect_timeout {
        o = o.connect_timeout(t);
    }
    if let Some(t) = s.operation_timeout {
        o = o.operation_timeout(t);
    }
    if let Some(n) = s.max_envelope_size {
        o = o.max_envelope_size(n as usize);
    }
    if let Some(n) = s.reconnect_retries {
        o = o.reconnect_retries(n);
    }
    if let Some(b) = s.reconnect_backoff {
        o = o.reconnect_backoff(b);
    }
    if let Some(l) = &s.locale {
        o = o.locale(l.clone());
    }
    o
}

/// The exit status for a client error. A message over the size limit is
/// a failed run (2), not a connection failure (3): the host works, and
/// retrying does not help; a larger --max-message-size does.
pub(crate) fn error_status(e: &ClientError) -> Status {
    match e.kind() {
        ErrorKind::Config => Status::Usage,
        ErrorKind::SessionInit
        | ErrorKind::PipelineFailed
        | ErrorKind::InvalidCommand
        | ErrorKind::LimitExceeded => Status::Failed,
        _ => Status::Connection,
    }
}

/// A client error as text; a size limit names psrp's option rather than
/// the library's.
fn error_text(e: &ClientError) -> String {
    match e {
        ClientError::LimitExceeded {
            operation, source, ..
        } => format!(
            "{operation}: {source}; raise --max-message-size (PSRP_MAX_MESSAGE_SIZE, profile \
             key max_message_size) if the server legitimately sends this much"
        ),
        ClientError::Wsman {
            source: wsman::Error::Delegation { source, .. },
            ..
        } => match crate::delegation::cache_cause(&source.principal) {
            Some(cause) => format!("{e} ({cause})"),
            None => e.to_string(),
        },
        e => e.to_string(),
    }
}

/// The cause and fix from the advice table, when it knows the error.
fn advise(log: &Logger, label: &str, e: &ClientError) {
    if let Some(a) = crate::advice::for_client_error(e) {
        log.psrp(label, &crate::advice::invoke_hint(a));
    }
}

#[derive(Default)]
struct Counts {
    objects: u64,
    errors: u64,
}

/// What ended the wait for an event (a short-lived value on the stack, so
/// its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    Event(Result<Option<Event>, ClientError>),
    Cancelled(Cancel),
    TimedOut,
}

/// How a pipeline run ended.
enum Ended {
    /// Ran to a final state.
    Done(Option<PipelineState>, Option<Box<ErrorRecord>>),
    /// The client failed while following it.
    Error(ClientError),
    /// Stopped on a signal or the timeout.
    Cut(Status, String),
    /// stdout went away.
    OutputClosed,
}

async fn run_host(
    job: &Job,
    host: &HostSpec,
    label: &str,
    mut cancel: watch::Receiver<Option<Cancel>>,
    cleanup: &CleanupTracker,
    counts: &mut Counts,
) -> Status {
    let log = &job.log;
    let s = &job.settings;
    let deadline = s.timeout.map(|t| tokio::time::Instant::now() + t);
    // --check with the cached metadata: a miss sends nothing at all.
    let mut checked = false;
    if let Some(check) = &job.check {
        if let Some(commands) = check.cached(s, host) {
            if let Err((message, status)) = check.verify(&commands) {
                log.psrp(
                    label,
                    &format!("{message} (cached metadata; --refresh fetches it again)"),
                );
                return status;
            }
            checked = true;
        }
    }
    let options = {
        let (log, label) = (job.log.clone(), label.to_owned());
        let (retry_log, retry_label) = (log.clone(), label.clone());
        connection_options(s, host)
            .on_ntlm_fallback(move |f| {
                log.psrp(
                    &label,
                    &crate::settings::ntlm_fallback_warning(&f.kerberos_error),
                );
            })
            .on_reconnect(move |event| {
                // One line per retry (the error text may quote the server:
                // Log escapes control characters).
                let text = format!("WARNING: {event}").replace(['\n', '\r'], " ");
                retry_log.psrp(&retry_label, &text);
            })
    };
    let prompter = job.answers.host(label, s.tag_hosts, job.log.clone());
    let mut pool_options = PoolOptions::new()
        .cleanup_timeout(CLEANUP_TIMEOUT)
        .cleanup_tracker(cleanup.clone())
        .host(prompter.clone());
    if let Some(n) = s.max_message_size {
        // Partial messages may hold twice the largest message, as by default.
        pool_options = pool_options
            .max_message_size(n)
            .max_buffered_bytes(n.saturating_mul(2));
    }
    // A signal or the deadline abandons the open (dropping it): the pool
    // then deletes its shell in the background (after the Create, when one
    // is still on its way), and run_all waits for that before exiting.
    let handle = match &job.mode {
        Mode::Receive(h) | Mode::Stop(h) => Some(h.clone()),
        _ => None,
    };
    let opening = async {
        match &handle {
            Some(h) => {
                RunspacePool::connect(options, pool_options, &h.shell_id, Some(h.expires_at()))
                    .await
            }
            None => RunspacePool::open_with(options, pool_options).await,
        }
    };
    let opened = tokio::select! {
        r = opening => r,
        c = wait_cancel(&mut cancel) => {
            log.psrp(label, &format!("{} while connecting", c.name()));
            return c.status();
        }
        _ = sleep_until(deadline) => {
            log.psrp(label, &format!("timed out after {} while connecting", secs(s.timeout)));
            return Status::Connection;
        }
    };
    let pool = match opened {
        Ok(pool) => pool,
        Err(e) => {
            log.psrp(label, &format!("cannot connect: {}", error_text(&e)));
            advise(log, label, &e);
            return error_status(&e);
        }
    };
    if let Mode::Stop(h) = &job.mode {
        return match pool.stop_command(&h.command_id).await {
            Ok(()) => {
                match pool
                    .detach(&psrp_core::client::DisconnectOptions::new())
                    .await
                {
                    Ok(()) => {
                        log.psrp(label, "the pipeline was asked to stop; the job stays (psrp remove deletes it)");
                        Status::Success
                    }
                    Err(e) => {
                        log.psrp(
                            label,
                            &format!("cannot disconnect again: {}", error_text(&e)),
                        );
                        error_status(&e)
                    }
                }
            }
            Err(e) => {
                log.psrp(label, &format!("cannot stop the job: {}", error_text(&e)));
                close(log, label, pool).await;
                error_status(&e)
            }
        };
    }
    if let (Some(check), false) = (&job.check, checked) {
        if let Err(status) =
            fetch_and_check(check, &pool, s, host, label, log, &mut cancel, deadline).await
        {
            close(log, label, pool).await;
            return status;
        }
    }
    // A detached job's session-init commands ran when it was started.
    let session_init = if handle.is_some() {
        &[][..]
    } else {
        &s.session_init[..]
    };
    for (index, init) in session_init.iter().enumerate() {
        let pipeline =
            PowerShell::new(params::apply(Command::new(init.name.clone()), &init.params));
        let what = format!("session-init command {} ({})", index + 1, init.name);
        let ended = run_pipeline(
            job,
            &pool,
            Source::Start(pipeline),
            label,
            &mut cancel,
            deadline,
            counts,
            false,
            &prompter,
        );
        if let Err(status) = completed(log, label, &what, ended.await) {
            close(log, label, pool).await;
            return status;
        }
    }
    if let Mode::Detach(detach, profile) = &job.mode {
        let port = host.port.or(s.port).unwrap_or(match s.scheme {
            args::Scheme::Http => 5985,
            args::Scheme::Https => 5986,
        });
        let shell_id = pool.shell_id().to_owned();
        return match pool
            .start_detached(job.pipeline.clone(), &detach.options())
            .await
        {
            Ok(started) => {
                let handle = crate::jobs::JobHandle::new(
                    s,
                    profile.clone(),
                    &host.name,
                    port,
                    shell_id,
                    started.command_id,
                    job.name.clone(),
                    detach,
                );
                match serde_json::to_string(&handle) {
                    Ok(text) => println!("{text}"),
                    Err(e) => log.psrp(label, &format!("cannot write the job handle: {e}")),
                }
                Status::Success
            }
            Err(e) => {
                log.psrp(
                    label,
                    &format!("cannot detach {}: {}", job.name, error_text(&e)),
                );
                error_status(&e)
            }
        };
    }
    let source = match &handle {
        Some(h) => Source::Connect(h.command_id.clone()),
        None => Source::Start(job.pipeline.clone()),
    };
    let ended = run_pipeline(
        job,
        &pool,
        source,
        label,
        &mut cancel,
        deadline,
        counts,
        true,
        &prompter,
    );
    let result = completed(log, label, &job.name, ended.await);
    close(log, label, pool).await;
    match result {
        // Error records of the session-init commands count too.
        Ok(()) if counts.errors > 0 => Status::HadErrors,
        Ok(()) => Status::Success,
        Err(status) => status,
    }
}

/// `--check` without a cached list: reads the endpoint's commands on the
/// open pool (before session-init and the command), keeps them, checks.
#[allow(clippy::too_many_arguments)]
async fn fetch_and_check(
    check: &crate::check::CheckJob,
    pool: &RunspacePool,
    s: &Settings,
    host: &HostSpec,
    label: &str,
    log: &Logger,
    cancel: &mut watch::Receiver<Option<Cancel>>,
    deadline: Option<tokio::time::Instant>,
) -> Result<(), Status> {
    let all = ["*".to_owned()];
    let fetched = tokio::select! {
        r = crate::commands_cmd::fetch(pool, &all) => r,
        c = wait_cancel(cancel) => {
            log.psrp(label, &format!("{} while reading the command metadata", c.name()));
            return Err(c.status());
        }
        _ = sleep_until(deadline) => {
            log.psrp(label, &format!("timed out after {} while reading the command metadata", secs(s.timeout)));
            return Err(Status::Failed);
        }
    };
    let commands = fetched.map_err(|e| {
        log.psrp(label, &format!("--check: {}", error_text(&e)));
        error_status(&e).max(Status::Failed)
    })?;
    if let Err(message) = check.store(s, host, &commands) {
        log.psrp(label, &message);
    }
    check.verify(&commands).map_err(|(message, status)| {
        log.psrp(label, &message);
        status
    })
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{}s", d.as_secs_f64()))
        .unwrap_or_default()
}

/// The first SIGINT or SIGTERM (never, when the handlers cannot be set).
async fn first_signal() -> Cancel {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => Cancel::Interrupt,
            _ = term.recv() => Cancel::Terminate,
        },
        _ => std::future::pending().await,
    }
}

/// Sleeps for `timeout`, or forever without one.
async fn sleep_for(timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}

/// A timeout in seconds for messages (0 without one).
fn timeout_secs(timeout: Option<Duration>) -> f64 {
    timeout.map(|t| t.as_secs_f64()).unwrap_or_default()
}

/// Runs `work` until it ends, the first SIGINT/SIGTERM or `timeout`; the
/// signal and the timeout are errors whose message ends with `step` (e.g.
/// " while connecting"), with the signal's status or `timeout_status`.
/// Dropping `work` is how it is abandoned (a pool being opened deletes its
/// shell in the background).
pub(crate) async fn until_cancelled<T>(
    work: impl std::future::Future<Output = Result<T, (String, Status)>>,
    timeout: Option<Duration>,
    step: &str,
    timeout_status: Status,
) -> Result<T, (String, Status)> {
    tokio::select! {
        r = work => r,
        c = first_signal() => Err((format!("{}{step}", c.name()), c.status())),
        _ = sleep_for(timeout) => Err((
            format!("timed out after {}s{step}", timeout_secs(timeout)),
            timeout_status,
        )),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// `Ok` when the pipeline completed; otherwise says why (a terminating
/// error with its record, a stop, a client error) and gives the status.
fn completed(log: &Logger, label: &str, what: &str, ended: Ended) -> Result<(), Status> {
    let (state, error) = match ended {
        Ended::Done(Some(PipelineState::Completed), _) => return Ok(()),
        Ended::Done(state, error) => (state, error),
        Ended::Error(e) => {
            log.psrp(label, &format!("{what}: {}", error_text(&e)));
            advise(log, label, &e);
            return Err(error_status(&e).max(Status::Failed));
        }
        Ended::Cut(status, why) => {
            log.psrp(label, &format!("{what}: {why}"));
            return Err(status);
        }
        Ended::OutputClosed => {
            log.psrp(label, "stdout was closed; the pipeline was stopped");
            return Err(Status::Failed);
        }
    };
    let how = match state {
        Some(PipelineState::Stopped) => "was stopped by the server".to_owned(),
        Some(PipelineState::Failed) => "failed".to_owned(),
        Some(other) => format!("ended {}", other.name()),
        None => "ended without a final state".to_owned(),
    };
    match error {
        Some(r) => log.psrp(label, &format!("{what} {how}: {}", r.formatted())),
        None => log.psrp(label, &format!("{what} {how}")),
    }
    Err(Status::Failed)
}

/// Deletes the shell; a failure is reported (the server drops the shell
/// after its idle timeout) but does not change the status.
async fn close(log: &Logger, label: &str, pool: RunspacePool) {
    if let Err(e) = pool.close().await {
        log.psrp(label, &format!("could not delete the shell: {e}"));
    }
}

/// Runs one pipeline, streaming its events; stops it on a signal or the
/// deadline and waits (bounded) for it to wind down.
#[allow(clippy::too_many_arguments)]
async fn run_pipeline(
    job: &Job,
    pool: &RunspacePool,
    source: Source,
    label: &str,
    cancel: &mut watch::Receiver<Option<Cancel>>,
    deadline: Option<tokio::time::Instant>,
    counts: &mut Counts,
    main: bool,
    prompter: &crate::prompts::Prompter,
) -> Ended {
    // Starting is not cut short by a signal: a half-sent Command would be
    // released without being stopped. It is bounded by the transport's
    // timeouts; the signal is seen right after.
    let starting = async {
        match source {
            Source::Start(pipeline) => pool.start(pipeline).await,
            Source::Connect(command_id) => pool.connect_command(&command_id).await,
        }
    };
    let start = tokio::select! {
        r = starting => r,
        _ = sleep_until(deadline) => return Ended::Cut(Status::Failed, format!("timed out after {} before it started", secs(job.settings.timeout))),
    };
    let mut inv = match start {
        Ok(inv) => inv,
        Err(e) => return Ended::Error(e),
    };
    loop {
        let step = tokio::select! {
            e = inv.next() => Step::Event(e),
            c = wait_cancel(cancel) => Step::Cancelled(c),
            _ = sleep_until(deadline) => Step::TimedOut,
        };
        let (status, why) = match step {
            Step::Event(Ok(Some(event))) => {
                let host_call = matches!(event, Event::HostCall(_));
                if handle_event(job, label, event, counts, main).await.is_err() {
                    wind_down(job, inv, label, counts, None).await;
                    return Ended::OutputClosed;
                }
                // A prompt nobody could answer: the command cannot go on
                // as meant (a script would run its next statements).
                match prompter.take_unanswered() {
                    Some(why) if host_call => {
                        (Status::Failed, format!("{why}; the pipeline was stopped"))
                    }
                    _ => continue,
                }
            }
            Step::Event(Ok(None)) => {
                let c = inv.completion().cloned();
                return Ended::Done(
                    c.as_ref().map(|c| c.state),
                    c.and_then(|c| c.error).map(Box::new),
                );
            }
            Step::Event(Err(e)) => return Ended::Error(e),
            Step::Cancelled(c) => (
                c.status(),
                format!("{}; the pipeline was stopped", c.name()),
            ),
            Step::TimedOut => (
                Status::Failed,
                format!(
                    "timed out after {}; the pipeline was stopped",
                    secs(job.settings.timeout)
                ),
            ),
        };
        wind_down(job, inv, label, counts, Some(main)).await;
        return Ended::Cut(status, why);
    }
}

/// Stops the pipeline and keeps reading its events (the receive task
/// waits for room to pass them on) until it ends, at most [`STOP_GRACE`].
/// The events are passed on as usual (`Some(main)`), or dropped (`None`,
/// when stdout is gone).
async fn wind_down(
    job: &Job,
    mut inv: Invocation,
    label: &str,
    counts: &mut Counts,
    pass_on: Option<bool>,
) {
    let stop = inv.stop_handle();
    let stopping = tokio::spawn(async move { stop.stop().await });
    let drain = async {
        let mut pass_on = pass_on;
        while let Ok(Some(event)) = inv.next().await {
            if let Some(main) = pass_on {
                if handle_event(job, label, event, counts, main).await.is_err() {
                    pass_on = None;
                }
            }
        }
    };
    if tokio::time::timeout(STOP_GRACE, drain).await.is_err() {
        job.log
            .psrp(label, "the pipeline did not end after the stop request");
    }
    match stopping.await {
        Ok(Err(e)) if e.kind() != ErrorKind::Closed => {
            job.log.psrp(label, &format!("stopping the pipeline: {e}"))
        }
        _ => {}
    }
}

/// Passes one event on: output to stdout, the rest to the log.
async fn handle_event(
    job: &Job,
    label: &str,
    event: Event,
    counts: &mut Counts,
    main: bool,
) -> Result<(), crate::output::OutputClosed> {
    let log = &job.log;
    match event {
        Event::Output(v) => {
            if main {
                counts.objects += 1;
                job.output.send(job.formatter.item(label, &v)).await?;
            } else if log.enabled(Level::Debug) {
                // Session-init output is not the command's output.
                log.line(
                    label,
                    Level::Debug,
                    &format!("session-init output: {}", text_of(&v)),
                );
            }
        }
        Event::Error(r) => {
            counts.errors += 1;
            log.error_record(label, &r);
        }
        Event::Warning(r) => log.informational(label, Level::Warning, &r),
        Event::Verbose(r) => log.informational(label, Level::Verbose, &r),
        Event::Debug(r) => log.informational(label, Level::Debug, &r),
        Event::Information(r) => log.information(label, &r),
        Event::Progress(r) => log.progress(label, &r),
        Event::HostCall(call) => host_call(log, label, &call),
        _ => {}
    }
    Ok(())
}

fn text_of(v: &PsValue) -> String {
    match psrp_core::clixml::to_json(v) {
        serde_json::Value::String(s) => s,
        j => j.to_string(),
    }
}

/// Host calls that write text become log lines; prompts were answered by
/// the run's `crate::prompts::Prompter`.
fn host_call(log: &Logger, label: &str, call: &HostCall) {
    let text = || {
        call.parameters
            .last()
            .and_then(PsValue::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match call.method {
        HostMethodId::Write1
        | HostMethodId::Write2
        | HostMethodId::WriteLine1
        | HostMethodId::WriteLine2
        | HostMethodId::WriteLine3 => log.line(label, Level::Information, &text()),
        HostMethodId::WriteErrorLine => log.line(label, Level::Error, &text()),
        HostMethodId::WriteWarningLine => log.line(label, Level::Warning, &text()),
        HostMethodId::WriteVerboseLine => log.line(label, Level::Verbose, &text()),
        HostMethodId::WriteDebugLine => log.line(label, Level::Debug, &text()),
        _ => {}
    }
}
