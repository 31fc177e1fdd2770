//! Stream records and events as Python objects: the record classes of
//! `psrp_client/_types.py`, filled here from psrp-core's records (error
//! records formatted as the CLI prints them).

use psrp_core::client::{
    ErrorRecord, Event as CoreEvent, HostCall, HostMethodId, InformationRecord,
    InformationalRecord, InvocationResult, ProgressRecord,
};
use psrp_core::message::{InvocationInfo, ProgressRecordType};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert;

static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// An instance of a class of `psrp_client._types`.
fn build<'py>(
    py: Python<'py>,
    class: &str,
    kwargs: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let module = TYPES.get_or_try_init(py, || -> PyResult<Py<PyModule>> {
        Ok(py.import("psrp_client._types")?.unbind())
    })?;
    module.bind(py).getattr(class)?.call((), Some(kwargs))
}

/// One output object or stream record (`psrp_client.Event`).
#[pyclass(module = "psrp_client", name = "Event", frozen, get_all)]
pub struct Event {
    /// `output`, `error`, `warning`, `verbose`, `debug`, `information` or
    /// `progress`.
    kind: Py<PyString>,
    /// The output object as a Python value (None for records).
    value: Py<PyAny>,
    /// The record (None for output).
    record: Py<PyAny>,
}

#[pymethods]
impl Event {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let kind = self.kind.bind(py).to_cow()?.into_owned();
        let inner = if kind == "output" {
            self.value.bind(py).repr()?.to_string()
        } else {
            self.record.bind(py).repr()?.to_string()
        };
        let mut inner = inner;
        if inner.chars().count() > 200 {
            inner = inner.chars().take(200).collect::<String>() + "...";
        }
        Ok(format!("Event({kind}, {inner})"))
    }
}

/// What a host call means for the caller: a line of text at a level, the
/// exit code the script set, or nothing (calls the non-interactive host
/// already refused).
pub enum HostEffect<'a> {
    /// Text written through the host UI, at a level.
    Text(&'static str, &'a str),
    /// `$host.SetShouldExit(code)` (`exit N` in a remote script).
    Exit(i32),
    /// Nothing to show.
    None,
}

/// Reads a host call (as the CLI does: writes become log lines).
pub fn host_effect(call: &HostCall) -> HostEffect<'_> {
    let text = || {
        call.parameters
            .last()
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    match call.method {
        HostMethodId::Write1
        | HostMethodId::Write2
        | HostMethodId::WriteLine1
        | HostMethodId::WriteLine2
        | HostMethodId::WriteLine3 => HostEffect::Text("information", text()),
        HostMethodId::WriteErrorLine => HostEffect::Text("error", text()),
        HostMethodId::WriteWarningLine => HostEffect::Text("warning", text()),
        HostMethodId::WriteVerboseLine => HostEffect::Text("verbose", text()),
        HostMethodId::WriteDebugLine => HostEffect::Text("debug", text()),
        HostMethodId::SetShouldExit => match call.parameters.first().and_then(|v| v.as_i64()) {
            Some(code) => HostEffect::Exit(i32::try_from(code).unwrap_or(i32::MIN)),
            None => HostEffect::None,
        },
        _ => HostEffect::None,
    }
}

/// An event as a Python [`Event`]; `None` for host calls that show nothing.
pub fn event(py: Python<'_>, e: &CoreEvent) -> PyResult<Option<Py<Event>>> {
    let none = || py.None();
    let (kind, value, record) = match e {
        CoreEvent::Output(v) => ("output", convert::to_py(py, v)?.unbind(), none()),
        CoreEvent::Error(r) => ("error", none(), error_record(py, r)?.unbind()),
        CoreEvent::Warning(r) => ("warning", none(), informational(py, "warning", r)?.unbind()),
        CoreEvent::Verbose(r) => ("verbose", none(), informational(py, "verbose", r)?.unbind()),
        CoreEvent::Debug(r) => ("debug", none(), informational(py, "debug", r)?.unbind()),
        CoreEvent::Information(r) => ("information", none(), information(py, r)?.unbind()),
        CoreEvent::Progress(r) => ("progress", none(), progress(py, r)?.unbind()),
        CoreEvent::HostCall(call) => match host_effect(call) {
            HostEffect::Text(level, text) => {
                let kind = match level {
                    "warning" | "verbose" | "debug" => level,
                    _ => "information",
                };
                (kind, none(), host_text(py, level, text)?.unbind())
            }
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let event = Event {
        kind: PyString::intern(py, kind).unbind(),
        value,
        record,
    };
    Ok(Some(Py::new(py, event)?))
}

fn invocation_info<'py>(
    py: Python<'py>,
    info: Option<&InvocationInfo>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(i) = info else {
        return Ok(py.None().into_bound(py));
    };
    let d = PyDict::new(py);
    let put = |k: &str, v: Option<Bound<'py, PyAny>>| -> PyResult<()> {
        if let Some(v) = v {
            d.set_item(k, v)?;
        }
        Ok(())
    };
    let s = |v: &Option<String>| v.as_deref().map(|s| PyString::new(py, s).into_any());
    let n = |v: Option<i64>| {
        v.map(|n| n.into_pyobject(py).map(|b| b.into_any()))
            .transpose()
    };
    put("MyCommand", s(&i.my_command))?;
    put("InvocationName", s(&i.invocation_name))?;
    put("ScriptName", s(&i.script_name))?;
    put("ScriptLineNumber", n(i.script_line_number.map(i64::from))?)?;
    put("OffsetInLine", n(i.offset_in_line.map(i64::from))?)?;
    put("Line", s(&i.line))?;
    put("PositionMessage", s(&i.position_message))?;
    put("HistoryId", n(i.history_id)?)?;
    put("PipelineLength", n(i.pipeline_length.map(i64::from))?)?;
    put("PipelinePosition", n(i.pipeline_position.map(i64::from))?)?;
    put("CommandOrigin", s(&i.command_origin))?;
    Ok(d.into_any())
}

/// `psrp_client.ErrorRecord`.
pub fn error_record<'py>(py: Python<'py>, r: &ErrorRecord) -> PyResult<Bound<'py, PyAny>> {
    let k = PyDict::new(py);
    k.set_item("level", "error")?;
    let message = if r.message.is_empty() {
        r.exception_message()
    } else {
        &r.message
    };
    k.set_item("message", message)?;
    k.set_item(
        "invocation_info",
        invocation_info(py, r.invocation_info.as_ref())?,
    )?;
    k.set_item("category", r.category.category.name())?;
    k.set_item("category_info", r.category.display_line())?;
    k.set_item(
        "fully_qualified_error_id",
        r.fully_qualified_error_id.as_deref().unwrap_or_default(),
    )?;
    k.set_item("target", r.target_text())?;
    k.set_item("exception_type", r.exception_type())?;
    k.set_item("exception_message", r.exception_message())?;
    k.set_item("recommended_action", r.recommended_action.as_deref())?;
    k.set_item("script_stack_trace", r.script_stack_trace.as_deref())?;
    k.set_item("formatted_text", r.formatted())?;
    build(py, "ErrorRecord", &k)
}

fn informational<'py>(
    py: Python<'py>,
    level: &str,
    r: &InformationalRecord,
) -> PyResult<Bound<'py, PyAny>> {
    let k = PyDict::new(py);
    k.set_item("level", level)?;
    k.set_item("message", &r.message)?;
    k.set_item(
        "invocation_info",
        invocation_info(py, r.invocation_info.as_ref())?,
    )?;
    build(py, "Record", &k)
}

/// Text written through the host UI (`Write-Host` on PowerShell before 5,
/// `$host.UI.WriteErrorLine`...): a Record for warning/verbose/debug, an
/// InformationRecord tagged `PSHOST` otherwise (its level says `error` for
/// WriteErrorLine).
fn host_text<'py>(py: Python<'py>, level: &str, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let k = PyDict::new(py);
    k.set_item("level", level)?;
    k.set_item("message", text)?;
    k.set_item("invocation_info", py.None())?;
    if matches!(level, "warning" | "verbose" | "debug") {
        return build(py, "Record", &k);
    }
    k.set_item("source", "Host")?;
    k.set_item("tags", PyList::new(py, ["PSHOST"])?)?;
    k.set_item("time_generated", py.None())?;
    k.set_item("data", text)?;
    build(py, "InformationRecord", &k)
}

fn information<'py>(py: Python<'py>, r: &InformationRecord) -> PyResult<Bound<'py, PyAny>> {
    let k = PyDict::new(py);
    k.set_item("level", "information")?;
    k.set_item("message", r.text())?;
    k.set_item("invocation_info", py.None())?;
    k.set_item("source", r.source.as_deref())?;
    k.set_item("tags", PyList::new(py, &r.tags)?)?;
    k.set_item("time_generated", r.time_generated.map(|t| t.to_string()))?;
    k.set_item("data", convert::to_py(py, &r.message_data)?)?;
    build(py, "InformationRecord", &k)
}

fn progress<'py>(py: Python<'py>, r: &ProgressRecord) -> PyResult<Bound<'py, PyAny>> {
    let k = PyDict::new(py);
    k.set_item("level", "progress")?;
    k.set_item("message", r.text(true))?;
    k.set_item("invocation_info", py.None())?;
    k.set_item("activity", &r.activity)?;
    k.set_item("status", &r.status_description)?;
    k.set_item("current_operation", r.current_operation.as_deref())?;
    k.set_item("percent_complete", r.percent_complete)?;
    k.set_item("seconds_remaining", r.seconds_remaining)?;
    k.set_item("activity_id", r.activity_id)?;
    k.set_item("parent_activity_id", r.parent_activity_id)?;
    k.set_item("completed", r.record_type == ProgressRecordType::Completed)?;
    build(py, "ProgressRecord", &k)
}

/// What a whole invocation saw outside the collected result: error records
/// and the exit code of events already handed out one by one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seen {
    /// Error records handed out.
    pub errors: usize,
    /// The last exit code set through the host.
    pub exit_code: Option<i32>,
}

/// `psrp_client.InvocationResult` from what was collected and what was
/// handed out before.
pub fn result<'py>(
    py: Python<'py>,
    r: &InvocationResult,
    seen: Seen,
) -> PyResult<Bound<'py, PyAny>> {
    let output = PyList::empty(py);
    for v in &r.output {
        output.append(convert::to_py(py, v)?)?;
    }
    let errors = PyList::empty(py);
    for e in &r.errors {
        errors.append(error_record(py, e)?)?;
    }
    let records = |level: &str, list: &[InformationalRecord]| -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for r in list {
            out.append(informational(py, level, r)?)?;
        }
        Ok(out)
    };
    let warnings = records("warning", &r.warnings)?;
    let verbose = records("verbose", &r.verbose)?;
    let debug = records("debug", &r.debug)?;
    let information = PyList::empty(py);
    for i in &r.information {
        information.append(self::information(py, i)?)?;
    }
    let progress = PyList::empty(py);
    for p in &r.progress {
        progress.append(self::progress(py, p)?)?;
    }
    let mut exit_code = seen.exit_code;
    for call in &r.host_calls {
        match host_effect(call) {
            HostEffect::Text(level, text) => {
                let rec = host_text(py, level, text)?;
                match level {
                    "warning" => warnings.append(rec)?,
                    "verbose" => verbose.append(rec)?,
                    "debug" => debug.append(rec)?,
                    _ => information.append(rec)?,
                }
            }
            HostEffect::Exit(code) => exit_code = Some(code),
            HostEffect::None => {}
        }
    }
    let k = PyDict::new(py);
    k.set_item("command", &r.command)?;
    k.set_item("output", output)?;
    k.set_item("errors", errors)?;
    k.set_item("warnings", warnings)?;
    k.set_item("verbose", verbose)?;
    k.set_item("debug", debug)?;
    k.set_item("information", information)?;
    k.set_item("progress", progress)?;
    k.set_item("state", r.state.name())?;
    k.set_item("had_errors", seen.errors > 0 || r.had_errors())?;
    k.set_item("exit_code", exit_code)?;
    let terminating = match &r.terminating_error {
        Some(e) => Some(error_record(py, e)?),
        None => None,
    };
    k.set_item("terminating_error", terminating)?;
    build(py, "InvocationResult", &k)
}
