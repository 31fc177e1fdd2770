//! A running pipeline for Python: events one at a time (each read only
//! when Python asks for it: back-pressure reaches the server through
//! psrp-core's bounded event buffer), the rest collected, and a stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use psrp_core::client::{
    ClientError, Event as CoreEvent, Invocation as CoreInvocation, InvocationResult, StopHandle,
};
use pyo3::prelude::*;
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use crate::errors;
use crate::records::{self, host_effect, Event, HostEffect, Seen};
use crate::runtime;

/// How long a stopped pipeline may take to end (events drained, command
/// released) before collecting gives up: psrp-core's stop bound and a
/// margin, as the CLI waits.
const STOP_GRACE: Duration = Duration::from_secs(35);

/// The pipeline and what was handed out of it so far.
pub struct InvState {
    inv: CoreInvocation,
    seen: Seen,
}

/// What collecting the rest of a pipeline gave.
pub struct Collected {
    result: InvocationResult,
    seen: Seen,
    error: Option<ClientError>,
    timed_out: Option<Duration>,
}

impl InvState {
    pub fn new(inv: CoreInvocation) -> Self {
        InvState {
            inv,
            seen: Seen::default(),
        }
    }

    /// The next event to hand out: host calls that show nothing are
    /// skipped (an exit code is remembered); error records are counted.
    async fn next(&mut self) -> Result<Option<CoreEvent>, ClientError> {
        loop {
            let Some(event) = self.inv.next().await? else {
                return Ok(None);
            };
            match &event {
                CoreEvent::HostCall(call) => match host_effect(call) {
                    HostEffect::Exit(code) => self.seen.exit_code = Some(code),
                    HostEffect::Text(..) => return Ok(Some(event)),
                    HostEffect::None => {}
                },
                CoreEvent::Error(_) => {
                    self.seen.errors += 1;
                    return Ok(Some(event));
                }
                _ => return Ok(Some(event)),
            }
        }
    }

    /// Reads every remaining event into a result. Past `deadline` the
    /// pipeline is stopped and its last events still read (at most
    /// [`STOP_GRACE`]).
    pub async fn collect(&mut self, timeout: Option<Duration>) -> Collected {
        let mut result = InvocationResult::new(self.inv.command());
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut stop_deadline = None;
        let mut error = None;
        loop {
            let bound = stop_deadline.or(deadline);
            let next = match bound {
                Some(at) => match tokio::time::timeout_at(at, self.inv.next()).await {
                    Ok(n) => n,
                    Err(_) if stop_deadline.is_none() => {
                        // The caller's bound: stop, then read to the end.
                        if let Err(e) = self.inv.stop().await {
                            error = Some(e);
                            break;
                        }
                        stop_deadline = Some(Instant::now() + STOP_GRACE);
                        continue;
                    }
                    Err(_) => {
                        error = Some(ClientError::Timeout {
                            what: "stopping the pipeline",
                            after: STOP_GRACE,
                        });
                        break;
                    }
                },
                None => self.inv.next().await,
            };
            match next {
                Ok(Some(event)) => result.push(event),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(c) = self.inv.completion() {
            result.finish(c.clone());
        }
        Collected {
            result,
            seen: self.seen,
            error,
            timed_out: stop_deadline.and(timeout),
        }
    }
}

impl Collected {
    /// The Python result, or the exception that ended the collection
    /// (carrying the result so far).
    pub fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let result = records::result(py, &self.result, self.seen)?.unbind();
        if let Some(e) = &self.error {
            return Err(errors::client(py, e, Some(result)));
        }
        if let Some(after) = self.timed_out {
            return Err(errors::timeout(
                py,
                format!(
                    "{} did not finish within {}s; the pipeline was stopped (state {})",
                    self.result.command,
                    after.as_secs_f64(),
                    self.result.state.name()
                ),
                Some(result),
            ));
        }
        Ok(result)
    }
}

/// A running pipeline (`psrp_client._native.Invocation`): the Python
/// `Invocation` and `AsyncInvocation` wrap it.
#[pyclass(module = "psrp_client._native", name = "Invocation", frozen)]
pub struct Invocation {
    state: Arc<AsyncMutex<InvState>>,
    stop: StopHandle,
    command: String,
    id: String,
    /// The error that ended iteration, raised again by `result()`.
    failure: Mutex<Option<PyErr>>,
}

impl Invocation {
    pub fn new(inv: CoreInvocation) -> Self {
        Invocation {
            stop: inv.stop_handle(),
            command: inv.command().to_owned(),
            id: inv.id().to_string(),
            state: Arc::new(AsyncMutex::new(InvState::new(inv))),
            failure: Mutex::new(None),
        }
    }

    fn remember(&self, py: Python<'_>, e: &PyErr) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone_ref(py));
    }

    fn failure(&self, py: Python<'_>) -> Option<PyErr> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| e.clone_ref(py))
    }

    /// Asks for a stop without waiting (after Ctrl-C): the pipeline ends
    /// on the server even if nobody reads it any more.
    fn stop_in_background(&self) {
        let stop = self.stop.clone();
        runtime::spawn(async move {
            let _ = stop.request_stop().await;
        });
    }
}

#[pymethods]
impl Invocation {
    /// What runs, as text.
    #[getter]
    fn command(&self) -> &str {
        &self.command
    }

    /// The pipeline id (also its WS-Man CommandId).
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// The next event, or None once the pipeline has ended. Blocks with the
    /// GIL released; Ctrl-C asks the server to stop the pipeline and
    /// raises KeyboardInterrupt.
    fn next_event(&self, py: Python<'_>) -> PyResult<Option<Py<Event>>> {
        let state = self.state.clone();
        let next = runtime::wait(py, async move { state.lock().await.next().await });
        let next = match next {
            Ok(n) => n,
            Err(signal) => {
                self.stop_in_background();
                return Err(signal);
            }
        };
        match next {
            Ok(Some(event)) => records::event(py, &event),
            Ok(None) => Ok(None),
            Err(e) => {
                let e = errors::client(py, &e, None);
                self.remember(py, &e);
                Err(e)
            }
        }
    }

    /// `next_event` as an awaitable.
    fn next_event_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        runtime::awaitable(py, async move {
            let next = state.lock().await.next().await;
            Python::attach(|py| match next {
                Ok(Some(event)) => records::event(py, &event),
                Ok(None) => Ok(None),
                Err(e) => Err(errors::client(py, &e, None)),
            })
        })
    }

    /// Asks the server to stop the pipeline (WS-Man Signal) and returns once
    /// it took the request; the pipeline then ends Stopped (read on, or
    /// call `result()`). Safe from any thread, during iteration too.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let stop = self.stop.clone();
        runtime::wait(py, async move { stop.request_stop().await })?
            .map_err(|e| errors::client(py, &e, None))
    }

    /// `stop` as an awaitable.
    fn stop_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stop = self.stop.clone();
        runtime::awaitable(py, async move {
            let r = stop.request_stop().await;
            Python::attach(|py| r.map_err(|e| errors::client(py, &e, None)))
        })
    }

    /// Reads the remaining events and returns the InvocationResult (events
    /// already handed out are not in its lists; its state, had_errors and
    /// exit_code cover the whole run). `timeout` (seconds) stops the
    /// pipeline when it expires and raises PsrpTimeout.
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        if let Some(e) = self.failure(py) {
            return Err(e);
        }
        let timeout = timeout_arg(py, timeout)?;
        let state = self.state.clone();
        let collected = runtime::wait(py, async move { state.lock().await.collect(timeout).await });
        match collected {
            Ok(c) => c.into_py(py),
            Err(signal) => {
                self.stop_in_background();
                Err(signal)
            }
        }
    }

    /// `result` as an awaitable.
    #[pyo3(signature = (timeout=None))]
    fn result_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(e) = self.failure(py) {
            return Err(e);
        }
        let timeout = timeout_arg(py, timeout)?;
        let state = self.state.clone();
        runtime::awaitable(py, async move {
            let c = state.lock().await.collect(timeout).await;
            Python::attach(|py| c.into_py(py))
        })
    }

    /// Whether the pipeline has ended and its command was released.
    #[getter]
    fn done(&self) -> bool {
        self.stop.is_done()
    }

    fn __repr__(&self) -> String {
        format!(
            "Invocation({:?}, done={})",
            self.command,
            self.stop.is_done()
        )
    }
}

/// A `timeout=` argument in seconds.
pub fn timeout_arg(py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    errors::usage(
                        py,
                        format!("timeout must be a positive number of seconds, not {s}"),
                    )
                })
        })
        .transpose()
}
