//! `psrp copy <local> <remote>` and `psrp fetch <remote> <local>`: file
//! transfer over one runspace pool with the library's chunked, SHA-256
//! checked copy (`psrp_core::client::RunspacePool::copy_file`/`fetch_file`),
//! a progress bar on a terminal (stderr), one summary line otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use psrp_core::client::{
    CleanupTracker, CopyError, CopyOptions, CopyReport, PoolOptions, RunspacePool,
};

use crate::args::{ConnectionArgs, LogLevel};
use crate::exit::Status;
use crate::logging::Logger;
use crate::run;
use crate::settings::Settings;

/// Bound on deleting the shell at the end.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Options both directions share.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Transfer")]
pub struct TransferArgs {
    /// Chunks in flight at once (each on its own runspace of the pool).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel: u16,
    /// How many times a chunk that fails its SHA-256 check (or its script)
    /// is sent or read again before the transfer fails.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Keep what is already at the destination (for fetch: the
    /// `<local>.psrp-part` file a failed fetch left) and transfer only the
    /// chunks whose SHA-256 differs.
    #[arg(long)]
    pub resume: bool,
    /// Chunk size in bytes (default: what fits in one MaxEnvelopeSize).
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<usize>,
    /// No progress bar and no summary line (errors are still shown).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `psrp copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The local file to send.
    pub local: PathBuf,
    /// The path on the remote host (replaced if it exists; relative to the
    /// remote session's location, usually the user's Documents folder; one
    /// ending in `\` or `/` is a folder, and the local file's name is added).
    pub remote: String,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `psrp fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The path of the file on the remote host.
    pub remote: String,
    /// The local file to write (replaced once the whole file's SHA-256
    /// matches); in an existing folder, the remote file's name.
    pub local: PathBuf,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Which way the file goes.
pub enum Direction {
    /// Local to remote.
    Copy { local: PathBuf, remote: String },
    /// Remote to local.
    Fetch { remote: String, local: PathBuf },
}

/// Runs a copy or fetch on the one host of `settings`.
pub fn run(direction: Direction, transfer: &TransferArgs, settings: Settings) -> Status {
    let log = Arc::new(Logger::new(LogLevel::Warning, false));
    if settings.hosts.len() != 1 {
        log.psrp("", "psrp copy and fetch take one host");
        return Status::Usage;
    }
    for w in settings.warnings() {
        log.psrp("", &format!("WARNING: {w}"));
    }
    let direction = match direction {
        Direction::Copy { local, remote } => {
            match std::fs::metadata(&local).and_then(|m| {
                if m.is_file() {
                    std::fs::File::open(&local).map(drop)
                } else {
                    Err(std::io::Error::other("not a file"))
                }
            }) {
                Ok(()) => {}
                Err(e) => {
                    log.psrp("", &format!("cannot read {}: {e}", local.display()));
                    return Status::Usage;
                }
            }
            // A remote folder written with a trailing separator gets the file's name.
            let remote = match local.file_name() {
                Some(name) if remote.ends_with(['\\', '/']) => {
                    format!("{remote}{}", name.to_string_lossy())
                }
                _ => remote,
            };
            Direction::Copy { local, remote }
        }
        Direction::Fetch { remote, local } => {
            // Into a local folder: the remote file's name, as cp does.
            let local = if local.is_dir() {
                let name = remote.rsplit(['\\', '/']).next().unwrap_or(&remote);
                local.join(name)
            } else {
                local
            };
            Direction::Fetch { remote, local }
        }
    };
    let host = settings.hosts[0].clone();
    let label = host.label();
    let runtime = match crate::run::runtime(Some(2)) {
        Ok(rt) => rt,
        Err(status) => return status,
    };
    let bar = Progress::new(transfer.quiet);
    let mut options = CopyOptions::new()
        .parallel(usize::from(transfer.parallel))
        .retries(transfer.retries)
        .resume(transfer.resume);
    if let Some(n) = transfer.chunk_size {
        options = options.chunk_size(n);
    }
    if let Some(bar) = bar.bar.clone() {
        options = options.on_progress(move |p| {
            bar.set_length(p.total);
            bar.set_position(p.done);
        });
    }
    let started = Instant::now();
    let cleanup = CleanupTracker::new();
    let outcome = runtime.block_on(async {
        let options_pool = {
            let (log, label) = (log.clone(), label.clone());
            run::connection_options(&settings, &host).on_ntlm_fallback(move |f| {
                log.psrp(
                    &label,
                    &crate::settings::ntlm_fallback_warning(&f.kerberos_error),
                );
            })
        };
        let pool_options = PoolOptions::new()
            .max_runspaces(transfer.parallel)
            .cleanup_timeout(CLEANUP_TIMEOUT)
            .cleanup_tracker(cleanup.clone());
        let opening = async {
            RunspacePool::open_with(options_pool, pool_options)
                .await
                .map_err(|e| (format!("cannot connect: {e}"), run::error_status(&e)))
        };
        let pool =
            run::until_cancelled(opening, settings.timeout, " while connecting", Status::Connection)
                .await;
        let result = match pool {
            Err(e) => Err(e),
            Ok(pool) => {
                let transfer = async {
                    match &direction {
                        Direction::Copy { local, remote } => {
                            pool.copy_file(local, remote, &options).await
                        }
                        Direction::Fetch { remote, local } => {
                            pool.fetch_file(remote, local, &options).await
                        }
                    }
                };
                // A signal or the timeout drops the transfer (its pipelines
                // are released) and the shell is deleted below.
                let transfer =
                    async { transfer.await.map_err(|e| (e.to_string(), copy_status(&e))) };
                let done =
                    run::until_cancelled(transfer, settings.timeout, "", Status::Failed).await;
                if let Err(e) = pool.close().await {
                    log.psrp(&label, &format!("could not delete the shell: {e}"));
                }
                done
            }
        };
        if tokio::time::timeout(CLEANUP_TIMEOUT, cleanup.wait())
            .await
            .is_err()
        {
            log.psrp(
                &label,
                "the shell could not be deleted in time; the server removes it after its idle timeout",
            );
        }
        result
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    bar.finish();
    match outcome {
        Ok(report) => {
            if !transfer.quiet {
                log.psrp(&label, &summary(&direction, &report, started.elapsed()));
            }
            Status::Success
        }
        Err((message, status)) => {
            log.psrp(&label, &message);
            status
        }
    }
}

/// One line on what was done.
fn summary(direction: &Direction, r: &CopyReport, elapsed: Duration) -> String {
    let what = match direction {
        Direction::Copy { local, .. } => format!("copied {} to {}", local.display(), r.remote_path),
        Direction::Fetch { local, .. } => {
            format!("fetched {} to {}", r.remote_path, local.display())
        }
    };
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut line = format!(
        "{what}: {} bytes in {secs:.1}s ({:.1} MiB/s), SHA-256 {}",
        r.bytes,
        r.transferred as f64 / secs / (1024.0 * 1024.0),
        r.sha256
    );
    if r.skipped_chunks > 0 {
        line.push_str(&format!(
            "; {} of {} chunks already in place",
            r.skipped_chunks, r.chunks
        ));
    }
    if r.retried_chunks > 0 {
        line.push_str(&format!(
            "; {} chunk(s) transferred again after a failed check",
            r.retried_chunks
        ));
    }
    line
}

/// The exit status of a failed transfer.
fn copy_status(e: &CopyError) -> Status {
    match e {
        CopyError::Client(e) => run::error_status(e),
        _ => Status::Failed,
    }
}

/// The progress bar: on a terminal only (stderr), hidden with --quiet.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bytes:>10} / {total_bytes:<10} [{bar:30}] {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress { bar }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
