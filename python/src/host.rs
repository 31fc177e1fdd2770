//! `RunspacePool(on_prompt=callback)`: the remote command's prompts (Read-Host,
//! Get-Credential, confirmations) answered by a Python callable, through
//! the library's `Host` trait. The callback gets a dict describing the
//! prompt and returns the answer; an exception refuses the prompt (the
//! server raises it in the pipeline).

use psrp_core::client::{Host, HostAnswer, HostInfo, HostPrompt, PsValue, SecureString};
use psrp_core::message::{ErrorCategory, ErrorRecord};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::convert;

/// The Python callable answering prompts.
pub struct PyHost {
    callback: Py<PyAny>,
}

impl PyHost {
    pub fn new(callback: Py<PyAny>) -> PyHost {
        PyHost { callback }
    }
}

fn refusal(message: String) -> ErrorRecord {
    ErrorRecord::new(
        message,
        "System.Management.Automation.Host.HostException",
        "HostCallbackFailed",
        ErrorCategory::InvalidOperation,
    )
}

/// The prompt as the dict the callback gets.
fn describe<'py>(py: Python<'py>, prompt: &HostPrompt) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let choices = |choices: &[psrp_core::client::ChoiceDescription]| {
        PyList::new(py, choices.iter().map(|c| c.label.as_str()))
    };
    match prompt {
        HostPrompt::ReadLine => d.set_item("kind", "line")?,
        HostPrompt::ReadLineAsSecureString => d.set_item("kind", "secure_line")?,
        HostPrompt::Fields {
            caption,
            message,
            fields,
        } => {
            d.set_item("kind", "fields")?;
            d.set_item("caption", caption)?;
            d.set_item("message", message)?;
            let list = PyList::empty(py);
            for f in fields {
                let fd = PyDict::new(py);
                fd.set_item("name", &f.name)?;
                fd.set_item("label", &f.label)?;
                fd.set_item("type", &f.type_name)?;
                fd.set_item("secure", f.is_secure())?;
                list.append(fd)?;
            }
            d.set_item("fields", list)?;
        }
        HostPrompt::Credential {
            caption,
            message,
            user_name,
            target_name,
        } => {
            d.set_item("kind", "credential")?;
            d.set_item("caption", caption)?;
            d.set_item("message", message)?;
            d.set_item("user_name", user_name)?;
            d.set_item("target_name", target_name)?;
        }
        HostPrompt::Choice {
            caption,
            message,
            choices: c,
            default,
        } => {
            d.set_item("kind", "choice")?;
            d.set_item("caption", caption)?;
            d.set_item("message", message)?;
            d.set_item("choices", choices(c)?)?;
            d.set_item("default", *default)?;
        }
        HostPrompt::MultipleChoice {
            caption,
            message,
            choices: c,
            defaults,
        } => {
            d.set_item("kind", "choices")?;
            d.set_item("caption", caption)?;
            d.set_item("message", message)?;
            d.set_item("choices", choices(c)?)?;
            d.set_item("default", defaults.clone())?;
        }
    }
    Ok(d)
}

/// A secret from `str` or `psrp_client.SecureString`.
fn secret(value: &Bound<'_, PyAny>) -> PyResult<SecureString> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(SecureString::new(s.to_cow()?.into_owned()));
    }
    match convert::to_ps(value)? {
        PsValue::SecureString(s) => Ok(s),
        _ => Err(pyo3::exceptions::PyTypeError::new_err(
            "a secret answer must be a str or a psrp_client.SecureString",
        )),
    }
}

/// A choice from an index or a label / hot key.
fn choice(
    value: &Bound<'_, PyAny>,
    choices: &[psrp_core::client::ChoiceDescription],
    default: Option<usize>,
) -> PyResult<usize> {
    let found = match value.extract::<usize>() {
        Ok(i) => Some(i),
        Err(_) => HostPrompt::choice_by_text(choices, default, &value.extract::<String>()?),
    };
    found.ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err("the answer names none of the choices")
    })
}

fn answer(prompt: &HostPrompt, value: &Bound<'_, PyAny>) -> PyResult<HostAnswer> {
    Ok(match prompt {
        HostPrompt::ReadLine => HostAnswer::Line(value.extract()?),
        HostPrompt::ReadLineAsSecureString => HostAnswer::Secure(secret(value)?),
        HostPrompt::Fields { fields, .. } => {
            let given = value.cast::<PyDict>()?;
            let mut values = Vec::with_capacity(fields.len());
            for f in fields {
                let Some(v) = given.get_item(&f.name)? else {
                    return Err(pyo3::exceptions::PyKeyError::new_err(f.name.clone()));
                };
                let v = if f.is_secure() {
                    PsValue::SecureString(secret(&v)?)
                } else {
                    convert::to_ps(&v)?
                };
                values.push((f.name.clone(), v));
            }
            HostAnswer::Fields(values)
        }
        HostPrompt::Credential { .. } => {
            let (user, password): (String, Bound<'_, PyAny>) = value.extract()?;
            HostAnswer::Credential {
                user_name: user,
                password: secret(&password)?,
            }
        }
        HostPrompt::Choice {
            choices, default, ..
        } => HostAnswer::Choice(choice(value, choices, *default)?),
        HostPrompt::MultipleChoice { choices, .. } => HostAnswer::Choices(
            value
                .try_iter()?
                .map(|item| choice(&item?, choices, None))
                .collect::<PyResult<_>>()?,
        ),
    })
}

impl Host for PyHost {
    fn host_info(&self) -> HostInfo {
        HostInfo::with_ui(None)
    }

    // Once per prompt: the size of the error does not matter.
    #[allow(clippy::result_large_err)]
    fn prompt(&self, prompt: &HostPrompt) -> Result<HostAnswer, ErrorRecord> {
        // Runs on a blocking thread of the runtime: the GIL is taken here.
        Python::attach(|py| {
            let result = describe(py, prompt)
                .and_then(|d| self.callback.bind(py).call1((d,)))
                .and_then(|v| answer(prompt, &v));
            result.map_err(|e| {
                // The type and message of the program's own exception (never
                // the answer's value).
                let kind = e
                    .get_type(py)
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default();
                refusal(format!(
                    "The client's host callback did not answer {}: {kind}: {}",
                    prompt.kind(),
                    e.value(py)
                ))
            })
        })
    }
}
