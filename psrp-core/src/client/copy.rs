//! File copy to and from the remote host over an open pool: chunked,
//! several chunks in flight on the pool's runspaces, each chunk checked by
//! its SHA-256 (and retried when it does not match), the whole file checked
//! by its SHA-256 at the end, resumable, with flat memory.
//!
//! The remote side is PowerShell script text (short scripts below, each
//! starting with a `# psrp:copy-<step>/1` marker line) run with named
//! parameters: `open` creates the file at its final length, `write`
//! writes one chunk (a `byte[]` parameter) at its offset with a
//! `FileStream` and returns the SHA-256 of what it wrote, `read` returns
//! one chunk's SHA-256 and bytes, `stat` the full path and length,
//! `hashes` the SHA-256 of each chunk already there (for resuming) and
//! `hash` the SHA-256 of the whole file. Scripts need an endpoint that
//! allows the language (FullLanguage, e.g. `Microsoft.PowerShell`): a
//! NoLanguage (JEA) endpoint refuses them with [`CopyError::NoLanguage`],
//! and ConstrainedLanguage refuses the .NET calls.
//!
//! A chunk is as large as fits, as base64 in its pipeline's creation
//! message, in one WS-Man envelope (MaxEnvelopeSize), so each chunk is one
//! Command request; reads are as large. Each worker holds one chunk, so
//! memory does not grow with the file.

use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use sha2::{Digest, Sha256};

use crate::clixml::{encode, PsValue};
use crate::command::Command;

use super::error::ClientError;
use super::pool::{IntoPipeline, RunspacePool};

/// Creates (or keeps, with `-Keep`) the destination at its final length.
const OPEN_SCRIPT: &str = r#"# psrp:copy-open/1 (psrp copy: create the file, or keep it with -Keep, at its final length)
param([string]$Path, [long]$Length, [bool]$Keep)
$ErrorActionPreference = 'Stop'
$full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
$mode = if ($Keep) { [System.IO.FileMode]::OpenOrCreate } else { [System.IO.FileMode]::Create }
$fs = [System.IO.File]::Open($full, $mode, [System.IO.FileAccess]::Write, [System.IO.FileShare]::ReadWrite)
try { $fs.SetLength($Length) } finally { $fs.Dispose() }
$full
"#;

/// Writes one chunk at its offset; outputs the SHA-256 of what it wrote.
const WRITE_SCRIPT: &str = r#"# psrp:copy-write/1 (psrp copy: one chunk at its offset; the SHA-256 of what was written)
param([string]$Path, [long]$Offset, [byte[]]$Data)
$ErrorActionPreference = 'Stop'
$fs = [System.IO.File]::Open($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Write, [System.IO.FileShare]::ReadWrite)
try {
    [void]$fs.Seek($Offset, [System.IO.SeekOrigin]::Begin)
    $fs.Write($Data, 0, $Data.Length)
} finally { $fs.Dispose() }
$sha = [System.Security.Cryptography.SHA256]::Create()
[System.BitConverter]::ToString($sha.ComputeHash($Data)).Replace('-', '')
"#;

/// Reads one chunk; outputs its SHA-256, then the bytes (one byte[]).
const READ_SCRIPT: &str = r#"# psrp:copy-read/1 (psrp fetch: one chunk; its SHA-256, then its bytes)
param([string]$Path, [long]$Offset, [int]$Count)
$ErrorActionPreference = 'Stop'
$buffer = New-Object byte[] $Count
$n = 0
$fs = [System.IO.File]::Open($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite)
try {
    [void]$fs.Seek($Offset, [System.IO.SeekOrigin]::Begin)
    while ($n -lt $Count) {
        $r = $fs.Read($buffer, $n, $Count - $n)
        if ($r -eq 0) { break }
        $n += $r
    }
} finally { $fs.Dispose() }
if ($n -lt $Count) { [Array]::Resize([ref]$buffer, $n) }
$sha = [System.Security.Cryptography.SHA256]::Create()
[System.BitConverter]::ToString($sha.ComputeHash($buffer)).Replace('-', '')
Write-Output -NoEnumerate $buffer
"#;

/// The full path and length of the file to fetch.
const STAT_SCRIPT: &str = r#"# psrp:copy-stat/1 (psrp fetch: the file's full path and length)
param([string]$Path)
$ErrorActionPreference = 'Stop'
$full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
$item = Get-Item -LiteralPath $full -Force
if ($item.PSIsContainer) { throw "The path '$full' is a directory, not a file." }
$item.FullName
[long]$item.Length
"#;

/// The length (-1 when absent), then the SHA-256 of each chunk there.
const HASHES_SCRIPT: &str = r#"# psrp:copy-hashes/1 (psrp --resume: the SHA-256 of each chunk already there)
param([string]$Path, [int]$ChunkSize)
$ErrorActionPreference = 'Stop'
$full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
if (-not [System.IO.File]::Exists($full)) { return [long]-1 }
$sha = [System.Security.Cryptography.SHA256]::Create()
$buffer = New-Object byte[] $ChunkSize
$fs = [System.IO.File]::Open($full, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite)
try {
    [long]$fs.Length
    while ($true) {
        $n = 0
        while ($n -lt $ChunkSize) {
            $r = $fs.Read($buffer, $n, $ChunkSize - $n)
            if ($r -eq 0) { break }
            $n += $r
        }
        if ($n -eq 0) { break }
        [System.BitConverter]::ToString($sha.ComputeHash($buffer, 0, $n)).Replace('-', '')
        if ($n -lt $ChunkSize) { break }
    }
} finally { $fs.Dispose() }
"#;

/// The SHA-256 of the whole file.
const HASH_SCRIPT: &str = r#"# psrp:copy-hash/1 (psrp copy and fetch: the SHA-256 of the whole file)
param([string]$Path)
$ErrorActionPreference = 'Stop'
$sha = [System.Security.Cryptography.SHA256]::Create()
$fs = [System.IO.File]::Open($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, [System.IO.FileShare]::ReadWrite)
try { [System.BitConverter]::ToString($sha.ComputeHash($fs)).Replace('-', '') } finally { $fs.Dispose() }
"#;

/// Room kept in each envelope beyond the measured pipeline: PSRP message
/// and fragment headers, a pool host's HostInfo, rounding.
const CHUNK_MARGIN: usize = 2048;

/// Smallest chunk, even when the envelope is tiny (the pipeline then
/// takes more than one Send).
const MIN_CHUNK: usize = 4096;

/// Buffer for streaming a local file through SHA-256.
const HASH_BUFFER: usize = 1 << 20;

/// How far a transfer has come, given to [`CopyOptions::on_progress`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyProgress {
    /// Bytes in place at the destination (skipped ones included).
    pub done: u64,
    /// The file's size.
    pub total: u64,
}

type ProgressFn = Arc<dyn Fn(CopyProgress) + Send + Sync>;

/// Options of [`RunspacePool::copy_file`] and [`RunspacePool::fetch_file`].
#[derive(Clone)]
pub struct CopyOptions {
    parallel: usize,
    retries: u32,
    resume: bool,
    chunk_size: Option<usize>,
    on_progress: Option<ProgressFn>,
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("parallel", &self.parallel)
            .field("retries", &self.retries)
            .field("resume", &self.resume)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            parallel: 4,
            retries: 3,
            resume: false,
            chunk_size: None,
            on_progress: None,
        }
    }
}

impl CopyOptions {
    /// Defaults: 4 chunks in flight, 3 retries per chunk, no resume, chunks
    /// sized from the envelope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chunks in flight at once (at least 1). Each takes a runspace: open
    /// the pool with [`super::PoolOptions::max_runspaces`] at least this.
    pub fn parallel(mut self, count: usize) -> Self {
        self.parallel = count.max(1);
        self
    }

    /// How many times a chunk whose SHA-256 does not match (or whose
    /// script failed) is sent or read again before the copy fails.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Keep what is already at the destination (for a fetch, the
    /// `<local>.psrp-part` file a failed fetch left) and transfer only the
    /// chunks whose SHA-256 differs.
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }

    /// A fixed chunk size in bytes instead of the one computed from
    /// MaxEnvelopeSize (larger chunks take more than one Send each).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = Some(bytes.max(1));
        self
    }

    /// Called after each chunk (and once at the start) with the progress.
    pub fn on_progress(mut self, f: impl Fn(CopyProgress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(f));
        self
    }
}

/// What a finished transfer did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyReport {
    /// The remote file's full path, as the server resolved it.
    pub remote_path: String,
    /// The file's size.
    pub bytes: u64,
    /// Bytes sent or received in chunks (less than `bytes` after a resume).
    pub transferred: u64,
    /// The chunk size used.
    pub chunk_size: usize,
    /// Chunks in the file.
    pub chunks: u64,
    /// Chunks already in place (resume).
    pub skipped_chunks: u64,
    /// Chunk attempts repeated after a mismatch or a failed chunk script.
    pub retried_chunks: u64,
    /// The SHA-256 of the file (upper-case hex), equal on both sides.
    pub sha256: String,
}

/// Why a copy or fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// The pool failed (connection, authentication, protocol...).
    #[error(transparent)]
    Client(#[from] ClientError),

    /// The endpoint refuses scripts.
    #[error(
        "the endpoint {configuration} runs in NoLanguage mode (JEA) and refuses the scripts that \
         copy files; copy through an endpoint that allows scripts (Microsoft.PowerShell, or a \
         session configuration with LanguageMode FullLanguage)"
    )]
    NoLanguage {
        /// The session configuration.
        configuration: String,
    },

    /// A local file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Local {
        /// What was being done: "read", "write", "rename to its name"...
        action: &'static str,
        /// The local path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },

    /// A script failed on the server (a missing file or folder, access
    /// denied, ...).
    #[error("{step} on the server failed: {message}")]
    Remote {
        /// Which step: "opening the remote file", "reading a chunk"...
        step: &'static str,
        /// The server's error message.
        message: String,
    },

    /// The server's answer is not what the script writes.
    #[error("{step}: unexpected answer from the server: {detail}")]
    Unexpected {
        /// Which step.
        step: &'static str,
        /// What was wrong.
        detail: String,
    },

    /// One chunk failed its SHA-256 check (or its script) on every try.
    #[error(
        "the chunk at offset {offset} ({len} bytes) failed {attempts} time(s), last: {last}; \
         run again with --resume (CopyOptions::resume) to transfer only what is missing"
    )]
    ChunkFailed {
        /// Its offset in the file.
        offset: u64,
        /// Its length.
        len: usize,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },

    /// Every chunk matched but the whole file's SHA-256 differs.
    #[error(
        "SHA-256 mismatch after the transfer: local {local}, remote {remote} (was the file \
         changed during the copy?); run again with --resume (CopyOptions::resume) to transfer \
         the chunks that differ"
    )]
    ChecksumMismatch {
        /// The local file's.
        local: String,
        /// The remote file's.
        remote: String,
    },
}

/// Upper-case hex SHA-256, the form the scripts print.
fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// The SHA-256 of a local file, streamed.
fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut digest = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hex(&digest.finalize()));
        }
        digest.update(&buffer[..n]);
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    action: &'static str,
    path: &Path,
) -> Result<T, CopyError> {
    let local = |source| CopyError::Local {
        action,
        path: path.to_owned(),
        source,
    };
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| local(std::io::Error::other(e.to_string())))?
        .map_err(local)
}

/// One worker of a transfer.
type Worker<'a> = Pin<Box<dyn Future<Output = Result<(), CopyError>> + Send + 'a>>;

/// Runs futures together; the first error ends (and drops) them all.
async fn try_join_all(mut futures: Vec<Worker<'_>>) -> Result<(), CopyError> {
    std::future::poll_fn(|cx| {
        let mut i = 0;
        while i < futures.len() {
            match futures[i].as_mut().poll(cx) {
                Poll::Ready(Ok(())) => {
                    drop(futures.swap_remove(i));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => i += 1,
            }
        }
        if futures.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The state the workers of one transfer share.
struct Transfer {
    chunk: usize,
    size: u64,
    skipped: u64,
    retries: u32,
    pending: Mutex<std::vec::IntoIter<u64>>,
    done: AtomicU64,
    transferred: AtomicU64,
    retried: AtomicU64,
    on_progress: Option<ProgressFn>,
}

impl Transfer {
    /// A chunk's attempt failed: logged, then retried (counted) or, past
    /// the retries, the typed error.
    fn failed_attempt(
        &self,
        offset: u64,
        len: usize,
        attempt: u32,
        last: String,
    ) -> Result<(), CopyError> {
        tracing::warn!(offset, len, attempt, "chunk failed: {last}");
        if attempt > self.retries {
            return Err(CopyError::ChunkFailed {
                offset,
                len,
                attempts: attempt,
                last,
            });
        }
        self.retried.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn new(size: u64, chunk: usize, options: &CopyOptions, pending: Vec<u64>) -> Transfer {
        let chunks = chunk_count(size, chunk);
        let skipped = chunks - pending.len() as u64;
        let done = pending_bytes_skipped(size, chunk, &pending, skipped);
        Transfer {
            chunk,
            size,
            skipped,
            retries: options.retries,
            pending: Mutex::new(pending.into_iter()),
            done: AtomicU64::new(done),
            transferred: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            on_progress: options.on_progress.clone(),
        }
    }

    fn next(&self) -> Option<u64> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next()
    }

    /// Offset and length of chunk `index`.
    fn extent(&self, index: u64) -> (u64, usize) {
        let offset = index * self.chunk as u64;
        let len = (self.size - offset).min(self.chunk as u64) as usize;
        (offset, len)
    }

    fn finished(&self, len: usize) {
        let done = self.done.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        self.transferred.fetch_add(len as u64, Ordering::Relaxed);
        self.progress(done);
    }

    fn progress(&self, done: u64) {
        if let Some(f) = &self.on_progress {
            f(CopyProgress {
                done,
                total: self.size,
            });
        }
    }
}

fn chunk_count(size: u64, chunk: usize) -> u64 {
    size.div_ceil(chunk as u64)
}

/// Bytes of the chunks not in `pending` (already in place).
fn pending_bytes_skipped(size: u64, chunk: usize, pending: &[u64], skipped: u64) -> u64 {
    if skipped == 0 {
        return 0;
    }
    let pending_bytes: u64 = pending
        .iter()
        .map(|i| (size - i * chunk as u64).min(chunk as u64))
        .sum();
    size - pending_bytes
}

/// One script step: its output, or the error it failed with.
async fn run_step(
    pool: &RunspacePool,
    step: &'static str,
    command: Command,
) -> Result<Vec<PsValue>, CopyError> {
    let result = pool.invoke(command).await?;
    let record = result
        .terminating_error
        .as_ref()
        .or_else(|| result.errors.first());
    if let Some(record) = record {
        let id = record.fully_qualified_error_id.as_deref().unwrap_or("");
        if id.starts_with("ScriptsNotAllowed") {
            return Err(CopyError::NoLanguage {
                configuration: pool.configuration_name().to_owned(),
            });
        }
        return Err(CopyError::Remote {
            step,
            message: record.message.clone(),
        });
    }
    if !result.succeeded() {
        return Err(CopyError::Remote {
            step,
            message: format!("the pipeline ended {:?}", result.state),
        });
    }
    Ok(result.output)
}

/// The remote file's SHA-256 must be `local_hash` (upper-case hex), the
/// end-to-end check of a copy or fetch.
async fn verify_remote_hash(
    pool: &RunspacePool,
    remote_path: &str,
    local_hash: &str,
) -> Result<(), CopyError> {
    const HASH: &str = "hashing the remote file";
    let out = run_step(
        pool,
        HASH,
        Command::script(HASH_SCRIPT).param("Path", remote_path),
    )
    .await?;
    let remote_hash = string_at(&out, 0, HASH)?.to_ascii_uppercase();
    if remote_hash != local_hash {
        return Err(CopyError::ChecksumMismatch {
            local: local_hash.to_owned(),
            remote: remote_hash,
        });
    }
    Ok(())
}

fn string_at(values: &[PsValue], index: usize, step: &'static str) -> Result<String, CopyError> {
    values
        .get(index)
        .and_then(PsValue::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CopyError::Unexpected {
            step,
            detail: format!("output {index} is not a string"),
        })
}

fn i64_at(values: &[PsValue], index: usize, step: &'static str) -> Result<i64, CopyError> {
    values
        .get(index)
        .and_then(PsValue::as_i64)
        .ok_or_else(|| CopyError::Unexpected {
            step,
            detail: format!("output {index} is not an integer"),
        })
}

fn bytes_of(value: &PsValue) -> Option<&[u8]> {
    match value {
        PsValue::Bytes(b) => Some(b),
        PsValue::Object(o) => o.base.as_ref().and_then(|b| bytes_of(b)),
        _ => None,
    }
}

fn write_command(path: &str, offset: u64, data: Vec<u8>) -> Command {
    Command::script(WRITE_SCRIPT)
        .param("Path", path)
        .param("Offset", offset as i64)
        .param("Data", PsValue::Bytes(data))
}

fn read_command(path: &str, offset: u64, count: usize) -> Command {
    Command::script(READ_SCRIPT)
        .param("Path", path)
        .param("Offset", offset as i64)
        .param("Count", count as i32)
}

/// Bytes of file data that fit, as base64, in one envelope beside the
/// `write` pipeline (measured) for this pool.
fn chunk_size_for(pool: &RunspacePool, path: &str) -> usize {
    let max_payload = pool.shared.max_payload;
    let probe = write_command(path, u64::MAX >> 1, Vec::new()).into_pipeline();
    let pipeline = probe
        .to_value(pool.protocol_version())
        .map(|v| encode(&v).len())
        .unwrap_or(8192);
    let room = max_payload.saturating_sub(pipeline + CHUNK_MARGIN);
    (room / 4 * 3).max(MIN_CHUNK)
}

/// Chunk indices to transfer: all, or (resume) those whose SHA-256 at the
/// destination differs from the source's.
async fn pending_chunks(
    pool: &RunspacePool,
    remote_path: &str,
    source_is_local: bool,
    local: &Path,
    size: u64,
    chunk: usize,
    resume: bool,
) -> Result<Vec<u64>, CopyError> {
    let all: Vec<u64> = (0..chunk_count(size, chunk)).collect();
    if !resume {
        return Ok(all);
    }
    const STEP: &str = "reading the remote chunk hashes";
    let out = run_step(
        pool,
        STEP,
        Command::script(HASHES_SCRIPT)
            .param("Path", remote_path)
            .param("ChunkSize", chunk as i32),
    )
    .await?;
    if i64_at(&out, 0, STEP)? < 0 {
        return Ok(all);
    }
    let remote: Vec<String> = out[1..]
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_ascii_uppercase())
        .collect();
    // The local side of the comparison: the source (copy) or the part file (fetch).
    let local_path = local.to_owned();
    let count = remote.len().min(all.len());
    let local_hashes = blocking(
        move || {
            let file = match File::open(&local_path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !source_is_local => {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(e),
            };
            let have = file.metadata()?.len();
            let mut hashes = Vec::with_capacity(count);
            let mut buffer = vec![0u8; chunk];
            for i in 0..count as u64 {
                let offset = i * chunk as u64;
                let len = (size - offset).min(chunk as u64);
                if offset + len > have {
                    break;
                }
                let buf = &mut buffer[..len as usize];
                read_at(&file, buf, offset)?;
                hashes.push(sha256_hex(buf));
            }
            Ok(hashes)
        },
        "read",
        local,
    )
    .await?;
    Ok(all
        .into_iter()
        .filter(|&i| {
            let i = i as usize;
            !(i < local_hashes.len() && local_hashes[i] == remote[i])
        })
        .collect())
}

impl RunspacePool {
    /// Copies the local file `local` to `remote` on the server (replacing
    /// it; relative paths are relative to the remote session's location).
    /// Chunks go out [`CopyOptions::parallel`] at a time, each checked
    /// by the SHA-256 the server computes of what it wrote and sent again
    /// on a mismatch; the whole file's SHA-256 is compared at the end.
    /// The file is read in chunks, never whole. Needs an endpoint that
    /// allows scripts.
    ///
    /// ```no_run
    /// use psrp_core::client::{ConnectionOptions, CopyOptions, PoolOptions, RunspacePool};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = RunspacePool::open_with(
    ///     ConnectionOptions::new("win01.example.com"),
    ///     PoolOptions::new().max_runspaces(4),
    /// )
    /// .await?;
    /// let options = CopyOptions::new()
    ///     .parallel(4)
    ///     .on_progress(|p| eprintln!("{} of {} bytes", p.done, p.total));
    /// let report = pool
    ///     .copy_file("backup.zip".as_ref(), "C:\\Temp\\backup.zip", &options)
    ///     .await?;
    /// println!("{} bytes, SHA-256 {}", report.bytes, report.sha256);
    /// pool.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn copy_file(
        &self,
        local: &Path,
        remote: &str,
        options: &CopyOptions,
    ) -> Result<CopyReport, CopyError> {
        let local_err = |action, source| CopyError::Local {
            action,
            path: local.to_owned(),
            source,
        };
        let file = File::open(local).map_err(|e| local_err("open", e))?;
        let meta = file.metadata().map_err(|e| local_err("read", e))?;
        if meta.is_dir() {
            return Err(local_err(
                "copy",
                std::io::Error::other("it is a directory, not a file"),
            ));
        }
        let size = meta.len();
        let file = Arc::new(file);
        // The whole file's hash, read in sequence beside the transfer.
        let hashing = {
            let path = local.to_owned();
            tokio::task::spawn_blocking(move || hash_file(&path))
        };
        let chunk = options
            .chunk_size
            .unwrap_or_else(|| chunk_size_for(self, remote));
        let pending =
            pending_chunks(self, remote, true, local, size, chunk, options.resume).await?;
        const OPEN: &str = "opening the remote file";
        let out = run_step(
            self,
            OPEN,
            Command::script(OPEN_SCRIPT)
                .param("Path", remote)
                .param("Length", size as i64)
                .param("Keep", options.resume),
        )
        .await?;
        let full = string_at(&out, 0, OPEN)?;
        let transfer = Transfer::new(size, chunk, options, pending);
        transfer.progress(transfer.done.load(Ordering::Relaxed));
        let workers = (0..options.parallel)
            .map(|_| Box::pin(upload_worker(self, &transfer, &full, &file, local)) as Worker<'_>)
            .collect();
        try_join_all(workers).await?;
        let local_hash = hashing
            .await
            .map_err(|e| local_err("read", std::io::Error::other(e.to_string())))?
            .map_err(|e| local_err("read", e))?;
        verify_remote_hash(self, &full, &local_hash).await?;
        Ok(report(&transfer, full, local_hash))
    }

    /// Fetches `remote` from the server into the local file `local`. The
    /// data goes to `<local>.psrp-part` first, chunk by chunk (each chunk
    /// checked against the SHA-256 the server sends with it, and read again
    /// on a mismatch), and is renamed to `local` once the whole file's
    /// SHA-256 matches; a failed fetch leaves the part file for
    /// [`CopyOptions::resume`]. Needs an endpoint that allows scripts.
    pub async fn fetch_file(
        &self,
        remote: &str,
        local: &Path,
        options: &CopyOptions,
    ) -> Result<CopyReport, CopyError> {
        const STAT: &str = "looking up the remote file";
        let out = run_step(
            self,
            STAT,
            Command::script(STAT_SCRIPT).param("Path", remote),
        )
        .await?;
        let full = string_at(&out, 0, STAT)?;
        let size = u64::try_from(i64_at(&out, 1, STAT)?).map_err(|_| CopyError::Unexpected {
            step: STAT,
            detail: "a negative length".into(),
        })?;
        let chunk = options.chunk_size.unwrap_or_else(|| {
            (self.shared.max_payload.saturating_sub(CHUNK_MARGIN) / 4 * 3).max(MIN_CHUNK)
        });
        let mut part_name = local.as_os_str().to_owned();
        part_name.push(".psrp-part");
        let part = PathBuf::from(part_name);
        let pending =
            pending_chunks(self, &full, false, &part, size, chunk, options.resume).await?;
        let file = {
            let path = part.clone();
            let keep = options.resume;
            blocking(
                move || {
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(!keep)
                        .open(&path)?;
                    file.set_len(size)?;
                    Ok(file)
                },
                "create",
                &part,
            )
            .await?
        };
        let file = Arc::new(file);
        let transfer = Transfer::new(size, chunk, options, pending);
        transfer.progress(transfer.done.load(Ordering::Relaxed));
        let workers = (0..options.parallel)
            .map(|_| Box::pin(download_worker(self, &transfer, &full, &file, &part)) as Worker<'_>)
            .collect();
        try_join_all(workers).await?;
        {
            let file = file.clone();
            blocking(move || file.sync_all(), "write", &part).await?;
        }
        drop(file);
        let local_hash = {
            let path = part.clone();
            blocking(move || hash_file(&path), "read", &part).await?
        };
        verify_remote_hash(self, &full, &local_hash).await?;
        std::fs::rename(&part, local).map_err(|source| CopyError::Local {
            action: "rename the fetched part file to",
            path: local.to_owned(),
            source,
        })?;
        Ok(report(&transfer, full, local_hash))
    }
}

fn report(transfer: &Transfer, remote_path: String, sha256: String) -> CopyReport {
    let chunks = chunk_count(transfer.size, transfer.chunk);
    let transferred = transfer.transferred.load(Ordering::Relaxed);
    CopyReport {
        remote_path,
        bytes: transfer.size,
        transferred,
        chunk_size: transfer.chunk,
        chunks,
        skipped_chunks: transfer.skipped,
        retried_chunks: transfer.retried.load(Ordering::Relaxed),
        sha256,
    }
}

/// A worker of `copy_file`: takes chunks until none is left.
async fn upload_worker(
    pool: &RunspacePool,
    transfer: &Transfer,
    full: &str,
    file: &Arc<File>,
    local: &Path,
) -> Result<(), CopyError> {
    while let Some(index) = transfer.next() {
        let (offset, len) = transfer.extent(index);
        let data = {
            let file = file.clone();
            blocking(
                move || {
                    let mut buf = vec![0u8; len];
                    read_at(&file, &mut buf, offset)?;
                    Ok(buf)
                },
                "read",
                local,
            )
            .await?
        };
        let want = sha256_hex(&data);
        let mut attempt = 0;
        loop {
            attempt += 1;
            const STEP: &str = "writing a chunk";
            let last = match run_step(pool, STEP, write_command(full, offset, data.clone())).await {
                Ok(out) => match out.first().and_then(PsValue::as_str) {
                    Some(got) if got.eq_ignore_ascii_case(&want) => break,
                    Some(got) => format!("SHA-256 {got} on the server, {want} sent"),
                    None => "no SHA-256 in the answer".to_owned(),
                },
                Err(CopyError::Remote { message, .. }) => message,
                Err(e) => return Err(e),
            };
            transfer.failed_attempt(offset, len, attempt, last)?;
        }
        transfer.finished(len);
    }
    Ok(())
}

/// A worker of `fetch_file`: takes chunks until none is left.
async fn download_worker(
    pool: &RunspacePool,
    transfer: &Transfer,
    full: &str,
    file: &Arc<File>,
    part: &Path,
) -> Result<(), CopyError> {
    while let Some(index) = transfer.next() {
        let (offset, len) = transfer.extent(index);
        let mut attempt = 0;
        let data = loop {
            attempt += 1;
            const STEP: &str = "reading a chunk";
            let last = match run_step(pool, STEP, read_command(full, offset, len)).await {
                Ok(mut out) if out.len() == 2 => {
                    let hash = out[0].as_str().unwrap_or("").to_owned();
                    match bytes_of(&out[1]) {
                        Some(b) if b.len() != len => {
                            format!("{} bytes instead of {len}", b.len())
                        }
                        Some(b) if sha256_hex(b).eq_ignore_ascii_case(&hash) => {
                            match out.swap_remove(1) {
                                PsValue::Bytes(b) => break b,
                                other => break bytes_of(&other).unwrap_or_default().to_vec(),
                            }
                        }
                        Some(b) => {
                            format!("SHA-256 {} received, {hash} on the server", sha256_hex(b))
                        }
                        None => "the chunk is not a byte array".to_owned(),
                    }
                }
                Ok(out) => format!("{} objects instead of 2", out.len()),
                Err(CopyError::Remote { message, .. }) => message,
                Err(e) => return Err(e),
            };
            transfer.failed_attempt(offset, len, attempt, last)?;
        };
        {
            let file = file.clone();
            blocking(move || write_at(&file, &data, offset), "write", part).await?;
        }
        transfer.finished(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_upper_case_hex_as_the_scripts_print_them() {
        assert_eq!(
            sha256_hex(b"abc"),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }

    #[test]
    fn every_script_starts_with_its_marker() {
        for (script, step) in [
            (OPEN_SCRIPT, "open"),
            (WRITE_SCRIPT, "write"),
            (READ_SCRIPT, "read"),
            (STAT_SCRIPT, "stat"),
            (HASHES_SCRIPT, "hashes"),
            (HASH_SCRIPT, "hash"),
        ] {
            assert!(script.starts_with(&format!("# psrp:copy-{step}/1 ")));
        }
    }

    #[test]
    fn skipped_bytes_count_the_chunks_not_pending() {
        // 10 bytes in chunks of 4: 4 + 4 + 2; chunk 1 pending.
        assert_eq!(pending_bytes_skipped(10, 4, &[1], 2), 6);
        assert_eq!(pending_bytes_skipped(10, 4, &[2], 2), 8);
        assert_eq!(pending_bytes_skipped(10, 4, &[0, 1, 2], 0), 0);
        assert_eq!(chunk_count(10, 4), 3);
        assert_eq!(chunk_count(0, 4), 0);
    }
}
