//! Client errors as the package's typed Python exceptions (defined in
//! `psrp_client/_errors.py`), classed as the CLI classes its exit status.

use psrp_core::client::{ClientError, ConnectFailure, ErrorKind};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::records;

static FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Builds an exception through `psrp_client._errors._from_native(kind,
/// message, error_record, result)`.
fn make(
    py: Python<'_>,
    kind: &str,
    message: String,
    record: Option<Py<PyAny>>,
    result: Option<Py<PyAny>>,
) -> PyErr {
    let factory = FACTORY.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("psrp_client._errors")?
            .getattr("_from_native")?
            .unbind())
    });
    let built = factory.and_then(|f| f.bind(py).call1((kind, message.clone(), record, result)));
    match built {
        Ok(exc) => PyErr::from_value(exc),
        // Only when the package is broken: still say what failed.
        Err(e) => PyRuntimeError::new_err(format!("{message} (psrp_client._errors unusable: {e})")),
    }
}

/// The exception class name the CLI's exit classes map to: `usage` (64),
/// `pipeline` (2), `auth`/`tls`/`connection` (3), `timeout`.
fn kind_name(e: &ClientError) -> &'static str {
    match e.kind() {
        ErrorKind::Config => "usage",
        ErrorKind::Auth => "auth",
        ErrorKind::Tls => "tls",
        ErrorKind::Timeout => "timeout",
        ErrorKind::SessionInit | ErrorKind::PipelineFailed | ErrorKind::InvalidCommand => {
            "pipeline"
        }
        // Connection, WS-Man fault, protocol, broken or closed pool.
        _ => "connection",
    }
}

/// A client error as a Python exception (PipelineFailed carries `result`
/// when there is one).
pub fn client(py: Python<'_>, e: &ClientError, result: Option<Py<PyAny>>) -> PyErr {
    let record = e
        .error_record()
        .and_then(|r| records::error_record(py, r).ok())
        .map(Bound::unbind);
    // A refused Connect names its reason: `connect:unknown_shell` ...
    let kind = match e.connect_failure() {
        Some(ConnectFailure::UnknownShell) => "connect:unknown_shell",
        Some(ConnectFailure::IdleTimeoutExpired) => "connect:idle_timeout_expired",
        Some(ConnectFailure::WrongUser) => "connect:wrong_user",
        Some(ConnectFailure::ConnectedElsewhere) => "connect:connected_elsewhere",
        None => kind_name(e),
    };
    make(py, kind, e.to_string(), record, result)
}

/// A bad option or parameter value (UsageError, a ValueError).
pub fn usage(py: Python<'_>, message: String) -> PyErr {
    make(py, "usage", message, None, None)
}

/// A time bound that expired (PsrpTimeout, a TimeoutError), with what the
/// pipeline produced until it was stopped.
pub fn timeout(py: Python<'_>, message: String, result: Option<Py<PyAny>>) -> PyErr {
    make(py, "timeout", message, None, result)
}
