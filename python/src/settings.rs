//! Connection settings: `psrp_core::client::ConnectionOptions`, checked
//! when built (bad values are a UsageError before any connection).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use psrp_core::client::{AuthMethod, ConnectionOptions, Scheme};
use pyo3::prelude::*;

use crate::errors;

/// Where and how to connect. The password is kept as a `wsman::Secret` and
/// never shown.
#[pyclass(module = "psrp_client._native", name = "Settings", frozen)]
pub struct Settings {
    pub options: ConnectionOptions,
}

fn seconds(py: Python<'_>, what: &str, value: Option<f64>) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    errors::usage(
                        py,
                        format!("{what} must be a positive number of seconds, not {s}"),
                    )
                })
        })
        .transpose()
}

#[pymethods]
impl Settings {
    #[new]
    #[pyo3(signature = (
        host, *, port=None, scheme="http", path="wsman", auth="negotiate", username=None,
        password=None, spn=None, configuration_name="Microsoft.PowerShell", ca_file=None,
        insecure_skip_tls_verify=false, allow_unencrypted=false, no_ntlm_fallback=false,
        delegate=false, cert_file=None, key_file=None, connect_timeout=None,
        operation_timeout=None, read_timeout=None, locale=None, data_locale=None,
        max_envelope_size=None, reconnection_retries=None, reconnection_backoff=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &str,
        port: Option<i64>,
        scheme: &str,
        path: &str,
        auth: &str,
        username: Option<String>,
        password: Option<String>,
        spn: Option<String>,
        configuration_name: &str,
        ca_file: Option<PathBuf>,
        insecure_skip_tls_verify: bool,
        allow_unencrypted: bool,
        no_ntlm_fallback: bool,
        delegate: bool,
        cert_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
        connect_timeout: Option<f64>,
        operation_timeout: Option<f64>,
        read_timeout: Option<f64>,
        locale: Option<String>,
        data_locale: Option<String>,
        max_envelope_size: Option<i64>,
        reconnection_retries: Option<i64>,
        reconnection_backoff: Option<f64>,
    ) -> PyResult<Settings> {
        let usage = |e: psrp_core::client::ClientError| errors::client(py, &e, None);
        let mut o = ConnectionOptions::new(host)
            .scheme(Scheme::from_str(scheme).map_err(usage)?)
            .path(path)
            .auth(AuthMethod::from_str(auth).map_err(usage)?)
            .configuration_name(configuration_name)
            .danger_accept_invalid_certs(insecure_skip_tls_verify)
            .allow_unencrypted(allow_unencrypted)
            .allow_ntlm_fallback(!no_ntlm_fallback)
            .delegate(delegate);
        match (cert_file, key_file) {
            (Some(c), Some(k)) => o = o.client_certificate(c, k),
            (None, None) => {}
            _ => {
                return Err(errors::usage(
                    py,
                    "cert_file and key_file go together".to_owned(),
                ))
            }
        }
        if let Some(p) = port {
            let p = u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| errors::usage(py, format!("port {p} is not between 1 and 65535")))?;
            o = o.port(p);
        }
        if let Some(u) = username {
            o = o.username(u);
        }
        if let Some(p) = password {
            o = o.password(p);
        }
        if let Some(s) = spn {
            o = o.spn(s);
        }
        if let Some(ca) = ca_file {
            o = o.ca_file(ca);
        }
        if let Some(t) = seconds(py, "connect_timeout", connect_timeout)? {
            o = o.connect_timeout(t);
        }
        if let Some(t) = seconds(py, "operation_timeout", operation_timeout)? {
            o = o.operation_timeout(t);
        }
        if let Some(t) = seconds(py, "read_timeout", read_timeout)? {
            o = o.read_timeout(t);
        }
        if let Some(l) = locale {
            o = o.locale(l);
        }
        if let Some(l) = data_locale {
            o = o.data_locale(l);
        }
        if let Some(n) = max_envelope_size {
            let n = usize::try_from(n)
                .map_err(|_| errors::usage(py, format!("max_envelope_size {n} is negative")))?;
            o = o.max_envelope_size(n);
        }
        if let Some(n) = reconnection_retries {
            let n = u32::try_from(n).map_err(|_| {
                errors::usage(
                    py,
                    format!("reconnection_retries {n} is not a count from 0 to 4294967295"),
                )
            })?;
            o = o.reconnect_retries(n);
        }
        if let Some(b) = reconnection_backoff {
            // 0 is allowed: retry at once.
            let b = Duration::try_from_secs_f64(b).map_err(|_| {
                errors::usage(
                    py,
                    format!("reconnection_backoff must be a number of seconds, not {b}"),
                )
            })?;
            o = o.reconnect_backoff(b);
        }
        // Every check the transport makes (security defaults included),
        // before anything connects.
        o.to_wsman_config(1).map_err(usage)?;
        Ok(Settings { options: o })
    }

    /// The endpoint URL, e.g. `http://win01:5985/wsman`.
    #[getter]
    fn endpoint(&self) -> String {
        self.options.endpoint()
    }

    /// The session configuration name.
    #[getter]
    fn configuration_name(&self) -> &str {
        self.options.configuration()
    }

    fn __repr__(&self) -> String {
        let o = &self.options;
        format!(
            "Settings(endpoint={:?}, auth={:?}, username={:?}, configuration_name={:?})",
            o.endpoint(),
            o.auth_method().name(),
            o.user().unwrap_or_default(),
            o.configuration()
        )
    }
}
