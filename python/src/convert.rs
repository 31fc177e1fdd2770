//! Python values to PowerShell values (parameters, as the CLI's
//! `--param-json` maps JSON), PowerShell values to Python values (output,
//! through psrp-core's JSON mapping), and what to run.

use psrp_core::client::{hashtable, list, Command, PowerShell};
use psrp_core::clixml::{
    Collection, DateTime, DateTimeKind, Decimal, JsonOptions, JsonView, PsValue, SecureString,
    TimeSpan,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType,
};

use crate::errors;

/// Nesting limit for parameter values (a self-containing list would
/// otherwise recurse until the stack ends).
const MAX_PARAM_DEPTH: usize = 64;

/// Python types without a C-level check in the stable ABI.
struct StdTypes {
    datetime: Py<PyType>,
    date: Py<PyType>,
    timedelta: Py<PyType>,
    decimal: Py<PyType>,
    uuid: Py<PyType>,
    mapping: Py<PyType>,
    timezone_utc: Py<PyAny>,
    /// `psrp_client.SecureString` (a secret to send) and
    /// `psrp_client.ReceivedSecureString` (ciphertext from the server).
    secure_string: Py<PyType>,
    received_secure_string: Py<PyType>,
}

static STD_TYPES: PyOnceLock<StdTypes> = PyOnceLock::new();

fn std_types(py: Python<'_>) -> PyResult<&StdTypes> {
    STD_TYPES.get_or_try_init(py, || {
        let dt = py.import("datetime")?;
        let ty = |m: &Bound<'_, PyModule>, name: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        Ok(StdTypes {
            datetime: ty(&dt, "datetime")?,
            date: ty(&dt, "date")?,
            timedelta: ty(&dt, "timedelta")?,
            decimal: ty(&py.import("decimal")?, "Decimal")?,
            uuid: ty(&py.import("uuid")?, "UUID")?,
            mapping: ty(&py.import("collections.abc")?, "Mapping")?,
            timezone_utc: dt.getattr("timezone")?.getattr("utc")?.unbind(),
            secure_string: ty(&py.import("psrp_client._types")?, "SecureString")?,
            received_secure_string: ty(&py.import("psrp_client._types")?, "ReceivedSecureString")?,
        })
    })
}

/// A parameter value: `None` is `$null` (a switch only at the top of a
/// parameter list, see [`command`]); bool; int as Int32, else Int64, else
/// UInt64, else Double (as the CLI maps JSON numbers); float as Double;
/// str; bytes as Byte[]; datetime/date as DateTime; timedelta as TimeSpan;
/// Decimal; UUID as Guid; a mapping as a Hashtable; any other sequence or
/// set as Object[].
pub fn to_ps(value: &Bound<'_, PyAny>) -> PyResult<PsValue> {
    to_ps_at(value, 0)
}

fn to_ps_at(v: &Bound<'_, PyAny>, depth: usize) -> PyResult<PsValue> {
    let py = v.py();
    if depth > MAX_PARAM_DEPTH {
        return Err(errors::usage(
            py,
            format!("parameter values nest deeper than {MAX_PARAM_DEPTH} levels (a list that contains itself?)"),
        ));
    }
    if v.is_none() {
        return Ok(PsValue::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(PsValue::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(match i32::try_from(i) {
                Ok(small) => PsValue::I32(small),
                Err(_) => PsValue::I64(i),
            });
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(PsValue::U64(u));
        }
        // Beyond 64 bits: a Double, as a JSON number that large becomes.
        return Ok(PsValue::Double(v.call_method0("__float__")?.extract()?));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(PsValue::Double(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        // A SecureString received from the server goes back as it came.
        if v.is_instance(std_types(py)?.received_secure_string.bind(py))? {
            let ciphertext: Vec<u8> = v.getattr("ciphertext")?.extract()?;
            return Ok(PsValue::SecureString(SecureString::from_ciphertext(
                ciphertext,
            )));
        }
        return Ok(PsValue::String(s.to_cow()?.into_owned()));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(PsValue::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(PsValue::Bytes(b.to_vec()));
    }
    let t = std_types(py)?;
    if v.is_instance(t.secure_string.bind(py))? {
        // Encrypted with the session key by the client before it is sent.
        let text: String = v.call_method0("reveal")?.extract()?;
        return Ok(PsValue::SecureString(SecureString::new(text)));
    }
    if v.is_instance(t.datetime.bind(py))? {
        return datetime(v, t);
    }
    if v.is_instance(t.date.bind(py))? {
        return Ok(PsValue::DateTime(DateTime {
            year: v.getattr("year")?.extract()?,
            month: v.getattr("month")?.extract()?,
            day: v.getattr("day")?.extract()?,
            hour: 0,
            minute: 0,
            second: 0,
            ticks: 0,
            kind: DateTimeKind::Unspecified,
        }));
    }
    if v.is_instance(t.timedelta.bind(py))? {
        let days: i64 = v.getattr("days")?.extract()?;
        let seconds: i64 = v.getattr("seconds")?.extract()?;
        let micros: i64 = v.getattr("microseconds")?.extract()?;
        // |days| < 1e9 in Python: no overflow in 100 ns ticks.
        let ticks = (days * 86_400 + seconds) * 10_000_000 + micros * 10;
        return Ok(PsValue::TimeSpan(TimeSpan { ticks }));
    }
    if v.is_instance(t.decimal.bind(py))? {
        let text: String = v.str()?.extract()?;
        return Decimal::new(&text).map(PsValue::Decimal).ok_or_else(|| {
            errors::usage(py, format!("Decimal {text} cannot be sent (NaN, infinity or out of System.Decimal's range)"))
        });
    }
    if v.is_instance(t.uuid.bind(py))? {
        let bytes: Vec<u8> = v.getattr("bytes")?.extract()?;
        let id = uuid::Uuid::from_slice(&bytes)
            .map_err(|e| PyValueError::new_err(format!("UUID: {e}")))?;
        return Ok(PsValue::Guid(id));
    }
    if v.is_instance_of::<PyDict>() || v.is_instance(t.mapping.bind(py))? {
        let mut entries = Vec::new();
        for item in v.call_method0("items")?.try_iter()? {
            let item = item?;
            let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
            entries.push((to_ps_at(&k, depth + 1)?, to_ps_at(&val, depth + 1)?));
        }
        return Ok(hashtable(entries));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() || is_iterable_collection(v)? {
        let mut items = Vec::new();
        for item in v.try_iter()? {
            items.push(to_ps_at(&item?, depth + 1)?);
        }
        return Ok(list(items));
    }
    let type_name = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(errors::usage(
        py,
        format!(
            "a value of type {type_name} cannot be sent to PowerShell: use str, int, float, bool, None, \
             list, tuple, dict, datetime, date, timedelta, Decimal, UUID or bytes"
        ),
    ))
}

/// Sets, frozensets and other sized iterables (not strings or iterators,
/// which a second read would find empty).
fn is_iterable_collection(v: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(v.hasattr("__iter__")? && v.hasattr("__len__")?)
}

fn datetime(v: &Bound<'_, PyAny>, t: &StdTypes) -> PyResult<PsValue> {
    let py = v.py();
    let micros: u32 = v.getattr("microsecond")?.extract()?;
    let offset = v.call_method0("utcoffset")?;
    let kind = if offset.is_none() {
        DateTimeKind::Unspecified
    } else if v.getattr("tzinfo")?.eq(t.timezone_utc.bind(py))? {
        DateTimeKind::Utc
    } else {
        let seconds: f64 = offset.call_method0("total_seconds")?.extract()?;
        let minutes = (seconds / 60.0).round();
        if !(-14.0 * 60.0..=14.0 * 60.0).contains(&minutes) {
            return Err(errors::usage(
                py,
                format!("UTC offset of {minutes} minutes is out of .NET's range"),
            ));
        }
        DateTimeKind::Local {
            offset_minutes: minutes as i16,
        }
    };
    let dt = DateTime {
        year: v.getattr("year")?.extract()?,
        month: v.getattr("month")?.extract()?,
        day: v.getattr("day")?.extract()?,
        hour: v.getattr("hour")?.extract()?,
        minute: v.getattr("minute")?.extract()?,
        second: v.getattr("second")?.extract()?,
        ticks: micros * 10,
        kind,
    };
    Ok(PsValue::DateTime(dt))
}

/// An output object as a Python value, built from psrp-core's JSON view
/// (the mapping of `psrp invoke -o json`) without JSON text in between:
/// objects are dicts in property order, lists are lists, numbers int or
/// float, dates ISO 8601 strings (default options: depth 8, enums as
/// names).
///
/// SecureStrings, which that mapping shows as the text
/// `"System.Security.SecureString"`, become `psrp_client.ReceivedSecureString`:
/// a `str` equal to that text (so the value still equals the CLI's JSON)
/// that also carries the ciphertext, for `RunspacePool.decrypt`.
pub fn to_py<'py>(py: Python<'py>, value: &PsValue) -> PyResult<Bound<'py, PyAny>> {
    let options = JsonOptions::default();
    if !value.contains_secure_string(&mut |_| true) {
        return Ok(pythonize::pythonize(py, &JsonView::new(value, &options))?);
    }
    // Each SecureString becomes a unique marker string, and that string in
    // the Python value then becomes the ReceivedSecureString.
    let prefix = format!("\u{0}psrp-secure-string:{}:", uuid::Uuid::new_v4());
    let mut ciphertexts = Vec::new();
    let mut copy = value.clone();
    mark_secure_strings(&mut copy, &prefix, &mut ciphertexts);
    let out = pythonize::pythonize(py, &JsonView::new(&copy, &options))?;
    let class = std_types(py)?.received_secure_string.bind(py);
    restore_secure_strings(out, &prefix, &ciphertexts, class)
}

fn mark_secure_strings(value: &mut PsValue, prefix: &str, ciphertexts: &mut Vec<Vec<u8>>) {
    match value {
        PsValue::SecureString(s) => {
            let marker = format!("{prefix}{}", ciphertexts.len());
            ciphertexts.push(std::mem::take(&mut s.ciphertext));
            *value = PsValue::String(marker);
        }
        PsValue::Object(o) if o.contains_secure_string(&mut |_| true) => {
            let o = std::sync::Arc::make_mut(o);
            if let Some(b) = &mut o.base {
                mark_secure_strings(b, prefix, ciphertexts);
            }
            match &mut o.collection {
                Some(
                    Collection::List(v)
                    | Collection::Enumerable(v)
                    | Collection::Stack(v)
                    | Collection::Queue(v),
                ) => v
                    .iter_mut()
                    .for_each(|i| mark_secure_strings(i, prefix, ciphertexts)),
                Some(Collection::Dictionary(entries)) => {
                    for (k, v) in entries {
                        mark_secure_strings(k, prefix, ciphertexts);
                        mark_secure_strings(v, prefix, ciphertexts);
                    }
                }
                None => {}
            }
            for p in o.adapted.iter_mut().chain(o.extended.iter_mut()) {
                mark_secure_strings(&mut p.value, prefix, ciphertexts);
            }
        }
        _ => {}
    }
}

fn restore_secure_strings<'py>(
    value: Bound<'py, PyAny>,
    prefix: &str,
    ciphertexts: &[Vec<u8>],
    class: &Bound<'py, PyType>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    if let Ok(s) = value.cast::<PyString>() {
        let text = s.to_cow()?;
        if let Some(i) = text
            .strip_prefix(prefix)
            .and_then(|i| i.parse::<usize>().ok())
        {
            if let Some(c) = ciphertexts.get(i) {
                return class.call1((PyBytes::new(py, c),));
            }
        }
        return Ok(value);
    }
    if let Ok(list) = value.cast::<PyList>() {
        for i in 0..list.len() {
            let item = list.get_item(i)?;
            list.set_item(i, restore_secure_strings(item, prefix, ciphertexts, class)?)?;
        }
        return Ok(value);
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        for (k, v) in dict
            .items()
            .iter()
            .map(|kv| kv.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>())
            .collect::<PyResult<Vec<_>>>()?
        {
            dict.set_item(k, restore_secure_strings(v, prefix, ciphertexts, class)?)?;
        }
    }
    Ok(value)
}

/// What to run, read from a `psrp_client.Command` (or anything with its
/// attributes: `name`, `is_script`, `parameters` (a mapping where None
/// is a switch) and `arguments`).
pub fn command(spec: &Bound<'_, PyAny>) -> PyResult<PowerShell> {
    let py = spec.py();
    let name: String = spec.getattr("name")?.extract()?;
    let is_script: bool = spec.getattr("is_script")?.extract()?;
    if name.trim().is_empty() {
        return Err(errors::usage(py, "the command name is empty".to_owned()));
    }
    let mut c = if is_script {
        Command::script(name)
    } else {
        Command::new(name)
    };
    let parameters = spec.getattr("parameters")?;
    if !parameters.is_none() {
        for item in parameters.call_method0("items")?.try_iter()? {
            let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            let key: String = key
                .extract()
                .map_err(|_| errors::usage(py, "parameter names must be strings".to_owned()))?;
            let key = check_name(py, &key)?;
            c = if value.is_none() {
                c.switch(key)
            } else {
                let v = to_ps(&value).map_err(|e| in_parameter(py, &key, e))?;
                c.param(key, v)
            };
        }
    }
    let arguments = spec.getattr("arguments")?;
    if !arguments.is_none() {
        for (i, arg) in arguments.try_iter()?.enumerate() {
            let v = to_ps(&arg?).map_err(|e| in_parameter(py, &format!("argument {i}"), e))?;
            c = c.arg(v);
        }
    }
    Ok(PowerShell::new(c))
}

/// A parameter name as PowerShell binds it (letters, digits, `_`, `-`,
/// `?`; a leading `-` is dropped, as the CLI does).
fn check_name(py: Python<'_>, name: &str) -> PyResult<String> {
    let bare = name.strip_prefix('-').unwrap_or(name);
    let valid = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '?');
    if valid {
        Ok(bare.to_owned())
    } else {
        Err(errors::usage(
            py,
            format!("parameter name {name:?} is not valid: use letters, digits, '_' or '-'"),
        ))
    }
}

/// Says which parameter a conversion error is about.
fn in_parameter(py: Python<'_>, which: &str, e: PyErr) -> PyErr {
    let message = e.value(py).to_string();
    errors::usage(py, format!("parameter {which}: {message}"))
}
