//! A runspace pool for Python: opened (with its session-init commands),
//! used to start or invoke pipelines, closed. Every method exists
//! blocking (GIL released, Ctrl-C honoured) and as an awaitable (`*_async`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use psrp_core::client::{
    BufferMode, ClientError, DetachedJob, DisconnectOptions, PoolOptions, RunspacePool,
};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert;
use crate::errors;
use crate::invocation::{timeout_arg, InvState, Invocation};
use crate::records::{self, Seen};
use crate::runtime;
use crate::settings::Settings;

/// How long an interrupted open may still take, so that its shell can be
/// deleted properly (as the CLI does on Ctrl-C while connecting).
const OPEN_GRACE: Duration = Duration::from_secs(10);
/// Bound on deleting the shell (as the CLI).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

/// An open runspace pool (`psrp_client._native.Pool`): the Python
/// `RunspacePool` and `AsyncRunspacePool` wrap it.
#[pyclass(module = "psrp_client._native", name = "Pool", frozen)]
pub struct Pool {
    inner: Arc<RunspacePool>,
}

impl Drop for Pool {
    /// A pool dropped without close (a program that forgot it): the shell is
    /// deleted by a task on the module's runtime.
    fn drop(&mut self) {
        if !self.inner.is_closed() {
            let pool = self.inner.clone();
            runtime::spawn(async move {
                let _ = pool.close().await;
            });
        }
    }
}

fn pool_options(
    session_init: &Bound<'_, PyList>,
    host: Option<Py<PyAny>>,
) -> PyResult<PoolOptions> {
    let mut options = PoolOptions::new().cleanup_timeout(CLEANUP_TIMEOUT);
    if let Some(callback) = host {
        options = options.host(crate::host::PyHost::new(callback));
    }
    for spec in session_init.iter() {
        options = options.session_init(convert::command(&spec)?);
    }
    Ok(options)
}

/// `idle_timeout` (seconds) and `buffer_mode` (`"block"`/`"drop"`) as
/// DisconnectOptions.
fn disconnect_options(
    py: Python<'_>,
    idle_timeout: Option<f64>,
    buffer_mode: Option<&str>,
) -> PyResult<DisconnectOptions> {
    let mut options = DisconnectOptions::new();
    if let Some(t) = timeout_arg(py, idle_timeout)? {
        options = options.idle_timeout(t);
    }
    match buffer_mode.map(str::to_ascii_lowercase).as_deref() {
        None => {}
        Some("block") => options = options.buffer_mode(BufferMode::Block),
        Some("drop") => options = options.buffer_mode(BufferMode::Drop),
        Some(other) => {
            return Err(errors::usage(
                py,
                format!("buffer_mode must be \"block\" or \"drop\", not {other:?}"),
            ))
        }
    }
    Ok(options)
}

/// A detached job for Python: `(shell_id, command_id, expires_at)`, the
/// last in Unix seconds (None when no idle timeout was given).
type JobTuple = (String, String, Option<f64>);

fn job_tuple(job: DetachedJob) -> JobTuple {
    let expires = job
        .expires_at
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    (job.shell_id, job.command_id, expires)
}

/// Unix seconds as a SystemTime (an expiry from a job record).
fn unix_time(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<SystemTime>> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .and_then(|d| UNIX_EPOCH.checked_add(d))
                .ok_or_else(|| {
                    errors::usage(py, format!("expires_at must be Unix seconds, not {s}"))
                })
        })
        .transpose()
}

fn wrap(r: Result<RunspacePool, ClientError>) -> PyResult<Pool> {
    match r {
        Ok(pool) => Ok(Pool {
            inner: Arc::new(pool),
        }),
        Err(e) => Python::attach(|py| Err(errors::client(py, &e, None))),
    }
}

#[pymethods]
impl Pool {
    /// Opens a pool and runs the session-init commands (each a
    /// `psrp_client.Command`). Ctrl-C while opening lets the open finish
    /// (at most 10 s) and deletes the shell before KeyboardInterrupt.
    #[staticmethod]
    #[pyo3(signature = (settings, session_init, host=None))]
    fn open(
        py: Python<'_>,
        settings: &Settings,
        session_init: &Bound<'_, PyList>,
        host: Option<Py<PyAny>>,
    ) -> PyResult<Pool> {
        let options = pool_options(session_init, host)?;
        let mut opening = Box::pin(RunspacePool::open_with(settings.options.clone(), options));
        match runtime::wait_pinned(py, &mut opening) {
            Ok(Ok(pool)) => Ok(Pool {
                inner: Arc::new(pool),
            }),
            Ok(Err(e)) => Err(errors::client(py, &e, None)),
            Err(signal) => {
                runtime::wait_uninterruptible(py, async move {
                    // A timeout drops the open inside the runtime: its guard
                    // then deletes a shell that was created.
                    if let Ok(Ok(pool)) = tokio::time::timeout(OPEN_GRACE, opening).await {
                        let _ = pool.close().await;
                    }
                });
                Err(signal)
            }
        }
    }

    /// `open` as an awaitable (cancelling it deletes a shell being created).
    #[staticmethod]
    #[pyo3(signature = (settings, session_init, host=None))]
    fn open_async<'py>(
        py: Python<'py>,
        settings: &Settings,
        session_init: &Bound<'py, PyList>,
        host: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = pool_options(session_init, host)?;
        let connection = settings.options.clone();
        runtime::awaitable(py, async move {
            match RunspacePool::open_with(connection, options).await {
                Ok(pool) => Ok(Pool {
                    inner: Arc::new(pool),
                }),
                Err(e) => Python::attach(|py| Err(errors::client(py, &e, None))),
            }
        })
    }

    /// Starts a pipeline (a `psrp_client.Command`) and returns its
    /// Invocation.
    fn start(&self, py: Python<'_>, command: &Bound<'_, PyAny>) -> PyResult<Invocation> {
        let pipeline = convert::command(command)?;
        let pool = self.inner.clone();
        let started = runtime::wait(py, async move { pool.start(pipeline).await })?;
        started
            .map(Invocation::new)
            .map_err(|e| errors::client(py, &e, None))
    }

    /// `start` as an awaitable.
    fn start_async<'py>(
        &self,
        py: Python<'py>,
        command: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pipeline = convert::command(command)?;
        let pool = self.inner.clone();
        runtime::awaitable(py, async move {
            match pool.start(pipeline).await {
                Ok(inv) => Ok(Invocation::new(inv)),
                Err(e) => Python::attach(|py| Err(errors::client(py, &e, None))),
            }
        })
    }

    /// Runs a pipeline to its end and returns its InvocationResult (a
    /// failed pipeline is a result too: see `raise_for_status`). `timeout`
    /// (seconds) stops it when it expires and raises PsrpTimeout. Ctrl-C
    /// stops it and raises KeyboardInterrupt.
    #[pyo3(signature = (command, timeout=None))]
    fn invoke(
        &self,
        py: Python<'_>,
        command: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let pipeline = convert::command(command)?;
        let timeout = timeout_arg(py, timeout)?;
        let pool = self.inner.clone();
        // Dropped on Ctrl-C (inside the runtime): the pipeline's command is
        // then released on the server.
        let collected = runtime::wait(py, async move {
            let inv = pool.start(pipeline).await?;
            Ok(InvState::new(inv).collect(timeout).await)
        })?;
        match collected {
            Ok(c) => c.into_py(py),
            Err(e) => Err(errors::client(py, &e, None)),
        }
    }

    /// `invoke` as an awaitable.
    #[pyo3(signature = (command, timeout=None))]
    fn invoke_async<'py>(
        &self,
        py: Python<'py>,
        command: &Bound<'py, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pipeline = convert::command(command)?;
        let timeout = timeout_arg(py, timeout)?;
        let pool = self.inner.clone();
        runtime::awaitable(py, async move {
            let collected = match pool.start(pipeline).await {
                Ok(inv) => Ok(InvState::new(inv).collect(timeout).await),
                Err(e) => Err(e),
            };
            Python::attach(|py| match collected {
                Ok(c) => c.into_py(py),
                Err(e) => Err(errors::client(py, &e, None)),
            })
        })
    }

    /// Starts a pipeline and leaves it to the server in the disconnected
    /// shell (WS-Man Command, then Disconnect with `idle_timeout` seconds
    /// and `buffer_mode`); this pool is closed afterwards without deleting
    /// the shell. Returns `(shell_id, command_id, expires_at)`.
    #[pyo3(signature = (command, idle_timeout=None, buffer_mode=None))]
    fn start_detached(
        &self,
        py: Python<'_>,
        command: &Bound<'_, PyAny>,
        idle_timeout: Option<f64>,
        buffer_mode: Option<&str>,
    ) -> PyResult<JobTuple> {
        let pipeline = convert::command(command)?;
        let options = disconnect_options(py, idle_timeout, buffer_mode)?;
        let pool = self.inner.clone();
        runtime::wait(
            py,
            async move { pool.start_detached(pipeline, &options).await },
        )?
        .map(job_tuple)
        .map_err(|e| errors::client(py, &e, None))
    }

    /// `start_detached` as an awaitable.
    #[pyo3(signature = (command, idle_timeout=None, buffer_mode=None))]
    fn start_detached_async<'py>(
        &self,
        py: Python<'py>,
        command: &Bound<'py, PyAny>,
        idle_timeout: Option<f64>,
        buffer_mode: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pipeline = convert::command(command)?;
        let options = disconnect_options(py, idle_timeout, buffer_mode)?;
        let pool = self.inner.clone();
        runtime::awaitable(py, async move {
            let r = pool.start_detached(pipeline, &options).await;
            Python::attach(|py| r.map(job_tuple).map_err(|e| errors::client(py, &e, None)))
        })
    }

    /// Connects to a disconnected shell by id (WS-Man Connect): the pool is
    /// then open, and closing it deletes the shell. `expires_at` (Unix
    /// seconds, from `start_detached`) tells an expired shell from an
    /// unknown one. Session-init commands are not run.
    #[staticmethod]
    #[pyo3(signature = (settings, shell_id, expires_at=None))]
    fn connect(
        py: Python<'_>,
        settings: &Settings,
        shell_id: String,
        expires_at: Option<f64>,
    ) -> PyResult<Pool> {
        let expires_at = unix_time(py, expires_at)?;
        let options = PoolOptions::new().cleanup_timeout(CLEANUP_TIMEOUT);
        let connection = settings.options.clone();
        let r = runtime::wait(py, async move {
            RunspacePool::connect(connection, options, &shell_id, expires_at).await
        })?;
        wrap(r)
    }

    /// `connect` as an awaitable.
    #[staticmethod]
    #[pyo3(signature = (settings, shell_id, expires_at=None))]
    fn connect_async<'py>(
        py: Python<'py>,
        settings: &Settings,
        shell_id: String,
        expires_at: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let expires_at = unix_time(py, expires_at)?;
        let options = PoolOptions::new().cleanup_timeout(CLEANUP_TIMEOUT);
        let connection = settings.options.clone();
        runtime::awaitable(py, async move {
            wrap(RunspacePool::connect(connection, options, &shell_id, expires_at).await)
        })
    }

    /// Connects to a pipeline of a connected pool by its command id: its
    /// output buffered by the server, then the rest, stream as from `start`.
    fn connect_command(&self, py: Python<'_>, command_id: String) -> PyResult<Invocation> {
        let pool = self.inner.clone();
        runtime::wait(py, async move { pool.connect_command(&command_id).await })?
            .map(Invocation::new)
            .map_err(|e| errors::client(py, &e, None))
    }

    /// `connect_command` as an awaitable.
    fn connect_command_async<'py>(
        &self,
        py: Python<'py>,
        command_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pool = self.inner.clone();
        runtime::awaitable(py, async move {
            match pool.connect_command(&command_id).await {
                Ok(inv) => Ok(Invocation::new(inv)),
                Err(e) => Python::attach(|py| Err(errors::client(py, &e, None))),
            }
        })
    }

    /// Disconnects a shell by id from this new client (its earlier client
    /// died while connected), so that `connect` can pick it up.
    #[staticmethod]
    #[pyo3(signature = (settings, shell_id, idle_timeout=None, buffer_mode=None))]
    fn disconnect_shell_async<'py>(
        py: Python<'py>,
        settings: &Settings,
        shell_id: String,
        idle_timeout: Option<f64>,
        buffer_mode: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = disconnect_options(py, idle_timeout, buffer_mode)?;
        let connection = settings.options.clone();
        runtime::awaitable(py, async move {
            let r = psrp_core::client::disconnect_shell(&connection, &shell_id, &options).await;
            Python::attach(|py| r.map_err(|e| errors::client(py, &e, None)))
        })
    }

    /// Deletes a shell by id with its pipelines and their output.
    #[staticmethod]
    fn remove_shell_async<'py>(
        py: Python<'py>,
        settings: &Settings,
        shell_id: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let connection = settings.options.clone();
        runtime::awaitable(py, async move {
            let r = psrp_core::client::remove_shell(&connection, &shell_id).await;
            Python::attach(|py| r.map_err(|e| errors::client(py, &e, None)))
        })
    }

    /// Deletes the shell (idempotent). Not interrupted by Ctrl-C: it is
    /// bounded by the clean-up timeout (20 s).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let pool = self.inner.clone();
        runtime::wait_uninterruptible(py, async move { pool.close().await })
            .map_err(|e| errors::client(py, &e, None))
    }

    /// `close` as an awaitable.
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pool = self.inner.clone();
        runtime::awaitable(py, async move {
            let r = pool.close().await;
            Python::attach(|py| r.map_err(|e| errors::client(py, &e, None)))
        })
    }

    /// Decrypts a SecureString's ciphertext received on this pool with its
    /// session key.
    fn decrypt(&self, py: Python<'_>, ciphertext: Vec<u8>) -> PyResult<String> {
        let value = psrp_core::clixml::SecureString::from_ciphertext(ciphertext);
        match self.inner.decrypt(&value) {
            Ok(text) => Ok(String::from(text.as_str())),
            Err(e) => Err(errors::client(py, &e, None)),
        }
    }

    /// Exchanges the SecureString session key now, if not done already.
    fn exchange_keys(&self, py: Python<'_>) -> PyResult<()> {
        let pool = self.inner.clone();
        runtime::wait(py, async move { pool.exchange_keys().await })?
            .map_err(|e| errors::client(py, &e, None))
    }

    /// `exchange_keys` as an awaitable.
    fn exchange_keys_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pool = self.inner.clone();
        runtime::awaitable(py, async move {
            let r = pool.exchange_keys().await;
            Python::attach(|py| r.map_err(|e| errors::client(py, &e, None)))
        })
    }

    /// Whether the SecureString session key was exchanged.
    #[getter]
    fn has_session_key(&self) -> bool {
        self.inner.has_session_key()
    }

    /// Whether the pool was closed (or failed).
    #[getter]
    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The WS-Man ShellId.
    #[getter]
    fn shell_id(&self) -> &str {
        self.inner.shell_id()
    }

    /// The endpoint URL.
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// The session configuration name.
    #[getter]
    fn configuration_name(&self) -> &str {
        self.inner.configuration_name()
    }

    /// The PSRP protocol version both sides speak, e.g. `2.3`.
    #[getter]
    fn protocol_version(&self) -> String {
        self.inner.protocol_version().to_string()
    }

    /// The server's `$PSVersionTable` as a dict, when it sent one.
    #[getter]
    fn ps_version_table(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let data = self.inner.application_private_data();
        match data.as_ref().and_then(|d| d.get("PSVersionTable")) {
            Some(v) => Ok(convert::to_py(py, v)?.unbind()),
            None => Ok(py.None()),
        }
    }

    /// The InvocationResults of the session-init commands, in order.
    #[getter]
    fn session_init_results(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.inner
            .session_init_results()
            .iter()
            .map(|r| records::result(py, r, Seen::default()).map(Bound::unbind))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Pool(endpoint={:?}, configuration_name={:?}, shell_id={:?}, closed={})",
            self.inner.endpoint(),
            self.inner.configuration_name(),
            self.inner.shell_id(),
            self.inner.is_closed()
        )
    }
}
